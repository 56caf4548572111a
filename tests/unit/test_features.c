/*
 * Unit tests for the Enterprise-style features of engine/engine and
 * engine/job (docs/features.md): expiring jobs (custom.expires_at /
 * expires_in), unique jobs (custom.unique_for / unique_until) and TRACK
 * progress with the recently-finished list.
 *
 * Time is a variable (clock_ns) moved by hand. Every change the engine makes
 * is captured through hooks.record; tests replay the records (and snapshot
 * dumps) into a fresh engine and compare the feature state as well as the
 * placements.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/timefmt.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "engine/record.h"
#include "rec_log.h"

/* 2024-03-01T00:00:00Z */
#define T0 (INT64_C(1709251200) * NS_PER_S)
#define SEC NS_PER_S

static struct engine *E;
static int64_t clock_ns;

/* ---- invariants ---- */

/* The unique map and the jobs agree: a job holds a lock exactly when the map points at it. */
static void check_unique_invariant(struct engine *e)
{
    size_t holders = 0;
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);) {
        struct job *job = val;
        if (job_extra(job)->unique_until_ns) {
            holders++;
            if (!job_extra(job)->unique_key)
                fail_msg("job %s holds a lock but has no unique key", job->jid);
            if (strmap_get(&e->unique, job_extra(job)->unique_key) != job)
                fail_msg("job %s holds a lock the unique map does not give it", job->jid);
        }
    }
    if (holders != e->unique.count)
        fail_msg("unique map has %zu entries but %zu jobs hold a lock", e->unique.count, holders);
}

/* ---- fixture ---- */

static struct engine_config test_config(void)
{
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    cfg.seed = 0x5EED1234u;
    return cfg;
}

static void reopen(const struct engine_config *cfg)
{
    if (E)
        engine_free(E);
    struct engine_hooks hooks = {.ctx = &rec_log, .record = rec_log_hook};
    E = engine_new(cfg, &hooks);
    rec_log_clear();
}

static int setup(void **state)
{
    clock_ns = T0;
    struct engine_config cfg = test_config();
    E = NULL;
    reopen(&cfg);
    return 0;
}

static int teardown(void **state)
{
    check_unique_invariant(E);
    engine_free(E);
    E = NULL;
    rec_log_clear();
    return 0;
}

/* ---- helpers ---- */

static struct job *make_job(const char *jid, const char *queue, const char *args,
                            const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json, "{\"jid\":\"%s\",\"jobtype\":\"Work\",\"args\":%s,\"queue\":\"%s\"%s%s}",
             jid, args ? args : "[1]", queue, extra ? "," : "", extra ? extra : "");
    char err[JOB_ERR_MAX];
    struct job *job = NULL;
    if (job_parse(json, strlen(json), clock_ns, &job, err) != 0)
        fail_msg("test job %s does not parse: %s", json, err);
    return job;
}

/* Pushes; returns engine_push's result (the job is freed unless stored). */
static int try_push(const char *jid, const char *args, const char *extra)
{
    struct job *job = make_job(jid, "q", args, extra);
    int rc = engine_push(E, job, clock_ns);
    if (rc != 0)
        job_free(job);
    return rc;
}

static void push(const char *jid, const char *args, const char *extra)
{
    int rc = try_push(jid, args, extra);
    if (rc != 0)
        fail_msg("push of %s returned %d (%s)", jid, rc, engine_strerror(rc));
}

static struct job *fetch(const char *wid)
{
    const char *qs[] = {"q"};
    return engine_fetch(E, qs, 1, wid, clock_ns);
}

static struct job *find(const char *jid)
{
    return strmap_get(&E->jobs, jid);
}

