/*
 * metrics: GET /metrics, the server's counters and gauges in the Prometheus
 * text exposition format (version 0.0.4). Reads the engine, the connection
 * count and the journal's statistics; changes nothing.
 *
 * Event-loop thread.
 */
#ifndef SPOOL_METRICS_H
#define SPOOL_METRICS_H

#include "common/sbuf.h"

struct server;

/* The content type to send with metrics_render's text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends every metric, with # HELP and # TYPE lines, to out. */
void metrics_render(struct server *srv, struct sbuf *out);

/* The same for the PostgreSQL store, from spool.info()'s counts (no journal, no push limits). */
struct cJSON;
void metrics_render_store(struct server *srv, const struct cJSON *counts, struct sbuf *out);

#endif
