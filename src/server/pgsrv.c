/*
 * pgsrv: spoold's PostgreSQL backend (see pgsrv.h). Each operation is one
 * statement (FAIL and reservation expiry: a read, then a conditional write
 * keyed by the reservation's lease), so nothing holds a transaction open
 * across round trips.
 */
#include "server/pgsrv.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "common/strmap.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "server/info.h"
#include "server/server.h"
#include "store/pg.h"
#include "store/pg_schema.h"

/* The maintenance cadence: due jobs move within this of their time. */
#define MAINT_INTERVAL_MS 250
/* Reservations expired per maintenance pass, and dead-set pruning cadence. */
#define EXPIRE_BATCH 100
#define PRUNE_EVERY_NS (60 * NS_PER_S)
/* The leader lock: one maintenance runner per database. */
#define LEADER_KEY INT64_C(7419007420002)

enum op_kind {
    OP_PLAIN, OP_PUSH, OP_PUSHB, OP_FETCH, OP_FAIL_READ, OP_FAIL_WRITE, OP_INFO,
    OP_PUSH_GROUP, OP_ACK_GROUP, /* coalesced PUSHes / ACKs: one statement, several callers */
    OP_LIST, OP_MUTATE_SCAN,      /* a page of a set; MUTATE's glob: candidates first */
    OP_WORKERS,                   /* this server's workers, busy counts from the database */
};

/*
 * Operations held back while every pool session was busy; the next idle
 * session runs them all as one statement (one commit), so under load many
 * PUSHes or ACKs share a WAL flush, as the journal's group commit does.
 */
struct group {
    struct pgop **ops;
    size_t n, cap;
    struct sbuf args; /* PUSH: JSON array elements; ACK: text[] elements */
    struct sbuf expires; /* PUSH: each job's expiry, a parallel JSON array */
};

struct pgop {
    struct pgsrv *p;
    enum op_kind kind;
    pgsrv_done_fn done;
    void *arg;
    char *jid;                          /* FAIL */
    char *errtype, *message, *backtrace; /* FAIL */
    struct pgop **members;              /* OP_*_GROUP: the callers served */
    size_t nmembers;
    char *glob;                         /* OP_LIST, OP_MUTATE_SCAN: filtered here */
    char *cmd, *state;                  /* OP_MUTATE_SCAN */
    size_t offset, limit;               /* OP_LIST */
    int with_at;                        /* OP_LIST */
};

struct pgsrv {
    struct server *srv;
    struct pg *pg;
    struct pgwaiter *waiters;
    struct event *maint_ev;
    int64_t last_prune_ns;
    uint32_t rand;
    int maint_pending; /* statements of the current maintenance pass still running */
    struct group pushes, acks;
};

static uint32_t next_rand(struct pgsrv *p)
{
    p->rand = p->rand * 1103515245u + 12345u;
    return p->rand >> 8;
}

static struct pgop *op_new(struct pgsrv *p, enum op_kind kind, pgsrv_done_fn done, void *arg)
{
    struct pgop *op = xcalloc(1, sizeof *op);
    op->p = p;
    op->kind = kind;
    op->done = done;
    op->arg = arg;
    return op;
}

static void op_free(struct pgop *op)
{
    free(op->members);
    free(op->glob);
    free(op->cmd);
    free(op->state);
    free(op->jid);
    free(op->errtype);
    free(op->message);
    free(op->backtrace);
    free(op);
}

static void op_finish(struct pgop *op, int rc, const char *msg, const char *out, size_t outlen)
{
    if (op->done)
        op->done(op->arg, rc, msg, out, outlen);
    op_free(op);
}

void pgsrv_cancel(struct pgop *op)
{
    op->done = NULL;
}

/* A failed statement's message, one line, without libpq's "ERROR:  " prefix. */
static void result_error(const PGresult *res, const char *err, char *out, size_t outlen)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(out, outlen, "PostgreSQL: %s", m ? m : err ? err : "the statement failed");
    for (char *c = out; *c; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
}

static int result_ok(const PGresult *res)
{
    return res && (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK);
}

/* When the statement failed: finishes op with its error and returns 1. */
static int op_failed(struct pgop *op, const PGresult *res, const char *err)
{
    if (result_ok(res))
        return 0;
    char msg[600];
    result_error(res, err, msg, sizeof msg);
    op_finish(op, -1, msg, NULL, 0);
    return 1;
}

