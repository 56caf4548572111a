/*
 * spool_job: builder, parser and getters. See job.h.
 */
#define _GNU_SOURCE
#include "job.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct custom_cache {
    char *key;
    char *text;
    struct custom_cache *next;
};

struct spool_job {
    cJSON *obj;
    char *raw; /* the text it was parsed from; dropped on the first change */
    /* getter caches; freed on every change */
    char *c_json;
    char *c_args;
    char *c_custom;
    struct custom_cache *c_keys;
};

int random_hex(char *buf, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof b)
        return -EINVAL;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(b + got, nbytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        buf[2 * i] = hex[b[i] >> 4];
        buf[2 * i + 1] = hex[b[i] & 15];
    }
    buf[2 * nbytes] = '\0';
    return 0;
}

static void caches_drop(spool_job *j)
{
    free(j->c_json);
    free(j->c_args);
    free(j->c_custom);
    j->c_json = j->c_args = j->c_custom = NULL;
    while (j->c_keys) {
        struct custom_cache *n = j->c_keys->next;
        free(j->c_keys->key);
        free(j->c_keys->text);
        free(j->c_keys);
        j->c_keys = n;
    }
}

static void changed(spool_job *j)
{
    caches_drop(j);
    free(j->raw);
    j->raw = NULL;
}

/* strdup of a cJSON print, so that everything we hand out is free()-able
 * whatever allocator hooks cJSON was given. */
static char *print_dup(const cJSON *item)
{
    char *p = cJSON_PrintUnformatted(item);
    if (!p)
        return NULL;
    char *d = strdup(p);
    cJSON_free(p);
    return d;
}

static int set_jid_fresh(cJSON *obj)
{
    char jid[25];
    int rc = random_hex(jid, 12);
    if (rc)
        return rc;
    cJSON *s = cJSON_CreateString(jid);
    if (!s)
        return -ENOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "jid");
    cJSON_AddItemToObject(obj, "jid", s);
    return 0;
}

spool_job *spool_job_new(const char *jobtype)
{
    if (!jobtype || !*jobtype)
        return NULL;
    spool_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->obj = cJSON_CreateObject();
    if (!j->obj || set_jid_fresh(j->obj) != 0 ||
        !cJSON_AddStringToObject(j->obj, "jobtype", jobtype) ||
        !cJSON_AddArrayToObject(j->obj, "args") ||
        !cJSON_AddStringToObject(j->obj, "queue", "default")) {
        spool_job_free(j);
        return NULL;
    }
    return j;
}

int job_from_text_take(char *text, spool_job **out)
{
    *out = NULL;
    cJSON *obj = cJSON_Parse(text);
    if (!obj) {
        free(text);
        return SPOOL_EJSON;
    }
    cJSON *jt = cJSON_GetObjectItemCaseSensitive(obj, "jobtype");
    if (!cJSON_IsObject(obj) || !cJSON_IsString(jt)) {
        cJSON_Delete(obj);
        free(text);
        return SPOOL_EJSON;
    }
    spool_job *j = calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(obj);
        free(text);
        return -ENOMEM;
    }
    j->obj = obj;
    j->raw = text;
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, "jid"))) {
        int rc = set_jid_fresh(obj);
        if (rc) {
            spool_job_free(j);
            return rc;
        }
        changed(j);
    }
    *out = j;
    return 0;
}

int spool_job_from_json(const char *json, spool_job **out)
{
    if (!json || !out)
        return SPOOL_EARG;
    char *t = strdup(json);
    if (!t)
        return -ENOMEM;
    return job_from_text_take(t, out);
}

void spool_job_free(spool_job *j)
{
    if (!j)
        return;
    caches_drop(j);
    free(j->raw);
    cJSON_Delete(j->obj);
    free(j);
}

char *job_serialize(const spool_job *j)
{
    if (j->raw)
        return strdup(j->raw);
    return print_dup(j->obj);
}

