/*
 * Unit tests for engine/job: PUSH validation with Faktory's messages and
 * order (FWP section 4), type errors, defaults, rendering as FETCH returns
 * it, failure bookkeeping (section 7) and the backoff and reservation rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/sbuf.h"
#include "common/timefmt.h"
#include "engine/job.h"

/* 2024-03-01T00:00:00Z */
#define NOW (INT64_C(1709251200) * NS_PER_S)

#define MSG_JID "jobs must have a reasonable jid parameter"
#define MSG_JOBTYPE "jobs must have a jobtype parameter"
#define MSG_ARGS "jobs must have an args parameter"
#define MSG_RESERVE "jobs cannot be reserved for more than one day"
#define MSG_AT_PREFIX "invalid timestamp for 'at': "
#define MSG_QUEUE(name) \
    "cannot get \"" name "\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z"

static char err_buf[JOB_ERR_MAX];
/* Stored into out-parameters before a call that must overwrite them with NULL. */
static struct job sentinel;

static struct job *parse_ok(const char *json)
{
    struct job *job = NULL;
    memset(err_buf, 0, sizeof err_buf);
    int rc = job_parse(json, strlen(json), NOW, &job, err_buf);
    if (rc != 0)
        fail_msg("expected %s to parse, got error: %s", json, err_buf);
    assert_non_null(job);
    return job;
}

/* Returns the error message (valid until the next call). */
static const char *parse_err(const char *json)
{
    struct job *job = &sentinel; /* must be overwritten with NULL */
    memset(err_buf, 0, sizeof err_buf);
    int rc = job_parse(json, strlen(json), NOW, &job, err_buf);
    if (rc != -1) {
        job_free(job);
        fail_msg("expected %s to be rejected", json);
    }
    assert_null(job);
    assert_true(strlen(err_buf) > 0);
    assert_true(strlen(err_buf) < JOB_ERR_MAX);
    return err_buf;
}

static cJSON *render_json(const struct job *job)
{
    struct sbuf b;
    sbuf_init(&b);
    job_render(job, &b);
    cJSON *obj = cJSON_ParseWithLength(b.buf, b.len);
    if (!obj)
        fail_msg("job_render produced invalid JSON: %s", b.buf);
    /* No key may appear twice at the top level. */
    for (cJSON *a = obj->child; a; a = a->next)
        for (cJSON *c = a->next; c; c = c->next)
            if (strcmp(a->string, c->string) == 0)
                fail_msg("key \"%s\" appears twice in %s", a->string, b.buf);
    sbuf_release(&b);
    return obj;
}

static const char *str_field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v))
        fail_msg("field \"%s\" missing or not a string", key);
    return v->valuestring;
}

static double num_field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v))
        fail_msg("field \"%s\" missing or not a number", key);
    return v->valuedouble;
}

/* ---- validation ---- */

static void job_validation_messages(void **state)
{
    static const struct {
        const char *json, *err;
    } cases[] = {
        {"{\"jobtype\":\"T\",\"args\":[]}", MSG_JID},
        {"{\"jid\":\"\",\"jobtype\":\"T\",\"args\":[]}", MSG_JID},
        {"{\"jid\":null,\"jobtype\":\"T\",\"args\":[]}", MSG_JID},
        {"{\"jid\":\"1234567\",\"jobtype\":\"T\",\"args\":[]}", MSG_JID},
        {"{\"jid\":\"12345678\",\"args\":[]}", MSG_JOBTYPE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"\",\"args\":[]}", MSG_JOBTYPE},
        {"{\"jid\":\"12345678\",\"jobtype\":null,\"args\":[]}", MSG_JOBTYPE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\"}", MSG_ARGS},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":null}", MSG_ARGS},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":86401}", MSG_RESERVE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":1000000}",
         MSG_RESERVE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"a b\"}",
         MSG_QUEUE("a b")},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"a/b\"}",
         MSG_QUEUE("a/b")},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"caf\xc3\xa9\"}",
         MSG_QUEUE("caf\xc3\xa9")},
        /* A past 'at' enqueues now: the queue name is checked. */
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"a:b\","
         "\"at\":\"2000-01-01T00:00:00Z\"}",
         MSG_QUEUE("a:b")},
        /* spool checks the name for a future 'at' too (Faktory does not). */
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"a b\","
         "\"at\":\"2099-01-01T00:00:00Z\"}",
         MSG_QUEUE("a b")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *err = parse_err(cases[i].json);
        if (strcmp(err, cases[i].err) != 0)
            fail_msg("%s:\n  got  %s\n  want %s", cases[i].json, err, cases[i].err);
    }
}

