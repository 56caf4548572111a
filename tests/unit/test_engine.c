/*
 * Unit tests for engine/engine: queues, fetch order, scheduling, retries and
 * the dead set, reservations, blocked fetchers, worker processes, queue
 * administration, MUTATE, FLUSH and counters (FWP sections 3, 5-8).
 *
 * The engine is pure, so time is a variable here (clock_ns) that tests move
 * by hand. Every test ends with check_invariants(): each job the engine
 * holds is in exactly the one place its state says, and the index agrees.
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
#include "rec_log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define job_of(node) container_of(node, struct job, tnode)

/* 2024-03-01T00:00:00Z */
#define T0 (INT64_C(1709251200) * NS_PER_S)
#define SEC NS_PER_S
#define DAY (INT64_C(86400) * NS_PER_S)

static struct engine *E;
static int64_t clock_ns;

/* ---- reaped hook ---- */

static struct {
    char wids[8][32];
    int n;
    int detach_in_hook; /* close the process's connections from inside the hook */
} reaped_log;

static void on_reaped(void *ctx, const char *wid)
{
    assert_ptr_equal(ctx, &reaped_log);
    /* The worker is still known while the hook runs. */
    assert_non_null(engine_worker(E, wid));
    if (reaped_log.n < 8)
        snprintf(reaped_log.wids[reaped_log.n], sizeof reaped_log.wids[0], "%s", wid);
    reaped_log.n++;
    if (reaped_log.detach_in_hook) {
        for (int i = 0; i < 16 && engine_worker(E, wid); i++)
            engine_worker_detach(E, wid);
        assert_null(engine_worker(E, wid));
    }
}

/* ---- record hook: a copy of every change record, when switched on ---- */

/* Whether on_record keeps a copy (rec_log.h); off but for the replay cases. */
static int rec_log_is_on;

static void on_record(void *ctx, const void *rec, size_t len)
{
    assert_ptr_equal(ctx, &reaped_log);
    assert_non_null(rec);
    assert_true(len > 0);
    if (rec_log_is_on)
        rec_log_add(rec, len);
}

/* ---- invariants ---- */

struct set_check {
    struct engine *e;
    enum job_state want;
    const char *name;
    size_t n;
    int64_t last;
};

static int set_check_fn(struct tset_node *node, void *arg)
{
    struct set_check *c = arg;
    struct job *job = job_of(node);
    if (job->state != c->want)
        fail_msg("job %s is in the %s set with state %d", job->jid, c->name, (int)job->state);
    if (strmap_get(&c->e->jobs, job->jid) != job)
        fail_msg("job %s in the %s set is not indexed by jid", job->jid, c->name);
    if (c->n && node->score_ns < c->last)
        fail_msg("%s set walk out of order at job %s", c->name, job->jid);
    c->last = node->score_ns;
    c->n++;
    return 0;
}

static size_t check_set(struct engine *e, struct tset *s, enum job_state want, const char *name)
{
    struct set_check c = {e, want, name, 0, 0};
    tset_walk(s, set_check_fn, &c);
    if (c.n != s->count)
        fail_msg("%s set: count %zu but walk visits %zu", name, s->count, c.n);
    return c.n;
}

static void check_invariants(struct engine *e)
{
    size_t by_state[JOB_DEAD + 1] = {0};
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);) {
        struct job *job = val;
        if (strcmp(key, job->jid) != 0)
            fail_msg("job %s indexed under %s", job->jid, key);
        if ((int)job->state < 0 || job->state > JOB_DEAD)
            fail_msg("job %s has bad state %d", job->jid, (int)job->state);
        if (job->state == JOB_NEW)
            fail_msg("job %s is indexed but placed nowhere", job->jid);
        if (job->state == JOB_WORKING && !job->wid)
            fail_msg("working job %s has no wid", job->jid);
        by_state[job->state]++;
    }
    size_t enqueued = 0;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);) {
        struct queue *q = val;
        if (strcmp(key, q->name) != 0)
            fail_msg("queue %s indexed under %s", q->name, key);
        size_t n = 0;
        struct job *prev = NULL;
        for (struct job *j = q->head; j; prev = j, j = j->qnext) {
            if (j->qprev != prev)
                fail_msg("queue %s: broken back link at %s", q->name, j->jid);
            if (j->state != JOB_ENQUEUED)
                fail_msg("queue %s holds job %s in state %d", q->name, j->jid, (int)j->state);
            if (strcmp(j->queue, q->name) != 0)
                fail_msg("queue %s holds job %s of queue %s", q->name, j->jid, j->queue);
            if (strmap_get(&e->jobs, j->jid) != j)
                fail_msg("queue %s holds unindexed job %s", q->name, j->jid);
            if (++n > e->jobs.count)
                fail_msg("queue %s has a cycle", q->name);
        }
        if (q->tail != prev)
            fail_msg("queue %s: tail is not the last job", q->name);
        if (n != q->size)
            fail_msg("queue %s: size %zu but %zu linked", q->name, q->size, n);
        enqueued += n;
    }
    assert_int_equal(enqueued, by_state[JOB_ENQUEUED]);
    assert_int_equal(engine_enqueued_total(e), enqueued);
    assert_int_equal(check_set(e, &e->scheduled, JOB_SCHEDULED, "scheduled"),
                     by_state[JOB_SCHEDULED]);
    assert_int_equal(check_set(e, &e->retries, JOB_RETRY, "retries"), by_state[JOB_RETRY]);
    assert_int_equal(check_set(e, &e->dead, JOB_DEAD, "dead"), by_state[JOB_DEAD]);
    assert_int_equal(check_set(e, &e->working, JOB_WORKING, "working"), by_state[JOB_WORKING]);
    /* Every job is in exactly one place. */
    assert_int_equal(e->jobs.count, enqueued + e->scheduled.count + e->retries.count +
                                        e->dead.count + e->working.count);
    if (e->cfg.dead_max)
        assert_true(e->dead.count <= e->cfg.dead_max);
}

/* ---- fixture ---- */

static struct engine_config test_config(void)
{
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    cfg.seed = 0x5EED1234u;
    return cfg;
}

/* Replaces the engine with a fresh one using cfg. */
static void reopen(const struct engine_config *cfg)
{
    if (E) {
        check_invariants(E);
        engine_free(E);
    }
    /* Records are always encoded, so every test runs the encoders too. */
    struct engine_hooks hooks = {.ctx = &reaped_log, .reaped = on_reaped, .record = on_record};
    E = engine_new(cfg, &hooks);
    assert_non_null(E);
}

static int setup(void **state)
{
    clock_ns = T0;
    memset(&reaped_log, 0, sizeof reaped_log);
    struct engine_config cfg = test_config();
    E = NULL;
    reopen(&cfg);
    return 0;
}

static int teardown(void **state)
{
    check_invariants(E);
    engine_free(E);
    E = NULL;
    rec_log_clear();
    return 0;
}

/* ---- helpers ---- */

static struct job *make_job(const char *jid, const char *jobtype, const char *queue,
                            const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":[\"%s\"],\"queue\":\"%s\"%s%s}", jid,
             jobtype, jid, queue, extra ? "," : "", extra ? extra : "");
    char err[JOB_ERR_MAX];
    struct job *job = NULL;
    if (job_parse(json, strlen(json), clock_ns, &job, err) != 0)
        fail_msg("test job %s does not parse: %s", json, err);
    return job;
}

static struct job *push_job(const char *jid, const char *jobtype, const char *queue,
                            const char *extra)
{
    struct job *job = make_job(jid, jobtype, queue, extra);
    int rc = engine_push(E, job, clock_ns);
    if (rc != 0) {
        job_free(job);
        fail_msg("push of %s returned %d (%s)", jid, rc, engine_strerror(rc));
    }
    return job;
}

static struct job *push(const char *jid, const char *queue, const char *extra)
{
    return push_job(jid, "Work", queue, extra);
}

/* `"at":"<ns as RFC 3339>"` for a job's extra fields. */
static const char *at_field(int64_t ns, char *buf, size_t size)
{
    char ts[TIMEFMT_MAX];
    timefmt_format(ns, ts);
    snprintf(buf, size, "\"at\":\"%s\"", ts);
    return buf;
}

static struct job *fetch1(const char *queue, const char *wid)
{
    const char *qs[] = {queue};
    return engine_fetch(E, qs, 1, wid, clock_ns);
}

static struct job *find(const char *jid)
{
    return strmap_get(&E->jobs, jid);
}

/* Fetches jid's queue head (which must be jid) and fails it now. */
static void fetch_and_fail(const char *jid)
{
    struct job *job = find(jid);
    assert_non_null(job);
    struct job *got = fetch1(job->queue, "w-test");
    assert_ptr_equal(got, job);
    assert_int_equal(engine_fail(E, jid, "RuntimeError", "boom", NULL, clock_ns), 0);
}

/* Runs a job with retry -1 into the dead set now. */
static struct job *push_dead(const char *jid, const char *jobtype, const char *extra)
{
    char buf[512];
    snprintf(buf, sizeof buf, "\"retry\":-1%s%s", extra ? "," : "", extra ? extra : "");
    push_job(jid, jobtype, "default", buf);
    fetch_and_fail(jid);
    struct job *job = find(jid);
    assert_non_null(job);
    assert_int_equal(job->state, JOB_DEAD);
    return job;
}

/* Runs a job with default retry into the retries set now. */
static struct job *push_retry(const char *jid, const char *jobtype)
{
    push_job(jid, jobtype, "default", NULL);
    fetch_and_fail(jid);
    struct job *job = find(jid);
    assert_int_equal(job->state, JOB_RETRY);
    return job;
}

static struct job *push_scheduled(const char *jid, const char *jobtype, int64_t at_ns)
{
    char buf[96];
    struct job *job = push_job(jid, jobtype, "default", at_field(at_ns, buf, sizeof buf));
    assert_int_equal(job->state, JOB_SCHEDULED);
    return job;
}

/* A blocked fetcher that records what it is handed. */
struct test_waiter {
    struct waiter w;
    int ndelivered;
    char jids[8][32];
    int64_t reserved_at[8];
};

static void test_deliver(struct waiter *w, struct job *job)
{
    struct test_waiter *t = w->ctx;
    assert_ptr_equal(&t->w, w);
    /* Reserved under the waiter's wid and unregistered before the callback. */
    assert_int_equal(job->state, JOB_WORKING);
    assert_non_null(job->wid);
    assert_string_equal(job->wid, w->wid);
    assert_int_equal(w->nlinks, 0);
    if (t->ndelivered < 8) {
        snprintf(t->jids[t->ndelivered], sizeof t->jids[0], "%s", job->jid);
        t->reserved_at[t->ndelivered] = job->reserved_at_ns;
    }
    t->ndelivered++;
}

