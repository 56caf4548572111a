#include "server/api.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "engine/engine.h"
#include "server/confload.h"
#include "server/crond.h"
#include "server/info.h"
#include "server/pgsrv.h"
#include "server/server.h"

#define API_PREFIX "/api/v1"
#define API_MAX_SEGMENTS 4
#define API_MAX_SEGMENT 1024 /* bytes of one path segment (a jid, a queue, a wid) */
#define API_MAX_MATCH 1024   /* bytes of ?match= and filter.match */
#define API_DEFAULT_LIMIT 50
#define API_MAX_LIMIT 1000
#define API_MAX_MESSAGE 1024 /* bytes of an error message */

struct api_pending {
    struct api_pending *next;
    struct evhttp_request *req;
    uint64_t seq; /* the reply leaves once durable_seq >= seq */
    int code;
    char *body;
    size_t len;
};

/* ---- replies ---- */

static const char *reason_of(int code)
{
    switch (code) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void send_now(struct evhttp_request *req, int code, const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    /* JSON only: a browser must never sniff a job's text into HTML. */
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, reason_of(code), out);
    evbuffer_free(out);
}

static void reply_json(struct evhttp_request *req, int code, const struct sbuf *b)
{
    send_now(req, code, b->buf, b->len);
}

/* {"error":"..."}; the message is JSON-escaped, so client text echoed in it stays inert. */
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[API_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"error\":");
    sbuf_add_json_str(&b, msg, strlen(msg));
    sbuf_adds(&b, "}");
    reply_json(req, code, &b);
    sbuf_release(&b);
}

static void reply_cjson(struct evhttp_request *req, int code, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    send_now(req, code, text, strlen(text));
    cJSON_free(text);
}

/*
 * Sends the reply once the change it reports is durable: now if it already
 * is, else later from api_release_durable(). If the client goes away
 * meanwhile, evhttp keeps the request (detached from its connection) until
 * we answer it, so holding the pointer is safe.
 */
static void reply_durable(struct server *srv, struct evhttp_request *req, int code,
                          const char *body, size_t len, uint64_t seq)
{
    if (seq <= srv->durable_seq) {
        send_now(req, code, body, len);
        return;
    }
    struct api_pending *p = xcalloc(1, sizeof *p);
    p->req = req;
    p->seq = seq;
    p->code = code;
    p->body = xmalloc(len ? len : 1);
    memcpy(p->body, body, len);
    p->len = len;
    struct api_pending **tail = &srv->api_pending; /* FIFO: replies leave in arrival order */
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
}

static void pending_free(struct api_pending *p)
{
    free(p->body);
    free(p);
}

void api_release_durable(struct server *srv)
{
    struct api_pending **pp = &srv->api_pending;
    while (*pp) {
        struct api_pending *p = *pp;
        if (p->seq <= srv->durable_seq) {
            send_now(p->req, p->code, p->body, p->len);
        } else if (srv->is_readonly) {
            /* The write it waits for failed: nothing was promised, say so. */
            reply_error(p->req, 503, "the journal failed before this change was on disk (%s)",
                        srv->readonly_reason);
        } else {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        pending_free(p);
    }
}

void api_abort_pending(struct server *srv)
{
    while (srv->api_pending) {
        struct api_pending *p = srv->api_pending;
        srv->api_pending = p->next;
        reply_error(p->req, 503, "the server is shutting down before this change was on disk");
        pending_free(p);
    }
}

/* ---- request checks ---- */

static const char *header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* application/json, with or without parameters (e.g. "; charset=utf-8"). */
static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/*
 * A cross-site request from a browser carries an Origin header naming
 * another site: refused. Same-origin requests (Origin's host:port equal to
 * Host) and non-browser clients (no Origin) pass.
 */
static int origin_ok(struct evhttp_request *req)
{
    const char *origin = header(req, "Origin");
    if (!origin)
        return 1;
    const char *host = header(req, "Host");
    const char *p = strstr(origin, "://");
    return host && p && strcasecmp(p + 3, host) == 0;
}

static const char *body_of(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    return *len ? (const char *)evbuffer_pullup(in, -1) : "";
}

/*
 * Checks a request that changes something (POST, DELETE); answers it and
 * returns 0 when refused. is_journaled: the change goes through the journal,
 * so a read-only server refuses it.
 */
static int change_allowed(struct server *srv, struct evhttp_request *req, int is_journaled)
{
    if (!origin_ok(req)) {
        reply_error(req, 403, "cross-site request refused: the Origin header does not match Host");
        return 0;
    }
    size_t len;
    body_of(req, &len);
    const char *ct = header(req, "Content-Type");
    if ((len || ct) && !is_json_type(ct)) {
        reply_error(req, 415, "the body must be sent with Content-Type: application/json");
        return 0;
    }
    if (is_journaled && srv->is_readonly) {
        reply_error(req, 503, "changes are refused: the journal failed (%s)", srv->readonly_reason);
        return 0;
    }
    return 1;
}

static cJSON *body_object(struct evhttp_request *req)
{
    size_t len;
    const char *body = body_of(req, &len);
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- POST /api/v1/jobs ---- */

static void reply_jids(struct server *srv, struct evhttp_request *req, cJSON *jids, cJSON *errors)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "jids", jids);
    if (errors)
        cJSON_AddItemToObject(o, "errors", errors);
    char *text = cJSON_PrintUnformatted(o);
    reply_durable(srv, req, 202, text, strlen(text), srv->commit_seq);
    cJSON_free(text);
    cJSON_Delete(o);
}

