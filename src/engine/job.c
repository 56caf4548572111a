#include "engine/job.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "common/xalloc.h"

/* Fields the server owns: taken out of the body and rendered from typed state. */
static const char *const owned_keys[] = {"queue", "retry", "created_at", "enqueued_at", "failure"};
/* Fields the server reads but leaves in the body. */
static const char *const read_keys[] = {"jid", "jobtype", "args", "at", "reserve_for", "backtrace",
                                        "custom"};

int job_queue_name_ok(const char *name)
{
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int job_reserve_s(const struct job *job)
{
    int s = job->reserve_for_s ? job->reserve_for_s : JOB_DEFAULT_RESERVE_S;
    return s < JOB_MIN_RESERVE_S ? JOB_MIN_RESERVE_S : s;
}

int64_t job_backoff_s(int retry_count, uint32_t rand_0_29)
{
    /* Beyond 300 failures the formula passes a century: cap it there, no overflow. */
    int64_t c = retry_count < 0 ? 0 : retry_count > 300 ? 300 : retry_count;
    int64_t s = c * c * c * c + 15 + (int64_t)rand_0_29 * (c + 1);
    return s > JOB_MAX_BACKOFF_S ? JOB_MAX_BACKOFF_S : s;
}

void job_free(struct job *job)
{
    if (!job)
        return;
    /* jid, jobtype, queue, created_at and body live in the job's own allocation. */
    free(job->wid);
    if (job->extra) {
        free(job->extra->unique_key);
        job_track_free(job->extra->track);
        free(job->extra);
    }
    job_failure_free(job->failure);
    free(job);
}

const struct job_extra job_extra_none;

struct job_extra *job_extra_need(struct job *job)
{
    if (!job->extra)
        job->extra = xcalloc(1, sizeof *job->extra);
    return job->extra;
}

void job_track_free(struct job_track *t)
{
    if (!t)
        return;
    free(t->desc);
    free(t);
}

void job_failure_free(struct job_failure *f)
{
    if (!f)
        return;
    free(f->errtype);
    free(f->message);
    free(f->backtrace);
    free(f);
}

/* Reads an optional string field: absent or null -> NULL; other types -> error. */
static int opt_string(cJSON *obj, const char *key, const char **out, char *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        snprintf(err, JOB_ERR_MAX, "invalid JSON: field \"%s\" must be a string", key);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

/* Reads an optional integer field: absent or null -> *present = 0. */
static int opt_int(cJSON *obj, const char *key, int *out, int *present, char *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 2147483647.0) {
        snprintf(err, JOB_ERR_MAX, "invalid JSON: field \"%s\" must be an integer", key);
        return -1;
    }
    *out = (int)v->valuedouble;
    *present = 1;
    return 0;
}

static int check_duplicates(cJSON *obj, char *err)
{
    int counts[sizeof owned_keys / sizeof *owned_keys + sizeof read_keys / sizeof *read_keys] = {0};
    size_t nowned = sizeof owned_keys / sizeof *owned_keys;
    size_t nread = sizeof read_keys / sizeof *read_keys;
    for (cJSON *c = obj->child; c; c = c->next) {
        for (size_t i = 0; i < nowned + nread; i++) {
            const char *k = i < nowned ? owned_keys[i] : read_keys[i - nowned];
            if (c->string && c->string[0] == k[0] && strcmp(c->string, k) == 0 && ++counts[i] > 1) {
                snprintf(err, JOB_ERR_MAX, "invalid JSON: duplicate field \"%s\"", k);
                return -1;
            }
        }
    }
    return 0;
}

static int64_t parse_time_or_zero(const char *s)
{
    int64_t ns = 0;
    const char *why;
    if (!s || timefmt_parse(s, strlen(s), &ns, &why) != 0)
        return 0;
    return ns;
}

int job_parse_duration(const char *s, int64_t *out_ns)
{
    /* Largest accepted: 100 years, far below int64 nanoseconds. */
    const double max_s = 100.0 * 365 * 86400;
    double total_s = 0;
    char *end;
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p;) {
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return -1;
        double v = strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
        double unit;
        if (!*p && total_s == 0)
            unit = 1; /* a bare number: seconds */
        else if (strncmp(p, "ms", 2) == 0)
            unit = 1e-3, p += 2;
        else if (*p == 's')
            unit = 1, p++;
        else if (*p == 'm')
            unit = 60, p++;
        else if (*p == 'h')
            unit = 3600, p++;
        else
            return -1;
        total_s += v * unit;
        if (total_s > max_s)
            return -1;
    }
    if (!(total_s > 0))
        return -1;
    *out_ns = (int64_t)(total_s * (double)NS_PER_S);
    return 0;
}