static void waiter_init(struct test_waiter *t, const char *wid)
{
    memset(t, 0, sizeof *t);
    t->w.deliver = test_deliver;
    t->w.ctx = t;
    t->w.wid = wid;
}

static int wait_on(struct test_waiter *t, const char *q1, const char *q2)
{
    const char *qs[] = {q1, q2};
    return engine_wait(E, &t->w, qs, q2 ? 2 : 1);
}

/* ---- push, fetch, ack ---- */

static void engine_push_fetch_ack(void **state)
{
    struct job *job = push("jid-0001", "default", NULL);
    assert_int_equal(job->state, JOB_ENQUEUED);
    assert_true(job->enqueued_at_ns == clock_ns);
    assert_non_null(engine_queue(E, "default"));
    assert_int_equal(engine_queue(E, "default")->size, 1);
    assert_int_equal(engine_enqueued_total(E), 1);
    assert_ptr_equal(find("jid-0001"), job);

    clock_ns += SEC;
    struct job *got = fetch1("default", "w1");
    assert_ptr_equal(got, job);
    assert_int_equal(got->state, JOB_WORKING);
    assert_string_equal(got->wid, "w1");
    assert_true(got->reserved_at_ns == clock_ns);
    assert_int_equal(E->working.count, 1);
    assert_int_equal(engine_queue(E, "default")->size, 0);
    assert_null(fetch1("default", "w1"));
    check_invariants(E);

    clock_ns += 2 * SEC;
    assert_int_equal(engine_ack(E, "jid-0001", clock_ns), 0);
    assert_null(find("jid-0001"));
    assert_int_equal(E->working.count, 0);
    assert_int_equal(E->processed, 1);
    assert_int_equal(E->failures, 0);
    struct day_stats d = engine_day(E, timefmt_day(clock_ns));
    assert_int_equal(d.processed, 1);
    assert_int_equal(d.failed, 0);

    /* A second ACK is a no-op. */
    assert_int_equal(engine_ack(E, "jid-0001", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(E->processed, 1);
    /* A finished jid can be used again. */
    push("jid-0001", "default", NULL);
    assert_int_equal(E->jobs.count, 1);
}

static void engine_fetch_without_wid(void **state)
{
    push("jid-0001", "default", NULL);
    struct job *got = fetch1("default", NULL);
    assert_non_null(got);
    assert_string_equal(got->wid, "");
}

static void engine_fetch_fifo_within_queue(void **state)
{
    char jid[32];
    for (int i = 0; i < 10; i++) {
        snprintf(jid, sizeof jid, "jid-%04d", i);
        push(jid, "default", NULL);
        clock_ns += 1; /* distinct enqueue times do not matter, order does */
    }
    for (int i = 0; i < 10; i++) {
        snprintf(jid, sizeof jid, "jid-%04d", i);
        struct job *got = fetch1("default", "w1");
        assert_non_null(got);
        assert_string_equal(got->jid, jid);
    }
    assert_null(fetch1("default", "w1"));
}

static void engine_fetch_strict_queue_priority(void **state)
{
    push("low-0001", "low", NULL);
    push("high-001", "high", NULL);
    push("low-0002", "low", NULL);
    push("high-002", "high", NULL);
    push("mid-0001", "mid", NULL);
    const char *order[] = {"nosuchq", "high", "mid", "low"};
    static const char *const want[] = {"high-001", "high-002", "mid-0001", "low-0001", "low-0002"};
    for (int i = 0; i < 5; i++) {
        struct job *got = engine_fetch(E, order, 4, "w1", clock_ns);
        assert_non_null(got);
        assert_string_equal(got->jid, want[i]);
    }
    assert_null(engine_fetch(E, order, 4, "w1", clock_ns));
    assert_null(engine_fetch(E, order, 0, "w1", clock_ns));

    /* The order given is the priority: low first this time. */
    push("low-0003", "low", NULL);
    push("high-003", "high", NULL);
    const char *rev[] = {"low", "high"};
    assert_string_equal(engine_fetch(E, rev, 2, "w1", clock_ns)->jid, "low-0003");
    assert_string_equal(engine_fetch(E, rev, 2, "w1", clock_ns)->jid, "high-003");
}

static void engine_fetch_skips_paused_queue(void **state)
{
    push("a-000001", "a", NULL);
    push("b-000001", "b", NULL);
    engine_queue_pause(E, "a");
    assert_true(engine_queue(E, "a")->is_paused);
    assert_false(engine_queue(E, "b")->is_paused);
    const char *qs[] = {"a", "b"};
    struct job *got = engine_fetch(E, qs, 2, "w1", clock_ns);
    assert_non_null(got);
    assert_string_equal(got->jid, "b-000001");
    assert_null(engine_fetch(E, qs, 2, "w1", clock_ns));
    /* A paused queue still takes pushes. */
    push("a-000002", "a", NULL);
    assert_int_equal(engine_queue(E, "a")->size, 2);

    /* Unknown names are ignored: no queue appears. */
    engine_queue_pause(E, "nosuchq");
    assert_null(engine_queue(E, "nosuchq"));
    engine_queue_resume(E, "nosuchq", clock_ns);
    assert_null(engine_queue(E, "nosuchq"));

    engine_queue_resume(E, "a", clock_ns);
    assert_false(engine_queue(E, "a")->is_paused);
    got = engine_fetch(E, qs, 2, "w1", clock_ns);
    assert_non_null(got);
    assert_string_equal(got->jid, "a-000001");
}

/* ---- scheduling ---- */

static void engine_scheduled_job_enqueued_when_due(void **state)
{
    char buf[96];
    int64_t at1 = clock_ns + 10 * SEC, at2 = clock_ns + 10 * SEC + 500 * NS_PER_MS;
    struct job *j1 = push("sched-01", "default", at_field(at1, buf, sizeof buf));
    struct job *j2 = push("sched-02", "default", at_field(at2, buf, sizeof buf));
    assert_int_equal(j1->state, JOB_SCHEDULED);
    assert_true(j1->at_ns == at1);
    assert_int_equal(E->scheduled.count, 2);
    /* The queue is known from the first push, but empty. */
    assert_non_null(engine_queue(E, "default"));
    assert_int_equal(engine_queue(E, "default")->size, 0);
    assert_null(fetch1("default", "w1"));

    int64_t next = engine_tick(E, clock_ns);
    assert_true(next > clock_ns);
    assert_true(next <= at1);
    assert_int_equal(E->scheduled.count, 2);

    next = engine_tick(E, at1 - 1);
    assert_true(next == at1);
    assert_int_equal(j1->state, JOB_SCHEDULED);
    assert_null(fetch1("default", "w1"));

    clock_ns = at1 + 200 * NS_PER_MS;
    next = engine_tick(E, clock_ns);
    assert_int_equal(j1->state, JOB_ENQUEUED);
    assert_true(j1->enqueued_at_ns == clock_ns);
    assert_int_equal(j2->state, JOB_SCHEDULED);
    assert_true(next == at2);

    clock_ns = at2;
    engine_tick(E, clock_ns);
    assert_int_equal(j2->state, JOB_ENQUEUED);
    assert_int_equal(E->scheduled.count, 0);
    assert_string_equal(fetch1("default", "w1")->jid, "sched-01");
    assert_string_equal(fetch1("default", "w1")->jid, "sched-02");
}

static void engine_past_or_present_at_enqueues_now(void **state)
{
    char buf[96];
    struct job *past = push("past-001", "default", at_field(clock_ns - DAY, buf, sizeof buf));
    struct job *now = push("now-0001", "default", at_field(clock_ns, buf, sizeof buf));
    struct job *empty = push("empty-01", "default", "\"at\":\"\"");
    assert_int_equal(past->state, JOB_ENQUEUED);
    assert_int_equal(now->state, JOB_ENQUEUED);
    assert_int_equal(empty->state, JOB_ENQUEUED);
    assert_true(past->enqueued_at_ns == clock_ns);
    assert_int_equal(E->scheduled.count, 0);
}

static void engine_tick_deadline(void **state)
{
    /* Nothing to do: at most one second ahead. */
    assert_true(engine_tick(E, clock_ns) == clock_ns + SEC);
    push_scheduled("sched-01", "Work", clock_ns + 300 * NS_PER_MS);
    assert_true(engine_tick(E, clock_ns) == clock_ns + 300 * NS_PER_MS);
    push_scheduled("sched-02", "Work", clock_ns + 100 * NS_PER_MS);
    assert_true(engine_tick(E, clock_ns) == clock_ns + 100 * NS_PER_MS);
    /* A far-away reservation does not stretch the one-second cap. */
    push("work-001", "other", NULL);
    assert_non_null(fetch1("other", "w1"));
    clock_ns += 400 * NS_PER_MS;
    assert_true(engine_tick(E, clock_ns) == clock_ns + SEC);
    assert_int_equal(E->scheduled.count, 0);
}

/* ---- failures, retries, dead set ---- */

static void engine_fail_schedules_retry_with_backoff(void **state)
{
    struct job *job = push("jid-0001", "default", NULL);
    assert_int_equal(job->retry, 25);
    int64_t t1 = clock_ns;
    assert_ptr_equal(fetch1("default", "w1"), job);
    assert_int_equal(engine_fail(E, "jid-0001", "RuntimeError", " boom ", "[\"a.rb:1\"]", t1), 0);
    assert_int_equal(job->state, JOB_RETRY);
    assert_int_equal(E->retries.count, 1);
    assert_int_equal(E->working.count, 0);
    assert_non_null(job->failure);
    assert_int_equal(job->failure->retry_count, 0);
    assert_int_equal(job->failure->remaining, 25);
    assert_true(job->failure->failed_at_ns == t1);
    assert_string_equal(job->failure->errtype, "RuntimeError");
    assert_string_equal(job->failure->message, "boom");
    assert_string_equal(job->failure->backtrace, "[\"a.rb:1\"]");
    int64_t next1 = job->failure->next_at_ns;
    assert_true(next1 >= t1 + 15 * SEC && next1 <= t1 + 44 * SEC);
    assert_true((next1 - t1) % SEC == 0);
    assert_true(job->tnode.score_ns == next1);
    assert_int_equal(E->processed, 1);
    assert_int_equal(E->failures, 1);
    struct day_stats d = engine_day(E, timefmt_day(t1));
    assert_int_equal(d.processed, 1);
    assert_int_equal(d.failed, 1);

    /* Not due yet; then due. */
    assert_true(engine_tick(E, next1 - 1) == next1);
    assert_int_equal(job->state, JOB_RETRY);
    assert_null(fetch1("default", "w1"));
    clock_ns = next1;
    engine_tick(E, clock_ns);
    assert_int_equal(job->state, JOB_ENQUEUED);
    assert_true(job->enqueued_at_ns == next1);
    assert_int_equal(E->retries.count, 0);

    /* Second failure: count 1, backoff 16..74 s, failed_at unchanged. */
    int64_t t2 = clock_ns + 5 * SEC;
    clock_ns = t2;
    assert_ptr_equal(fetch1("default", "w1"), job);
    assert_int_equal(engine_fail(E, "jid-0001", "", "", NULL, t2), 0);
    assert_int_equal(job->failure->retry_count, 1);
    assert_int_equal(job->failure->remaining, 24);
    assert_true(job->failure->failed_at_ns == t1);
    assert_string_equal(job->failure->errtype, "unknown");
    assert_null(job->failure->backtrace);
    int64_t next2 = job->failure->next_at_ns;
    assert_true(next2 >= t2 + 16 * SEC && next2 <= t2 + 74 * SEC);
    assert_int_equal(E->failures, 2);
    assert_int_equal(E->processed, 2);
}

static void collect_delays(uint32_t seed, int64_t *delays, int n)
{
    struct engine_config cfg = test_config();
    cfg.seed = seed;
    reopen(&cfg);
    for (int i = 0; i < n; i++) {
        char jid[32];
        snprintf(jid, sizeof jid, "jid-%04d", i);
        struct job *job = push(jid, "default", NULL);
        fetch_and_fail(jid);
        delays[i] = job->failure->next_at_ns - clock_ns;
    }
}

static void engine_backoff_jitter_is_seeded(void **state)
{
    enum { N = 60 };
    int64_t a[N], b[N], c[N];
    collect_delays(7, a, N);
    collect_delays(7, b, N);
    collect_delays(8, c, N);
    int distinct = 0, same_as_other_seed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 15 * SEC && a[i] <= 44 * SEC);
        assert_true(a[i] % SEC == 0);
        assert_true(a[i] == b[i]); /* same seed, same schedule */
        same_as_other_seed += a[i] == c[i];
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= a[k] == a[i];
        distinct += !seen;
    }
    assert_true(distinct >= 10); /* the jitter is spread over the 30 values */
    assert_true(same_as_other_seed < N);
}

