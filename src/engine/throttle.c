#include "engine/throttle.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "common/xalloc.h"
#include "engine/job.h"

/* ---- throttles.json ---- */

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, THROTTLE_ERR_MAX, fmt, ap);
    va_end(ap);
}

/* A whole number in [1, max], or -1 with why set. */
static long whole(const cJSON *v, long max, const char **why)
{
    if (!cJSON_IsNumber(v)) {
        *why = "must be a whole number";
        return -1;
    }
    double d = v->valuedouble;
    if (d != floor(d)) {
        *why = "must be a whole number";
        return -1;
    }
    if (d < 1 || d > (double)max) {
        *why = "is out of range";
        return -1;
    }
    return (long)d;
}

/* Seconds (a number) or a duration string; within [1 ms, 7 days]. */
static int period_of(const cJSON *v, int64_t *out_ns, char *why, size_t whylen)
{
    int64_t ns = -1;
    if (cJSON_IsNumber(v)) {
        double s = v->valuedouble;
        if (s > 0 && s <= (double)THROTTLE_MAX_PERIOD_NS / 1e9)
            ns = (int64_t)llround(s * 1e9);
    } else if (cJSON_IsString(v)) {
        if (job_parse_duration(v->valuestring, &ns) != 0) {
            snprintf(why, whylen,
                     "\"%.60s\" is not a duration (seconds, or e.g. \"30s\", \"1m\", \"1h\")",
                     v->valuestring);
            return -1;
        }
    } else {
        snprintf(why, whylen, "must be seconds (a number) or a duration string such as \"1m\"");
        return -1;
    }
    if (ns < THROTTLE_MIN_PERIOD_NS || ns > THROTTLE_MAX_PERIOD_NS) {
        snprintf(why, whylen, "must be between 1 ms and 7 days");
        return -1;
    }
    *out_ns = ns;
    return 0;
}

static int parse_rate(const cJSON *rate, struct throttle_limits *l, char *why, size_t whylen,
                      const char **field)
{
    *field = "rate";
    if (!cJSON_IsObject(rate)) {
        snprintf(why, whylen, "must be an object {\"limit\": N, \"period\": P}");
        return -1;
    }
    for (const cJSON *f = rate->child; f; f = f->next) {
        if (strcmp(f->string, "limit") && strcmp(f->string, "period")) {
            snprintf(why, whylen, "unknown field \"%.60s\" (known: limit, period)", f->string);
            return -1;
        }
    }
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(rate, "limit");
    const cJSON *period = cJSON_GetObjectItemCaseSensitive(rate, "period");
    const char *w = NULL;
    *field = "rate.limit";
    if (!limit) {
        snprintf(why, whylen, "is required");
        return -1;
    }
    long n = whole(limit, THROTTLE_MAX_RATE, &w);
    if (n < 0) {
        snprintf(why, whylen, "%s (1 to %d)", w, THROTTLE_MAX_RATE);
        return -1;
    }
    *field = "rate.period";
    if (!period) {
        snprintf(why, whylen, "is required");
        return -1;
    }
    if (period_of(period, &l->rate_period_ns, why, whylen) != 0)
        return -1;
    l->rate_limit = (uint32_t)n;
    return 0;
}

static int by_queue(const void *a, const void *b)
{
    return strcmp(((const struct throttle_spec *)a)->queue,
                  ((const struct throttle_spec *)b)->queue);
}

int throttle_config_parse(const char *json, size_t len, struct throttle_config *out, char *err)
{
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        set_err(err, "not valid JSON (near byte %zu)",
                end && end >= json ? (size_t)(end - json) : (size_t)0);
        return -1;
    }
    size_t at = job_json_trailing_at(json, len, end);
    if (at < len) { /* cJSON stops after the first value; a second one would go unread */
        set_err(err, "text after the JSON object (at byte %zu)", at);
        cJSON_Delete(root);
        return -1;
    }
    /* cJSON ends its strings at a NUL: "q\u0000x" would come out as queue "q". */
    if (job_json_has_nul(json, len)) {
        set_err(err, "contains \\u0000, which no queue name or value may hold");
        cJSON_Delete(root);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        set_err(err, "must be a JSON object mapping queue names to their limits");
        cJSON_Delete(root);
        return -1;
    }
    size_t cap = (size_t)cJSON_GetArraySize(root);
    out->specs = xcalloc(cap ? cap : 1, sizeof *out->specs);
    for (const cJSON *q = root->child; q; q = q->next) {
        const char *name = q->string;
        if (!job_queue_name_ok(name) || strlen(name) > 200) {
            set_err(err,
                    "queue \"%.200s\": not a valid queue name (letters, digits, '.', '_', '-'; "
                    "at most 200)",
                    name);
            goto fail;
        }
        if (throttle_config_find(out, name)) { /* cJSON keeps duplicate keys */
            set_err(err, "queue \"%s\": given twice", name);
            goto fail;
        }
        if (!cJSON_IsObject(q)) {
            set_err(err, "queue \"%s\": must be an object with \"concurrency\" and/or \"rate\"",
                    name);
            goto fail;
        }
        struct throttle_limits l = {0};
        char why[200];
        const char *field = NULL;
        for (const cJSON *f = q->child; f; f = f->next) {
            if (!strcmp(f->string, "concurrency")) {
                const char *w = NULL;
                long n = whole(f, THROTTLE_MAX_CONCURRENCY, &w);
                if (n < 0) {
                    set_err(err, "queue \"%s\": field \"concurrency\": %s (1 to %d)", name, w,
                            THROTTLE_MAX_CONCURRENCY);
                    goto fail;
                }
                l.concurrency = (uint32_t)n;
            } else if (!strcmp(f->string, "rate")) {
                if (parse_rate(f, &l, why, sizeof why, &field) != 0) {
                    set_err(err, "queue \"%s\": field \"%s\": %s", name, field, why);
                    goto fail;
                }
            } else {
                set_err(err, "queue \"%s\": unknown field \"%.60s\" (known: concurrency, rate)",
                        name, f->string);
                goto fail;
            }
        }
        if (!l.concurrency && !l.rate_limit) {
            set_err(err, "queue \"%s\": needs \"concurrency\" or \"rate\"", name);
            goto fail;
        }
        out->specs[out->n].queue = xstrdup(name);
        out->specs[out->n].limits = l;
        out->n++;
    }
    cJSON_Delete(root);
    qsort(out->specs, out->n, sizeof *out->specs, by_queue);
    return 0;