static void fetch_expect(const char *jid)
{
    struct job *job = fetch("w1");
    if (!job)
        fail_msg("FETCH should give %s, gave nothing", jid);
    if (strcmp(job->jid, jid) != 0)
        fail_msg("FETCH should give %s, gave %s", jid, job->jid);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares jobs, placements and every feature field of two engines. */
static void assert_same_features(struct engine *a, struct engine *b, int with_finished)
{
    assert_int_equal(a->jobs.count, b->jobs.count);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&a->jobs, &i, &key, &val);) {
        struct job *x = val, *y = strmap_get(&b->jobs, key);
        if (!y)
            fail_msg("job %s missing after rebuild", key);
        if (x->state != y->state)
            fail_msg("job %s: state %d vs %d", key, (int)x->state, (int)y->state);
        if (x->state != JOB_ENQUEUED && x->tnode.score_ns != y->tnode.score_ns)
            fail_msg("job %s: score %lld vs %lld", key, (long long)x->tnode.score_ns,
                     (long long)y->tnode.score_ns);
        const struct job_extra *xx = job_extra(x), *yx = job_extra(y);
        if (xx->expires_at_ns != yx->expires_at_ns)
            fail_msg("job %s: expires_at %lld vs %lld", key, (long long)xx->expires_at_ns,
                     (long long)yx->expires_at_ns);
        assert_int_equal(xx->unique_for_s, yx->unique_for_s);
        assert_int_equal(xx->is_unique_until_start, yx->is_unique_until_start);
        if (xx->unique_until_ns != yx->unique_until_ns)
            fail_msg("job %s: unique lock until %lld vs %lld", key, (long long)xx->unique_until_ns,
                     (long long)yx->unique_until_ns);
        if (xx->unique_until_ns && !same_str(xx->unique_key, yx->unique_key))
            fail_msg("job %s: unique key differs after rebuild", key);
        assert_int_equal(xx->track == NULL, yx->track == NULL);
        if (xx->track) {
            assert_int_equal(xx->track->percent, yx->track->percent);
            assert_true(same_str(xx->track->desc, yx->track->desc));
            assert_true(xx->track->updated_at_ns == yx->track->updated_at_ns);
        }
    }
    assert_int_equal(a->unique.count, b->unique.count);
    if (a->job_bytes != b->job_bytes) /* --max-memory counts a rebuilt job as its push did */
        fail_msg("job_bytes %zu vs %zu after rebuild", a->job_bytes, b->job_bytes);
    assert_int_equal(a->expired_jobs, b->expired_jobs);
    assert_int_equal(a->processed, b->processed);
    assert_int_equal(a->failures, b->failures);
    if (with_finished) {
        assert_int_equal(a->finished.count, b->finished.count);
        for (size_t i = 0; strmap_next(&a->finished, &i, &key, &val);) {
            struct track_info x, y;
            engine_track_get(a, key, &x);
            engine_track_get(b, key, &y);
            if (x.state != y.state)
                fail_msg("finished %s: state %d vs %d", key, (int)x.state, (int)y.state);
            assert_int_equal(x.percent, y.percent);
            assert_true(same_str(x.desc, y.desc));
            assert_true(x.updated_at_ns == y.updated_at_ns);
        }
    }
    check_unique_invariant(a);
    check_unique_invariant(b);
}

static struct engine *replay_log(void)
{
    struct engine_config cfg = E->cfg;
    struct engine *r = engine_new(&cfg, NULL);
    char err[128];
    for (size_t i = 0; i < rec_log.n; i++) {
        err[0] = '\0';
        if (engine_apply(r, rec_log.recs[i], rec_log.lens[i], err, sizeof err) != 0)
            fail_msg("record %zu of %zu (type %u) does not apply: %s", i, rec_log.n,
                     (unsigned)rec_log.recs[i][0], err);
    }
    assert_int_equal(r->replay_skipped, 0);
    return r;
}

static void dump_out(void *ctx, const void *rec, size_t len)
{
    char err[128];
    if (engine_apply(ctx, rec, len, err, sizeof err) != 0)
        fail_msg("dump record (type %u) does not apply: %s", (unsigned)((const unsigned char *)rec)[0],
                 err);
}

static struct engine *dump_copy(void)
{
    struct engine_config cfg = E->cfg;
    struct engine *r = engine_new(&cfg, NULL);
    engine_dump(E, dump_out, r);
    return r;
}

/* Replays the journal and a dump; both must give E's state. */
static void check_rebuilds(void)
{
    struct engine *r = replay_log();
    assert_same_features(E, r, 1);
    engine_free(r);
    r = dump_copy();
    assert_same_features(E, r, 0);
    engine_free(r);
}