static void engine_retry_zero_discards(void **state)
{
    push("jid-0001", "default", "\"retry\":0");
    fetch_and_fail("jid-0001");
    assert_null(find("jid-0001"));
    assert_int_equal(E->retries.count, 0);
    assert_int_equal(E->dead.count, 0);
    assert_int_equal(E->failures, 1);
    assert_int_equal(E->processed, 1);
}

static void engine_retry_negative_goes_dead(void **state)
{
    struct job *job = push("jid-0001", "default", "\"retry\":-1");
    fetch_and_fail("jid-0001");
    assert_ptr_equal(find("jid-0001"), job);
    assert_int_equal(job->state, JOB_DEAD);
    assert_int_equal(E->dead.count, 1);
    assert_int_equal(E->retries.count, 0);
    assert_true(job->tnode.score_ns == clock_ns + E->cfg.dead_ttl_ns);
    assert_int_equal(job->failure->retry_count, 0);
    assert_null(fetch1("default", "w1"));
    /* A dead job is not working: ACK and FAIL do not find it. */
    assert_int_equal(engine_ack(E, "jid-0001", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_fail(E, "jid-0001", "E", "m", NULL, clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(job->state, JOB_DEAD);
}

static void engine_retry_n_runs_n_plus_one_times(void **state)
{
    static const int budgets[] = {1, 2, 3, 5};
    for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++) {
        int n = budgets[b];
        char jid[32], extra[32];
        snprintf(jid, sizeof jid, "budget-%d", n);
        snprintf(extra, sizeof extra, "\"retry\":%d", n);
        struct job *job = push(jid, "default", extra);
        int runs = 0;
        while (job->state != JOB_DEAD) {
            assert_true(runs <= n); /* bounded */
            if (job->state == JOB_RETRY) {
                clock_ns = job->failure->next_at_ns;
                engine_tick(E, clock_ns);
            }
            assert_int_equal(job->state, JOB_ENQUEUED);
            fetch_and_fail(jid);
            runs++;
            assert_true(job->failure != NULL);
            assert_int_equal(job->failure->retry_count, runs - 1);
        }
        assert_int_equal(runs, n + 1);
        assert_int_equal(job->failure->retry_count, n);
        assert_int_equal(job->failure->remaining, 0);
        assert_null(fetch1("default", "w1"));
    }
    assert_int_equal(E->failures, 2 + 3 + 4 + 6);
    assert_int_equal(E->dead.count, 4);
}

static void engine_reservation_expiry_is_a_failure(void **state)
{
    struct job *short_job = push("short-01", "default", "\"reserve_for\":10");
    struct job *dflt = push("dflt-001", "default", NULL);
    struct job *two_min = push("twomin-1", "default", "\"reserve_for\":120");
    int64_t t = clock_ns;
    assert_ptr_equal(fetch1("default", "w1"), short_job);
    assert_ptr_equal(fetch1("default", "w1"), dflt);
    assert_ptr_equal(fetch1("default", "w1"), two_min);
    /* reserve_for below 60 s is raised to 60 s; 0 means 1800 s. */
    assert_true(short_job->tnode.score_ns == t + 60 * SEC);
    assert_true(dflt->tnode.score_ns == t + 1800 * SEC);
    assert_true(two_min->tnode.score_ns == t + 120 * SEC);

    assert_true(engine_tick(E, t + 60 * SEC - 1) == t + 60 * SEC);
    assert_int_equal(short_job->state, JOB_WORKING);
    assert_int_equal(E->failures, 0);

    clock_ns = t + 60 * SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(short_job->state, JOB_RETRY);
    assert_string_equal(short_job->failure->errtype, "ReservationExpired");
    assert_int_equal(short_job->failure->retry_count, 0);
    assert_int_equal(E->expired_reservations, 1);
    assert_int_equal(E->failures, 1);
    assert_int_equal(E->processed, 1);
    assert_int_equal(dflt->state, JOB_WORKING);
    assert_int_equal(two_min->state, JOB_WORKING);

    /* After expiry: ACK is a no-op, FAIL is not found; nothing changes. */
    assert_int_equal(engine_ack(E, "short-01", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_fail(E, "short-01", "E", "m", NULL, clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(short_job->state, JOB_RETRY);
    assert_int_equal(E->processed, 1);
    assert_int_equal(E->failures, 1);

    clock_ns = t + 120 * SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(two_min->state, JOB_RETRY);
    assert_int_equal(E->expired_reservations, 2);
    assert_int_equal(dflt->state, JOB_WORKING);
}

static void engine_reservation_expiry_with_no_retries(void **state)
{
    struct job *dead = push("dead-001", "default", "\"retry\":-1,\"reserve_for\":60");
    push("gone-001", "default", "\"retry\":0,\"reserve_for\":60");
    assert_non_null(fetch1("default", "w1"));
    assert_non_null(fetch1("default", "w1"));
    clock_ns += 60 * SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(dead->state, JOB_DEAD);
    assert_null(find("gone-001"));
    assert_int_equal(E->failures, 2);
}

/* Worded as Faktory words it, for dashboards and alerts that match on it. */
static void engine_reservation_expiry_message(void **state)
{
    struct job *job = push("jid-0001", "default", "\"reserve_for\":60");
    assert_non_null(fetch1("default", "w1"));
    clock_ns += 60 * SEC;
    engine_tick(E, clock_ns);
    assert_string_equal(job->failure->errtype, "ReservationExpired");
    assert_string_equal(job->failure->message, "Faktory job reservation expired");
}

static void engine_ack_unknown_changes_nothing(void **state)
{
    struct job *enq = push("enq-0001", "other", NULL);
    struct job *sched = push_scheduled("sched-01", "Work", clock_ns + 60 * SEC);
    struct job *retry = push_retry("retry-01", "Work");
    uint64_t processed = E->processed;
    size_t count = E->jobs.count;
    assert_int_equal(engine_ack(E, "nosuchjid", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_ack(E, "", clock_ns), ENGINE_ENOTFOUND);
    /* Jobs that are held but not working cannot be acked. */
    assert_int_equal(engine_ack(E, "enq-0001", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_ack(E, "sched-01", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_ack(E, "retry-01", clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(enq->state, JOB_ENQUEUED);
    assert_int_equal(sched->state, JOB_SCHEDULED);
    assert_int_equal(retry->state, JOB_RETRY);
    assert_int_equal(E->processed, processed);
    assert_int_equal(E->jobs.count, count);
}

static void engine_fail_unknown_is_not_found(void **state)
{
    struct job *enq = push("enq-0001", "default", NULL);
    assert_int_equal(engine_fail(E, "nosuchjid", "E", "m", NULL, clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(engine_fail(E, "enq-0001", "E", "m", NULL, clock_ns), ENGINE_ENOTFOUND);
    assert_int_equal(enq->state, JOB_ENQUEUED);
    assert_null(enq->failure);
    assert_int_equal(E->failures, 0);
    assert_int_equal(E->processed, 0);
}

static void engine_duplicate_push(void **state)
{
    struct job *orig = push("dup-0001", "default", "\"custom\":{\"k\":1}");
    /* The same job again (created later, so its created_at differs): idempotent. */
    clock_ns += SEC;
    struct job *again = make_job("dup-0001", "Work", "default", "\"custom\":{\"k\":1}");
    assert_int_equal(engine_push(E, again, clock_ns), 1);
    job_free(again);
    /* Same jid, different job. */
    struct job *other = make_job("dup-0001", "Work", "default", "\"custom\":{\"k\":2}");
    assert_int_equal(engine_push(E, other, clock_ns), ENGINE_EEXIST);
    job_free(other);
    other = make_job("dup-0001", "Other", "default", "\"custom\":{\"k\":1}");
    assert_int_equal(engine_push(E, other, clock_ns), ENGINE_EEXIST);
    job_free(other);
    other = make_job("dup-0001", "Work", "elsewhere", "\"custom\":{\"k\":1}");
    assert_int_equal(engine_push(E, other, clock_ns), ENGINE_EEXIST);
    job_free(other);
    assert_null(engine_queue(E, "elsewhere"));
    assert_int_equal(E->jobs.count, 1);
    assert_int_equal(engine_queue(E, "default")->size, 1);
    assert_ptr_equal(find("dup-0001"), orig);

    /* Still idempotent while the job is being worked on. */
    assert_ptr_equal(fetch1("default", "w1"), orig);
    again = make_job("dup-0001", "Work", "default", "\"custom\":{\"k\":1}");
    assert_int_equal(engine_push(E, again, clock_ns), 1);
    job_free(again);
    assert_int_equal(orig->state, JOB_WORKING);
    assert_int_equal(engine_queue(E, "default")->size, 0);
}

static void engine_dead_set_cap_drops_oldest(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_max = 3;
    reopen(&cfg);
    char jid[32];
    for (int i = 0; i < 5; i++) {
        snprintf(jid, sizeof jid, "dead-%03d", i);
        push_dead(jid, "Work", NULL);
        assert_int_equal(E->dead.count, i < 3 ? (size_t)i + 1 : 3);
        clock_ns += SEC;
    }
    assert_int_equal(E->dead_dropped, 2);
    assert_null(find("dead-000"));
    assert_null(find("dead-001"));
    for (int i = 2; i < 5; i++) {
        snprintf(jid, sizeof jid, "dead-%03d", i);
        assert_non_null(find(jid));
        assert_int_equal(find(jid)->state, JOB_DEAD);
    }
    /* Equal death times: the first to die is dropped first. */
    cfg.dead_max = 2;
    reopen(&cfg);
    push_dead("tie-0001", "Work", NULL);
    push_dead("tie-0002", "Work", NULL);
    push_dead("tie-0003", "Work", NULL);
    assert_null(find("tie-0001"));
    assert_non_null(find("tie-0002"));
    assert_non_null(find("tie-0003"));
    assert_int_equal(E->dead_dropped, 1);
}

static void engine_dead_ttl_expiry(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_ttl_ns = 3600 * SEC;
    reopen(&cfg);
    int64_t t = clock_ns;
    push_dead("dead-001", "Work", NULL);
    clock_ns += 10 * SEC;
    push_dead("dead-002", "Work", NULL);
    assert_true(engine_tick(E, t + 3600 * SEC - 1) == t + 3600 * SEC);
    assert_int_equal(E->dead.count, 2);
    engine_tick(E, t + 3600 * SEC);
    assert_null(find("dead-001"));
    assert_non_null(find("dead-002"));
    assert_int_equal(E->dead_dropped, 1);
    engine_tick(E, t + 3610 * SEC);
    assert_int_equal(E->dead.count, 0);
    assert_int_equal(E->dead_dropped, 2);
}

/* ---- blocked fetchers ---- */

static void engine_waiter_gets_pushed_job(void **state)
{
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "default", NULL), 1);
    assert_int_equal(E->waiting.count, 1);
    clock_ns += SEC;
    struct job *job = push("jid-0001", "default", NULL);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jids[0], "jid-0001");
    assert_true(w.reserved_at[0] == clock_ns);
    assert_int_equal(job->state, JOB_WORKING);
    assert_string_equal(job->wid, "wid-1");
    assert_true(job->enqueued_at_ns == clock_ns);
    assert_int_equal(engine_queue(E, "default")->size, 0);
    assert_int_equal(E->working.count, 1);
    assert_int_equal(E->waiting.count, 0);
    assert_int_equal(w.w.nlinks, 0);
    check_invariants(E);
    /* Delivered once only: the next push waits in the queue. */
    push("jid-0002", "default", NULL);
    assert_int_equal(w.ndelivered, 1);
    assert_int_equal(engine_queue(E, "default")->size, 1);
    assert_int_equal(engine_ack(E, "jid-0001", clock_ns), 0);
    engine_unwait(E, &w.w);
}

static void engine_wait_skips_paused_queue(void **state)
{
    push("jid-0001", "paused", NULL);
    assert_non_null(fetch1("paused", "w1"));
    assert_int_equal(engine_ack(E, "jid-0001", clock_ns), 0);
    engine_queue_pause(E, "paused");

    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "paused", NULL), 0);
    assert_int_equal(E->waiting.count, 0);
    push("jid-0002", "paused", NULL);
    assert_int_equal(w.ndelivered, 0);
    assert_int_equal(engine_queue(E, "paused")->size, 1);
    /* See the report: engine_wait leaves w->links allocated when it waits on
     * nothing, so the caller must still unwait. */
    engine_unwait(E, &w.w);

    assert_int_equal(wait_on(&w, "paused", "other"), 1);
    push("jid-0003", "paused", NULL);
    assert_int_equal(w.ndelivered, 0);
    push("jid-0004", "other", NULL);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jids[0], "jid-0004");
    assert_int_equal(engine_queue(E, "paused")->size, 2);
    engine_unwait(E, &w.w);
}

static void engine_unwait_stops_delivery(void **state)
{
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "a", "b"), 2);
    assert_int_equal(E->waiting.count, 2);
    engine_unwait(E, &w.w);
    assert_int_equal(E->waiting.count, 0);
    assert_int_equal(w.w.nlinks, 0);
    engine_unwait(E, &w.w); /* harmless when not waiting */
    push("jid-0001", "a", NULL);
    push("jid-0002", "b", NULL);
    assert_int_equal(w.ndelivered, 0);
    assert_int_equal(engine_queue(E, "a")->size, 1);
    assert_int_equal(engine_queue(E, "b")->size, 1);
}

static void engine_waiters_served_in_wait_order(void **state)
{
    struct test_waiter w1, w2;
    waiter_init(&w1, "wid-1");
    waiter_init(&w2, "wid-2");
    assert_int_equal(wait_on(&w1, "default", NULL), 1);
    assert_int_equal(wait_on(&w2, "default", NULL), 1);
    struct job *j1 = push("jid-0001", "default", NULL);
    assert_int_equal(w1.ndelivered, 1);
    assert_int_equal(w2.ndelivered, 0);
    assert_string_equal(j1->wid, "wid-1");
    struct job *j2 = push("jid-0002", "default", NULL);
    assert_int_equal(w1.ndelivered, 1);
    assert_int_equal(w2.ndelivered, 1);
    assert_string_equal(w2.jids[0], "jid-0002");
    assert_string_equal(j2->wid, "wid-2");
    push("jid-0003", "default", NULL);
    assert_int_equal(engine_queue(E, "default")->size, 1);

    /* Re-waiting puts a waiter at the back of the line. */
    struct test_waiter w3;
    waiter_init(&w3, "wid-3");
    wait_on(&w1, "x", NULL);
    wait_on(&w3, "x", NULL);
    wait_on(&w1, "x", NULL);
    push("x-000001", "x", NULL);
    assert_int_equal(w3.ndelivered, 1);
    assert_int_equal(w1.ndelivered, 1);
    engine_unwait(E, &w1.w);
    engine_unwait(E, &w2.w);
    engine_unwait(E, &w3.w);
}

static void engine_waiter_on_two_queues_removed_from_both(void **state)
{
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "a", "b"), 2);
    push("jid-0001", "b", NULL);
    assert_int_equal(w.ndelivered, 1);
    assert_int_equal(E->waiting.count, 0);
    push("jid-0002", "a", NULL);
    assert_int_equal(w.ndelivered, 1);
    assert_int_equal(engine_queue(E, "a")->size, 1);

    /* The same name twice is waited on once. */
    assert_int_equal(wait_on(&w, "c", "c"), 1);
    push("jid-0003", "c", NULL);
    assert_int_equal(w.ndelivered, 2);
    assert_int_equal(E->waiting.count, 0);
}

static void engine_resume_delivers_backlog(void **state)
{
    push("jid-0000", "q", NULL);
    assert_non_null(fetch1("q", "w0"));
    assert_int_equal(engine_ack(E, "jid-0000", clock_ns), 0);

    struct test_waiter w1, w2;
    waiter_init(&w1, "wid-1");
    waiter_init(&w2, "wid-2");
    assert_int_equal(wait_on(&w1, "q", NULL), 1);
    assert_int_equal(wait_on(&w2, "q", NULL), 1);
    engine_queue_pause(E, "q");
    push("jid-0001", "q", NULL);
    push("jid-0002", "q", NULL);
    push("jid-0003", "q", NULL);
    assert_int_equal(w1.ndelivered + w2.ndelivered, 0);
    assert_int_equal(engine_queue(E, "q")->size, 3);

    clock_ns += 5 * SEC;
    engine_queue_resume(E, "q", clock_ns);
    assert_int_equal(w1.ndelivered, 1);
    assert_int_equal(w2.ndelivered, 1);
    assert_string_equal(w1.jids[0], "jid-0001");
    assert_string_equal(w2.jids[0], "jid-0002");
    assert_true(w1.reserved_at[0] == clock_ns);
    assert_string_equal(find("jid-0001")->wid, "wid-1");
    assert_int_equal(engine_queue(E, "q")->size, 1);
    assert_int_equal(E->waiting.count, 0);
    /* The reservation runs from the resume time. */
    assert_true(find("jid-0001")->tnode.score_ns == clock_ns + 1800 * SEC);
}

static void engine_requeue_hands_job_to_waiter(void **state)
{
    push_dead("dead-001", "Work", NULL);
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "default", NULL), 1);
    assert_int_equal(engine_mutate(E, MUTATE_REQUEUE, TARGET_DEAD, NULL, clock_ns), 1);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jids[0], "dead-001");
    assert_int_equal(E->dead.count, 0);
}

