#include "server/fwp.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/sbuf.h"
#include "common/xalloc.h"
#include "server/authdelay.h"
#include "server/conn.h"
#include "server/crond.h"
#include "server/info.h"
#include "server/pgsrv.h"
#include "server/server.h"


/* ---- helpers ---- */

static void reply_ok(struct conn *c, uint64_t seq)
{
    conn_reply_durable(c, "+OK\r\n", 5, seq);
}

static void reply_bulk_durable(struct conn *c, const char *data, size_t len, uint64_t seq)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "$%zu\r\n", len);
    sbuf_add(&b, data, len);
    sbuf_add(&b, "\r\n", 2);
    conn_reply_durable(c, b.buf, b.len, seq);
    sbuf_release(&b);
}

static void reply_job(struct conn *c, const struct job *job)
{
    struct sbuf b;
    sbuf_init(&b);
    job_render(job, &b);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
}

/* Parses arg as a JSON object, or returns NULL. */
static cJSON *parse_object(const char *arg, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(arg, len);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static const char *get_string(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- handshake ---- */

static void password_hash(const char *password, const char *salt, int iterations, char hex[65])
{
    unsigned char d[32];
    unsigned int dlen = 0;
    struct sbuf first;
    sbuf_init(&first);
    sbuf_adds(&first, password);
    sbuf_adds(&first, salt);
    EVP_Digest(first.buf, first.len, d, &dlen, EVP_sha256(), NULL);
    sbuf_release(&first);
    for (int i = 1; i < iterations; i++)
        EVP_Digest(d, sizeof d, d, &dlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void fwp_hello(struct conn *c, char *line, size_t len)
{
    struct server *srv = c->srv;
    if (len < 7 || memcmp(line, "HELLO {", 7) != 0) {
        conn_reply_err(c, "expected HELLO {...} as the first command");
        conn_close_after_flush(c);
        return;
    }
    cJSON *h = parse_object(line + 6, len - 6);
    if (!h) {
        conn_reply_err(c, "invalid HELLO: not a JSON object");
        conn_close_after_flush(c);
        return;
    }
    cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "v");
    int version = cJSON_IsNumber(v) ? v->valueint : 0;
    if (srv->cfg.password) {
        const char *given = get_string(h, "pwdhash");
        char want[65];
        password_hash(srv->cfg.password, c->salt, version < 2 ? 1 : c->iterations, want);
        if (!given || strlen(given) != 64 || CRYPTO_memcmp(given, want, 64) != 0) {
            cJSON_Delete(h);
            authdelay_fwp(c); /* logs, then answers "Invalid password" after a delay */
            return;
        }
    }
    if (srv->nconns > srv->cfg.max_connections) {
        log_warn("msg=\"connection refused: limit reached\" peer=%s limit=%d", c->peer,
                 srv->cfg.max_connections);
        cJSON_Delete(h);
        conn_reply_err(c, "too many connections: %d", srv->nconns);
        conn_close_after_flush(c);
        return;
    }
    const char *wid = get_string(h, "wid");
    if (wid && *wid) {
        char *labels = NULL;
        cJSON *l = cJSON_GetObjectItemCaseSensitive(h, "labels");
        if (cJSON_IsArray(l))
            labels = cJSON_PrintUnformatted(l);
        cJSON *pid = cJSON_GetObjectItemCaseSensitive(h, "pid");
        cJSON *rss = cJSON_GetObjectItemCaseSensitive(h, "rss_kb");
        char vbuf[16];
        snprintf(vbuf, sizeof vbuf, "%d", version);
        struct worker_hello wh = {
            .wid = wid,
            .hostname = get_string(h, "hostname"),
            .labels = labels,
            .v = vbuf,
            .pid = cJSON_IsNumber(pid) ? pid->valueint : 0,
            .rss_kb = cJSON_IsNumber(rss) ? (int64_t)rss->valuedouble : 0,
        };
        engine_worker_attach(srv->engine, &wh, server_now());
        c->wid = xstrdup(wid);
        c->waiter.wid = c->wid;
        if (labels)
            cJSON_free(labels);
    }
    cJSON_Delete(h);
    c->state = CONN_READY;
    evtimer_del(c->timer);
    conn_reply_str(c, "+OK\r\n");
}

/* ---- commands ---- */

static void cmd_end(struct conn *c, char *arg, size_t len)
{
    conn_reply_str(c, "+OK\r\n");
    conn_close_after_flush(c);
}

/*
 * Replies with an error whose code is err's first word (e.g. "NOTUNIQUE
 * ..."): Faktory's "known" errors carry their own code instead of ERR.
 */
static void reply_coded_err(struct conn *c, const char *err)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "-", 1);
    for (const char *p = err; *p; p++) /* one line: no CR or LF from echoed client text */
        sbuf_add(&b, *p == '\r' || *p == '\n' ? " " : p, 1);
    sbuf_add(&b, "\r\n", 2);
    conn_reply(c, b.buf, b.len);
    sbuf_release(&b);
}

/* ---- the PostgreSQL store: commands finish when their statement has committed ---- */

/* An operation is running for c: no further command is read until it answers. */
static void pg_begin(struct conn *c, struct pgop *op)
{
    c->pgop = op;
    c->is_blocked = 1;
}

static void pg_end(struct conn *c)
{
    c->pgop = NULL;
    conn_unblock(c);
}

/* PUSH, ACK, FAIL, FLUSH, QUEUE: +OK, or the error. */
static void on_pg_ok(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct conn *c = arg;
    (void)out;
    (void)outlen;
    if (rc == 0)
        conn_reply_str(c, "+OK\r\n");
    else if (rc == PUSH_NOT_UNIQUE)
        reply_coded_err(c, msg);
    else
        conn_reply_err(c, "%s", msg);
    pg_end(c);
}

/* INFO, QUEUE LATENCY: the statement's text as a bulk reply. */
static void on_pg_bulk(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct conn *c = arg;
    if (rc == 0)
        conn_reply_bulk(c, out, outlen);
    else
        conn_reply_err(c, "%s", msg);
    pg_end(c);
}

/*
 * PUSHB and ACKN on PostgreSQL: the statement's answer, or its error, with
 * the refusals found before it was sent (c->pg_errors); reply(c, errors,
 * out, outlen) writes the answer.
 */
static void reply_pg_batch(void *arg, int rc, const char *msg, const char *out, size_t outlen,
                           void (*reply)(struct conn *c, cJSON *errors, const char *out,
                                         size_t outlen))
{
    struct conn *c = arg;
    cJSON *errors = c->pg_errors;
    c->pg_errors = NULL;
    if (rc != 0)
        conn_reply_err(c, "%s", msg);
    else
        reply(c, errors, out, outlen);
    cJSON_Delete(errors);
    pg_end(c);
}

/* PUSHB: PostgreSQL's refusals joined with those found while parsing. */
static void reply_pushb(struct conn *c, cJSON *errors, const char *out, size_t outlen)
{
    cJSON *more = cJSON_ParseWithLength(out, outlen);
    cJSON *e;
    cJSON_ArrayForEach(e, more)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(errors, e->string);
        cJSON_AddStringToObject(errors, e->string, e->valuestring ? e->valuestring : "refused");
    }
    cJSON_Delete(more);
    char *text = cJSON_PrintUnformatted(errors);
    conn_reply_bulk(c, text, strlen(text));
    cJSON_free(text);
}

