/*
 * Unit tests for engine/batch (docs/features.md "Batches"): joining by
 * custom.bid, commit and reopen, complete and success callbacks firing once,
 * failures then retries, child batches, empty batches, unknown bids,
 * pruning, and restarts in the middle of a batch (snapshot dump + replay,
 * journal replay, and a journal cut at every record around a fired
 * callback), each firing the callbacks exactly once.
 *
 * Time is a variable (clock_ns) moved by hand; every change record is
 * captured through hooks.record and replayed into fresh engines.
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
#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "engine/record.h"
#include "engine/throttle.h"
#include "rec_log.h"

/* 2024-03-01T00:00:00Z */
#define T0 (INT64_C(1709251200) * NS_PER_S)
#define SEC NS_PER_S
#define DAY (INT64_C(86400) * NS_PER_S)

static struct engine *E;
static int64_t clock_ns;

/* ---- fixture ---- */

static void open_engine(const struct engine_config *cfg)
{
    if (E)
        engine_free(E);
    struct engine_hooks hooks = {.ctx = &rec_log, .record = rec_log_hook};
    E = engine_new(cfg, &hooks);
    rec_log_clear();
}

static int setup(void **state)
{
    (void)state;
    clock_ns = T0;
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    cfg.seed = 0x5EED1234u;
    E = NULL;
    open_engine(&cfg);
    return 0;
}

/* Every held job's batch pointer agrees with the batches' live counts. */
static void check_links(struct engine *e)
{
    const char *key;
    void *val;
    for (struct batch *b = e->batches.head; b; b = b->next) {
        uint32_t n = 0;
        for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);)
            n += job_extra((struct job *)val)->batch == b;
        if (n != b->nlive)
            fail_msg("batch %s: %u held jobs point at it but nlive is %u", b->bid, n, b->nlive);
        if (b->pending < b->failed || b->total < b->pending || b->failed < 0)
            fail_msg("batch %s: counts out of order: total %lld pending %lld failed %lld", b->bid,
                     (long long)b->total, (long long)b->pending, (long long)b->failed);
    }
}

static int teardown(void **state)
{
    (void)state;
    check_links(E);
    engine_free(E);
    E = NULL;
    rec_log_clear();
    return 0;
}

/* ---- helpers ---- */

static const char *CB = "\"success\":{\"jobtype\":\"Ok\",\"args\":[],\"queue\":\"cb\"},"
                        "\"complete\":{\"jobtype\":\"Ran\",\"args\":[],\"queue\":\"cb\"}";

static void batch_new(const char *bid, const char *fields)
{
    char json[2048], err[JOB_ERR_MAX];
    snprintf(json, sizeof json, "{%s}", fields);
    int rc = engine_batch_new(E, bid, json, strlen(json), clock_ns, err);
    if (rc != 0)
        fail_msg("BATCH NEW %s: %d %s", json, rc, err);
}

static int try_push(const char *jid, const char *bid, const char *extra)
{
    char json[2048], err[JOB_ERR_MAX];
    snprintf(json, sizeof json,
             "{\"jid\":\"%s\",\"jobtype\":\"Work\",\"args\":[1],\"queue\":\"q\",\"custom\":{"
             "\"bid\":\"%s\"%s%s}}",
             jid, bid, extra ? "," : "", extra ? extra : "");
    struct job *job = NULL;
    if (job_parse(json, strlen(json), clock_ns, &job, err) != 0)
        fail_msg("test job %s does not parse: %s", json, err);
    int rc = engine_push(E, job, clock_ns);
    if (rc != 0)
        job_free(job);
    return rc;
}

static void push(const char *jid, const char *bid)
{
    int rc = try_push(jid, bid, NULL);
    if (rc != 0)
        fail_msg("push %s into %s: %d (%s)", jid, bid, rc, engine_strerror(rc));
}

/* Fetches the next job of queue q; it must be jid when given. */
static struct job *fetch_from(const char *q, const char *jid)
{
    const char *qs[] = {q};
    struct job *job = engine_fetch(E, qs, 1, "w1", clock_ns);
    if (jid && (!job || strcmp(job->jid, jid) != 0))
        fail_msg("FETCH %s should give %s, gave %s", q, jid, job ? job->jid : "nothing");
    return job;
}

static void run_ok(const char *jid)
{
    fetch_from("q", jid);
    assert_int_equal(engine_ack(E, jid, clock_ns), 0);
}

static void run_fail(const char *jid)
{
    fetch_from("q", jid);
    assert_int_equal(engine_fail(E, jid, "Boom", "failed on purpose", NULL, clock_ns), 0);
}

