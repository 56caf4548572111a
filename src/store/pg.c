/*
 * pg: an asynchronous libpq pool on libevent (see pg.h).
 *
 * Each session is a small state machine: CONNECTING (PQconnectPoll driven by
 * socket events), IDLE, BUSY (a query sent, results read as the socket turns
 * readable) and DOWN (waiting for a reconnect timer). The socket of a
 * session can change across reconnects, so its event is rebuilt each time.
 */
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/xalloc.h"

enum sess_kind { SESS_POOL, SESS_LISTEN, SESS_LEADER };
enum sess_state { SESS_DOWN, SESS_CONNECTING, SESS_IDLE, SESS_BUSY };

struct pg_req {
    struct pg_req *next;
    char *sql;
    int nparams;
    char **params;
    pg_done_fn fn;
    void *arg;
    int is_internal; /* LISTEN or a leader probe: handled by the session itself */
};

struct sess {
    struct pg *pg;
    enum sess_kind kind;
    enum sess_state state;
    PGconn *conn;
    struct event *ev;    /* socket readiness */
    struct event *timer; /* reconnect delay; leader probes */
    struct pg_req *req;  /* running query */
    PGresult *res;       /* the result kept so far for req */
    int retry_ms;
    int is_leader;
};

struct pg {
    struct event_base *base;
    struct pg_options opt;
    char *url;
    char *channel;
    struct sess *pool;
    int npool;
    struct sess listen, leader;
    struct pg_req *head, *tail; /* waiting for a pool session */
    size_t nqueued;
    int is_closing;
    int is_started; /* pg_new has returned: a listener coming up again is a reconnection */
};

static void sess_io(evutil_socket_t fd, short what, void *arg);
static void sess_start_next(struct sess *s);
static void sess_connect(struct sess *s);

static void req_free(struct pg_req *r)
{
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    free(r->params);
    free(r->sql);
    free(r);
}

static struct pg_req *req_new(const char *sql, int nparams, const char *const *params, pg_done_fn fn,
                              void *arg)
{
    struct pg_req *r = xcalloc(1, sizeof *r);
    r->sql = xstrdup(sql);
    r->nparams = nparams;
    if (nparams > 0) {
        r->params = xcalloc((size_t)nparams, sizeof *r->params);
        for (int i = 0; i < nparams; i++)
            r->params[i] = params[i] ? xstrdup(params[i]) : NULL;
    }
    r->fn = fn;
    r->arg = arg;
    return r;
}

static const char *sess_name(const struct sess *s)
{
    return s->kind == SESS_LISTEN ? "listener" : s->kind == SESS_LEADER ? "leader" : "pool";
}

/* Re-arms the socket event for what libpq waits on (fd may have changed). */
static void sess_watch(struct sess *s, short what)
{
    if (s->ev)
        event_free(s->ev);
    s->ev = event_new(s->pg->base, PQsocket(s->conn), what | EV_PERSIST, sess_io, s);
    event_add(s->ev, NULL);
}

static void req_finish(struct pg_req *r, PGresult *res, const char *err)
{
    if (r->fn)
        r->fn(r->arg, res, err);
    req_free(r);
}

static void leader_set(struct sess *s, int is_leader)
{
    if (s->is_leader == is_leader)
        return;
    s->is_leader = is_leader;
    log_info("msg=\"%s\"", is_leader ? "this server now runs maintenance (leader lock taken)"
                                     : "leader lock lost: maintenance stops here");
    if (s->pg->opt.on_leader)
        s->pg->opt.on_leader(s->pg->opt.arg, is_leader);
}

