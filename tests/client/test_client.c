/*
 * libspool against the real spoold: URL parsing, producer calls, password
 * handshake, and the worker runtime (concurrency, failures, quiet/terminate
 * via BEAT, reconnect across a server restart, FETCHN/ACKN batching).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool/spool.h"
#include "spoold_proc.h"

/* ---- helpers ---- */

static void quiet_log(int level, const char *msg, void *ud)
{
    (void)level;
    (void)msg;
    (void)ud;
}

/* INFO number at a path like "faktory.sets.retries"; -1 if absent. */
static long long info_num(spool_client *c, const char *path)
{
    char *json = NULL;
    if (spool_info(c, &json) != 0)
        return -1;
    cJSON *root = cJSON_Parse(json);
    spool_free(json);
    cJSON *v = root;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, tok);
    long long out = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(root);
    return out;
}

/* Polls INFO until path == want or the deadline. */
static int wait_info(spool_client *c, const char *path, long long want, int ms)
{
    long long deadline = test_now_ms() + ms;
    while (test_now_ms() < deadline) {
        if (info_num(c, path) == want)
            return 1;
        poll(NULL, 0, 20);
    }
    return 0;
}

static spool_client *connect_ok(const char *url)
{
    spool_client *c = NULL;
    int rc = spool_client_connect(url, &c);
    if (rc)
        fail_msg("connect %s: %s (%s)", url, spool_strerror(rc), spool_client_error(NULL));
    return c;
}

static void push_simple(spool_client *c, const char *type, const char *queue, const char *args)
{
    spool_job *j = spool_job_new(type);
    assert_non_null(j);
    assert_int_equal(spool_job_set_queue(j, queue), 0);
    assert_int_equal(spool_job_set_args(j, args), 0);
    int rc = spool_push(c, j);
    if (rc)
        fail_msg("push: %s", spool_client_error(c));
    spool_job_free(j);
}

struct runner {
    pthread_t thread;
    spool_worker *w;
    atomic_int rc;
    atomic_int done;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    atomic_store(&r->rc, spool_worker_run(r->w));
    atomic_store(&r->done, 1);
    return NULL;
}