static struct batch *get(const char *bid)
{
    struct batch *b = batch_find(E, bid);
    if (!b)
        fail_msg("batch %s should exist", bid);
    return b;
}

static void expect_counts(const char *bid, long long total, long long pending, long long failed,
                          int st_complete, int st_success)
{
    struct batch *b = get(bid);
    if (b->total != total || b->pending != pending || b->failed != failed ||
        b->st[BATCH_COMPLETE] != st_complete || b->st[BATCH_SUCCESS] != st_success)
        fail_msg("batch %s: want total %lld pending %lld failed %lld complete_st %d success_st %d; "
                 "have %lld %lld %lld %d %d",
                 bid, total, pending, failed, st_complete, st_success, (long long)b->total,
                 (long long)b->pending, (long long)b->failed, b->st[BATCH_COMPLETE],
                 b->st[BATCH_SUCCESS]);
}

static size_t qsize(struct engine *e, const char *q)
{
    struct queue *qu = engine_queue(e, q);
    return qu ? qu->size : 0;
}

/* The jobtypes waiting in queue cb, in order, joined by spaces. */
static const char *callbacks_in(struct engine *e, char *buf, size_t len)
{
    struct queue *q = engine_queue(e, "cb");
    buf[0] = '\0';
    for (struct job *j = q ? q->head : NULL; j; j = j->qnext) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%s", n ? " " : "", j->jobtype);
    }
    return buf;
}

static void expect_callbacks(struct engine *e, const char *want)
{
    char buf[512];
    assert_string_equal(callbacks_in(e, buf, sizeof buf), want);
}

static struct engine *replay_range(size_t upto)
{
    struct engine_config cfg = E->cfg;
    struct engine *r = engine_new(&cfg, NULL);
    char err[128];
    for (size_t i = 0; i < upto; i++)
        if (engine_apply(r, rec_log.recs[i], rec_log.lens[i], err, sizeof err) != 0)
            fail_msg("record %zu (type %u) does not apply: %s", i, (unsigned)rec_log.recs[i][0],
                     err);
    assert_int_equal(r->replay_skipped, 0);
    return r;
}

static void dump_out(void *ctx, const void *rec, size_t len)
{
    char err[128];
    if (engine_apply(ctx, rec, len, err, sizeof err) != 0)
        fail_msg("dump record (type %u) does not apply: %s",
                 (unsigned)((const unsigned char *)rec)[0], err);
}