static void job_bad_at_messages(void **state)
{
    static const char *const bad[] = {"bogus", "2024-03-01 12:00:00Z", "2024-03-01T12:00:00",
                                      "2024-02-30T00:00:00Z", "2024-03-01T12:00:00+0100"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[256], want[128];
        snprintf(json, sizeof json,
                 "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":\"%s\"}", bad[i]);
        snprintf(want, sizeof want, MSG_AT_PREFIX "\"%s\": ", bad[i]);
        const char *err = parse_err(json);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("got \"%s\", want prefix \"%s\"", err, want);
        assert_true(strlen(err) > strlen(want)); /* a reason follows */
    }
}

static void job_validation_order(void **state)
{
    /* Each row fails its own check and every later one: the first wins. */
    static const struct {
        const char *json, *err;
    } cases[] = {
        {"{\"jid\":\"short\",\"jobtype\":\"\",\"args\":null,\"reserve_for\":99999,"
         "\"at\":\"bad\",\"queue\":\"a b\"}",
         MSG_JID},
        {"{\"jid\":\"12345678\",\"jobtype\":\"\",\"args\":null,\"reserve_for\":99999,"
         "\"at\":\"bad\",\"queue\":\"a b\"}",
         MSG_JOBTYPE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":null,\"reserve_for\":99999,"
         "\"at\":\"bad\",\"queue\":\"a b\"}",
         MSG_ARGS},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":99999,"
         "\"at\":\"bad\",\"queue\":\"a b\"}",
         MSG_RESERVE},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":600,"
         "\"at\":\"bad\",\"queue\":\"a b\"}",
         MSG_AT_PREFIX "\"bad\": "},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":600,"
         "\"at\":\"2099-01-01T00:00:00Z\",\"queue\":\"a b\"}",
         MSG_QUEUE("a b")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *err = parse_err(cases[i].json);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("row %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
    }
}

static void job_boundaries_accepted(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],"
                               "\"reserve_for\":86400,\"queue\":\"aZ0._-\",\"at\":\"\"}");
    assert_string_equal(job->jid, "12345678");
    assert_int_equal(job->reserve_for_s, 86400);
    assert_string_equal(job->queue, "aZ0._-");
    assert_true(job->at_ns == 0);
    job_free(job);
    job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":null,"
                   "\"reserve_for\":null,\"custom\":null,\"backtrace\":null}");
    assert_true(job->at_ns == 0);
    assert_int_equal(job->reserve_for_s, 0);
    job_free(job);
}

static void job_type_errors(void **state)
{
    static const struct {
        const char *json, *err; /* err NULL: only the "invalid JSON: " prefix is checked */
    } cases[] = {
        {"{\"jid\":12345678,\"jobtype\":\"T\",\"args\":[]}",
         "invalid JSON: field \"jid\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":[\"T\"],\"args\":[]}",
         "invalid JSON: field \"jobtype\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":{}}",
         "invalid JSON: field \"args\" must be an array"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":\"x\"}",
         "invalid JSON: field \"args\" must be an array"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":1}",
         "invalid JSON: field \"queue\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":\"5\"}",
         "invalid JSON: field \"retry\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":1.5}",
         "invalid JSON: field \"retry\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":true}",
         "invalid JSON: field \"retry\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":1e12}",
         "invalid JSON: field \"retry\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":\"60\"}",
         "invalid JSON: field \"reserve_for\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"backtrace\":\"x\"}",
         "invalid JSON: field \"backtrace\" must be an integer"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":12}",
         "invalid JSON: field \"at\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"created_at\":1}",
         "invalid JSON: field \"created_at\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"enqueued_at\":1}",
         "invalid JSON: field \"enqueued_at\" must be a string"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"custom\":[]}",
         "invalid JSON: field \"custom\" must be an object"},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"failure\":\"x\"}",
         "invalid JSON: field \"failure\" must be an object"},
        {"{\"jid\":\"12345678\",\"jid\":\"87654321\",\"jobtype\":\"T\",\"args\":[]}",
         "invalid JSON: duplicate field \"jid\""},
        {"[]", "invalid JSON: a job must be a JSON object"},
        {"\"job\"", "invalid JSON: a job must be a JSON object"},
        {"null", "invalid JSON: a job must be a JSON object"},
        {"42", "invalid JSON: a job must be a JSON object"},
        {"", NULL},
        {"{", NULL},
        {"{\"jid\":}", NULL},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]} {}", NULL},
        {"{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}x", NULL},
        /* A type error is reported before any validation error. */
        {"{\"jid\":\"short\",\"args\":{}}", "invalid JSON: field \"args\" must be an array"},
        {"{\"retry\":\"x\"}", "invalid JSON: field \"retry\" must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *err = parse_err(cases[i].json);
        if (strncmp(err, "invalid JSON: ", 14) != 0)
            fail_msg("%s: got \"%s\", want an \"invalid JSON: \" message", cases[i].json, err);
        if (cases[i].err && strcmp(err, cases[i].err) != 0)
            fail_msg("%s:\n  got  %s\n  want %s", cases[i].json, err, cases[i].err);
    }
    /* Whitespace around the object is fine. */
    struct job *job = parse_ok(" \r\n{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}\r\n ");
    job_free(job);
}

