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
struct journal;
struct api_pending;
struct crond;
struct confload;
struct tls_server;
struct backup;
struct authdelay;
struct pgsrv;

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
    int lock_fd;               /* the data directory's lock, held while running */
    struct journal *journal;
    int notify_fd;             /* eventfd: the journal writer says it made progress */
    struct event *notify_ev;
    struct event *sig_chld;
    int snapshot_pid;          /* a snapshot child is running, or 0 */
    uint64_t snapshot_segment; /* the segment the running snapshot covers up to */
    uint64_t snapshots_taken;
    int is_readonly;           /* the journal failed: changes are refused */
    int64_t tick_armed_ns;     /* when the tick timer fires next */
    char readonly_reason[256];
    struct api_pending *api_pending; /* HTTP API replies held until durable (api.c) */
    struct crond *crond;       /* cron entries (crond.c) */
    struct confload *confload; /* throttles.json, SIGHUP and API reloads (confload.c) */
    struct tls_server *tls;    /* NULL: plaintext; else both listeners speak TLS only (tls.c) */
    int is_full;               /* the last push hit --max-jobs/--max-memory (logged once) */
    struct backup *backup;     /* SIGUSR1 online backups (backup.c) */
    struct authdelay *authdelay; /* failed password attempts and held replies (authdelay.c) */
    struct pgsrv *pgsrv;       /* --store postgres://: the PostgreSQL backend (pgsrv.c), else NULL */
};

/* Wall-clock time in Unix nanoseconds. */
int64_t server_now(void);

/*
 * Builds the server: locks the data directory, recovers the state from it,
 * opens the journal, binds both listeners. 0 or -1 (logged).
 */
int server_init(struct server *srv, const struct config *cfg);
/* Runs the event loop until SIGINT/SIGTERM. */
int server_run(struct server *srv);
void server_release(struct server *srv);

/* spoold --check [--repair]: verifies (or repairs) cfg->data_dir; returns the exit code. */
int server_check(const struct config *cfg);

/*
 * The sequence number covering every change made to the engine so far: a
 * reply sent once it is durable promises all of them are on disk.
 */
uint64_t server_commit(struct server *srv);
/* Records that every sequence <= seq is durable and releases held replies. */
void server_mark_durable(struct server *srv, uint64_t seq);

/* What server_push did with a job. */
enum push_result {
    PUSH_OK = 0,          /* stored, or an identical job with that jid was already held */
    PUSH_INVALID = -1,    /* too large: refused */
    PUSH_JID_IN_USE = -2, /* the jid belongs to a different job the server holds */
    PUSH_NOT_UNIQUE = -3, /* a unique lock on jobtype + args + queue is held; err starts "NOTUNIQUE " */
    PUSH_BATCH = -4,      /* custom.bid names no batch, or a committed one */
    PUSH_FULL = -5,       /* --max-jobs or --max-memory reached: refused until jobs drain */
};

/*
 * Stores one parsed job for FWP and HTTP alike (the size cap, the engine,
 * and the messages clients see). Takes job: the engine keeps it or it is
 * freed. Returns an enum push_result, with the message in err
 * (JOB_ERR_MAX bytes) when it is not PUSH_OK.
 */
int server_push(struct server *srv, struct job *job, char *err);

/* Re-arms the tick timer (after a change that may have moved a deadline). */
void server_schedule_tick(struct server *srv);

#endif
