#include "common/timefmt.h"

#include <stdio.h>
#include <string.h>

#include "common/sbuf.h"

/* Howard Hinnant's civil-date algorithms (public domain descriptions). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int timefmt_parse(const char *s, size_t len, int64_t *out_ns, const char **why)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, mon, day, hour, min, sec;
    *why = "expected YYYY-MM-DDTHH:MM:SS";
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return -1;
    if (digits(s, 4, &year) || digits(s + 5, 2, &mon) || digits(s + 8, 2, &day) ||
        digits(s + 11, 2, &hour) || digits(s + 14, 2, &min) || digits(s + 17, 2, &sec))
        return -1;
    *why = "date or time out of range";
    if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 59)
        return -1;
    if (day > mdays[mon - 1] + (mon == 2 && is_leap(year)))
        return -1;

    size_t i = 19;
    int64_t frac_ns = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        size_t n = i - start;
        *why = "fraction of a second must have 1 to 9 digits";
        if (n < 1 || n > 9)
            return -1;
        for (size_t k = 0; k < 9; k++)
            frac_ns = frac_ns * 10 + (k < n ? s[start + k] - '0' : 0);
    }
    int64_t offset_s = 0;
    *why = "expected 'Z' or a +HH:MM offset";
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i < 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_s = (int64_t)oh * 3600 + om * 60;
        if (s[i] == '-')
            offset_s = -offset_s;
        i += 6;
    } else {
        return -1;
    }
    *why = "extra text after the time zone";
    if (i != len)
        return -1;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - offset_s;
    /* Nanoseconds in an int64 reach from 1677-09-21 to 2262-04-11. */
    *why = "time out of range (1678 to 2261)";
    if (secs >= 0) {
        if (secs > (INT64_MAX - frac_ns) / NS_PER_S)
            return -1;
        *out_ns = secs * NS_PER_S + frac_ns;
    } else {
        /* (secs + 1) * 1e9 cannot overflow here; then add the fraction minus one second. */
        if (secs < INT64_MIN / NS_PER_S - 1)
            return -1;
        int64_t base = (secs + 1) * NS_PER_S, add = frac_ns - NS_PER_S;
        if (base < INT64_MIN - add)
            return -1;
        *out_ns = base + add;
    }
    *why = NULL;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t timefmt_day(int64_t ns)
{
    return floor_div(ns, NS_PER_S * 86400);
}

void timefmt_day_string(int64_t day, char *out)
{
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (int)(y % 10000), m, d);
    memcpy(out, tmp, 10);
    out[10] = '\0';
}

/* Writes v (>= 0) as exactly width decimal digits, zero-padded. */
static void put_digits(char *out, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t timefmt_format(int64_t ns, char *out)
{
    int64_t secs = ns / NS_PER_S, frac = ns % NS_PER_S;
    if (frac < 0) { /* floor, without computing ns - frac (which overflows near INT64_MIN) */
        frac += NS_PER_S;
        secs -= 1;
    }
    int64_t day = floor_div(secs, 86400);
    int64_t sod = secs - day * 86400;
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    int yy = (int)y % 10000;
    int n;
    if (yy >= 0) { /* the common case by hand: printf dominated FETCH's cost */
        put_digits(out, yy, 4);
        out[4] = '-';
        put_digits(out + 5, m, 2);
        out[7] = '-';
        put_digits(out + 8, d, 2);
        out[10] = 'T';
        put_digits(out + 11, (int)(sod / 3600), 2);
        out[13] = ':';
        put_digits(out + 14, (int)(sod / 60 % 60), 2);
        out[16] = ':';
        put_digits(out + 17, (int)(sod % 60), 2);
        n = 19;
    } else {
        n = snprintf(out, TIMEFMT_MAX, "%04d-%02d-%02dT%02d:%02d:%02d", yy, m, d, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60));
    }
    if (frac) {
        char f[9];
        put_digits(f, (int)frac, 9);
        int k = 9;
        while (k > 0 && f[k - 1] == '0')
            k--;
        out[n++] = '.';
        memcpy(out + n, f, (size_t)k);
        n += k;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return (size_t)n;
}

void timefmt_add_json_field(struct sbuf *b, const char *key, int64_t ns)
{
    char ts[TIMEFMT_MAX + 4];
    size_t n = timefmt_format(ns, ts + 1);
    ts[0] = '"';
    ts[n + 1] = '"';
    sbuf_add(b, ",\"", 2);
    sbuf_adds(b, key);
    sbuf_add(b, "\":", 2);
    sbuf_add(b, ts, n + 2);
}
