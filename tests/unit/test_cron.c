/*
 * Unit tests for engine/cron (docs/cron.md): the schedule parser (every
 * syntax form, names, macros, @every, errors), next-fire computations
 * including the Vixie day-of-month/day-of-week rule and DST in
 * Europe/Berlin, and the cron table firing into an engine once per slot,
 * across a simulated restart (records replayed into a fresh engine), with
 * missed-slot catch-up or skip.
 *
 * The clock is a variable; the time zone is a fake implementing the EU
 * rules for Europe/Berlin (CET, CEST from the last Sunday of March to the
 * last Sunday of October, changing at 01:00 UTC). When the system has the
 * zone database, one test checks the fake against it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/sbuf.h"
#include "common/timefmt.h"
#include "engine/cron.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "rec_log.h"

#define MIN INT64_C(60)
#define HOUR INT64_C(3600)

/* Unix ns of a UTC wall time. */
static int64_t utc(int y, unsigned mo, unsigned d, int h, int mi, int s)
{
    return (cron_days_from_civil(y, mo, d) * 86400 + h * HOUR + mi * MIN + s) * NS_PER_S;
}

/* ---- the fake zone ---- */

static int64_t last_sunday_1utc(int64_t y, unsigned mo)
{
    int64_t last = cron_days_from_civil(y, mo, 31);
    int64_t dow = ((last % 7) + 11) % 7; /* 0 = Sunday */
    return ((last - dow) * 86400 + HOUR);
}

static int zone_calls;

static int fake_offset(void *ctx, const char *zone, int64_t t, int32_t *off)
{
    (void)ctx;
    zone_calls++;
    if (strcmp(zone, "Europe/Berlin") != 0)
        return -1;
    int64_t y = 1970 + t / (365 * 86400 + 21600); /* a guess, corrected below */
    while (cron_days_from_civil(y, 1, 1) * 86400 > t)
        y--;
    while (cron_days_from_civil(y + 1, 1, 1) * 86400 <= t)
        y++;
    *off = (t >= last_sunday_1utc(y, 3) && t < last_sunday_1utc(y, 10)) ? 7200 : 3600;
    return 0;
}

static const struct cron_zones zones = {fake_offset, NULL};

/* ---- helpers ---- */

static struct cron_schedule parse_ok(const char *expr)
{
    struct cron_schedule s;
    char err[300];
    if (cron_parse(expr, &s, err, sizeof err) != 0)
        fail_msg("\"%s\" should parse, but: %s", expr, err);
    return s;
}

static int64_t next_in(const char *expr, const char *tz, int64_t after)
{
    struct cron_schedule s = parse_ok(expr);
    return cron_next(&s, tz, &zones, after);
}

static void expect_time(int64_t got, int64_t want, const char *what)
{
    if (got != want) {
        char g[TIMEFMT_MAX] = "-1", w[TIMEFMT_MAX];
        if (got >= 0)
            timefmt_format(got, g);
        timefmt_format(want, w);
        fail_msg("%s: want %s, got %s", what, w, g);
    }
}

static void expect_error(const char *expr, const char *want_substring)
{
    struct cron_schedule s;
    char err[300] = "";
    if (cron_parse(expr, &s, err, sizeof err) == 0)
        fail_msg("\"%s\" should be refused", expr);
    if (!strstr(err, want_substring))
        fail_msg("\"%s\": the error should mention \"%s\", but says: %s", expr, want_substring, err);
}

/* ---- schedules ---- */