fail:
    cJSON_Delete(root);
    throttle_config_release(out);
    return -1;
}

void throttle_config_release(struct throttle_config *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->specs[i].queue);
    free(c->specs);
    c->specs = NULL;
    c->n = 0;
}

const struct throttle_limits *throttle_config_find(const struct throttle_config *c,
                                                   const char *queue)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (!strcmp(c->specs[i].queue, queue))
            return &c->specs[i].limits;
    return NULL;
}

/* ---- state ---- */

struct throttle *throttle_new(const char *queue, const struct throttle_limits *limits)
{
    struct throttle *t = xcalloc(1, sizeof *t);
    t->queue = xstrdup(queue);
    t->limits = *limits;
    return t;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    free(t->queue);
    free(t->times);
    free(t);
}

static int64_t time_at(const struct throttle *t, size_t i)
{
    return t->times[(t->head + i) % t->cap];
}

static void drop_oldest(struct throttle *t)
{
    t->head = (t->head + 1) % t->cap;
    t->count--;
}

/* Copies the ring into a buffer of new_cap (>= count), oldest first. */
static void regrow(struct throttle *t, size_t new_cap)
{
    int64_t *n = xmalloc((new_cap ? new_cap : 1) * sizeof *n);
    for (size_t i = 0; i < t->count; i++)
        n[i] = time_at(t, i);
    free(t->times);
    t->times = n;
    t->cap = new_cap;
    t->head = 0;
}

void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits)
{
    t->limits = *limits;
    while (t->count > limits->rate_limit)
        drop_oldest(t);
    /* The ring grows on demand up to the limit; shrink a buffer far above it. */
    if (t->cap > (size_t)limits->rate_limit * 2 && t->cap > 64)
        regrow(t, t->count > 16 ? t->count : 16);
}

static void prune(struct throttle *t, int64_t now_ns)
{
    while (t->count && time_at(t, 0) <= now_ns - t->limits.rate_period_ns)
        drop_oldest(t);
}

int throttle_rate_is_full(struct throttle *t, int64_t now_ns)
{
    if (!t->limits.rate_limit)
        return 0;
    prune(t, now_ns);
    return t->count >= t->limits.rate_limit;
}

int throttle_is_full(struct throttle *t, int64_t now_ns)
{
    if (t->limits.concurrency && t->in_flight >= t->limits.concurrency)
        return 1;
    return throttle_rate_is_full(t, now_ns);
}

static void push_time(struct throttle *t, int64_t at_ns)
{
    if (t->count == t->limits.rate_limit) /* only when seeding: keep the newest */
        drop_oldest(t);
    if (t->count == t->cap) {
        size_t want = t->cap ? t->cap * 2 : 16;
        if (want > t->limits.rate_limit)
            want = t->limits.rate_limit;
        regrow(t, want);
    }
    t->times[(t->head + t->count) % t->cap] = at_ns;
    t->count++;
}

void throttle_note_reserved(struct throttle *t, int64_t now_ns)
{
    t->in_flight++;
    if (t->limits.rate_limit) {
        prune(t, now_ns);
        push_time(t, now_ns);
    }
}

void throttle_note_past(struct throttle *t, int64_t at_ns, int64_t now_ns)
{
    if (t->limits.rate_limit && at_ns > now_ns - t->limits.rate_period_ns)
        push_time(t, at_ns);
}

int64_t throttle_rate_opens_at(struct throttle *t, int64_t now_ns)
{
    if (!throttle_rate_is_full(t, now_ns))
        return INT64_MAX;
    /* Full: the oldest of the last `limit` reservations leaves the window first. */
    return time_at(t, t->count - t->limits.rate_limit) + t->limits.rate_period_ns;
}

void throttle_limits_json_open(const struct throttle_limits *l, struct sbuf *out)
{
    if (l->concurrency)
        sbuf_addf(out, "{\"concurrency\":%u", l->concurrency);
    else
        sbuf_adds(out, "{\"concurrency\":null");
    if (l->rate_limit)
        sbuf_addf(out, ",\"rate_limit\":%u,\"rate_period_s\":%.9g", l->rate_limit,
                  (double)l->rate_period_ns / (double)NS_PER_S);
    else
        sbuf_adds(out, ",\"rate_limit\":null,\"rate_period_s\":null");
}
