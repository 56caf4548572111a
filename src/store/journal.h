/*
 * journal: makes engine changes durable. Records are appended by the
 * event-loop thread to an in-memory batch; a writer thread writes each batch
 * to the current segment file and, under the `always` policy, fsyncs it
 * before reporting the batch durable (group commit: one fsync covers every
 * record that arrived while the previous one ran).
 *
 * On disk (all in the data directory):
 *   journal-<N>.log      segments: a 16-byte header, then frames
 *   snapshot-<N>.snap    the whole state as of the start of segment N
 * A frame is [u32 length][u32 CRC-32C of the payload][payload]; a payload is
 * one engine record (engine/record.h), its first byte the record type.
 * Recovery loads the newest snapshot, then replays segments N, N+1, ...
 * Changing the format: bump JOURNAL_VERSION, keep reading the old version.
 *
 * Threads: journal_append/rotate/durable/close from the event-loop thread;
 * the writer thread is private. notify() runs on the writer thread.
 */
#ifndef SPOOL_JOURNAL_H
#define SPOOL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/fileio.h"

#define JOURNAL_VERSION 1
#define JOURNAL_HEADER_SIZE 16
#define JOURNAL_FRAME_HEADER 8
/* A single record larger than this is refused (jobs are capped far below). */
#define JOURNAL_MAX_RECORD (64u << 20)

enum fsync_policy { FSYNC_ALWAYS = 0, FSYNC_EVERYSEC, FSYNC_NEVER };

/* Parses "always", "everysec" or "never"; 0 or -1. */
int journal_parse_policy(const char *s, enum fsync_policy *out);
const char *journal_policy_name(enum fsync_policy p);

struct journal;

/*
 * Histogram buckets of journal_stats (for /metrics). Bucket i of the fsync
 * histogram counts fsyncs that took at most JOURNAL_FSYNC_HIST_BASE_NS << i
 * (50 us, 100 us, ... 1.6 s); bucket i of the batch histogram counts batches
 * of at most 1 << i records (1 ... 8192). The last bucket of each is +Inf.
 * Counts are per bucket, not cumulative.
 */
#define JOURNAL_FSYNC_HIST_BASE_NS 50000
#define JOURNAL_FSYNC_HIST_BUCKETS 17
#define JOURNAL_BATCH_HIST_BUCKETS 15

struct journal_stats {
    uint64_t batches;        /* writes of a batch */
    uint64_t fsyncs;
    uint64_t records;        /* records made durable */
    uint64_t bytes;          /* bytes appended since open */
    uint64_t fsync_ns_total; /* time spent in fsync */
    uint64_t fsync_ns_max;
    uint64_t fsync_hist[JOURNAL_FSYNC_HIST_BUCKETS];
    uint64_t batch_hist[JOURNAL_BATCH_HIST_BUCKETS]; /* batches that made records durable */
};

/*
 * Starts a new segment numbered `segment` in dir and the writer thread.
 * notify(ctx) is called from the writer thread whenever durable progress or
 * a failure happens. Returns NULL with a message in err on failure.
 */
struct journal *journal_open(const char *dir, uint64_t segment, enum fsync_policy policy,
                             size_t segment_max_bytes, const struct fileio *io,
                             void (*notify)(void *ctx), void *ctx, char *err, size_t errlen);

/* Appends one record; returns its sequence number (1, 2, ...). Never blocks on I/O. */
uint64_t journal_append(struct journal *j, const void *rec, size_t len);
/* Every record with a sequence <= the result is durable under the policy. */
uint64_t journal_durable(struct journal *j);
uint64_t journal_last_seq(struct journal *j);
/* Non-zero once a write or fsync failed; err gets the reason. */
int journal_failed(struct journal *j, char *err, size_t errlen);
/* Bytes appended to segments since the last rotation for a snapshot. */
uint64_t journal_bytes_since_rotation(struct journal *j);
void journal_get_stats(struct journal *j, struct journal_stats *out);

/*
 * Ends the current segment after the records appended so far; later records
 * go to a new segment. Returns the new segment's number: a snapshot of the
 * state as of now covers every segment below it. Returns 0 when another
 * rotation is still pending (try again later).
 */
uint64_t journal_rotate(struct journal *j);

/*
 * Writes and syncs what is pending, stops the writer, closes the file.
 * Returns the last durable sequence (every record, unless the journal failed).
 */
uint64_t journal_close(struct journal *j);

/* Deletes segments and snapshots older than snapshot `segment` (after it is durable). */
void journal_prune(const char *dir, const struct fileio *io, uint64_t segment);

/* ---- snapshots ---- */

struct snapshot_writer;
/* Starts snapshot-<segment>.snap.tmp in dir. NULL with errno on failure. */
struct snapshot_writer *snapshot_begin(const char *dir, uint64_t segment, const struct fileio *io);
/* Adds one record (buffered). */
void snapshot_add(struct snapshot_writer *w, const void *rec, size_t len);
/* Ends, fsyncs, renames into place, fsyncs the directory. 0, or -1 with errno. Frees w. */
int snapshot_commit(struct snapshot_writer *w);

/* ---- recovery ---- */

typedef int (*journal_apply_fn)(void *ctx, const void *rec, size_t len, char *err, size_t errlen);

struct recovery {
    uint64_t snapshot;        /* segment number of the snapshot loaded, 0 if none */
    uint64_t snapshot_records;
    uint64_t segments;        /* segments replayed */
    uint64_t records;         /* journal records replayed */
    uint64_t next_segment;    /* the number a new journal should start with */
    int truncated;            /* a torn tail was cut off */
    int repaired;             /* corruption was cut off (repair mode) */
    char message[8448];       /* what went wrong, or what was repaired */
};

/*
 * Loads the newest snapshot and replays the journal through apply. A torn
 * last record is truncated (and said in message); a corrupt record anywhere
 * else fails with the file and offset in message, unless repair is set: then
 * the journal is cut at the corruption. With check_only nothing on disk is
 * changed. Returns 0 or -1.
 */
int journal_recover(const char *dir, const struct fileio *io, journal_apply_fn apply, void *ctx,
                    int repair, int check_only, struct recovery *out);

#endif