static void cron_field_forms(void **state)
{
    (void)state;
    int64_t t = utc(2026, 6, 10, 10, 7, 30); /* a Wednesday */
    expect_time(next_in("* * * * *", NULL, t), utc(2026, 6, 10, 10, 8, 0), "every minute");
    expect_time(next_in("*/15 * * * *", NULL, t), utc(2026, 6, 10, 10, 15, 0), "*/15");
    expect_time(next_in("1-10/2 * * * *", NULL, utc(2026, 6, 10, 10, 3, 0)),
                utc(2026, 6, 10, 10, 5, 0), "1-10/2 from :03");
    expect_time(next_in("1-10/2 * * * *", NULL, utc(2026, 6, 10, 10, 9, 0)),
                utc(2026, 6, 10, 11, 1, 0), "1-10/2 from :09 wraps to the next hour");
    expect_time(next_in("5,10,55 * * * *", NULL, t), utc(2026, 6, 10, 10, 10, 0), "list");
    expect_time(next_in("0 9-17 * * *", NULL, utc(2026, 6, 10, 17, 30, 0)),
                utc(2026, 6, 11, 9, 0, 0), "hour range wraps to the next day");
    expect_time(next_in("5/20 * * * *", NULL, utc(2026, 6, 10, 10, 26, 0)),
                utc(2026, 6, 10, 10, 45, 0), "5/20 means 5,25,45");
    expect_time(next_in("0 0 1 * *", NULL, t), utc(2026, 7, 1, 0, 0, 0), "first of the month");
    expect_time(next_in("0 12 * 2 *", NULL, t), utc(2027, 2, 1, 12, 0, 0), "month field wraps the year");
    expect_time(next_in("0 0 29 2 *", NULL, t), utc(2028, 2, 29, 0, 0, 0), "29 February: next leap year");
    expect_time(next_in("  0   0 * * *  ", NULL, t), utc(2026, 6, 11, 0, 0, 0), "extra blanks");
    /* Strictly after: an instant on a slot gives the next slot. */
    expect_time(next_in("*/15 * * * *", NULL, utc(2026, 6, 10, 10, 15, 0)),
                utc(2026, 6, 10, 10, 30, 0), "strictly after");
}

static void cron_names(void **state)
{
    (void)state;
    int64_t t = utc(2026, 6, 10, 10, 0, 0); /* Wednesday */
    expect_time(next_in("0 0 1 jan,JUL *", NULL, t), utc(2026, 7, 1, 0, 0, 0), "month names");
    expect_time(next_in("0 0 * Aug-Sep *", NULL, t), utc(2026, 8, 1, 0, 0, 0), "month name range");
    expect_time(next_in("0 8 * * MON-FRI", NULL, utc(2026, 6, 12, 9, 0, 0)),
                utc(2026, 6, 15, 8, 0, 0), "weekdays skip the weekend");
    expect_time(next_in("0 8 * * sun", NULL, t), utc(2026, 6, 14, 8, 0, 0), "sun");
    expect_time(next_in("0 8 * * 7", NULL, t), utc(2026, 6, 14, 8, 0, 0), "7 is Sunday too");
    expect_time(next_in("0 8 * * 0", NULL, t), utc(2026, 6, 14, 8, 0, 0), "0 is Sunday");
}

static void cron_vixie_dom_dow(void **state)
{
    (void)state;
    int64_t t = utc(2026, 6, 1, 12, 0, 0); /* Monday 1 June 2026 */
    /* Both restricted: the 13th OR any Friday. Friday 5 June comes first. */
    expect_time(next_in("0 0 13 * FRI", NULL, t), utc(2026, 6, 5, 0, 0, 0), "either matches: a Friday");
    expect_time(next_in("0 0 13 * FRI", NULL, utc(2026, 6, 12, 1, 0, 0)), utc(2026, 6, 13, 0, 0, 0),
                "either matches: the 13th (a Saturday)");
    expect_time(next_in("0 0 13 * *", NULL, t), utc(2026, 6, 13, 0, 0, 0), "dom only");
    expect_time(next_in("0 0 * * FRI", NULL, t), utc(2026, 6, 5, 0, 0, 0), "dow only");
    /* A field starting with '*' counts as unrestricted: both must match. */
    expect_time(next_in("0 0 */2 * FRI", NULL, t), utc(2026, 6, 5, 0, 0, 0), "odd day and Friday");
    expect_time(next_in("0 0 */2 * FRI", NULL, utc(2026, 6, 6, 0, 0, 0)), utc(2026, 6, 19, 0, 0, 0),
                "12 June is even: the next odd Friday is the 19th");
}

