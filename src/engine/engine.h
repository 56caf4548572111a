/*
 * engine: all job state of the embedded backend, in memory. Queues (FIFO),
 * the time-ordered sets (scheduled, retries, dead, working), blocked
 * fetchers, worker processes and counters.
 *
 * Invariants:
 *  - every job the engine holds is in exactly one place: one queue
 *    (ENQUEUED) or one set (SCHEDULED, RETRY, DEAD, WORKING), and indexed by
 *    jid in `jobs`;
 *  - a job is handed to a blocked fetcher only from a queue that is not
 *    paused and whose throttle is not full, and is reserved under that
 *    fetcher's wid before the callback;
 *  - a throttled queue's in_flight is the number of its jobs in the
 *    working set.
 *
 * Pure: no sockets, no files, no clock reads: every call takes `now_ns`, and
 * engine_tick() returns the next time it wants to run. Owned by the event-loop
 * thread; no locks.
 */
#ifndef SPOOL_ENGINE_H
#define SPOOL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "common/strmap.h"
#include "common/tset.h"
#include "engine/batch.h"
#include "engine/job.h"
#include "engine/throttle.h"

/* Errors are negative ints; see engine_strerror(). */
#define ENGINE_ERRORS(X) \
    X(ENGINE_ENOTFOUND, -1, "not found") \
    X(ENGINE_EEXIST, -2, "jid already in use by a different job") \
    X(ENGINE_EUNKNOWN_WORKER, -3, "unknown worker") \
    X(ENGINE_EBADARG, -4, "bad argument") \
    X(ENGINE_ENOTUNIQUE, -5, "a job with the same jobtype, args and queue holds the unique lock") \
    X(ENGINE_EBATCH_UNKNOWN, -6, "no such batch") \
    X(ENGINE_EBATCH_CLOSED, -7, "the batch is committed") \
    X(ENGINE_EBATCH_DONE, -8, "the batch has completed") \
    X(ENGINE_EFULL, -9, "the server holds as many jobs as its limit allows")

enum engine_error {
#define X(name, value, text) name = value,
    ENGINE_ERRORS(X)
#undef X
};

const char *engine_strerror(int err);

struct engine_config {
    size_t dead_max;        /* dead set cap; oldest dropped beyond it (0 = no cap) */
    int64_t dead_ttl_ns;    /* how long a dead job is kept */
    int64_t worker_ttl_ns;  /* a process silent this long is reaped */
    uint32_t seed;          /* backoff jitter; tests fix it */
    size_t finished_max;    /* finished jids TRACK GET remembers (0 = none) */
    int64_t batch_ttl_ns;   /* a batch idle this long, with no job left, is pruned */
    size_t batch_max;       /* beyond this many, the longest idle prunable batches go */
    size_t max_jobs;        /* jobs held (every state) before pushes are refused (0 = no limit) */
    size_t max_memory;      /* estimated job bytes (engine_job_footprint) held before pushes
                               are refused (0 = no limit) */
};

/* Defaults: 100,000 dead jobs, 180 days, 60 s, 10,000 finished jids, batches 30 days / 100,000,
 * no push limits. */
void engine_config_defaults(struct engine_config *cfg);

enum worker_state { WORKER_RUNNING = 0, WORKER_QUIET, WORKER_TERMINATE };

struct worker {
    char *wid;
    char *hostname;
    int pid;
    char *labels;   /* JSON array text */
    char *v;        /* protocol version as given */
    int64_t started_at_ns;
    int64_t last_beat_ns;
    int64_t rss_kb;
    enum worker_state state;
    int nconns;
};

struct queue {
    char *name;
    struct job *head, *tail;
    size_t size;
    int is_paused;
};

struct waiter;
/* Called when a pushed job is handed straight to a blocked fetcher. */
typedef void (*waiter_fn)(struct waiter *w, struct job *job);

struct waiter_link {
    struct waiter_link *prev, *next;
    struct waiter *w;
    struct wait_list *list;
};