static void engine_scheduled_due_hands_job_to_waiter(void **state)
{
    push_scheduled("sched-01", "Work", clock_ns + SEC);
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    assert_int_equal(wait_on(&w, "default", NULL), 1);
    clock_ns += SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jids[0], "sched-01");
}

/* ---- queue administration ---- */

static void engine_queue_remove_drops_jobs(void **state)
{
    push("q-000001", "q", NULL);
    push("q-000002", "q", NULL);
    push("q-000003", "q", NULL);
    push("r-000001", "r", NULL);
    char buf[96];
    struct job *later = push("q-later1", "q", at_field(clock_ns + 60 * SEC, buf, sizeof buf));
    engine_queue_pause(E, "q");

    engine_queue_remove(E, "q");
    assert_null(engine_queue(E, "q"));
    assert_null(find("q-000001"));
    assert_null(find("q-000003"));
    assert_non_null(find("r-000001"));
    assert_int_equal(E->jobs.count, 2);
    assert_null(fetch1("q", "w1"));
    /* A scheduled job is not in the queue: it stays, and recreates the queue
     * (unpaused: the flag went with the queue) when due. */
    assert_int_equal(later->state, JOB_SCHEDULED);
    clock_ns += 60 * SEC;
    engine_tick(E, clock_ns);
    assert_non_null(engine_queue(E, "q"));
    assert_false(engine_queue(E, "q")->is_paused);
    assert_ptr_equal(fetch1("q", "w1"), later);

    engine_queue_remove(E, "nosuchq");
    assert_int_equal(E->jobs.count, 2);
    engine_queue_remove(E, "*");
    assert_int_equal(E->queues.count, 0);
    assert_null(find("r-000001"));
    /* The working job is not in a queue, so it survives. */
    assert_ptr_equal(find("q-later1"), later);
    assert_int_equal(E->jobs.count, 1);
}