/* ---- the PostgreSQL store: each route's statement answers the request ---- */

enum api_pg_kind { APG_JSON, APG_JSON_OR_404, APG_PUSH, APG_PUSHB, APG_CHANGED, APG_QUEUE, APG_WORKERS };

/* A request waiting for PostgreSQL (evhttp keeps req alive until it is answered). */
struct api_pg {
    struct server *srv;
    struct evhttp_request *req;
    enum api_pg_kind kind;
    char *name;     /* APG_PUSH: the jid; APG_QUEUE: the queue; APG_JSON_OR_404: what was sought */
    char *action;   /* APG_QUEUE */
    cJSON *jids;    /* APG_PUSHB: the jobs sent */
    cJSON *errors;  /* APG_PUSHB: those refused before */
};

static struct api_pg *api_pg_new(struct server *srv, struct evhttp_request *req, enum api_pg_kind kind,
                                 const char *name)
{
    struct api_pg *a = xcalloc(1, sizeof *a);
    a->srv = srv;
    a->req = req;
    a->kind = kind;
    a->name = name ? xstrdup(name) : NULL;
    return a;
}

static void api_pg_done(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct api_pg *a = arg;
    struct evhttp_request *req = a->req;
    struct sbuf b;
    sbuf_init(&b);
    if (rc != 0) {
        int code = rc == PUSH_JID_IN_USE || rc == PUSH_NOT_UNIQUE ? 409
                   : strstr(msg, "connection lost")                ? 503
                                                                   : 500;
        reply_error(req, code, "%s", msg);
    } else if (a->kind == APG_JSON || (a->kind == APG_JSON_OR_404 && outlen)) {
        sbuf_add(&b, out, outlen);
        reply_json(req, 200, &b);
    } else if (a->kind == APG_JSON_OR_404) {
        reply_error(req, 404, "%s", a->name);
    } else if (a->kind == APG_PUSH) {
        cJSON *jids = cJSON_CreateArray();
        cJSON_AddItemToArray(jids, cJSON_CreateString(a->name));
        reply_jids(a->srv, req, jids, NULL);
    } else if (a->kind == APG_PUSHB) {
        cJSON *refused = cJSON_ParseWithLength(out, outlen);
        cJSON *e;
        cJSON_ArrayForEach(e, refused)
        {
            cJSON_DeleteItemFromObjectCaseSensitive(a->errors, e->string);
            cJSON_AddStringToObject(a->errors, e->string, e->valuestring ? e->valuestring : "refused");
        }
        cJSON_Delete(refused);
        cJSON *ok = cJSON_CreateArray();
        cJSON *j;
        cJSON_ArrayForEach(j, a->jids) if (!cJSON_GetObjectItemCaseSensitive(a->errors, j->valuestring))
            cJSON_AddItemToArray(ok, cJSON_CreateString(j->valuestring));
        if (cJSON_GetArraySize(ok) == 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "errors", a->errors);
            a->errors = NULL;
            reply_cjson(req, 400, o);
            cJSON_Delete(o);
            cJSON_Delete(ok);
        } else {
            cJSON *errs = cJSON_GetArraySize(a->errors) ? a->errors : NULL;
            if (errs)
                a->errors = NULL;
            reply_jids(a->srv, req, ok, errs);
        }
    } else if (a->kind == APG_WORKERS) {
        sbuf_adds(&b, "{\"workers\":");
        sbuf_add(&b, out, outlen);
        sbuf_adds(&b, "}");
        reply_json(req, 200, &b);
    } else if (a->kind == APG_CHANGED) {
        sbuf_addf(&b, "{\"changed\":%.*s}", (int)outlen, out);
        reply_json(req, 200, &b);
    } else { /* APG_QUEUE */
        sbuf_adds(&b, "{\"name\":");
        sbuf_add_json_str(&b, a->name, strlen(a->name));
        if (strcmp(a->action, "delete") == 0)
            sbuf_adds(&b, ",\"deleted\":true}");
        else
            sbuf_addf(&b, ",\"paused\":%s}", strcmp(a->action, "pause") == 0 ? "true" : "false");
        reply_json(req, 200, &b);
    }
    sbuf_release(&b);
    free(a->name);
    free(a->action);
    cJSON_Delete(a->jids);
    cJSON_Delete(a->errors);
    free(a);
}

static void pg_json(struct server *srv, struct evhttp_request *req, const char *sql, int n,
                    const char *const *params, const char *not_found)
{
    struct api_pg *a = api_pg_new(srv, req, not_found ? APG_JSON_OR_404 : APG_JSON, not_found);
    pgsrv_exec(srv->pgsrv, sql, n, params, api_pg_done, a);
}

static void pg_push_single(struct server *srv, struct evhttp_request *req, struct job *job)
{
    struct api_pg *a = api_pg_new(srv, req, APG_PUSH, job->jid);
    pgsrv_push(srv->pgsrv, job, api_pg_done, a);
}

