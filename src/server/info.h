/*
 * info: the INFO document (Faktory's JSON shape), also served at GET /stats,
 * and the smaller /health document. Event-loop thread only.
 */
#ifndef SPOOL_INFO_H
#define SPOOL_INFO_H

#include <stdint.h>

#include "common/sbuf.h"

struct server;

/* Appends the INFO JSON to out. */
void info_render(struct server *srv, struct sbuf *out);
/*
 * Appends the worker processes as a JSON array (wid, hostname, pid, labels,
 * state, started_at, last_beat_at, rss_kb, connections, busy): what FWP's
 * WORKERS and GET /api/v1/workers answer.
 */
void info_render_workers(struct server *srv, struct sbuf *out);
/* running, quiet or terminate. */
const char *info_worker_state_name(int state);

/* Same, with the busy counts given (wid -> count as a uintptr_t value): the PostgreSQL store's. */
struct strmap;
void info_render_workers_busy(struct server *srv, const struct strmap *busy, struct sbuf *out);

/*
 * The INFO document of the PostgreSQL store, from spool.info()'s counts
 * (queues, scheduled, retries, dead, working, processed, failed, paused).
 */
struct cJSON;
void info_render_store(struct server *srv, const struct cJSON *counts, struct sbuf *out);

/*
 * Appends one entry of a set or queue listing: {"job":{...}} plus, with
 * with_at, the set's time as "at", and for a working job its "wid" and
 * "reserved_at". What FWP's JOBS and GET /api/v1/sets answer per job.
 */
struct job;
void info_render_list_entry(struct sbuf *out, const struct job *job, int with_at);

/*
 * Appends a queue's throttle (docs/features.md): null when it has none, else
 * {"concurrency":N|null,"in_flight":n,"rate_limit":L|null,
 * "rate_period_s":P|null,"throttled":bool}. What INFO's faktory.throttles
 * and the HTTP API's queue objects show.
 */
struct engine;
void info_render_throttle(struct engine *e, const char *queue, int64_t now_ns, struct sbuf *out);

/* Appends the /health JSON to out. */
void info_render_health(struct server *srv, struct sbuf *out);

#endif