static void cron_macros(void **state)
{
    (void)state;
    int64_t t = utc(2026, 6, 10, 10, 7, 0);
    expect_time(next_in("@yearly", NULL, t), utc(2027, 1, 1, 0, 0, 0), "@yearly");
    expect_time(next_in("@annually", NULL, t), utc(2027, 1, 1, 0, 0, 0), "@annually");
    expect_time(next_in("@monthly", NULL, t), utc(2026, 7, 1, 0, 0, 0), "@monthly");
    expect_time(next_in("@weekly", NULL, t), utc(2026, 6, 14, 0, 0, 0), "@weekly (Sunday)");
    expect_time(next_in("@daily", NULL, t), utc(2026, 6, 11, 0, 0, 0), "@daily");
    expect_time(next_in("@midnight", NULL, t), utc(2026, 6, 11, 0, 0, 0), "@midnight");
    expect_time(next_in("@hourly", NULL, t), utc(2026, 6, 10, 11, 0, 0), "@hourly");
}

static void cron_every(void **state)
{
    (void)state;
    int64_t t = utc(2026, 6, 10, 10, 0, 10);
    expect_time(next_in("@every 30s", NULL, t), utc(2026, 6, 10, 10, 0, 30), "@every 30s is aligned");
    expect_time(next_in("@every 30s", "Europe/Berlin", t), utc(2026, 6, 10, 10, 0, 30),
                "@every ignores the zone");
    expect_time(next_in("@every 5m", NULL, t), utc(2026, 6, 10, 10, 5, 0), "@every 5m");
    expect_time(next_in("@every 1h30m", NULL, t), utc(2026, 6, 10, 10, 30, 0),
                "@every 1h30m (multiples of 90 min since the epoch)");
    expect_time(next_in("@every 1s", NULL, t + 1), t + NS_PER_S, "@every 1s");
    struct cron_schedule s = parse_ok("@every 90");
    assert_int_equal(s.every_ns, 90 * NS_PER_S);
    expect_error("@every 500ms", "at least 1s");
    expect_error("@every", "needs a duration");
    expect_error("@every soon", "not a duration");
}

static void cron_errors(void **state)
{
    (void)state;
    expect_error("61 * * * *", "minute field \"61\": 61 is out of range 0-59");
    expect_error("* 24 * * *", "hour field");
    expect_error("* * 0 * *", "day-of-month field");
    expect_error("* * * 13 *", "month field");
    expect_error("* * * * 8", "day-of-week field");
    expect_error("* * * FOO *", "month field \"FOO\"");
    expect_error("* * * * MONDAY", "day-of-week field");
    expect_error("*/0 * * * *", "step must be at least 1");
    expect_error("*/x * * * *", "step must be a number");
    expect_error("5-1 * * * *", "goes backwards");
    expect_error("1,,2 * * * *", "minute field");
    expect_error("* * * *", "has 4 fields; want 5");
    expect_error("* * * * * *", "more than 5 fields");
    expect_error("", "has 0 fields");
    expect_error("0 0 30 FEB *", "never fires");
    expect_error("@often", "unknown macro");
    /* Restricted dom with restricted dow is fine: the weekday can match. */
    parse_ok("0 0 30 2 MON");
}

static void cron_unknown_zone(void **state)
{
    (void)state;
    assert_int_equal(next_in("* * * * *", "Mars/Olympus", utc(2026, 1, 1, 0, 0, 0)), -1);
}