/* POST /jobs with an array on PostgreSQL: the valid jobs in one statement. */
static void pg_push_array(struct server *srv, struct evhttp_request *req, cJSON *arr,
                          const char *body, size_t len)
{
    struct api_pg *a = api_pg_new(srv, req, APG_PUSHB, NULL);
    a->jids = cJSON_CreateArray();
    a->errors = cJSON_CreateObject();
    struct job **jobs = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *jobs);
    size_t n = 0, pos = 0;
    int64_t now = server_now();
    cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        char err[JOB_ERR_MAX];
        cJSON *jv = cJSON_GetObjectItemCaseSensitive(item, "jid");
        char *jid = xstrdup(cJSON_IsString(jv) ? jv->valuestring : "");
        struct job *job;
        int rc = job_from_array_item(item, body, len, &pos, now, &job, err);
        if (rc == 0 && (size_t)job->body_len > srv->cfg.max_job) {
            snprintf(err, sizeof err, "job too large: %zu bytes, over the limit of %zu bytes (--max-job-size)",
                     (size_t)job->body_len, srv->cfg.max_job);
            job_free(job);
            rc = -1;
        } else if (rc == 0 && pgsrv_job_unsupported(job)) {
            snprintf(err, sizeof err, "%s", pgsrv_job_unsupported(job));
            job_free(job);
            rc = -1;
        }
        if (rc != 0) {
            cJSON_DeleteItemFromObjectCaseSensitive(a->errors, jid);
            cJSON_AddStringToObject(a->errors, jid, err);
        } else {
            cJSON_AddItemToArray(a->jids, cJSON_CreateString(job->jid));
            jobs[n++] = job;
        }
        free(jid);
    }
    pgsrv_push_many(srv->pgsrv, jobs, n, api_pg_done, a);
}

static void pg_queue_change(struct server *srv, struct evhttp_request *req, const char *name,
                            const char *action)
{
    struct api_pg *a = api_pg_new(srv, req, APG_QUEUE, name);
    a->action = xstrdup(action);
    struct sbuf arr;
    sbuf_init(&arr);
    sbuf_addf(&arr, "{\"%s\"}", name); /* a valid queue name needs no escaping */
    const char *params[1] = {arr.buf};
    pgsrv_exec(srv->pgsrv,
               strcmp(action, "delete") == 0  ? "SELECT spool.queue_remove($1::text[])"
               : strcmp(action, "pause") == 0 ? "SELECT spool.queue_pause($1::text[], true)"
                                              : "SELECT spool.queue_pause($1::text[], false)",
               1, params, api_pg_done, a);
    sbuf_release(&arr);
}

/* Queue routes check the queue exists first, as the journal store does. */
struct api_pg_queue {
    struct server *srv;
    struct evhttp_request *req;
    char *name, *action; /* action NULL: GET */
};

static void pg_queue_found(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct api_pg_queue *q = arg;
    if (rc != 0) {
        reply_error(q->req, strstr(msg, "connection lost") ? 503 : 500, "%s", msg);
    } else if (outlen <= 2) { /* [] */
        reply_error(q->req, 404, "no queue named %s", q->name);
    } else if (!q->action) {
        struct sbuf b;
        sbuf_init(&b);
        sbuf_add(&b, out + 1, outlen - 2); /* the one object of the array */
        reply_json(q->req, 200, &b);
        sbuf_release(&b);
    } else {
        pg_queue_change(q->srv, q->req, q->name, q->action);
    }
    free(q->name);
    free(q->action);
    free(q);
}

static void pg_queue_route(struct server *srv, struct evhttp_request *req, const char *name,
                           const char *action)
{
    if (!job_queue_name_ok(name)) {
        reply_error(req, 400, "invalid queue name %.200s: use letters, digits, '.', '_' and '-'", name);
        return;
    }
    struct api_pg_queue *q = xcalloc(1, sizeof *q);
    q->srv = srv;
    q->req = req;
    q->name = xstrdup(name);
    q->action = action ? xstrdup(action) : NULL;
    const char *params[1] = {name};
    pgsrv_exec(srv->pgsrv, "SELECT spool.queues_info($1)::text", 1, params, pg_queue_found, q);
}

static const char *const pg_set_states[] = {"scheduled", "retry", "dead", "working"};

static void push_single(struct server *srv, struct evhttp_request *req, const char *body,
                        size_t len)
{
    if (len > srv->cfg.max_job) {
        reply_error(req, 413,
                    "job too large: %zu bytes, over the limit of %zu bytes (--max-job-size)", len,
                    srv->cfg.max_job);
        return;
    }
    char err[JOB_ERR_MAX];
    struct job *job;
    if (job_parse(body, len, server_now(), &job, err) != 0) {
        reply_error(req, 400, "%s", err);
        return;
    }
    if (srv->pgsrv && pgsrv_job_unsupported(job)) {
        reply_error(req, 400, "%s", pgsrv_job_unsupported(job));
        job_free(job);
        return;
    }
    if (srv->pgsrv) {
        pg_push_single(srv, req, job);
        return;
    }
    char *jid = xstrdup(job->jid);
    int rc = server_push(srv, job, err);
    if (rc != 0) {
        reply_error(req, rc == PUSH_INVALID ? 400 : rc == PUSH_FULL ? 503 : 409, "%s", err);
    } else {
        cJSON *jids = cJSON_CreateArray();
        cJSON_AddItemToArray(jids, cJSON_CreateString(jid));
        reply_jids(srv, req, jids, NULL);
    }
    free(jid);
}