static void engine_queue_star_variants(void **state)
{
    push("a-000001", "a", NULL);
    push("b-000001", "b", NULL);
    push("c-000001", "c", NULL);
    engine_queue_pause(E, "*");
    assert_true(engine_queue(E, "a")->is_paused);
    assert_true(engine_queue(E, "b")->is_paused);
    assert_true(engine_queue(E, "c")->is_paused);
    const char *qs[] = {"a", "b", "c"};
    assert_null(engine_fetch(E, qs, 3, "w1", clock_ns));
    engine_queue_resume(E, "*", clock_ns);
    assert_false(engine_queue(E, "a")->is_paused);
    assert_false(engine_queue(E, "c")->is_paused);
    assert_string_equal(engine_fetch(E, qs, 3, "w1", clock_ns)->jid, "a-000001");
    /* "*" on an engine without queues is fine. */
    engine_queue_remove(E, "*");
    engine_queue_pause(E, "*");
    engine_queue_resume(E, "*", clock_ns);
    assert_int_equal(E->queues.count, 0);
}

static void engine_queue_latency_seconds(void **state)
{
    push("jid-0001", "default", NULL);
    clock_ns += 2500 * NS_PER_MS;
    push("jid-0002", "default", NULL);
    clock_ns += 1500 * NS_PER_MS;
    assert_true(engine_queue_latency(E, "default", clock_ns) == 4.0);
    assert_non_null(fetch1("default", "w1"));
    assert_true(engine_queue_latency(E, "default", clock_ns) == 1.5);
    assert_non_null(fetch1("default", "w1"));
    assert_true(engine_queue_latency(E, "default", clock_ns) == 0.0);
    assert_true(engine_queue_latency(E, "nosuchq", clock_ns) == 0.0);
}

/* ---- workers ---- */

static void engine_worker_attach_detach(void **state)
{
    struct worker_hello h = {.wid = "wid-1", .hostname = "host1", .labels = "[\"a\"]",
                             .v = "2", .pid = 42, .rss_kb = 100};
    engine_worker_attach(E, &h, clock_ns);
    struct worker *w = engine_worker(E, "wid-1");
    assert_non_null(w);
    assert_int_equal(w->nconns, 1);
    assert_string_equal(w->hostname, "host1");
    assert_string_equal(w->labels, "[\"a\"]");
    assert_int_equal(w->pid, 42);
    assert_true(w->started_at_ns == clock_ns);
    assert_true(w->last_beat_ns == clock_ns);
    assert_int_equal(w->state, WORKER_RUNNING);

    /* A second connection of the same process: the first metadata is kept. */
    struct worker_hello h2 = {.wid = "wid-1", .hostname = "host2", .pid = 43};
    engine_worker_attach(E, &h2, clock_ns + SEC);
    assert_ptr_equal(engine_worker(E, "wid-1"), w);
    assert_int_equal(w->nconns, 2);
    assert_string_equal(w->hostname, "host1");
    assert_int_equal(w->pid, 42);

    engine_worker_detach(E, "wid-1");
    assert_non_null(engine_worker(E, "wid-1"));
    assert_int_equal(engine_worker(E, "wid-1")->nconns, 1);
    engine_worker_detach(E, "wid-1");
    assert_null(engine_worker(E, "wid-1"));
    engine_worker_detach(E, "wid-1"); /* unknown: ignored */
    assert_int_equal(E->workers.count, 0);

    struct worker_hello bare = {.wid = "wid-2"};
    engine_worker_attach(E, &bare, clock_ns);
    w = engine_worker(E, "wid-2");
    assert_string_equal(w->hostname, "");
    assert_string_equal(w->labels, "[]");
    engine_worker_detach(E, "wid-2");
}

static void engine_beat_state_is_one_way(void **state)
{
    struct worker_hello h = {.wid = "wid-1", .rss_kb = 100};
    engine_worker_attach(E, &h, clock_ns);
    enum worker_state st = WORKER_TERMINATE;
    static const struct {
        const char *req;
        enum worker_state want;
    } steps[] = {
        {NULL, WORKER_RUNNING},        {"", WORKER_RUNNING},          {"running", WORKER_RUNNING},
        {"quiet", WORKER_QUIET},       {"", WORKER_QUIET},            {"running", WORKER_QUIET},
        {"QUIET", WORKER_QUIET},       {"terminate", WORKER_TERMINATE}, {"quiet", WORKER_TERMINATE},
        {"running", WORKER_TERMINATE},
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        clock_ns += SEC;
        st = (enum worker_state)-1;
        assert_int_equal(engine_beat(E, "wid-1", steps[i].req, 0, clock_ns, &st), 0);
        if (st != steps[i].want)
            fail_msg("step %zu (%s): state %d, want %d", i, steps[i].req ? steps[i].req : "NULL",
                     (int)st, (int)steps[i].want);
        assert_true(engine_worker(E, "wid-1")->last_beat_ns == clock_ns);
    }
    /* rss_kb is taken when given. */
    struct worker *w = engine_worker(E, "wid-1");
    assert_true(w->rss_kb == 100);
    assert_int_equal(engine_beat(E, "wid-1", NULL, 2048, clock_ns, &st), 0);
    assert_true(w->rss_kb == 2048);

    /* running -> terminate directly; operator signals follow the same rule. */
    struct worker_hello h2 = {.wid = "wid-2"};
    engine_worker_attach(E, &h2, clock_ns);
    assert_int_equal(engine_beat(E, "wid-2", "terminate", 0, clock_ns, &st), 0);
    assert_int_equal(st, WORKER_TERMINATE);
    assert_int_equal(engine_worker_signal(E, "wid-2", WORKER_QUIET), 0);
    assert_int_equal(engine_worker(E, "wid-2")->state, WORKER_TERMINATE);
    struct worker_hello h3 = {.wid = "wid-3"};
    engine_worker_attach(E, &h3, clock_ns);
    assert_int_equal(engine_worker_signal(E, "wid-3", WORKER_QUIET), 0);
    assert_int_equal(engine_beat(E, "wid-3", "", 0, clock_ns, &st), 0);
    assert_int_equal(st, WORKER_QUIET);
    assert_int_equal(engine_worker_signal(E, "wid-3", WORKER_RUNNING), 0);
    assert_int_equal(engine_worker(E, "wid-3")->state, WORKER_QUIET);
}

static void engine_beat_unknown_worker(void **state)
{
    enum worker_state st = WORKER_QUIET;
    assert_int_equal(engine_beat(E, "nosuchwid", "quiet", 0, clock_ns, &st),
                     ENGINE_EUNKNOWN_WORKER);
    assert_int_equal(st, WORKER_QUIET); /* untouched */
    assert_int_equal(engine_worker_signal(E, "nosuchwid", WORKER_QUIET), ENGINE_EUNKNOWN_WORKER);
    assert_null(engine_worker(E, "nosuchwid"));
    struct worker_hello h = {.wid = "wid-1"};
    engine_worker_attach(E, &h, clock_ns);
    engine_worker_detach(E, "wid-1");
    assert_int_equal(engine_beat(E, "wid-1", NULL, 0, clock_ns, &st), ENGINE_EUNKNOWN_WORKER);
}

static void engine_silent_workers_reaped(void **state)
{
    int64_t t = clock_ns;
    struct worker_hello h1 = {.wid = "wid-1"}, h2 = {.wid = "wid-2"};
    engine_worker_attach(E, &h1, t);
    engine_worker_attach(E, &h2, t);
    engine_worker_attach(E, &h2, t);
    enum worker_state st;
    engine_tick(E, t + 30 * SEC);
    assert_int_equal(engine_beat(E, "wid-2", NULL, 0, t + 30 * SEC, &st), 0);
    engine_tick(E, t + 60 * SEC - 1);
    assert_int_equal(reaped_log.n, 0);
    assert_non_null(engine_worker(E, "wid-1"));

    engine_tick(E, t + 60 * SEC);
    assert_int_equal(reaped_log.n, 1);
    assert_string_equal(reaped_log.wids[0], "wid-1");
    assert_int_equal(E->workers_reaped, 1);
    assert_null(engine_worker(E, "wid-1"));
    assert_non_null(engine_worker(E, "wid-2"));
    /* Its connections closing later is harmless. */
    engine_worker_detach(E, "wid-1");

    engine_tick(E, t + 89 * SEC);
    assert_int_equal(reaped_log.n, 1);
    engine_tick(E, t + 90 * SEC);
    assert_int_equal(reaped_log.n, 2);
    assert_string_equal(reaped_log.wids[1], "wid-2");
    assert_int_equal(E->workers.count, 0);
    /* Unknown now: its BEAT is refused. */
    assert_int_equal(engine_beat(E, "wid-2", NULL, 0, t + 91 * SEC, &st), ENGINE_EUNKNOWN_WORKER);
}

static void engine_reaped_hook_may_detach(void **state)
{
    struct engine_config cfg = test_config();
    cfg.worker_ttl_ns = 10 * SEC;
    reopen(&cfg);
    reaped_log.detach_in_hook = 1;
    struct worker_hello h = {.wid = "wid-1"};
    engine_worker_attach(E, &h, clock_ns);
    engine_worker_attach(E, &h, clock_ns);
    engine_worker_attach(E, &h, clock_ns);
    engine_tick(E, clock_ns + 10 * SEC);
    assert_int_equal(reaped_log.n, 1);
    assert_null(engine_worker(E, "wid-1"));
    assert_int_equal(E->workers_reaped, 1);
}

/* ---- mutate ---- */

