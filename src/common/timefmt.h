/*
 * timefmt: RFC 3339 timestamps as FWP uses them, and Unix nanoseconds.
 * Pure functions; no clock reads, no time zone database.
 *
 * Parsing accepts exactly Go's RFC3339Nano layout, which Faktory uses:
 * YYYY-MM-DDTHH:MM:SS, an optional fraction of 1-9 digits, then 'Z' or
 * +HH:MM / -HH:MM. Formatting always writes UTC with 'Z' and the fraction
 * with trailing zeros trimmed (no fraction when it is zero).
 */
#ifndef SPOOL_TIMEFMT_H
#define SPOOL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

/* Longest string timefmt_format writes, with its NUL. */
#define TIMEFMT_MAX 40

/*
 * Parses s[0..len) into Unix nanoseconds. Returns 0, or -1 with a short
 * reason in *why (a static string) when s is not a valid timestamp.
 */
int timefmt_parse(const char *s, size_t len, int64_t *out_ns, const char **why);

/* Writes ns as RFC 3339 UTC into out (TIMEFMT_MAX bytes); returns the length. */
size_t timefmt_format(int64_t ns, char *out);

/* Appends `,"key":"<RFC 3339 of ns>"` to b: one field of a JSON object being built. */
void timefmt_add_json_field(struct sbuf *b, const char *key, int64_t ns);

/* Days since 1970-01-01 of the UTC day containing ns. */
int64_t timefmt_day(int64_t ns);

/* Writes the day number as YYYY-MM-DD into out (at least 11 bytes). */
void timefmt_day_string(int64_t day, char *out);

#endif