/* An array: like PUSHB, the good jobs are stored and the bad ones reported by jid. */
static void push_array(struct server *srv, struct evhttp_request *req, const char *body, size_t len)
{
    if (len > srv->cfg.max_line) {
        reply_error(req, 413,
                    "batch too large: %zu bytes, over the limit of %zu bytes (--max-line)", len,
                    srv->cfg.max_line);
        return;
    }
    char perr[JOB_ERR_MAX];
    cJSON *arr = job_parse_array(body, len, perr);
    if (!arr) {
        reply_error(req, 400, "%s", perr);
        return;
    }
    int all_objects = cJSON_IsArray(arr);
    cJSON *item;
    cJSON_ArrayForEach(item, arr) all_objects &= cJSON_IsObject(item);
    if (!all_objects || cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(arr);
        reply_error(
            req, 400,
            "invalid JSON: the body must be a job object or a non-empty array of job objects");
        return;
    }
    if (srv->pgsrv) {
        pg_push_array(srv, req, arr, body, len);
        cJSON_Delete(arr);
        return;
    }
    cJSON *jids = cJSON_CreateArray();
    cJSON *errors = cJSON_CreateObject();
    int64_t now = server_now();
    int n_ok = 0, n_bad = 0, n_full = 0;
    size_t pos = 0;
    cJSON_ArrayForEach(item, arr)
    {
        char err[JOB_ERR_MAX];
        cJSON *jv = cJSON_GetObjectItemCaseSensitive(item, "jid");
        char *jid = xstrdup(cJSON_IsString(jv) ? jv->valuestring
                                               : ""); /* building the job may reshape item */
        struct job *job;
        int rc = job_from_array_item(item, body, len, &pos, now, &job, err);
        if (rc == 0)
            rc = server_push(srv, job, err);
        if (rc != 0) {
            n_full += rc == PUSH_FULL;
            cJSON_DeleteItemFromObjectCaseSensitive(errors, jid);
            cJSON_AddStringToObject(errors, jid, err);
            n_bad++;
        } else {
            cJSON_AddItemToArray(jids, cJSON_CreateString(jid));
            n_ok++;
        }
        free(jid);
    }
    cJSON_Delete(arr);
    if (n_ok == 0) { /* nothing stored: not "accepted"; 503 when the limit refused any */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "errors", errors);
        reply_cjson(req, n_full ? 503 : 400, o);
        cJSON_Delete(o);
        cJSON_Delete(jids);
        return;
    }
    if (n_bad == 0) {
        cJSON_Delete(errors);
        errors = NULL;
    }
    reply_jids(srv, req, jids, errors);
}

static void api_push(struct server *srv, struct evhttp_request *req)
{
    size_t len;
    const char *body = body_of(req, &len);
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        reply_error(req, 400, "the body must be a job object or an array of job objects");
        return;
    }
    if (body[i] == '[')
        push_array(srv, req, body, len);
    else
        push_single(srv, req, body, len);
    server_schedule_tick(srv);
}

/* ---- GET /api/v1/jobs/{jid} ---- */

static const char *job_state_name(enum job_state s)
{
    switch (s) {
    case JOB_SCHEDULED: return "scheduled";
    case JOB_ENQUEUED: return "enqueued";
    case JOB_WORKING: return "working";
    case JOB_RETRY: return "retry";
    case JOB_DEAD: return "dead";
    default: return "new";
    }
}

static void api_job_get(struct server *srv, struct evhttp_request *req, const char *jid)
{
    const struct job *job = strmap_get(&srv->engine->jobs, jid);
    if (!job) {
        reply_error(req, 404, "no job with jid %.200s", jid);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"jid\":");
    sbuf_add_json_str(&b, job->jid, strlen(job->jid));
    sbuf_addf(&b, ",\"state\":\"%s\",\"queue\":", job_state_name(job->state));
    sbuf_add_json_str(&b, job->queue, strlen(job->queue));
    switch (job->state) {
    case JOB_SCHEDULED: timefmt_add_json_field(&b, "at", job->tnode.score_ns); break;
    case JOB_RETRY: timefmt_add_json_field(&b, "retry_at", job->tnode.score_ns); break;
    case JOB_DEAD: timefmt_add_json_field(&b, "expires_at", job->tnode.score_ns); break;
    case JOB_ENQUEUED: timefmt_add_json_field(&b, "enqueued_at", job->enqueued_at_ns); break;
    case JOB_WORKING:
        sbuf_adds(&b, ",\"wid\":");
        sbuf_add_json_str(&b, job->wid ? job->wid : "", job->wid ? strlen(job->wid) : 0);
        timefmt_add_json_field(&b, "reserved_at", job->reserved_at_ns);
        timefmt_add_json_field(&b, "reservation_expires_at", job->tnode.score_ns);
        break;
    default: break;
    }
    sbuf_adds(&b, ",\"job\":");
    job_render(job, &b); /* holds the failure, when there is one */
    sbuf_adds(&b, "}");
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* ---- queues ---- */

static int queue_by_name(const void *a, const void *b)
{
    return strcmp((*(struct queue *const *)a)->name, (*(struct queue *const *)b)->name);
}

/* {"name","size","latency","paused","throttle"}: one queue of GET /queues and GET /queues/{name}. */
static void render_queue(struct engine *e, struct queue *q, int64_t now, struct sbuf *b)
{
    sbuf_adds(b, "{\"name\":");
    sbuf_add_json_str(b, q->name, strlen(q->name));
    sbuf_addf(b, ",\"size\":%zu,\"latency\":%.3f,\"paused\":%s,\"throttle\":", q->size,
              engine_queue_latency(e, q->name, now), q->is_paused ? "true" : "false");
    info_render_throttle(e, q->name, now, b);
    sbuf_adds(b, "}");
}

/* The queue named in a route, or NULL after a 400 (bad name) or 404 (no such queue). */
static struct queue *queue_or_reply(struct server *srv, struct evhttp_request *req,
                                    const char *name)
{
    if (!job_queue_name_ok(name)) {
        reply_error(req, 400, "invalid queue name %.200s: use letters, digits, '.', '_' and '-'",
                    name);
        return NULL;
    }
    struct queue *q = engine_queue(srv->engine, name);
    if (!q)
        reply_error(req, 404, "no queue named %s", name);
    return q;
}

static void api_queue_get(struct server *srv, struct evhttp_request *req, const char *name)
{
    struct queue *q = queue_or_reply(srv, req, name);
    if (!q)
        return;
    struct sbuf b;
    sbuf_init(&b);
    render_queue(srv->engine, q, server_now(), &b);
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* POST /api/v1/config/reload: cron.json and throttles.json, both or neither. */
static void api_config_reload(struct server *srv, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    char err[CONFLOAD_ERR_MAX];
    int rc = confload_reload(srv, &b, err);
    if (rc == CONFLOAD_ENODIR)
        reply_error(req, 400, "spoold was started without a config directory (-c): nothing to reload");
    else if (rc != 0)
        reply_error(req, 422, "configuration not reloaded, the previous one stays: %s", err);
    else
        reply_json(req, 200, &b);
    sbuf_release(&b);
}

static void api_queues(struct server *srv, struct evhttp_request *req)
{
    struct engine *e = srv->engine;
    struct queue **qs = xmalloc((e->queues.count ? e->queues.count : 1) * sizeof *qs);
    size_t n = 0;
    const char *key;
    void *val;
    for (size_t i = 0; n < e->queues.count && strmap_next(&e->queues, &i, &key, &val);)
        qs[n++] = val;
    qsort(qs, n, sizeof *qs, queue_by_name);
    int64_t now = server_now();
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"queues\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_adds(&b, ",");
        render_queue(e, qs[i], now, &b);
    }
    sbuf_adds(&b, "]}");
    reply_json(req, 200, &b);
    sbuf_release(&b);
    free(qs);
}

/* action: "pause", "resume" or "delete" (DELETE /queues/{name}). */
static void api_queue_change(struct server *srv, struct evhttp_request *req, const char *name,
                             const char *action)
{
    struct queue *q = queue_or_reply(srv, req, name);
    if (!q)
        return;
    int is_delete = strcmp(action, "delete") == 0;
    if (is_delete)
        engine_queue_remove(srv->engine, name);
    else if (strcmp(action, "pause") == 0)
        engine_queue_pause(srv->engine, name);
    else
        engine_queue_resume(srv->engine, name, server_now());
    q = engine_queue(srv->engine, name);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"name\":");
    sbuf_add_json_str(&b, name, strlen(name));
    if (is_delete)
        sbuf_adds(&b, ",\"deleted\":true}");
    else
        sbuf_addf(&b, ",\"paused\":%s}", q && q->is_paused ? "true" : "false");
    reply_durable(srv, req, 200, b.buf, b.len, server_commit(srv));
    sbuf_release(&b);
    server_schedule_tick(srv);
}