static void on_pg_pushb(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    reply_pg_batch(arg, rc, msg, out, outlen, reply_pushb);
}

static void pg_fetch_again(struct conn *c);

static void pg_queues_free(struct conn *c)
{
    for (int i = 0; c->pg_queues && c->pg_queues[i]; i++)
        free(c->pg_queues[i]);
    free(c->pg_queues);
    c->pg_queues = NULL;
}

static void pg_fetch_finish(struct conn *c)
{
    pg_queues_free(c);
    c->is_pg_deadline = 0;
    pgsrv_unwait(c->srv->pgsrv, &c->pgw);
    pg_end(c);
}

static void on_pg_fetched(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct conn *c = arg;
    c->pgop = NULL;
    c->pgw.is_claiming = 0;
    if (rc != 0) {
        conn_reply_err(c, "%s", msg);
    } else if (outlen > 0 && c->pg_fetch_max == 0) { /* FETCH: one job */
        conn_reply_bulk(c, out, outlen);
    } else if (outlen > 0) { /* FETCHN: one job per line, as an array */
        struct sbuf b;
        sbuf_init(&b);
        sbuf_add(&b, "[", 1);
        for (const char *p = out, *end = out + outlen; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                nl = end;
            if (b.len > 1)
                sbuf_add(&b, ",", 1);
            sbuf_add(&b, p, (size_t)(nl - p));
            p = nl + 1;
        }
        sbuf_add(&b, "]", 1);
        conn_reply_bulk(c, b.buf, b.len);
        sbuf_release(&b);
    } else if (c->is_pg_deadline) {
        conn_reply_str(c, "$-1\r\n");
    } else if (c->pgw.has_missed) { /* a push committed while the claim ran */
        pg_fetch_again(c);
        return;
    } else { /* nothing yet: wait (still listed) for a push's NOTIFY or the deadline */
        return;
    }
    pg_fetch_finish(c);
}

static void pg_fetch_again(struct conn *c)
{
    int n = 0;
    while (c->pg_queues[n])
        n++;
    c->pgw.is_claiming = 1;
    c->pgw.has_missed = 0;
    c->pgop = pgsrv_fetch(c->srv->pgsrv, (const char *const *)c->pg_queues, n, c->wid,
                          c->pg_fetch_max ? c->pg_fetch_max : 1, on_pg_fetched, c);
}

static void on_pg_wake(struct pgwaiter *w)
{
    struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, pgw));
    pg_fetch_again(c);
}

/*
 * FETCH (max 0) or FETCHN (max n) on PostgreSQL: one claim now; if it finds
 * nothing, the connection waits for a NOTIFY naming one of its queues, then
 * claims again, until FWP_FETCH_BLOCK_S pass.
 */
static void pg_fetch_start(struct conn *c, const char *const *queues, int n, int max)
{
    c->pg_queues = xcalloc((size_t)n + 1, sizeof *c->pg_queues);
    for (int i = 0; i < n; i++)
        c->pg_queues[i] = xstrdup(queues[i]);
    c->pg_fetch_max = max;
    c->is_pg_deadline = 0;
    c->pgw.queues = (const char *const *)c->pg_queues;
    c->pgw.nqueues = n;
    c->pgw.wake = on_pg_wake;
    pgsrv_wait(c->srv->pgsrv, &c->pgw);
    struct timeval tv = {FWP_FETCH_BLOCK_S, 0};
    evtimer_add(c->fetch_timer, &tv);
    c->is_blocked = 1;
    pg_fetch_again(c);
}

/* The FETCH deadline: answer nil now, or once the claim under way has answered. */
static int pg_fetch_deadline(struct conn *c)
{
    if (!c->pg_queues)
        return 0;
    if (c->pgop) {
        c->is_pg_deadline = 1;
        return 1;
    }
    conn_reply_str(c, "$-1\r\n");
    pg_fetch_finish(c);
    return 1;
}

void fwp_pg_conn_gone(struct conn *c)
{
    if (!c->srv->pgsrv)
        return;
    if (c->pgop)
        pgsrv_cancel(c->pgop);
    c->pgop = NULL;
    pgsrv_unwait(c->srv->pgsrv, &c->pgw);
    pg_queues_free(c);
    cJSON_Delete(c->pg_errors);
    c->pg_errors = NULL;
}

static void cmd_push(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    char err[JOB_ERR_MAX];
    struct job *job;
    if (len > srv->cfg.max_job) {
        conn_reply_err(c, "job too large: %zu bytes, over the limit of %zu bytes (--max-job-size)",
                       len, srv->cfg.max_job);
        return;
    }
    if (job_parse(arg, len, server_now(), &job, err) != 0) {
        conn_reply_err(c, "%s", err);
        return;
    }
    if (srv->pgsrv) {
        const char *no = pgsrv_job_unsupported(job);
        if (no) {
            job_free(job);
            conn_reply_err(c, "%s", no);
            return;
        }
        pg_begin(c, pgsrv_push(srv->pgsrv, job, on_pg_ok, c));
        return;
    }
    int rc = server_push(c->srv, job, err);
    if (rc == PUSH_NOT_UNIQUE) {
        reply_coded_err(c, err);
        return;
    }
    if (rc != 0) {
        conn_reply_err(c, "%s", err);
        return;
    }
    reply_ok(c, srv->commit_seq);
}

