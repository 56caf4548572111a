/*
 * record: the engine's change records, as the journal and snapshots store
 * them. The engine emits one record per change (engine_hooks.record) and
 * rebuilds its state from records at start (engine_apply). A snapshot is a
 * sequence of the same records describing the whole state.
 *
 * A record is a type byte followed by fields in little-endian binary:
 * integers are fixed width, strings are a u32 length then the bytes (length
 * 0xFFFFFFFF for "none"). The framing (length, CRC) belongs to the journal.
 *
 * Changing the format safely: never change the meaning of an existing type.
 * Add a new type (or a new REC_VERSION in the snapshot header), keep the old
 * decoder, and have the encoder write only the new form.
 *
 * Pure; no I/O.
 */
#ifndef SPOOL_RECORD_H
#define SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "engine/job.h"

enum record_type {
    REC_ADD = 1,      /* a new job with its placement */
    REC_PLACE = 2,    /* a job moved (reserved, promoted, requeued, killed) */
    REC_FAIL = 3,     /* a job failed: new failure data, then its placement (or gone) */
    REC_DEL = 4,      /* a job left the server (acked, discarded, dropped) */
    REC_QUEUE = 5,    /* queue paused, resumed or removed */
    REC_FLUSH = 6,    /* everything dropped */
    REC_COUNTERS = 7, /* absolute counters and per-day history (snapshots) */
    REC_TRACK = 8,    /* a job's TRACK SET progress (percent, desc, time) */
    REC_CRON = 9,     /* a cron entry fired a slot (name, slot time); docs/cron.md */
    /*
     * Batches (engine/batch.h), added after types 1..9 without changing them:
     * REC_BATCH_NEW: bid, parent_bid (or none), description (or none),
     *   created_at (i64), success callback JSON (or none), complete callback
     *   JSON (or none).
     * REC_BATCH_STATE: bid, committed (u8), total, pending, failed (i64 each),
     *   complete and success callback states (u8 each: 0, 1, 2), updated_at
     *   (i64). Absolute values: written at COMMIT, OPEN, each fired callback
     *   and in snapshots after the jobs.
     * REC_BATCH_DEL: bid (a batch pruned).
     * Job counts between them come from the jobs' own records (batch.h).
     */
    REC_BATCH_NEW = 10,
    REC_BATCH_STATE = 11,
    REC_BATCH_DEL = 12,
};

enum record_queue_op { RECQ_PAUSE = 1, RECQ_RESUME = 2, RECQ_REMOVE = 3, RECQ_CREATE = 4 };
/*
 * Why a job left: DEAD_DROPPED counts in dead_dropped (age or the dead set's
 * cap); EXPIRED counts in expired_jobs (custom.expires_at passed before a
 * FETCH could take it).
 */
enum record_del_reason {
    RECDEL_DROPPED = 0,
    RECDEL_ACKED = 1,
    RECDEL_DEAD_DROPPED = 2,
    RECDEL_EXPIRED = 3,
};

/* Where a job is: its state and the fields that go with it. */
struct placement {
    enum job_state state; /* JOB_NEW = nowhere (for REC_FAIL: discarded) */
    int64_t score_ns;     /* set score: at, next retry, dead expiry, reservation expiry */
    int64_t enqueued_at_ns;
    int64_t reserved_at_ns;
    const char *wid;      /* WORKING: reserving process */
};

/* A byte reader over one record. */
struct rec_reader {
    const unsigned char *p, *end;
    int is_bad;
};

void rec_put_u8(struct sbuf *b, uint8_t v);
void rec_put_u32(struct sbuf *b, uint32_t v);
void rec_put_i64(struct sbuf *b, int64_t v);
/* s may be NULL ("none"). */
void rec_put_str(struct sbuf *b, const char *s, size_t len);
void rec_put_cstr(struct sbuf *b, const char *s);

void rec_reader_init(struct rec_reader *r, const void *data, size_t len);
uint8_t rec_get_u8(struct rec_reader *r);
uint32_t rec_get_u32(struct rec_reader *r);
int64_t rec_get_i64(struct rec_reader *r);
/* Returns a malloc'd NUL-terminated copy (NULL for "none" or on error); len may be NULL. */
char *rec_get_str(struct rec_reader *r, size_t *len);

/*
 * Encoders: each appends one whole record (type byte first) to b.
 *
 * REC_ADD ends with optional trailing fields, written since the features of
 * docs/features.md: expires_at (i64), unique_for_s (u32), unique_until_start
 * (u8), unique lock expiry (i64, 0 = no lock held). Records without them
 * decode as "no expiry, not unique".
 */
void rec_encode_add(struct sbuf *b, const struct job *job, const struct placement *pl);
void rec_encode_place(struct sbuf *b, const char *jid, const struct placement *pl);
/* is_expiry: the failure is an expired reservation (counted apart); written last. */
void rec_encode_fail(struct sbuf *b, const struct job *job, int64_t now_ns, int is_expiry,
                     const struct placement *pl);
void rec_encode_del(struct sbuf *b, const char *jid, enum record_del_reason why, int64_t now_ns);
void rec_encode_queue(struct sbuf *b, enum record_queue_op op, const char *name);
void rec_encode_flush(struct sbuf *b);
/* REC_TRACK: jid, percent (u32, -1 none), desc (string or none), updated_at (i64). */
void rec_encode_track(struct sbuf *b, const char *jid, const struct job_track *t);
/* REC_CRON: the entry's name (string) and the slot it fired (i64 Unix ns). */
void rec_encode_cron(struct sbuf *b, const char *name, int64_t slot_ns);

/* Field helpers shared by the engine's decoder. */
void rec_put_placement(struct sbuf *b, const struct placement *pl);
/* Reads a placement; pl->wid is malloc'd (caller frees). */
void rec_get_placement(struct rec_reader *r, struct placement *pl);
void rec_put_failure(struct sbuf *b, const struct job_failure *f);
/* Reads failure fields into a new job_failure (caller owns). */
struct job_failure *rec_get_failure(struct rec_reader *r);

#endif