/* 2026-03-29: at 01:00 UTC Berlin goes from 02:00 CET to 03:00 CEST. */
static void cron_dst_spring_forward_berlin(void **state)
{
    (void)state;
    const char *B = "Europe/Berlin";
    int64_t slot = next_in("30 2 * * *", B, utc(2026, 3, 28, 12, 0, 0));
    expect_time(slot, utc(2026, 3, 29, 1, 0, 0), "02:30 does not exist: fires once at 03:00 CEST");
    expect_time(next_in("30 2 * * *", B, slot), utc(2026, 3, 30, 0, 30, 0),
                "then 02:30 CEST the next day (no second firing)");
    expect_time(next_in("30 2 * * *", B, utc(2026, 3, 27, 12, 0, 0)), utc(2026, 3, 28, 1, 30, 0),
                "the day before: 02:30 CET");
    /* Hourly: 02:00 is skipped and merges into 03:00, which fires once. */
    slot = next_in("0 * * * *", B, utc(2026, 3, 29, 0, 30, 0)); /* 01:30 CET */
    expect_time(slot, utc(2026, 3, 29, 1, 0, 0), "hourly: 03:00 CEST");
    expect_time(next_in("0 * * * *", B, slot), utc(2026, 3, 29, 2, 0, 0), "hourly: then 04:00 CEST");
    /* Every 15 minutes: 02:00..02:45 all land on 03:00, once. */
    slot = next_in("*/15 * * * *", B, utc(2026, 3, 29, 0, 50, 0)); /* 01:50 CET */
    expect_time(slot, utc(2026, 3, 29, 1, 0, 0), "*/15: 03:00 CEST");
    expect_time(next_in("*/15 * * * *", B, slot), utc(2026, 3, 29, 1, 15, 0), "*/15: then 03:15 CEST");
    /* A time outside the gap is unaffected. */
    expect_time(next_in("0 12 * * *", B, utc(2026, 3, 29, 0, 0, 0)), utc(2026, 3, 29, 10, 0, 0),
                "noon CEST is 10:00 UTC");
}

/* 2026-10-25: at 01:00 UTC Berlin goes from 03:00 CEST back to 02:00 CET. */
static void cron_dst_fall_back_berlin(void **state)
{
    (void)state;
    const char *B = "Europe/Berlin";
    int64_t slot = next_in("30 2 * * *", B, utc(2026, 10, 24, 12, 0, 0));
    expect_time(slot, utc(2026, 10, 25, 0, 30, 0), "02:30 occurs twice: the first (CEST)");
    expect_time(next_in("30 2 * * *", B, slot), utc(2026, 10, 26, 1, 30, 0),
                "not again at 02:30 CET; next is the 26th, 02:30 CET");
    /* Restarting between the two occurrences does not fire the repeat either. */
    expect_time(next_in("30 2 * * *", B, utc(2026, 10, 25, 1, 10, 0)), utc(2026, 10, 26, 1, 30, 0),
                "from 02:10 CET (second pass)");
    slot = next_in("0 * * * *", B, utc(2026, 10, 24, 23, 30, 0)); /* 01:30 CEST */
    expect_time(slot, utc(2026, 10, 25, 0, 0, 0), "hourly: 02:00 CEST");
    expect_time(next_in("0 * * * *", B, slot), utc(2026, 10, 25, 2, 0, 0),
                "hourly: 02:00 CET is a repeat; next is 03:00 CET");
    expect_time(next_in("*/30 * * * *", B, utc(2026, 10, 25, 0, 40, 0)), utc(2026, 10, 25, 2, 0, 0),
                "*/30 from 02:40 CEST: 02:00 and 02:30 CET are repeats");
}

/* The fake zone agrees with the system's zone database (skipped without it). */
static void cron_fake_zone_matches_system(void **state)
{
    (void)state;
    if (access("/usr/share/zoneinfo/Europe/Berlin", R_OK) != 0)
        skip();
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    int64_t from = utc(2026, 3, 29, 0, 0, 0) / NS_PER_S, to = utc(2026, 10, 26, 0, 0, 0) / NS_PER_S;
    for (int64_t t = from; t < to; t += 900) {
        if (t == from + 48 * 3600)
            t = to - 48 * 3600; /* just around the two changes */
        time_t tt = (time_t)t;
        struct tm tm;
        localtime_r(&tt, &tm);
        int32_t off;
        fake_offset(NULL, "Europe/Berlin", t, &off);
        if (off != tm.tm_gmtoff)
            fail_msg("offset at %lld: fake %d, system %ld", (long long)t, off, (long)tm.tm_gmtoff);
    }
    unsetenv("TZ");
    tzset();
}

/* ---- the cron table ---- */

static struct engine *new_engine(void)
{
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    cfg.seed = 7;
    struct engine_hooks hooks = {.ctx = &rec_log, .record = rec_log_hook};
    return engine_new(&cfg, &hooks);
}

/* A fresh engine rebuilt from every record so far (a restart). */
static struct engine *replay(void)
{
    struct engine *e = new_engine();
    char err[200];
    for (size_t i = 0; i < rec_log.n; i++)
        if (engine_apply(e, rec_log.recs[i], rec_log.lens[i], err, sizeof err) != 0)
            fail_msg("record %zu does not apply: %s", i, err);
    return e;
}