static struct engine *dump_copy(struct engine *from)
{
    struct engine_config cfg = from->cfg;
    struct engine *r = engine_new(&cfg, NULL);
    engine_dump(from, dump_out, r);
    return r;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void assert_same_batches(struct engine *a, struct engine *b)
{
    assert_int_equal(a->batches.count, b->batches.count);
    for (struct batch *x = a->batches.head; x; x = x->next) {
        struct batch *y = strmap_get(&b->batches.by_bid, x->bid);
        if (!y)
            fail_msg("batch %s is missing from the rebuilt engine", x->bid);
        if (!same_str(x->parent_bid, y->parent_bid) || !same_str(x->description, y->description) ||
            x->created_at_ns != y->created_at_ns || x->updated_at_ns != y->updated_at_ns ||
            x->is_committed != y->is_committed || x->total != y->total ||
            x->pending != y->pending || x->failed != y->failed || x->st[0] != y->st[0] ||
            x->st[1] != y->st[1] || x->nlive != y->nlive ||
            x->children_incomplete != y->children_incomplete ||
            x->children_unsucceeded != y->children_unsucceeded ||
            x->nchildren_held != y->nchildren_held || (x->parent == NULL) != (y->parent == NULL) ||
            !same_str(x->cb_json[0], y->cb_json[0]) || !same_str(x->cb_json[1], y->cb_json[1]))
            fail_msg("batch %s differs after rebuilding", x->bid);
    }
    assert_int_equal(a->batches.callbacks.count, b->batches.callbacks.count);
    assert_int_equal(a->jobs.count, b->jobs.count);
    check_links(b);
}

/* The journal and a snapshot dump both rebuild E's batches. */
static void check_rebuilds(void)
{
    struct engine *r = replay_range(rec_log.n);
    assert_same_batches(E, r);
    engine_free(r);
    r = dump_copy(E);
    assert_same_batches(E, r);
    engine_free(r);
}

/* ---- tests ---- */

static void batch_jobs_join_and_success_fires_once_after_commit(void **state)
{
    batch_new("b-one", CB);
    push("j-aaaaaaa1", "b-one");
    push("j-aaaaaaa2", "b-one");
    expect_counts("b-one", 2, 2, 0, 0, 0);
    assert_int_equal(get("b-one")->is_committed, 0);
    run_ok("j-aaaaaaa1");
    run_ok("j-aaaaaaa2");
    expect_counts("b-one", 2, 0, 0, 0, 0); /* all done, but not committed: nothing fires */
    expect_callbacks(E, "");
    assert_int_equal(engine_batch_commit(E, "b-one", clock_ns), 0);
    expect_counts("b-one", 2, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    expect_callbacks(E, "Ran Ok");                                  /* complete is queued first */
    assert_int_equal(engine_batch_commit(E, "b-one", clock_ns), 0); /* repeated: no new fire */
    engine_tick(E, clock_ns + SEC);
    expect_callbacks(E, "Ran Ok");
    check_rebuilds();

    /* Acking a callback job marks it done ("2"). */
    struct job *cb = fetch_from("cb", "b-one-complete");
    assert_non_null(strstr(cb->body, "\"_bid\":\"b-one\""));
    assert_int_equal(engine_ack(E, "b-one-complete", clock_ns), 0);
    expect_counts("b-one", 2, 0, 0, BATCH_ST_DONE, BATCH_ST_ENQUEUED);
    check_rebuilds();
}

static void batch_failure_counts_for_complete_and_retry_success_fires_success(void **state)
{
    batch_new("b-fail", CB);
    push("j-bbbbbbb1", "b-fail");
    push("j-bbbbbbb2", "b-fail");
    assert_int_equal(engine_batch_commit(E, "b-fail", clock_ns), 0);
    run_ok("j-bbbbbbb1");
    run_fail("j-bbbbbbb2");
    expect_counts("b-fail", 2, 1, 1, BATCH_ST_ENQUEUED, 0);
    expect_callbacks(E, "Ran");
    /* The retry fails again: no second complete, no success. */
    clock_ns += 2 * 60 * SEC;
    engine_tick(E, clock_ns);
    run_fail("j-bbbbbbb2");
    expect_counts("b-fail", 2, 1, 1, BATCH_ST_ENQUEUED, 0);
    expect_callbacks(E, "Ran");
    check_rebuilds();
    /* Then it succeeds: success fires, failed drops back. */
    clock_ns += 10 * 60 * SEC;
    engine_tick(E, clock_ns);
    run_ok("j-bbbbbbb2");
    expect_counts("b-fail", 2, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    expect_callbacks(E, "Ran Ok");
    check_rebuilds();
}

static void batch_job_that_dies_or_expires_counts_as_failed(void **state)
{
    batch_new("b-drop", CB);
    assert_int_equal(try_push("j-ccccccc1", "b-drop", "\"expires_in\":5"), 0);
    char json[256], err[JOB_ERR_MAX];
    snprintf(json, sizeof json,
             "{\"jid\":\"j-ccccccc2\",\"jobtype\":\"W\",\"args\":[],\"queue\":\"q\",\"retry\":0,"
             "\"custom\":{\"bid\":\"b-drop\"}}");
    struct job *job;
    assert_int_equal(job_parse(json, strlen(json), clock_ns, &job, err), 0);
    assert_int_equal(engine_push(E, job, clock_ns), 0);
    assert_int_equal(engine_batch_commit(E, "b-drop", clock_ns), 0);
    clock_ns += 10 * SEC;
    engine_tick(E, clock_ns); /* the first job expires at the head of its queue */
    expect_counts("b-drop", 2, 2, 1, 0, 0);
    run_fail("j-ccccccc2"); /* retry 0: discarded on its first failure */
    expect_counts("b-drop", 2, 2, 2, BATCH_ST_ENQUEUED, 0);
    expect_callbacks(E, "Ran");
    assert_int_equal(get("b-drop")->nlive, 0);
    check_rebuilds();
}

static void batch_empty_batch_completes_at_commit(void **state)
{
    batch_new("b-empty", "\"complete\":{\"jobtype\":\"Ran\",\"args\":[],\"queue\":\"cb\"}");
    expect_callbacks(E, "");
    assert_int_equal(engine_batch_commit(E, "b-empty", clock_ns), 0);
    /* No success callback: that state is done at once. */
    expect_counts("b-empty", 0, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_DONE);
    expect_callbacks(E, "Ran");
    check_rebuilds();
}

static void batch_open_after_commit_adds_jobs(void **state)
{
    batch_new("b-open", CB);
    push("j-ddddddd1", "b-open");
    assert_int_equal(engine_batch_commit(E, "b-open", clock_ns), 0);
    assert_int_equal(try_push("j-ddddddd2", "b-open", NULL), ENGINE_EBATCH_CLOSED);
    assert_int_equal(engine_batch_open(E, "b-open", clock_ns), 0);
    assert_int_equal(get("b-open")->is_committed, 0);
    push("j-ddddddd2", "b-open");
    run_ok("j-ddddddd1");
    run_ok("j-ddddddd2");
    expect_callbacks(E, ""); /* reopened: nothing fires until the next commit */
    assert_int_equal(engine_batch_commit(E, "b-open", clock_ns), 0);
    expect_counts("b-open", 2, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    assert_int_equal(engine_batch_open(E, "b-open", clock_ns), ENGINE_EBATCH_DONE);
    assert_int_equal(try_push("j-ddddddd3", "b-open", NULL), ENGINE_EBATCH_CLOSED);
    check_rebuilds();
}

static void batch_unknown_bids_and_bad_definitions_are_refused(void **state)
{
    char err[JOB_ERR_MAX];
    assert_int_equal(try_push("j-eeeeeee1", "b-nosuch", NULL), ENGINE_EBATCH_UNKNOWN);
    assert_int_equal(engine_batch_open(E, "b-nosuch", clock_ns), ENGINE_EBATCH_UNKNOWN);
    assert_int_equal(engine_batch_commit(E, "b-nosuch", clock_ns), ENGINE_EBATCH_UNKNOWN);
    assert_null(batch_find(E, "b-nosuch"));
    static const struct {
        const char *json, *err;
    } bad[] = {
        {"[1]", "invalid BATCH NEW: not a JSON object"},
        {"{\"description\":\"x\"}",
         "invalid BATCH NEW: a batch needs a \"success\" or \"complete\" callback job"},
        {"{\"success\":{\"jobtype\":\"X\"}}",
         "invalid success callback: jobs must have an args parameter"},
        {"{\"complete\":[1]}", "invalid complete callback: must be a job object"},
        {"{\"success\":{\"jobtype\":\"X\",\"args\":[],\"custom\":{\"bid\":\"b-x\"}}}",
         "invalid success callback: custom.bid is not allowed (a callback belongs to no batch)"},
        {"{\"parent_bid\":\"b-nosuch\",\"success\":{\"jobtype\":\"X\",\"args\":[]}}",
         "unknown parent batch b-nosuch"},
        {"{\"parent_bid\":3,\"success\":{\"jobtype\":\"X\",\"args\":[]}}",
         "invalid BATCH NEW: \"parent_bid\" must be a string"},
        /* A second object would go unread: its callback silently lost. */
        {"{\"success\":{\"jobtype\":\"X\",\"args\":[]}} "
         ",{\"complete\":{\"jobtype\":\"Y\",\"args\":[]}}",
         "invalid BATCH NEW: unexpected text after the definition at byte 38"},
        /* cJSON cuts strings at a NUL: the callback's args would change unseen. */
        {"{\"success\":{\"jobtype\":\"X\",\"args\":[\"a\\u0000b\"]}}",
         "invalid BATCH NEW: strings containing \\u0000 (NUL) are not supported"},
        {"{\"description\":\"a\\u0000b\",\"success\":{\"jobtype\":\"X\",\"args\":[]}}",
         "invalid BATCH NEW: strings containing \\u0000 (NUL) are not supported"},
        /* One jid for both: the second to fire would be refused as a different job. */
        {"{\"success\":{\"jobtype\":\"X\",\"args\":[],\"jid\":\"cb-jid-0001\"},"
         "\"complete\":{\"jobtype\":\"Y\",\"args\":[],\"jid\":\"cb-jid-0001\"}}",
         "invalid BATCH NEW: the success and complete callbacks need different jids (both are "
         "cb-jid-0001)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        int rc = engine_batch_new(E, "b-bad", bad[i].json, strlen(bad[i].json), clock_ns, err);
        if (rc == 0 || strcmp(err, bad[i].err) != 0)
            fail_msg("BATCH NEW %s: want error \"%s\", got %d \"%s\"", bad[i].json, bad[i].err, rc,
                     err);
    }
    assert_int_equal(E->batches.count, 0);
    assert_int_equal(rec_log.n, 0); /* refused commands change nothing */
    batch_new("b-taken", CB);
    assert_int_equal(engine_batch_new(E, "b-taken", "{}", 2, clock_ns, err), ENGINE_EEXIST);
}

static void batch_parent_fires_after_its_children(void **state)
{
    batch_new("b-parent", CB);
    batch_new("b-child", "\"parent_bid\":\"b-parent\","
                         "\"success\":{\"jobtype\":\"ChildOk\",\"args\":[],\"queue\":\"cb\"}");
    assert_ptr_equal(get("b-child")->parent, get("b-parent"));
    push("j-fffffff1", "b-parent");
    push("j-fffffff2", "b-child");
    assert_int_equal(engine_batch_commit(E, "b-child", clock_ns), 0);
    assert_int_equal(engine_batch_commit(E, "b-parent", clock_ns), 0);
    char err[JOB_ERR_MAX];
    const char *late = "{\"parent_bid\":\"b-parent\",\"success\":{\"jobtype\":\"X\",\"args\":[]}}";
    assert_int_equal(engine_batch_new(E, "b-late", late, strlen(late), clock_ns, err),
                     ENGINE_EBATCH_CLOSED);
    run_ok("j-fffffff1");
    expect_counts("b-parent", 1, 0, 0, 0, 0); /* its own jobs are done; the child is not */
    expect_callbacks(E, "");
    check_rebuilds();
    run_fail("j-fffffff2");
    /* The child completed (complete had no callback: "2"), so the parent completes. */
    expect_counts("b-child", 1, 1, 1, BATCH_ST_DONE, 0);
    expect_counts("b-parent", 1, 0, 0, BATCH_ST_ENQUEUED, 0);
    expect_callbacks(E, "Ran");
    clock_ns += 10 * 60 * SEC;
    engine_tick(E, clock_ns);
    run_ok("j-fffffff2");
    expect_counts("b-child", 1, 0, 0, BATCH_ST_DONE, BATCH_ST_ENQUEUED);
    expect_counts("b-parent", 1, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    expect_callbacks(E, "Ran ChildOk Ok"); /* the child's success first, then the parent's */
    check_rebuilds();
}

static void batch_old_batches_are_pruned_by_age_and_count(void **state)
{
    struct engine_config cfg = E->cfg;
    cfg.batch_max = 2;
    open_engine(&cfg);
    batch_new("b-p1", CB);
    assert_int_equal(engine_batch_commit(E, "b-p1", clock_ns), 0);
    clock_ns += SEC;
    batch_new("b-p2", CB);
    push("j-ggggggg1", "b-p2"); /* a held job keeps its batch */
    clock_ns += SEC;
    batch_new("b-p3", CB);
    clock_ns += SEC;
    engine_tick(E, clock_ns);
    /* Over the cap of 2: the longest idle one nothing points at goes. */
    assert_int_equal(E->batches.count, 2);
    assert_null(batch_find(E, "b-p1"));
    check_rebuilds();
    clock_ns += 31 * DAY;
    engine_tick(E, clock_ns);
    assert_null(batch_find(E, "b-p3"));
    assert_non_null(batch_find(E, "b-p2"));
    check_rebuilds();
    assert_int_equal(engine_batch_commit(E, "b-p2", clock_ns), 0);
    run_ok("j-ggggggg1");
    clock_ns += 31 * DAY;
    engine_tick(E, clock_ns);
    assert_int_equal(E->batches.count, 0);
    check_rebuilds();
    assert_int_equal(try_push("j-ggggggg2", "b-p2", NULL), ENGINE_EBATCH_UNKNOWN);
}

static void batch_flush_drops_batches(void **state)
{
    batch_new("b-flush", CB);
    push("j-hhhhhhh1", "b-flush");
    engine_flush(E);
    assert_int_equal(E->batches.count, 0);
    check_rebuilds();
}

/* A scheduled job killed before it ran stays pending until it is deleted (docs/features.md). */
static void batch_job_killed_before_running_keeps_complete_waiting(void **state)
{
    batch_new("b-kill", CB);
    assert_int_equal(try_push("j-kkkkkkk1", "b-kill", NULL), 0);
    char json[256], err[JOB_ERR_MAX];
    snprintf(json, sizeof json,
             "{\"jid\":\"j-kkkkkkk2\",\"jobtype\":\"W\",\"args\":[],\"queue\":\"q\","
             "\"at\":\"2024-03-02T00:00:00Z\",\"custom\":{\"bid\":\"b-kill\"}}");
    struct job *job;
    assert_int_equal(job_parse(json, strlen(json), clock_ns, &job, err), 0);
    assert_int_equal(engine_push(E, job, clock_ns), 0);
    assert_int_equal(engine_batch_commit(E, "b-kill", clock_ns), 0);
    run_ok("j-kkkkkkk1");
    const char *jids[] = {"j-kkkkkkk2"};
    struct mutate_filter f = {.jids = jids, .n_jids = 1};
    assert_int_equal(engine_mutate(E, MUTATE_KILL, TARGET_SCHEDULED, &f, clock_ns), 1);
    engine_tick(E, clock_ns);
    expect_counts("b-kill", 2, 1, 0, 0, 0);
    expect_callbacks(E, "");
    check_rebuilds();
    assert_int_equal(engine_mutate(E, MUTATE_DISCARD, TARGET_DEAD, &f, clock_ns), 1);
    engine_tick(E, clock_ns);
    expect_counts("b-kill", 2, 1, 1, BATCH_ST_ENQUEUED, 0);
    expect_callbacks(E, "Ran");
    check_rebuilds();
}

/* Counts the callback jobs an engine holds anywhere (queue cb or working). */
static void expect_callback_jobs(struct engine *e, int want)
{
    int n = (strmap_get(&e->jobs, "b-rs-complete") != NULL) +
            (strmap_get(&e->jobs, "b-rs-success") != NULL);
    assert_int_equal(n, want);
    assert_int_equal(qsize(e, "cb"), (size_t)want);
}

static void batch_restart_mid_batch_fires_callbacks_exactly_once(void **state)
{
    batch_new("b-rs", CB);
    push("j-iiiiiii1", "b-rs");
    push("j-iiiiiii2", "b-rs");
    push("j-iiiiiii3", "b-rs");
    assert_int_equal(engine_batch_commit(E, "b-rs", clock_ns), 0);
    run_ok("j-iiiiiii1");
    run_fail("j-iiiiiii2");
    fetch_from("q", "j-iiiiiii3"); /* working when the server stops */

    /* Restart from a snapshot and from the journal: the same batch, nothing fired. */
    struct engine *from_dump = dump_copy(E);
    struct engine *from_log = replay_range(rec_log.n);
    struct engine *copies[] = {from_dump, from_log};
    for (int i = 0; i < 2; i++) {
        struct engine *saved = E;
        E = copies[i];
        engine_tick(E, clock_ns); /* what a server does right after recovery */
        expect_counts("b-rs", 3, 2, 1, 0, 0);
        assert_int_equal(engine_ack(E, "j-iiiiiii3", clock_ns), 0);
        expect_counts("b-rs", 3, 1, 1, BATCH_ST_ENQUEUED, 0);
        expect_callback_jobs(E, 1);
        engine_tick(E, clock_ns + SEC);
        expect_callback_jobs(E, 1);
        E = saved;
    }
    engine_free(from_dump);
    engine_free(from_log);

    /* Finish it live, then cut the journal at every record from the last ack on. */
    size_t before = rec_log.n;
    assert_int_equal(engine_ack(E, "j-iiiiiii3", clock_ns), 0);
    clock_ns += 10 * 60 * SEC;
    engine_tick(E, clock_ns);
    size_t before_last = rec_log.n;
    run_ok("j-iiiiiii2");
    expect_counts("b-rs", 3, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    expect_callback_jobs(E, 2);
    for (size_t cut = before; cut <= rec_log.n; cut++) {
        struct engine *r = replay_range(cut);
        engine_tick(r, clock_ns); /* fires what the cut lost, once */
        struct engine *saved = E;
        E = r;
        /* Before job 3's ack nothing is due; before the retry's ack (its FETCH is
         * one record, the ack the next) only complete is. */
        int want = cut == before ? 0 : cut < before_last + 2 ? 1 : 2;
        expect_callback_jobs(r, want);
        engine_tick(r, clock_ns + SEC);
        expect_callback_jobs(r, want);
        /* A dump of the recovered state, recovered again, fires nothing more. */
        struct engine *again = dump_copy(r);
        engine_tick(again, clock_ns + 2 * SEC);
        expect_callback_jobs(again, want);
        engine_free(again);
        E = saved;
        engine_free(r);
    }
    check_rebuilds();
}

static void batch_render_has_the_status_shape(void **state)
{
    batch_new("b-json",
              "\"description\":\"say \\\"hi\\\"\",\"success\":{\"jobtype\":\"X\",\"args\":[]}");
    push("j-jjjjjjj1", "b-json");
    struct sbuf out;
    sbuf_init(&out);
    batch_render(get("b-json"), &out);
    sbuf_add(&out, "", 1);
    assert_string_equal(
        out.buf, "{\"bid\":\"b-json\",\"parent_bid\":null,\"description\":\"say \\\"hi\\\"\","
                 "\"created_at\":\"2024-03-01T00:00:00Z\",\"committed\":false,\"total\":1,"
                 "\"pending\":1,\"failed\":0,\"complete_st\":\"\",\"success_st\":\"\"}");
    sbuf_release(&out);
}

/* ---- random operations: live counts equal the rebuilt ones ---- */

static uint32_t probe_rng = 12345;
static uint32_t rnd(uint32_t n)
{
    probe_rng ^= probe_rng << 13;
    probe_rng ^= probe_rng >> 17;
    probe_rng ^= probe_rng << 5;
    return probe_rng % n;
}

static size_t working_in(struct engine *e, const char *q)
{
    size_t n = 0;
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);) {
        struct job *j = val;
        n += j->state == JOB_WORKING && strcmp(j->queue, q) == 0;
    }
    return n;
}

static void set_thr(struct engine *e, const char *json)
{
    struct throttle_config cfg;
    char err[THROTTLE_ERR_MAX];
    if (throttle_config_parse(json, strlen(json), &cfg, err) != 0)
        fail_msg("throttles: %s", err);
    engine_throttle_set(e, &cfg, clock_ns);
    throttle_config_release(&cfg);
}

static void random_jid_in(struct engine *e, enum job_state st, char *out, size_t len)
{
    const char *key;
    void *val;
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);)
        n += ((struct job *)val)->state == st;
    if (!n)
        return;
    size_t k = rnd((uint32_t)n);
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);)
        if (((struct job *)val)->state == st && k-- == 0)
            snprintf(out, len, "%s", ((struct job *)val)->jid);
}

/*
 * Pushes into a batch and its child, fetches, acks, fails, expires, kills,
 * requeues, deletes, removes the queue, commits and reopens at random, with
 * both queues throttled: after every step each held job's batch link agrees
 * with the counts and each throttle's in-flight count equals the jobs of its
 * queue in the working set; at the end the journal and a snapshot rebuild the
 * same batches and in-flight counts.
 */
static void batch_random_operations_rebuild_the_same_counts(void **state)
{
    const char *thr = "{\"q\":{\"concurrency\":3},\"cb\":{\"concurrency\":1}}";
    for (int round = 0; round < 40; round++) {
        struct engine_config cfg = E->cfg;
        open_engine(&cfg);
        set_thr(E, thr);
        batch_new("b-p", CB);
        char kid[256];
        snprintf(kid, sizeof kid, "\"parent_bid\":\"b-p\",%s", CB);
        batch_new("b-c", kid);
        int njobs = 0;
        for (int step = 0; step < 60; step++) {
            char jid[64];
            switch (rnd(12)) {
            case 0:
            case 1: {
                snprintf(jid, sizeof jid, "j-r%02d-%04d", round, njobs++);
                const char *bid = rnd(2) ? "b-p" : "b-c";
                char json[512], err[JOB_ERR_MAX];
                int retry = (int)rnd(3) - 1;
                snprintf(
                    json, sizeof json,
                    "{\"jid\":\"%s\",\"jobtype\":\"W\",\"args\":[],\"queue\":\"q\",\"retry\":%d,"
                    "%s\"custom\":{\"bid\":\"%s\"%s}}",
                    jid, retry, rnd(4) == 0 ? "\"at\":\"2024-03-01T00:10:00Z\"," : "", bid,
                    rnd(3) == 0 ? ",\"expires_in\":30" : "");
                struct job *job;
                if (job_parse(json, strlen(json), clock_ns, &job, err) != 0)
                    fail_msg("%s: %s", json, err);
                if (engine_push(E, job, clock_ns) != 0)
                    job_free(job);
                break;
            }
            case 2: {
                const char *qs[] = {"q", "cb"};
                engine_fetch(E, qs, 2, "w1", clock_ns);
                break;
            }
            case 3:
                random_jid_in(E, JOB_WORKING, jid, sizeof jid);
                if (*jid)
                    engine_ack(E, jid, clock_ns);
                break;
            case 4:
                random_jid_in(E, JOB_WORKING, jid, sizeof jid);
                if (*jid)
                    engine_fail(E, jid, "X", "boom", NULL, clock_ns);
                break;
            case 5:
                clock_ns += (int64_t)rnd(90) * SEC;
                engine_tick(E, clock_ns);
                break;
            case 6:
            case 7: {
                enum job_state sts[] = {JOB_SCHEDULED, JOB_RETRY, JOB_DEAD};
                enum mutate_target tg[] = {TARGET_SCHEDULED, TARGET_RETRIES, TARGET_DEAD};
                int w = (int)rnd(3);
                random_jid_in(E, sts[w], jid, sizeof jid);
                if (!*jid)
                    break;
                const char *jids[] = {jid};
                struct mutate_filter f = {.jids = jids, .n_jids = 1};
                enum mutate_cmd cmds[] = {MUTATE_KILL, MUTATE_DISCARD, MUTATE_REQUEUE};
                engine_mutate(E, cmds[rnd(3)], tg[w], &f, clock_ns);
                break;
            }
            case 8: engine_batch_commit(E, rnd(2) ? "b-p" : "b-c", clock_ns); break;
            case 9: engine_batch_open(E, rnd(2) ? "b-p" : "b-c", clock_ns); break;
            case 10:
                if (rnd(4) == 0)
                    engine_queue_remove(E, "q");
                break;
            case 11:
                clock_ns += 31 * 60 * SEC; /* reservations expire */
                engine_tick(E, clock_ns);
                break;
            }
            check_links(E);
            assert_int_equal(engine_throttle(E, "q")->in_flight, working_in(E, "q"));
            assert_int_equal(engine_throttle(E, "cb")->in_flight, working_in(E, "cb"));
        }
        check_rebuilds();
        struct engine *r = replay_range(rec_log.n);
        set_thr(r, thr);
        assert_int_equal(engine_throttle(r, "q")->in_flight, engine_throttle(E, "q")->in_flight);
        engine_free(r);
    }
}

static int cb_delivered;
static void cb_deliver(struct waiter *w, struct job *job)
{
    (void)w;
    assert_string_equal(job->queue, "cb");
    cb_delivered++;
}

/*
 * Callbacks pushed into a throttled queue wait for room like any job: a
 * fetcher blocked on the queue gets one only when a reservation ends, and
 * FETCH skips the queue while it is full.
 */
static void batch_callbacks_into_a_throttled_queue_wait_for_room(void **state)
{
    set_thr(E, "{\"cb\":{\"concurrency\":1}}");
    batch_new("b-thr", CB);
    push("j-ttttttt1", "b-thr");
    assert_int_equal(engine_batch_commit(E, "b-thr", clock_ns), 0);
    const char *cbq[] = {"cb"};
    struct waiter w = {.deliver = cb_deliver, .wid = "w9"};
    cb_delivered = 0;
    assert_int_equal(engine_wait(E, &w, cbq, 1), 1);
    run_ok("j-ttttttt1"); /* complete then success fire at once */
    expect_counts("b-thr", 1, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    assert_int_equal(cb_delivered, 1); /* the complete callback, to the blocked fetcher */
    assert_int_equal(engine_throttle(E, "cb")->in_flight, 1);
    expect_callbacks(E, "Ok"); /* success waits: the queue is at its limit */
    assert_null(engine_fetch(E, cbq, 1, "w8", clock_ns));
    assert_int_equal(engine_wait(E, &w, cbq, 1), 1);
    assert_int_equal(engine_ack(E, "b-thr-complete", clock_ns), 0); /* room: served now */
    assert_int_equal(cb_delivered, 2);
    engine_unwait(E, &w);
    expect_counts("b-thr", 1, 0, 0, BATCH_ST_DONE, BATCH_ST_ENQUEUED);
    assert_int_equal(engine_ack(E, "b-thr-success", clock_ns), 0);
    expect_counts("b-thr", 1, 0, 0, BATCH_ST_DONE, BATCH_ST_DONE);
    assert_int_equal(engine_throttle(E, "cb")->in_flight, 0);
    check_rebuilds();
}

/* custom.bid written with JSON escapes ("\\u0062id") is the same key: the job joins. */
static void batch_escaped_bid_key_still_joins(void **state)
{
    batch_new("b-esc", CB);
    char json[256], err[JOB_ERR_MAX];
    snprintf(json, sizeof json,
             "{\"jid\":\"j-esc00001\",\"jobtype\":\"W\",\"args\":[],\"queue\":\"q\","
             "\"custom\":{\"\\u0062id\":\"b-esc\"}}");
    struct job *job;
    assert_int_equal(job_parse(json, strlen(json), clock_ns, &job, err), 0);
    assert_int_equal(engine_push(E, job, clock_ns), 0);
    expect_counts("b-esc", 1, 1, 0, 0, 0);
    assert_int_equal(engine_batch_commit(E, "b-esc", clock_ns), 0);
    run_ok("j-esc00001");
    expect_counts("b-esc", 1, 0, 0, BATCH_ST_ENQUEUED, BATCH_ST_ENQUEUED);
    check_rebuilds();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(batch_jobs_join_and_success_fires_once_after_commit),
        T(batch_failure_counts_for_complete_and_retry_success_fires_success),
        T(batch_job_that_dies_or_expires_counts_as_failed),
        T(batch_empty_batch_completes_at_commit),
        T(batch_open_after_commit_adds_jobs),
        T(batch_unknown_bids_and_bad_definitions_are_refused),
        T(batch_parent_fires_after_its_children),
        T(batch_old_batches_are_pruned_by_age_and_count),
        T(batch_flush_drops_batches),
        T(batch_job_killed_before_running_keeps_complete_waiting),
        T(batch_restart_mid_batch_fires_callbacks_exactly_once),
        T(batch_render_has_the_status_shape),
        T(batch_random_operations_rebuild_the_same_counts),
        T(batch_callbacks_into_a_throttled_queue_wait_for_room),
        T(batch_escaped_bid_key_still_joins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
