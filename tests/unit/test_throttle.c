/*
 * Unit tests for queue throttles (engine/throttle and the engine's use of
 * it, docs/features.md): the throttles.json parser and its messages,
 * concurrency across several workers, skipping to the next queue, blocked
 * fetchers served on ACK, FAIL, expiry and when the rate window opens, the
 * sliding window's boundaries (and a long random run measuring that no
 * window ever holds more than the limit, and that nothing is refused below
 * it), reloads changing limits, and in-flight counts rebuilt after a
 * restart (journal replay).
 *
 * Time is a variable (clock_ns) that tests move by hand.
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
#include "common/xorshift.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "engine/throttle.h"
#include "rec_log.h"

#define T0 (INT64_C(1709251200) * NS_PER_S)
#define SEC NS_PER_S
#define MS NS_PER_MS

static struct engine *E;
static int64_t clock_ns;

/* ---- records, for the restart test ---- */

static struct engine *new_engine(void)
{
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    cfg.seed = 0x5EED1234u;
    struct engine_hooks hooks = {.record = rec_log_hook};
    return engine_new(&cfg, &hooks);
}

static int setup(void **state)
{
    (void)state;
    clock_ns = T0;
    E = new_engine();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    engine_free(E);
    E = NULL;
    rec_log_clear();
    return 0;
}

/* ---- helpers ---- */

static void push(const char *jid, const char *queue)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"jid\":\"%s\",\"jobtype\":\"Work\",\"args\":[],\"queue\":\"%s\"}", jid, queue);
    char err[JOB_ERR_MAX];
    struct job *job = NULL;
    if (job_parse(json, strlen(json), clock_ns, &job, err) != 0)
        fail_msg("test job does not parse: %s", err);
    assert_int_equal(engine_push(E, job, clock_ns), 0);
}

/* Pushes n jobs named <prefix>-<i> into queue. */
static void push_n(const char *prefix, const char *queue, int n)
{
    char jid[64];
    for (int i = 0; i < n; i++) {
        snprintf(jid, sizeof jid, "%s-%06d", prefix, i);
        push(jid, queue);
    }
}

static struct job *fetch(const char *q1, const char *q2, const char *wid)
{
    const char *qs[] = {q1, q2};
    return engine_fetch(E, qs, q2 ? 2 : 1, wid, clock_ns);
}

/* Parses json as throttles.json and hands it to the engine; the test fails on a parse error. */
static void set_throttles(const char *json)
{
    struct throttle_config cfg;
    char err[THROTTLE_ERR_MAX];
    if (throttle_config_parse(json, strlen(json), &cfg, err) != 0)
        fail_msg("throttles %s do not parse: %s", json, err);
    engine_throttle_set(E, &cfg, clock_ns);
    throttle_config_release(&cfg);
}

static size_t in_flight(const char *queue)
{
    struct throttle *t = engine_throttle(E, queue);
    assert_non_null(t);
    return t->in_flight;
}

struct test_waiter {
    struct waiter w;
    int ndelivered;
    char jid[64];
};

static void test_deliver(struct waiter *w, struct job *job)
{
    struct test_waiter *t = w->ctx;
    assert_int_equal(job->state, JOB_WORKING);
    snprintf(t->jid, sizeof t->jid, "%s", job->jid);
    t->ndelivered++;
}

static void wait_on(struct test_waiter *t, const char *wid, const char *q1, const char *q2)
{
    memset(t, 0, sizeof *t);
    t->w.deliver = test_deliver;
    t->w.ctx = t;
    t->w.wid = wid;
    const char *qs[] = {q1, q2};
    engine_wait(E, &t->w, qs, q2 ? 2 : 1);
}

/* ---- throttles.json ---- */

