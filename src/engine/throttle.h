/*
 * throttle: per-queue limits on handing out jobs (docs/features.md, "Queue
 * throttles"), and the parser of throttles.json.
 *
 *  - concurrency: at most N jobs of the queue in flight (reserved by FETCH
 *    and not yet ACKed, FAILed or expired), across all workers;
 *  - rate: at most `limit` reservations in any window of `period`. The
 *    window slides: the times of the last `limit` reservations are kept
 *    (oldest first), and one more is allowed when fewer than `limit` of them
 *    lie in (now - period, now]. A reservation made at t stops counting at
 *    exactly t + period.
 *
 * Throttles are configuration, not journaled state. The engine owns one
 * struct throttle per configured queue (engine_throttle_set) and keeps its
 * in-flight count as jobs enter and leave the working set.
 *
 * Pure: no I/O, no clock reads; time is an argument. Event-loop thread.
 */
#ifndef SPOOL_THROTTLE_H
#define SPOOL_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

#define THROTTLE_MAX_CONCURRENCY 1000000
#define THROTTLE_MAX_RATE 1000000
#define THROTTLE_MIN_PERIOD_NS INT64_C(1000000)                  /* 1 ms */
#define THROTTLE_MAX_PERIOD_NS (INT64_C(7) * 86400 * 1000000000) /* 7 days */
#define THROTTLE_ERR_MAX 512

struct throttle_limits {
    uint32_t concurrency;   /* 0 = no concurrency limit */
    uint32_t rate_limit;    /* 0 = no rate limit */
    int64_t rate_period_ns; /* > 0 when rate_limit > 0 */
};

/* One queue's entry of throttles.json. */
struct throttle_spec {
    char *queue;
    struct throttle_limits limits;
};

/* The parsed file: entries sorted by queue name. */
struct throttle_config {
    struct throttle_spec *specs;
    size_t n;
};

/*
 * Parses the text of throttles.json: an object mapping queue names to
 * {"concurrency": N, "rate": {"limit": L, "period": P}} (either or both;
 * P is seconds as a number or a duration string "500ms", "30s", "1m",
 * "1h"). Unknown fields are refused. Returns 0 and fills out (release with
 * throttle_config_release), or -1 with a message in err (THROTTLE_ERR_MAX
 * bytes) naming the queue and the field.
 */
int throttle_config_parse(const char *json, size_t len, struct throttle_config *out, char *err);
void throttle_config_release(struct throttle_config *c);
/* The limits for queue, or NULL. */
const struct throttle_limits *throttle_config_find(const struct throttle_config *c,
                                                   const char *queue);

/* A queue's throttle state. */
struct throttle {
    char *queue;
    struct throttle_limits limits;
    size_t in_flight; /* jobs of the queue in the working set */
    int64_t *times;   /* ring of reservation times, oldest at head */
    size_t cap, head, count;
};

struct throttle *throttle_new(const char *queue, const struct throttle_limits *limits);
void throttle_free(struct throttle *t);

/*
 * New limits. The reservation times are kept (a lower limit keeps the
 * newest ones), so a reload does not reset the rate window.
 */
void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits);

/* Whether a reservation now would break the rate limit (drops times that left the window). */
int throttle_rate_is_full(struct throttle *t, int64_t now_ns);
/* Whether the queue may hand out no job now: concurrency reached or rate window full. */
int throttle_is_full(struct throttle *t, int64_t now_ns);

/* A job of the queue was reserved at now_ns: one more in flight, one more in the window. */
void throttle_note_reserved(struct throttle *t, int64_t now_ns);
/* Adds a past reservation time to the window (rebuilding it); times must come in order. */
void throttle_note_past(struct throttle *t, int64_t at_ns, int64_t now_ns);

/* When the rate window next lets a job through, if it is full now; INT64_MAX otherwise. */
int64_t throttle_rate_opens_at(struct throttle *t, int64_t now_ns);

/*
 * Appends {"concurrency":N|null,"rate_limit":L|null,"rate_period_s":P|null}
 * without the closing brace, so callers can add fields.
 */
void throttle_limits_json_open(const struct throttle_limits *l, struct sbuf *out);

#endif
