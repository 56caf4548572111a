/*
 * info: the INFO document (Faktory's JSON shape), also served at GET /stats,
 * and the smaller /health document. Event-loop thread only.
 */
#ifndef SPOOL_INFO_H
#define SPOOL_INFO_H

#include "common/sbuf.h"

struct server;

/* Appends the INFO JSON to out. */
void info_render(struct server *srv, struct sbuf *out);
/* Appends the /health JSON to out. */
void info_render_health(struct server *srv, struct sbuf *out);

#endif