/* The session broke: fail its query, drop the connection, retry later. */
static void sess_down(struct sess *s, const char *why)
{
    char one_line[300]; /* libpq's messages end in (and may hold) newlines */
    snprintf(one_line, sizeof one_line, "%s", why);
    for (char *c = one_line; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '"')
            *c = ' ';
    why = one_line;
    log_warn("msg=\"PostgreSQL connection lost\" session=%s error=\"%s\"", sess_name(s), why);
    if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (s->res) {
        PQclear(s->res);
        s->res = NULL;
    }
    struct pg_req *r = s->req;
    s->req = NULL;
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    s->state = SESS_DOWN;
    if (s->kind == SESS_LEADER)
        leader_set(s, 0);
    if (s->retry_ms < 100)
        s->retry_ms = 100;
    else if (s->retry_ms < 2000)
        s->retry_ms *= 2;
    struct timeval tv = {s->retry_ms / 1000, (s->retry_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
    if (r) {
        char msg[340];
        snprintf(msg, sizeof msg, "PostgreSQL connection lost: %s", why);
        if (r->is_internal)
            req_free(r);
        else
            req_finish(r, NULL, msg);
    }
}

static void sess_send(struct sess *s, struct pg_req *r)
{
    s->req = r;
    s->state = SESS_BUSY;
    int ok = r->nparams > 0
                 ? PQsendQueryParams(s->conn, r->sql, r->nparams, NULL, (const char *const *)r->params,
                                     NULL, NULL, 0)
                 : PQsendQuery(s->conn, r->sql);
    if (!ok) {
        sess_down(s, PQerrorMessage(s->conn));
        return;
    }
    int fl = PQflush(s->conn);
    if (fl < 0) {
        sess_down(s, PQerrorMessage(s->conn));
        return;
    }
    sess_watch(s, fl == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void listen_drain(struct sess *s)
{
    PGnotify *n;
    while ((n = PQnotifies(s->conn)) != NULL) {
        if (s->pg->opt.on_notify)
            s->pg->opt.on_notify(s->pg->opt.arg, n->extra);
        PQfreemem(n);
    }
}

/* An internal query (LISTEN, a leader probe) finished on its own session. */
static void sess_internal_done(struct sess *s, PGresult *res)
{
    if (s->kind == SESS_LEADER && res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        leader_set(s, PQgetvalue(res, 0, 0)[0] == 't');
    else if (res && PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        log_warn("msg=\"PostgreSQL %s query failed\" error=\"%s\"", sess_name(s),
                 PQresultErrorMessage(res));
}

static void sess_read(struct sess *s)
{
    if (!PQconsumeInput(s->conn)) {
        sess_down(s, PQerrorMessage(s->conn));
        return;
    }
    if (s->kind == SESS_LISTEN)
        listen_drain(s);
    while (s->state == SESS_BUSY && !PQisBusy(s->conn)) {
        PGresult *res = PQgetResult(s->conn);
        if (res) { /* keep the first error, else the last result */
            if (!s->res || PQresultStatus(s->res) == PGRES_COMMAND_OK ||
                PQresultStatus(s->res) == PGRES_TUPLES_OK) {
                if (s->res)
                    PQclear(s->res);
                s->res = res;
            } else {
                PQclear(res);
            }
            continue;
        }
        struct pg_req *r = s->req;
        PGresult *done = s->res;
        s->req = NULL;
        s->res = NULL;
        s->state = SESS_IDLE;
        sess_watch(s, EV_READ); /* notices, notifications and a closed socket */
        if (r->is_internal) {
            sess_internal_done(s, done);
            req_free(r);
        } else {
            req_finish(r, done, NULL);
        }
        PQclear(done);
        if (s->kind == SESS_LISTEN)
            listen_drain(s);
        sess_start_next(s);
        return;
    }
}

static void sess_io(evutil_socket_t fd, short what, void *arg)
{
    struct sess *s = arg;
    (void)fd;
    if (s->state == SESS_CONNECTING) {
        sess_connect(s);
        return;
    }
    if (what & EV_WRITE) {
        int fl = PQflush(s->conn);
        if (fl < 0) {
            sess_down(s, PQerrorMessage(s->conn));
            return;
        }
        if (fl == 0)
            sess_watch(s, EV_READ);
    }
    if (what & EV_READ)
        sess_read(s);
}

/* Starts the next waiting query on an idle pool session. */
static void sess_start_next(struct sess *s)
{
    struct pg *pg = s->pg;
    if (s->kind != SESS_POOL || s->state != SESS_IDLE)
        return;
    if (!pg->head && pg->opt.on_idle)
        pg->opt.on_idle(pg->opt.arg); /* may queue coalesced work */
    if (s->state != SESS_IDLE || !pg->head)
        return;
    struct pg_req *r = pg->head;
    pg->head = r->next;
    if (!pg->head)
        pg->tail = NULL;
    pg->nqueued--;
    r->next = NULL;
    sess_send(s, r);
}

static void sess_internal(struct sess *s, const char *sql)
{
    struct pg_req *r = req_new(sql, 0, NULL, NULL, NULL);
    r->is_internal = 1;
    sess_send(s, r);
}

/* The connection is up: what each kind does first. */
static void sess_ready(struct sess *s)
{
    s->state = SESS_IDLE;
    s->retry_ms = 0;
    PQsetnonblocking(s->conn, 1);
    sess_watch(s, EV_READ);
    if (s->kind == SESS_LISTEN) {
        char *ch = PQescapeIdentifier(s->conn, s->pg->channel, strlen(s->pg->channel));
        char sql[300];
        snprintf(sql, sizeof sql, "LISTEN %s", ch ? ch : "spool_push");
        PQfreemem(ch);
        sess_internal(s, sql);
        /* Notifications sent while this session was down are lost: whoever waits
         * for one looks again (with NULL: every channel payload). */
        if (s->pg->is_started && s->pg->opt.on_notify)
            s->pg->opt.on_notify(s->pg->opt.arg, NULL);
    } else if (s->kind == SESS_LEADER) {
        struct timeval tv = {0, 0};
        evtimer_add(s->timer, &tv);
    } else {
        sess_start_next(s);
    }
}

/* Drives PQconnectPoll; called on socket events while CONNECTING. */
static void sess_connect(struct sess *s)
{
    switch (PQconnectPoll(s->conn)) {
    case PGRES_POLLING_READING: sess_watch(s, EV_READ); break;
    case PGRES_POLLING_WRITING: sess_watch(s, EV_WRITE); break;
    case PGRES_POLLING_OK:
        log_info("msg=\"PostgreSQL connection restored\" session=%s", sess_name(s));
        sess_ready(s);
        break;
    default: sess_down(s, PQerrorMessage(s->conn)); break;
    }
}

static void sess_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sess *s = arg;
    (void)fd;
    (void)what;
    if (s->state == SESS_DOWN) {
        s->conn = PQconnectStart(s->pg->url);
        if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
            sess_down(s, s->conn ? PQerrorMessage(s->conn) : "out of memory");
            return;
        }
        s->state = SESS_CONNECTING;
        sess_watch(s, EV_WRITE);
        return;
    }
    if (s->kind == SESS_LEADER) { /* probe again in a second while we do not hold it */
        if (s->state == SESS_IDLE && !s->is_leader) {
            char sql[80];
            snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%lld)", (long long)s->pg->opt.leader_key);
            sess_internal(s, sql);
        }
        struct timeval tv = {1, 0};
        evtimer_add(s->timer, &tv);
    }
}

static int sess_open(struct pg *pg, struct sess *s, enum sess_kind kind, char *err, size_t errlen)
{
    s->pg = pg;
    s->kind = kind;
    s->timer = evtimer_new(pg->base, sess_timer, s);
    s->conn = PQconnectdb(pg->url);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(s->conn));
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '"')
                *p = ' ';
        return -1;
    }
    sess_ready(s);
    return 0;
}