static void cmd_pushb(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    char perr[JOB_ERR_MAX];
    cJSON *arr = job_parse_array(arg, len, perr);
    if (!arr) {
        conn_reply_err(c, "%s", perr);
        return;
    }
    int all_objects = cJSON_IsArray(arr);
    cJSON *item;
    cJSON_ArrayForEach(item, arr) all_objects &= cJSON_IsObject(item);
    if (!all_objects) {
        cJSON_Delete(arr);
        conn_reply_err(c, "invalid JSON: PUSHB takes a JSON array of job objects");
        return;
    }
    cJSON *errors = cJSON_CreateObject();
    int64_t now = server_now();
    cJSON *elem;
    size_t pos = 0;
    struct job **valid = NULL;
    size_t nvalid = 0;
    if (srv->pgsrv)
        valid = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *valid);
    cJSON_ArrayForEach(elem, arr)
    {
        char err[JOB_ERR_MAX];
        const char *jid = get_string(elem, "jid");
        char *jid_copy = xstrdup(jid ? jid : ""); /* building the job may reshape elem */
        struct job *job;
        int rc = job_from_array_item(elem, arg, len, &pos, now, &job, err);
        if (rc == 0 && valid && (size_t)job->body_len > srv->cfg.max_job) {
            snprintf(err, sizeof err, "job too large: %zu bytes, over the limit of %zu bytes (--max-job-size)",
                     (size_t)job->body_len, srv->cfg.max_job);
            job_free(job);
            rc = -1;
        } else if (rc == 0 && valid && pgsrv_job_unsupported(job)) {
            snprintf(err, sizeof err, "%s", pgsrv_job_unsupported(job));
            job_free(job);
            rc = -1;
        } else if (rc == 0 && valid) {
            valid[nvalid++] = job;
        } else if (rc == 0) {
            rc = server_push(c->srv, job, err);
        }
        if (rc != 0) {
            cJSON_DeleteItemFromObjectCaseSensitive(errors, jid_copy);
            cJSON_AddStringToObject(errors, jid_copy, err);
        }
        free(jid_copy);
    }
    cJSON_Delete(arr);
    if (valid) {
        c->pg_errors = errors;
        pg_begin(c, pgsrv_push_many(srv->pgsrv, valid, nvalid, on_pg_pushb, c));
        return;
    }
    char *text = cJSON_PrintUnformatted(errors);
    reply_bulk_durable(c, text, strlen(text), srv->commit_seq);
    cJSON_free(text);
    cJSON_Delete(errors);
}

static void on_deliver(struct waiter *w, struct job *job)
{
    struct conn *c = w->ctx;
    reply_job(c, job);
    conn_unblock(c);
}

void fwp_fetch_timeout(int fd, short what, void *arg)
{
    struct conn *c = arg;
    if (pg_fetch_deadline(c))
        return;
    engine_unwait(c->srv->engine, &c->waiter);
    conn_reply_str(c, "$-1\r\n");
    conn_unblock(c);
}

static void block_fetch(struct conn *c)
{
    struct timeval tv = {FWP_FETCH_BLOCK_S, 0};
    c->is_blocked = 1;
    evtimer_add(c->fetch_timer, &tv);
}

/*
 * Splits arg (NUL-terminated in place) into queue names, in priority order;
 * none means "default". *queues is stack (16 slots) or an allocation the
 * caller frees when it differs from stack. Returns the count.
 */
static int parse_queues(char *arg, size_t len, const char **stack, const char ***out)
{
    const char **queues = stack;
    int n = 0, cap = 16;
    for (char *p = arg, *end = arg ? arg + len : NULL; p && p < end;) {
        char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            sp = end;
        *sp = '\0';
        if (sp > p) {
            if (n == cap) {
                cap *= 2;
                const char **grown = xmalloc((size_t)cap * sizeof *grown);
                memcpy(grown, queues, (size_t)n * sizeof *grown);
                if (queues != stack)
                    free(queues);
                queues = grown;
            }
            queues[n++] = p;
        }
        p = sp + 1;
    }
    if (n == 0)
        queues[n++] = "default";
    *out = queues;
    return n;
}

static void cmd_fetch(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    struct worker *w = c->wid ? engine_worker(srv->engine, c->wid) : NULL;
    if (w && w->state != WORKER_RUNNING) { /* quiet processes get nothing new */
        block_fetch(c);
        return;
    }
    const char *stack[16];
    const char **queues;
    int n = parse_queues(arg, len, stack, &queues);
    if (srv->pgsrv) {
        pg_fetch_start(c, queues, n, 0);
        if (queues != stack)
            free(queues);
        return;
    }
    int64_t now = server_now();
    struct job *job = engine_fetch(srv->engine, queues, n, c->wid, now);
    if (job) {
        server_commit(srv); /* the reservation is a change; its reply need not wait */
        reply_job(c, job);
    } else {
        c->waiter.deliver = on_deliver;
        c->waiter.wid = c->wid ? c->wid : "";
        engine_wait(srv->engine, &c->waiter, queues, n);
        block_fetch(c);
    }
    if (queues != stack)
        free(queues);
}

static void cmd_ack(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    cJSON *o = parse_object(arg, len);
    int ok = o != NULL;
    cJSON *v;
    cJSON_ArrayForEach(v, o) ok &= cJSON_IsString(v);
    const char *jid = ok ? get_string(o, "jid") : NULL;
    if (!jid) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid ACK %.*s", (int)(len > 200 ? 200 : len), arg);
        return;
    }
    if (srv->pgsrv) {
        pg_begin(c, pgsrv_ack_one(srv->pgsrv, jid, on_pg_ok, c));
        cJSON_Delete(o);
        return;
    }
    /* An ACK for a job no longer reserved is accepted: workers re-send ACKs after blips. */
    if (engine_ack(srv->engine, jid, server_now()) == 0)
        server_commit(srv);
    cJSON_Delete(o);
    reply_ok(c, srv->commit_seq);
}

/* ---- native batch verbs (advertised in HI's "spool" key; docs/protocol.md) ---- */

static void on_deliver_many(struct waiter *w, struct job *job)
{
    struct conn *c = w->ctx;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "[", 1);
    job_render(job, &b);
    sbuf_add(&b, "]", 1);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
    conn_unblock(c);
}

/*
 * FETCHN <n> q1 q2 ...: up to n jobs, taken in the order FETCH would hand
 * them out one by one, as one JSON array. Blocks like FETCH only when no job
 * is there (then the first pushed job comes alone, or $-1 at the deadline).
 */
static void cmd_fetchn(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    char *sp = memchr(arg, ' ', len);
    size_t nlen = sp ? (size_t)(sp - arg) : len;
    char nbuf[16];
    long want = 0;
    char *end = NULL;
    if (nlen > 0 && nlen < sizeof nbuf) {
        memcpy(nbuf, arg, nlen);
        nbuf[nlen] = '\0';
        want = strtol(nbuf, &end, 10);
    }
    if (!end || *end || want < 1 || want > FWP_FETCH_MAX) {
        conn_reply_err(c, "FETCHN needs a count from 1 to %d first: FETCHN <n> queue...",
                       FWP_FETCH_MAX);
        return;
    }
    struct worker *w = c->wid ? engine_worker(srv->engine, c->wid) : NULL;
    if (w && w->state != WORKER_RUNNING) {
        block_fetch(c);
        return;
    }
    const char *stack[16];
    const char **queues;
    int n = parse_queues(sp ? sp + 1 : NULL, sp ? len - nlen - 1 : 0, stack, &queues);
    if (srv->pgsrv) {
        pg_fetch_start(c, queues, n, (int)want);
        if (queues != stack)
            free(queues);
        return;
    }
    int64_t now = server_now();
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "[", 1);
    long got = 0;
    struct job *job;
    while (got < want && b.len < FWP_FETCHN_MAX_BYTES &&
           (job = engine_fetch(srv->engine, queues, n, c->wid, now)) != NULL) {
        if (got++)
            sbuf_add(&b, ",", 1);
        job_render(job, &b);
    }
    sbuf_add(&b, "]", 1);
    if (got) {
        server_commit(srv); /* reservations are changes; like FETCH, the reply need not wait */
        conn_reply_bulk(c, b.buf, b.len);
    } else {
        c->waiter.deliver = on_deliver_many;
        c->waiter.wid = c->wid ? c->wid : "";
        engine_wait(srv->engine, &c->waiter, queues, n);
        block_fetch(c);
    }
    sbuf_release(&b);
    if (queues != stack)
        free(queues);
}