/* spool.unique_take's refusal; its message is the FWP error, code first. */
#define SQLSTATE_NOT_UNIQUE "SP001"

static int result_is(const PGresult *res, const char *sqlstate)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, sqlstate) == 0;
}

/* Appends a PostgreSQL text[] literal: {"a","b"} with " and \ escaped. */
static void array_literal(struct sbuf *b, const char *const *v, size_t n)
{
    sbuf_add(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_add(b, ",", 1);
        sbuf_add(b, "\"", 1);
        for (const char *c = v[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                sbuf_add(b, "\\", 1);
            sbuf_add(b, c, 1);
        }
        sbuf_add(b, "\"", 1);
    }
    sbuf_add(b, "}", 1);
}

/* ---- completions ---- */

static void on_done(void *arg, PGresult *res, const char *err);

static struct pgop *run(struct pgop *op, const char *sql, int n, const char *const *params)
{
    pg_query(op->p->pg, sql, n, params, on_done, op);
    return op;
}

static void push_done(struct pgop *op, PGresult *res, const char *err)
{
    char msg[600];
    if (result_ok(res)) {
        op_finish(op, 0, NULL, NULL, 0);
    } else if (result_is(res, "23505")) {
        result_error(res, err, msg, sizeof msg);
        op_finish(op, PUSH_JID_IN_USE, msg + strlen("PostgreSQL: "), NULL, 0);
    } else if (result_is(res, SQLSTATE_NOT_UNIQUE)) {
        result_error(res, err, msg, sizeof msg);
        op_finish(op, PUSH_NOT_UNIQUE, msg + strlen("PostgreSQL: "), NULL, 0);
    } else {
        result_error(res, err, msg, sizeof msg);
        op_finish(op, -1, msg, NULL, 0);
    }
}

static void pushb_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    cJSON *errors = cJSON_CreateObject();
    for (int i = 0; i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, 1)) {
            const char *jid = PQgetvalue(res, i, 0);
            cJSON_DeleteItemFromObjectCaseSensitive(errors, jid);
            cJSON_AddStringToObject(errors, jid, PQgetvalue(res, i, 1));
        }
    char *text = cJSON_PrintUnformatted(errors);
    op_finish(op, 0, NULL, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(errors);
}

static void fetch_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    struct sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < PQntuples(res); i++) {
        if (i)
            sbuf_add(&b, "\n", 1);
        sbuf_add(&b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    }
    op_finish(op, 0, NULL, b.len ? b.buf : "", b.len);
    sbuf_release(&b);
}

static void apply_failure(struct pgop *op, const char *payload, size_t len, const char *lease);

static void fail_read_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    if (PQntuples(res) != 1) {
        char msg[600];
        snprintf(msg, sizeof msg, "Job not found %.100s", op->jid);
        op_finish(op, -1, msg, NULL, 0);
        return;
    }
    apply_failure(op, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), PQgetvalue(res, 0, 1));
}

static void fail_write_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        /* acknowledged, failed or expired while we decided */
        char msg[600];
        snprintf(msg, sizeof msg, "Job not found %.100s", op->jid);
        op_finish(op, -1, msg, NULL, 0);
    } else {
        op_finish(op, 0, NULL, NULL, 0);
    }
}

static void info_done(struct pgop *op, PGresult *res, const char *err)
{
    char msg[600];
    if (!result_ok(res) || PQntuples(res) != 1) {
        result_error(res, err, msg, sizeof msg);
        op_finish(op, -1, msg, NULL, 0);
        return;
    }
    cJSON *counts = cJSON_Parse(PQgetvalue(res, 0, 0));
    struct sbuf b;
    sbuf_init(&b);
    info_render_store(op->p->srv, counts, &b);
    cJSON_Delete(counts);
    op_finish(op, 0, NULL, b.buf, b.len);
    sbuf_release(&b);
}

static void plain_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    if (PQntuples(res) >= 1 && PQnfields(res) >= 1 && !PQgetisnull(res, 0, 0)) {
        op_finish(op, 0, NULL, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    } else {
        op_finish(op, 0, NULL, "", 0);
    }
}