char *job_unique_key_make(const char *jobtype, const char *queue, const cJSON *args)
{
    char *text = args ? cJSON_PrintUnformatted(args) : NULL;
    struct sbuf b;
    sbuf_init(&b);
    /* '\n' cannot occur in a queue name or in printed JSON, so the parts cannot run together. */
    sbuf_adds(&b, queue);
    sbuf_add(&b, "\n", 1);
    sbuf_adds(&b, text ? text : "[]");
    sbuf_add(&b, "\n", 1);
    sbuf_adds(&b, jobtype);
    if (text)
        cJSON_free(text);
    char *key = xstrdup(b.buf);
    sbuf_release(&b);
    return key;
}

int job_unique_key_derive(struct job *job)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "{", 1);
    sbuf_add(&b, job->body, job->body_len);
    sbuf_add(&b, "}", 1);
    cJSON *obj = cJSON_ParseWithLength(b.buf, b.len);
    sbuf_release(&b);
    cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, "args");
    int rc = -1;
    if (cJSON_IsArray(args)) {
        struct job_extra *x = job_extra_need(job);
        free(x->unique_key);
        x->unique_key = job_unique_key_make(job->jobtype, job->queue, args);
        rc = 0;
    }
    cJSON_Delete(obj);
    return rc;
}

struct features {
    int64_t expires_at_ns;
    int unique_for_s;
    int is_until_start;
};

/* Reads custom.expires_at / expires_in / unique_for / unique_until, checks custom.bid (docs/features.md). */
static int parse_features(cJSON *custom, int64_t now_ns, struct features *ft, char *err)
{
    memset(ft, 0, sizeof *ft);
    if (!cJSON_IsObject(custom))
        return 0;
    cJSON *at = cJSON_GetObjectItemCaseSensitive(custom, "expires_at");
    cJSON *in = cJSON_GetObjectItemCaseSensitive(custom, "expires_in");
    if (at && !cJSON_IsNull(at)) {
        const char *why = "must be an RFC 3339 string";
        if (!cJSON_IsString(at) ||
            timefmt_parse(at->valuestring, strlen(at->valuestring), &ft->expires_at_ns, &why) != 0) {
            snprintf(err, JOB_ERR_MAX, "invalid timestamp for 'expires_at': \"%.200s\": %s",
                     cJSON_IsString(at) ? at->valuestring : "(not a string)", why);
            return -1;
        }
    } else if (in && !cJSON_IsNull(in)) {
        int64_t ns = 0;
        int ok;
        if (cJSON_IsNumber(in)) {
            ok = in->valuedouble > 0 && in->valuedouble <= 100.0 * 365 * 86400;
            ns = ok ? (int64_t)(in->valuedouble * (double)NS_PER_S) : 0;
        } else {
            ok = cJSON_IsString(in) && job_parse_duration(in->valuestring, &ns) == 0;
        }
        if (!ok || ns <= 0) {
            snprintf(err, JOB_ERR_MAX,
                     "invalid custom.expires_in: must be seconds > 0 or a duration like \"30s\", \"5m\", \"1h30m\"");
            return -1;
        }
        ft->expires_at_ns = now_ns + ns;
    }
    cJSON *uf = cJSON_GetObjectItemCaseSensitive(custom, "unique_for");
    if (uf && !cJSON_IsNull(uf)) {
        if (!cJSON_IsNumber(uf) || uf->valuedouble < 0 || uf->valuedouble > 2147483647.0) {
            snprintf(err, JOB_ERR_MAX, "invalid custom.unique_for: must be a number of seconds >= 0");
            return -1;
        }
        ft->unique_for_s = (int)ceil(uf->valuedouble);
    }
    cJSON *bid = cJSON_GetObjectItemCaseSensitive(custom, "bid");
    if (bid && !cJSON_IsNull(bid) && (!cJSON_IsString(bid) || !*bid->valuestring)) {
        snprintf(err, JOB_ERR_MAX, "invalid custom.bid: must be the batch id BATCH NEW returned");
        return -1;
    }
    cJSON *uu = cJSON_GetObjectItemCaseSensitive(custom, "unique_until");
    if (uu && !cJSON_IsNull(uu)) {
        if (!cJSON_IsString(uu) ||
            (strcmp(uu->valuestring, "success") != 0 && strcmp(uu->valuestring, "start") != 0)) {
            snprintf(err, JOB_ERR_MAX, "invalid custom.unique_until: must be \"success\" or \"start\"");
            return -1;
        }
        ft->is_until_start = strcmp(uu->valuestring, "start") == 0;
    }
    return 0;
}

