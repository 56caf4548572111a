/*
 * batch: groups of jobs with callback jobs, in Faktory Enterprise's wire
 * shapes (BATCH NEW/OPEN/COMMIT/STATUS, custom.bid; docs/features.md
 * "Batches"). Part of the engine: it reads and changes struct engine and
 * pushes callbacks through engine_push().
 *
 * Counters follow the jobs' own records: a REC_ADD whose custom.bid names a
 * batch joins it, a job's first failure (REC_FAIL) counts as failed, an ACK
 * (REC_DEL) as succeeded, any other departure of a job that never failed as
 * failed. Live operation and replay run the same code over the same records,
 * so a journal cut anywhere leaves counters that agree with the jobs. What no
 * job record says is journaled on its own: the definition (REC_BATCH_NEW),
 * commit, reopen and each fired callback (REC_BATCH_STATE, absolute values),
 * pruning (REC_BATCH_DEL). Snapshots write every definition before the jobs
 * and every state after them.
 *
 * Invariants:
 *  - job_extra(job)->batch != NULL exactly for the held jobs that joined a batch at
 *    push; b->nlive counts them; a batch is freed only when nlive == 0 and
 *    no child batch points at it;
 *  - total >= pending >= failed >= 0; pending counts jobs not yet acked,
 *    failed those of them that failed at least once (or left unacked);
 *  - `complete` fires once, when the batch is committed, pending == failed
 *    and every child batch has completed; `success` fires once, after
 *    complete, when pending == 0 and every child batch has succeeded;
 *  - while replaying nothing fires: batches that may be due are remembered
 *    and engine_tick() fires them; a callback fired again after a crash cut
 *    its state record is the same job with the same jid, so the push is
 *    idempotent.
 *
 * Pure; no I/O, time is an argument. Owned by the event-loop thread.
 */
#ifndef SPOOL_BATCH_H
#define SPOOL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "common/strmap.h"

struct engine;
struct job;
struct rec_reader;

enum batch_cb { BATCH_COMPLETE = 0, BATCH_SUCCESS = 1 };

/* A callback's state as BATCH STATUS shows it: "", "1", "2" (Faktory's values). */
enum batch_cb_state {
    BATCH_ST_PENDING = 0,  /* "": not fired */
    BATCH_ST_ENQUEUED = 1, /* "1": the callback job was pushed */
    BATCH_ST_DONE = 2,     /* "2": the callback job was acked, or there was none to run */
};

struct batch {
    char *bid;
    char *parent_bid;  /* or NULL */
    char *description; /* or NULL */
    int64_t created_at_ns;
    int64_t updated_at_ns; /* last NEW/OPEN/COMMIT, ack, failure or fire: pruning age */
    char *cb_json[2];      /* callback job JSON (jid and custom._bid filled in), or NULL */
    char *cb_jid[2];
    int is_committed;
    uint8_t st[2]; /* enum batch_cb_state, by enum batch_cb */
    int64_t total, pending, failed;
    uint32_t children_incomplete, children_unsucceeded; /* child batches not yet there */
    uint32_t nchildren_held; /* child batches still held (they point here) */
    uint32_t nlive;          /* held jobs with job->batch == this */
    int is_dirty;            /* in the set's list of batches to check */
    struct batch *parent;
    struct batch *prev, *next; /* creation order */
};

struct batch_set {
    struct strmap by_bid;
    struct strmap callbacks; /* jid of an enqueued callback -> its batch (key borrowed) */
    struct batch *head, *tail;
    size_t count;
    struct batch **dirty; /* batches whose callbacks may be due (replay, drops) */
    size_t ndirty, capdirty;
    int64_t next_prune_ns;
};

#define BATCH_DEFAULT_TTL_S (30 * 86400)
#define BATCH_DEFAULT_MAX 100000
#define BATCH_PRUNE_EVERY_S 60

void batch_set_init(struct batch_set *s);
/* Frees every batch. Jobs pointing at them must be gone (or freed without unlinking). */
void batch_set_release(struct batch_set *s);

/* The batch with that bid, or NULL. */
struct batch *batch_find(struct engine *e, const char *bid);

/* custom.bid of a job (from its stored body), malloc'd, or NULL when it has none. */
char *batch_bid_of(const struct job *job);

/* ---- job events, called by engine.c for live changes and replays alike ---- */

/*
 * Whether job may be pushed: *out is its batch (NULL when it names none).
 * ENGINE_EBATCH_UNKNOWN when custom.bid names no batch, ENGINE_EBATCH_CLOSED
 * when the batch is committed (BATCH OPEN reopens it).
 */
int batch_admit(struct engine *e, const struct job *job, struct batch **out);
/* job, now held by the engine, joins b: total and pending grow. */
void batch_join(struct engine *e, struct job *job, struct batch *b);
/* A member job failed for the first time (call after recording the failure). */
void batch_job_failed(struct engine *e, struct job *job, int64_t now_ns);
/* A job was acked: a member succeeds, an enqueued callback is done. Unlinks job. */
void batch_job_acked(struct engine *e, struct job *job, int64_t now_ns);
/* A member job leaves without an ack (dropped, expired, removed). Unlinks job. */
void batch_job_gone(struct engine *e, struct job *job);

/* ---- commands ---- */

/*
 * BATCH NEW: creates an open batch with id bid (the server makes it up)
 * from the JSON definition {"description","parent_bid","success","complete"}.
 * Returns 0, ENGINE_EEXIST when bid is taken, or ENGINE_EBADARG with the
 * reason in err (JOB_ERR_MAX bytes).
 */
int engine_batch_new(struct engine *e, const char *bid, const char *json, size_t len,
                     int64_t now_ns, char *err);
/*
 * BATCH OPEN: reopens a committed batch to add jobs. 0, ENGINE_EBATCH_UNKNOWN,
 * or ENGINE_EBATCH_DONE when its complete callback already fired.
 */
int engine_batch_open(struct engine *e, const char *bid, int64_t now_ns);
/* BATCH COMMIT: closes it; callbacks may fire at once. 0 or ENGINE_EBATCH_UNKNOWN. */
int engine_batch_commit(struct engine *e, const char *bid, int64_t now_ns);

/* Appends a batch's JSON (BATCH STATUS, GET /api/v1/batches/{bid}) to out. */
void batch_render(const struct batch *b, struct sbuf *out);

/* Calls fn for batches offset .. offset+limit-1, newest first; returns how many there are. */
size_t engine_batch_list(struct engine *e, size_t offset, size_t limit,
                         void (*fn)(void *ctx, const struct batch *b), void *ctx);

/* ---- engine plumbing ---- */

/* Fires what became due while replaying or on drops; prunes old batches. From engine_tick. */
void batch_tick(struct engine *e, int64_t now_ns);
/* Applies REC_BATCH_NEW / REC_BATCH_STATE / REC_BATCH_DEL; 0 or -1 (undecodable). */
int batch_apply(struct engine *e, int type, struct rec_reader *r);
/* Snapshot: definitions (before the jobs), then states (after them). */
void batch_dump_defs(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len),
                     void *ctx);
void batch_dump_states(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len),
                       void *ctx);

#endif
