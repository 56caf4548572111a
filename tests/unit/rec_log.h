/*
 * Unit-test helper: a copy of every change record the engine emits, to replay
 * into a second engine (engine_apply) and compare. Single-threaded; the
 * tests that use it clear it after each case.
 */
#ifndef SPOOL_TEST_REC_LOG_H
#define SPOOL_TEST_REC_LOG_H

#include <stddef.h>

struct rec_log {
    unsigned char **recs;
    size_t *lens;
    size_t n, cap;
};

extern struct rec_log rec_log;

/* Appends a copy of rec (len bytes, never empty) to rec_log. */
void rec_log_add(const void *rec, size_t len);

/* An engine record hook (engine_hooks.record, engine_dump) that appends to
 * rec_log; ctx is not used. */
void rec_log_hook(void *ctx, const void *rec, size_t len);

/* Frees every copy and empties rec_log. */
void rec_log_clear(void);

#endif