/* A failure object supplied by the client (e.g. a job re-pushed from a dead set). */
static struct job_failure *failure_from_cjson(cJSON *f)
{
    if (!cJSON_IsObject(f))
        return NULL;
    struct job_failure *fl = xcalloc(1, sizeof *fl);
    cJSON *v;
    /* Counts from the client are kept within sane bounds: they drive backoff arithmetic. */
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "retry_count")) && cJSON_IsNumber(v))
        fl->retry_count = v->valueint < 0 ? 0 : v->valueint > JOB_MAX_COUNT ? JOB_MAX_COUNT : v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "remaining")) && cJSON_IsNumber(v))
        fl->remaining = v->valueint < 0 ? 0 : v->valueint > JOB_MAX_COUNT ? JOB_MAX_COUNT : v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "failed_at")) && cJSON_IsString(v))
        fl->failed_at_ns = parse_time_or_zero(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "next_at")) && cJSON_IsString(v))
        fl->next_at_ns = parse_time_or_zero(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "errtype")) && cJSON_IsString(v))
        fl->errtype = xstrdup(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "message")) && cJSON_IsString(v))
        fl->message = xstrdup(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "backtrace")) && cJSON_IsArray(v)) {
        char *bt = cJSON_PrintUnformatted(v);
        if (bt) {
            fl->backtrace = xstrdup(bt);
            cJSON_free(bt);
        }
    }
    return fl;
}

struct job *job_new(const char *jid, const char *jobtype, const char *queue, const char *created_at,
                    const char *body, size_t body_len)
{
    size_t l_jid = strlen(jid) + 1, l_type = strlen(jobtype) + 1, l_queue = strlen(queue) + 1;
    size_t l_created = strlen(created_at) + 1;
    /* One allocation for the job and its strings: no per-string malloc overhead. */
    struct job *job = xcalloc(1, sizeof *job + l_jid + l_type + l_queue + l_created + body_len + 1);
    char *p = job->strings;
    job->jid = memcpy(p, jid, l_jid);
    p += l_jid;
    job->jobtype = memcpy(p, jobtype, l_type);
    p += l_type;
    job->queue = memcpy(p, queue, l_queue);
    p += l_queue;
    job->created_at = memcpy(p, created_at, l_created);
    p += l_created;
    job->body = p;
    if (body_len)
        memcpy(p, body, body_len);
    p[body_len] = '\0';
    job->body_len = (uint32_t)body_len;
    return job;
}

static int is_owned_key(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof owned_keys / sizeof *owned_keys; i++)
        if (strlen(owned_keys[i]) == n && memcmp(owned_keys[i], k, n) == 0)
            return 1;
    return 0;
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Copies the members of the JSON object text json[0..len) (already parsed,
 * so valid) into out, minus the server-owned ones, without the braces. This
 * is what re-printing the parsed object without those members gives, and
 * costs a tenth of it. Returns -1, leaving the caller to re-print, when the
 * text might print differently: white space outside strings, any backslash
 * escape, or a number that is not a plain integer of at most 15 digits.
 */
