/*
 * http: the HTTP listener on -w. Serves Faktory's GET /stats (the INFO
 * document) and GET /health. Event-loop thread only.
 */
#ifndef SPOOL_HTTP_H
#define SPOOL_HTTP_H

struct server;

/* Binds srv->cfg.http_bind; sets srv->http and srv->http_port. 0 or -1 (logged). */
int http_init(struct server *srv);
void http_release(struct server *srv);

#endif