static void parse_err(const char *json, const char *want)
{
    struct throttle_config cfg;
    char err[THROTTLE_ERR_MAX] = "";
    if (throttle_config_parse(json, strlen(json), &cfg, err) == 0) {
        throttle_config_release(&cfg);
        fail_msg("%s should be refused", json);
    }
    if (!strstr(err, want))
        fail_msg("refusing %s: message \"%s\" should contain \"%s\"", json, err, want);
}

static void throttle_parse_good_file(void **state)
{
    (void)state;
    const char *json =
        "{\"emails\": {\"concurrency\": 10, \"rate\": {\"limit\": 100, \"period\": \"1m\"}},"
        " \"a.b_c-d\": {\"rate\": {\"limit\": 5, \"period\": 30}},"
        " \"half\": {\"rate\": {\"limit\": 1, \"period\": 0.5}},"
        " \"hourly\": {\"rate\": {\"limit\": 7, \"period\": \"1h30m\"}},"
        " \"one\": {\"concurrency\": 1}}";
    struct throttle_config cfg;
    char err[THROTTLE_ERR_MAX];
    assert_int_equal(throttle_config_parse(json, strlen(json), &cfg, err), 0);
    assert_int_equal(cfg.n, 5);
    /* Sorted by queue name. */
    assert_string_equal(cfg.specs[0].queue, "a.b_c-d");
    assert_string_equal(cfg.specs[1].queue, "emails");
    const struct throttle_limits *l = throttle_config_find(&cfg, "emails");
    assert_non_null(l);
    assert_int_equal(l->concurrency, 10);
    assert_int_equal(l->rate_limit, 100);
    assert_true(l->rate_period_ns == 60 * SEC);
    l = throttle_config_find(&cfg, "a.b_c-d");
    assert_int_equal(l->concurrency, 0);
    assert_true(l->rate_period_ns == 30 * SEC);
    assert_true(throttle_config_find(&cfg, "half")->rate_period_ns == 500 * MS);
    assert_true(throttle_config_find(&cfg, "hourly")->rate_period_ns == 5400 * SEC);
    assert_int_equal(throttle_config_find(&cfg, "one")->rate_limit, 0);
    assert_null(throttle_config_find(&cfg, "other"));
    throttle_config_release(&cfg);

    assert_int_equal(throttle_config_parse("{}", 2, &cfg, err), 0);
    assert_int_equal(cfg.n, 0);
    throttle_config_release(&cfg);
}