static struct cron_table *table(const char *json)
{
    char err[CRON_ERR_MAX];
    struct cron_table *t = cron_table_parse(json, strlen(json), &zones, 42, err);
    if (!t)
        fail_msg("the table should parse, but: %s", err);
    return t;
}

static size_t queued(struct engine *e, const char *q)
{
    struct queue *qu = engine_queue(e, q);
    return qu ? qu->size : 0;
}

static const char FIVE_MIN[] =
    "[{\"name\":\"five\",\"schedule\":\"*/5 * * * *\",\"jobtype\":\"Report\",\"args\":[1,\"a\"],"
    "\"queue\":\"cq\",\"retry\":3,\"custom\":{\"k\":\"v\"},\"expires_in\":\"1h\"}]";

static void cron_table_fires_once_per_slot(void **state)
{
    (void)state;
    struct engine *e = new_engine();
    struct cron_table *t = table(FIVE_MIN);
    int64_t now = utc(2026, 6, 10, 10, 0, 30);
    cron_table_start(t, e, NULL, 0, now);
    expect_time(t->entries[0].next_ns, utc(2026, 6, 10, 10, 5, 0), "a new entry's first slot");
    expect_time(cron_table_tick(t, e, now), utc(2026, 6, 10, 10, 5, 0), "tick returns the next fire time");
    assert_int_equal(queued(e, "cq"), 0);

    now = utc(2026, 6, 10, 10, 5, 0) + NS_PER_S / 5;
    cron_table_tick(t, e, now);
    assert_int_equal(queued(e, "cq"), 1);
    cron_table_tick(t, e, now + NS_PER_S / 2);
    assert_int_equal(queued(e, "cq"), 1); /* the same slot fires once */
    expect_time(engine_cron_last(e, "five"), utc(2026, 6, 10, 10, 5, 0), "the fired slot is recorded");

    /* The job carries the entry's fields and custom.cron. */
    struct job *job = engine_queue(e, "cq")->head;
    struct sbuf b;
    sbuf_init(&b);
    job_render(job, &b);
    cJSON *j = cJSON_ParseWithLength(b.buf, b.len);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "jobtype")->valuestring, "Report");
    assert_int_equal(cJSON_GetObjectItem(j, "retry")->valueint, 3);
    assert_int_equal(strlen(cJSON_GetObjectItem(j, "jid")->valuestring), 24);
    cJSON *custom = cJSON_GetObjectItem(j, "custom");
    assert_string_equal(cJSON_GetObjectItem(custom, "cron")->valuestring, "five");
    assert_string_equal(cJSON_GetObjectItem(custom, "k")->valuestring, "v");
    assert_true(job_extra(job)->expires_at_ns > now);
    cJSON_Delete(j);
    sbuf_release(&b);

    /* The listing. */
    sbuf_init(&b);
    cron_table_list_json(t, e, &b);
    sbuf_add(&b, "", 1);
    assert_non_null(strstr(b.buf, "\"name\":\"five\",\"schedule\":\"*/5 * * * *\",\"tz\":\"UTC\","
                                  "\"jobtype\":\"Report\",\"queue\":\"cq\",\"next_at\":\"2026-06-10T10:10:00Z\","
                                  "\"last_at\":\"2026-06-10T10:05:00Z\""));
    sbuf_release(&b);

    /* Restart: records replayed into a fresh engine; the slot does not fire again. */
    struct engine *e2 = replay();
    expect_time(engine_cron_last(e2, "five"), utc(2026, 6, 10, 10, 5, 0), "REC_CRON replayed");
    struct cron_table *t2 = table(FIVE_MIN);
    cron_table_start(t2, e2, NULL, 0, now + NS_PER_S);
    cron_table_tick(t2, e2, now + NS_PER_S);
    assert_int_equal(queued(e2, "cq"), 1);
    cron_table_tick(t2, e2, utc(2026, 6, 10, 10, 10, 1));
    assert_int_equal(queued(e2, "cq"), 2);

    /* A snapshot (engine_dump) keeps the slots too. */
    rec_log_clear();
    engine_dump(e2, rec_log_hook, NULL);
    struct engine *e3 = replay();
    expect_time(engine_cron_last(e3, "five"), utc(2026, 6, 10, 10, 10, 0), "REC_CRON in a snapshot");

    cron_table_free(t);
    cron_table_free(t2);
    engine_free(e);
    engine_free(e2);
    engine_free(e3);
    rec_log_clear();
}

