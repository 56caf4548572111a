/*
 * Unit tests for common/timefmt: Go RFC3339Nano parsing (what Faktory accepts
 * for 'at' and set scores), UTC formatting with a trimmed fraction, and day
 * numbers for the per-day counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/timefmt.h"

/* 2024-03-01T00:00:00Z: day 19783 since the epoch. */
#define T_2024_03_01 INT64_C(1709251200)

static int64_t parse_ok(const char *s)
{
    int64_t ns = -42;
    const char *why = "unset";
    int rc = timefmt_parse(s, strlen(s), &ns, &why);
    if (rc != 0)
        fail_msg("expected \"%s\" to parse, got: %s", s, why ? why : "(no reason)");
    assert_null(why);
    return ns;
}

static void parse_bad(const char *s)
{
    int64_t ns = -42;
    const char *why = NULL;
    int rc = timefmt_parse(s, strlen(s), &ns, &why);
    if (rc != -1)
        fail_msg("expected \"%s\" to be rejected, it parsed as %lld", s, (long long)ns);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
}

static void timefmt_parses_utc_z(void **state)
{
    assert_true(parse_ok("1970-01-01T00:00:00Z") == 0);
    assert_true(parse_ok("2024-03-01T00:00:00Z") == T_2024_03_01 * NS_PER_S);
    assert_true(parse_ok("2024-03-01T12:34:56Z") == (T_2024_03_01 + 45296) * NS_PER_S);
    assert_true(parse_ok("2000-01-01T00:00:00Z") == INT64_C(946684800) * NS_PER_S);
    assert_true(parse_ok("2023-12-31T23:59:59Z") == INT64_C(1704067199) * NS_PER_S);
}

static void timefmt_parses_offsets(void **state)
{
    int64_t utc = parse_ok("2024-03-01T12:00:00Z");
    /* +02:00 means local time is ahead of UTC: 12:00+02:00 is 10:00Z. */
    assert_true(parse_ok("2024-03-01T12:00:00+02:00") == utc - 2 * 3600 * NS_PER_S);
    assert_true(parse_ok("2024-03-01T12:00:00-05:30") == utc + (5 * 3600 + 30 * 60) * NS_PER_S);
    assert_true(parse_ok("2024-03-01T12:00:00+00:00") == utc);
    assert_true(parse_ok("2024-03-01T12:00:00-00:00") == utc);
    /* An offset can cross a day boundary. */
    assert_true(parse_ok("2024-03-01T01:00:00+03:00") == parse_ok("2024-02-29T22:00:00Z"));
    assert_true(parse_ok("2024-03-01T12:00:00.25+01:00") ==
                utc - 3600 * NS_PER_S + 250 * NS_PER_MS);
}

static void timefmt_parses_fraction_digits(void **state)
{
    static const struct {
        const char *s;
        int64_t frac_ns;
    } cases[] = {
        {"2024-03-01T00:00:00.5Z", 500000000},
        {"2024-03-01T00:00:00.12Z", 120000000},
        {"2024-03-01T00:00:00.123Z", 123000000},
        {"2024-03-01T00:00:00.1234Z", 123400000},
        {"2024-03-01T00:00:00.12345Z", 123450000},
        {"2024-03-01T00:00:00.123456Z", 123456000},
        {"2024-03-01T00:00:00.1234567Z", 123456700},
        {"2024-03-01T00:00:00.12345678Z", 123456780},
        {"2024-03-01T00:00:00.123456789Z", 123456789},
        {"2024-03-01T00:00:00.000000001Z", 1},
        {"2024-03-01T00:00:00.0Z", 0},
        {"2024-03-01T00:00:00.999999999Z", 999999999},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t ns = parse_ok(cases[i].s);
        if (ns != T_2024_03_01 * NS_PER_S + cases[i].frac_ns)
            fail_msg("%s: got fraction %lld ns, want %lld", cases[i].s,
                     (long long)(ns - T_2024_03_01 * NS_PER_S), (long long)cases[i].frac_ns);
    }
}