/* A coalesced statement finished: each member gets its own answer. */
static void group_done(struct pgop *op, PGresult *res, const char *err)
{
    char msg[600];
    int is_ok = result_ok(res);
    if (!is_ok)
        result_error(res, err, msg, sizeof msg);
    int *rcs = xcalloc(op->nmembers, sizeof *rcs);
    char **msgs = xcalloc(op->nmembers, sizeof *msgs);
    for (int i = 0; is_ok && op->kind == OP_PUSH_GROUP && i < PQntuples(res); i++) {
        long long pos = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (pos < 1 || (size_t)pos > op->nmembers)
            continue;
        const char *state = PQgetvalue(res, i, 2);
        rcs[pos - 1] = strcmp(state, "23505") == 0                 ? PUSH_JID_IN_USE
                       : strcmp(state, SQLSTATE_NOT_UNIQUE) == 0 ? PUSH_NOT_UNIQUE
                                                                  : -1;
        free(msgs[pos - 1]);
        msgs[pos - 1] = xstrdup(PQgetvalue(res, i, 3));
    }
    for (size_t i = 0; i < op->nmembers; i++) {
        if (!is_ok)
            op_finish(op->members[i], -1, msg, NULL, 0);
        else
            op_finish(op->members[i], rcs[i], msgs[i], NULL, 0);
        free(msgs[i]);
    }
    free(rcs);
    free(msgs);
    op_free(op);
}

static void list_done(struct pgop *op, PGresult *res, const char *err);
static void workers_done(struct pgop *op, PGresult *res, const char *err);

static void on_done(void *arg, PGresult *res, const char *err)
{
    struct pgop *op = arg;
    switch (op->kind) {
    case OP_PUSH_GROUP:
    case OP_ACK_GROUP: group_done(op, res, err); break;
    case OP_LIST:
    case OP_MUTATE_SCAN: list_done(op, res, err); break;
    case OP_WORKERS: workers_done(op, res, err); break;
    case OP_PUSH: push_done(op, res, err); break;
    case OP_PUSHB: pushb_done(op, res, err); break;
    case OP_FETCH: fetch_done(op, res, err); break;
    case OP_FAIL_READ: fail_read_done(op, res, err); break;
    case OP_FAIL_WRITE: fail_write_done(op, res, err); break;
    case OP_INFO: info_done(op, res, err); break;
    case OP_PLAIN: plain_done(op, res, err); break;
    }
}

/* ---- operations ---- */

static void group_add(struct group *g, struct pgop *op)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->ops = xrealloc(g->ops, g->cap * sizeof *g->ops);
    }
    g->ops[g->n++] = op;
}

/* Sends the held PUSHes (then ACKs) as one statement each; called when a session is idle. */
static void on_idle(void *arg)
{
    struct pgsrv *p = arg;
    struct group *g = p->pushes.n ? &p->pushes : p->acks.n ? &p->acks : NULL;
    if (!g)
        return;
    int is_push = g == &p->pushes;
    struct pgop *op = op_new(p, is_push ? OP_PUSH_GROUP : OP_ACK_GROUP, NULL, NULL);
    op->members = g->ops;
    op->nmembers = g->n;
    sbuf_add(&g->args, is_push ? "]" : "}", 1);
    if (is_push)
        sbuf_add(&g->expires, "]", 1);
    const char *params[2] = {g->args.buf, g->expires.buf};
    run(op, is_push ? "SELECT pos, pushed_jid, error_code, error FROM spool.push_each($1::jsonb, $2::jsonb)"
                    : "SELECT spool.ack($1::text[])",
        is_push ? 2 : 1, params);
    sbuf_release(&g->args);
    sbuf_release(&g->expires);
    memset(g, 0, sizeof *g);
}

/* The job's expiry as an RFC 3339 text for spool.push, or NULL. */
static const char *expiry_text(const struct job *job, char buf[TIMEFMT_MAX])
{
    if (!job_extra(job)->expires_at_ns)
        return NULL;
    timefmt_format(job_extra(job)->expires_at_ns, buf);
    return buf;
}

/* Appends the job's expiry to a JSON array being built: a string or null. */
static void expiry_json(struct sbuf *b, const struct job *job)
{
    char buf[TIMEFMT_MAX];
    const char *t = expiry_text(job, buf);
    if (t)
        sbuf_add_json_str(b, t, strlen(t));
    else
        sbuf_adds(b, "null");
}