static void cron_missed_slots_catch_up_or_skip(void **state)
{
    (void)state;
    static const char fire[] =
        "[{\"name\":\"a\",\"schedule\":\"*/5 * * * *\",\"jobtype\":\"A\",\"queue\":\"qa\"},"
        " {\"name\":\"b\",\"schedule\":\"*/5 * * * *\",\"jobtype\":\"B\",\"queue\":\"qb\",\"missed\":\"skip\"}]";
    struct engine *e = new_engine();
    engine_cron_mark(e, "a", utc(2026, 6, 10, 10, 5, 0));
    engine_cron_mark(e, "b", utc(2026, 6, 10, 10, 5, 0));
    /* Down from 10:05 until 13:02: 34 slots missed. */
    int64_t now = utc(2026, 6, 10, 13, 2, 0);
    struct engine *e2 = replay();
    struct cron_table *t = table(fire);
    cron_table_start(t, e2, NULL, 0, now);
    cron_table_tick(t, e2, now);
    assert_int_equal(queued(e2, "qa"), 1); /* once, not once per missed slot */
    expect_time(engine_cron_last(e2, "a"), utc(2026, 6, 10, 13, 0, 0), "catch-up fires the latest missed slot");
    assert_int_equal(queued(e2, "qb"), 0); /* "missed": "skip" */
    expect_time(t->entries[1].next_ns, utc(2026, 6, 10, 13, 5, 0), "a skipping entry waits for the next slot");
    cron_table_tick(t, e2, now + NS_PER_S);
    assert_int_equal(queued(e2, "qa"), 1);
    cron_table_tick(t, e2, utc(2026, 6, 10, 13, 5, 0));
    assert_int_equal(queued(e2, "qa"), 2);
    assert_int_equal(queued(e2, "qb"), 1);

    /* A long outage of a minutely entry is still cheap and fires once. */
    engine_cron_mark(e2, "m", utc(2026, 1, 1, 0, 0, 0));
    struct cron_table *tm =
        table("[{\"name\":\"m\",\"schedule\":\"* * * * *\",\"jobtype\":\"M\",\"queue\":\"qm\"}]");
    cron_table_start(tm, e2, NULL, 0, now);
    zone_calls = 0;
    cron_table_tick(tm, e2, now);
    assert_int_equal(queued(e2, "qm"), 1);
    expect_time(engine_cron_last(e2, "m"), utc(2026, 6, 10, 13, 2, 0), "the latest minute");

    cron_table_free(t);
    cron_table_free(tm);
    engine_free(e);
    engine_free(e2);
    rec_log_clear();
}

static void cron_reload_keeps_or_restarts_entries(void **state)
{
    (void)state;
    struct engine *e = new_engine();
    int64_t now = utc(2026, 6, 10, 10, 0, 30);
    struct cron_table *t = table(FIVE_MIN);
    cron_table_start(t, e, NULL, 0, now);
    t->entries[0].next_ns = utc(2026, 6, 10, 10, 5, 0);
    /* Same name, schedule and tz: the next time is kept. A changed entry starts from now. */
    struct cron_table *t2 = table(
        "[{\"name\":\"five\",\"schedule\":\"*/5 * * * *\",\"jobtype\":\"Other\"},"
        " {\"name\":\"new\",\"schedule\":\"0 * * * *\",\"jobtype\":\"N\"}]");
    engine_cron_mark(e, "new", utc(2026, 1, 1, 0, 0, 0)); /* fired long ago under an old config */
    cron_table_start(t2, e, t, 1, now);
    expect_time(t2->entries[0].next_ns, utc(2026, 6, 10, 10, 5, 0), "unchanged schedule keeps its time");
    expect_time(t2->entries[1].next_ns, utc(2026, 6, 10, 11, 0, 0), "no catch-up on reload");
    cron_table_tick(t2, e, now);
    assert_int_equal(queued(e, "default"), 0);
    cron_table_free(t);
    cron_table_free(t2);
    engine_free(e);
    rec_log_clear();
}