/* ACKN: the jids PostgreSQL acknowledged, and the refusals. */
static void reply_ackn(struct conn *c, cJSON *errors, const char *out, size_t outlen)
{
    char *text = cJSON_PrintUnformatted(errors);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "{\"acked\":%.*s,\"errors\":%s}", (int)outlen, out, text);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
    cJSON_free(text);
}

static void on_pg_ackn(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    reply_pg_batch(arg, rc, msg, out, outlen, reply_ackn);
}

/* ACKN on PostgreSQL: one statement for every well-formed jid. */
static void pg_ackn(struct conn *c, cJSON *jids)
{
    int count = cJSON_GetArraySize(jids);
    const char **list = xcalloc((size_t)count, sizeof *list);
    cJSON *errors = cJSON_CreateObject();
    size_t n = 0;
    int i = 0;
    cJSON *v;
    cJSON_ArrayForEach(v, jids)
    {
        if (!cJSON_IsString(v) || !*v->valuestring) {
            char key[24];
            snprintf(key, sizeof key, "[%d]", i);
            cJSON_AddStringToObject(errors, key, "a job id must be a non-empty string");
        } else {
            list[n++] = v->valuestring;
        }
        i++;
    }
    c->pg_errors = errors;
    pg_begin(c, pgsrv_ack(c->srv->pgsrv, list, n, on_pg_ackn, c));
    free(list);
}

/*
 * ACKN {"jids":[...]}: acknowledges each jid like ACK and answers once, when
 * every acknowledgement is durable, with {"acked":N,"errors":{...}}. Jids that
 * hold no reservation are accepted and not counted (ACK's rule); entries that
 * are not non-empty strings are reported in errors under "[index]".
 */
static void cmd_ackn(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    cJSON *o = parse_object(arg, len);
    cJSON *jids = o ? cJSON_GetObjectItemCaseSensitive(o, "jids") : NULL;
    int count = cJSON_IsArray(jids) ? cJSON_GetArraySize(jids) : -1;
    if (count < 1 || count > FWP_ACK_MAX) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid ACKN: needs {\"jids\":[...]} with 1 to %d job ids", FWP_ACK_MAX);
        return;
    }
    if (srv->pgsrv) {
        pg_ackn(c, jids);
        cJSON_Delete(o);
        return;
    }
    int64_t now = server_now();
    struct sbuf errs;
    sbuf_init(&errs);
    int acked = 0, nerr = 0, i = 0;
    cJSON *v;
    cJSON_ArrayForEach(v, jids)
    {
        if (!cJSON_IsString(v) || !*v->valuestring) {
            sbuf_addf(&errs, "%s\"[%d]\":\"a job id must be a non-empty string\"", nerr++ ? "," : "", i);
        } else if (engine_ack(srv->engine, v->valuestring, now) == 0) {
            acked++;
        }
        i++;
    }
    cJSON_Delete(o);
    if (acked)
        server_commit(srv);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "{\"acked\":%d,\"errors\":{", acked);
    sbuf_add(&b, errs.buf ? errs.buf : "", errs.len);
    sbuf_add(&b, "}}", 2);
    reply_bulk_durable(c, b.buf, b.len, srv->commit_seq);
    sbuf_release(&b);
    sbuf_release(&errs);
}

static void cmd_fail(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    cJSON *o = parse_object(arg, len);
    cJSON *jid = cJSON_GetObjectItemCaseSensitive(o, "jid");
    cJSON *errtype = cJSON_GetObjectItemCaseSensitive(o, "errtype");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(o, "message");
    cJSON *bt = cJSON_GetObjectItemCaseSensitive(o, "backtrace");
    int bt_ok = 1;
    cJSON *bt_line;
    if (cJSON_IsArray(bt))
        cJSON_ArrayForEach(bt_line, bt) bt_ok &= cJSON_IsString(bt_line);
    if (!o || !bt_ok || (jid && !cJSON_IsString(jid) && !cJSON_IsNull(jid)) ||
        (errtype && !cJSON_IsString(errtype) && !cJSON_IsNull(errtype)) ||
        (message && !cJSON_IsString(message) && !cJSON_IsNull(message)) ||
        (bt && !cJSON_IsArray(bt) && !cJSON_IsNull(bt))) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid FAIL %.*s", (int)(len > 200 ? 200 : len), arg);
        return;
    }
    if (!cJSON_IsString(jid) || !*jid->valuestring) {
        cJSON_Delete(o);
        conn_reply_err(c, "missing JID");
        return;
    }
    char *bt_text = NULL;
    if (cJSON_IsArray(bt)) {
        cJSON *lines = cJSON_CreateArray();
        cJSON *line;
        int k = 0;
        cJSON_ArrayForEach(line, bt)
        {
            if (k++ >= JOB_BACKTRACE_MAX)
                break;
            cJSON_AddItemToArray(lines, cJSON_CreateString(line->valuestring));
        }
        bt_text = cJSON_PrintUnformatted(lines);
        cJSON_Delete(lines);
    }
    if (srv->pgsrv) {
        pg_begin(c, pgsrv_fail(srv->pgsrv, jid->valuestring,
                               cJSON_IsString(errtype) ? errtype->valuestring : NULL,
                               cJSON_IsString(message) ? message->valuestring : NULL, bt_text,
                               on_pg_ok, c));
        if (bt_text)
            cJSON_free(bt_text);
        cJSON_Delete(o);
        return;
    }
    int rc = engine_fail(srv->engine, jid->valuestring,
                         cJSON_IsString(errtype) ? errtype->valuestring : NULL,
                         cJSON_IsString(message) ? message->valuestring : NULL, bt_text,
                         server_now());
    if (bt_text)
        cJSON_free(bt_text);
    if (rc != 0)
        conn_reply_err(c, "Job not found %.100s", jid->valuestring);
    else
        reply_ok(c, server_commit(srv));
    cJSON_Delete(o);
}