const char *pgsrv_job_unsupported(const struct job *job)
{
    char *bid = batch_bid_of(job);
    free(bid);
    if (bid)
        return "batches (custom.bid) are not available with the PostgreSQL store yet";
    return NULL;
}

struct pgop *pgsrv_push(struct pgsrv *p, struct job *job, pgsrv_done_fn done, void *arg)
{
    struct pgop *op = op_new(p, OP_PUSH, done, arg);
    if (pg_has_idle(p->pg) && !p->pushes.n) {
        struct sbuf b;
        sbuf_init(&b);
        job_render(job, &b);
        char exp[TIMEFMT_MAX];
        const char *params[2] = {b.buf, expiry_text(job, exp)};
        run(op, "SELECT spool.push($1::jsonb, $2::timestamptz)", 2, params);
        job_free(job);
        sbuf_release(&b);
        return op;
    }
    struct group *g = &p->pushes;
    sbuf_add(&g->args, g->n ? "," : "[", 1);
    job_render(job, &g->args);
    sbuf_add(&g->expires, g->n ? "," : "[", 1);
    expiry_json(&g->expires, job);
    job_free(job);
    group_add(g, op);
    return op;
}

struct pgop *pgsrv_push_many(struct pgsrv *p, struct job **jobs, size_t n, pgsrv_done_fn done,
                             void *arg)
{
    struct sbuf b, exp;
    sbuf_init(&b);
    sbuf_init(&exp);
    sbuf_add(&b, "[", 1);
    sbuf_add(&exp, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            sbuf_add(&b, ",", 1);
            sbuf_add(&exp, ",", 1);
        }
        job_render(jobs[i], &b);
        expiry_json(&exp, jobs[i]);
        job_free(jobs[i]);
    }
    sbuf_add(&b, "]", 1);
    sbuf_add(&exp, "]", 1);
    free(jobs);
    const char *params[2] = {b.buf, exp.buf};
    struct pgop *op = run(op_new(p, OP_PUSHB, done, arg),
                          "SELECT pushed_jid, error FROM spool.push_each($1::jsonb, $2::jsonb)", 2, params);
    sbuf_release(&b);
    sbuf_release(&exp);
    return op;
}

struct pgop *pgsrv_fetch(struct pgsrv *p, const char *const *queues, int n, const char *wid, int max,
                         pgsrv_done_fn done, void *arg)
{
    struct sbuf b;
    sbuf_init(&b);
    array_literal(&b, queues, (size_t)n);
    char maxs[16];
    snprintf(maxs, sizeof maxs, "%d", max);
    const char *params[3] = {b.buf, wid ? wid : "", maxs};
    struct pgop *op = run(op_new(p, OP_FETCH, done, arg),
                          "SELECT fetched_payload::text FROM spool.fetch($1::text[], $2, $3::integer)",
                          3, params);
    sbuf_release(&b);
    return op;
}

struct pgop *pgsrv_ack_one(struct pgsrv *p, const char *jid, pgsrv_done_fn done, void *arg)
{
    if (!pg_has_idle(p->pg) || p->acks.n) { /* held for the next idle session */
        const char *const *jids = &jid;
        struct pgop *op = op_new(p, OP_PLAIN, done, arg);
        struct group *g = &p->acks;
        sbuf_add(&g->args, g->n ? "," : "{", 1);
        struct sbuf one;
        sbuf_init(&one);
        array_literal(&one, jids, 1);
        sbuf_add(&g->args, one.buf + 1, one.len - 2); /* the element, without the braces */
        sbuf_release(&one);
        group_add(g, op);
        return op;
    }
    return pgsrv_ack(p, &jid, 1, done, arg);
}

struct pgop *pgsrv_ack(struct pgsrv *p, const char *const *jids, size_t n, pgsrv_done_fn done, void *arg)
{
    struct sbuf b;
    sbuf_init(&b);
    array_literal(&b, jids, n);
    const char *params[1] = {b.buf};
    struct pgop *op = run(op_new(p, OP_PLAIN, done, arg), "SELECT spool.ack($1::text[])", 1, params);
    sbuf_release(&b);
    return op;
}