static void runner_start(struct runner *r, spool_worker *w)
{
    r->w = w;
    atomic_store(&r->done, 0);
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static int runner_join(struct runner *r, int ms)
{
    long long deadline = test_now_ms() + ms;
    while (!atomic_load(&r->done) && test_now_ms() < deadline)
        poll(NULL, 0, 20);
    if (!atomic_load(&r->done))
        fail_msg("worker run did not return within %d ms", ms);
    pthread_join(r->thread, NULL);
    return atomic_load(&r->rc);
}

static int wait_processed(spool_worker *w, uint64_t want, int ms)
{
    long long deadline = test_now_ms() + ms;
    while (test_now_ms() < deadline) {
        if (spool_worker_processed(w) >= want)
            return 1;
        poll(NULL, 0, 10);
    }
    return 0;
}

/* ---- URL parsing ---- */

static void url_parses_password_host_port(void **state)
{
    (void)state;
    spool_url u;
    assert_int_equal(spool_url_parse("tcp://:s3cr@t@example.com:7000", &u), 0);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.password, "s3cr@t");
    assert_false(u.is_tls);
    assert_int_equal(spool_url_parse("tcp://user:pw@[::1]:17419/", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.port, 17419);
    assert_int_equal(spool_url_parse("tcp://h", &u), 0);
    assert_int_equal(u.port, 7419);
    assert_int_equal(spool_url_parse("tcp+tls://h:1", &u), 0);
    assert_true(u.is_tls);
}

static void url_defaults_from_env(void **state)
{
    (void)state;
    spool_url u;
    unsetenv("SPOOL_URL");
    unsetenv("FAKTORY_URL");
    assert_int_equal(spool_url_parse(NULL, &u), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 7419);
    setenv("FAKTORY_URL", "tcp://fak:1111", 1);
    assert_int_equal(spool_url_parse("", &u), 0);
    assert_string_equal(u.host, "fak");
    setenv("SPOOL_URL", "tcp://:pw@spool:2222", 1);
    assert_int_equal(spool_url_parse(NULL, &u), 0);
    assert_string_equal(u.host, "spool");
    assert_int_equal(u.port, 2222);
    assert_string_equal(u.password, "pw");
    unsetenv("SPOOL_URL");
    unsetenv("FAKTORY_URL");
}

static void url_rejects_bad_ones_clearly(void **state)
{
    (void)state;
    spool_url u;
    assert_int_equal(spool_url_parse("http://h:1", &u), SPOOL_EURL);
    assert_non_null(strstr(spool_client_error(NULL), "scheme"));
    assert_int_equal(spool_url_parse("tcp://:1", &u), SPOOL_EURL);
    assert_non_null(strstr(spool_client_error(NULL), "missing host"));
    assert_int_equal(spool_url_parse("tcp://h:99999", &u), SPOOL_EURL);
    assert_non_null(strstr(spool_client_error(NULL), "port"));
    assert_int_equal(spool_url_parse("tcp://h:12x", &u), SPOOL_EURL);
    assert_int_equal(spool_url_parse("tcp://h:1/path", &u), SPOOL_EURL);
    assert_int_equal(spool_url_parse("tcp+tls://h:1", &u), 0);
    assert_int_equal(u.is_tls, 1);
}

/* ---- producer ---- */

static void push_fetch_ack(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    spool_job *j = spool_job_new("email");
    assert_non_null(j);
    assert_true(strlen(spool_job_jid(j)) >= 8);
    char jid[64];
    snprintf(jid, sizeof jid, "%s", spool_job_jid(j));
    assert_int_equal(spool_job_set_args(j, "[\"a@b.c\", 42]"), 0);
    assert_int_equal(spool_job_set_args(j, "{\"not\":\"array\"}"), SPOOL_EJSON);
    assert_int_equal(spool_job_set_queue(j, "mail"), 0);
    assert_int_equal(spool_job_set_queue(j, "bad queue"), SPOOL_EARG);
    assert_int_equal(spool_job_set_retry(j, 3), 0);
    assert_int_equal(spool_job_set_reserve_for(j, 600), 0);
    assert_int_equal(spool_job_set_custom(j, "tenant", "{\"id\":7}"), 0);
    assert_int_equal(spool_push(c, j), 0);
    spool_job_free(j);

    const char *qs[] = {"other", "mail"};
    spool_job *got = NULL;
    assert_int_equal(spool_fetch(c, qs, 2, &got), 0);
    assert_non_null(got);
    assert_string_equal(spool_job_jid(got), jid);
    assert_string_equal(spool_job_jobtype(got), "email");
    assert_string_equal(spool_job_queue(got), "mail");
    assert_string_equal(spool_job_args(got), "[\"a@b.c\",42]");
    assert_string_equal(spool_job_custom(got, "tenant"), "{\"id\":7}");
    assert_non_null(strstr(spool_job_json(got), "enqueued_at"));
    const char *s;
    int64_t n;
    assert_int_equal(spool_job_arg_string(got, 0, &s), 0);
    assert_string_equal(s, "a@b.c");
    assert_int_equal(spool_job_arg_int(got, 1, &n), 0);
    assert_int_equal(n, 42);
    assert_int_equal(spool_job_arg_int(got, 0, &n), SPOOL_EARG);
    assert_int_equal(spool_ack(c, jid), 0);
    spool_job_free(got);
    assert_int_equal(info_num(c, "faktory.total_processed"), 1);
    /* unknown jid ACK is fine; server errors carry the server's text */
    assert_int_equal(spool_ack(c, "nosuchjid123"), 0);
    assert_int_equal(spool_push_json(c, "{\"jid\":\"12345678\",\"args\":[]}"), SPOOL_ESERVER);
    assert_string_equal(spool_client_error(c), "ERR jobs must have a jobtype parameter");
    char *reply = NULL;
    assert_int_equal(spool_command(c, "NOPE", &reply), SPOOL_ESERVER);
    assert_non_null(strstr(spool_client_error(c), "unknown command NOPE"));
    /* nothing to fetch: 0 and NULL */
    const char *empty[] = {"empty"};
    assert_int_equal(spool_fetch(c, empty, 1, &got), 0);
    assert_null(got);
    /* scheduled jobs */
    j = spool_job_new("later");
    assert_int_equal(spool_job_set_in_ms(j, 3600 * 1000), 0);
    assert_int_equal(spool_push(c, j), 0);
    assert_int_equal(spool_job_set_at(j, "not a time"), SPOOL_ETIME);
    spool_job_free(j);
    assert_int_equal(info_num(c, "faktory.sets.scheduled"), 1);
    /* queue admin and latency */
    push_simple(c, "x", "q1", "[]");
    const char *q1[] = {"q1"};
    assert_int_equal(spool_queue_pause(c, q1, 1), 0);
    assert_int_equal(spool_queue_resume(c, q1, 1), 0);
    char *lat = NULL;
    assert_int_equal(spool_queue_latency(c, q1, 1, &lat), 0);
    assert_non_null(strstr(lat, "\"q1\""));
    spool_free(lat);
    assert_int_equal(spool_queue_remove(c, q1, 1), 0);
    assert_int_equal(info_num(c, "faktory.queues.q1"), -1);
    assert_int_equal(spool_mutate(c, "{\"cmd\": \"clear\", \"target\": \"scheduled\"}"), 0);
    assert_int_equal(info_num(c, "faktory.sets.scheduled"), 0);
    assert_int_equal(spool_flush(c), 0);
    assert_int_equal(info_num(c, "faktory.total_processed"), 0);
    spool_client_free(c);
    spoold_destroy(&p);
}

static void fail_then_retries_in_info(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    push_simple(c, "boom", "default", "[1]");
    spool_job *got = NULL;
    assert_int_equal(spool_fetch(c, NULL, 0, &got), 0);
    assert_non_null(got);
    const char *bt[] = {"a.c:1", "b.c:2"};
    assert_int_equal(spool_fail(c, spool_job_jid(got), "Boom", "it broke", bt, 2), 0);
    assert_int_equal(info_num(c, "faktory.sets.retries"), 1);
    assert_int_equal(info_num(c, "faktory.total_failures"), 1);
    assert_int_equal(spool_fail(c, spool_job_jid(got), "Boom", "again", NULL, 0), SPOOL_ESERVER);
    assert_non_null(strstr(spool_client_error(c), "Job not found"));
    spool_job_free(got);
    spool_client_free(c);
    spoold_destroy(&p);
}

/*
 * spool_fetch_many / spool_ack_many against spoold with its batch verbs, or
 * with --plain-fwp (then they fall back to FETCH and ACK).
 */
static void batch_calls(const char *extra_arg, int want_native)
{
    struct spoold_proc p;
    assert_int_equal(spoold_start_with(&p, 0, NULL, extra_arg), 0);
    spool_client *c = connect_ok(p.url);
    int fmax = -1, amax = -1, pmax = -1;
    spool_client_batch_limits(c, &fmax, &amax, &pmax);
    if (want_native) {
        assert_int_equal(fmax, 100);
        assert_int_equal(amax, 1000);
        assert_int_equal(pmax, 1000);
    } else {
        assert_int_equal(fmax, 0);
        assert_int_equal(amax, 0);
        assert_int_equal(pmax, 0);
    }
    char jids[7][64];
    for (int i = 0; i < 7; i++) {
        spool_job *j = spool_job_new("batch");
        assert_non_null(j);
        char args[32];
        snprintf(args, sizeof args, "[%d, \"x\\\"]{\"]", i); /* brackets inside strings */
        assert_int_equal(spool_job_set_args(j, args), 0);
        assert_int_equal(spool_job_set_queue(j, i < 5 ? "bq" : "hi"), 0);
        snprintf(jids[i], sizeof jids[i], "%s", spool_job_jid(j));
        assert_int_equal(spool_push(c, j), 0);
        spool_job_free(j);
    }
    const char *qs[] = {"hi", "bq"};
    spool_job *got[10];
    int n = spool_fetch_many(c, qs, 2, got, 4);
    /* native: 4 at once, hi first then bq in push order; plain: one FETCH */
    int want[] = {5, 6, 0, 1};
    assert_int_equal(n, want_native ? 4 : 1);
    for (int i = 0; i < n; i++) {
        assert_string_equal(spool_job_jid(got[i]), jids[want[i]]);
        int64_t a;
        assert_int_equal(spool_job_arg_int(got[i], 0, &a), 0);
        assert_int_equal(a, want[i]);
        const char *str;
        assert_int_equal(spool_job_arg_string(got[i], 1, &str), 0);
        assert_string_equal(str, "x\"]{");
    }
    for (int i = n; i < 4; i++)
        assert_null(got[i]);
    const char *ack[10];
    for (int i = 0; i < n; i++)
        ack[i] = spool_job_jid(got[i]);
    ack[n] = "nosuchjob123"; /* accepted, as ACK accepts it */
    assert_int_equal(spool_ack_many(c, ack, (size_t)n + 1), 0);
    for (int i = 0; i < n; i++)
        spool_job_free(got[i]);
    assert_int_equal(info_num(c, "faktory.total_processed"), n);
    assert_int_equal(info_num(c, "faktory.sets.working"), 0);
    /* drain the rest, then nothing is there: 0 */
    int total = n;
    while (total < 7) {
        n = spool_fetch_many(c, qs, 2, got, 10);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            ack[i] = spool_job_jid(got[i]);
        }
        assert_int_equal(spool_ack_many(c, ack, (size_t)n), 0);
        for (int i = 0; i < n; i++)
            spool_job_free(got[i]);
        total += n;
    }
    assert_int_equal(total, 7);
    assert_int_equal(info_num(c, "faktory.total_processed"), 7);
    const char *empty[] = {"empty"};
    assert_int_equal(spool_fetch_many(c, empty, 1, got, 3), 0);
    assert_null(got[0]);
    /* bad arguments are refused locally */
    assert_int_equal(spool_fetch_many(c, qs, 2, got, 0), SPOOL_EARG);
    const char *bad[] = {"abcdefgh", ""};
    assert_int_equal(spool_ack_many(c, bad, 2), SPOOL_EARG);
    assert_int_equal(spool_ack_many(c, NULL, 0), 0);
    spool_client_free(c);
    spoold_destroy(&p);
}

