/*
 * http: the HTTP listener on -w. Checks HTTP Basic auth when a password is
 * set, then serves Faktory's GET /stats (the INFO document), GET /health,
 * GET /metrics (metrics.c), the JSON API under /api/v1 (api.c; see
 * docs/http-api.md) and the dashboard at / and /ui/ (dashboard.c; see
 * docs/dashboard.md). Event-loop thread only.
 */
#ifndef SPOOL_HTTP_H
#define SPOOL_HTTP_H

struct server;
struct evhttp_request;

/* Binds srv->cfg.http_bind; sets srv->http and srv->http_port. 0 or -1 (logged). */
int http_init(struct server *srv);
/*
 * Creates srv->http with spoold's limits and request handler but no
 * listening socket (http_init calls it, then binds; the HTTP fuzz target
 * gives it a socket of its own with evhttp_accept_socket).
 */
void http_new(struct server *srv);
/* Answers 401 with WWW-Authenticate: Basic (a password is required). */
void http_reply_unauthorized(struct evhttp_request *req);
/* Answers API requests still held for durability (503), then frees the listener. */
void http_release(struct server *srv);

#endif
