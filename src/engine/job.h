/*
 * job: the job model shared by every backend: parsing and validating a
 * pushed job, normalising it (defaults), recording failures, and rendering
 * the JSON that FETCH returns.
 *
 * A job is parsed once, at PUSH. The client's JSON object is kept as text
 * ("body": its members without the outer braces) minus the fields the server
 * owns and rewrites (queue, retry, created_at, enqueued_at, failure); those
 * live as typed fields and are spliced back in by job_render(), so FETCH never
 * re-serialises the client's data. Unknown top-level fields are kept.
 *
 * Pure: no I/O, no clock reads (now is an argument). Single-threaded.
 */
#ifndef SPOOL_JOB_H
#define SPOOL_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "common/tset.h"

struct batch;

#define JOB_DEFAULT_RETRY 25
#define JOB_DEFAULT_RESERVE_S 1800
#define JOB_MIN_RESERVE_S 60
#define JOB_MAX_RESERVE_S 86400
#define JOB_MIN_JID_LEN 8
#define JOB_ERRTYPE_MAX 100
#define JOB_MESSAGE_MAX 1000
#define JOB_BACKTRACE_MAX 50
/* Failure counts saturate here; backoff delays stop growing at about 95 years. */
#define JOB_MAX_COUNT 1000000
#define JOB_MAX_BACKOFF_S INT64_C(3000000000)

enum job_state { JOB_NEW = 0, JOB_SCHEDULED, JOB_ENQUEUED, JOB_WORKING, JOB_RETRY, JOB_DEAD };

struct job_failure {
    int retry_count;
    int remaining;
    int64_t failed_at_ns; /* first failure */
    int64_t next_at_ns;   /* 0 when no retry is scheduled */
    char *errtype;
    char *message;
    char *backtrace; /* JSON array text, or NULL */
};

/* TRACK SET progress of a job (docs/features.md). */
struct job_track {
    int percent;          /* 0..100, or -1 when never given */
    char *desc;           /* or NULL */
    int64_t updated_at_ns;
};

/*
 * What only some jobs use: the enterprise-style options read from `custom`
 * at push (docs/features.md, carried by the journal's REC_ADD record), TRACK
 * progress and batch membership. Most jobs use none of it, so it lives
 * behind one pointer, allocated the first time a job needs a field of it;
 * a job without it reads as if every field were zero.
 */
struct job_extra {
    int64_t expires_at_ns;     /* discarded instead of fetched from then on; 0 = never */
    int64_t unique_until_ns;   /* lock expiry while the engine holds the lock, else 0 */
    char *unique_key;          /* jobtype, queue and args when unique_for_s > 0 */
    struct job_track *track;   /* TRACK SET progress, or NULL */
    struct batch *batch;       /* the batch custom.bid joined (engine/batch.h), or NULL */
    int unique_for_s;          /* > 0: unique job, lock held this long after push */
    int is_unique_until_start; /* lock released at FETCH instead of at ACK */
};

/*
 * Field order keeps the struct free of padding holes: every queued job pays
 * for each byte here (bench/job_memory.c measures it).
 */
struct job {
    char *jid;
    char *jobtype;
    char *queue;
    char *created_at;    /* as given, or set at push */
    char *body;          /* client members, no braces; may be "" */
    struct job_failure *failure;
    struct job_extra *extra; /* or NULL: read through job_extra(), write through job_extra_need() */
    int64_t at_ns;       /* scheduled time from 'at', 0 if none */
    int64_t enqueued_at_ns;
    int retry;           /* <0 dead on first failure, 0 discard, N retries */
    int reserve_for_s;   /* as given (0 = default) */

    /* Engine bookkeeping: where the job is. */
    enum job_state state;
    uint32_t body_len; /* beside state, in what was padding; the journal records it as 32 bits too */
    /*
     * A job is in one queue or one set, never both (the engine unlinks before
     * it links again), so the two kinds of links share their bytes.
     */
    union {
        struct {
            struct job *qprev, *qnext; /* queue FIFO links when ENQUEUED */
        };
        struct tset_node tnode; /* set membership when SCHEDULED/RETRY/DEAD/WORKING */
    };
    char *wid;                 /* reserving process when WORKING ("" for none) */
    int64_t reserved_at_ns;

    char strings[]; /* jid, jobtype, queue, created_at and body point in here (job_new) */
};

/* All zero: what job_extra() returns for a job without extras. */
extern const struct job_extra job_extra_none;

/* The job's rarely used fields, read-only (all zero when it has none). */
static inline const struct job_extra *job_extra(const struct job *job)
{
    return job->extra ? job->extra : &job_extra_none;
}

/* The job's rarely used fields for writing, allocated (zeroed) on first use; job_free frees them. */
struct job_extra *job_extra_need(struct job *job);

/* Validation errors carry Faktory's message text; see docs/protocol.md. */
#define JOB_ERR_MAX 512

/*
 * Parses and validates one job from json[0..len). On success returns 0 and
 * a new job in *out (caller owns; job_free). On failure returns -1 and a
 * message (without the "-ERR " prefix) in err. now_ns fills created_at.
 */