static void batch_calls_use_fetchn_and_ackn(void **state)
{
    (void)state;
    batch_calls(NULL, 1);
}

static void batch_calls_fall_back_to_plain_fwp(void **state)
{
    (void)state;
    batch_calls("--plain-fwp", 0);
}

static int add_marker(spool_chain *chain, spool_job *job, void *ud)
{
    atomic_int *calls = ud;
    atomic_fetch_add(calls, 1);
    if (strcmp(spool_job_jobtype(job), "forbidden") == 0)
        return SPOOL_EARG;
    spool_job_set_custom(job, "marked", "true");
    return spool_next(chain);
}

static void push_many_reports_bad_jobs(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    atomic_int calls = 0;
    assert_int_equal(spool_client_use_push(c, add_marker, &calls), 0);
    spool_job *jobs[4];
    jobs[0] = spool_job_new("good");
    jobs[1] = spool_job_new("bad");
    jobs[2] = spool_job_new("good");
    jobs[3] = spool_job_new("forbidden");
    assert_int_equal(spool_job_set_field(jobs[1], "queue", "\"no spaces allowed\""), 0);
    char *errs[4];
    int rc = spool_push_many(c, jobs, 4, errs);
    assert_int_equal(rc, 2);
    assert_null(errs[0]);
    assert_non_null(errs[1]);
    assert_non_null(strstr(errs[1], "queue names must match"));
    assert_null(errs[2]);
    assert_non_null(errs[3]);
    assert_int_equal(atomic_load(&calls), 4);
    for (int i = 0; i < 4; i++) {
        spool_free(errs[i]);
        spool_job_free(jobs[i]);
    }
    assert_int_equal(info_num(c, "faktory.queues.default"), 2);
    spool_job *got = NULL;
    assert_int_equal(spool_fetch(c, NULL, 0, &got), 0);
    assert_string_equal(spool_job_custom(got, "marked"), "true");
    spool_job_free(got);
    spool_client_free(c);
    spoold_destroy(&p);
}