/* A blocked FETCH. Owned by the caller (a connection); see engine_wait. */
struct waiter {
    waiter_fn deliver;
    void *ctx;
    const char *wid;             /* borrowed; "" for none */
    struct waiter_link *links;
    int nlinks;
};

struct engine_hooks {
    void *ctx;
    /* A process was reaped for silence; close its connections. */
    void (*reaped)(void *ctx, const char *wid);
    /*
     * One change record (see record.h) for the journal, in the order the
     * changes happen. rec is valid only during the call.
     */
    void (*record)(void *ctx, const void *rec, size_t len);
};

/* TRACK GET's view of a job (docs/features.md). */
enum track_state {
    TRACK_UNKNOWN = 0,
    TRACK_ENQUEUED, /* queued, scheduled */
    TRACK_WORKING,
    TRACK_SUCCESS,  /* acked (remembered among the recently finished) */
    TRACK_FAILED,   /* waiting for a retry, or discarded after failing */
    TRACK_DEAD,
};

struct track_info {
    enum track_state state;
    int percent;           /* -1 when never set */
    const char *desc;      /* borrowed from the engine; NULL when never set */
    int64_t updated_at_ns; /* last TRACK SET or finish; 0 when never */
};

struct finished_job;

struct day_stats {
    int64_t day; /* days since the epoch (UTC) */
    uint64_t processed, failed;
};

#define ENGINE_HISTORY_DAYS 180

struct engine {
    struct engine_config cfg;
    struct engine_hooks hooks;
    struct strmap jobs;     /* jid -> struct job */
    struct strmap queues;   /* name -> struct queue */
    struct strmap waiting;  /* queue name -> struct wait_list */
    struct strmap workers;  /* wid -> struct worker */
    struct tset scheduled, retries, dead, working;
    uint64_t processed, failures;
    uint64_t dead_dropped;  /* jobs dropped from the dead set by age or cap */
    uint64_t expired_reservations;
    uint64_t workers_reaped;
    uint64_t expired_jobs;  /* discarded because custom.expires_at passed */
    struct strmap unique;   /* unique key -> the job holding that lock */
    struct strmap finished; /* jid -> struct finished_job, recently finished jobs */
    struct strmap cron_last; /* cron entry name -> int64_t *, last slot fired (REC_CRON) */
    struct strmap throttles; /* queue name -> struct throttle (configuration, not journaled) */
    struct finished_job *finished_head, *finished_tail; /* oldest first */
    struct batch_set batches; /* engine/batch.h */
    struct day_stats history[ENGINE_HISTORY_DAYS];
    uint32_t rng;
    struct sbuf scratch;
    int64_t op_now_ns; /* time of the queue operation in progress */
    struct sbuf recbuf; /* the record being built */
    int is_replaying;   /* applying records: emit nothing */
    uint64_t replay_skipped; /* records naming jobs the state does not have */
    size_t job_bytes;        /* sum of engine_job_footprint() over the jobs held */
    uint64_t pushes_refused_full; /* pushes refused with ENGINE_EFULL */
};

struct engine *engine_new(const struct engine_config *cfg, const struct engine_hooks *hooks);
void engine_free(struct engine *e);

/*
 * Takes a parsed job. A job with a future `at` goes to scheduled, otherwise
 * it is enqueued (or handed to a blocked fetcher). Returns 0 when stored (the
 * engine owns the job), 1 when an identical job with that jid is already held
 * (the push is idempotent; the caller still owns and frees `job`),
 * ENGINE_EEXIST when the jid belongs to a different job, or
 * ENGINE_ENOTUNIQUE when job is unique (custom.unique_for) and another job
 * with its jobtype, args and queue holds an unexpired lock (caller frees).
 */
int engine_push(struct engine *e, struct job *job, int64_t now_ns);
/*
 * (engine_push, continued) ENGINE_EFULL when holding one more job would pass
 * cfg.max_jobs or cfg.max_memory: the caller still owns job. Only new jobs
 * are refused: retries, requeues and replayed records never are, so nothing
 * already accepted is dropped.
 */