int job_parse(const char *json, size_t len, int64_t now_ns, struct job **out, char *err);

/*
 * Whether JSON text holds a \u0000 escape. The JSON library ends strings at
 * NUL, so such a job would be silently cut: it is refused instead.
 */
int job_json_has_nul(const char *json, size_t len);

/*
 * Where text resumes after the JSON value cJSON stopped at (end, inside
 * json[0..len)), skipping white space: len when nothing follows. cJSON
 * parses one value and ignores the rest, so a caller that would otherwise
 * drop a second value unread refuses the text when this is below len.
 */
size_t job_json_trailing_at(const char *json, size_t len, const char *end);

/* Same, for a job already parsed by cJSON (cron's job templates). */
struct cJSON;
int job_from_cjson(struct cJSON *obj, int64_t now_ns, struct job **out, char *err);

/*
 * A JSON array of jobs (PUSHB, POST /jobs with an array): the parsed array,
 * or NULL with err on bad JSON, a \u0000 escape or text after the array.
 * The caller checks that it is an array of objects.
 */
struct cJSON *job_parse_array(const char *json, size_t len, char *err);

/*
 * The job of the next element of such an array: item is that element, json
 * the array's text and *pos 0 before the first call. Like job_parse, the job
 * keeps the element's own text as its body instead of a re-printing. Call it
 * for every element, in order (it moves *pos along the text).
 */
int job_from_array_item(struct cJSON *item, const char *json, size_t len, size_t *pos,
                        int64_t now_ns, struct job **out, char *err);

/*
 * A new job holding copies of the given strings in its own allocation
 * (body[0..body_len) need not be NUL-terminated; body_len < 4 GiB).
 * Everything else is zero.
 * Caller owns; job_free.
 */
struct job *job_new(const char *jid, const char *jobtype, const char *queue, const char *created_at,
                    const char *body, size_t body_len);

void job_free(struct job *job);
/* Frees a progress record (NULL is fine). */
void job_track_free(struct job_track *t);
/* Frees a failure record (NULL is fine). */
void job_failure_free(struct job_failure *f);

/*
 * Builds the unique-lock key of a job from its jobtype, queue and args (as
 * cJSON prints them, which is also how the body stores them). Caller frees.
 */
char *job_unique_key_make(const char *jobtype, const char *queue, const struct cJSON *args);

/*
 * Sets the job's unique_key from its stored body (used when a job is
 * rebuilt from a record). Returns 0, or -1 when the body has no args.
 */
int job_unique_key_derive(struct job *job);

/*
 * Parses a duration: a number of seconds ("30", "1.5") or Go-style units
 * ("500ms", "30s", "5m", "1h30m"). Returns 0 and nanoseconds, or -1.
 */
int job_parse_duration(const char *s, int64_t *out_ns);

/* The reservation time FETCH applies: default 1800 s, at least 60 s. */
int job_reserve_s(const struct job *job);

/* Whether name is a valid queue name (^[a-zA-Z0-9._-]+$). */
int job_queue_name_ok(const char *name);

/*
 * Records a failure on the job (first failure starts the count, later ones
 * add one), with errtype/message trimmed, defaulted to "unknown" and
 * truncated. backtrace_json is a JSON array text or NULL; it is copied.
 */
void job_record_failure(struct job *job, const char *errtype, const char *message,
                        const char *backtrace_json, int64_t now_ns);

/* Appends the job's JSON (as FETCH returns it) to out. */
void job_render(const struct job *job, struct sbuf *out);

/* Which jobs MUTATE, JOBS and the API's set actions pick (Faktory's filter rules). */
struct mutate_filter {
    const char *const *jids; /* exact jids; when n_jids > 0 this alone is used */
    int n_jids;
    const char *glob;        /* fnmatch pattern over the job's JSON, or NULL */
    const char *jobtype;     /* exact jobtype, or NULL */
};

/*
 * Whether job matches f (NULL matches all): the jids alone if given, else
 * the glob over the job as job_render writes it (and the jobtype), else the
 * jobtype. scratch is a buffer for the rendering.
 */
int job_filter_match(const struct job *job, const struct mutate_filter *f, struct sbuf *scratch);

/* Where a failed job goes next (the policy every backend applies). */
enum job_fail_outcome {
    JOB_FAIL_RETRY,   /* retried at job->failure->next_at_ns */
    JOB_FAIL_DEAD,    /* retries spent (or retry < 0): the dead set */
    JOB_FAIL_DISCARD, /* retry 0: dropped */
};

/*
 * Records a failure (job_record_failure) and decides what follows: a retry
 * after Faktory's backoff (rand_0_29 is the jitter), the dead set, or
 * nothing. Sets failure->next_at_ns for a retry.
 */
enum job_fail_outcome job_fail(struct job *job, const char *errtype, const char *message,
                               const char *backtrace_json, int64_t now_ns, uint32_t rand_0_29);

/* Faktory's backoff: count^4 + 15 + rand * (count + 1) seconds, rand in [0, 29]. */
int64_t job_backoff_s(int retry_count, uint32_t rand_0_29);

#endif