/* Replaces obj[key] with item (taken). */
static int put(spool_job *j, const char *key, cJSON *item)
{
    if (!item)
        return -ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(j->obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(j->obj, key, item);
    else if (!cJSON_AddItemToObject(j->obj, key, item)) {
        cJSON_Delete(item);
        return -ENOMEM;
    }
    changed(j);
    return 0;
}

int spool_job_set_jid(spool_job *j, const char *jid)
{
    if (!j || !jid || strlen(jid) < 8)
        return SPOOL_EARG;
    return put(j, "jid", cJSON_CreateString(jid));
}

static int queue_name_ok(const char *q)
{
    if (!*q)
        return 0;
    for (; *q; q++) {
        char ch = *q;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

int spool_job_set_queue(spool_job *j, const char *queue)
{
    if (!j || !queue || !queue_name_ok(queue))
        return SPOOL_EARG;
    return put(j, "queue", cJSON_CreateString(queue));
}

/* Parses raw JSON text; SPOOL_EJSON when it is not one complete value. */
static int parse_value(const char *text, cJSON **out)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(text, &end, 1);
    if (!v)
        return SPOOL_EJSON;
    *out = v;
    return 0;
}

int spool_job_set_args(spool_job *j, const char *json_array)
{
    if (!j || !json_array)
        return SPOOL_EARG;
    cJSON *v;
    int rc = parse_value(json_array, &v);
    if (rc)
        return rc;
    if (!cJSON_IsArray(v)) {
        cJSON_Delete(v);
        return SPOOL_EJSON;
    }
    return put(j, "args", v);
}

int spool_job_set_retry(spool_job *j, int retry)
{
    if (!j)
        return SPOOL_EARG;
    return put(j, "retry", cJSON_CreateNumber(retry));
}

int spool_job_set_reserve_for(spool_job *j, int reserve_for_s)
{
    if (!j || reserve_for_s < 1 || reserve_for_s > 86400)
        return SPOOL_EARG;
    return put(j, "reserve_for", cJSON_CreateNumber(reserve_for_s));
}

int spool_job_set_at_unix_ns(spool_job *j, int64_t at_unix_ns)
{
    if (!j || at_unix_ns < 0)
        return SPOOL_EARG;
    time_t secs = (time_t)(at_unix_ns / 1000000000);
    long ns = (long)(at_unix_ns % 1000000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return SPOOL_ETIME;
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0)
        return SPOOL_ETIME;
    snprintf(buf + n, sizeof buf - n, ".%09ldZ", ns);
    return put(j, "at", cJSON_CreateString(buf));
}

/* A light check of the RFC 3339 shape; the server does the full parse. */
static int rfc3339_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; shape[i]; i++) {
        char c = s[i];
        if (shape[i] == 'd') {
            if (c < '0' || c > '9')
                return 0;
        } else if (shape[i] == 'T') {
            if (c != 'T' && c != 't')
                return 0;
        } else if (c != shape[i]) {
            return 0;
        }
    }
    return s[i] != '\0'; /* a zone (Z or +hh:mm), maybe after fractions */
}

int spool_job_set_at(spool_job *j, const char *rfc3339)
{
    if (!j || !rfc3339)
        return SPOOL_EARG;
    if (!rfc3339_ok(rfc3339))
        return SPOOL_ETIME;
    return put(j, "at", cJSON_CreateString(rfc3339));
}

int spool_job_set_in_ms(spool_job *j, int64_t delay_ms)
{
    if (!j || delay_ms < 0)
        return SPOOL_EARG;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return spool_job_set_at_unix_ns(j, now_ns + delay_ms * 1000000);
}

int spool_job_set_custom(spool_job *j, const char *key, const char *json_value)
{
    if (!j || !key || !json_value)
        return SPOOL_EARG;
    cJSON *v;
    int rc = parse_value(json_value, &v);
    if (rc)
        return rc;
    cJSON *custom = cJSON_GetObjectItemCaseSensitive(j->obj, "custom");
    if (!cJSON_IsObject(custom)) {
        cJSON *nc = cJSON_CreateObject();
        if (!nc || put(j, "custom", nc) != 0) {
            cJSON_Delete(v);
            return -ENOMEM;
        }
        custom = nc;
    }
    if (cJSON_GetObjectItemCaseSensitive(custom, key))
        cJSON_ReplaceItemInObjectCaseSensitive(custom, key, v);
    else if (!cJSON_AddItemToObject(custom, key, v)) {
        cJSON_Delete(v);
        return -ENOMEM;
    }
    changed(j);
    return 0;
}

int spool_job_set_field(spool_job *j, const char *key, const char *json_value)
{
    if (!j || !key || !*key || !json_value)
        return SPOOL_EARG;
    cJSON *v;
    int rc = parse_value(json_value, &v);
    if (rc)
        return rc;
    return put(j, key, v);
}