/*
 * The memory a job is counted for under max_memory: its stored strings plus
 * a fixed share for the job struct and the index entries that point at it.
 * An estimate (failure details added later are not counted), cheap and the
 * same at push and at removal.
 */
size_t engine_job_footprint(const struct job *job);

/* The jid holding the unique lock job would need, or NULL (see engine_push). */
const char *engine_unique_holder(struct engine *e, const struct job *job, int64_t now_ns);

/*
 * TRACK SET: records progress on a job the engine holds. percent < 0 and
 * desc NULL leave those unchanged. reserve_until_ns > 0 extends a working
 * job's reservation to that time (never shortens it; at most a day from
 * now); ignored when the job is not working. Returns 0 or ENGINE_ENOTFOUND.
 */
int engine_track_set(struct engine *e, const char *jid, int percent, const char *desc,
                     int64_t reserve_until_ns, int64_t now_ns);

/* TRACK GET: fills out (TRACK_UNKNOWN for a jid neither held nor recently finished). */
void engine_track_get(struct engine *e, const char *jid, struct track_info *out);
const char *engine_track_state_name(enum track_state s);

/*
 * Takes the first job from the first non-empty, non-paused, non-throttled
 * queue of queues[0..n) and reserves it under wid. Returns NULL when there
 * is none.
 */
struct job *engine_fetch(struct engine *e, const char *const *queues, int n, const char *wid,
                         int64_t now_ns);

/*
 * Registers w as waiting on the non-paused queues among queues[0..n): the
 * next job pushed to one of them is reserved under w->wid and passed to
 * w->deliver (after w is unregistered). Returns how many queues w waits on.
 * w holds memory until delivery or engine_unwait(), even when it returns 0.
 */
int engine_wait(struct engine *e, struct waiter *w, const char *const *queues, int n);
/* Unregisters w if it is waiting (safe to call when it is not). */
void engine_unwait(struct engine *e, struct waiter *w);

/* Finishes a working job. Unknown or not working jid: a no-op returning ENGINE_ENOTFOUND. */
int engine_ack(struct engine *e, const char *jid, int64_t now_ns);

/*
 * Fails a working job: records the failure, then retries (with backoff),
 * kills or discards it by its retry budget. ENGINE_ENOTFOUND when jid has
 * no live reservation.
 */
int engine_fail(struct engine *e, const char *jid, const char *errtype, const char *message,
                const char *backtrace_json, int64_t now_ns);

/* Worker processes (consumers identified by wid). */
struct worker_hello {
    const char *wid, *hostname, *labels, *v;
    int pid;
    int64_t rss_kb;
};
/* A connection of process hello->wid said HELLO; the first one's metadata is kept. */
void engine_worker_attach(struct engine *e, const struct worker_hello *hello, int64_t now_ns);
/* A connection of wid closed; the record goes when its last connection does. */
void engine_worker_detach(struct engine *e, const char *wid);
struct worker *engine_worker(struct engine *e, const char *wid);
/*
 * A heartbeat. state may be "quiet", "terminate" or anything else (no
 * change); states only move forward. Returns 0 and the current state, or
 * ENGINE_EUNKNOWN_WORKER.
 */
int engine_beat(struct engine *e, const char *wid, const char *state, int64_t rss_kb,
                int64_t now_ns, enum worker_state *out);
/* An operator asks a process to go quiet or terminate. */
int engine_worker_signal(struct engine *e, const char *wid, enum worker_state state);

/* Queue administration; unknown names are ignored. name "*" means every queue. */
void engine_queue_pause(struct engine *e, const char *name);
void engine_queue_resume(struct engine *e, const char *name, int64_t now_ns);
void engine_queue_remove(struct engine *e, const char *name);
/* Seconds since the oldest job in the queue was enqueued; 0 if empty or unknown. */
double engine_queue_latency(struct engine *e, const char *name, int64_t now_ns);
struct queue *engine_queue(struct engine *e, const char *name);

