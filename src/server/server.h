/*
 * server: spoold's process-wide state on the event-loop thread: the libevent
 * base, the FWP listener, the HTTP listener, the engine, the tick timer, the
 * list of connections, and the durability sequence that holds replies.
 *
 * Durability: every reply that promises something is on disk carries a
 * sequence number (server_commit). A connection sends such a reply only once
 * durable_seq has reached it, in order with its other replies
 * (conn_reply_durable). With no journal attached every commit is durable at
 * once.
 *
 * Everything here runs on the event-loop thread.
 */
#ifndef SPOOL_SERVER_H
#define SPOOL_SERVER_H

#include <stdint.h>

#include "engine/engine.h"
#include "server/config.h"

struct event_base;
struct event;
struct evconnlistener;
struct evhttp;
struct conn;

struct server {
    struct config cfg;
    struct event_base *base;
    struct engine *engine;
    struct evconnlistener *listener;
    struct evhttp *http;
    struct event *tick_ev;
    struct event *sig_int, *sig_term;
    struct conn *conns; /* all connections, newest first */
    int nconns;
    uint64_t command_count;
    int64_t started_ns;
    uint64_t commit_seq;  /* last sequence handed out */
    uint64_t durable_seq; /* every sequence <= this is durable */
    int fwp_port, http_port;
    int is_stopping;
};

/* Wall-clock time in Unix nanoseconds. */
int64_t server_now(void);

/* Builds the server: binds both listeners, creates the data directory. 0 or -1 (logged). */
int server_init(struct server *srv, const struct config *cfg);
/* Runs the event loop until SIGINT/SIGTERM. */
int server_run(struct server *srv);
void server_release(struct server *srv);

/* Hands out the sequence number for a change just made to the engine. */
uint64_t server_commit(struct server *srv);
/* Records that every sequence <= seq is durable and releases held replies. */
void server_mark_durable(struct server *srv, uint64_t seq);

/* Re-arms the tick timer (after a change that may have moved a deadline). */
void server_schedule_tick(struct server *srv);

#endif