static void engine_mutate_kill_by_jids(void **state)
{
    push_scheduled("sched-01", "Work", clock_ns + 60 * SEC);
    push_scheduled("sched-02", "Work", clock_ns + 60 * SEC);
    push_scheduled("sched-03", "Work", clock_ns + 60 * SEC);
    const char *jids[] = {"sched-01", "sched-03", "nosuchjid"};
    struct mutate_filter f = {.jids = jids, .n_jids = 3};
    clock_ns += SEC;
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_SCHEDULED, &f, clock_ns), 2);
    assert_int_equal(find("sched-01")->state, JOB_DEAD);
    assert_int_equal(find("sched-03")->state, JOB_DEAD);
    assert_int_equal(find("sched-02")->state, JOB_SCHEDULED);
    assert_true(find("sched-01")->tnode.score_ns == clock_ns + E->cfg.dead_ttl_ns);
    assert_int_equal(E->scheduled.count, 1);
    assert_int_equal(E->dead.count, 2);
    /* A jid is an exact match, not a substring. */
    const char *partial[] = {"sched-0"};
    struct mutate_filter pf = {.jids = partial, .n_jids = 1};
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_SCHEDULED, &pf, clock_ns), 0);
    /* Targets are separate: the jids are not in retries. */
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_RETRIES, &f, clock_ns), 0);
    assert_int_equal(E->dead.count, 2);
}

static void engine_mutate_discard_by_jobtype(void **state)
{
    push_retry("retry-01", "Alpha");
    push_retry("retry-02", "Beta");
    push_retry("retry-03", "Alpha");
    struct mutate_filter f = {.jobtype = "Alpha"};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_RETRIES, &f, clock_ns), 2);
    assert_null(find("retry-01"));
    assert_null(find("retry-03"));
    assert_int_equal(find("retry-02")->state, JOB_RETRY);
    /* jobtype is exact. */
    struct mutate_filter g = {.jobtype = "Bet"};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_RETRIES, &g, clock_ns), 0);
    assert_int_equal(E->retries.count, 1);
}

static void engine_mutate_requeue_by_glob(void **state)
{
    push_dead("dead-001", "Work", "\"custom\":{\"tenant\":\"vip\"}");
    push_dead("dead-002", "Work", "\"custom\":{\"tenant\":\"basic\"}");
    push_dead("dead-003", "Work", "\"custom\":{\"tenant\":\"vip\"}");
    clock_ns += 5 * SEC;
    struct mutate_filter f = {.glob = "*\"tenant\":\"vip\"*"};
    assert_int_equal(engine_mutate(E, MUTATE_REQUEUE, TARGET_DEAD, &f, clock_ns), 2);
    struct job *j1 = find("dead-001");
    assert_int_equal(j1->state, JOB_ENQUEUED);
    assert_true(j1->enqueued_at_ns == clock_ns);
    assert_non_null(j1->failure); /* requeue keeps the failure data */
    assert_int_equal(find("dead-003")->state, JOB_ENQUEUED);
    assert_int_equal(find("dead-002")->state, JOB_DEAD);
    assert_int_equal(engine_queue(E, "default")->size, 2);
    assert_string_equal(fetch1("default", "w1")->jid, "dead-001");
}

static void engine_mutate_filter_precedence(void **state)
{
    push_dead("dead-001", "Alpha", NULL);
    push_dead("dead-002", "Beta", NULL);
    push_dead("dead-003", "Beta", "\"custom\":{\"x\":1}");
    /* glob and jobtype must both match. */
    struct mutate_filter both = {.glob = "*\"custom\"*", .jobtype = "Alpha"};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, &both, clock_ns), 0);
    both.jobtype = "Beta";
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, &both, clock_ns), 1);
    assert_null(find("dead-003"));
    /* Non-empty jids are used alone: jobtype and glob are ignored. */
    const char *jids[] = {"dead-001"};
    struct mutate_filter j = {.jids = jids, .n_jids = 1, .glob = "nomatch", .jobtype = "Beta"};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, &j, clock_ns), 1);
    assert_null(find("dead-001"));
    assert_non_null(find("dead-002"));
    /* A glob that matches nothing. */
    struct mutate_filter none = {.glob = "nomatch"};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, &none, clock_ns), 0);
    assert_int_equal(E->dead.count, 1);
}

static void engine_mutate_clear_and_unfiltered(void **state)
{
    push_scheduled("sched-01", "Work", clock_ns + 60 * SEC);
    push_scheduled("sched-02", "Work", clock_ns + 60 * SEC);
    push_retry("retry-01", "Work");
    push_retry("retry-02", "Work");
    push_dead("dead-001", "Work", NULL);
    /* clear ignores the filter. */
    const char *jids[] = {"sched-01"};
    struct mutate_filter f = {.jids = jids, .n_jids = 1};
    assert_int_equal(engine_mutate(E, MUTATE_CLEAR, TARGET_SCHEDULED, &f, clock_ns), 2);
    assert_int_equal(E->scheduled.count, 0);
    /* discard without a filter (NULL or empty) empties the set. */
    struct mutate_filter empty = {0};
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_RETRIES, &empty, clock_ns), 2);
    assert_int_equal(E->retries.count, 0);
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, NULL, clock_ns), 1);
    assert_int_equal(E->jobs.count, 0);
    /* On empty sets nothing happens. */
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_RETRIES, NULL, clock_ns), 0);
}

static void engine_mutate_kill_respects_dead_cap(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_max = 2;
    reopen(&cfg);
    for (int i = 0; i < 4; i++) {
        char jid[32];
        snprintf(jid, sizeof jid, "sched-%02d", i);
        push_scheduled(jid, "Work", clock_ns + (i + 1) * SEC);
    }
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_SCHEDULED, NULL, clock_ns), 4);
    assert_int_equal(E->dead.count, 2);
    assert_int_equal(E->dead_dropped, 2);
    assert_int_equal(E->scheduled.count, 0);
    assert_null(find("sched-00"));
    assert_null(find("sched-01"));
    assert_non_null(find("sched-03"));
    /* kill on the dead set itself refreshes expiry without dropping. */
    clock_ns += 10 * SEC;
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_DEAD, NULL, clock_ns), 2);
    assert_int_equal(E->dead.count, 2);
    assert_int_equal(E->dead_dropped, 2);
    assert_true(find("sched-02")->tnode.score_ns == clock_ns + E->cfg.dead_ttl_ns);
}

/* ---- flush and counters ---- */

static void engine_flush_empties_everything(void **state)
{
    struct test_waiter w;
    waiter_init(&w, "wid-1");
    struct worker_hello h = {.wid = "wid-1"};
    engine_worker_attach(E, &h, clock_ns);

    push("enq-0001", "e", NULL);
    push("paused-1", "p", NULL);
    engine_queue_pause(E, "p");
    push_scheduled("sched-01", "Work", clock_ns + 60 * SEC);
    push_retry("retry-01", "Work");
    push_dead("dead-001", "Work", NULL);
    push("work-001", "w", NULL);
    assert_non_null(fetch1("w", "wid-1"));
    push("ack-0001", "w", NULL);
    assert_non_null(fetch1("w", "wid-1"));
    assert_int_equal(engine_ack(E, "ack-0001", clock_ns), 0);
    assert_int_equal(wait_on(&w, "x", NULL), 1);
    assert_true(E->processed > 0 && E->failures > 0);
    check_invariants(E);

    engine_flush(E);
    assert_int_equal(E->jobs.count, 0);
    assert_int_equal(E->queues.count, 0);
    assert_int_equal(E->scheduled.count, 0);
    assert_int_equal(E->retries.count, 0);
    assert_int_equal(E->dead.count, 0);
    assert_int_equal(E->working.count, 0);
    assert_int_equal(E->processed, 0);
    assert_int_equal(E->failures, 0);
    assert_int_equal(E->dead_dropped, 0);
    struct day_stats d = engine_day(E, timefmt_day(clock_ns));
    assert_int_equal(d.processed, 0);
    assert_int_equal(d.failed, 0);
    assert_int_equal(engine_enqueued_total(E), 0);
    assert_int_equal(engine_ack(E, "work-001", clock_ns), ENGINE_ENOTFOUND);
    /* Workers and waiters stay. */
    assert_non_null(engine_worker(E, "wid-1"));
    push("x-000001", "x", NULL);
    assert_int_equal(w.ndelivered, 1);
    /* The pause flag went with the queue. */
    push("paused-2", "p", NULL);
    assert_false(engine_queue(E, "p")->is_paused);
    assert_non_null(fetch1("p", "wid-1"));
    /* The engine keeps working. */
    assert_true(engine_tick(E, clock_ns) == clock_ns + SEC);
    engine_unwait(E, &w.w);
}

static void engine_per_day_counters(void **state)
{
    int64_t d0 = timefmt_day(clock_ns);
    push("ack-0001", "default", NULL);
    assert_non_null(fetch1("default", "w1"));
    assert_int_equal(engine_ack(E, "ack-0001", clock_ns), 0);

    clock_ns += DAY;
    push("ack-0002", "default", NULL);
    assert_non_null(fetch1("default", "w1"));
    assert_int_equal(engine_ack(E, "ack-0002", clock_ns), 0);
    push("fail-001", "default", "\"retry\":0");
    fetch_and_fail("fail-001");

    struct day_stats s0 = engine_day(E, d0), s1 = engine_day(E, d0 + 1), s2 = engine_day(E, d0 + 2);
    assert_true(s0.day == d0);
    assert_int_equal(s0.processed, 1);
    assert_int_equal(s0.failed, 0);
    assert_true(s1.day == d0 + 1);
    assert_int_equal(s1.processed, 2);
    assert_int_equal(s1.failed, 1);
    assert_true(s2.day == d0 + 2);
    assert_int_equal(s2.processed, 0);
    assert_int_equal(E->processed, 3);
    assert_int_equal(E->failures, 1);

    /* The history is a ring: a day ENGINE_HISTORY_DAYS later reuses the slot. */
    clock_ns = T0 + ENGINE_HISTORY_DAYS * DAY;
    push("ack-0003", "default", NULL);
    assert_non_null(fetch1("default", "w1"));
    assert_int_equal(engine_ack(E, "ack-0003", clock_ns), 0);
    assert_int_equal(engine_day(E, d0 + ENGINE_HISTORY_DAYS).processed, 1);
    assert_int_equal(engine_day(E, d0).processed, 0);
    assert_int_equal(engine_day(E, d0 + 1).processed, 2);
}

static void engine_strerror_texts(void **state)
{
    assert_string_equal(engine_strerror(ENGINE_ENOTFOUND), "not found");
    assert_string_equal(engine_strerror(ENGINE_EEXIST), "jid already in use by a different job");
    assert_string_equal(engine_strerror(ENGINE_EUNKNOWN_WORKER), "unknown worker");
    assert_string_equal(engine_strerror(ENGINE_EBADARG), "bad argument");
    assert_string_equal(engine_strerror(-999), "unknown error");
}

/* ---- randomised run ---- */

static uint32_t rng_state;

static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

struct pick {
    uint32_t k;
    struct job *job;
};