static void sess_release(struct sess *s)
{
    if (s->ev)
        event_free(s->ev);
    if (s->timer)
        event_free(s->timer);
    if (s->res)
        PQclear(s->res);
    if (s->req)
        req_free(s->req);
    if (s->conn)
        PQfinish(s->conn);
    memset(s, 0, sizeof *s);
}

struct pg *pg_new(struct event_base *base, const struct pg_options *opt, char *err, size_t errlen)
{
    struct pg *pg = xcalloc(1, sizeof *pg);
    pg->base = base;
    pg->opt = *opt;
    pg->url = xstrdup(opt->url);
    pg->opt.url = pg->url;
    pg->channel = opt->channel ? xstrdup(opt->channel) : NULL;
    pg->npool = opt->pool < 1 ? 1 : opt->pool;
    pg->pool = xcalloc((size_t)pg->npool, sizeof *pg->pool);
    for (int i = 0; i < pg->npool; i++)
        if (sess_open(pg, &pg->pool[i], SESS_POOL, err, errlen) != 0)
            goto fail;
    if (pg->channel && sess_open(pg, &pg->listen, SESS_LISTEN, err, errlen) != 0)
        goto fail;
    if (opt->on_leader && sess_open(pg, &pg->leader, SESS_LEADER, err, errlen) != 0)
        goto fail;
    pg->is_started = 1;
    return pg;
fail:
    pg_free(pg);
    return NULL;
}