struct pgop *pgsrv_fail(struct pgsrv *p, const char *jid, const char *errtype, const char *message,
                        const char *backtrace_json, pgsrv_done_fn done, void *arg)
{
    struct pgop *op = op_new(p, OP_FAIL_READ, done, arg);
    op->jid = xstrdup(jid);
    op->errtype = errtype ? xstrdup(errtype) : NULL;
    op->message = message ? xstrdup(message) : NULL;
    op->backtrace = backtrace_json ? xstrdup(backtrace_json) : NULL;
    const char *params[1] = {jid};
    return run(op,
               "SELECT payload::text, lease FROM spool.jobs WHERE jid = $1 AND state = 'working'",
               1, params);
}

/* Decides a failure with the shared policy (job_fail) and writes it under the lease read. */
static void apply_failure(struct pgop *op, const char *payload, size_t len, const char *lease)
{
    char err[JOB_ERR_MAX];
    struct job *job;
    int64_t now = server_now();
    if (job_parse(payload, len, now, &job, err) != 0) {
        char msg[JOB_ERR_MAX + 160];
        snprintf(msg, sizeof msg, "stored job %.100s cannot be read: %s", op->jid, err);
        op_finish(op, -1, msg, NULL, 0);
        return;
    }
    const char *state = "dead";
    char run_at[TIMEFMT_MAX];
    timefmt_format(now, run_at);
    switch (job_fail(job, op->errtype, op->message, op->backtrace, now, next_rand(op->p) % 30)) {
    case JOB_FAIL_RETRY:
        state = "retry";
        timefmt_format(job->failure->next_at_ns, run_at);
        break;
    case JOB_FAIL_DEAD: break;
    case JOB_FAIL_DISCARD: state = "discard"; break;
    }
    job->enqueued_at_ns = 0; /* set again when it is next enqueued */
    struct sbuf b;
    sbuf_init(&b);
    job_render(job, &b);
    job_free(job);
    op->kind = OP_FAIL_WRITE;
    char dead_max[32];
    snprintf(dead_max, sizeof dead_max, "%zu", op->p->srv->cfg.dead_max);
    const char *params[6] = {op->jid, lease, state, run_at, b.buf, dead_max};
    run(op, "SELECT spool.fail($1, $2::bigint, $3, $4::timestamptz, $5::jsonb, $6::bigint)", 6, params);
    sbuf_release(&b);
}

struct pgop *pgsrv_info(struct pgsrv *p, pgsrv_done_fn done, void *arg)
{
    return run(op_new(p, OP_INFO, done, arg), "SELECT spool.info()::text", 0, NULL);
}

struct pgop *pgsrv_exec(struct pgsrv *p, const char *sql, int nparams, const char *const *params,
                        pgsrv_done_fn done, void *arg)
{
    return run(op_new(p, OP_PLAIN, done, arg), sql, nparams, params);
}


/* ---- listing and MUTATE ---- */

static enum job_state state_of(const char *state)
{
    return !strcmp(state, "scheduled") ? JOB_SCHEDULED
           : !strcmp(state, "retry")   ? JOB_RETRY
           : !strcmp(state, "dead")    ? JOB_DEAD
           : !strcmp(state, "working") ? JOB_WORKING
                                       : JOB_ENQUEUED;
}

/* A row of spool.list as the engine's job, for the shared filter and rendering. */
static struct job *row_job(PGresult *res, int i, const char *state)
{
    char err[JOB_ERR_MAX];
    struct job *job;
    if (job_parse(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), server_now(), &job, err) != 0) {
        log_warn("msg=\"a stored job cannot be read\" error=\"%s\"", err);
        return NULL;
    }
    job->state = state_of(state);
    job->tnode.score_ns = strtoll(PQgetvalue(res, i, 2), NULL, 10) * 1000;
    if (job->state == JOB_DEAD) { /* listed, as by the journal store, with when it will be pruned */
        struct engine_config ec;
        engine_config_defaults(&ec);
        job->tnode.score_ns += ec.dead_ttl_ns;
    }
    if (job->state == JOB_WORKING) {
        job->wid = xstrdup(PQgetvalue(res, i, 3));
        job->reserved_at_ns = strtoll(PQgetvalue(res, i, 4), NULL, 10) * 1000;
    }
    return job;
}

static void mutate_run(struct pgop *op, const char *jids_literal, const char *jobtype);