static void job_parse_respects_length(void **state)
{
    const char *json = "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}GARBAGE";
    struct job *job = NULL;
    char err[JOB_ERR_MAX];
    assert_int_equal(job_parse(json, strlen(json) - 7, NOW, &job, err), 0);
    assert_non_null(job);
    job_free(job);
}

/* ---- defaults ---- */

static void job_retry_defaults(void **state)
{
    static const struct {
        const char *field;
        int want;
    } cases[] = {
        {"", JOB_DEFAULT_RETRY},       {",\"retry\":null", JOB_DEFAULT_RETRY},
        {",\"retry\":0", 0},           {",\"retry\":-1", -1},
        {",\"retry\":3", 3},           {",\"retry\":25", 25},
        {",\"retry\":100", 100},       {",\"retry\":5.0", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]%s}",
                 cases[i].field);
        struct job *job = parse_ok(json);
        if (job->retry != cases[i].want)
            fail_msg("%s: retry %d, want %d", json, job->retry, cases[i].want);
        cJSON *r = render_json(job);
        assert_true(num_field(r, "retry") == cases[i].want);
        cJSON_Delete(r);
        job_free(job);
    }
    /* An explicit retry does not leak into the next job's default (the Faktory quirk). */
    struct job *a = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":2}");
    struct job *b = parse_ok("{\"jid\":\"87654321\",\"jobtype\":\"T\",\"args\":[]}");
    assert_int_equal(a->retry, 2);
    assert_int_equal(b->retry, 25);
    job_free(a);
    job_free(b);
}

static void job_queue_defaults(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}");
    assert_string_equal(job->queue, "default");
    job_free(job);
    job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"\"}");
    assert_string_equal(job->queue, "default");
    job_free(job);
    job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":null}");
    assert_string_equal(job->queue, "default");
    job_free(job);
    job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"critical\"}");
    assert_string_equal(job->queue, "critical");
    cJSON *r = render_json(job);
    assert_string_equal(str_field(r, "queue"), "critical");
    cJSON_Delete(r);
    job_free(job);
}

static void job_created_at(void **state)
{
    char want[TIMEFMT_MAX];
    timefmt_format(NOW, want);
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}");
    assert_string_equal(job->created_at, want);
    assert_string_equal(job->created_at, "2024-03-01T00:00:00Z");
    job_free(job);
    job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"created_at\":\"\"}");
    assert_string_equal(job->created_at, want);
    job_free(job);
    /* A given created_at is kept as is, never parsed. */
    job = parse_ok(
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"created_at\":\"last tuesday\"}");
    assert_string_equal(job->created_at, "last tuesday");
    cJSON *r = render_json(job);
    assert_string_equal(str_field(r, "created_at"), "last tuesday");
    cJSON_Delete(r);
    job_free(job);
}

