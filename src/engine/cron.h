/*
 * cron: periodic jobs (docs/cron.md). Two layers:
 *
 *  - schedules: a pure parser for 5-field cron expressions, macros (@daily,
 *    ...) and `@every <duration>`, and cron_next(), which finds the next
 *    fire time after an instant in a time zone;
 *  - the cron table: the entries of cron.json (parsed from its text), which
 *    cron_table_tick() fires into the engine, once per slot, recording each
 *    fired slot with engine_cron_mark() (journal record REC_CRON).
 *
 * Time zones: this module never reads the zone database. The caller passes
 * a `struct cron_zones` whose offset() answers "how far east of UTC is zone
 * Z at Unix second t" (the server's answers through the C library, tests
 * use a fake). "UTC" is answered here without calling it.
 *
 * DST rules: a wall time that does not exist (spring forward) fires once, at
 * the first instant after the gap; a wall time that occurs twice (fall
 * back) fires once, at its first occurrence.
 *
 * Pure: no I/O, no clock reads (every call takes now). Event-loop thread.
 */
#ifndef SPOOL_CRON_H
#define SPOOL_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

struct engine;
struct cJSON;

/* A parsed schedule. Bit i of a field set means value i matches. */
struct cron_schedule {
    uint64_t minutes; /* 0-59 */
    uint32_t hours;   /* 0-23 */
    uint32_t doms;    /* 1-31 */
    uint16_t months;  /* 1-12 */
    uint8_t dows;     /* 0-6, Sunday = 0 */
    uint8_t is_dom_restricted, is_dow_restricted; /* Vixie: both restricted = either matches */
    int64_t every_ns; /* @every: > 0, and the fields above are unused */
};

struct cron_zones {
    /*
     * Offset east of UTC, in seconds, of zone (an IANA name) at Unix second
     * unix_s. Returns 0, or -1 when the zone is unknown.
     */
    int (*offset)(void *ctx, const char *zone, int64_t unix_s, int32_t *off_s);
    void *ctx;
};

/*
 * Parses expr (5 fields, a macro or `@every <duration>`). Returns 0, or -1
 * with a message in err naming the field and the reason.
 */
int cron_parse(const char *expr, struct cron_schedule *out, char *err, size_t errlen);

/*
 * The first fire time (Unix ns) strictly after after_ns, in zone (NULL or
 * "UTC" = UTC). @every schedules fire at the multiples of their period
 * since the Unix epoch, whatever the zone. Returns -1 when the zone is
 * unknown or the schedule does not fire within 9 years.
 */
int64_t cron_next(const struct cron_schedule *s, const char *zone, const struct cron_zones *z,
                  int64_t after_ns);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
int64_t cron_days_from_civil(int64_t y, unsigned m, unsigned d);

/* One entry of cron.json. */
struct cron_entry {
    char *name, *schedule_text, *tz, *jobtype, *queue;
    struct cron_schedule schedule;
    int is_skip_missed;     /* "missed": "skip" */
    struct cJSON *job;      /* the job to push, without its jid */
    int64_t next_ns;        /* next fire time; -1 = never */
};

struct cron_table {
    struct cron_entry *entries;
    size_t n;
    struct cron_zones zones;
    uint32_t rng;           /* fresh jids */
};

#define CRON_ERR_MAX 640

/*
 * Parses the text of cron.json (a JSON array of entries; docs/cron.md).
 * Returns a new table (caller frees with cron_table_free), or NULL with a
 * message in err (CRON_ERR_MAX bytes) naming the entry and the field.
 * Zones are checked through zones->offset. The table does not fire until
 * cron_table_start().
 */
struct cron_table *cron_table_parse(const char *json, size_t len, const struct cron_zones *zones,
                                    uint32_t seed, char *err);
void cron_table_free(struct cron_table *t);

/*
 * Computes each entry's next fire time. At start (is_reload 0): an entry
 * that fired before (engine_cron_last) and missed slots while the server
 * was down fires once at the next tick (the latest missed slot), or skips
 * them with "missed": "skip". On a reload replacing prev (which may be
 * NULL): an entry of prev with the same name, schedule and tz keeps its
 * next time; any other entry starts counting from now (no catch-up).
 */
void cron_table_start(struct cron_table *t, struct engine *e, const struct cron_table *prev,
                      int is_reload, int64_t now_ns);

/*
 * Fires every entry whose next fire time is <= now: pushes one job (fresh
 * jid, custom.cron = the entry's name) for the latest due slot and records
 * the slot. Returns the earliest next fire time (INT64_MAX when none).
 */
int64_t cron_table_tick(struct cron_table *t, struct engine *e, int64_t now_ns);

/* Appends [{"name","schedule","tz","jobtype","queue","next_at","last_at"},...] to out. */
void cron_table_list_json(const struct cron_table *t, const struct engine *e, struct sbuf *out);

#endif