static void password_right_and_wrong(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, "hunter2"), 0);
    spool_client *c = connect_ok(p.url); /* url has :hunter2@ */
    assert_true(info_num(c, "server.connections") >= 1);
    spool_client_free(c);
    char url[128];
    snprintf(url, sizeof url, "tcp://:wrong@127.0.0.1:%d", p.port);
    c = NULL;
    assert_int_equal(spool_client_connect(url, &c), SPOOL_EAUTH);
    assert_null(c);
    assert_non_null(strstr(spool_client_error(NULL), "Invalid password"));
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    assert_int_equal(spool_client_connect(url, &c), SPOOL_EAUTH);
    assert_non_null(strstr(spool_client_error(NULL), "requires a password"));
    spoold_destroy(&p);
    /* nothing listening now */
    assert_true(spool_client_connect(url, &c) < 0);
    assert_null(c);
}

/* ---- worker runtime ---- */

struct counts {
    atomic_int a, b, active, max_active;
};

static int count_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ctx;
    struct counts *k = ud;
    int now = atomic_fetch_add(&k->active, 1) + 1;
    int prev = atomic_load(&k->max_active);
    while (now > prev && !atomic_compare_exchange_weak(&k->max_active, &prev, now))
        ;
    if (strcmp(spool_job_queue(job), "a") == 0)
        atomic_fetch_add(&k->a, 1);
    else
        atomic_fetch_add(&k->b, 1);
    poll(NULL, 0, 20); /* hold the slot so jobs overlap */
    atomic_fetch_sub(&k->active, 1);
    return 0;
}

static atomic_int around_calls;

static int around(spool_chain *chain, spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ctx;
    (void)job;
    (void)ud;
    atomic_fetch_add(&around_calls, 1);
    return spool_next(chain);
}

static spool_worker *make_worker(const char *url, int conc, const char *const *queues, size_t nq,
                                 const int *weights)
{
    spool_worker_config cfg = {
        .url = url,
        .concurrency = conc,
        .queues = queues,
        .nqueues = nq,
        .weights = weights,
        .heartbeat_ms = 100,
        .shutdown_timeout_ms = 3000,
        .reconnect_max_ms = 200,
        .log = quiet_log,
    };
    spool_worker *w = NULL;
    int rc = spool_worker_new(&cfg, &w);
    if (rc)
        fail_msg("worker_new: %s", spool_client_error(NULL));
    return w;
}