void pg_free(struct pg *pg)
{
    if (!pg)
        return;
    /* Every caller hears about its query once, even now: their state is freed that way. */
    pg->is_closing = 1;
    struct sess *all[] = {&pg->listen, &pg->leader};
    for (int i = 0; i < pg->npool + 2; i++) {
        struct sess *s = i < pg->npool ? &pg->pool[i] : all[i - pg->npool];
        struct pg_req *r = s->req;
        s->req = NULL;
        if (r && r->is_internal)
            req_free(r);
        else if (r)
            req_finish(r, NULL, "spoold is stopping");
    }
    while (pg->head) {
        struct pg_req *r = pg->head;
        pg->head = r->next;
        req_finish(r, NULL, "spoold is stopping");
    }
    pg->tail = NULL;
    for (int i = 0; i < pg->npool; i++)
        sess_release(&pg->pool[i]);
    free(pg->pool);
    sess_release(&pg->listen);
    sess_release(&pg->leader);
    free(pg->url);
    free(pg->channel);
    free(pg);
}

static int exec_sync(struct pg *pg, const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
    struct sess *s = &pg->pool[0];
    if (s->state != SESS_IDLE) {
        snprintf(err, errlen, "the PostgreSQL connection is busy");
        return -1;
    }
    PQsetnonblocking(s->conn, 0);
    PGresult *res = PQexec(s->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
        size_t n = strlen(err);
        while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        rc = -1;
    } else if (out) {
        if (PQntuples(res) < 1 || PQnfields(res) < 1) {
            snprintf(err, errlen, "the query returned no value");
            rc = -1;
        } else {
            snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        }
    }
    PQclear(res);
    PQsetnonblocking(s->conn, 1);
    return rc;
}

int pg_exec_sync(struct pg *pg, const char *sql, char *err, size_t errlen)
{
    return exec_sync(pg, sql, NULL, 0, err, errlen);
}

int pg_exec_value_sync(struct pg *pg, const char *sql, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    return exec_sync(pg, sql, out, outlen, err, errlen);
}

struct pg_req *pg_query(struct pg *pg, const char *sql, int nparams, const char *const *params,
                        pg_done_fn fn, void *arg)
{
    struct pg_req *r = req_new(sql, nparams, params, fn, arg);
    if (pg->is_closing) { /* a callback asked for more while the pool closes */
        req_finish(r, NULL, "spoold is stopping");
        return NULL;
    }
    if (pg->tail)
        pg->tail->next = r;
    else
        pg->head = r;
    pg->tail = r;
    pg->nqueued++;
    for (int i = 0; i < pg->npool && pg->head; i++)
        sess_start_next(&pg->pool[i]);
    return r;
}

void pg_req_detach(struct pg_req *req)
{
    req->fn = NULL;
}

int pg_has_idle(const struct pg *pg)
{
    for (int i = 0; i < pg->npool; i++)
        if (pg->pool[i].state == SESS_IDLE)
            return 1;
    return 0;
}

int pg_is_leader(const struct pg *pg)
{
    return pg->leader.is_leader;
}

size_t pg_queued(const struct pg *pg)
{
    return pg->nqueued;
}

int pg_connections_up(const struct pg *pg)
{
    int n = 0;
    for (int i = 0; i < pg->npool; i++)
        n += pg->pool[i].state == SESS_IDLE || pg->pool[i].state == SESS_BUSY;
    return n;
}