static int body_splice(const char *json, size_t len, struct sbuf *out)
{
    const char *p = json, *end = json + len;
    while (end > p && is_json_space(end[-1]))
        end--;
    if (p == end || *p++ != '{' || end[-1] != '}')
        return -1;
    end--; /* the closing brace */
    size_t first = out->len;
    while (p < end) {
        if (*p != '"')
            return -1;
        const char *key = ++p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end || *p != '"')
            return -1;
        size_t klen = (size_t)(p - key);
        p++;
        if (p >= end || *p++ != ':')
            return -1;
        int depth = 0, digits = 0;
        for (; p < end; p++) {
            char c = *p;
            if (c == '"') {
                for (p++; p < end && *p != '"'; p++)
                    if (*p == '\\')
                        return -1;
                if (p >= end)
                    return -1;
            } else if (c == '{' || c == '[') {
                depth++;
                digits = 0;
            } else if (c == '}' || c == ']') {
                depth--;
                digits = 0;
            } else if (c == ',') {
                if (depth == 0)
                    break;
                digits = 0;
            } else if (c >= '0' && c <= '9') {
                if (++digits > 15 || (c == '0' && digits == 1 && p[-1] == '-'))
                    return -1;
            } else if (((c == '.' || c == 'e' || c == 'E') && digits > 0) || is_json_space(c)) {
                return -1;
            } else {
                digits = 0;
            }
        }
        if (depth != 0)
            return -1;
        if (!is_owned_key(key, klen)) {
            if (out->len > first)
                sbuf_add(out, ",", 1);
            sbuf_add(out, key - 1, (size_t)(p - (key - 1)));
        }
        if (p < end)
            p++; /* the comma */
    }
    return 0;
}

static int job_build(cJSON *obj, const char *json, size_t json_len, int64_t now_ns, struct job **out,
                     char *err);

int job_from_cjson(cJSON *obj, int64_t now_ns, struct job **out, char *err)
{
    return job_build(obj, NULL, 0, now_ns, out, err);
}

/*
 * The text of the next element of the JSON array json[0..len), which cJSON
 * accepted, from *pos (0 for the first): sets *elem and *elem_len, moves
 * *pos past it and returns 1, or returns 0 after the last element.
 */
static int array_next(const char *json, size_t len, size_t *pos, const char **elem,
                      size_t *elem_len)
{
    size_t i = *pos;
    while (i < len && is_json_space(json[i]))
        i++;
    if (*pos == 0 && i < len && json[i] == '[')
        i++;
    while (i < len && (is_json_space(json[i]) || json[i] == ','))
        i++;
    if (i >= len || json[i] == ']')
        return 0;
    size_t start = i;
    int depth = 0;
    for (; i < len; i++) {
        char c = json[i];
        if (c == '"') {
            for (i++; i < len && json[i] != '"'; i++)
                if (json[i] == '\\')
                    i++;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        } else if (depth == 0 && (c == ',' || c == ']')) {
            break;
        }
    }
    size_t end = i;
    while (end > start && is_json_space(json[end - 1]))
        end--;
    *elem = json + start;
    *elem_len = end - start;
    *pos = i;
    return 1;
}

int job_from_array_item(cJSON *item, const char *json, size_t len, size_t *pos, int64_t now_ns,
                        struct job **out, char *err)
{
    const char *elem;
    size_t elem_len;
    if (!array_next(json, len, pos, &elem, &elem_len))
        elem = NULL, elem_len = 0; /* cannot happen for text cJSON accepted: re-print instead */
    return job_build(item, elem, elem_len, now_ns, out, err);
}

/*
 * Parses the one JSON value that json[0..len) must hold (a job, or an array
 * of them: `what` names it in the error). NULL with err on a \u0000 escape,
 * a syntax error or text after the value.
 */