/* Getters: they fill caches, which is why the const is cast away; a job is
 * used by one thread at a time (see spool.h). */
static const char *get_string(const spool_job *j, const char *key)
{
    if (!j)
        return NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j->obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *spool_job_jid(const spool_job *j)
{
    return get_string(j, "jid");
}

const char *spool_job_jobtype(const spool_job *j)
{
    return get_string(j, "jobtype");
}

const char *spool_job_queue(const spool_job *j)
{
    const char *q = get_string(j, "queue");
    return q && *q ? q : "default";
}

const char *spool_job_args(const spool_job *j)
{
    if (!j)
        return NULL;
    spool_job *m = (spool_job *)j;
    if (!m->c_args) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j->obj, "args");
        m->c_args = a ? print_dup(a) : strdup("[]");
    }
    return m->c_args;
}

const char *spool_job_json(const spool_job *j)
{
    if (!j)
        return NULL;
    if (j->raw)
        return j->raw;
    spool_job *m = (spool_job *)j;
    if (!m->c_json)
        m->c_json = print_dup(j->obj);
    return m->c_json;
}

const char *spool_job_custom_json(const spool_job *j)
{
    if (!j)
        return NULL;
    spool_job *m = (spool_job *)j;
    if (!m->c_custom) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(j->obj, "custom");
        m->c_custom = cJSON_IsObject(c) ? print_dup(c) : strdup("{}");
    }
    return m->c_custom;
}

const char *spool_job_custom(const spool_job *j, const char *key)
{
    if (!j || !key)
        return NULL;
    cJSON *c = cJSON_GetObjectItemCaseSensitive(j->obj, "custom");
    cJSON *v = cJSON_IsObject(c) ? cJSON_GetObjectItemCaseSensitive(c, key) : NULL;
    if (!v)
        return NULL;
    spool_job *m = (spool_job *)j;
    for (struct custom_cache *k = m->c_keys; k; k = k->next)
        if (strcmp(k->key, key) == 0)
            return k->text;
    struct custom_cache *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->key = strdup(key);
    k->text = print_dup(v);
    if (!k->key || !k->text) {
        free(k->key);
        free(k->text);
        free(k);
        return NULL;
    }
    k->next = m->c_keys;
    m->c_keys = k;
    return k->text;
}

static cJSON *arg_at(const spool_job *j, size_t i)
{
    if (!j)
        return NULL;
    cJSON *a = cJSON_GetObjectItemCaseSensitive(j->obj, "args");
    if (!cJSON_IsArray(a) || i > 1000000)
        return NULL;
    return cJSON_GetArrayItem(a, (int)i);
}

size_t spool_job_nargs(const spool_job *j)
{
    if (!j)
        return 0;
    cJSON *a = cJSON_GetObjectItemCaseSensitive(j->obj, "args");
    return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
}

int spool_job_arg_string(const spool_job *j, size_t i, const char **out)
{
    cJSON *v = arg_at(j, i);
    if (!cJSON_IsString(v) || !out)
        return SPOOL_EARG;
    *out = v->valuestring;
    return 0;
}

int spool_job_arg_int(const spool_job *j, size_t i, int64_t *out)
{
    cJSON *v = arg_at(j, i);
    if (!cJSON_IsNumber(v) || !out)
        return SPOOL_EARG;
    double d = v->valuedouble;
    if (d < -9.2e18 || d > 9.2e18 || d != (double)(int64_t)d)
        return SPOOL_EARG;
    *out = (int64_t)d;
    return 0;
}

int spool_job_arg_double(const spool_job *j, size_t i, double *out)
{
    cJSON *v = arg_at(j, i);
    if (!cJSON_IsNumber(v) || !out)
        return SPOOL_EARG;
    *out = v->valuedouble;
    return 0;
}

int spool_job_retry_count(const spool_job *j)
{
    if (!j)
        return -1;
    cJSON *f = cJSON_GetObjectItemCaseSensitive(j->obj, "failure");
    cJSON *rc = cJSON_IsObject(f) ? cJSON_GetObjectItemCaseSensitive(f, "retry_count") : NULL;
    return cJSON_IsNumber(rc) ? rc->valueint : -1;
}