static void throttle_parse_errors_name_queue_and_field(void **state)
{
    (void)state;
    parse_err("{\"a\": ", "not valid JSON");
    parse_err("[]", "must be a JSON object mapping queue names");
    parse_err("{\"bad name\": {\"concurrency\": 1}}", "queue \"bad name\": not a valid queue name");
    parse_err("{\"q\": 5}", "queue \"q\": must be an object");
    parse_err("{\"q\": {}}", "queue \"q\": needs \"concurrency\" or \"rate\"");
    parse_err("{\"q\": {\"concurency\": 3}}", "queue \"q\": unknown field \"concurency\"");
    parse_err("{\"q\": {\"concurrency\": 0}}",
              "queue \"q\": field \"concurrency\": is out of range");
    parse_err("{\"q\": {\"concurrency\": 2.5}}",
              "queue \"q\": field \"concurrency\": must be a whole number");
    parse_err("{\"q\": {\"concurrency\": \"4\"}}", "field \"concurrency\": must be a whole number");
    parse_err("{\"q\": {\"concurrency\": 1000001}}",
              "field \"concurrency\": is out of range (1 to 1000000)");
    parse_err("{\"q\": {\"rate\": 5}}", "queue \"q\": field \"rate\": must be an object");
    parse_err("{\"q\": {\"rate\": {\"period\": 1}}}",
              "queue \"q\": field \"rate.limit\": is required");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1}}}",
              "queue \"q\": field \"rate.period\": is required");
    parse_err("{\"q\": {\"rate\": {\"limit\": -1, \"period\": 1}}}",
              "field \"rate.limit\": is out of range");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1, \"period\": \"soon\"}}}",
              "field \"rate.period\": \"soon\" is not a duration");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1, \"period\": 0}}}",
              "field \"rate.period\": must be between 1 ms and 7 days");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1, \"period\": \"8d\"}}}", "field \"rate.period\"");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1, \"period\": 700000}}}",
              "field \"rate.period\": must be between 1 ms and 7 days");
    parse_err("{\"q\": {\"rate\": {\"limit\": 1, \"period\": 1, \"burst\": 2}}}",
              "field \"rate\": unknown field \"burst\"");
    parse_err("{\"q\": {\"concurrency\": 1}, \"q\": {\"concurrency\": 2}}",
              "queue \"q\": given twice");
    /* Text after the object is an editing slip, not something to ignore. */
    parse_err("{\"q\": {\"concurrency\": 1}}\n{\"r\": {\"concurrency\": 2}}",
              "text after the JSON object (at byte 26)");
    parse_err("{\"q\": {\"concurrency\": 1}},", "text after the JSON object");
    /* A \u0000 would cut the name short and throttle another queue. */
    parse_err("{\"q\\u0000x\": {\"concurrency\": 1}}", "contains \\u0000");
    /* An escaped backslash before "u0000" is no NUL: only the queue name is wrong. */
    parse_err("{\"q\\\\u0000\": {\"concurrency\": 1}}", "not a valid queue name");
    /* Trailing whitespace is fine. */
    struct throttle_config cfg;
    char err[THROTTLE_ERR_MAX];
    const char *ok = "{\"q\": {\"concurrency\": 1}}\n \t\r\n";
    if (throttle_config_parse(ok, strlen(ok), &cfg, err) != 0)
        fail_msg("trailing whitespace should be accepted: %s", err);
    throttle_config_release(&cfg);
}

/* ---- concurrency ---- */

static void throttle_concurrency_limit_across_workers(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"concurrency\": 2}}");
    push_n("j", "q", 5);
    struct job *a = fetch("q", NULL, "w1");
    struct job *b = fetch("q", NULL, "w2");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(in_flight("q"), 2);
    assert_null(fetch("q", NULL, "w3")); /* a third worker gets nothing */
    assert_null(fetch("q", NULL, "w1"));
    assert_true(throttle_is_full(engine_throttle(E, "q"), clock_ns));
    assert_int_equal(engine_queue(E, "q")->size, 3);

    assert_int_equal(engine_ack(E, a->jid, clock_ns), 0);
    assert_int_equal(in_flight("q"), 1);
    struct job *c = fetch("q", NULL, "w3");
    assert_non_null(c);
    assert_string_equal(c->jid, "j-000002");
    assert_null(fetch("q", NULL, "w3"));
    /* A FAIL frees room as well (the job goes to retries). */
    assert_int_equal(engine_fail(E, b->jid, "E", "boom", NULL, clock_ns), 0);
    assert_int_equal(in_flight("q"), 1);
    assert_non_null(fetch("q", NULL, "w1"));
    assert_int_equal(in_flight("q"), 2);
    assert_int_equal((int)E->working.count, 2);
}

static void throttle_skips_to_next_queue(void **state)
{
    (void)state;
    set_throttles("{\"hi\": {\"concurrency\": 1}}");
    push_n("h", "hi", 3);
    push_n("l", "lo", 3);
    struct job *j = fetch("hi", "lo", "w1");
    assert_string_equal(j->jid, "h-000000");
    j = fetch("hi", "lo", "w2");
    assert_non_null(j);
    assert_string_equal(j->jid, "l-000000"); /* hi is throttled: the next queue asked for */
    j = fetch("hi", "lo", "w3");
    assert_string_equal(j->jid, "l-000001");
    assert_null(fetch("hi", NULL, "w4"));
    /* Throttling does not count jobs of other queues. */
    assert_int_equal(in_flight("hi"), 1);
    assert_null(engine_throttle(E, "lo"));
}

