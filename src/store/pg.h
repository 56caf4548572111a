/*
 * pg: spoold's connections to PostgreSQL, driven by the event loop through
 * libpq's asynchronous calls, so no thread ever blocks on a query.
 *
 * A pool of connections runs one query each at a time; queries beyond that
 * wait in a FIFO and start, in order, as connections free up. A broken
 * connection fails its query (the callback gets err) and reconnects in the
 * background with a growing delay.
 *
 * Beside the pool, two dedicated sessions:
 *  - the listener (LISTEN on one channel): notifications are handed to a
 *    callback as they arrive;
 *  - the leader session, which tries a session-level advisory lock every
 *    second and holds it for as long as it lives: exactly one spoold per
 *    database has is_leader set at a time, and when that process dies its
 *    session ends, the lock is freed and another takes it within a second.
 *
 * Only pg_new() and pg_exec_sync() block (start-up: connecting, migrating).
 * Everything here runs on the event-loop thread.
 */
#ifndef SPOOL_PG_H
#define SPOOL_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct event_base;
struct pg;
struct pg_req;

/*
 * A query finished. res is the result (check PQresultStatus; it is cleared
 * after the callback returns), or NULL with err saying why the query never
 * ran to the end (a lost connection). Called from the event loop.
 */
typedef void (*pg_done_fn)(void *arg, PGresult *res, const char *err);

/*
 * A notification on the listened channel, with its payload; NULL after the
 * listening session reconnected (notifications may have been missed).
 */
typedef void (*pg_notify_fn)(void *arg, const char *payload);

/* Leadership was taken (is_leader 1) or lost (0). */
typedef void (*pg_leader_fn)(void *arg, int is_leader);

struct pg_options {
    const char *url;          /* libpq connection URL or keyword string */
    int pool;                 /* connections running queries (>= 1) */
    const char *channel;      /* LISTEN channel, or NULL for no listener */
    pg_notify_fn on_notify;
    int64_t leader_key;       /* advisory lock key; with on_leader NULL, no leader session */
    pg_leader_fn on_leader;
    /*
     * A pool session has nothing to run: the caller may pg_query() work it
     * held back (statements coalesced while every session was busy).
     */
    void (*on_idle)(void *arg);
    void *arg;                /* passed to on_notify, on_leader and on_idle */
};

/*
 * Opens every connection (blocking: start-up only) and arms them on base.
 * Returns the pool, or NULL with a message in err.
 */
struct pg *pg_new(struct event_base *base, const struct pg_options *opt, char *err, size_t errlen);
/* Closes every session; queries not yet answered get their callback with err first. */
void pg_free(struct pg *pg);

/*
 * Runs sql (which may hold several statements) on a pool connection and
 * waits for it: start-up only (migrations). Returns 0, or -1 with err.
 */
int pg_exec_sync(struct pg *pg, const char *sql, char *err, size_t errlen);

/* Same, for a query returning one value: its text (truncated to outlen). */
int pg_exec_value_sync(struct pg *pg, const char *sql, char *out, size_t outlen, char *err,
                       size_t errlen);

/*
 * Queues one statement with text parameters (copied: the caller's strings
 * may go once this returns); fn(arg, ...) runs when it completes. Returns a
 * handle for pg_req_detach, valid until fn has run; NULL once pg_free has
 * begun (fn has then already run, with err).
 */
struct pg_req *pg_query(struct pg *pg, const char *sql, int nparams, const char *const *params,
                        pg_done_fn fn, void *arg);

/*
 * The caller is gone: the query still runs (it may already be on the
 * server) but fn will not be called.
 */
void pg_req_detach(struct pg_req *req);

/* Whether a pool session is idle: a query sent now starts at once. */
int pg_has_idle(const struct pg *pg);

/* Whether this process holds the leader lock now. */
int pg_is_leader(const struct pg *pg);

/* Queries waiting for a connection, and connections up (for INFO and logs). */
size_t pg_queued(const struct pg *pg);
int pg_connections_up(const struct pg *pg);

#endif