static void list_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    struct mutate_filter f = {.glob = op->glob};
    struct sbuf scratch, out, jids;
    sbuf_init(&scratch);
    sbuf_init(&out);
    sbuf_init(&jids);
    sbuf_adds(&out, "{\"jobs\":[");
    size_t total = PQntuples(res) ? (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    size_t matched = 0, shown = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        struct job *job = row_job(res, i, op->state);
        if (!job)
            continue;
        if (op->glob && !job_filter_match(job, &f, &scratch)) {
            job_free(job);
            continue;
        }
        if (op->kind == OP_MUTATE_SCAN) {
            sbuf_add(&jids, jids.len ? "," : "{", 1);
            sbuf_add(&jids, "\"", 1);
            for (const char *c = job->jid; *c; c++) {
                if (*c == '"' || *c == '\\')
                    sbuf_add(&jids, "\\", 1);
                sbuf_add(&jids, c, 1);
            }
            sbuf_add(&jids, "\"", 1);
        } else if (!op->glob || (matched >= op->offset && matched - op->offset < op->limit)) {
            if (shown++)
                sbuf_add(&out, ",", 1);
            info_render_list_entry(&out, job, op->with_at);
        }
        matched++;
        job_free(job);
    }
    if (op->glob)
        total = matched;
    if (op->kind == OP_MUTATE_SCAN) {
        if (!jids.len) {
            op_finish(op, 0, NULL, "0", 1);
        } else {
            sbuf_add(&jids, "}", 1);
            mutate_run(op, jids.buf, NULL);
        }
    } else {
        sbuf_addf(&out, "],\"total\":%zu,\"offset\":%zu,\"limit\":%zu}", total, op->offset, op->limit);
        op_finish(op, 0, NULL, out.buf, out.len);
    }
    sbuf_release(&scratch);
    sbuf_release(&out);
    sbuf_release(&jids);
}

static void filter_jids(struct sbuf *b, const struct mutate_filter *f)
{
    array_literal(b, f->jids, (size_t)f->n_jids);
}

static void list_query(struct pgop *op, const char *queue, const struct mutate_filter *f, int is_all)
{
    struct sbuf jids;
    sbuf_init(&jids);
    int has_jids = f && f->n_jids > 0;
    if (has_jids)
        filter_jids(&jids, f);
    char offset[32], limit[32]; /* bigint parameters: larger pages mean "all" anyway */
    snprintf(offset, sizeof offset, "%zu", is_all ? 0 : op->offset > INT64_MAX ? (size_t)INT64_MAX : op->offset);
    snprintf(limit, sizeof limit, "%zu", op->limit > INT64_MAX ? (size_t)INT64_MAX : op->limit);
    const char *params[6] = {op->state, queue, has_jids ? jids.buf : NULL,
                             !has_jids && f && f->jobtype && *f->jobtype ? f->jobtype : NULL, offset,
                             is_all ? NULL : limit};
    run(op,
        "SELECT total, payload, at_us, wid, reserved_at_us FROM "
        "spool.list($1, $2, $3::text[], $4, $5::bigint, $6::bigint)",
        6, params);
    sbuf_release(&jids);
}

struct pgop *pgsrv_list(struct pgsrv *p, const char *state, const char *queue,
                        const struct mutate_filter *f, size_t offset, size_t limit, int with_at,
                        pgsrv_done_fn done, void *arg)
{
    struct pgop *op = op_new(p, OP_LIST, done, arg);
    op->state = xstrdup(state);
    op->offset = offset;
    op->limit = limit;
    op->with_at = with_at;
    int has_glob = f && f->n_jids == 0 && f->glob && *f->glob;
    if (has_glob)
        op->glob = xstrdup(f->glob);
    list_query(op, queue, f, has_glob);
    return op;
}

static void mutate_run(struct pgop *op, const char *jids_literal, const char *jobtype)
{
    op->kind = OP_PLAIN;
    char dead_max[32];
    snprintf(dead_max, sizeof dead_max, "%zu", op->p->srv->cfg.dead_max);
    const char *params[5] = {op->cmd, op->state, jids_literal, jobtype, dead_max};
    run(op, "SELECT spool.mutate($1, $2, $3::text[], $4, $5::bigint)", 5, params);
}