static void cmd_beat(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    cJSON *o = parse_object(arg, len);
    const char *wid = o ? get_string(o, "wid") : NULL;
    cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "current_state");
    cJSON *rss = cJSON_GetObjectItemCaseSensitive(o, "rss_kb");
    if (!wid || (st && !cJSON_IsString(st) && !cJSON_IsNull(st)) ||
        (rss && !cJSON_IsNumber(rss) && !cJSON_IsNull(rss))) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid BEAT %.*s", (int)(len > 200 ? 200 : len), arg);
        return;
    }
    enum worker_state state;
    int rc = engine_beat(srv->engine, wid, cJSON_IsString(st) ? st->valuestring : NULL,
                         cJSON_IsNumber(rss) ? (int64_t)rss->valuedouble : 0, server_now(), &state);
    if (rc != 0)
        conn_reply_err(c, "unknown worker %.100s", wid);
    else if (state == WORKER_QUIET)
        conn_reply_bulk(c, "{\"state\":\"quiet\"}", 17);
    else if (state == WORKER_TERMINATE)
        conn_reply_bulk(c, "{\"state\":\"terminate\"}", 21);
    else
        conn_reply_str(c, "+OK\r\n");
    cJSON_Delete(o);
}

static void cmd_info(struct conn *c, char *arg, size_t len)
{
    if (c->srv->pgsrv) {
        pg_begin(c, pgsrv_info(c->srv->pgsrv, on_pg_bulk, c));
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    info_render(c->srv, &b);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
}

static void cmd_flush(struct conn *c, char *arg, size_t len)
{
    if (c->srv->pgsrv) {
        pg_begin(c, pgsrv_exec(c->srv->pgsrv, "TRUNCATE spool.jobs, spool.stats, spool.queues", 0,
                               NULL, on_pg_ok, c));
        return;
    }
    engine_flush(c->srv->engine);
    reply_ok(c, server_commit(c->srv));
}


/* QUEUE on PostgreSQL: the names as one text[] parameter. */
static void pg_queue(struct conn *c, const char *sql, char *names, int is_bulk)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "{", 1);
    char *save = NULL;
    int n = 0;
    for (char *q = strtok_r(names, " ", &save); q; q = strtok_r(NULL, " ", &save)) {
        if (n++)
            sbuf_add(&b, ",", 1);
        sbuf_add(&b, "\"", 1);
        for (const char *p = q; *p; p++) {
            if (*p == '"' || *p == '\\')
                sbuf_add(&b, "\\", 1);
            sbuf_add(&b, p, 1);
        }
        sbuf_add(&b, "\"", 1);
    }
    sbuf_add(&b, "}", 1);
    const char *params[1] = {b.buf};
    pg_begin(c, pgsrv_exec(c->srv->pgsrv, sql, 1, params, is_bulk ? on_pg_bulk : on_pg_ok, c));
    sbuf_release(&b);
}

static void cmd_queue(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    char *save = NULL;
    char *sub = arg ? strtok_r(arg, " ", &save) : NULL;
    if (!sub) {
        conn_reply_err(c, "QUEUE needs a subcommand: QUEUE PAUSE|RESUME|REMOVE|LATENCY name...");
        return;
    }
    int is_pause = !strcasecmp(sub, "PAUSE"), is_resume = !strcasecmp(sub, "RESUME");
    int is_remove = !strcasecmp(sub, "REMOVE"), is_latency = !strcasecmp(sub, "LATENCY");
    if (!is_pause && !is_resume && !is_remove && !is_latency) {
        conn_reply_err(c, "no such QUEUE subcommand: %.100s", sub);
        return;
    }
    char *rest = save;
    if (!rest || !*rest) {
        conn_reply_err(c, "QUEUE %s needs at least one queue name", sub);
        return;
    }
    int64_t now = server_now();
    if (is_latency && strstr(rest, "*")) {
        conn_reply_err(c, "QUEUE LATENCY does not support wildcards");
        return;
    }
    if (srv->pgsrv) {
        pg_queue(c, is_pause ? "SELECT spool.queue_pause($1::text[], true)"
                    : is_resume ? "SELECT spool.queue_pause($1::text[], false)"
                    : is_remove ? "SELECT spool.queue_remove($1::text[])"
                                : "SELECT spool.queue_latency($1::text[])::text",
                 rest, is_latency);
        return;
    }
    if (is_latency) {
        cJSON *out = cJSON_CreateObject();
        for (char *q = strtok_r(rest, " ", &save); q; q = strtok_r(NULL, " ", &save))
            if (!cJSON_GetObjectItemCaseSensitive(out, q))
                cJSON_AddNumberToObject(out, q, engine_queue_latency(srv->engine, q, now));
        char *text = cJSON_PrintUnformatted(out);
        conn_reply_bulk(c, text, strlen(text));
        cJSON_free(text);
        cJSON_Delete(out);
        return;
    }
    for (char *q = strtok_r(rest, " ", &save); q; q = strtok_r(NULL, " ", &save)) {
        if (is_pause)
            engine_queue_pause(srv->engine, q);
        else if (is_resume)
            engine_queue_resume(srv->engine, q, now);
        else
            engine_queue_remove(srv->engine, q);
    }
    reply_ok(c, server_commit(srv));
}

/* Says what is wrong with a MUTATE filter's types, or NULL when it is fine. */
static const char *mutate_filter_problem(cJSON *filter)
{
    if (!filter || cJSON_IsNull(filter))
        return NULL;
    if (!cJSON_IsObject(filter))
        return "filter must be an object";
    cJSON *jids = cJSON_GetObjectItemCaseSensitive(filter, "jids");
    if (jids && !cJSON_IsNull(jids)) {
        if (!cJSON_IsArray(jids))
            return "filter.jids must be an array of strings";
        cJSON *j;
        cJSON_ArrayForEach(j, jids) if (!cJSON_IsString(j)) return "filter.jids must be an array of strings";
    }
    cJSON *re = cJSON_GetObjectItemCaseSensitive(filter, "regexp");
    if (re && !cJSON_IsNull(re) && !cJSON_IsString(re))
        return "filter.regexp must be a string";
    cJSON *jt = cJSON_GetObjectItemCaseSensitive(filter, "jobtype");
    if (jt && !cJSON_IsNull(jt) && !cJSON_IsString(jt))
        return "filter.jobtype must be a string";
    return NULL;
}

/*
 * Reads a MUTATE-style filter into f (its strings point into filter; free
 * f->jids). Returns NULL, or what is wrong (then f holds nothing to free).
 */
static const char *filter_parse(cJSON *filter, struct mutate_filter *f)
{
    memset(f, 0, sizeof *f);
    const char *bad = mutate_filter_problem(filter);
    if (bad || !cJSON_IsObject(filter))
        return bad;
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(filter, "jids");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n > 0) {
        const char **jids = xcalloc((size_t)n, sizeof *jids);
        cJSON *j;
        cJSON_ArrayForEach(j, arr) jids[f->n_jids++] = j->valuestring;
        f->jids = jids;
    }
    f->glob = get_string(filter, "regexp");
    f->jobtype = get_string(filter, "jobtype");
    return NULL;
}