static void expect_table_error(const char *json, const char *want)
{
    char err[CRON_ERR_MAX] = "";
    struct cron_table *t = cron_table_parse(json, strlen(json), &zones, 1, err);
    if (t) {
        cron_table_free(t);
        fail_msg("%s should be refused", json);
    }
    if (!strstr(err, want))
        fail_msg("%s: the error should mention '%s', but says: %s", json, want, err);
}

static void cron_table_errors_name_entry_and_field(void **state)
{
    (void)state;
    expect_table_error("{", "not valid JSON");
    expect_table_error("{}", "must be a JSON array");
    expect_table_error("[] [{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\"}]",
                       "text after the JSON array (at byte 3)");
    expect_table_error("[],", "text after the JSON array (at byte 2)");
    expect_table_error("[{\"name\":\"n\\u0000x\",\"schedule\":\"@daily\",\"jobtype\":\"A\"}]",
                       "contains \\u0000");
    expect_table_error("[1]", "entry #1: must be a JSON object");
    expect_table_error("[{\"schedule\":\"@daily\",\"jobtype\":\"A\"}]", "entry #1: field \"name\": is required");
    expect_table_error("[{\"name\":\"a\",\"schedule\":\"@daily\",\"jobtype\":\"A\"},"
                       "{\"name\":\"a\",\"schedule\":\"@daily\",\"jobtype\":\"A\"}]",
                       "entry #2 (\"a\"): field \"name\": used by entry #1 too");
    expect_table_error("[{\"name\":\"n\",\"jobtype\":\"A\"}]", "entry #1 (\"n\"): field \"schedule\": is required");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"99 * * * *\",\"jobtype\":\"A\"}]",
                       "entry #1 (\"n\"): field \"schedule\": minute field \"99\": 99 is out of range");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\"}]", "field \"jobtype\": is required");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"tz\":\"Mars/Base\"}]",
                       "field \"tz\": unknown time zone \"Mars/Base\"");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"args\":{}}]",
                       "field \"args\": must be an array");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"retry\":\"3\"}]",
                       "field \"retry\": must be a number");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"missed\":\"later\"}]",
                       "field \"missed\": must be \"fire\" or \"skip\"");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"sched\":\"x\"}]",
                       "field \"sched\": unknown field");
    expect_table_error("[{\"name\":\"n\",\"schedule\":\"@daily\",\"jobtype\":\"A\",\"expires_in\":\"soon\"}]",
                       "entry #1 (\"n\"): the job is invalid: invalid custom.expires_in");
    /* A valid table with every field. */
    struct cron_table *t = table(
        "[{\"name\":\"all\",\"schedule\":\"0 3 * * MON\",\"jobtype\":\"A\",\"args\":[],\"queue\":\"q\","
        "\"retry\":0,\"reserve_for\":600,\"custom\":{},\"tz\":\"Europe/Berlin\",\"expires_in\":90,"
        "\"missed\":\"fire\"}]");
    assert_int_equal(t->n, 1);
    cron_table_free(t);
    t = table("[]");
    assert_int_equal(t->n, 0);
    cron_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cron_field_forms),
        cmocka_unit_test(cron_names),
        cmocka_unit_test(cron_vixie_dom_dow),
        cmocka_unit_test(cron_macros),
        cmocka_unit_test(cron_every),
        cmocka_unit_test(cron_errors),
        cmocka_unit_test(cron_unknown_zone),
        cmocka_unit_test(cron_dst_spring_forward_berlin),
        cmocka_unit_test(cron_dst_fall_back_berlin),
        cmocka_unit_test(cron_fake_zone_matches_system),
        cmocka_unit_test(cron_table_fires_once_per_slot),
        cmocka_unit_test(cron_missed_slots_catch_up_or_skip),
        cmocka_unit_test(cron_reload_keeps_or_restarts_entries),
        cmocka_unit_test(cron_table_errors_name_entry_and_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