static void job_at_parsed(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],"
                               "\"at\":\"2024-03-01T00:00:10.5+00:00\"}");
    assert_true(job->at_ns == NOW + 10 * NS_PER_S + 500 * NS_PER_MS);
    /* 'at' stays in the payload as the client wrote it. */
    cJSON *r = render_json(job);
    assert_string_equal(str_field(r, "at"), "2024-03-01T00:00:10.5+00:00");
    cJSON_Delete(r);
    job_free(job);
}

static void job_reserve_s_clamps(void **state)
{
    static const struct {
        int given, want;
    } cases[] = {{0, 1800}, {1, 60}, {59, 60}, {60, 60}, {61, 61}, {1800, 1800},
                 {86400, 86400}, {-5, 60}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct job job = {.reserve_for_s = cases[i].given};
        if (job_reserve_s(&job) != cases[i].want)
            fail_msg("reserve_for %d: got %d, want %d", cases[i].given, job_reserve_s(&job),
                     cases[i].want);
    }
    struct job *p =
        parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":30}");
    assert_int_equal(job_reserve_s(p), 60);
    job_free(p);
}

static void job_queue_names(void **state)
{
    assert_true(job_queue_name_ok("default"));
    assert_true(job_queue_name_ok("a"));
    assert_true(job_queue_name_ok("Az09._-"));
    assert_true(job_queue_name_ok("..."));
    assert_false(job_queue_name_ok(""));
    assert_false(job_queue_name_ok("a b"));
    assert_false(job_queue_name_ok("a/b"));
    assert_false(job_queue_name_ok("a:b"));
    assert_false(job_queue_name_ok("*"));
    assert_false(job_queue_name_ok("q\n"));
    assert_false(job_queue_name_ok("caf\xc3\xa9"));
}

/* ---- rendering ---- */

static void job_render_fields(void **state)
{
    struct job *job = parse_ok(
        "{\"jid\":\"abcdefgh12\",\"jobtype\":\"SendEmail\",\"args\":[1,\"two\",{\"three\":[3]}],"
        "\"queue\":\"mail\",\"retry\":7,\"reserve_for\":600,\"backtrace\":12,"
        "\"custom\":{\"k\":\"v\",\"n\":[1,2]}}");
    cJSON *r = render_json(job);
    assert_string_equal(str_field(r, "jid"), "abcdefgh12");
    assert_string_equal(str_field(r, "jobtype"), "SendEmail");
    assert_string_equal(str_field(r, "queue"), "mail");
    assert_true(num_field(r, "retry") == 7);
    assert_true(num_field(r, "reserve_for") == 600);
    assert_true(num_field(r, "backtrace") == 12);
    assert_string_equal(str_field(r, "created_at"), "2024-03-01T00:00:00Z");
    char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "args"));
    assert_string_equal(args, "[1,\"two\",{\"three\":[3]}]");
    cJSON_free(args);
    char *custom = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "custom"));
    assert_string_equal(custom, "{\"k\":\"v\",\"n\":[1,2]}");
    cJSON_free(custom);
    /* Not yet enqueued, never failed. */
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "enqueued_at"));
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "failure"));
    cJSON_Delete(r);

    job->enqueued_at_ns = NOW + 1500 * NS_PER_MS;
    r = render_json(job);
    assert_string_equal(str_field(r, "enqueued_at"), "2024-03-01T00:00:01.5Z");
    cJSON_Delete(r);
    job_free(job);
}

static void job_unknown_fields_kept(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],"
                               "\"priority\":5,\"extra\":{\"nested\":[true,null]},\"x\":\"y\"}");
    cJSON *r = render_json(job);
    assert_true(num_field(r, "priority") == 5);
    assert_string_equal(str_field(r, "x"), "y");
    char *extra = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "extra"));
    assert_string_equal(extra, "{\"nested\":[true,null]}");
    cJSON_free(extra);
    cJSON_Delete(r);
    job_free(job);
}