static void cmd_mutate(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(arg, len, &end, 0);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid JSON: MUTATE takes a JSON object, error near byte %zu",
                       end && end >= arg ? (size_t)(end - arg) : 0);
        return;
    }
    const char *cmd = get_string(o, "cmd"), *target = get_string(o, "target");
    enum mutate_cmd op;
    enum mutate_target tgt;
    if (cmd && !strcmp(cmd, "clear"))
        op = MUTATE_CLEAR;
    else if (cmd && !strcmp(cmd, "kill"))
        op = MUTATE_KILL;
    else if (cmd && !strcmp(cmd, "discard"))
        op = MUTATE_DISCARD;
    else if (cmd && !strcmp(cmd, "requeue"))
        op = MUTATE_REQUEUE;
    else {
        cJSON_Delete(o);
        conn_reply_err(c, "unknown mutate operation");
        return;
    }
    if (target && !strcmp(target, "scheduled"))
        tgt = TARGET_SCHEDULED;
    else if (target && !strcmp(target, "retries"))
        tgt = TARGET_RETRIES;
    else if (target && !strcmp(target, "dead"))
        tgt = TARGET_DEAD;
    else {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid target for mutation command");
        return;
    }
    struct mutate_filter f;
    const char *bad = filter_parse(cJSON_GetObjectItemCaseSensitive(o, "filter"), &f);
    if (bad) { /* a filter we cannot read must never widen into "everything" */
        cJSON_Delete(o);
        conn_reply_err(c, "invalid JSON: %s", bad);
        return;
    }
    if (srv->pgsrv) {
        static const char *const states[] = {"scheduled", "retry", "dead"};
        pg_begin(c, pgsrv_mutate(srv->pgsrv, cmd, states[tgt], &f, on_pg_ok, c));
        free((void *)f.jids);
        cJSON_Delete(o);
        return;
    }
    size_t changed = engine_mutate(srv->engine, op, tgt, &f, server_now());
    free((void *)f.jids);
    cJSON_Delete(o);
    log_debug("msg=mutate cmd=%s target=%s changed=%zu", cmd, target, changed);
    reply_ok(c, changed ? server_commit(srv) : srv->commit_seq);
}

#define JOBS_DEFAULT_LIMIT 50
#define JOBS_MAX_LIMIT 1000

struct jobs_page {
    struct sbuf out;
    int n;
    int has_score;
};

static void jobs_page_add(void *ctx, const struct job *job)
{
    struct jobs_page *p = ctx;
    struct sbuf *b = &p->out;
    if (p->n++)
        sbuf_adds(b, ",");
    info_render_list_entry(b, job, p->has_score);
}

static int whole_number(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == floor(v->valuedouble);
}

/* JOBS {"target":"retries","offset":0,"limit":50,"filter":{...}}: a page of a set or a queue. */
static void cmd_jobs(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    cJSON *o = parse_object(arg, len);
    if (!o) {
        conn_reply_err(c, "invalid JSON: JOBS takes a JSON object");
        return;
    }
    static const char *const names[] = {"scheduled", "retries", "dead", "working", "queue"};
    const char *target = get_string(o, "target");
    int t = -1;
    for (int i = 0; target && i < 5; i++)
        if (strcmp(target, names[i]) == 0)
            t = i;
    const char *queue = get_string(o, "queue");
    cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
    cJSON *lim = cJSON_GetObjectItemCaseSensitive(o, "limit");
    struct mutate_filter f;
    const char *bad = NULL;
    if (t < 0)
        bad = "target must be scheduled, retries, dead, working or queue";
    else if (t == LIST_QUEUE && !queue)
        bad = "target queue needs a \"queue\" name";
    else if ((off && !whole_number(off)) || (lim && !whole_number(lim)))
        bad = "offset and limit must be whole numbers of at least 0";
    if (!bad)
        bad = filter_parse(cJSON_GetObjectItemCaseSensitive(o, "filter"), &f);
    if (bad) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid JSON: %s", bad);
        return;
    }
    /* Compare as doubles before converting: huge values must cap, not wrap. */
    size_t offset = !off ? 0 : off->valuedouble > 1e15 ? (size_t)1e15 : (size_t)off->valuedouble;
    size_t limit = !lim ? JOBS_DEFAULT_LIMIT
                   : lim->valuedouble > JOBS_MAX_LIMIT ? JOBS_MAX_LIMIT
                                                       : (size_t)lim->valuedouble;
    if (srv->pgsrv) {
        static const char *const states[] = {"scheduled", "retry", "dead", "working", "enqueued"};
        pg_begin(c, pgsrv_list(srv->pgsrv, states[t], t == LIST_QUEUE ? queue : NULL, &f, offset, limit,
                               t != LIST_QUEUE, on_pg_bulk, c));
        free((void *)f.jids);
        cJSON_Delete(o);
        return;
    }
    struct jobs_page p = {.has_score = t != LIST_QUEUE};
    sbuf_init(&p.out);
    sbuf_adds(&p.out, "{\"jobs\":[");
    size_t total = engine_list(srv->engine, (enum list_target)t, queue, &f, offset, limit,
                               jobs_page_add, &p);
    sbuf_addf(&p.out, "],\"total\":%zu,\"offset\":%zu,\"limit\":%zu}", total, offset, limit);
    conn_reply_bulk(c, p.out.buf, p.out.len);
    sbuf_release(&p.out);
    free((void *)f.jids);
    cJSON_Delete(o);
}