static void worker_runs_jobs_across_queues_concurrently(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    for (int i = 0; i < 20; i++) {
        push_simple(c, "count", "a", "[]");
        push_simple(c, "count", "b", "[]");
    }
    struct counts k = {0};
    const char *qs[] = {"a", "b"};
    const int weights[] = {3, 1};
    spool_worker *w = make_worker(p.url, 4, qs, 2, weights);
    assert_int_equal(spool_worker_register(w, "count", count_handler, &k), 0);
    assert_int_equal(spool_worker_use_perform(w, around, NULL), 0);
    atomic_store(&around_calls, 0);
    struct runner r;
    runner_start(&r, w);
    assert_true(wait_processed(w, 40, 20000));
    assert_int_equal(atomic_load(&k.a), 20);
    assert_int_equal(atomic_load(&k.b), 20);
    assert_true(atomic_load(&k.max_active) > 1);
    assert_true(atomic_load(&k.max_active) <= 4);
    assert_int_equal(atomic_load(&around_calls), 40);
    assert_true(wait_info(c, "faktory.total_processed", 40, 5000));
    assert_int_equal(spool_worker_register(w, "late", count_handler, &k), SPOOL_EBUSY);
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);
    assert_int_equal(spool_worker_failed(w), 0);
    spool_worker_free(w);
    spool_client_free(c);
    spoold_destroy(&p);
}

static int failing_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ud;
    int64_t n = 0;
    spool_job_arg_int(job, 0, &n);
    spool_ctx_fail(ctx, "ValueError", "bad value %lld", (long long)n);
    spool_ctx_backtrace(ctx, "handler.c:10 in failing_handler");
    spool_ctx_backtrace(ctx, "main.c:3 in main");
    return 1;
}

static void worker_failing_handler_lands_in_retries(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    push_simple(c, "fails", "default", "[7]");
    push_simple(c, "unknown_type", "default", "[]");
    spool_worker *w = make_worker(p.url, 2, NULL, 0, NULL);
    assert_int_equal(spool_worker_register(w, "fails", failing_handler, NULL), 0);
    struct runner r;
    runner_start(&r, w);
    assert_true(wait_info(c, "faktory.sets.retries", 2, 10000));
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);
    assert_int_equal(spool_worker_failed(w), 2);
    spool_worker_free(w);
    /* bring the failed jobs back to read their failure */
    assert_int_equal(spool_mutate(c, "{\"cmd\":\"requeue\",\"target\":\"retries\"}"), 0);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        spool_job *got = NULL;
        assert_int_equal(spool_fetch(c, NULL, 0, &got), 0);
        assert_non_null(got);
        cJSON *o = cJSON_Parse(spool_job_json(got));
        cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "failure");
        assert_non_null(f);
        const char *et = cJSON_GetObjectItemCaseSensitive(f, "errtype")->valuestring;
        const char *msg = cJSON_GetObjectItemCaseSensitive(f, "message")->valuestring;
        cJSON *bt = cJSON_GetObjectItemCaseSensitive(f, "backtrace");
        if (strcmp(spool_job_jobtype(got), "fails") == 0) {
            assert_string_equal(et, "ValueError");
            assert_string_equal(msg, "bad value 7");
            assert_int_equal(cJSON_GetArraySize(bt), 2);
            assert_string_equal(cJSON_GetArrayItem(bt, 0)->valuestring, "handler.c:10 in failing_handler");
            seen |= 1;
        } else {
            assert_string_equal(et, "NoHandler");
            seen |= 2;
        }
        assert_int_equal(spool_job_retry_count(got), 0);
        cJSON_Delete(o);
        spool_ack(c, spool_job_jid(got));
        spool_job_free(got);
    }
    assert_int_equal(seen, 3);
    spool_client_free(c);
    spoold_destroy(&p);
}

static int ok_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ctx;
    (void)job;
    atomic_fetch_add((atomic_int *)ud, 1);
    return 0;
}

static void send_beat_state(spool_client *c, const char *wid, const char *st)
{
    char line[256];
    snprintf(line, sizeof line, "BEAT {\"wid\":\"%s\",\"current_state\":\"%s\"}", wid, st);
    char *reply = NULL;
    int rc = spool_command(c, line, &reply);
    if (rc)
        fail_msg("BEAT: %s", spool_client_error(c));
    spool_free(reply);
}