/* ---- blocked fetchers ---- */

static void throttle_blocked_fetch_woken_on_ack_fail_and_expiry(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"concurrency\": 1}}");
    push_n("j", "q", 4);
    struct job *first = fetch("q", NULL, "w1");
    assert_non_null(first);
    struct test_waiter w;
    wait_on(&w, "w2", "q", NULL);
    /* A push does not get past the throttle either. */
    push("late-job", "q");
    assert_int_equal(w.ndelivered, 0);
    assert_int_equal(engine_tick(E, clock_ns) > clock_ns, 1);
    assert_int_equal(w.ndelivered, 0);

    assert_int_equal(engine_ack(E, first->jid, clock_ns), 0);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jid, "j-000001");
    assert_int_equal(in_flight("q"), 1);

    wait_on(&w, "w2", "q", NULL);
    assert_int_equal(engine_fail(E, "j-000001", "E", "boom", NULL, clock_ns), 0);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jid, "j-000002");

    /* The reservation of j-0002 runs out (30 min default): the tick serves the waiter. */
    wait_on(&w, "w3", "q", NULL);
    clock_ns += 1800 * SEC;
    engine_tick(E, clock_ns);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jid, "j-000003");
    assert_int_equal(in_flight("q"), 1);
    assert_int_equal(E->expired_reservations, 1);
}

static void throttle_blocked_fetch_woken_when_rate_window_opens(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"rate\": {\"limit\": 2, \"period\": \"10s\"}}}");
    push_n("j", "q", 3);
    int64_t start = clock_ns;
    assert_non_null(fetch("q", NULL, "w1"));
    clock_ns += 3 * SEC;
    assert_non_null(fetch("q", NULL, "w1"));
    assert_null(fetch("q", NULL, "w1"));
    /* No fetcher waits: the window adds no deadline. */
    assert_true(engine_throttle_next_ns(E, clock_ns) == INT64_MAX);

    struct test_waiter w;
    wait_on(&w, "w2", "q", NULL);
    assert_true(engine_throttle_next_ns(E, clock_ns) == start + 10 * SEC);
    clock_ns = start + 10 * SEC - 1;
    int64_t next = engine_tick(E, clock_ns);
    assert_int_equal(w.ndelivered, 0);
    assert_true(next == start + 10 * SEC); /* the tick's next deadline is the window opening */
    clock_ns = next;
    engine_tick(E, clock_ns);
    assert_int_equal(w.ndelivered, 1);
    assert_string_equal(w.jid, "j-000002");
}

/* ---- rate window ---- */

static void throttle_rate_window_boundaries(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"rate\": {\"limit\": 3, \"period\": \"10s\"}}}");
    push_n("j", "q", 10);
    int64_t s = clock_ns;
    for (int i = 0; i < 3; i++) { /* at 0 s, 4 s, 8 s */
        clock_ns = s + i * 4 * SEC;
        assert_non_null(fetch("q", NULL, "w"));
    }
    clock_ns = s + 10 * SEC - 1;
    assert_null(fetch("q", NULL, "w"));
    assert_true(throttle_rate_opens_at(engine_throttle(E, "q"), clock_ns) == s + 10 * SEC);
    clock_ns = s + 10 * SEC; /* the reservation at 0 s leaves the window exactly now */
    assert_non_null(fetch("q", NULL, "w"));
    assert_null(fetch("q", NULL, "w"));
    assert_true(throttle_rate_opens_at(engine_throttle(E, "q"), clock_ns) == s + 14 * SEC);
    clock_ns = s + 14 * SEC - 1;
    assert_null(fetch("q", NULL, "w"));
    clock_ns = s + 14 * SEC;
    assert_non_null(fetch("q", NULL, "w"));
    /* ACKs do not give rate back: the window counts hand-outs. */
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&E->jobs, &i, &key, &val);)
        if (((struct job *)val)->state == JOB_WORKING)
            engine_ack(E, key, clock_ns);
    assert_null(fetch("q", NULL, "w"));
}