/* WORKERS: the processes with their heartbeat state; WORKERS QUIET|STOP wid...|*: signal them. */
static void cmd_workers(struct conn *c, char *arg, size_t len)
{
    struct engine *e = c->srv->engine;
    char *save = NULL;
    char *sub = arg ? strtok_r(arg, " ", &save) : NULL;
    if (sub) {
        int is_quiet = !strcasecmp(sub, "QUIET"), is_stop = !strcasecmp(sub, "STOP");
        if (!is_quiet && !is_stop) {
            conn_reply_err(c, "no such WORKERS subcommand: %.100s (QUIET or STOP)", sub);
            return;
        }
        enum worker_state st = is_quiet ? WORKER_QUIET : WORKER_TERMINATE;
        const char **wids = NULL;
        size_t n = 0;
        for (char *wid = strtok_r(NULL, " ", &save); wid; wid = strtok_r(NULL, " ", &save)) {
            wids = xrealloc(wids, (n + 1) * sizeof *wids);
            wids[n++] = wid;
        }
        if (!n) {
            conn_reply_err(c, "WORKERS %s needs worker ids (or *)", sub);
            return;
        }
        /* Check every wid first: an error reply must mean nothing changed. */
        for (size_t k = 0; k < n; k++) {
            if (strcmp(wids[k], "*") != 0 && !engine_worker(e, wids[k])) {
                conn_reply_err(c, "unknown worker %.100s", wids[k]);
                free(wids);
                return;
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (strcmp(wids[k], "*") == 0) {
                const char *key;
                void *val;
                for (size_t i = 0; strmap_next(&e->workers, &i, &key, &val);)
                    engine_worker_signal(e, key, st);
            } else {
                engine_worker_signal(e, wids[k], st);
            }
        }
        free(wids);
        conn_reply_str(c, "+OK\r\n");
        return;
    }
    if (c->srv->pgsrv) {
        pg_begin(c, pgsrv_workers(c->srv->pgsrv, on_pg_bulk, c));
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    info_render_workers(c->srv, &b);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
}

/* A new batch id: "b-" and 20 random characters (about 119 bits). */
static int make_bid(char out[32])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[20];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    memcpy(out, "b-", 2);
    for (size_t i = 0; i < sizeof rnd; i++)
        out[2 + i] = alphabet[rnd[i] % 62];
    out[2 + sizeof rnd] = '\0';
    return 0;
}

/* The bid argument of OPEN/COMMIT/STATUS, NUL-terminated in the line buffer; NULL when bad. */
static const char *bid_arg(struct conn *c, const char *sub, char *arg, size_t len)
{
    if (!len || memchr(arg, ' ', len) || memchr(arg, '\0', len)) {
        conn_reply_err(c, "BATCH %s needs a batch id: BATCH %s <bid>", sub, sub);
        return NULL;
    }
    arg[len] = '\0';
    return arg;
}

static void batch_reply_bid(struct conn *c, const char *bid, uint64_t seq)
{
    reply_bulk_durable(c, bid, strlen(bid), seq);
}

static void batch_err(struct conn *c, int rc, const char *bid)
{
    if (rc == ENGINE_EBATCH_UNKNOWN)
        conn_reply_err(c, "unknown batch %.100s", bid);
    else if (rc == ENGINE_EBATCH_DONE)
        conn_reply_err(c, "batch %.100s has completed and cannot be reopened", bid);
    else
        conn_reply_err(c, "batch %.100s: %s", bid, engine_strerror(rc));
}

/*
 * BATCH NEW <json> -> bid | OPEN <bid> -> bid | COMMIT <bid> -> OK | STATUS <bid> -> JSON
 * (Faktory Enterprise's shapes; docs/features.md "Batches").
 */
static void cmd_batch(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    char *sp = memchr(arg, ' ', len);
    size_t sublen = sp ? (size_t)(sp - arg) : len;
    char *rest = sp ? sp + 1 : arg + len;
    size_t restlen = sp ? len - sublen - 1 : 0;
    static const char *const subs[] = {"NEW", "OPEN", "COMMIT", "STATUS"};
    int sub = -1;
    for (int i = 0; i < 4; i++)
        if (strlen(subs[i]) == sublen && strncasecmp(arg, subs[i], sublen) == 0)
            sub = i;
    if (sub < 0) {
        conn_reply_err(c, "no such BATCH subcommand: %.*s (NEW, OPEN, COMMIT or STATUS)",
                       (int)(sublen > 100 ? 100 : sublen), arg);
        return;
    }
    if (sub != 3 && srv->is_readonly) {
        conn_reply_err(c, "changes are refused: the journal failed (%s)", srv->readonly_reason);
        return;
    }
    int64_t now = server_now();
    if (sub == 0) {
        if (!restlen) {
            conn_reply_err(c, "BATCH NEW needs a JSON object: "
                              "BATCH NEW {\"success\":{...},\"complete\":{...}}");
            return;
        }
        if (restlen > 2 * srv->cfg.max_job) {
            conn_reply_err(c,
                           "batch definition too large: %zu bytes, over the limit of %zu bytes "
                           "(twice --max-job-size)",
                           restlen, 2 * srv->cfg.max_job);
            return;
        }
        char bid[32], err[JOB_ERR_MAX];
        int rc = ENGINE_EEXIST;
        for (int tries = 0; tries < 3 && rc == ENGINE_EEXIST; tries++) {
            if (make_bid(bid) != 0) {
                conn_reply_err(c, "cannot make a batch id: no randomness available");
                return;
            }
            rc = engine_batch_new(srv->engine, bid, rest, restlen, now, err);
        }
        if (rc != 0) {
            conn_reply_err(c, "%s", err);
            return;
        }
        batch_reply_bid(c, bid, server_commit(srv));
        return;
    }
    const char *bid = bid_arg(c, subs[sub], rest, restlen);
    if (!bid)
        return;
    if (sub == 3) {
        struct batch *b = batch_find(srv->engine, bid);
        if (!b) {
            batch_err(c, ENGINE_EBATCH_UNKNOWN, bid);
            return;
        }
        struct sbuf out;
        sbuf_init(&out);
        batch_render(b, &out);
        conn_reply_bulk(c, out.buf, out.len);
        sbuf_release(&out);
        return;
    }
    int rc = sub == 1 ? engine_batch_open(srv->engine, bid, now)
                      : engine_batch_commit(srv->engine, bid, now);
    if (rc != 0)
        batch_err(c, rc, bid);
    else if (sub == 1)
        batch_reply_bid(c, bid, server_commit(srv));
    else
        reply_ok(c, server_commit(srv));
}

/* TRACK SET {"jid","percent","desc","reserve_until"}: progress, and a longer reservation. */
static void track_set(struct conn *c, char *arg, size_t len)
{
    struct server *srv = c->srv;
    if (srv->is_readonly) {
        conn_reply_err(c, "changes are refused: the journal failed (%s)", srv->readonly_reason);
        return;
    }
    cJSON *o = parse_object(arg, len);
    const char *jid = o ? get_string(o, "jid") : NULL;
    cJSON *pct = cJSON_GetObjectItemCaseSensitive(o, "percent");
    cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "desc");
    cJSON *until = cJSON_GetObjectItemCaseSensitive(o, "reserve_until");
    int64_t until_ns = 0;
    const char *why;
    int ok = jid && *jid && (!pct || cJSON_IsNull(pct) || cJSON_IsNumber(pct)) &&
             (!desc || cJSON_IsNull(desc) || cJSON_IsString(desc)) &&
             (!until || cJSON_IsNull(until) ||
              (cJSON_IsString(until) &&
               (!*until->valuestring ||
                timefmt_parse(until->valuestring, strlen(until->valuestring), &until_ns, &why) == 0)));
    if (!ok) {
        cJSON_Delete(o);
        conn_reply_err(c, "invalid TRACK SET %.*s", (int)(len > 200 ? 200 : len), arg);
        return;
    }
    int percent = -1;
    if (cJSON_IsNumber(pct))
        percent = pct->valuedouble < 0 ? 0 : pct->valuedouble > 100 ? 100 : (int)pct->valuedouble;
    int rc = engine_track_set(srv->engine, jid, percent, cJSON_IsString(desc) ? desc->valuestring : NULL,
                              until_ns, server_now());
    if (rc != 0)
        conn_reply_err(c, "Job not found %.100s", jid);
    else
        reply_ok(c, server_commit(srv));
    cJSON_Delete(o);
}