struct pgop *pgsrv_mutate(struct pgsrv *p, const char *cmd, const char *state,
                          const struct mutate_filter *f, pgsrv_done_fn done, void *arg)
{
    struct pgop *op = op_new(p, OP_MUTATE_SCAN, done, arg);
    op->cmd = xstrdup(cmd);
    op->state = xstrdup(state);
    if (strcmp(cmd, "clear") == 0) /* the whole set, whatever the filter */
        f = NULL;
    if (f && f->n_jids == 0 && f->glob && *f->glob) { /* the glob is matched here, as the engine does */
        op->glob = xstrdup(f->glob);
        list_query(op, NULL, f, 1);
        return op;
    }
    struct sbuf jids;
    sbuf_init(&jids);
    int has_jids = f && f->n_jids > 0;
    if (has_jids)
        filter_jids(&jids, f);
    mutate_run(op, has_jids ? jids.buf : NULL,
               !has_jids && f && f->jobtype && *f->jobtype ? f->jobtype : NULL);
    sbuf_release(&jids);
    return op;
}

static void workers_done(struct pgop *op, PGresult *res, const char *err)
{
    if (op_failed(op, res, err))
        return;
    struct strmap busy;
    strmap_init(&busy);
    for (int i = 0; i < PQntuples(res); i++)
        strmap_put(&busy, PQgetvalue(res, i, 0), (void *)(uintptr_t)strtoull(PQgetvalue(res, i, 1), NULL, 10));
    struct sbuf b;
    sbuf_init(&b);
    info_render_workers_busy(op->p->srv, &busy, &b);
    strmap_release(&busy);
    op_finish(op, 0, NULL, b.buf, b.len);
    sbuf_release(&b);
}

struct pgop *pgsrv_workers(struct pgsrv *p, pgsrv_done_fn done, void *arg)
{
    struct sbuf wids;
    sbuf_init(&wids);
    sbuf_add(&wids, "{", 1);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&p->srv->engine->workers, &i, &key, &val);) {
        const char *one[1] = {key};
        struct sbuf e;
        sbuf_init(&e);
        array_literal(&e, one, 1);
        if (wids.len > 1)
            sbuf_add(&wids, ",", 1);
        sbuf_add(&wids, e.buf + 1, e.len - 2);
        sbuf_release(&e);
    }
    sbuf_add(&wids, "}", 1);
    const char *params[1] = {wids.buf};
    struct pgop *op = run(op_new(p, OP_WORKERS, done, arg),
                          "SELECT reserved_by, count(*) FROM spool.jobs WHERE state = 'working' "
                          "AND reserved_by = ANY ($1::text[]) GROUP BY reserved_by",
                          1, params);
    sbuf_release(&wids);
    return op;
}

/* ---- blocked fetchers ---- */

void pgsrv_wait(struct pgsrv *p, struct pgwaiter *w)
{
    if (w->is_waiting)
        return;
    w->prev = NULL;
    w->next = p->waiters;
    if (p->waiters)
        p->waiters->prev = w;
    p->waiters = w;
    w->is_waiting = 1;
}

void pgsrv_unwait(struct pgsrv *p, struct pgwaiter *w)
{
    if (!w->is_waiting)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->is_waiting = 0;
}

static void on_notify(void *arg, const char *queue)
{
    struct pgsrv *p = arg;
    for (struct pgwaiter *w = p->waiters, *next; w; w = next) {
        next = w->next;
        for (int i = 0; i < w->nqueues; i++)
            if (!queue || strcmp(w->queues[i], queue) == 0) {
                if (w->is_claiming)
                    w->has_missed = 1;
                else
                    w->wake(w);
                break;
            }
    }
}

/* ---- maintenance (leader only) ---- */

static void maint_arm(struct pgsrv *p)
{
    struct timeval tv = {0, MAINT_INTERVAL_MS * 1000};
    evtimer_add(p->maint_ev, &tv);
}

static void maint_step_done(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct pgsrv *p = arg;
    (void)out;
    (void)outlen;
    if (rc != 0)
        log_warn("msg=\"maintenance statement failed\" error=\"%s\"", msg);
    if (--p->maint_pending == 0 && pg_is_leader(p->pg))
        maint_arm(p);
}

static const char *const expiry_msg = "Faktory job reservation expired";