/*
 * A long random run against the sliding window: fetch attempts at random
 * times. Measured: no window of `period` ever holds more than `limit`
 * hand-outs, and every refusal happened with exactly `limit` hand-outs in
 * the window (the limiter never refuses below the limit).
 */
static void throttle_rate_window_random_run_is_exact(void **state)
{
    (void)state;
    const int limit = 7;
    const int64_t period = 2 * SEC;
    set_throttles("{\"q\": {\"rate\": {\"limit\": 7, \"period\": 2}}}");
    enum { N = 3000 };
    push_n("j", "q", N);
    int64_t *given = calloc(N, sizeof *given);
    int ngiven = 0, nrefused = 0;
    uint32_t rng = 12345;
    for (int step = 0; step < 2000 && ngiven < N - 8; step++) {
        clock_ns += (int64_t)(xorshift32(&rng) % 700) * MS; /* 0..699 ms apart */
        int bursts = 1 + (int)(xorshift32(&rng) % 4);
        for (int b = 0; b < bursts; b++) {
            int in_window = 0;
            for (int i = ngiven - 1; i >= 0 && given[i] > clock_ns - period; i--)
                in_window++;
            struct job *j = fetch("q", NULL, "w");
            if (j) {
                if (in_window >= limit)
                    fail_msg("hand-out at %lld with %d already in the window", (long long)clock_ns,
                             in_window);
                given[ngiven++] = clock_ns;
                engine_ack(E, j->jid, clock_ns);
            } else {
                nrefused++;
                if (in_window != limit)
                    fail_msg("refused with %d (< %d) in the window", in_window, limit);
            }
        }
    }
    assert_true(ngiven > 100);
    assert_true(nrefused > 100);
    free(given);
}

/* ---- reload ---- */

static void throttle_reload_changes_limits(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"concurrency\": 1}}");
    push_n("j", "q", 6);
    assert_non_null(fetch("q", NULL, "w1"));
    struct test_waiter w;
    wait_on(&w, "w2", "q", NULL);
    assert_int_equal(w.ndelivered, 0);

    /* Raising the limit serves the blocked fetcher at once. */
    set_throttles("{\"q\": {\"concurrency\": 3}}");
    assert_int_equal(w.ndelivered, 1);
    assert_int_equal(in_flight("q"), 2);
    assert_non_null(fetch("q", NULL, "w3"));
    assert_null(fetch("q", NULL, "w3"));

    /* Lowering it below what is in flight: nothing more until enough finish. */
    set_throttles("{\"q\": {\"concurrency\": 1}}");
    assert_int_equal(in_flight("q"), 3);
    assert_null(fetch("q", NULL, "w3"));
    assert_int_equal(engine_ack(E, "j-000000", clock_ns), 0);
    assert_null(fetch("q", NULL, "w3"));
    assert_int_equal(engine_ack(E, "j-000001", clock_ns), 0);
    assert_int_equal(in_flight("q"), 1);
    assert_null(fetch("q", NULL, "w3"));

    /* A queue dropped from the file is no longer throttled; a blocked fetcher is served. */
    wait_on(&w, "w4", "q", NULL);
    set_throttles("{\"other\": {\"concurrency\": 1}}");
    assert_null(engine_throttle(E, "q"));
    assert_int_equal(w.ndelivered, 1);
    assert_non_null(fetch("q", NULL, "w5"));

    /* Throttling it again counts what is in flight now. */
    set_throttles("{\"q\": {\"concurrency\": 5, \"rate\": {\"limit\": 100, \"period\": 60}}}");
    assert_int_equal(in_flight("q"), 3);
    /* A reload keeping a rate keeps its window. */
    assert_non_null(fetch("q", NULL, "w5"));
    size_t used = engine_throttle(E, "q")->count;
    set_throttles("{\"q\": {\"concurrency\": 5, \"rate\": {\"limit\": 50, \"period\": 60}}}");
    assert_int_equal(engine_throttle(E, "q")->count, used);
    /* Removing every throttle. */
    engine_throttle_set(E, NULL, clock_ns);
    assert_int_equal(E->throttles.count, 0);
}