static void job_render_owned_fields_once(void **state)
{
    /* Fields the server owns are replaced, never duplicated, when a client sends them. */
    struct job *job = parse_ok(
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\",\"retry\":3,"
        "\"created_at\":\"2020-01-01T00:00:00Z\",\"enqueued_at\":\"2020-01-02T00:00:00Z\","
        "\"failure\":{\"retry_count\":2,\"remaining\":1,\"errtype\":\"E\",\"message\":\"m\","
        "\"failed_at\":\"2020-01-03T00:00:00Z\",\"backtrace\":[\"l1\",\"l2\"]}}");
    assert_string_equal(job->queue, "q1");
    assert_int_equal(job->retry, 3);
    assert_non_null(job->failure);
    assert_int_equal(job->failure->retry_count, 2);
    assert_int_equal(job->failure->remaining, 1);
    assert_string_equal(job->failure->errtype, "E");
    assert_string_equal(job->failure->message, "m");
    job->enqueued_at_ns = NOW;
    cJSON *r = render_json(job); /* checks for duplicate keys */
    assert_string_equal(str_field(r, "queue"), "q1");
    assert_string_equal(str_field(r, "created_at"), "2020-01-01T00:00:00Z");
    assert_string_equal(str_field(r, "enqueued_at"), "2024-03-01T00:00:00Z");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "failure");
    assert_true(cJSON_IsObject(f));
    assert_true(num_field(f, "retry_count") == 2);
    assert_string_equal(str_field(f, "failed_at"), "2020-01-03T00:00:00Z");
    char *bt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(f, "backtrace"));
    assert_string_equal(bt, "[\"l1\",\"l2\"]");
    cJSON_free(bt);
    cJSON_Delete(r);
    job_free(job);
}

/* The body is cut from the pushed text when that prints the same, else re-printed compactly. */
static void job_body_is_the_pushed_text_minus_owned_fields(void **state)
{
    (void)state;
    const char *text = "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"queue\":\"q\","
                       "\"args\":[1,-2,{\"a\":[true,false,null]},\"x, }]{:\"],\"retry\":3,"
                       "\"custom\":{\"k\":\"v\"},\"created_at\":\"c\"}";
    struct job *job = parse_ok(text);
    assert_string_equal(job->body, "\"jid\":\"12345678\",\"jobtype\":\"T\","
                                   "\"args\":[1,-2,{\"a\":[true,false,null]},\"x, }]{:\"],"
                                   "\"custom\":{\"k\":\"v\"}");
    assert_int_equal(job->body_len, strlen(job->body));
    assert_string_equal(job->queue, "q");
    assert_string_equal(job->created_at, "c");
    /* the same job through cJSON (PUSHB's path) gets the same body */
    cJSON *obj = cJSON_Parse(text);
    struct job *viajson = NULL;
    assert_int_equal(job_from_cjson(obj, NOW, &viajson, err_buf), 0);
    assert_string_equal(viajson->body, job->body);
    cJSON_Delete(obj);
    job_free(viajson);
    job_free(job);

    /* white space, escapes and non-integer numbers: printed as cJSON prints them */
    job = parse_ok(" { \"jid\" : \"12345678\", \"jobtype\":\"T\\u0041\", \"args\":[ 1.50, 1e2, \"\\/\" ] } ");
    assert_string_equal(job->body, "\"jid\":\"12345678\",\"jobtype\":\"TA\",\"args\":[1.5,100,\"/\"]");
    assert_string_equal(job->jobtype, "TA");
    job_free(job);
    /* -0 and integers over 15 digits go through cJSON too, so the body matches its print */
    const char *odd = "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[-0,123456789012345678]}";
    job = parse_ok(odd);
    obj = cJSON_Parse(odd);
    char *printed = cJSON_PrintUnformatted(obj);
    assert_int_equal(job->body_len, strlen(printed) - 2);
    assert_memory_equal(job->body, printed + 1, job->body_len);
    cJSON_free(printed);
    cJSON_Delete(obj);
    job_free(job);
    /* an empty body, and a body that is only owned fields */
    job = parse_ok("{\"queue\":\"q\",\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}");
    assert_string_equal(job->body, "\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]");
    job_free(job);
}

static void job_render_escapes_strings(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\\\"q\","
                               "\"args\":[\"\\u0001\\n\"],"
                               "\"created_at\":\"a\\\"b\\\\c\\u0001\\t\"}");
    assert_string_equal(job->jobtype, "T\"q");
    assert_string_equal(job->created_at, "a\"b\\c\x01\t");
    job_record_failure(job, "Err\"Type", "line1\nline2 \x1f\\", NULL, NOW);
    cJSON *r = render_json(job);
    assert_string_equal(str_field(r, "jobtype"), "T\"q");
    assert_string_equal(str_field(r, "created_at"), "a\"b\\c\x01\t");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "failure");
    assert_string_equal(str_field(f, "errtype"), "Err\"Type");
    assert_string_equal(str_field(f, "message"), "line1\nline2 \x1f\\");
    cJSON_Delete(r);
    job_free(job);
}

