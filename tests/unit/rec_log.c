/* Unit-test helper: see rec_log.h. */
#include "rec_log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct rec_log rec_log;

void rec_log_add(const void *rec, size_t len)
{
    assert_non_null(rec);
    assert_true(len > 0);
    if (rec_log.n == rec_log.cap) {
        rec_log.cap = rec_log.cap ? rec_log.cap * 2 : 256;
        rec_log.recs = realloc(rec_log.recs, rec_log.cap * sizeof *rec_log.recs);
        rec_log.lens = realloc(rec_log.lens, rec_log.cap * sizeof *rec_log.lens);
        assert_non_null(rec_log.recs);
        assert_non_null(rec_log.lens);
    }
    rec_log.recs[rec_log.n] = malloc(len);
    assert_non_null(rec_log.recs[rec_log.n]);
    memcpy(rec_log.recs[rec_log.n], rec, len);
    rec_log.lens[rec_log.n++] = len;
}

void rec_log_hook(void *ctx, const void *rec, size_t len)
{
    (void)ctx;
    rec_log_add(rec, len);
}

void rec_log_clear(void)
{
    for (size_t i = 0; i < rec_log.n; i++)
        free(rec_log.recs[i]);
    free(rec_log.recs);
    free(rec_log.lens);
    memset(&rec_log, 0, sizeof rec_log);
}