/* ---- parsing ---- */

static void features_duration_parsing(void **state)
{
    int64_t ns = 0;
    assert_int_equal(job_parse_duration("30s", &ns), 0);
    assert_true(ns == 30 * SEC);
    assert_int_equal(job_parse_duration("5m", &ns), 0);
    assert_true(ns == 300 * SEC);
    assert_int_equal(job_parse_duration("1h30m", &ns), 0);
    assert_true(ns == 5400 * SEC);
    assert_int_equal(job_parse_duration("1.5h", &ns), 0);
    assert_true(ns == 5400 * SEC);
    assert_int_equal(job_parse_duration("250ms", &ns), 0);
    assert_true(ns == 250 * NS_PER_MS);
    assert_int_equal(job_parse_duration("45", &ns), 0);
    assert_true(ns == 45 * SEC);
    const char *bad[] = {"", "s", "-5s", "5x", "1h30", "0s", "abc", "5 m", "1000000000h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (job_parse_duration(bad[i], &ns) == 0)
            fail_msg("duration \"%s\" should be refused", bad[i]);
}

static void features_custom_fields_parse_and_validate(void **state)
{
    struct job *job = make_job("exp-at-01", "q", NULL, "\"custom\":{\"expires_at\":\"2024-03-01T00:01:00Z\"}");
    assert_true(job_extra(job)->expires_at_ns == T0 + 60 * SEC);
    job_free(job);
    job = make_job("exp-in-01", "q", NULL, "\"custom\":{\"expires_in\":90}");
    assert_true(job_extra(job)->expires_at_ns == T0 + 90 * SEC);
    job_free(job);
    job = make_job("exp-in-02", "q", NULL, "\"custom\":{\"expires_in\":\"5m\"}");
    assert_true(job_extra(job)->expires_at_ns == T0 + 300 * SEC);
    job_free(job);
    /* expires_at wins over expires_in */
    job = make_job("exp-both1", "q", NULL,
                   "\"custom\":{\"expires_in\":\"5m\",\"expires_at\":\"2024-03-01T00:00:10Z\"}");
    assert_true(job_extra(job)->expires_at_ns == T0 + 10 * SEC);
    job_free(job);
    job = make_job("uniq-0001", "q", "[1,{\"a\":\"b\"}]", "\"custom\":{\"unique_for\":60,\"unique_until\":\"start\"}");
    assert_int_equal(job_extra(job)->unique_for_s, 60);
    assert_true(job_extra(job)->is_unique_until_start);
    assert_non_null(job_extra(job)->unique_key);
    /* The key derived from the stored body is the key computed at push. */
    char *k = strdup(job_extra(job)->unique_key);
    assert_int_equal(job_unique_key_derive(job), 0);
    assert_string_equal(k, job_extra(job)->unique_key);
    free(k);
    job_free(job);
    job = make_job("plain-001", "q", NULL, "\"custom\":{\"k\":1}");
    assert_true(job_extra(job)->expires_at_ns == 0);
    assert_int_equal(job_extra(job)->unique_for_s, 0);
    assert_null(job_extra(job)->unique_key);
    job_free(job);

    static const struct {
        const char *custom, *want;
    } bad[] = {
        {"{\"expires_at\":\"tomorrow\"}", "invalid timestamp for 'expires_at': \"tomorrow\""},
        {"{\"expires_at\":5}", "invalid timestamp for 'expires_at'"},
        {"{\"expires_in\":0}", "invalid custom.expires_in"},
        {"{\"expires_in\":\"soon\"}", "invalid custom.expires_in"},
        {"{\"expires_in\":true}", "invalid custom.expires_in"},
        {"{\"unique_for\":-1}", "invalid custom.unique_for"},
        {"{\"unique_for\":\"60\"}", "invalid custom.unique_for"},
        {"{\"unique_until\":\"done\"}", "invalid custom.unique_until"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[512], err[JOB_ERR_MAX];
        snprintf(json, sizeof json, "{\"jid\":\"bad-job-01\",\"jobtype\":\"W\",\"args\":[],\"custom\":%s}",
                 bad[i].custom);
        struct job *j = NULL;
        if (job_parse(json, strlen(json), clock_ns, &j, err) == 0) {
            job_free(j);
            fail_msg("custom %s should be refused", bad[i].custom);
        }
        if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("custom %s: error \"%s\" should start with \"%s\"", bad[i].custom, err, bad[i].want);
    }
}

/* ---- expiring jobs ---- */

static void features_expired_job_is_discarded_at_fetch(void **state)
{
    push("exp-00001", NULL, "\"custom\":{\"expires_in\":10}");
    push("keep-0001", NULL, NULL);
    clock_ns += 10 * SEC; /* expires_at == now: expired */
    fetch_expect("keep-0001");
    assert_null(find("exp-00001"));
    assert_int_equal(E->expired_jobs, 1);
    assert_null(fetch("w1"));
    /* Not yet expired: fetched normally. */
    push("exp-00002", NULL, "\"custom\":{\"expires_in\":\"1m\"}");
    clock_ns += 59 * SEC;
    fetch_expect("exp-00002");
    assert_int_equal(E->expired_jobs, 1);
    check_rebuilds();
}

static void features_tick_discards_expired_scheduled_retry_and_queue_heads(void **state)
{
    char extra[256];
    timefmt_format(clock_ns + 20 * SEC, extra + 200);
    snprintf(extra, 200, "\"at\":\"%s\",\"custom\":{\"expires_in\":10}", extra + 200);
    push("sched-exp", NULL, extra);
    push("head-exp1", NULL, "\"custom\":{\"expires_in\":5}");
    push("retry-exp", NULL, "\"custom\":{\"expires_in\":15}");
    push("tail-keep", NULL, NULL);
    /* retry-exp is behind head-exp1: take it out to fail it into the retry set */
    fetch_expect("head-exp1");
    fetch_expect("retry-exp");
    assert_int_equal(engine_fail(E, "retry-exp", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(find("retry-exp")->state, JOB_RETRY);
    assert_int_equal(engine_ack(E, "head-exp1", clock_ns), 0);
    push("head-exp2", NULL, "\"custom\":{\"expires_in\":5}");
    /* queue is now tail-keep, head-exp2: the head is not expired, so the tick keeps both */
    clock_ns += 6 * SEC;
    engine_tick(E, clock_ns);
    assert_non_null(find("head-exp2"));
    assert_int_equal(E->expired_jobs, 0);
    fetch_expect("tail-keep");
    /* now head-exp2 is the head, and expired */
    engine_tick(E, clock_ns);
    assert_null(find("head-exp2"));
    assert_int_equal(E->expired_jobs, 1);
    /* the scheduled job comes due after its expiry, the retry too (backoff >= 15 s) */
    clock_ns += 200 * SEC;
    engine_tick(E, clock_ns);
    assert_null(find("sched-exp"));
    assert_null(find("retry-exp"));
    assert_int_equal(E->expired_jobs, 3);
    assert_int_equal(engine_queue(E, "q")->size, 0);
    check_rebuilds();
}

static void on_deliver(struct waiter *w, struct job *job)
{
    *(struct job **)w->ctx = job;
}

static void features_blocked_fetcher_never_gets_an_expired_job(void **state)
{
    struct job *got = NULL;
    struct waiter w = {.deliver = on_deliver, .ctx = &got, .wid = "w9"};
    const char *qs[] = {"q"};
    assert_int_equal(engine_wait(E, &w, qs, 1), 1);
    push("dead-on-arrival", NULL, "\"custom\":{\"expires_at\":\"2000-01-01T00:00:00Z\"}");
    assert_null(got);
    assert_null(find("dead-on-arrival"));
    assert_int_equal(E->expired_jobs, 1);
    push("fresh-0001", NULL, NULL);
    assert_non_null(got);
    assert_string_equal(got->jid, "fresh-0001");
    check_rebuilds();
}

static void features_expired_count_survives_dump_and_flush_clears_it(void **state)
{
    push("exp-00001", NULL, "\"custom\":{\"expires_in\":1}");
    clock_ns += 2 * SEC;
    assert_null(fetch("w1"));
    assert_int_equal(E->expired_jobs, 1);
    struct engine *r = dump_copy();
    assert_int_equal(r->expired_jobs, 1);
    engine_free(r);
    engine_flush(E);
    assert_int_equal(E->expired_jobs, 0);
    check_rebuilds();
}

/* ---- unique jobs ---- */

static const char *U60 = "\"custom\":{\"unique_for\":60}";

static void features_unique_refuses_twins_until_success(void **state)
{
    push("uniq-0001", "[1,2]", U60);
    assert_int_equal(try_push("uniq-0002", "[1,2]", U60), ENGINE_ENOTUNIQUE);
    struct job *twin = make_job("uniq-0002", "q", "[1,2]", U60);
    assert_string_equal(engine_unique_holder(E, twin, clock_ns), "uniq-0001");
    job_free(twin);
    /* other args, other queue, other jobtype: other locks; plain jobs never locked */
    push("uniq-0003", "[1,3]", U60);
    struct job *other = make_job("uniq-0004", "q2", "[1,2]", U60);
    assert_int_equal(engine_push(E, other, clock_ns), 0);
    push("plain-001", "[1,2]", NULL);
    /* re-sending the same job (same jid) is still an idempotent OK */
    assert_int_equal(try_push("uniq-0001", "[1,2]", U60), 1);
    fetch_expect("uniq-0001");
    assert_int_equal(try_push("uniq-0005", "[1,2]", U60), ENGINE_ENOTUNIQUE);
    check_rebuilds();
    /* a failure that will be retried keeps the lock */
    assert_int_equal(engine_fail(E, "uniq-0001", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(try_push("uniq-0005", "[1,2]", U60), ENGINE_ENOTUNIQUE);
    check_rebuilds();
}

static void features_unique_released_by_ack(void **state)
{
    push("uniq-0001", "[7]", U60);
    fetch_expect("uniq-0001");
    assert_int_equal(engine_ack(E, "uniq-0001", clock_ns), 0);
    push("uniq-0002", "[7]", U60);
    check_rebuilds();
}

static void features_unique_until_start_released_by_fetch(void **state)
{
    const char *start = "\"custom\":{\"unique_for\":60,\"unique_until\":\"start\"}";
    push("start-001", "[1]", start);
    assert_int_equal(try_push("start-002", "[1]", start), ENGINE_ENOTUNIQUE);
    fetch_expect("start-001");
    push("start-002", "[1]", start);
    check_rebuilds();
    assert_int_equal(try_push("start-003", "[1]", start), ENGINE_ENOTUNIQUE);
}

static void features_unique_lock_expires(void **state)
{
    push("uniq-0001", "[1]", U60);
    clock_ns += 59 * SEC;
    assert_int_equal(try_push("uniq-0002", "[1]", U60), ENGINE_ENOTUNIQUE);
    clock_ns += 1 * SEC; /* unique_for after the push: the lock is gone */
    push("uniq-0002", "[1]", U60);
    assert_int_equal(job_extra(find("uniq-0001"))->unique_until_ns, 0);
    assert_true(job_extra(find("uniq-0002"))->unique_until_ns == clock_ns + 60 * SEC);
    check_rebuilds();
}

static void features_unique_released_when_job_dies_is_discarded_or_expires(void **state)
{
    push("dies-0001", "[1]", "\"retry\":-1,\"custom\":{\"unique_for\":600}");
    fetch_expect("dies-0001");
    assert_int_equal(engine_fail(E, "dies-0001", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(find("dies-0001")->state, JOB_DEAD);
    push("dies-0002", "[1]", "\"custom\":{\"unique_for\":600}");

    push("disc-0001", "[2]", "\"retry\":0,\"custom\":{\"unique_for\":600}");
    fetch_expect("dies-0002");
    fetch_expect("disc-0001");
    assert_int_equal(engine_fail(E, "disc-0001", "E", "m", NULL, clock_ns), 0);
    assert_null(find("disc-0001"));
    push("disc-0002", "[2]", "\"custom\":{\"unique_for\":600}");

    push("expi-0001", "[3]", "\"custom\":{\"unique_for\":600,\"expires_in\":5}");
    clock_ns += 5 * SEC;
    fetch_expect("disc-0002"); /* and expi-0001 behind it stays */
    assert_non_null(find("expi-0001"));
    assert_null(fetch("w1")); /* expired at fetch */
    push("expi-0002", "[3]", "\"custom\":{\"unique_for\":600}");

    push("kill-0001", "[4]", "\"at\":\"2030-01-01T00:00:00Z\",\"custom\":{\"unique_for\":600}");
    struct mutate_filter f = {.jobtype = "Work"};
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_SCHEDULED, &f, clock_ns), 1);
    push("kill-0002", "[4]", "\"custom\":{\"unique_for\":600}");
    check_rebuilds();

    engine_queue_remove(E, "q");
    push("gone-0001", "[4]", "\"custom\":{\"unique_for\":600}");
    engine_flush(E);
    assert_int_equal(E->unique.count, 0);
    push("gone-0002", "[4]", "\"custom\":{\"unique_for\":600}");
    check_rebuilds();
}

static void features_old_add_records_still_decode(void **state)
{
    /* A REC_ADD as written before the trailing feature fields existed. */
    struct job *job = make_job("old-rec-1", "q", "[1]", "\"custom\":{\"unique_for\":60,\"expires_in\":5}");
    struct placement pl = {.state = JOB_ENQUEUED, .enqueued_at_ns = clock_ns};
    struct sbuf b;
    sbuf_init(&b);
    rec_encode_add(&b, job, &pl);
    size_t old_len = b.len - (8 + 4 + 1 + 8);
    struct engine_config cfg = test_config();
    struct engine *r = engine_new(&cfg, NULL);
    char err[128];
    assert_int_equal(engine_apply(r, b.buf, old_len, err, sizeof err), 0);
    struct job *got = strmap_get(&r->jobs, "old-rec-1");
    assert_non_null(got);
    assert_true(job_extra(got)->expires_at_ns == 0);
    assert_int_equal(job_extra(got)->unique_for_s, 0);
    assert_int_equal(r->unique.count, 0);
    check_unique_invariant(r);
    /* And the full record carries the fields. */
    struct engine *r2 = engine_new(&cfg, NULL);
    job_extra_need(job)->unique_until_ns = clock_ns + 60 * SEC;
    sbuf_reset(&b);
    rec_encode_add(&b, job, &pl);
    assert_int_equal(engine_apply(r2, b.buf, b.len, err, sizeof err), 0);
    got = strmap_get(&r2->jobs, "old-rec-1");
    assert_true(job_extra(got)->expires_at_ns == clock_ns + 5 * SEC);
    assert_int_equal(job_extra(got)->unique_for_s, 60);
    assert_true(job_extra(got)->unique_until_ns == clock_ns + 60 * SEC);
    assert_int_equal(r2->unique.count, 1);
    check_unique_invariant(r2);
    /* An old counters record (no expired_jobs field) leaves the count at 0. */
    sbuf_reset(&b);
    rec_put_u8(&b, REC_COUNTERS);
    for (int i = 0; i < 4; i++)
        rec_put_i64(&b, 0);
    rec_put_u32(&b, 0);
    r2->expired_jobs = 9;
    assert_int_equal(engine_apply(r2, b.buf, b.len, err, sizeof err), 0);
    assert_int_equal(r2->expired_jobs, 0);
    sbuf_release(&b);
    job_free(job);
    engine_free(r);
    engine_free(r2);
}

/* ---- TRACK ---- */

static void features_track_set_and_get(void **state)
{
    struct track_info ti;
    assert_int_equal(engine_track_set(E, "nobody-01", 5, "x", 0, clock_ns), ENGINE_ENOTFOUND);
    engine_track_get(E, "nobody-01", &ti);
    assert_int_equal(ti.state, TRACK_UNKNOWN);
    assert_string_equal(engine_track_state_name(ti.state), "unknown");

    push("track-001", NULL, NULL);
    engine_track_get(E, "track-001", &ti);
    assert_int_equal(ti.state, TRACK_ENQUEUED);
    assert_int_equal(ti.percent, -1);
    assert_null(ti.desc);
    assert_true(ti.updated_at_ns == 0);

    clock_ns += SEC;
    assert_int_equal(engine_track_set(E, "track-001", 10, "starting", 0, clock_ns), 0);
    fetch_expect("track-001");
    int64_t expiry = find("track-001")->tnode.score_ns;
    clock_ns += SEC;
    /* percent < 0 and desc NULL keep what was there */
    assert_int_equal(engine_track_set(E, "track-001", -1, NULL, 0, clock_ns), 0);
    engine_track_get(E, "track-001", &ti);
    assert_int_equal(ti.state, TRACK_WORKING);
    assert_int_equal(ti.percent, 10);
    assert_string_equal(ti.desc, "starting");
    assert_true(ti.updated_at_ns == clock_ns);

    /* reserve_until extends, never shortens, and at most a day ahead */
    assert_int_equal(engine_track_set(E, "track-001", 50, "half", expiry + 600 * SEC, clock_ns), 0);
    assert_true(find("track-001")->tnode.score_ns == expiry + 600 * SEC);
    assert_int_equal(engine_track_set(E, "track-001", 60, NULL, expiry, clock_ns), 0);
    assert_true(find("track-001")->tnode.score_ns == expiry + 600 * SEC);
    assert_int_equal(engine_track_set(E, "track-001", 70, NULL, clock_ns + 9 * 86400 * SEC, clock_ns), 0);
    assert_true(find("track-001")->tnode.score_ns == clock_ns + 86400 * SEC);
    /* the old deadline passes: the job stays reserved */
    clock_ns = expiry + SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(find("track-001")->state, JOB_WORKING);
    check_rebuilds();

    assert_int_equal(engine_ack(E, "track-001", clock_ns), 0);
    engine_track_get(E, "track-001", &ti);
    assert_int_equal(ti.state, TRACK_SUCCESS);
    assert_int_equal(ti.percent, 70);
    assert_string_equal(ti.desc, "half");
    assert_true(ti.updated_at_ns == clock_ns);
    /* a finished job is not "found" for TRACK SET */
    assert_int_equal(engine_track_set(E, "track-001", 80, NULL, 0, clock_ns), ENGINE_ENOTFOUND);
    check_rebuilds();
}

static void features_track_states_follow_the_job(void **state)
{
    struct track_info ti;
    push("fail-0001", NULL, NULL);
    push("dead-0001", NULL, "\"retry\":-1");
    push("disc-0001", NULL, "\"retry\":0");
    push("sched-001", NULL, "\"at\":\"2030-01-01T00:00:00Z\"");
    engine_track_get(E, "sched-001", &ti);
    assert_int_equal(ti.state, TRACK_ENQUEUED);
    for (int i = 0; i < 3; i++)
        assert_non_null(fetch("w1"));
    assert_int_equal(engine_fail(E, "fail-0001", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(engine_fail(E, "dead-0001", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(engine_fail(E, "disc-0001", "E", "m", NULL, clock_ns), 0);
    engine_track_get(E, "fail-0001", &ti);
    assert_int_equal(ti.state, TRACK_FAILED);
    assert_string_equal(engine_track_state_name(ti.state), "failed");
    engine_track_get(E, "dead-0001", &ti);
    assert_int_equal(ti.state, TRACK_DEAD);
    engine_track_get(E, "disc-0001", &ti);
    assert_int_equal(ti.state, TRACK_FAILED);
    check_rebuilds();
    engine_flush(E);
    engine_track_get(E, "disc-0001", &ti);
    assert_int_equal(ti.state, TRACK_UNKNOWN);
    check_rebuilds();
}

static void features_finished_list_is_bounded(void **state)
{
    struct engine_config cfg = test_config();
    cfg.finished_max = 3;
    reopen(&cfg);
    char jid[16];
    for (int i = 0; i < 5; i++) {
        snprintf(jid, sizeof jid, "done-%04d", i);
        push(jid, NULL, NULL);
        fetch_expect(jid);
        assert_int_equal(engine_ack(E, jid, clock_ns), 0);
    }
    assert_int_equal(E->finished.count, 3);
    struct track_info ti;
    engine_track_get(E, "done-0001", &ti);
    assert_int_equal(ti.state, TRACK_UNKNOWN);
    engine_track_get(E, "done-0002", &ti);
    assert_int_equal(ti.state, TRACK_SUCCESS);
    engine_track_get(E, "done-0004", &ti);
    assert_int_equal(ti.state, TRACK_SUCCESS);
    check_rebuilds();
}

/* ---- many random operations, then replay and dump ---- */

static uint32_t rnd_state;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state % n;
}

#define job_of(node) ((struct job *)((char *)(node)-offsetof(struct job, tnode)))

static void features_random_ops_replay_and_dump_to_same_state(void **state)
{
    struct engine_config cfg = test_config();
    cfg.finished_max = 50;
    cfg.dead_max = 20;
    reopen(&cfg);
    rnd_state = 0xC0FFEEu;
    char jid[32], args[32], extra[256];
    int next = 0, notunique = 0;
    for (int op = 0; op < 5000; op++) {
        uint32_t k = rnd(100);
        if (k < 40) {
            snprintf(jid, sizeof jid, "rnd-%06d", next++);
            snprintf(args, sizeof args, "[%u]", rnd(8));
            static const char *const uniq[] = {"", ",\"unique_for\":30", ",\"unique_for\":600",
                                               ",\"unique_for\":600,\"unique_until\":\"start\""};
            static const char *const exp[] = {"", "", ",\"expires_in\":5", ",\"expires_in\":\"1m\""};
            snprintf(extra, sizeof extra, "\"retry\":%d%s,\"custom\":{\"n\":0%s%s}",
                     (int)rnd(3) - 1, rnd(5) == 0 ? ",\"at\":\"2024-03-01T00:10:00Z\"" : "",
                     uniq[rnd(4)], exp[rnd(4)]);
            int rc = try_push(jid, args, extra);
            if (rc == ENGINE_ENOTUNIQUE)
                notunique++;
            else if (rc != 0)
                fail_msg("push %s: %d", jid, rc);
        } else if (k < 60) {
            fetch("w1");
        } else if (k < 85) {
            struct tset_node *n = tset_min(&E->working);
            if (n) {
                const char *j = job_of(n)->jid;
                if (k < 75)
                    assert_int_equal(engine_ack(E, j, clock_ns), 0);
                else
                    assert_int_equal(engine_fail(E, j, "E", "m", NULL, clock_ns), 0);
            }
        } else if (k < 92) {
            struct tset_node *n = tset_min(rnd(2) ? &E->working : &E->scheduled);
            if (n)
                assert_int_equal(engine_track_set(E, job_of(n)->jid, (int)rnd(101),
                                                  rnd(2) ? "step" : NULL,
                                                  rnd(2) ? clock_ns + (int64_t)rnd(7200) * SEC : 0,
                                                  clock_ns),
                                 0);
        } else if (k < 98) {
            clock_ns += (int64_t)rnd(40) * SEC;
            engine_tick(E, clock_ns);
        } else if (k < 99) {
            engine_mutate(E, rnd(2) ? MUTATE_KILL : MUTATE_REQUEUE, TARGET_RETRIES, NULL, clock_ns);
        } else if (rnd(20) == 0) {
            engine_flush(E);
        }
        check_unique_invariant(E);
    }
    assert_true(notunique > 10);
    assert_true(E->expired_jobs > 0);
    check_rebuilds();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(features_duration_parsing),
        T(features_custom_fields_parse_and_validate),
        T(features_expired_job_is_discarded_at_fetch),
        T(features_tick_discards_expired_scheduled_retry_and_queue_heads),
        T(features_blocked_fetcher_never_gets_an_expired_job),
        T(features_expired_count_survives_dump_and_flush_clears_it),
        T(features_unique_refuses_twins_until_success),
        T(features_unique_released_by_ack),
        T(features_unique_until_start_released_by_fetch),
        T(features_unique_lock_expires),
        T(features_unique_released_when_job_dies_is_discarded_or_expires),
        T(features_old_add_records_still_decode),
        T(features_track_set_and_get),
        T(features_track_states_follow_the_job),
        T(features_finished_list_is_bounded),
        T(features_random_ops_replay_and_dump_to_same_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
