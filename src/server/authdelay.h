/*
 * authdelay: holds the error reply to a wrong password for the delay the
 * peer's failure count calls for (auth.h), without blocking the loop: an
 * FWP connection waits on a timer of its own (conn->auth_timer), an HTTP
 * request is kept on a list with its timer. Every failure is logged with
 * the peer's address. Owns the per-peer failure table (srv->authdelay,
 * created at the first failure). Event-loop thread only.
 */
#ifndef SPOOL_AUTHDELAY_H
#define SPOOL_AUTHDELAY_H

struct server;
struct conn;
struct evhttp_request;

/*
 * HELLO gave a wrong password: the connection runs no further command; after
 * the delay it gets "-ERR Invalid password" and is closed. A client that
 * hangs up meanwhile is freed as usual (conn_free frees the timer).
 */
void authdelay_fwp(struct conn *c);

/* A request carried wrong credentials: it is answered 401 after the delay. */
void authdelay_http(struct server *srv, struct evhttp_request *req);

/* Answers the held HTTP requests 401 now and frees the table (shutdown). */
void authdelay_release(struct server *srv);

#endif