static void job_from_cjson_object(void **state)
{
    char err[JOB_ERR_MAX];
    struct job *job = &sentinel;
    cJSON *arr = cJSON_Parse("[{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[2]},"
                             "{\"jid\":\"x\",\"jobtype\":\"T\",\"args\":[]},7]");
    assert_non_null(arr);
    assert_int_equal(job_from_cjson(cJSON_GetArrayItem(arr, 0), NOW, &job, err), 0);
    assert_non_null(job);
    assert_string_equal(job->jid, "12345678");
    assert_string_equal(job->queue, "default");
    job_free(job);
    job = &sentinel;
    assert_int_equal(job_from_cjson(cJSON_GetArrayItem(arr, 1), NOW, &job, err), -1);
    assert_null(job);
    assert_string_equal(err, MSG_JID);
    assert_int_equal(job_from_cjson(cJSON_GetArrayItem(arr, 2), NOW, &job, err), -1);
    assert_string_equal(err, "invalid JSON: a job must be a JSON object");
    cJSON_Delete(arr);
}

/* PUSHB's elements keep their own text, as PUSH does: the same body either way. */
static void job_from_array_item_matches_job_parse(void **state)
{
    (void)state;
    const char *elems[] = {
        "{\"jid\":\"a2345678\",\"jobtype\":\"T\",\"args\":[\"],[{\\\"\",{\"k\":[1,[2]]}],\"queue\":"
        "\"q\"}",
        "{ \"jid\" : \"b2345678\", \"jobtype\":\"T\\u0041\", \"args\":[ 1.50 ] }",
        "{\"jid\":\"c2345678\",\"jobtype\":\"T\",\"args\":[],\"custom\":{\"x\":\"}\"}}",
    };
    char text[1024];
    snprintf(text, sizeof text, " [ %s ,\n%s,%s ] ", elems[0], elems[1], elems[2]);
    char err[JOB_ERR_MAX];
    cJSON *arr = job_parse_array(text, strlen(text), err);
    assert_non_null(arr);
    size_t pos = 0;
    int i = 0;
    cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        struct job *from_array = NULL;
        assert_int_equal(job_from_array_item(item, text, strlen(text), &pos, NOW, &from_array, err),
                         0);
        struct job *alone = parse_ok(elems[i]);
        assert_string_equal(from_array->jid, alone->jid);
        assert_int_equal(from_array->body_len, alone->body_len);
        assert_memory_equal(from_array->body, alone->body, alone->body_len);
        job_free(from_array);
        job_free(alone);
        i++;
    }
    assert_int_equal(i, 3);
    cJSON_Delete(arr);

    /* text after the array, \u0000 and bad JSON are refused with the reason */
    const char *extra = "[{\"jid\":\"a2345678\",\"jobtype\":\"T\",\"args\":[]}] [1]";
    assert_null(job_parse_array(extra, strlen(extra), err));
    assert_string_equal(err, "invalid JSON: unexpected text after the array at byte 45");
    const char *nul = "[{\"jid\":\"a2345678\",\"jobtype\":\"\\u0000\",\"args\":[]}]";
    assert_null(job_parse_array(nul, strlen(nul), err));
    assert_string_equal(err, "invalid JSON: strings containing \\u0000 (NUL) are not supported");
    assert_null(job_parse_array("[{", 2, err));
    assert_string_equal(err, "invalid JSON: syntax error at byte 1");
}

/* ---- failures ---- */

static struct job *job_with_retry(int retry)
{
    char json[128];
    snprintf(json, sizeof json, "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":%d}",
             retry);
    return parse_ok(json);
}