/* ---- restart ---- */

static void throttle_restart_recomputes_in_flight(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"concurrency\": 3, \"rate\": {\"limit\": 3, \"period\": 60}}}");
    push_n("j", "q", 5);
    assert_non_null(fetch("q", NULL, "w1"));
    clock_ns += SEC;
    assert_non_null(fetch("q", NULL, "w2"));
    clock_ns += SEC;
    assert_non_null(fetch("q", NULL, "w3"));
    assert_int_equal(engine_ack(E, "j-000000", clock_ns), 0);
    assert_int_equal(in_flight("q"), 2);

    /* A new process: replay the journal, then load the configuration (as spoold does). */
    struct engine *again = new_engine();
    char err[128];
    for (size_t i = 0; i < rec_log.n; i++)
        assert_int_equal(engine_apply(again, rec_log.recs[i], rec_log.lens[i], err, sizeof err), 0);
    engine_free(E);
    E = again;
    clock_ns += SEC;
    assert_int_equal((int)E->working.count, 2);
    set_throttles("{\"q\": {\"concurrency\": 3, \"rate\": {\"limit\": 3, \"period\": 60}}}");
    assert_int_equal(in_flight("q"), 2);
    /* The window holds the two reservations still held (the ACKed one is not known). */
    assert_int_equal(engine_throttle(E, "q")->count, 2);
    assert_non_null(fetch("q", NULL, "w4"));
    assert_int_equal(in_flight("q"), 3);
    assert_null(fetch("q", NULL, "w4"));

    /* Replay with throttles already set counts working jobs as they are placed. */
    struct engine *third = new_engine();
    struct throttle_config cfg;
    const char *json = "{\"q\": {\"concurrency\": 9}}";
    assert_int_equal(throttle_config_parse(json, strlen(json), &cfg, err), 0);
    engine_throttle_set(third, &cfg, clock_ns);
    throttle_config_release(&cfg);
    for (size_t i = 0; i < rec_log.n; i++)
        assert_int_equal(engine_apply(third, rec_log.recs[i], rec_log.lens[i], err, sizeof err), 0);
    assert_int_equal(engine_throttle(third, "q")->in_flight, 3);
    engine_free(third);
}

static void throttle_flush_and_queue_remove(void **state)
{
    (void)state;
    set_throttles("{\"q\": {\"concurrency\": 2}}");
    push_n("j", "q", 3);
    assert_non_null(fetch("q", NULL, "w"));
    engine_queue_remove(E, "q"); /* queued jobs go; the reservation stays in flight */
    assert_int_equal(in_flight("q"), 1);
    assert_int_equal(engine_ack(E, "j-000000", clock_ns), 0); /* ACK with the queue gone */
    assert_int_equal(in_flight("q"), 0);
    push_n("k", "q", 2);
    assert_non_null(fetch("q", NULL, "w"));
    engine_flush(E);
    assert_int_equal(in_flight("q"), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(throttle_parse_good_file),
        T(throttle_parse_errors_name_queue_and_field),
        T(throttle_concurrency_limit_across_workers),
        T(throttle_skips_to_next_queue),
        T(throttle_blocked_fetch_woken_on_ack_fail_and_expiry),
        T(throttle_blocked_fetch_woken_when_rate_window_opens),
        T(throttle_rate_window_boundaries),
        T(throttle_rate_window_random_run_is_exact),
        T(throttle_reload_changes_limits),
        T(throttle_restart_recomputes_in_flight),
        T(throttle_flush_and_queue_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