/* ---- sets ---- */

static int set_index(const char *name)
{
    static const char *const names[] = {"scheduled", "retries", "dead", "working"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i; /* == enum list_target; the first three == enum mutate_target */
    return -1;
}

/*
 * ?match= and filter.match are plain substrings of the job's JSON: turned
 * into the glob *substr* with the glob's metacharacters escaped, so "*" or
 * "[" in the text match themselves. Caller frees.
 */
static char *match_glob(const char *s)
{
    size_t n = strlen(s);
    char *g = xmalloc(2 * n + 3), *p = g;
    *p++ = '*';
    for (; *s; s++) {
        if (*s == '*' || *s == '?' || *s == '[' || *s == ']' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p++ = '*';
    *p = '\0';
    return g;
}

/* A decimal count in [0, max]; 0, or -1 when s is not one. */
static int parse_count(const char *s, size_t max, size_t *out)
{
    if (!s || !*s)
        return -1;
    size_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        size_t d = (size_t)(*p - '0');
        /* Past max the value saturates: a huge offset is an empty page, not an error. */
        v = v > (max - d) / 10 ? max : v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Parses the request's query string into q (the caller clears it). 0, or -1 after a 400. */
static int query_parse(struct evhttp_request *req, struct evkeyvalq *q)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    TAILQ_INIT(q);
    if (query && evhttp_parse_query_str(query, q) != 0) {
        evhttp_clear_headers(q);
        reply_error(req, 400, "malformed query string");
        return -1;
    }
    return 0;
}

/* A listing's ?offset= and ?limit= (capped at API_MAX_LIMIT): NULL, or what is wrong. */
static const char *page_bounds(struct evkeyvalq *q, size_t *offset, size_t *limit)
{
    const char *offset_s = evhttp_find_header(q, "offset");
    const char *limit_s = evhttp_find_header(q, "limit");
    *offset = 0;
    *limit = API_DEFAULT_LIMIT;
    if (offset_s && parse_count(offset_s, SIZE_MAX, offset) != 0)
        return "offset must be a whole number of at least 0";
    if (limit_s && parse_count(limit_s, API_MAX_LIMIT, limit) != 0)
        return "limit must be a whole number of at least 0";
    return NULL;
}

struct page {
    struct sbuf out;
    int n;
};

static void page_add(void *ctx, const struct job *job)
{
    struct page *p = ctx;
    struct sbuf *b = &p->out;
    if (p->n++)
        sbuf_adds(b, ",");
    info_render_list_entry(b, job, 1);
}

static void api_set_list(struct server *srv, struct evhttp_request *req, int set)
{
    struct evkeyvalq q;
    if (query_parse(req, &q) != 0)
        return;
    const char *jobtype = evhttp_find_header(&q, "jobtype");
    const char *match = evhttp_find_header(&q, "match");
    size_t offset, limit;
    const char *bad = page_bounds(&q, &offset, &limit);
    if (!bad && match && strlen(match) > API_MAX_MATCH)
        bad = "match is too long (at most 1024 bytes)";
    if (bad) {
        evhttp_clear_headers(&q);
        reply_error(req, 400, "%s", bad);
        return;
    }
    char *glob = match && *match ? match_glob(match) : NULL;
    struct mutate_filter f = {.glob = glob, .jobtype = jobtype && *jobtype ? jobtype : NULL};
    if (srv->pgsrv) {
        pgsrv_list(srv->pgsrv, pg_set_states[set], NULL, &f, offset, limit, 1, api_pg_done,
                   api_pg_new(srv, req, APG_JSON, NULL));
        free(glob);
        evhttp_clear_headers(&q);
        return;
    }
    struct page p = {.n = 0};
    sbuf_init(&p.out);
    sbuf_adds(&p.out, "{\"jobs\":[");
    size_t total =
        engine_list(srv->engine, (enum list_target)set, NULL, &f, offset, limit, page_add, &p);
    sbuf_addf(&p.out, "],\"total\":%zu,\"offset\":%zu,\"limit\":%zu}", total, offset, limit);
    reply_json(req, 200, &p.out);
    sbuf_release(&p.out);
    free(glob);
    evhttp_clear_headers(&q);
}

/* POST /sets/{set}/{retry|kill|delete} with {"jids":[...]} or {"filter":{"jobtype","match"}}. */
static void api_set_change(struct server *srv, struct evhttp_request *req, int set,
                           const char *action)
{
    enum mutate_cmd op = strcmp(action, "retry") == 0  ? MUTATE_REQUEUE
                         : strcmp(action, "kill") == 0 ? MUTATE_KILL
                                                       : MUTATE_DISCARD;
    cJSON *o = body_object(req);
    cJSON *jids = cJSON_GetObjectItemCaseSensitive(o, "jids");
    cJSON *filter = cJSON_GetObjectItemCaseSensitive(o, "filter");
    cJSON *jobtype = cJSON_GetObjectItemCaseSensitive(filter, "jobtype");
    cJSON *match = cJSON_GetObjectItemCaseSensitive(filter, "match");
    if (cJSON_IsNull(jids)) /* null means absent, as in MUTATE's filter */
        jids = NULL;
    if (cJSON_IsNull(jobtype))
        jobtype = NULL;
    if (cJSON_IsNull(match))
        match = NULL;
    const char *bad = NULL;
    if (!o)
        bad = "the body must be a JSON object: {\"jids\":[...]} or {\"filter\":{...}}";
    else if (!jids == !filter)
        bad = "give exactly one of \"jids\" and \"filter\"";
    else if (jids && (!cJSON_IsArray(jids) || cJSON_GetArraySize(jids) == 0))
        bad = "jids must be a non-empty array of strings";
    else if (filter && !cJSON_IsObject(filter))
        bad = "filter must be an object";
    else if (jobtype && !cJSON_IsString(jobtype))
        bad = "filter.jobtype must be a string";
    else if (match && !cJSON_IsString(match))
        bad = "filter.match must be a string";
    else if (match && strlen(match->valuestring) > API_MAX_MATCH)
        bad = "filter.match is too long (at most 1024 bytes)";
    cJSON *j;
    if (!bad && jids)
        cJSON_ArrayForEach(j, jids) if (!cJSON_IsString(j)) bad =
            "jids must be a non-empty array of strings";
    if (bad) {
        cJSON_Delete(o);
        reply_error(req, 400, "%s", bad);
        return;
    }
    struct mutate_filter f = {0};
    char *glob = NULL;
    const char **list = NULL;
    if (jids) {
        /* n_jids > 0 always: an empty list would mean "every job" to the engine. */
        list = xcalloc((size_t)cJSON_GetArraySize(jids), sizeof *list);
        cJSON_ArrayForEach(j, jids) list[f.n_jids++] = j->valuestring;
        f.jids = list;
    } else {
        glob = match && *match->valuestring ? match_glob(match->valuestring) : NULL;
        f.glob = glob;
        f.jobtype = jobtype && *jobtype->valuestring ? jobtype->valuestring : NULL;
    }
    if (srv->pgsrv) {
        static const char *const cmds[] = {"clear", "kill", "discard", "requeue"};
        pgsrv_mutate(srv->pgsrv, cmds[op], pg_set_states[set], &f, api_pg_done,
                     api_pg_new(srv, req, APG_CHANGED, NULL));
        free(list);
        free(glob);
        cJSON_Delete(o);
        return;
    }
    size_t changed = engine_mutate(srv->engine, op, (enum mutate_target)set, &f, server_now());
    free(list);
    free(glob);
    cJSON_Delete(o);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "{\"changed\":%zu}", changed);
    reply_durable(srv, req, 200, b.buf, b.len, server_commit(srv));
    sbuf_release(&b);
    server_schedule_tick(srv);
}

/* ---- workers ---- */

static void api_workers(struct server *srv, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"workers\":");
    info_render_workers(srv, &b);
    sbuf_adds(&b, "}");
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* Worker signals are not journaled (FWP's WORKERS QUIET/STOP neither): they answer at once. */
static void api_worker_signal(struct server *srv, struct evhttp_request *req, const char *wid,
                              const char *action)
{
    enum worker_state st = strcmp(action, "quiet") == 0 ? WORKER_QUIET : WORKER_TERMINATE;
    if (engine_worker_signal(srv->engine, wid, st) != 0) {
        reply_error(req, 404, "no worker with wid %.200s", wid);
        return;
    }
    struct worker *w = engine_worker(srv->engine, wid);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"wid\":");
    sbuf_add_json_str(&b, wid, strlen(wid));
    sbuf_addf(&b, ",\"state\":\"%s\"}", info_worker_state_name(w ? w->state : st));
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* ---- batches ---- */

static void batch_page_add(void *ctx, const struct batch *b)
{
    struct page *p = ctx;
    if (p->n++)
        sbuf_adds(&p->out, ",");
    batch_render(b, &p->out);
}

/* GET /batches?offset=&limit=: {"total":n,"batches":[...]}, newest first. */
static void api_batches(struct server *srv, struct evhttp_request *req)
{
    struct evkeyvalq q;
    if (query_parse(req, &q) != 0)
        return;
    size_t offset, limit;
    const char *bad = page_bounds(&q, &offset, &limit);
    evhttp_clear_headers(&q);
    if (bad) {
        reply_error(req, 400, "%s", bad);
        return;
    }
    struct page p = {.n = 0};
    sbuf_init(&p.out);
    sbuf_adds(&p.out, "{\"batches\":[");
    size_t total = engine_batch_list(srv->engine, offset, limit, batch_page_add, &p);
    sbuf_addf(&p.out, "],\"total\":%zu}", total);
    reply_json(req, 200, &p.out);
    sbuf_release(&p.out);
}

static void api_batch_get(struct server *srv, struct evhttp_request *req, const char *bid)
{
    struct batch *b = batch_find(srv->engine, bid);
    if (!b) {
        reply_error(req, 404, "no batch with bid %.200s", bid);
        return;
    }
    struct sbuf out;
    sbuf_init(&out);
    batch_render(b, &out);
    reply_json(req, 200, &out);
    sbuf_release(&out);
}

/* ---- history and cron (read-only, for the dashboard and scripts) ---- */

#define API_DEFAULT_DAYS 30

/* GET /history?days=N: the engine's per-day processed/failed counters, oldest day first. */
static void api_history(struct server *srv, struct evhttp_request *req)
{
    struct evkeyvalq q;
    if (query_parse(req, &q) != 0)
        return;
    const char *days_s = evhttp_find_header(&q, "days");
    size_t days = API_DEFAULT_DAYS;
    int bad = days_s && (parse_count(days_s, SIZE_MAX, &days) != 0 || days == 0 ||
                         days > ENGINE_HISTORY_DAYS); /* the engine keeps no more */
    evhttp_clear_headers(&q);
    if (bad) {
        reply_error(req, 400, "days must be a whole number from 1 to %d", ENGINE_HISTORY_DAYS);
        return;
    }
    if (srv->pgsrv) {
        char n[24];
        snprintf(n, sizeof n, "%zu", days);
        const char *params[1] = {n};
        pg_json(srv, req, "SELECT spool.history($1::integer)::text", 1, params, NULL);
        return;
    }
    int64_t today = timefmt_day(server_now());
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"days\":[");
    for (size_t i = days; i-- > 0;) {
        struct day_stats d = engine_day(srv->engine, today - (int64_t)i);
        char date[16];
        timefmt_day_string(d.day, date);
        sbuf_addf(&b, "%s{\"date\":\"%s\",\"processed\":%llu,\"failed\":%llu}",
                  i + 1 == days ? "" : ",", date, (unsigned long long)d.processed,
                  (unsigned long long)d.failed);
    }
    sbuf_adds(&b, "]}");
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* GET /cron: the entries as FWP's CRON lists them (one renderer for both). */
static void api_cron(struct server *srv, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"entries\":");
    crond_list_json(srv, &b);
    sbuf_adds(&b, "}");
    reply_json(req, 200, &b);
    sbuf_release(&b);
}

/* ---- routing ---- */

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "method not allowed here; use %s", allow);
}