/* TRACK GET <jid>: {"jid","percent","desc","state","updated_at"}. */
static void track_get(struct conn *c, const char *jid)
{
    struct track_info ti;
    engine_track_get(c->srv->engine, jid, &ti);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"jid\":");
    sbuf_add_json_str(&b, jid, strlen(jid));
    if (ti.percent >= 0)
        sbuf_addf(&b, ",\"percent\":%d", ti.percent);
    else
        sbuf_adds(&b, ",\"percent\":null");
    sbuf_adds(&b, ",\"desc\":");
    if (ti.desc)
        sbuf_add_json_str(&b, ti.desc, strlen(ti.desc));
    else
        sbuf_adds(&b, "null");
    sbuf_addf(&b, ",\"state\":\"%s\",\"updated_at\":", engine_track_state_name(ti.state));
    if (ti.updated_at_ns) {
        char ts[TIMEFMT_MAX];
        timefmt_format(ti.updated_at_ns, ts);
        sbuf_addf(&b, "\"%s\"}", ts);
    } else {
        sbuf_adds(&b, "null}");
    }
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
}

static void cmd_track(struct conn *c, char *arg, size_t len)
{
    char *sp = memchr(arg, ' ', len);
    size_t sublen = sp ? (size_t)(sp - arg) : len;
    char *rest = sp ? sp + 1 : NULL;
    size_t restlen = sp ? len - sublen - 1 : 0;
    int is_get = sublen == 3 && strncasecmp(arg, "GET", 3) == 0;
    int is_set = sublen == 3 && strncasecmp(arg, "SET", 3) == 0;
    if (!is_get && !is_set) {
        conn_reply_err(c, "no such TRACK subcommand: %.*s (GET or SET)", (int)(sublen > 100 ? 100 : sublen),
                       arg);
        return;
    }
    if (!restlen) {
        conn_reply_err(c, "TRACK %s needs %s", is_get ? "GET" : "SET",
                       is_get ? "a job id: TRACK GET <jid>" : "a JSON object: TRACK SET {\"jid\":\"...\"}");
        return;
    }
    if (is_set) {
        track_set(c, rest, restlen);
        return;
    }
    rest[restlen] = '\0'; /* the line buffer ends the argument; jids hold no spaces */
    track_get(c, rest);
}

/* CRON: the cron entries with their next and last fire times (spool only; docs/cron.md). */
static void cmd_cron(struct conn *c, char *arg, size_t len)
{
    (void)arg;
    (void)len;
    struct sbuf b;
    sbuf_init(&b);
    crond_list_json(c->srv, &b);
    conn_reply_bulk(c, b.buf, b.len);
    sbuf_release(&b);
}

struct command {
    const char *verb;
    void (*fn)(struct conn *c, char *arg, size_t len);
    const char *needs; /* usage when an argument is required, else NULL */
    int is_write;      /* refused once the journal has failed */
    int has_pg;        /* works with --store postgres */
};

static const struct command commands[] = {
    {"PUSH", cmd_push, "a job: PUSH {\"jid\":\"...\",\"jobtype\":\"...\",\"args\":[...]}", 1, 1},
    {"PUSHB", cmd_pushb, "a JSON array of jobs: PUSHB [{...},{...}]", 1, 1},
    {"FETCH", cmd_fetch, NULL, 0, 1},
    {"ACK", cmd_ack, "a job id: ACK {\"jid\":\"...\"}", 0, 1},
    {"FAIL", cmd_fail, "a failure: FAIL {\"jid\":\"...\",\"errtype\":\"...\",\"message\":\"...\"}", 0, 1},
    {"BEAT", cmd_beat, "a worker id: BEAT {\"wid\":\"...\"}", 0, 1},
    {"INFO", cmd_info, NULL, 0, 1},
    {"FLUSH", cmd_flush, NULL, 1, 1},
    {"END", cmd_end, NULL, 0, 1},
    {"QUEUE", cmd_queue, "a subcommand: QUEUE PAUSE|RESUME|REMOVE|LATENCY name...", 1, 1},
    {"MUTATE", cmd_mutate, "a JSON object: MUTATE {\"cmd\":\"...\",\"target\":\"...\"}", 1, 1},
    {"BATCH", cmd_batch, "a subcommand: BATCH NEW {...} | OPEN <bid> | COMMIT <bid> | STATUS <bid>", 0, 0},
    {"TRACK", cmd_track, "a subcommand: TRACK GET <jid> | TRACK SET {\"jid\":\"...\",\"percent\":N}", 0, 0},
    {"JOBS", cmd_jobs, "a JSON object: JOBS {\"target\":\"retries\",\"offset\":0,\"limit\":50}", 0, 1},
    {"WORKERS", cmd_workers, NULL, 0, 1},
    {"CRON", cmd_cron, NULL, 0, 0},
};

/* spool's batch verbs, advertised in the greeting; unknown commands under --plain-fwp. */
static const struct command native_commands[] = {
    {"FETCHN", cmd_fetchn, "a count and queues: FETCHN <n> queue...", 0, 1},
    {"ACKN", cmd_ackn, "job ids: ACKN {\"jids\":[\"...\"]}", 0, 1},
};

static const struct command *find_command(const struct server *srv, const char *verb, size_t vlen)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strlen(commands[i].verb) == vlen && memcmp(commands[i].verb, verb, vlen) == 0)
            return &commands[i];
    for (size_t i = 0; !srv->cfg.is_plain_fwp && i < sizeof native_commands / sizeof *native_commands; i++)
        if (strlen(native_commands[i].verb) == vlen && memcmp(native_commands[i].verb, verb, vlen) == 0)
            return &native_commands[i];
    return NULL;
}

void fwp_dispatch(struct conn *c, char *line, size_t len)
{
    struct server *srv = c->srv;
    char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    char *arg = sp ? sp + 1 : NULL;
    size_t arglen = sp ? len - vlen - 1 : 0;
    srv->command_count++;
    const struct command *cmd = find_command(srv, line, vlen);
    if (cmd && srv->pgsrv && !cmd->has_pg) {
        conn_reply_err(c, "%s is not available with the PostgreSQL store yet (docs/storage.md)", cmd->verb);
        return;
    }
    if (cmd) {
        if (cmd->needs && arglen == 0) {
            conn_reply_err(c, "%s needs %s", cmd->verb, cmd->needs);
            return;
        }
        if (cmd->is_write && srv->is_readonly) {
            conn_reply_err(c, "changes are refused: the journal failed (%s)", srv->readonly_reason);
            return;
        }
        cmd->fn(c, arg, arglen);
        server_schedule_tick(srv);
        return;
    }
    /* Echo the verb back printable: it may be any bytes at all. */
    char verb[65];
    size_t n = vlen > 64 ? 64 : vlen;
    for (size_t i = 0; i < n; i++)
        verb[i] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
    verb[n] = '\0';
    conn_reply_err(c, "unknown command %s", verb);
}