static void timefmt_leap_years(void **state)
{
    parse_ok("2024-02-29T00:00:00Z");
    parse_ok("2000-02-29T00:00:00Z");
    parse_bad("2023-02-29T00:00:00Z");
    parse_bad("1900-02-29T00:00:00Z");
    assert_true(parse_ok("2024-03-01T00:00:00Z") - parse_ok("2024-02-28T00:00:00Z") ==
                2 * 86400 * NS_PER_S);
    assert_true(parse_ok("2023-03-01T00:00:00Z") - parse_ok("2023-02-28T00:00:00Z") ==
                86400 * NS_PER_S);
}

static void timefmt_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "2024-03-01",
        "2024-03-01 12:00:00Z",          /* space separator */
        "2024-03-01t12:00:00Z",          /* lower-case t */
        "2024-03-01T12:00:00",           /* no zone */
        "2024-03-01T12:00:00z",          /* lower-case z */
        "2024-03-01T12:00:00+0100",      /* offset without colon */
        "2024-03-01T12:00:00+01",        /* short offset */
        "2024-03-01T12:00:00+01:00:00",  /* seconds in offset */
        "2024-03-01T12:00:00+24:00",     /* offset hour out of range */
        "2024-02-30T12:00:00Z",          /* Feb 30 */
        "2024-04-31T12:00:00Z",          /* Apr 31 */
        "2024-13-01T12:00:00Z",          /* month 13 */
        "2024-00-01T12:00:00Z",          /* month 0 */
        "2024-03-00T12:00:00Z",          /* day 0 */
        "2024-03-01T24:00:00Z",          /* hour 24 */
        "2024-03-01T12:60:00Z",          /* minute 60 */
        "2024-03-01T12:00:60Z",          /* second 60 */
        "2024-03-01T12:00:00.1234567891Z", /* 10 fraction digits */
        "2024-03-01T12:00:00.Z",         /* empty fraction */
        "2024-03-01T12:00:00,5Z",        /* comma fraction */
        "2024-03-01T12:00:00Zjunk",      /* trailing text */
        "2024-03-01T12:00:00Z ",         /* trailing space */
        " 2024-03-01T12:00:00Z",         /* leading space */
        "2024-3-01T12:00:00Z",           /* one-digit month */
        "2024-03-01T2:00:00Z",           /* one-digit hour */
        "20x4-03-01T12:00:00Z",          /* letter in year */
        "2024/03/01T12:00:00Z",
        "+2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00+01:0x",
        "2024-03-01T12:00:00-",
        "tomorrow",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        parse_bad(bad[i]);
}

static void timefmt_parse_respects_length(void **state)
{
    /* The parser reads s[0..len) only: a valid prefix is a valid timestamp. */
    const char *s = "2024-03-01T00:00:00Z trailing";
    int64_t ns = 0;
    const char *why = "unset";
    assert_int_equal(timefmt_parse(s, 20, &ns, &why), 0);
    assert_null(why);
    assert_true(ns == T_2024_03_01 * NS_PER_S);
    /* Cutting the zone off makes it invalid. */
    assert_int_equal(timefmt_parse(s, 19, &ns, &why), -1);
    assert_non_null(why);
    /* Cutting inside a fraction without a zone is invalid too. */
    const char *f = "2024-03-01T00:00:00.123Z";
    assert_int_equal(timefmt_parse(f, 22, &ns, &why), -1);
}

static void timefmt_parses_pre_1970(void **state)
{
    assert_true(parse_ok("1969-12-31T23:59:59Z") == -NS_PER_S);
    assert_true(parse_ok("1969-12-31T23:59:59.5Z") == -500 * NS_PER_MS);
    assert_true(parse_ok("1969-12-31T23:59:59.999999999Z") == -1);
    assert_true(parse_ok("1900-01-01T00:00:00Z") == INT64_C(-2208988800) * NS_PER_S);
    assert_true(parse_ok("1970-01-01T01:00:00+02:00") == -3600 * NS_PER_S);
}

