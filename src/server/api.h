/*
 * api: spoold's HTTP JSON API under /api/v1 (docs/http-api.md): push jobs,
 * look a job up, list and administer queues, sets and worker processes,
 * read the per-day history and the cron entries.
 *
 * It speaks to the engine through the same calls as FWP and validates jobs
 * with the same code (job_parse, job_from_array_item), so a job the API accepts
 * is one PUSH would accept.
 *
 * Durability: a reply that promises a change (202 to a push, 200 to a
 * pause, a retry, ...) is sent only once srv->durable_seq has reached the
 * commit sequence of that change. Until then the request is held on
 * srv->api_pending; api_release_durable() sends what has become durable.
 *
 * Runs on the event-loop thread, like the rest of the server.
 */
#ifndef SPOOL_API_H
#define SPOOL_API_H

struct server;
struct evhttp_request;

/* A request held until its change is durable (a list on struct server). */
struct api_pending;

/*
 * Serves one request whose path starts with /api/v1 (authentication already
 * checked by the caller). Always answers req, now or once durable.
 */
void api_handle(struct server *srv, struct evhttp_request *req, const char *path);

/*
 * Sends the held replies whose change is now durable (seq <= durable_seq).
 * When the server has gone read-only (the journal failed) the rest will
 * never become durable: they are answered 503 instead.
 */
void api_release_durable(struct server *srv);

/* Answers every held request 503 (shutdown: the HTTP server is about to go). */
void api_abort_pending(struct server *srv);

#endif