static cJSON *parse_one_value(const char *json, size_t len, const char *what, char *err)
{
    if (job_json_has_nul(json, len)) {
        snprintf(err, JOB_ERR_MAX,
                 "invalid JSON: strings containing \\u0000 (NUL) are not supported");
        return NULL;
    }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!v) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        snprintf(err, JOB_ERR_MAX, "invalid JSON: syntax error at byte %zu", at);
        return NULL;
    }
    size_t at = job_json_trailing_at(json, len, end);
    if (at != len) {
        cJSON_Delete(v);
        snprintf(err, JOB_ERR_MAX, "invalid JSON: unexpected text after the %s at byte %zu", what,
                 at);
        return NULL;
    }
    return v;
}

cJSON *job_parse_array(const char *json, size_t len, char *err)
{
    return parse_one_value(json, len, "array", err);
}

/* json, when not NULL, is the text obj was parsed from: the body is cut from it. */
static int job_build(cJSON *obj, const char *json, size_t json_len, int64_t now_ns, struct job **out,
                     char *err)
{
    const char *jid, *jobtype, *queue, *created_at, *at;
    int retry = JOB_DEFAULT_RETRY, reserve_for = 0, present, ignored;
    *out = NULL;

    if (!cJSON_IsObject(obj)) {
        snprintf(err, JOB_ERR_MAX, "invalid JSON: a job must be a JSON object");
        return -1;
    }
    /* Type errors first, as Faktory's decoder reports them before validation. */
    if (check_duplicates(obj, err) || opt_string(obj, "jid", &jid, err) ||
        opt_string(obj, "jobtype", &jobtype, err) || opt_string(obj, "queue", &queue, err) ||
        opt_string(obj, "created_at", &created_at, err) || opt_string(obj, "at", &at, err) ||
        opt_int(obj, "retry", &retry, &present, err) ||
        opt_int(obj, "reserve_for", &reserve_for, &ignored, err) ||
        opt_int(obj, "backtrace", &ignored, &ignored, err))
        return -1;
    if (!present)
        retry = JOB_DEFAULT_RETRY;
    const char *bad_type = NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "enqueued_at");
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
        bad_type = "\"enqueued_at\" must be a string";
    v = cJSON_GetObjectItemCaseSensitive(obj, "custom");
    if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
        bad_type = "\"custom\" must be an object";
    v = cJSON_GetObjectItemCaseSensitive(obj, "failure");
    if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
        bad_type = "\"failure\" must be an object";
    cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, "args");
    if (args && !cJSON_IsNull(args) && !cJSON_IsArray(args))
        bad_type = "\"args\" must be an array";
    if (bad_type) {
        snprintf(err, JOB_ERR_MAX, "invalid JSON: field %s", bad_type);
        return -1;
    }

    /* Validation, in Faktory's order and with its messages. */
    if (!jid || strlen(jid) < JOB_MIN_JID_LEN) {
        snprintf(err, JOB_ERR_MAX, "jobs must have a reasonable jid parameter");
        return -1;
    }
    if (!jobtype || !*jobtype) {
        snprintf(err, JOB_ERR_MAX, "jobs must have a jobtype parameter");
        return -1;
    }
    if (!args || cJSON_IsNull(args)) {
        snprintf(err, JOB_ERR_MAX, "jobs must have an args parameter");
        return -1;
    }
    if (reserve_for > JOB_MAX_RESERVE_S) {
        snprintf(err, JOB_ERR_MAX, "jobs cannot be reserved for more than one day");
        return -1;
    }
    int64_t at_ns = 0;
    if (at && *at) {
        const char *why;
        if (timefmt_parse(at, strlen(at), &at_ns, &why) != 0) {
            snprintf(err, JOB_ERR_MAX, "invalid timestamp for 'at': \"%.200s\": %s", at, why);
            return -1;
        }
    }
    if (!queue || !*queue)
        queue = "default";
    if (!job_queue_name_ok(queue)) {
        snprintf(err, JOB_ERR_MAX,
                 "cannot get \"%.200s\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z", queue);
        return -1;
    }

    struct features ft;
    if (parse_features(cJSON_GetObjectItemCaseSensitive(obj, "custom"), now_ns, &ft, err) != 0)
        return -1;

    char ts[TIMEFMT_MAX];
    if (!created_at || !*created_at) {
        timefmt_format(now_ns, ts);
        created_at = ts;
    }
    struct job_failure *failure = failure_from_cjson(cJSON_GetObjectItemCaseSensitive(obj, "failure"));
    struct sbuf body;
    sbuf_init(&body);
    /* Owned members are detached (not deleted) while printing: queue and created_at point into them. */
    cJSON *detached[sizeof owned_keys / sizeof *owned_keys] = {0};
    if (!json || body_splice(json, json_len, &body) != 0) {
        sbuf_reset(&body);
        for (size_t i = 0; i < sizeof owned_keys / sizeof *owned_keys; i++)
            detached[i] = cJSON_DetachItemFromObjectCaseSensitive(obj, owned_keys[i]);
        char *text = cJSON_PrintUnformatted(obj);
        if (!text) {
            for (size_t i = 0; i < sizeof owned_keys / sizeof *owned_keys; i++)
                cJSON_Delete(detached[i]);
            job_failure_free(failure);
            sbuf_release(&body);
            snprintf(err, JOB_ERR_MAX, "out of memory rendering the job");
            return -1;
        }
        size_t n = strlen(text); /* "{...}": keep what is between the braces */
        sbuf_add(&body, text + 1, n - 2);
        cJSON_free(text);
    }
    if (body.len > UINT32_MAX) {
        sbuf_release(&body);
        for (size_t i = 0; i < sizeof owned_keys / sizeof *owned_keys; i++)
            cJSON_Delete(detached[i]);
        job_failure_free(failure);
        snprintf(err, JOB_ERR_MAX, "job too large: over 4 GiB");
        return -1;
    }
    struct job *job = job_new(jid, jobtype, queue, created_at, body.buf ? body.buf : "", body.len);
    sbuf_release(&body);
    if (ft.unique_for_s > 0)
        job_extra_need(job)->unique_key = job_unique_key_make(jobtype, queue, args);
    for (size_t i = 0; i < sizeof owned_keys / sizeof *owned_keys; i++)
        cJSON_Delete(detached[i]); /* the caller's obj is left without them, as documented */
    if (ft.expires_at_ns || ft.unique_for_s || ft.is_until_start) {
        struct job_extra *x = job_extra_need(job);
        x->expires_at_ns = ft.expires_at_ns;
        x->unique_for_s = ft.unique_for_s;
        x->is_unique_until_start = ft.is_until_start;
    }
    job->retry = retry;
    job->reserve_for_s = reserve_for;
    job->at_ns = at_ns;
    job->failure = failure;
    *out = job;
    return 0;
}