/*
 * Valid RFC 3339 times outside what int64 nanoseconds hold (1677-09-21 to
 * 2262-04-11) are refused with a reason, never wrapped around.
 */
static void timefmt_far_future_does_not_wrap(void **state)
{
    int64_t near = parse_ok("2262-01-01T00:00:00Z");
    static const char *const far[] = {"2300-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
                                      "0001-01-01T00:00:00Z"};
    for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
        int64_t ns = 0;
        const char *why = NULL;
        if (timefmt_parse(far[i], strlen(far[i]), &ns, &why) != 0) {
            assert_non_null(why); /* rejected: fine */
            continue;
        }
        /* Accepted: then it must at least not wrap around. */
        int is_past = far[i][0] == '0';
        if (is_past ? ns > parse_ok("1900-01-01T00:00:00Z") : ns < near)
            fail_msg("\"%s\" wrapped to %lld ns", far[i], (long long)ns);
    }
}

static const char *fmt(int64_t ns, char *buf)
{
    size_t n = timefmt_format(ns, buf);
    assert_int_equal(n, strlen(buf));
    assert_true(n < TIMEFMT_MAX);
    return buf;
}

static void timefmt_formats_utc_trimmed(void **state)
{
    char b[TIMEFMT_MAX];
    assert_string_equal(fmt(0, b), "1970-01-01T00:00:00Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S, b), "2024-03-01T00:00:00Z");
    assert_string_equal(fmt((T_2024_03_01 + 45296) * NS_PER_S, b), "2024-03-01T12:34:56Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S + 500 * NS_PER_MS, b),
                        "2024-03-01T00:00:00.5Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S + 120 * NS_PER_MS, b),
                        "2024-03-01T00:00:00.12Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S + 1, b), "2024-03-01T00:00:00.000000001Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S + 123456789, b),
                        "2024-03-01T00:00:00.123456789Z");
    assert_string_equal(fmt(T_2024_03_01 * NS_PER_S + 100000, b), "2024-03-01T00:00:00.0001Z");
    assert_string_equal(fmt(INT64_C(951782400) * NS_PER_S, b), "2000-02-29T00:00:00Z");
}

static void timefmt_formats_pre_1970(void **state)
{
    char b[TIMEFMT_MAX];
    assert_string_equal(fmt(-1, b), "1969-12-31T23:59:59.999999999Z");
    assert_string_equal(fmt(-NS_PER_S, b), "1969-12-31T23:59:59Z");
    assert_string_equal(fmt(-500 * NS_PER_MS, b), "1969-12-31T23:59:59.5Z");
    assert_string_equal(fmt(-86400 * NS_PER_S, b), "1969-12-31T00:00:00Z");
    assert_string_equal(fmt(INT64_C(-2208988800) * NS_PER_S, b), "1900-01-01T00:00:00Z");
}

static void timefmt_formats_int64_max(void **state)
{
    char b[TIMEFMT_MAX];
    assert_string_equal(fmt(INT64_MAX, b), "2262-04-11T23:47:16.854775807Z");
    assert_true(parse_ok("2262-04-11T23:47:16.854775807Z") == INT64_MAX);
    /* The INT64_MIN end is in timefmt_int64_min_does_not_overflow. */
}

/* The very first representable nanoseconds format and parse without overflow. */
static void timefmt_int64_min_does_not_overflow(void **state)
{
    char b[TIMEFMT_MAX];
    assert_string_equal(fmt(INT64_MIN, b), "1677-09-21T00:12:43.145224192Z");
    assert_string_equal(fmt(INT64_MIN + 1, b), "1677-09-21T00:12:43.145224193Z");
    assert_true(parse_ok("1677-09-21T00:12:43.145224192Z") == INT64_MIN);
}