enum mutate_cmd { MUTATE_CLEAR, MUTATE_KILL, MUTATE_DISCARD, MUTATE_REQUEUE };
enum mutate_target { TARGET_SCHEDULED, TARGET_RETRIES, TARGET_DEAD };


/* Applies cmd to the matching jobs of target; returns how many were changed. */
size_t engine_mutate(struct engine *e, enum mutate_cmd cmd, enum mutate_target target,
                     const struct mutate_filter *filter, int64_t now_ns);

enum list_target { LIST_SCHEDULED, LIST_RETRIES, LIST_DEAD, LIST_WORKING, LIST_QUEUE };

/*
 * Pages through the jobs of a set (in time order) or of one queue (FIFO),
 * keeping those that match filter (MUTATE's rules; NULL = all): calls fn for
 * matches number offset .. offset+limit-1. Returns the number of matches.
 * fn must not change the engine.
 */
size_t engine_list(struct engine *e, enum list_target target, const char *queue,
                   const struct mutate_filter *filter, size_t offset, size_t limit,
                   void (*fn)(void *ctx, const struct job *job), void *ctx);

/* Drops every job, queue, pause flag and counter. Workers and waiters stay. */
void engine_flush(struct engine *e);

/*
 * Runs due work: scheduled and retry jobs into their queues, expired
 * reservations to failure handling, old dead jobs out, silent workers
 * reaped, fetchers blocked on a throttled queue served when its rate window
 * opened. Returns the next time (ns) it should run, at most 1 s ahead (and
 * no later than the next rate window opening that a blocked fetcher waits for).
 */
int64_t engine_tick(struct engine *e, int64_t now_ns);

/*
 * Applies one change record (from the journal or a snapshot) without emitting
 * records. Returns 0, or -1 with a reason in err when the record cannot be
 * decoded. A record naming a job the engine does not hold is skipped and
 * counted in replay_skipped.
 */
int engine_apply(struct engine *e, const void *rec, size_t len, char *err, size_t errlen);

/*
 * Writes the whole state as records (counters, queues with their jobs in
 * order, then every set in time order) through out. Applying them to an
 * empty engine rebuilds this state.
 */
void engine_dump(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len), void *ctx);

/*
 * Cron bookkeeping (docs/cron.md): the last slot (Unix ns) an entry fired,
 * 0 when it never fired. engine_cron_mark records a fired slot and journals
 * it (REC_CRON); FLUSH does not clear it, snapshots keep it.
 */
int64_t engine_cron_last(const struct engine *e, const char *name);
void engine_cron_mark(struct engine *e, const char *name, int64_t slot_ns);

/*
 * Queue throttles (docs/features.md): replaces the limits with cfg (NULL or
 * empty: no throttles). In-flight counts are recomputed from the working
 * set, so they hold after a restart (reservations are journaled); a queue
 * that newly gets a rate counts the reservations still held that were made
 * within its period. A queue that keeps its rate keeps its window. Blocked
 * fetchers that the new limits let through are served at once.
 *
 * FETCH (and a blocked fetcher) skips a queue whose throttle is full and
 * takes the next queue asked for; an ACK, FAIL or reservation expiry of
 * the queue's job, or its rate window opening (engine_tick), serves the
 * fetchers blocked on it.
 */
void engine_throttle_set(struct engine *e, const struct throttle_config *cfg, int64_t now_ns);
/* The throttle of a queue, or NULL when it has none. */
struct throttle *engine_throttle(struct engine *e, const char *queue);
/*
 * When the next rate window opens for a queue that has jobs and blocked
 * fetchers but a full window; INT64_MAX when none (part of engine_tick's
 * next deadline).
 */
int64_t engine_throttle_next_ns(struct engine *e, int64_t now_ns);

/* Counters for a day (zeros when not in the history). */
struct day_stats engine_day(const struct engine *e, int64_t day);
size_t engine_enqueued_total(const struct engine *e);

#endif