static int pick_fn(struct tset_node *node, void *arg)
{
    struct pick *p = arg;
    if (p->k-- == 0) {
        p->job = job_of(node);
        return 1;
    }
    return 0;
}

static struct job *pick_from(struct tset *s)
{
    if (!s->count)
        return NULL;
    struct pick p = {rnd() % (uint32_t)s->count, NULL};
    tset_walk(s, pick_fn, &p);
    assert_non_null(p.job);
    return p.job;
}

/*
 * Runs a deterministic random mix of every operation on E, checking the
 * invariants after each step. Returns the total number of deliveries to
 * blocked fetchers.
 */
static int run_random_ops(uint32_t seed, int steps)
{
    rng_state = seed;
    static const char *const queues[] = {"q0", "q1", "q2"};
    static const int retries[] = {-1, 0, 1, 2, 25};
    struct test_waiter ws[2];
    waiter_init(&ws[0], "wid-a");
    waiter_init(&ws[1], "wid-b");
    int next_jid = 0;
    for (int step = 0; step < steps; step++) {
        uint32_t op = rnd() % 16;
        char jid[32], extra[160];
        if (op < 4) {
            snprintf(jid, sizeof jid, "rand-%06d", next_jid++);
            int n = snprintf(extra, sizeof extra, "\"retry\":%d,\"reserve_for\":%d",
                             retries[rnd() % 5], (int)(rnd() % 3) * 60);
            if (rnd() % 4 == 0) {
                char buf[96];
                snprintf(extra + n, sizeof extra - (size_t)n, ",%s",
                         at_field(clock_ns + (int64_t)(rnd() % 120) * SEC, buf, sizeof buf));
            }
            struct job *job = make_job(jid, rnd() % 2 ? "A" : "B", queues[rnd() % 3], extra);
            assert_int_equal(engine_push(E, job, clock_ns), 0);
        } else if (op < 7) {
            const char *qs[3] = {queues[rnd() % 3], queues[rnd() % 3], queues[rnd() % 3]};
            struct job *job = engine_fetch(E, qs, 1 + (int)(rnd() % 3), "wid-r", clock_ns);
            if (job)
                assert_int_equal(job->state, JOB_WORKING);
        } else if (op < 9) {
            struct job *job = pick_from(&E->working);
            if (job)
                assert_int_equal(engine_ack(E, job->jid, clock_ns), 0);
        } else if (op < 10) {
            struct job *job = pick_from(&E->working);
            if (job)
                assert_int_equal(engine_fail(E, job->jid, "E", "m", NULL, clock_ns), 0);
        } else if (op < 12) {
            clock_ns += (int64_t)(rnd() % 40) * SEC;
            int64_t next = engine_tick(E, clock_ns);
            assert_true(next > clock_ns && next <= clock_ns + SEC);
        } else if (op < 13) {
            const char *q = rnd() % 8 ? queues[rnd() % 3] : "*";
            if (rnd() % 2)
                engine_queue_pause(E, q);
            else
                engine_queue_resume(E, q, clock_ns);
        } else if (op < 14) {
            struct test_waiter *w = &ws[rnd() % 2];
            if (rnd() % 3)
                wait_on(w, queues[rnd() % 3], queues[rnd() % 3]);
            else
                engine_unwait(E, &w->w);
        } else if (op < 15) {
            enum mutate_cmd cmd = (enum mutate_cmd)(rnd() % 4);
            enum mutate_target target = (enum mutate_target)(rnd() % 3);
            struct mutate_filter f = {.jobtype = rnd() % 2 ? "A" : NULL};
            engine_mutate(E, cmd, target, &f, clock_ns);
        } else if (rnd() % 20 == 0) {
            engine_queue_remove(E, queues[rnd() % 3]);
        }
        check_invariants(E);
    }
    engine_unwait(E, &ws[0].w);
    engine_unwait(E, &ws[1].w);
    return ws[0].ndelivered + ws[1].ndelivered;
}

static void engine_random_operations_keep_invariants(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_max = 40;
    cfg.dead_ttl_ns = 600 * SEC;
    reopen(&cfg);
    int delivered = run_random_ops(0xBADC0DEu, 20000);
    /* Something of each kind happened. */
    assert_true(E->processed > 100);
    assert_true(E->failures > 10);
    assert_true(E->expired_reservations > 0);
    assert_true(E->dead_dropped > 0);
    assert_true(delivered > 0);
}

/* ---- change records: replay and snapshots rebuild the same state ---- */

struct seq_collect {
    const char **jids;
    size_t n, cap;
};

static int seq_collect_fn(struct tset_node *node, void *arg)
{
    struct seq_collect *c = arg;
    if (c->n < c->cap)
        c->jids[c->n] = job_of(node)->jid;
    c->n++;
    return 0;
}

static void assert_same_set_order(struct tset *a, struct tset *b, const char *name)
{
    assert_int_equal(a->count, b->count);
    struct seq_collect ca = {calloc(a->count + 1, sizeof(char *)), 0, a->count};
    struct seq_collect cb = {calloc(b->count + 1, sizeof(char *)), 0, b->count};
    assert_non_null(ca.jids);
    assert_non_null(cb.jids);
    tset_walk(a, seq_collect_fn, &ca);
    tset_walk(b, seq_collect_fn, &cb);
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(ca.jids[i], cb.jids[i]) != 0)
            fail_msg("%s set position %zu: %s vs %s", name, i, ca.jids[i], cb.jids[i]);
    free(ca.jids);
    free(cb.jids);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares everything the journal carries: jobs, placements, queues, counters. */
static void assert_same_state(struct engine *a, struct engine *b, int64_t first_day,
                              int64_t last_day, int with_drop_counters)
{
    assert_int_equal(a->jobs.count, b->jobs.count);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&a->jobs, &i, &key, &val);) {
        struct job *x = val, *y = strmap_get(&b->jobs, key);
        if (!y)
            fail_msg("job %s (state %d) missing after rebuild", key, (int)x->state);
        if (x->state != y->state)
            fail_msg("job %s: state %d vs %d", key, (int)x->state, (int)y->state);
        assert_string_equal(x->jobtype, y->jobtype);
        assert_string_equal(x->queue, y->queue);
        assert_string_equal(x->created_at, y->created_at);
        assert_int_equal(x->body_len, y->body_len);
        assert_memory_equal(x->body, y->body, x->body_len);
        assert_int_equal(x->retry, y->retry);
        assert_int_equal(x->reserve_for_s, y->reserve_for_s);
        assert_true(x->at_ns == y->at_ns);
        if (x->enqueued_at_ns != y->enqueued_at_ns)
            fail_msg("job %s: enqueued_at %lld vs %lld", key, (long long)x->enqueued_at_ns,
                     (long long)y->enqueued_at_ns);
        if (x->state != JOB_ENQUEUED && x->tnode.score_ns != y->tnode.score_ns)
            fail_msg("job %s: score %lld vs %lld", key, (long long)x->tnode.score_ns,
                     (long long)y->tnode.score_ns);
        if (x->state == JOB_WORKING) {
            assert_string_equal(x->wid, y->wid);
            assert_true(x->reserved_at_ns == y->reserved_at_ns);
        }
        assert_int_equal(x->failure == NULL, y->failure == NULL);
        if (x->failure) {
            const struct job_failure *f = x->failure, *g = y->failure;
            assert_int_equal(f->retry_count, g->retry_count);
            assert_int_equal(f->remaining, g->remaining);
            assert_true(f->failed_at_ns == g->failed_at_ns);
            assert_true(f->next_at_ns == g->next_at_ns);
            assert_true(same_str(f->errtype, g->errtype));
            assert_true(same_str(f->message, g->message));
            assert_true(same_str(f->backtrace, g->backtrace));
        }
    }
    assert_int_equal(a->queues.count, b->queues.count);
    for (size_t i = 0; strmap_next(&a->queues, &i, &key, &val);) {
        struct queue *q = val, *r = strmap_get(&b->queues, key);
        if (!r)
            fail_msg("queue %s missing after rebuild", key);
        assert_int_equal(q->is_paused, r->is_paused);
        assert_int_equal(q->size, r->size);
        for (struct job *x = q->head, *y = r->head; x; x = x->qnext, y = y->qnext)
            if (strcmp(x->jid, y->jid) != 0)
                fail_msg("queue %s order: %s vs %s", key, x->jid, y->jid);
    }
    assert_same_set_order(&a->scheduled, &b->scheduled, "scheduled");
    assert_same_set_order(&a->retries, &b->retries, "retries");
    assert_same_set_order(&a->dead, &b->dead, "dead");
    assert_same_set_order(&a->working, &b->working, "working");
    assert_int_equal(a->processed, b->processed);
    assert_int_equal(a->failures, b->failures);
    if (with_drop_counters) {
        assert_int_equal(a->dead_dropped, b->dead_dropped);
        assert_int_equal(a->expired_reservations, b->expired_reservations);
    }
    for (int64_t d = first_day; d <= last_day; d++) {
        struct day_stats x = engine_day(a, d), y = engine_day(b, d);
        if (x.processed != y.processed || x.failed != y.failed)
            fail_msg("day %lld: %llu/%llu vs %llu/%llu", (long long)d,
                     (unsigned long long)x.processed, (unsigned long long)x.failed,
                     (unsigned long long)y.processed, (unsigned long long)y.failed);
    }
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
    return r;
}

static void engine_records_replay_to_same_state(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_max = 10; /* drops by cap, and ... */
    cfg.dead_ttl_ns = 3 * 3600 * SEC; /* ... by age */
    reopen(&cfg);
    rec_log_is_on = 1;
    int64_t first_day = timefmt_day(clock_ns);
    run_random_ops(0x0DDBA11u, 6000);
    assert_true(E->dead_dropped > 0);
    /* A flush in the middle of the stream, then more. */
    engine_flush(E);
    run_random_ops(0x5CA1AB1Eu, 3000);
    rec_log_is_on = 0;
    assert_true(rec_log.n > 1000);

    struct engine *r = replay_log();
    check_invariants(r);
    assert_int_equal(r->replay_skipped, 0);
    assert_same_state(E, r, first_day, timefmt_day(clock_ns), 0);
    engine_free(r);
}