static void timefmt_round_trips(void **state)
{
    /* Deterministic LCG over 1900..2200, with every fraction length. */
    uint64_t x = 12345;
    char b[TIMEFMT_MAX];
    for (int i = 0; i < 20000; i++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        int64_t secs = (int64_t)(x >> 20) % (INT64_C(300) * 365 * 86400) - INT64_C(2208988800);
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        int64_t frac = (int64_t)((x >> 20) % 1000000000u);
        static const int64_t keep[] = {1, 10, 100, 1000, 1000000, 100000000, 1000000000};
        frac -= frac % keep[i % 7]; /* vary how many digits survive trimming */
        int64_t ns = secs * NS_PER_S + frac;
        fmt(ns, b);
        size_t len = strlen(b);
        assert_true(b[len - 1] == 'Z');
        if (strchr(b, '.'))
            assert_true(b[len - 2] != '0'); /* trailing zeros trimmed */
        else
            assert_int_equal(len, 20);
        int64_t back = parse_ok(b);
        if (back != ns)
            fail_msg("%lld formatted as %s parsed back as %lld", (long long)ns, b, (long long)back);
    }
}

static void timefmt_day_numbers(void **state)
{
    assert_true(timefmt_day(0) == 0);
    assert_true(timefmt_day(86400 * NS_PER_S - 1) == 0);
    assert_true(timefmt_day(86400 * NS_PER_S) == 1);
    assert_true(timefmt_day(-1) == -1);
    assert_true(timefmt_day(-86400 * NS_PER_S) == -1);
    assert_true(timefmt_day(-86400 * NS_PER_S - 1) == -2);
    assert_true(timefmt_day(T_2024_03_01 * NS_PER_S + 45296 * NS_PER_S) == 19783);
    assert_true(timefmt_day(parse_ok("2024-03-01T23:30:00-01:00")) == 19784);

    char d[16];
    timefmt_day_string(0, d);
    assert_string_equal(d, "1970-01-01");
    timefmt_day_string(-1, d);
    assert_string_equal(d, "1969-12-31");
    timefmt_day_string(19783, d);
    assert_string_equal(d, "2024-03-01");
    timefmt_day_string(19782, d);
    assert_string_equal(d, "2024-02-29");
    timefmt_day_string(11016, d);
    assert_string_equal(d, "2000-02-29");
    timefmt_day_string(10956, d);
    assert_string_equal(d, "1999-12-31");
    /* Every day string parses back to the start of that day. */
    for (int64_t day = -800; day < 30000; day += 7) {
        char ts[32];
        timefmt_day_string(day, d);
        assert_int_equal(strlen(d), 10);
        memcpy(ts, d, 10);
        memcpy(ts + 10, "T00:00:00Z", 11);
        assert_true(parse_ok(ts) == day * 86400 * NS_PER_S);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timefmt_parses_utc_z),
        cmocka_unit_test(timefmt_parses_offsets),
        cmocka_unit_test(timefmt_parses_fraction_digits),
        cmocka_unit_test(timefmt_leap_years),
        cmocka_unit_test(timefmt_rejects_malformed),
        cmocka_unit_test(timefmt_parse_respects_length),
        cmocka_unit_test(timefmt_parses_pre_1970),
        cmocka_unit_test(timefmt_formats_utc_trimmed),
        cmocka_unit_test(timefmt_formats_pre_1970),
        cmocka_unit_test(timefmt_formats_int64_max),
        cmocka_unit_test(timefmt_round_trips),
        cmocka_unit_test(timefmt_day_numbers),
        /* Known bugs last: under UBSan the overflow aborts the process. */
        cmocka_unit_test(timefmt_far_future_does_not_wrap),
        cmocka_unit_test(timefmt_int64_min_does_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
