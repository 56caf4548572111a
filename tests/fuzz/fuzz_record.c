/*
 * fuzz_record: the journal record decoder (engine/record.c) through
 * engine_apply, the path every recovered record takes. The input is a
 * sequence of records, each a u16 little-endian length then its bytes, so
 * that later records can name jobs earlier ones added.
 *
 * Whatever state the records build, engine_dump must describe it with
 * records that apply cleanly to an empty engine (a snapshot of any state
 * must load), and ticking the engine must not break it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define NOW_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct replay {
    struct engine *into;
    size_t records;
};

static void apply_dumped(void *ctx, const void *rec, size_t len)
{
    struct replay *r = ctx;
    char err[256];
    if (engine_apply(r->into, rec, len, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_record: record %zu of a dump (type %u, %zu bytes) does not apply: %s\n",
                r->records, len ? ((const unsigned char *)rec)[0] : 0u, len, err);
        abort();
    }
    r->records++;
}

static struct engine *new_engine(void)
{
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.seed = 7;
    return engine_new(&ec, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct engine *e = new_engine();
    size_t off = 0;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        /* An exact-size copy, so a read past the record's end is caught. */
        unsigned char *rec = malloc(len ? len : 1);
        if (!rec)
            break;
        memcpy(rec, data + off, len);
        char err[256];
        err[0] = '\0';
        if (engine_apply(e, rec, len, err, sizeof err) != 0 && !err[0]) {
            fprintf(stderr, "fuzz_record: a refused record must come with a reason\n");
            abort();
        }
        free(rec);
        off += len;
    }
    struct replay r = {new_engine(), 0};
    engine_dump(e, apply_dumped, &r);
    if (r.into->jobs.count != e->jobs.count) {
        fprintf(stderr, "fuzz_record: the dump rebuilt %zu jobs of %zu\n", r.into->jobs.count,
                e->jobs.count);
        abort();
    }
    engine_tick(e, NOW_NS);
    engine_tick(r.into, NOW_NS);
    engine_free(r.into);
    engine_free(e);
    return 0;
}