static void engine_records_replay_small_cases(void **state)
{
    /* Each record kind once, replayed after every step. */
    rec_log_is_on = 1;
    int64_t day = timefmt_day(clock_ns);
    struct engine *r;
#define CHECK_REPLAY() \
    do { \
        r = replay_log(); \
        check_invariants(r); \
        assert_int_equal(r->replay_skipped, 0); \
        assert_same_state(E, r, day, timefmt_day(clock_ns), 0); \
        engine_free(r); \
    } while (0)
    push("enq-0001", "a", "\"custom\":{\"k\":\"v\"}");
    CHECK_REPLAY();
    push_scheduled("sched-01", "Work", clock_ns + 5 * SEC);
    CHECK_REPLAY();
    assert_non_null(fetch1("a", "wid-1"));
    CHECK_REPLAY();
    assert_int_equal(engine_fail(E, "enq-0001", "E", "m", "[\"x\"]", clock_ns), 0);
    CHECK_REPLAY();
    push_dead("dead-001", "Work", NULL);
    push_retry("retry-01", "Work");
    push("gone-001", "default", "\"retry\":0");
    fetch_and_fail("gone-001");
    CHECK_REPLAY();
    push("ack-0001", "b", NULL);
    assert_non_null(fetch1("b", "wid-2"));
    assert_int_equal(engine_ack(E, "ack-0001", clock_ns), 0);
    CHECK_REPLAY();
    engine_queue_pause(E, "b");
    push("paused-1", "b", NULL);
    CHECK_REPLAY();
    engine_queue_pause(E, "*");
    engine_queue_resume(E, "b", clock_ns);
    CHECK_REPLAY();
    clock_ns += 10 * SEC; /* the scheduled job is due, the retries (15 s or more) not */
    engine_tick(E, clock_ns);
    assert_int_equal(find("sched-01")->state, JOB_ENQUEUED);
    CHECK_REPLAY();
    assert_int_equal(engine_mutate(E, MUTATE_REQUEUE, TARGET_DEAD, NULL, clock_ns), 1);
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_RETRIES, NULL, clock_ns), 2);
    CHECK_REPLAY();
    engine_queue_remove(E, "a");
    CHECK_REPLAY();
    struct test_waiter w;
    waiter_init(&w, "wid-3");
    assert_int_equal(wait_on(&w, "c", NULL), 1);
    push("deliv-01", "c", NULL);
    assert_int_equal(w.ndelivered, 1);
    CHECK_REPLAY();
    assert_int_equal(engine_mutate(E, MUTATE_CLEAR, TARGET_DEAD, NULL, clock_ns), 2);
    CHECK_REPLAY();
    push("old-dead", "d", "\"retry\":-1");
    assert_non_null(fetch1("d", "wid-4"));
    assert_int_equal(engine_fail(E, "old-dead", "E", "m", NULL, clock_ns), 0);
    assert_int_equal(find("old-dead")->state, JOB_DEAD);
    clock_ns += E->cfg.dead_ttl_ns; /* ages out, and expires every reservation */
    engine_tick(E, clock_ns);
    assert_null(find("old-dead"));
    CHECK_REPLAY();
    engine_flush(E);
    CHECK_REPLAY();
#undef CHECK_REPLAY
}

struct dump_sink {
    struct engine *into;
    size_t n;
};

static void dump_out(void *ctx, const void *rec, size_t len)
{
    struct dump_sink *d = ctx;
    char err[128];
    err[0] = '\0';
    if (engine_apply(d->into, rec, len, err, sizeof err) != 0)
        fail_msg("dump record %zu (type %u) does not apply: %s", d->n,
                 (unsigned)((const unsigned char *)rec)[0], err);
    d->n++;
}

static void engine_dump_rebuilds_state(void **state)
{
    struct engine_config cfg = test_config();
    cfg.dead_max = 40;
    cfg.dead_ttl_ns = 600 * SEC;
    reopen(&cfg);
    int64_t first_day = timefmt_day(clock_ns);
    run_random_ops(0xFEEDFACEu, 6000);
    engine_queue_pause(E, "q1");
    struct dump_sink d = {engine_new(&cfg, NULL), 0};
    engine_dump(E, dump_out, &d);
    assert_true(d.n > 3);
    check_invariants(d.into);
    assert_int_equal(d.into->replay_skipped, 0);
    assert_same_state(E, d.into, first_day, timefmt_day(clock_ns), 1);
    /* The dump leaves the source untouched and is repeatable. */
    check_invariants(E);
    struct dump_sink d2 = {engine_new(&cfg, NULL), 0};
    engine_dump(E, dump_out, &d2);
    assert_int_equal(d2.n, d.n);
    assert_same_state(d.into, d2.into, first_day, timefmt_day(clock_ns), 1);
    engine_free(d.into);
    engine_free(d2.into);
}

/*
 * A pushed job may carry its own "failure" object. A huge retry_count must
 * not overflow the backoff arithmetic: the count is clamped and the delay
 * capped, so next_at stays in the future.
 */
static void engine_client_retry_count_does_not_overflow(void **state)
{
    struct job *job = push("big-0001", "default",
                           "\"retry\":1000,\"failure\":{\"retry_count\":299,\"remaining\":701}");
    assert_ptr_equal(fetch1("default", "w1"), job);
    assert_int_equal(engine_fail(E, "big-0001", "E", "m", NULL, clock_ns), 0);
    if (job->state == JOB_RETRY) {
        if (job->failure->next_at_ns <= clock_ns)
            fail_msg("retry time wrapped into the past: next_at %lld ns",
                     (long long)job->failure->next_at_ns);
        engine_tick(E, clock_ns + SEC);
        assert_int_equal(job->state, JOB_RETRY);
    } else {
        assert_int_equal(job->state, JOB_DEAD); /* giving up is acceptable too */
    }
}

/* ---- push limits ---- */

static void engine_max_jobs_refuses_new_pushes_only(void **state)
{
    struct engine_config cfg = test_config();
    cfg.max_jobs = 3;
    reopen(&cfg);
    push_retry("lim-0003", "Work");
    push("lim-0001", "default", NULL);
    push("lim-0002", "default", NULL);
    struct job *extra = make_job("lim-0004", "Work", "default", NULL);
    assert_int_equal(engine_push(E, extra, clock_ns), ENGINE_EFULL);
    assert_int_equal(E->pushes_refused_full, 1);
    assert_null(find("lim-0004"));
    /* re-sending a held job is still the idempotent no-op, not a refusal */
    struct job *again = make_job("lim-0001", "Work", "default", NULL);
    assert_int_equal(engine_push(E, again, clock_ns), 1);
    job_free(again);
    /* the retry comes back into its queue while full: nothing held is dropped */
    clock_ns += (int64_t)3600 * NS_PER_S;
    engine_tick(E, clock_ns);
    assert_int_equal(find("lim-0003")->state, JOB_ENQUEUED);
    assert_int_equal(E->jobs.count, 3);
    /* one ACK makes room for one */
    struct job *got = fetch1("default", "w-test");
    assert_int_equal(engine_ack(E, got->jid, clock_ns), 0);
    assert_int_equal(engine_push(E, extra, clock_ns), 0);
}

static void engine_job_bytes_follow_the_jobs_held(void **state)
{
    struct engine_config cfg = test_config();
    reopen(&cfg);
    assert_int_equal(E->job_bytes, 0);
    struct job *a = push("mem-0001", "default", NULL);
    size_t fa = engine_job_footprint(a);
    assert_true(fa > a->body_len);
    assert_int_equal(E->job_bytes, fa);
    struct job *b = push("mem-0002", "default", "\"custom\":{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    assert_int_equal(E->job_bytes, fa + engine_job_footprint(b));
    assert_int_equal(engine_ack(E, fetch1("default", "w")->jid, clock_ns), 0);
    assert_int_equal(E->job_bytes, engine_job_footprint(b));
    /* max_memory: a job that would pass it is refused, a smaller one may fit */
    cfg.max_memory = E->job_bytes + fa;
    E->cfg.max_memory = cfg.max_memory;
    struct job *big = make_job("mem-0003", "Work", "default", "\"custom\":{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    assert_int_equal(engine_push(E, big, clock_ns), ENGINE_EFULL);
    job_free(big);
    push("mem-0004", "default", NULL); /* same size as mem-0001: fits exactly */
    assert_int_equal(E->job_bytes, cfg.max_memory);
    engine_flush(E);
    assert_int_equal(E->job_bytes, 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(engine_push_fetch_ack),
        T(engine_max_jobs_refuses_new_pushes_only),
        T(engine_job_bytes_follow_the_jobs_held),
        T(engine_fetch_without_wid),
        T(engine_fetch_fifo_within_queue),
        T(engine_fetch_strict_queue_priority),
        T(engine_fetch_skips_paused_queue),
        T(engine_scheduled_job_enqueued_when_due),
        T(engine_past_or_present_at_enqueues_now),
        T(engine_tick_deadline),
        T(engine_fail_schedules_retry_with_backoff),
        T(engine_backoff_jitter_is_seeded),
        T(engine_retry_zero_discards),
        T(engine_retry_negative_goes_dead),
        T(engine_retry_n_runs_n_plus_one_times),
        T(engine_reservation_expiry_is_a_failure),
        T(engine_reservation_expiry_with_no_retries),
        T(engine_reservation_expiry_message),
        T(engine_ack_unknown_changes_nothing),
        T(engine_fail_unknown_is_not_found),
        T(engine_duplicate_push),
        T(engine_dead_set_cap_drops_oldest),
        T(engine_dead_ttl_expiry),
        T(engine_waiter_gets_pushed_job),
        T(engine_wait_skips_paused_queue),
        T(engine_unwait_stops_delivery),
        T(engine_waiters_served_in_wait_order),
        T(engine_waiter_on_two_queues_removed_from_both),
        T(engine_resume_delivers_backlog),
        T(engine_requeue_hands_job_to_waiter),
        T(engine_scheduled_due_hands_job_to_waiter),
        T(engine_queue_remove_drops_jobs),
        T(engine_queue_star_variants),
        T(engine_queue_latency_seconds),
        T(engine_worker_attach_detach),
        T(engine_beat_state_is_one_way),
        T(engine_beat_unknown_worker),
        T(engine_silent_workers_reaped),
        T(engine_reaped_hook_may_detach),
        T(engine_mutate_kill_by_jids),
        T(engine_mutate_discard_by_jobtype),
        T(engine_mutate_requeue_by_glob),
        T(engine_mutate_filter_precedence),
        T(engine_mutate_clear_and_unfiltered),
        T(engine_mutate_kill_respects_dead_cap),
        T(engine_flush_empties_everything),
        T(engine_per_day_counters),
        T(engine_strerror_texts),
        T(engine_random_operations_keep_invariants),
        T(engine_records_replay_small_cases),
        T(engine_records_replay_to_same_state),
        T(engine_dump_rebuilds_state),
        /* Known bug last: under UBSan the overflow aborts the process. */
        T(engine_client_retry_count_does_not_overflow),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