/*
 * Splits the path after /api/v1/ into at most API_MAX_SEGMENTS decoded
 * segments. Returns the count, or -1 (answered) when the path cannot name
 * anything.
 */
static int split_path(struct evhttp_request *req, const char *rest, char **seg)
{
    int n = 0;
    const char *p = rest;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == API_MAX_SEGMENTS || len == 0 || len > API_MAX_SEGMENT) {
            reply_error(req, 404, "no such API route");
            return -1;
        }
        char *raw = xstrndup(p, len);
        size_t dlen = 0;
        char *dec = evhttp_uridecode(raw, 0, &dlen);
        free(raw);
        if (!dec || strlen(dec) != dlen) { /* a %00 would cut the name short */
            free(dec);
            reply_error(req, 400, "a path segment holds a NUL byte");
            return -1;
        }
        seg[n++] = dec;
        p += len;
        if (*p == '/')
            p++;
        if (slash && !*p) { /* trailing slash */
            reply_error(req, 404, "no such API route");
            return -1;
        }
    }
    return n;
}


/*
 * The routes whose PostgreSQL form differs from the engine's beyond the
 * store call: answered here (1), or left to route() (0).
 */
static int route_pg(struct server *srv, struct evhttp_request *req, char **seg, int n)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *top = n > 0 ? seg[0] : "";
    if (!strcmp(top, "jobs") && n == 2 && m == EVHTTP_REQ_GET) {
        char what[300];
        snprintf(what, sizeof what, "no job with jid %.200s", seg[1]);
        const char *params[1] = {seg[1]};
        pg_json(srv, req, "SELECT spool.job_info($1)::text", 1, params, what);
    } else if (!strcmp(top, "queues") && n == 1 && m == EVHTTP_REQ_GET) {
        pg_json(srv, req, "SELECT jsonb_build_object('queues', spool.queues_info())::text", 0, NULL, NULL);
    } else if (!strcmp(top, "queues") && n == 2 && m == EVHTTP_REQ_GET) {
        pg_queue_route(srv, req, seg[1], NULL);
    } else if (!strcmp(top, "queues") && n == 2 && m == EVHTTP_REQ_DELETE) {
        if (change_allowed(srv, req, 1))
            pg_queue_route(srv, req, seg[1], "delete");
    } else if (!strcmp(top, "queues") && n == 3 && m == EVHTTP_REQ_POST &&
               (!strcmp(seg[2], "pause") || !strcmp(seg[2], "resume"))) {
        if (change_allowed(srv, req, 1))
            pg_queue_route(srv, req, seg[1], seg[2]);
    } else if (!strcmp(top, "workers") && n == 1 && m == EVHTTP_REQ_GET) {
        pgsrv_workers(srv->pgsrv, api_pg_done, api_pg_new(srv, req, APG_WORKERS, NULL));
    } else if (!strcmp(top, "batches") && (n == 1 || n == 2)) {
        reply_error(req, 501, "batches are not available with the PostgreSQL store yet (docs/postgres.md)");
    } else if (!strcmp(top, "config") && n == 2 && !strcmp(seg[1], "reload") && m == EVHTTP_REQ_POST) {
        reply_error(req, 400, "spoold runs on the PostgreSQL store: cron.json and throttles.json are not "
                              "used there, nothing to reload");
    } else {
        return 0;
    }
    return 1;
}