size_t job_json_trailing_at(const char *json, size_t len, const char *end)
{
    size_t at = (size_t)(end - json);
    while (at < len && is_json_space(json[at]))
        at++;
    return at;
}

int job_json_has_nul(const char *json, size_t len)
{
    /* Escapes come in pairs, so stepping over each "\x" keeps us in step. */
    for (size_t i = 0; i + 1 < len; i++) {
        const char *bs = memchr(json + i, '\\', len - i - 1); /* most jobs hold no escape at all */
        if (!bs)
            return 0;
        i = (size_t)(bs - json);
        if (json[i + 1] == 'u' && i + 5 < len && memcmp(json + i + 2, "0000", 4) == 0)
            return 1;
        i++;
    }
    return 0;
}

int job_parse(const char *json, size_t len, int64_t now_ns, struct job **out, char *err)
{
    cJSON *obj = parse_one_value(json, len, "job", err);
    if (!obj) {
        *out = NULL;
        return -1;
    }
    int rc = job_build(obj, json, len, now_ns, out, err);
    cJSON_Delete(obj);
    return rc;
}

/* Trims white space, defaults to "unknown", truncates on a UTF-8 boundary. */
static char *cleanse(const char *s, size_t max)
{
    if (!s)
        s = "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (!n)
        return xstrdup("unknown");
    if (n > max) {
        n = max;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return xstrndup(s, n);
}

void job_record_failure(struct job *job, const char *errtype, const char *message,
                        const char *backtrace_json, int64_t now_ns)
{
    struct job_failure *f = job->failure;
    if (!f) {
        f = job->failure = xcalloc(1, sizeof *f);
        f->retry_count = 0;
        f->remaining = job->retry;
        f->failed_at_ns = now_ns;
    } else if (f->retry_count < JOB_MAX_COUNT) {
        f->retry_count++;
        f->remaining = f->remaining > 0 ? f->remaining - 1 : 0;
        if (!f->failed_at_ns)
            f->failed_at_ns = now_ns;
    }
    free(f->errtype);
    free(f->message);
    free(f->backtrace);
    f->errtype = cleanse(errtype, JOB_ERRTYPE_MAX);
    f->message = cleanse(message, JOB_MESSAGE_MAX);
    f->backtrace = backtrace_json ? xstrdup(backtrace_json) : NULL;
    f->next_at_ns = 0;
}

int job_filter_match(const struct job *job, const struct mutate_filter *f, struct sbuf *scratch)
{
    int hit = 1;
    if (f && f->n_jids > 0) {
        hit = 0;
        for (int i = 0; i < f->n_jids && !hit; i++)
            hit = strcmp(f->jids[i], job->jid) == 0;
    } else if (f && f->glob && *f->glob) {
        sbuf_reset(scratch);
        job_render(job, scratch);
        hit = fnmatch(f->glob, scratch->buf, 0) == 0;
        if (hit && f->jobtype && *f->jobtype)
            hit = strcmp(job->jobtype, f->jobtype) == 0;
    } else if (f && f->jobtype && *f->jobtype) {
        hit = strcmp(job->jobtype, f->jobtype) == 0;
    }
    return hit;
}

enum job_fail_outcome job_fail(struct job *job, const char *errtype, const char *message,
                               const char *backtrace_json, int64_t now_ns, uint32_t rand_0_29)
{
    job_record_failure(job, errtype, message, backtrace_json, now_ns);
    if (job->retry == 0)
        return JOB_FAIL_DISCARD;
    if (job->failure->retry_count >= job->retry) /* also retry < 0: dead at once */
        return JOB_FAIL_DEAD;
    job->failure->next_at_ns = now_ns + job_backoff_s(job->failure->retry_count, rand_0_29) * NS_PER_S;
    return JOB_FAIL_RETRY;
}

void job_render(const struct job *job, struct sbuf *out)
{
    sbuf_add(out, "{", 1);
    sbuf_add(out, job->body, job->body_len);
    sbuf_adds(out, job->body_len ? ",\"queue\":" : "\"queue\":");
    sbuf_add_json_str(out, job->queue, strlen(job->queue));
    sbuf_addf(out, ",\"retry\":%d,\"created_at\":", job->retry);
    sbuf_add_json_str(out, job->created_at, strlen(job->created_at));
    if (job->enqueued_at_ns)
        timefmt_add_json_field(out, "enqueued_at", job->enqueued_at_ns);
    const struct job_failure *f = job->failure;
    if (f) {
        sbuf_addf(out, ",\"failure\":{\"retry_count\":%d,\"remaining\":%d", f->retry_count,
                  f->remaining);
        if (f->failed_at_ns)
            timefmt_add_json_field(out, "failed_at", f->failed_at_ns);
        if (f->next_at_ns)
            timefmt_add_json_field(out, "next_at", f->next_at_ns);
        if (f->message) {
            sbuf_adds(out, ",\"message\":");
            sbuf_add_json_str(out, f->message, strlen(f->message));
        }
        if (f->errtype) {
            sbuf_adds(out, ",\"errtype\":");
            sbuf_add_json_str(out, f->errtype, strlen(f->errtype));
        }
        if (f->backtrace) {
            sbuf_adds(out, ",\"backtrace\":");
            sbuf_adds(out, f->backtrace);
        }
        sbuf_add(out, "}", 1);
    }
    sbuf_add(out, "}", 1);
}
