/*
 * fuzz_cron: the cron expression parser and next-time search, and the
 * cron.json table parser (engine/cron.c). The first byte picks the mode:
 * even, the rest is one schedule expression; odd, the rest is the text of
 * cron.json, whose entries are then started and ticked into an engine.
 *
 * Zones come from a fake with a DST rule ("Europe/Berlin": +1 h in winter,
 * +2 h from the last Sunday of March to the last Sunday of October, 01:00
 * UTC) and one fixed zone, so the DST gap and overlap paths run without the
 * system's zone database.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cron.h"
#include "engine/engine.h"

#define NOW_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define NS_S INT64_C(1000000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t last_sunday_0100_utc(int64_t y, unsigned month)
{
    int64_t last = cron_days_from_civil(y, month, 31);
    int64_t dow = ((last % 7) + 11) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
    return (last - dow) * 86400 + 3600;
}

static int fake_offset(void *ctx, const char *zone, int64_t t, int32_t *off)
{
    (void)ctx;
    if (strcmp(zone, "Etc/GMT-3") == 0) {
        *off = 3 * 3600;
        return 0;
    }
    if (strcmp(zone, "Europe/Berlin") != 0)
        return -1;
    if (t < -(INT64_C(1) << 40) || t > INT64_C(1) << 40) /* far outside any sane date */
        return -1;
    int64_t y = 1970 + t / 31556952;
    while (cron_days_from_civil(y, 1, 1) * 86400 > t)
        y--;
    while (cron_days_from_civil(y + 1, 1, 1) * 86400 <= t)
        y++;
    *off = t >= last_sunday_0100_utc(y, 3) && t < last_sunday_0100_utc(y, 10) ? 7200 : 3600;
    return 0;
}

static const struct cron_zones zones = {fake_offset, NULL};

static void fuzz_expression(const char *expr)
{
    struct cron_schedule s;
    char err[256];
    err[0] = '\0';
    if (cron_parse(expr, &s, err, sizeof err) != 0) {
        if (!err[0]) {
            fprintf(stderr, "fuzz_cron: a refused expression must come with a message\n");
            abort();
        }
        return;
    }
    static const char *const names[] = {NULL, "UTC", "Europe/Berlin", "Etc/GMT-3"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int64_t after = NOW_NS;
        for (int k = 0; k < 3; k++) {
            int64_t next = cron_next(&s, names[i], &zones, after);
            if (next == -1)
                break;
            if (next <= after) {
                fprintf(stderr, "fuzz_cron: \"%s\" in %s: next %lld is not after %lld\n", expr,
                        names[i] ? names[i] : "(none)", (long long)next, (long long)after);
                abort();
            }
            after = next;
        }
    }
}

static void fuzz_table(const char *json, size_t len)
{
    char err[CRON_ERR_MAX];
    err[0] = '\0';
    struct cron_table *t = cron_table_parse(json, len, &zones, 7, err);
    if (!t) {
        if (!err[0]) {
            fprintf(stderr, "fuzz_cron: a refused cron.json must come with a message\n");
            abort();
        }
        return;
    }
    struct engine_config ec;
    engine_config_defaults(&ec);
    struct engine *e = engine_new(&ec, NULL);
    cron_table_start(t, e, NULL, 0, NOW_NS);
    int64_t now = NOW_NS;
    for (int i = 0; i < 4; i++) {
        int64_t next = cron_table_tick(t, e, now);
        engine_tick(e, now);
        /* Jump to the next fire time, or a day on when none is near. */
        now = next > now && next - now < 86400 * NS_S ? next : now + 86400 * NS_S;
    }
    struct sbuf b;
    sbuf_init(&b);
    cron_table_list_json(t, e, &b);
    sbuf_release(&b);
    engine_free(e);
    cron_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] & 1)
        fuzz_table(text, size - 1);
    else
        fuzz_expression(text);
    free(text);
    return 0;
}
