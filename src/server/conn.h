/*
 * conn: one FWP client connection. Owns its bufferevent, handshake state,
 * the command line framing (with the line-length and line-time limits), the
 * blocked-FETCH state, and replies held until durable.
 *
 * One command runs at a time per connection: while a FETCH blocks, further
 * input waits in the buffer (bounded by a read watermark). Replies leave in
 * command order. Event-loop thread only.
 */
#ifndef SPOOL_CONN_H
#define SPOOL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "server/pgsrv.h"

struct server;
struct bufferevent;
struct evbuffer;
struct event;
struct pgop;
struct cJSON;

enum conn_state { CONN_HANDSHAKE, CONN_READY };

struct held_mark {
    uint64_t seq;
    size_t len;
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    struct bufferevent *bev;
    enum conn_state state;
    char peer[64];
    char salt[17];
    int iterations;
    char *wid;              /* consumer process id from HELLO, or NULL */
    struct event *timer;      /* handshake deadline */
    struct event *fetch_timer; /* FETCH block deadline */
    struct event *line_timer; /* a partial command line has this long to finish */
    struct event *close_ev;   /* frees the connection from the loop */
    struct event *auth_timer; /* holds a wrong password's reply (authdelay.c), or NULL */
    int is_blocked;         /* a FETCH is waiting for a job or its deadline */
    int in_process;         /* inside process_input: freeing waits until it returns */
    int want_free;
    struct waiter waiter;
    int is_skipping;        /* discarding the rest of an over-long line */
    int is_closing;         /* close once the output has drained */
    /* --store postgres: the operation in flight (its reply ends the block), and a blocked FETCH. */
    struct pgop *pgop;
    struct pgwaiter pgw;
    char **pg_queues;        /* the blocked FETCH's queue names (owned) */
    int pg_fetch_max;        /* 1 for FETCH, n for FETCHN */
    int is_pg_deadline;      /* the FETCH deadline passed while a query ran */
    struct cJSON *pg_errors;       /* PUSHB: the jobs refused before reaching PostgreSQL */
    /* Replies waiting for durability, in order: bytes in held, one mark each. */
    struct evbuffer *held;
    struct held_mark *marks;
    size_t nmarks, marks_cap;
};

/* Takes ownership of the accepted socket fd. */
void conn_accept(struct server *srv, int fd, const char *peer);
/* Closes now, dropping unsent output (deferred if a command is running). */
void conn_close(struct conn *c);
/* Closes from the event loop soon, dropping unsent output; safe anywhere. */
void conn_close_soon(struct conn *c);
/* Sends what is queued, then closes. */
void conn_close_after_flush(struct conn *c);

/* Queues a reply that promises nothing durable. */
void conn_reply(struct conn *c, const char *data, size_t len);
void conn_reply_str(struct conn *c, const char *s);
/* Queues "-ERR <fmt...>\r\n". */
void conn_reply_err(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues a bulk string reply. */
void conn_reply_bulk(struct conn *c, const char *data, size_t len);
/* Queues a reply that may leave only once sequence seq is durable. */
void conn_reply_durable(struct conn *c, const char *data, size_t len, uint64_t seq);
/* Moves held replies whose sequence is now durable to the socket. */
void conn_release_durable(struct conn *c, uint64_t durable_seq);

/* A blocked FETCH finished: go on with buffered input. */
void conn_unblock(struct conn *c);

#endif