static void job_failure_progression(void **state)
{
    struct job *job = job_with_retry(2);
    assert_null(job->failure);
    static const struct {
        int count, remaining;
    } want[] = {{0, 2}, {1, 1}, {2, 0}, {3, 0}, {4, 0}};
    for (int i = 0; i < 5; i++) {
        int64_t t = NOW + i * 60 * NS_PER_S;
        if (job->failure)
            job->failure->next_at_ns = t + 1; /* the engine sets it; a new failure clears it */
        job_record_failure(job, "E", "m", NULL, t);
        assert_non_null(job->failure);
        if (job->failure->retry_count != want[i].count ||
            job->failure->remaining != want[i].remaining)
            fail_msg("failure %d: retry_count %d remaining %d, want %d %d", i + 1,
                     job->failure->retry_count, job->failure->remaining, want[i].count,
                     want[i].remaining);
        assert_true(job->failure->failed_at_ns == NOW); /* the first failure's time */
        assert_true(job->failure->next_at_ns == 0);
    }
    cJSON *r = render_json(job);
    cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "failure");
    assert_true(num_field(f, "retry_count") == 4);
    assert_true(num_field(f, "remaining") == 0);
    assert_string_equal(str_field(f, "failed_at"), "2024-03-01T00:00:00Z");
    assert_null(cJSON_GetObjectItemCaseSensitive(f, "next_at"));
    cJSON_Delete(r);

    job->failure->next_at_ns = NOW + 15 * NS_PER_S;
    r = render_json(job);
    f = cJSON_GetObjectItemCaseSensitive(r, "failure");
    assert_string_equal(str_field(f, "next_at"), "2024-03-01T00:00:15Z");
    cJSON_Delete(r);
    job_free(job);

    /* retry -1 and 0 start with remaining = retry. */
    job = job_with_retry(-1);
    job_record_failure(job, "E", "m", NULL, NOW);
    assert_int_equal(job->failure->retry_count, 0);
    assert_int_equal(job->failure->remaining, -1);
    job_free(job);
}

static void job_failure_cleansing(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Boom", "Boom"},           {"  Boom  ", "Boom"},        {"\t\r\nBoom\n", "Boom"},
        {"a b", "a b"},             {"", "unknown"},              {"   \t\n", "unknown"},
        {NULL, "unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct job *job = job_with_retry(25);
        job_record_failure(job, cases[i].in, cases[i].in, NULL, NOW);
        assert_string_equal(job->failure->errtype, cases[i].want);
        assert_string_equal(job->failure->message, cases[i].want);
        assert_null(job->failure->backtrace);
        job_free(job);
    }
    /* A later failure replaces errtype, message and backtrace. */
    struct job *job = job_with_retry(25);
    job_record_failure(job, "First", "one", "[\"a\"]", NOW);
    assert_string_equal(job->failure->backtrace, "[\"a\"]");
    job_record_failure(job, "", " two ", NULL, NOW + NS_PER_S);
    assert_string_equal(job->failure->errtype, "unknown");
    assert_string_equal(job->failure->message, "two");
    assert_null(job->failure->backtrace);
    job_free(job);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void job_failure_truncation(void **state)
{
    char *long_type = repeat('E', 150);
    char *long_msg = repeat('m', 1500);
    struct job *job = job_with_retry(25);
    job_record_failure(job, long_type, long_msg, NULL, NOW);
    assert_int_equal(strlen(job->failure->errtype), JOB_ERRTYPE_MAX);
    assert_int_equal(strlen(job->failure->message), JOB_MESSAGE_MAX);
    assert_memory_equal(job->failure->errtype, long_type, JOB_ERRTYPE_MAX);
    job_free(job);

    /* Exactly at the limit: kept whole. */
    long_type[100] = '\0';
    long_msg[1000] = '\0';
    job = job_with_retry(25);
    job_record_failure(job, long_type, long_msg, NULL, NOW);
    assert_int_equal(strlen(job->failure->errtype), 100);
    assert_int_equal(strlen(job->failure->message), 1000);
    job_free(job);

    /* Trimmed before truncation: leading blanks do not count. */
    char padded[128];
    snprintf(padded, sizeof padded, "   %s", long_type);
    job = job_with_retry(25);
    job_record_failure(job, padded, "m", NULL, NOW);
    assert_string_equal(job->failure->errtype, long_type);
    job_free(job);

    /* Truncation never splits a UTF-8 sequence: 99 x 'a' then "é" straddles 100. */
    char utf[128];
    memset(utf, 'a', 99);
    memcpy(utf + 99, "\xc3\xa9zz", 5);
    job = job_with_retry(25);
    job_record_failure(job, utf, utf, NULL, NOW);
    assert_int_equal(strlen(job->failure->errtype), 99);
    assert_int_equal(strlen(job->failure->message), 103);
    job_free(job);
    /* 98 x 'a' then "é" ends exactly at 100 bytes: kept. */
    memset(utf, 'a', 98);
    memcpy(utf + 98, "\xc3\xa9zz", 5);
    job = job_with_retry(25);
    job_record_failure(job, utf, "m", NULL, NOW);
    assert_int_equal(strlen(job->failure->errtype), 100);
    assert_memory_equal(job->failure->errtype + 98, "\xc3\xa9", 2);
    job_free(job);

    free(long_type);
    free(long_msg);
}

static void job_failure_backtrace_copied(void **state)
{
    char bt[] = "[\"main.go:1\",\"main.go:2\"]";
    struct job *job = job_with_retry(25);
    job_record_failure(job, "E", "m", bt, NOW);
    assert_ptr_not_equal(job->failure->backtrace, bt);
    bt[2] = 'X';
    assert_string_equal(job->failure->backtrace, "[\"main.go:1\",\"main.go:2\"]");
    cJSON *r = render_json(job);
    cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "failure"),
                                                "backtrace");
    assert_true(cJSON_IsArray(b));
    assert_int_equal(cJSON_GetArraySize(b), 2);
    cJSON_Delete(r);
    job_free(job);
}