static void worker_quiet_then_terminate_from_server(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    atomic_int n = 0;
    spool_worker *w = make_worker(p.url, 2, NULL, 0, NULL);
    assert_int_equal(spool_worker_register(w, "job", ok_handler, &n), 0);
    struct runner r;
    runner_start(&r, w);
    push_simple(c, "job", "default", "[]");
    assert_true(wait_processed(w, 1, 10000));
    /* the worker's process must be known before the server takes a BEAT for it */
    long long deadline = test_now_ms() + 5000;
    char line[128];
    snprintf(line, sizeof line, "BEAT {\"wid\":\"%s\"}", spool_worker_wid(w));
    char *reply = NULL;
    while (spool_command(c, line, &reply) != 0 && test_now_ms() < deadline)
        poll(NULL, 0, 20);
    spool_free(reply);
    send_beat_state(c, spool_worker_wid(w), "quiet");
    deadline = test_now_ms() + 5000;
    while (spool_worker_state(w) != SPOOL_STATE_QUIET && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    assert_int_equal(spool_worker_state(w), SPOOL_STATE_QUIET);
    /* quiet: a new job is not taken (the in-flight FETCH ends within 2 s) */
    poll(NULL, 0, 2500);
    push_simple(c, "job", "default", "[]");
    poll(NULL, 0, 600);
    assert_int_equal(info_num(c, "faktory.queues.default"), 1);
    assert_int_equal(atomic_load(&n), 1);
    send_beat_state(c, spool_worker_wid(w), "terminate");
    assert_int_equal(runner_join(&r, 10000), 0);
    assert_int_equal(spool_worker_state(w), SPOOL_STATE_TERMINATE);
    spool_worker_free(w);
    spool_client_free(c);
    spoold_destroy(&p);
}

/* Holds each job until the test releases it. */
struct gate {
    atomic_int entered;
    atomic_int release;
    atomic_int done;
};

static int gated_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ctx;
    (void)job;
    struct gate *g = ud;
    atomic_fetch_add(&g->entered, 1);
    long long deadline = test_now_ms() + 20000;
    while (!atomic_load(&g->release) && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    atomic_fetch_add(&g->done, 1);
    return 0;
}

static void worker_reconnects_without_losing_jobs(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    struct gate g = {0};
    atomic_int n = 0;
    spool_worker *w = make_worker(p.url, 3, NULL, 0, NULL);
    assert_int_equal(spool_worker_register(w, "gated", gated_handler, &g), 0);
    assert_int_equal(spool_worker_register(w, "plain", ok_handler, &n), 0);
    struct runner r;
    runner_start(&r, w);
    for (int i = 0; i < 2; i++)
        push_simple(c, "gated", "default", "[]");
    long long deadline = test_now_ms() + 10000;
    while (atomic_load(&g.entered) < 2 && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    assert_int_equal(atomic_load(&g.entered), 2);
    spool_client_free(c);

    /* Server goes away with two jobs in hand, comes back on the same port. */
    spoold_stop(&p);
    atomic_store(&g.release, 1);
    deadline = test_now_ms() + 10000;
    while (atomic_load(&g.done) < 2 && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    assert_int_equal(spoold_restart(&p, NULL), 0);
    c = connect_ok(p.url);
    for (int i = 0; i < 5; i++)
        push_simple(c, "plain", "default", "[]");
    assert_true(wait_processed(w, 7, 20000));
    assert_int_equal(atomic_load(&n), 5);
    assert_true(wait_info(c, "faktory.sets.working", 0, 5000));
    assert_int_equal(info_num(c, "faktory.sets.retries"), 0);
    assert_int_equal(info_num(c, "faktory.total_enqueued"), 0);
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);
    assert_int_equal(spool_worker_failed(w), 0);
    spool_worker_free(w);
    spool_client_free(c);
    spoold_destroy(&p);
}

static void worker_stop_fails_jobs_past_the_timeout(void **state)
{
    (void)state;
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    spool_client *c = connect_ok(p.url);
    struct gate g = {0};
    spool_worker_config cfg = {.url = p.url, .concurrency = 1, .heartbeat_ms = 100,
                               .shutdown_timeout_ms = 300, .log = quiet_log};
    spool_worker *w = NULL;
    assert_int_equal(spool_worker_new(&cfg, &w), 0);
    assert_int_equal(spool_worker_register(w, "gated", gated_handler, &g), 0);
    struct runner r;
    runner_start(&r, w);
    push_simple(c, "gated", "default", "[]");
    long long deadline = test_now_ms() + 10000;
    while (atomic_load(&g.entered) < 1 && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    spool_worker_stop(w);
    assert_true(wait_info(c, "faktory.sets.retries", 1, 5000));
    atomic_store(&g.release, 1);
    assert_int_equal(runner_join(&r, 10000), 0);
    spool_worker_free(w);
    spool_client_free(c);
    spoold_destroy(&p);
}

/* ---- worker runtime with FETCHN/ACKN ---- */

#define BATCH_JOBS 400

/* Per-job run counts, indexed by the job's first argument. Shared memory,
 * so that a forked worker process counts into it too. */
static atomic_int *counts_new(void)
{
    void *m = mmap(NULL, BATCH_JOBS * sizeof(atomic_int), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    return m; /* zero-filled */
}

struct indexed {
    atomic_int *seen;
    int hold_ms;
};

static int indexed_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    (void)ctx;
    struct indexed *x = ud;
    int64_t i = -1;
    if (spool_job_arg_int(job, 0, &i) != 0 || i < 0 || i >= BATCH_JOBS)
        return spool_ctx_fail(ctx, "BadArg", "no index"), -1;
    atomic_fetch_add(&x->seen[i], 1);
    if (x->hold_ms > 0)
        poll(NULL, 0, x->hold_ms);
    return 0;
}

/* Pushes BATCH_JOBS "indexed" jobs with args [i] to queue "default". */
static void push_indexed(spool_client *c, int reserve_for_s)
{
    spool_job *jobs[100];
    for (int off = 0; off < BATCH_JOBS; off += 100) {
        for (int k = 0; k < 100; k++) {
            jobs[k] = spool_job_new("indexed");
            assert_non_null(jobs[k]);
            char args[32];
            snprintf(args, sizeof args, "[%d]", off + k);
            assert_int_equal(spool_job_set_args(jobs[k], args), 0);
            if (reserve_for_s)
                assert_int_equal(spool_job_set_reserve_for(jobs[k], reserve_for_s), 0);
        }
        int rc = spool_push_many(c, jobs, 100, NULL);
        if (rc)
            fail_msg("push_many: %s", spool_client_error(c));
        for (int k = 0; k < 100; k++)
            spool_job_free(jobs[k]);
    }
}

static long long queue_size(spool_client *c)
{
    long long n = info_num(c, "faktory.queues.default");
    return n < 0 ? 0 : n; /* an empty queue may be left out */
}

/* A spoold holding BATCH_JOBS indexed jobs, a client on it, and run counts. */
struct indexed_run {
    struct spoold_proc p;
    spool_client *c;
    atomic_int *seen;
};

static void indexed_run_start(struct indexed_run *b, const char *extra_arg)
{
    assert_int_equal(spoold_start_with(&b->p, 0, NULL, extra_arg), 0);
    b->c = connect_ok(b->p.url);
    push_indexed(b->c, 0);
    b->seen = counts_new();
}

static void indexed_run_end(struct indexed_run *b)
{
    munmap(b->seen, BATCH_JOBS * sizeof(atomic_int));
    spool_client_free(b->c);
    spoold_destroy(&b->p);
}

/* Jobs that ran at least once; fails on a job that ran more than once. */
static long long ran_at_most_once(const struct indexed_run *b)
{
    long long ran = 0;
    for (int i = 0; i < BATCH_JOBS; i++) {
        int k = atomic_load(&b->seen[i]);
        if (k > 1)
            fail_msg("job %d ran %d times", i, k);
        ran += k;
    }
    return ran;
}

static void worker_each_job_once(const char *extra_arg, int is_batch)
{
    struct indexed_run b;
    indexed_run_start(&b, extra_arg);
    struct indexed x = {.seen = b.seen};
    spool_worker *w = make_worker(b.p.url, 8, NULL, 0, NULL);
    assert_int_equal(spool_worker_register(w, "indexed", indexed_handler, &x), 0);
    long long cmds0 = info_num(b.c, "server.command_count");
    struct runner r;
    runner_start(&r, w);
    assert_true(wait_processed(w, BATCH_JOBS, 30000));
    long long cmds = info_num(b.c, "server.command_count") - cmds0;
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);
    assert_int_equal(ran_at_most_once(&b), BATCH_JOBS);
    assert_int_equal(spool_worker_processed(w), BATCH_JOBS);
    assert_int_equal(spool_worker_failed(w), 0);
    assert_int_equal(info_num(b.c, "faktory.total_processed"), BATCH_JOBS);
    assert_int_equal(info_num(b.c, "faktory.sets.working"), 0);
    /* FETCH + ACK is two commands per job; FETCHN + ACKN carry many each
     * (plus a few BEATs and connection handshakes either way). */
    if (is_batch && cmds >= BATCH_JOBS / 2)
        fail_msg("%lld commands for %d jobs: FETCHN/ACKN not used", cmds, BATCH_JOBS);
    if (!is_batch && cmds < 2 * BATCH_JOBS)
        fail_msg("%lld commands for %d jobs: want FETCH and ACK each", cmds, BATCH_JOBS);
    spool_worker_free(w);
    indexed_run_end(&b);
}

static void worker_batches_fetch_and_ack(void **state)
{
    (void)state;
    worker_each_job_once(NULL, 1);
}

static void worker_plain_fwp_fetches_one_by_one(void **state)
{
    (void)state;
    worker_each_job_once("--plain-fwp", 0);
}

/* Quiet, then stop, in the middle of a run: every job run is ACKed before
 * run returns, nothing stays reserved, the rest is still queued. */
static void worker_batch_quiet_and_stop_mid_run(void **state)
{
    (void)state;
    struct indexed_run b;
    indexed_run_start(&b, NULL);
    struct indexed x = {.seen = b.seen, .hold_ms = 5};
    spool_worker *w = make_worker(b.p.url, 8, NULL, 0, NULL);
    assert_int_equal(spool_worker_register(w, "indexed", indexed_handler, &x), 0);
    struct runner r;
    runner_start(&r, w);
    assert_true(wait_processed(w, 50, 20000));
    spool_worker_quiet(w);
    assert_true(wait_info(b.c, "faktory.sets.working", 0, 5000));
    long long queued = queue_size(b.c);
    assert_true(queued > 0);
    /* quiet: no more fetching */
    poll(NULL, 0, 300);
    assert_int_equal(queue_size(b.c), queued);
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);

    long long ran = ran_at_most_once(&b);
    assert_int_equal(spool_worker_processed(w), ran);
    assert_int_equal(info_num(b.c, "faktory.total_processed"), ran);
    assert_int_equal(info_num(b.c, "faktory.sets.working"), 0);
    assert_int_equal(info_num(b.c, "faktory.sets.retries"), 0);
    assert_int_equal(queue_size(b.c), BATCH_JOBS - ran);
    spool_worker_free(w);
    indexed_run_end(&b);
}

/* SIGKILL a batching worker process mid-run: every job is either ACKed, still
 * reserved by the dead process (it comes back when the reservation expires),
 * or still queued; none ran twice, and a second worker finishes the queue. */
static void worker_batch_killed_loses_nothing(void **state)
{
    (void)state;
    struct indexed_run b;
    indexed_run_start(&b, NULL);
    struct indexed x = {.seen = b.seen, .hold_ms = 5};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* no cmocka in the child: it only works until killed */
        spool_worker_config cfg = {
            .url = b.p.url, .concurrency = 8, .heartbeat_ms = 100, .log = quiet_log};
        spool_worker *w = NULL;
        if (spool_worker_new(&cfg, &w) == 0 &&
            spool_worker_register(w, "indexed", indexed_handler, &x) == 0)
            spool_worker_run(w);
        _exit(2);
    }
    long long deadline = test_now_ms() + 20000;
    while (ran_at_most_once(&b) < 60 && test_now_ms() < deadline)
        poll(NULL, 0, 5);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    long long ran = ran_at_most_once(&b);
    assert_true(ran >= 60);
    poll(NULL, 0, 200); /* whatever the child sent before it died is handled by now */
    assert_int_equal(info_num(b.c, "faktory.sets.retries"), 0);
    long long acked = info_num(b.c, "faktory.total_processed");
    long long held = info_num(b.c, "faktory.sets.working");
    long long queued = queue_size(b.c);
    if (acked + held + queued != BATCH_JOBS || acked > ran || ran > acked + held)
        fail_msg("after the kill: %lld ran, %lld ACKed, %lld reserved, %lld queued, of %d", ran,
                 acked, held, queued, BATCH_JOBS);

    spool_worker *w = make_worker(b.p.url, 8, NULL, 0, NULL);
    struct indexed x2 = {.seen = b.seen};
    assert_int_equal(spool_worker_register(w, "indexed", indexed_handler, &x2), 0);
    struct runner r;
    runner_start(&r, w);
    assert_true(wait_processed(w, (uint64_t)queued, 30000));
    spool_worker_stop(w);
    assert_int_equal(runner_join(&r, 10000), 0);
    /* what never ran was reserved by the dead worker before it got to it */
    assert_true(BATCH_JOBS - ran_at_most_once(&b) <= held);
    assert_int_equal(info_num(b.c, "faktory.total_processed"), acked + queued);
    assert_int_equal(info_num(b.c, "faktory.sets.working"), held);
    assert_int_equal(queue_size(b.c), 0);
    spool_worker_free(w);
    indexed_run_end(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_parses_password_host_port),
        cmocka_unit_test(url_defaults_from_env),
        cmocka_unit_test(url_rejects_bad_ones_clearly),
        cmocka_unit_test(push_fetch_ack),
        cmocka_unit_test(fail_then_retries_in_info),
        cmocka_unit_test(push_many_reports_bad_jobs),
        cmocka_unit_test(batch_calls_use_fetchn_and_ackn),
        cmocka_unit_test(batch_calls_fall_back_to_plain_fwp),
        cmocka_unit_test(password_right_and_wrong),
        cmocka_unit_test(worker_runs_jobs_across_queues_concurrently),
        cmocka_unit_test(worker_failing_handler_lands_in_retries),
        cmocka_unit_test(worker_quiet_then_terminate_from_server),
        cmocka_unit_test(worker_reconnects_without_losing_jobs),
        cmocka_unit_test(worker_stop_fails_jobs_past_the_timeout),
        cmocka_unit_test(worker_batches_fetch_and_ack),
        cmocka_unit_test(worker_plain_fwp_fetches_one_by_one),
        cmocka_unit_test(worker_batch_quiet_and_stop_mid_run),
        cmocka_unit_test(worker_batch_killed_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
