/*
 * pgsrv: the PostgreSQL backend of spoold (--store postgres://...). FWP and
 * HTTP parse and validate as they do for the embedded engine, then call
 * these operations instead of the engine's; each completes later through
 * its callback, from the event loop, once PostgreSQL has committed it.
 *
 * Several spoold may share one database: claims use FOR UPDATE SKIP
 * LOCKED, blocked FETCHes wait on a list woken by LISTEN/NOTIFY (channel
 * spool_push, payload the queue), and maintenance (promoting due scheduled
 * and retry jobs, expiring reservations, pruning the dead set) runs on the
 * one server holding the leader advisory lock.
 *
 * Worker processes (HELLO, BEAT, quiet/terminate) stay with the spoold they
 * are connected to, in its engine, as with the embedded backend.
 *
 * Everything here runs on the event-loop thread.
 */
#ifndef SPOOL_PGSRV_H
#define SPOOL_PGSRV_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct job;
struct pgsrv;
struct pgop;
struct sbuf;

/* Connects, migrates the schema, starts listening and the leader probe. 0 or -1 (logged). */
int pgsrv_init(struct server *srv);
void pgsrv_free(struct pgsrv *p);

/*
 * An operation finished: rc 0, or a negative enum push_result / -1 with a
 * message (msg, without "-ERR "). Out data, when any, is in out[0..outlen).
 */
typedef void (*pgsrv_done_fn)(void *arg, int rc, const char *msg, const char *out, size_t outlen);

/* The caller is gone: its callback will not run (the operation itself may still commit). */
void pgsrv_cancel(struct pgop *op);

/*
 * What the PostgreSQL store cannot do yet with this job (batch
 * membership), as an error message; NULL when it can store it.
 */
const char *pgsrv_job_unsupported(const struct job *job);

/*
 * Stores one validated job (taken; pgsrv_job_unsupported checked). While
 * every session is busy, pushes are held and sent together as one statement
 * (each still answered on its own).
 */
struct pgop *pgsrv_push(struct pgsrv *p, struct job *job, pgsrv_done_fn done, void *arg);

/*
 * Stores several jobs (taken: jobs[0..n), the array too) in one round trip,
 * each on its own: out is PUSHB's reply, a JSON object of jid -> error for
 * those refused.
 */
struct pgop *pgsrv_push_many(struct pgsrv *p, struct job **jobs, size_t n, pgsrv_done_fn done,
                             void *arg);

/*
 * Reserves up to max jobs for wid from queues (priority order) without
 * waiting. out: the jobs' JSON one per line ("\n"-separated); outlen 0
 * when there was none.
 */
struct pgop *pgsrv_fetch(struct pgsrv *p, const char *const *queues, int n, const char *wid, int max,
                         pgsrv_done_fn done, void *arg);

/*
 * Acknowledges one job; while every session is busy, ACKs are held and sent
 * together as one statement.
 */
struct pgop *pgsrv_ack_one(struct pgsrv *p, const char *jid, pgsrv_done_fn done, void *arg);

/* Acknowledges jobs; a jid not reserved is not an error. out: how many were reserved. */
struct pgop *pgsrv_ack(struct pgsrv *p, const char *const *jids, size_t n, pgsrv_done_fn done,
                       void *arg);

/*
 * Records a failure of a reserved job: retry with backoff, dead, or
 * discard (job_fail's policy). rc -1 with "Job not found <jid>" when it is
 * not reserved.
 */
struct pgop *pgsrv_fail(struct pgsrv *p, const char *jid, const char *errtype, const char *message,
                        const char *backtrace_json, pgsrv_done_fn done, void *arg);

/*
 * A page of a set (state "scheduled", "retry", "dead", "working") or of
 * queue's waiting jobs (state "enqueued"), filtered by f (NULL: all), each
 * entry as info_render_list_entry writes it. out: {"jobs":[...],"total":N,
 * "offset":O,"limit":L}, as the journal store's listings.
 */
struct mutate_filter;
struct pgop *pgsrv_list(struct pgsrv *p, const char *state, const char *queue,
                        const struct mutate_filter *f, size_t offset, size_t limit, int with_at,
                        pgsrv_done_fn done, void *arg);

/*
 * MUTATE: cmd "clear", "discard", "kill" or "requeue" on the jobs of a set
 * (state as for pgsrv_list) that f picks. out: the number changed.
 */
struct pgop *pgsrv_mutate(struct pgsrv *p, const char *cmd, const char *state,
                          const struct mutate_filter *f, pgsrv_done_fn done, void *arg);

/* out: WORKERS' list of this server's processes, busy counts read from the database. */
struct pgop *pgsrv_workers(struct pgsrv *p, pgsrv_done_fn done, void *arg);

/* out: the INFO document (Faktory's shape). */
struct pgop *pgsrv_info(struct pgsrv *p, pgsrv_done_fn done, void *arg);

/* Runs one statement with text parameters; out: the first row's first value, if any. */
struct pgop *pgsrv_exec(struct pgsrv *p, const char *sql, int nparams, const char *const *params,
                        pgsrv_done_fn done, void *arg);

/*
 * Blocked fetchers. A waiter stays listed for its whole FETCH, claims
 * included. A notification naming one of its queues calls wake() when it is
 * not claiming; while a claim runs, it sets has_missed instead: that push
 * may have committed after the claim's snapshot, so an empty claim must be
 * tried again rather than wait. The queue strings must outlive the wait.
 */
struct pgwaiter {
    struct pgwaiter *prev, *next;
    const char *const *queues;
    int nqueues;
    void (*wake)(struct pgwaiter *w);
    int is_waiting;  /* listed */
    int is_claiming; /* a claim statement is running for it */
    int has_missed;  /* a matching notification came while claiming */
};
void pgsrv_wait(struct pgsrv *p, struct pgwaiter *w);
void pgsrv_unwait(struct pgsrv *p, struct pgwaiter *w);

/* Whether this spoold runs the maintenance now (holds the leader lock). */
int pgsrv_is_leader(const struct pgsrv *p);

#endif