static void route(struct server *srv, struct evhttp_request *req, char **seg, int n)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    int is_get = m == EVHTTP_REQ_GET, is_post = m == EVHTTP_REQ_POST,
        is_delete = m == EVHTTP_REQ_DELETE;
    const char *top = n > 0 ? seg[0] : "";
    if (srv->pgsrv && route_pg(srv, req, seg, n))
        return;

    if (!strcmp(top, "jobs") && n == 1) {
        if (!is_post)
            method_not_allowed(req, "POST");
        else if (change_allowed(srv, req, 1))
            api_push(srv, req);
    } else if (!strcmp(top, "jobs") && n == 2) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_job_get(srv, req, seg[1]);
    } else if (!strcmp(top, "queues") && n == 1) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_queues(srv, req);
    } else if (!strcmp(top, "queues") && n == 2) {
        if (is_get)
            api_queue_get(srv, req, seg[1]);
        else if (!is_delete)
            method_not_allowed(req, "GET, DELETE");
        else if (change_allowed(srv, req, 1))
            api_queue_change(srv, req, seg[1], "delete");
    } else if (!strcmp(top, "queues") && n == 3 &&
               (!strcmp(seg[2], "pause") || !strcmp(seg[2], "resume"))) {
        if (!is_post)
            method_not_allowed(req, "POST");
        else if (change_allowed(srv, req, 1))
            api_queue_change(srv, req, seg[1], seg[2]);
    } else if (!strcmp(top, "sets") && n >= 2 && set_index(seg[1]) < 0) {
        reply_error(req, 404, "no set named %.200s: use scheduled, retries, dead or working",
                    seg[1]);
    } else if (!strcmp(top, "sets") && n == 2) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_set_list(srv, req, set_index(seg[1]));
    } else if (!strcmp(top, "sets") && n == 3 &&
               (!strcmp(seg[2], "retry") || !strcmp(seg[2], "kill") || !strcmp(seg[2], "delete"))) {
        if (set_index(seg[1]) == LIST_WORKING) /* reservations end by ACK, FAIL or expiry only */
            reply_error(req, 405, "the working set can only be listed");
        else if (!is_post)
            method_not_allowed(req, "POST");
        else if (change_allowed(srv, req, 1))
            api_set_change(srv, req, set_index(seg[1]), seg[2]);
    } else if (!strcmp(top, "config") && n == 2 && !strcmp(seg[1], "reload")) {
        if (!is_post)
            method_not_allowed(req, "POST");
        else if (change_allowed(srv, req, 0)) /* configuration is not journaled */
            api_config_reload(srv, req);
    } else if (!strcmp(top, "batches") && (n == 1 || n == 2)) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else if (n == 1)
            api_batches(srv, req);
        else
            api_batch_get(srv, req, seg[1]);
    } else if (!strcmp(top, "workers") && n == 1) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_workers(srv, req);
    } else if (!strcmp(top, "workers") && n == 3 &&
               (!strcmp(seg[2], "quiet") || !strcmp(seg[2], "stop"))) {
        if (!is_post)
            method_not_allowed(req, "POST");
        else if (change_allowed(srv, req, 0))
            api_worker_signal(srv, req, seg[1], seg[2]);
    } else if (!strcmp(top, "history") && n == 1) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_history(srv, req);
    } else if (!strcmp(top, "cron") && n == 1) {
        if (!is_get)
            method_not_allowed(req, "GET");
        else
            api_cron(srv, req);
    } else {
        reply_error(req, 404, "no such API route");
    }
}

void api_handle(struct server *srv, struct evhttp_request *req, const char *path)
{
    const char *rest = path + strlen(API_PREFIX);
    if (*rest == '/')
        rest++;
    char *seg[API_MAX_SEGMENTS] = {0};
    int n = split_path(req, rest, seg);
    if (n >= 0)
        route(srv, req, seg, n);
    for (int i = 0; i < API_MAX_SEGMENTS; i++)
        free(seg[i]);
}