static void job_backoff_formula(void **state)
{
    static const struct {
        int count;
        uint32_t r;
        int64_t want;
    } cases[] = {
        {0, 0, 15},   {0, 29, 44},  {1, 0, 16},   {1, 29, 74},         {2, 0, 31},
        {2, 10, 61},  {3, 1, 100},  {10, 0, 10015}, {24, 0, 331791}, {24, 29, 332516},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t got = job_backoff_s(cases[i].count, cases[i].r);
        if (got != cases[i].want)
            fail_msg("backoff(%d, %u) = %lld, want %lld", cases[i].count, cases[i].r,
                     (long long)got, (long long)cases[i].want);
    }
    /* The whole default schedule without jitter: ~20.4 days. */
    int64_t total = 0;
    for (int c = 0; c < JOB_DEFAULT_RETRY; c++)
        total += job_backoff_s(c, 0);
    assert_true(total == 1763395);
}

/*
 * A client-supplied "failure":{"retry_count":2147483647} is clamped, and the
 * count saturates instead of wrapping negative on the next failure.
 */
static void job_failure_count_does_not_overflow(void **state)
{
    struct job *job = parse_ok("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],"
                               "\"failure\":{\"retry_count\":2147483647,\"remaining\":3}}");
    job_record_failure(job, "E", "m", NULL, NOW);
    int count = job->failure->retry_count;
    job_free(job);
    if (count < 0)
        fail_msg("retry_count wrapped to %d", count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_validation_messages),
        cmocka_unit_test(job_bad_at_messages),
        cmocka_unit_test(job_validation_order),
        cmocka_unit_test(job_boundaries_accepted),
        cmocka_unit_test(job_type_errors),
        cmocka_unit_test(job_parse_respects_length),
        cmocka_unit_test(job_retry_defaults),
        cmocka_unit_test(job_queue_defaults),
        cmocka_unit_test(job_created_at),
        cmocka_unit_test(job_at_parsed),
        cmocka_unit_test(job_reserve_s_clamps),
        cmocka_unit_test(job_queue_names),
        cmocka_unit_test(job_render_fields),
        cmocka_unit_test(job_unknown_fields_kept),
        cmocka_unit_test(job_render_owned_fields_once),
        cmocka_unit_test(job_render_escapes_strings),
        cmocka_unit_test(job_body_is_the_pushed_text_minus_owned_fields),
        cmocka_unit_test(job_from_cjson_object),
        cmocka_unit_test(job_from_array_item_matches_job_parse),
        cmocka_unit_test(job_failure_progression),
        cmocka_unit_test(job_failure_cleansing),
        cmocka_unit_test(job_failure_truncation),
        cmocka_unit_test(job_failure_backtrace_copied),
        cmocka_unit_test(job_backoff_formula),
        /* Known bug last: under UBSan the overflow aborts the process. */
        cmocka_unit_test(job_failure_count_does_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