static void expired_done(void *arg, PGresult *res, const char *err)
{
    struct pgsrv *p = arg;
    if (!result_ok(res)) {
        char msg[600];
        result_error(res, err, msg, sizeof msg);
        maint_step_done(p, -1, msg, NULL, 0);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        struct pgop *op = op_new(p, OP_FAIL_WRITE, maint_step_done, p);
        op->jid = xstrdup(PQgetvalue(res, i, 0));
        op->errtype = xstrdup("ReservationExpired");
        op->message = xstrdup(expiry_msg);
        p->maint_pending++;
        log_info("msg=\"reservation expired\" jid=%s", op->jid);
        apply_failure(op, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), PQgetvalue(res, i, 2));
    }
    maint_step_done(p, 0, NULL, NULL, 0);
}

static void on_maint(evutil_socket_t fd, short what, void *arg)
{
    struct pgsrv *p = arg;
    (void)fd;
    (void)what;
    if (!pg_is_leader(p->pg) || p->maint_pending)
        return;
    p->maint_pending = 3;
    pgsrv_exec(p, "SELECT spool.promote(1000)", 0, NULL, maint_step_done, p);
    pgsrv_exec(p, "SELECT spool.unique_prune()", 0, NULL, maint_step_done, p);
    pg_query(p->pg,
             "SELECT jid, payload::text, lease FROM spool.jobs WHERE state = 'working' AND "
             "reserved_until <= clock_timestamp() ORDER BY reserved_until LIMIT " "100",
             0, NULL, expired_done, p);
    int64_t now = server_now();
    if (now - p->last_prune_ns >= PRUNE_EVERY_NS) {
        p->last_prune_ns = now;
        struct engine_config ec;
        engine_config_defaults(&ec);
        char ttl[32], max[32];
        snprintf(ttl, sizeof ttl, "%lld seconds", (long long)(ec.dead_ttl_ns / NS_PER_S));
        snprintf(max, sizeof max, "%zu", p->srv->cfg.dead_max);
        const char *params[2] = {ttl, max};
        p->maint_pending++;
        pgsrv_exec(p, "SELECT spool.prune_dead($1::interval, $2::bigint)", 2, params, maint_step_done, p);
    }
}

static void on_leader(void *arg, int is_leader)
{
    struct pgsrv *p = arg;
    if (is_leader && !p->maint_pending)
        maint_arm(p);
}

int pgsrv_is_leader(const struct pgsrv *p)
{
    return pg_is_leader(p->pg);
}

/* ---- start and stop ---- */

int pgsrv_init(struct server *srv)
{
    struct pgsrv *p = xcalloc(1, sizeof *p);
    p->srv = srv;
    p->rand = (uint32_t)server_now();
    char err[600];
    struct pg_options opt = {
        .url = srv->cfg.store,
        .pool = srv->cfg.pg_pool,
        .channel = "spool_push",
        .on_notify = on_notify,
        .leader_key = LEADER_KEY,
        .on_leader = on_leader,
        .on_idle = on_idle,
        .arg = p,
    };
    p->pg = pg_new(srv->base, &opt, err, sizeof err);
    if (!p->pg) {
        log_error("msg=\"%s\"", err);
        free(p);
        return -1;
    }
    int version = pg_schema_migrate(p->pg, err, sizeof err);
    if (version < 0) {
        log_error("msg=\"cannot prepare the PostgreSQL schema\" error=\"%s\"", err);
        pgsrv_free(p);
        return -1;
    }
    p->maint_ev = evtimer_new(srv->base, on_maint, p);
    srv->pgsrv = p;
    log_info("msg=\"PostgreSQL store ready\" schema_version=%d pool=%d", version, srv->cfg.pg_pool);
    return 0;
}

void pgsrv_free(struct pgsrv *p)
{
    if (!p)
        return;
    struct group *groups[2] = {&p->pushes, &p->acks};
    for (int k = 0; k < 2; k++) { /* held, never sent: their callers are gone by now */
        for (size_t i = 0; i < groups[k]->n; i++)
            op_finish(groups[k]->ops[i], -1, "spoold is stopping", NULL, 0);
        free(groups[k]->ops);
        sbuf_release(&groups[k]->args);
        sbuf_release(&groups[k]->expires);
    }
    pg_free(p->pg); /* before the timer: a finishing maintenance step may re-arm it */
    if (p->maint_ev)
        event_free(p->maint_ev);
    free(p);
}
