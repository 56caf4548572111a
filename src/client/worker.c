/*
 * spool_worker: the worker runtime.
 *
 * Threads: spool_worker_run's caller is the heartbeat thread (BEAT every
 * heartbeat_ms on its own connection, shutdown coordination); `concurrency`
 * job threads run the handlers. How jobs reach them depends on the server,
 * decided once at run start from the heartbeat connection's HI:
 *
 *   - plain (a Faktory server, `spoold --plain-fwp`, concurrency 1, or no
 *     server reachable at start): each job thread owns one connection and
 *     loops FETCH -> perform -> ACK/FAIL.
 *   - batch (the server offers FETCHN and ACKN): a dispatcher thread with its
 *     own connection asks FETCHN for exactly as many jobs as there are job
 *     threads waiting for one, and hands them over through a queue; a fetched
 *     job therefore starts at once, and nothing is held that nobody is ready
 *     to run (reservations and latency stay as with FETCH). An acker thread
 *     with its own connection sends the successes as ACKN: everything that
 *     finished while one ACKN was in flight goes in the next one (group
 *     commit; no ACK ever waits on purpose). The acker has its own connection
 *     because a FETCHN with nothing to fetch holds the dispatcher's for up to
 *     2 s, and an ACK must not wait for that. FAIL stays one command per job,
 *     sent by the job thread on its own connection (opened lazily, and for
 *     handlers through spool_ctx_client). A job thread does not wait for its
 *     ACKN: it queues the ACK and goes back for the next job, unless
 *     ack_max ACKs are already queued (back pressure).
 *   Either way FETCHN/FETCH and ACKN/ACK degrade to the plain commands if a
 *   reconnect lands on a server without the batch verbs.
 *
 * Shared state and its guard:
 *   - stop/quiet/hard-stop requests: atomics, plus two pipes written once and
 *     never drained, so a poll() on them is an interruptible sleep that any
 *     thread can wait on and a signal handler can wake (write is
 *     async-signal-safe); the heartbeat thread turns a stop and a hard stop
 *     into condition-variable broadcasts for the threads that wait on those;
 *   - which job each slot is running (jid, is_abandoned) and the busy count:
 *     w->mu, with w->cv signalled when a slot goes idle or an ACK lands;
 *   - batch mode's hand-over queue, waiting count and ACK queue: w->mu, with
 *     work_cv (a job was handed over), idle_cv (a job thread waits for one)
 *     and ack_cv (an ACK is queued);
 *   - counters: atomics.
 * Everything else (config, handlers, middleware) is written before run and
 * only read while running.
 *
 * No job is lost: a result (ACK or FAIL) that could not be delivered stays
 * with its thread (the acker, for queued ACKs), which reconnects with backoff
 * and delivers it again (an ACK of a jid the server already finished is +OK).
 * A stop waits for running jobs, queued jobs and queued ACKs alike. Only a
 * hard stop (the shutdown timeout has passed) gives up, and then the
 * server's reservation expiry brings the job back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "error.h"
#include "job.h"
#include "spool/spool.h"

#define DEFAULT_CONCURRENCY 10
#define DEFAULT_SHUTDOWN_MS 25000
#define DEFAULT_HEARTBEAT_MS 15000
#define DEFAULT_RECONNECT_MAX_MS 5000
#define BACKOFF_START_MS 100
#define MAX_BACKTRACE 50
#define MAX_JID 256

struct handler {
    char *jobtype;
    spool_handler fn;
    void *ud;
};

struct slot {
    spool_worker *w;
    pthread_t thread;
    int is_started;
    unsigned int rng;
    spool_client *c; /* this thread's connection; only this thread touches it */
    /* guarded by w->mu */
    char jid[MAX_JID]; /* job in hand, "" when idle */
    int is_abandoned;  /* run FAILed it at the shutdown timeout: do not deliver */
};

struct spool_ctx {
    spool_worker *w;
    struct slot *slot;
    char *errtype;
    char *message;
    char *bt[MAX_BACKTRACE];
    size_t nbt;
};

struct spool_worker {
    /* config, copied */
    char *url;
    char **queues;
    int *weights; /* NULL: strict order */
    size_t nqueues;
    char **labels;
    size_t nlabels;
    char *hostname;
    char *tls_ca_file;
    int tls_insecure_skip_verify;
    int concurrency, shutdown_ms, heartbeat_ms, reconnect_max_ms, timeout_ms;
    spool_log_fn log;
    void *log_ud;
    char wid[33];

    struct handler *handlers;
    size_t nhandlers;
    struct perform_mw *perform;
    size_t nperform;
    struct push_mw *push;
    size_t npush;

    atomic_int is_running;
    atomic_int want_stop;
    atomic_int want_quiet;
    atomic_int is_hard_stop;
    atomic_int state; /* enum spool_state */
    int stop_pipe[2];
    int hard_pipe[2];

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a slot went idle */
    int busy;          /* slots holding a job */
    int fatal_rc;      /* first fatal error of a job thread */

    atomic_uint_fast64_t processed, failed;
    struct slot *slots;

    /* batch mode (see the header); set before the threads start */
    int is_batch;
    size_t fetch_cap, ack_cap;
    struct slot dispatcher, acker; /* their connections and rngs */
    pthread_cond_t work_cv, idle_cv, ack_cv;
    /* guarded by mu */
    spool_job **handq; /* ring of `concurrency` jobs handed over, not yet taken */
    size_t hhead, hlen;
    int waiting;        /* job threads waiting for a job */
    int is_disp_done;   /* the dispatcher will hand over nothing more */
    spool_job **acks;   /* ACKs queued for the acker (owned), at most ack_cap */
    size_t nacks;
    size_t acks_pending; /* queued + in the ACKN in flight */
    int is_ack_closing;  /* no job thread is left: the acker ends when drained */
};

static void default_log(int level, const char *msg, void *ud)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level >= 2)
        fprintf(stderr, "spool worker %s: %s\n", names[level > 3 ? 3 : level], msg);
}

static void wlog(spool_worker *w, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void wlog(spool_worker *w, int level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->log(level, buf, w->log_ud);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, waking early once `fd` (a never-drained pipe) is
 * readable. Returns 1 if woken by the pipe. */
static int nap(int fd, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        int n = poll(&p, 1, (int)(left < 0 ? 0 : left));
        if (n > 0)
            return 1;
        if (n == 0 || errno != EINTR)
            return 0;
    }
}

/* ---- lifecycle ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char **dup_list(const char *const *v, size_t n, int *is_oom)
{
    if (n == 0)
        return NULL;
    char **out = calloc(n, sizeof *out);
    if (!out) {
        *is_oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(v[i] ? v[i] : "")))
            *is_oom = 1;
    return out;
}

static void free_list(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int spool_worker_new(const spool_worker_config *cfg, spool_worker **out)
{
    static const spool_worker_config none;
    if (!out)
        return tls_error(SPOOL_EARG, "spool_worker_new: out is NULL");
    *out = NULL;
    if (!cfg)
        cfg = &none;
    if (cfg->concurrency < 0 || cfg->concurrency > 10000 || cfg->shutdown_timeout_ms < 0 ||
        cfg->heartbeat_ms < 0 || cfg->reconnect_max_ms < 0 || cfg->timeout_ms < 0 ||
        (cfg->nqueues > 0 && !cfg->queues) || (cfg->nlabels > 0 && !cfg->labels))
        return tls_error(SPOOL_EARG, "bad worker config (negative value or NULL list)");
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (!cfg->queues[i] || !*cfg->queues[i] || strpbrk(cfg->queues[i], " \r\n"))
            return tls_error(SPOOL_EARG, "bad queue name in the worker config");
        if (cfg->weights && cfg->weights[i] <= 0)
            return tls_error(SPOOL_EARG, "queue weights must be > 0");
    }
    spool_url u;
    int rc = spool_url_parse(cfg->url, &u);
    if (rc)
        return rc;

    spool_worker *w = calloc(1, sizeof *w);
    if (!w)
        return tls_error(-ENOMEM, "out of memory");
    w->stop_pipe[0] = w->stop_pipe[1] = w->hard_pipe[0] = w->hard_pipe[1] = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_cond_init(&w->work_cv, &ca);
    pthread_cond_init(&w->idle_cv, &ca);
    pthread_cond_init(&w->ack_cv, &ca);
    pthread_condattr_destroy(&ca);
    int is_oom = 0;
    w->url = dup_or_null(cfg->url);
    w->hostname = dup_or_null(cfg->hostname);
    w->tls_ca_file = dup_or_null(cfg->tls_ca_file);
    w->tls_insecure_skip_verify = cfg->tls_insecure_skip_verify;
    if ((cfg->url && !w->url) || (cfg->hostname && !w->hostname) ||
        (cfg->tls_ca_file && !w->tls_ca_file))
        is_oom = 1;
    if (cfg->nqueues > 0) {
        w->nqueues = cfg->nqueues;
        w->queues = dup_list(cfg->queues, cfg->nqueues, &is_oom);
        if (cfg->weights && !is_oom) {
            w->weights = malloc(cfg->nqueues * sizeof *w->weights);
            if (w->weights)
                memcpy(w->weights, cfg->weights, cfg->nqueues * sizeof *w->weights);
            else
                is_oom = 1;
        }
    } else {
        static const char *const dflt[] = {"default"};
        w->nqueues = 1;
        w->queues = dup_list(dflt, 1, &is_oom);
    }
    w->nlabels = cfg->nlabels;
    w->labels = dup_list(cfg->labels, cfg->nlabels, &is_oom);
    w->concurrency = cfg->concurrency ? cfg->concurrency : DEFAULT_CONCURRENCY;
    w->shutdown_ms = cfg->shutdown_timeout_ms ? cfg->shutdown_timeout_ms : DEFAULT_SHUTDOWN_MS;
    w->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    w->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
    w->timeout_ms = cfg->timeout_ms;
    w->log = cfg->log ? cfg->log : default_log;
    w->log_ud = cfg->log_ud;
    if (is_oom) {
        spool_worker_free(w);
        return tls_error(-ENOMEM, "out of memory");
    }
    if (pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        pipe2(w->hard_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = -errno;
        spool_worker_free(w);
        return tls_error(rc, "pipe: %s", spool_strerror(rc));
    }
    rc = random_hex(w->wid, 12);
    if (rc) {
        spool_worker_free(w);
        return tls_error(rc, "getrandom: %s", spool_strerror(rc));
    }
    tls_error_clear();
    *out = w;
    return 0;
}

static _Atomic(spool_worker *) signal_worker;

void spool_worker_free(spool_worker *w)
{
    if (!w)
        return;
    spool_worker *expected = w;
    if (atomic_compare_exchange_strong(&signal_worker, &expected, NULL)) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTSTP, SIG_DFL);
    }
    free(w->url);
    free(w->hostname);
    free(w->tls_ca_file);
    free_list(w->queues, w->nqueues);
    free(w->weights);
    free_list(w->labels, w->nlabels);
    for (size_t i = 0; i < w->nhandlers; i++)
        free(w->handlers[i].jobtype);
    free(w->handlers);
    free(w->perform);
    free(w->push);
    free(w->slots);
    for (int i = 0; i < 2; i++) {
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
        if (w->hard_pipe[i] >= 0)
            close(w->hard_pipe[i]);
    }
    free(w->handq);
    free(w->acks);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->idle_cv);
    pthread_cond_destroy(&w->ack_cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int spool_worker_register(spool_worker *w, const char *jobtype, spool_handler fn, void *ud)
{
    if (!w || !jobtype || !*jobtype || !fn)
        return SPOOL_EARG;
    if (atomic_load(&w->is_running))
        return SPOOL_EBUSY;
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].jobtype, jobtype) == 0) {
            w->handlers[i].fn = fn;
            w->handlers[i].ud = ud;
            return 0;
        }
    struct handler *nh = realloc(w->handlers, (w->nhandlers + 1) * sizeof *nh);
    if (!nh)
        return -ENOMEM;
    w->handlers = nh;
    char *jt = strdup(jobtype);
    if (!jt)
        return -ENOMEM;
    nh[w->nhandlers++] = (struct handler){.jobtype = jt, .fn = fn, .ud = ud};
    return 0;
}

int spool_worker_use_perform(spool_worker *w, spool_perform_middleware fn, void *ud)
{
    if (!w || !fn)
        return SPOOL_EARG;
    if (atomic_load(&w->is_running))
        return SPOOL_EBUSY;
    return perform_mw_add(&w->perform, &w->nperform, fn, ud);
}

int spool_worker_use_push(spool_worker *w, spool_push_middleware fn, void *ud)
{
    if (!w || !fn)
        return SPOOL_EARG;
    if (atomic_load(&w->is_running))
        return SPOOL_EBUSY;
    return push_mw_add(&w->push, &w->npush, fn, ud);
}

/* ---- stop, quiet, signals (async-signal-safe) ---- */

static void poke(int fd)
{
    int saved = errno;
    char b = 1;
    ssize_t n = write(fd, &b, 1); /* a full pipe is fine: it is readable */
    (void)n;
    errno = saved;
}

void spool_worker_stop(spool_worker *w)
{
    if (!w)
        return;
    atomic_store(&w->state, SPOOL_STATE_TERMINATE);
    if (atomic_exchange(&w->want_stop, 1) == 0)
        poke(w->stop_pipe[1]);
}

void spool_worker_quiet(spool_worker *w)
{
    if (!w)
        return;
    atomic_store(&w->want_quiet, 1);
    int running = SPOOL_STATE_RUNNING;
    atomic_compare_exchange_strong(&w->state, &running, SPOOL_STATE_QUIET);
}

static void on_signal(int sig)
{
    spool_worker *w = atomic_load(&signal_worker);
    if (!w)
        return;
    if (sig == SIGTSTP) {
        spool_worker_quiet(w);
        return;
    }
    if (sig == SIGINT && atomic_load(&w->want_stop)) {
        /* A second Ctrl-C: the user means it. */
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    spool_worker_stop(w);
}

int spool_worker_install_signals(spool_worker *w)
{
    if (!w)
        return SPOOL_EARG;
    atomic_store(&signal_worker, w);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTSTP, &sa, NULL) != 0)
        return -errno;
    return 0;
}

enum spool_state spool_worker_state(const spool_worker *w)
{
    return w ? (enum spool_state)atomic_load(&((spool_worker *)w)->state) : SPOOL_STATE_TERMINATE;
}

uint64_t spool_worker_processed(const spool_worker *w)
{
    return w ? atomic_load(&((spool_worker *)w)->processed) : 0;
}

uint64_t spool_worker_failed(const spool_worker *w)
{
    return w ? atomic_load(&((spool_worker *)w)->failed) : 0;
}

const char *spool_worker_wid(const spool_worker *w)
{
    return w ? w->wid : "";
}

/* ---- handler context ---- */

static int connect_worker(spool_worker *w, spool_client **out);

int spool_ctx_fail(spool_ctx *ctx, const char *errtype, const char *fmt, ...)
{
    if (!ctx)
        return SPOOL_EARG;
    char *et = strdup(errtype ? errtype : "HandlerError");
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
    }
    if (!et || (fmt && !msg)) {
        free(et);
        free(msg);
        return -ENOMEM;
    }
    free(ctx->errtype);
    free(ctx->message);
    ctx->errtype = et;
    ctx->message = msg;
    return 0;
}

int spool_ctx_backtrace(spool_ctx *ctx, const char *line)
{
    if (!ctx || !line)
        return SPOOL_EARG;
    if (ctx->nbt >= MAX_BACKTRACE)
        return 0;
    char *l = strdup(line);
    if (!l)
        return -ENOMEM;
    ctx->bt[ctx->nbt++] = l;
    return 0;
}

int spool_ctx_is_stopping(const spool_ctx *ctx)
{
    return ctx ? atomic_load(&ctx->w->want_stop) : 1;
}

spool_client *spool_ctx_client(spool_ctx *ctx)
{
    if (!ctx)
        return NULL;
    /* In batch mode a job thread connects only when it first needs to. */
    if (!ctx->slot->c && connect_worker(ctx->w, &ctx->slot->c) != 0)
        ctx->slot->c = NULL;
    return ctx->slot->c;
}

spool_worker *spool_ctx_worker(spool_ctx *ctx)
{
    return ctx ? ctx->w : NULL;
}

static void ctx_release(spool_ctx *ctx)
{
    free(ctx->errtype);
    free(ctx->message);
    for (size_t i = 0; i < ctx->nbt; i++)
        free(ctx->bt[i]);
}

/* ---- job threads ---- */

static int is_fatal(int rc)
{
    return rc == SPOOL_EAUTH || rc == SPOOL_EURL || rc == SPOOL_ETLS || rc == SPOOL_EARG;
}

static void set_fatal(spool_worker *w, int rc, const char *msg)
{
    pthread_mutex_lock(&w->mu);
    if (!w->fatal_rc)
        w->fatal_rc = rc;
    pthread_mutex_unlock(&w->mu);
    wlog(w, 3, "giving up: %s", msg);
    spool_worker_stop(w);
}

static int connect_worker(spool_worker *w, spool_client **out)
{
    spool_client_options o = {
        .url = w->url,
        .wid = w->wid,
        .hostname = w->hostname,
        .labels = (const char *const *)w->labels,
        .nlabels = w->nlabels,
        .timeout_ms = w->timeout_ms,
        .tls_ca_file = w->tls_ca_file,
        .tls_insecure_skip_verify = w->tls_insecure_skip_verify,
    };
    int rc = spool_client_connect_opts(&o, out);
    if (rc)
        return rc;
    for (size_t i = 0; i < w->npush; i++) {
        rc = spool_client_use_push(*out, w->push[i].fn, w->push[i].ud);
        if (rc) {
            spool_client_free(*out);
            *out = NULL;
            return rc;
        }
    }
    return 0;
}

/* Makes sure the slot has a connection, sleeping with backoff between tries
 * on `wake_fd`. Returns 0, 1 when woken (stop or hard stop) or a fatal code. */
static int ensure_conn(struct slot *s, int wake_fd, int *backoff_ms)
{
    spool_worker *w = s->w;
    while (!s->c) {
        int rc = connect_worker(w, &s->c);
        if (rc == 0) {
            *backoff_ms = 0;
            return 0;
        }
        if (is_fatal(rc)) {
            set_fatal(w, rc, spool_client_error(NULL));
            return rc;
        }
        *backoff_ms = *backoff_ms ? *backoff_ms * 2 : BACKOFF_START_MS;
        if (*backoff_ms > w->reconnect_max_ms)
            *backoff_ms = w->reconnect_max_ms;
        wlog(w, 2, "cannot connect (%s); retrying in %d ms", spool_client_error(NULL), *backoff_ms);
        if (nap(wake_fd, *backoff_ms))
            return 1;
    }
    return 0;
}

static void drop_conn(struct slot *s)
{
    spool_client_free(s->c);
    s->c = NULL;
}

/* Queue order for one FETCH: as configured, or a weighted shuffle. */
static void order_queues(struct slot *s, const char **order)
{
    spool_worker *w = s->w;
    size_t n = w->nqueues;
    if (!w->weights) {
        for (size_t i = 0; i < n; i++)
            order[i] = w->queues[i];
        return;
    }
    /* Weighted sampling without replacement: each pick is proportional to
     * the weight among the queues left. */
    size_t idx[64];
    size_t m = n < 64 ? n : 64;
    long total = 0;
    for (size_t i = 0; i < m; i++) {
        idx[i] = i;
        total += w->weights[i];
    }
    for (size_t k = 0; k < m; k++) {
        long r = (long)(rand_r(&s->rng) % (unsigned long)total);
        size_t pick = k;
        for (size_t i = k; i < m; i++) {
            r -= w->weights[idx[i]];
            if (r < 0) {
                pick = i;
                break;
            }
        }
        size_t t = idx[k];
        idx[k] = idx[pick];
        idx[pick] = t;
        total -= w->weights[idx[k]];
        order[k] = w->queues[idx[k]];
    }
    for (size_t i = m; i < n; i++)
        order[i] = w->queues[i];
}

static int perform_final(spool_chain *ch)
{
    spool_ctx *ctx = ch->ctx;
    spool_worker *w = ctx->w;
    const char *jt = spool_job_jobtype(ch->cjob);
    for (size_t i = 0; i < w->nhandlers; i++)
        if (jt && strcmp(w->handlers[i].jobtype, jt) == 0)
            return w->handlers[i].fn(ctx, ch->cjob, w->handlers[i].ud);
    spool_ctx_fail(ctx, "NoHandler", "no handler registered for jobtype %s", jt ? jt : "(none)");
    return SPOOL_ENOHANDLER;
}

/* Delivers ACK (rc == 0) or FAIL until it lands, the job was abandoned, or
 * a hard stop. */
static void deliver(struct slot *s, const spool_job *job, int rc, spool_ctx *ctx)
{
    spool_worker *w = s->w;
    const char *jid = spool_job_jid(job);
    char fallback[64];
    int backoff = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int abandoned = s->is_abandoned;
        pthread_mutex_unlock(&w->mu);
        if (abandoned || atomic_load(&w->is_hard_stop))
            return;
        if (ensure_conn(s, w->hard_pipe[0], &backoff) != 0)
            return;
        int r;
        if (rc == 0) {
            r = spool_ack(s->c, jid);
        } else {
            snprintf(fallback, sizeof fallback, "handler returned %d", rc);
            r = spool_fail(s->c, jid, ctx->errtype ? ctx->errtype : "HandlerError",
                           ctx->message ? ctx->message : fallback, (const char *const *)ctx->bt,
                           ctx->nbt);
        }
        if (r == 0) {
            atomic_fetch_add(&w->processed, 1);
            if (rc != 0)
                atomic_fetch_add(&w->failed, 1);
            return;
        }
        if (r == SPOOL_ESERVER) {
            /* e.g. "Job not found": the reservation is gone, nothing to retry. */
            wlog(w, 2, "%s %s refused: %s", rc == 0 ? "ACK" : "FAIL", jid, spool_client_error(s->c));
            return;
        }
        wlog(w, 2, "%s %s not delivered (%s); reconnecting", rc == 0 ? "ACK" : "FAIL", jid,
             spool_client_error(s->c));
        drop_conn(s);
    }
}

/* Marks the slot as running job. Caller holds w->mu. */
static void claim_locked(struct slot *s, const spool_job *job)
{
    const char *jid = spool_job_jid(job);
    snprintf(s->jid, sizeof s->jid, "%s", jid ? jid : "");
    s->is_abandoned = 0;
    s->w->busy++;
}

/* Batch mode: queues a success for the acker, which takes ownership of job.
 * Waits while ack_cap ACKs are queued. Returns 0 when the ACK is not wanted
 * any more (abandoned, hard stop): the caller keeps job. */
static int ack_enqueue(struct slot *s, spool_job *job)
{
    spool_worker *w = s->w;
    int taken = 0;
    pthread_mutex_lock(&w->mu);
    while (w->nacks >= w->ack_cap && !s->is_abandoned && !atomic_load(&w->is_hard_stop))
        pthread_cond_wait(&w->cv, &w->mu);
    if (!s->is_abandoned && !atomic_load(&w->is_hard_stop)) {
        w->acks[w->nacks++] = job;
        w->acks_pending++;
        pthread_cond_signal(&w->ack_cv);
        taken = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return taken;
}

/* Runs a claimed job and delivers its result. Returns 1 if job was handed
 * to the acker, 0 if the caller still owns it. */
static int perform_claimed(struct slot *s, spool_job *job)
{
    spool_worker *w = s->w;
    const char *jid = spool_job_jid(job);
    int taken = 0;
    spool_ctx ctx = {.w = w, .slot = s};
    spool_chain ch = {.perform = w->perform, .nperform = w->nperform, .cjob = job, .ctx = &ctx,
                      .final = perform_final};
    /* `perform` set even with no hooks, so spool_next ends in final. */
    int rc = spool_next(&ch);
    if (jid && *jid) {
        if (rc == 0 && w->is_batch)
            taken = ack_enqueue(s, job);
        else
            deliver(s, job, rc, &ctx);
    }
    ctx_release(&ctx);

    pthread_mutex_lock(&w->mu);
    s->jid[0] = '\0';
    s->is_abandoned = 0;
    w->busy--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return taken;
}

static void perform(struct slot *s, spool_job *job)
{
    pthread_mutex_lock(&s->w->mu);
    claim_locked(s, job);
    pthread_mutex_unlock(&s->w->mu);
    if (!perform_claimed(s, job))
        spool_job_free(job);
}

static void *job_thread(void *arg)
{
    struct slot *s = arg;
    spool_worker *w = s->w;
    const char **order = calloc(w->nqueues, sizeof *order);
    if (!order) {
        set_fatal(w, -ENOMEM, "out of memory");
        return NULL;
    }
    int backoff = 0;
    while (!atomic_load(&w->want_stop)) {
        if (atomic_load(&w->want_quiet)) {
            nap(w->stop_pipe[0], 500);
            continue;
        }
        if (ensure_conn(s, w->stop_pipe[0], &backoff) != 0)
            break;
        order_queues(s, order);
        spool_job *job = NULL;
        int rc = spool_fetch(s->c, order, w->nqueues, &job);
        if (rc) {
            wlog(w, 2, "FETCH failed (%s); reconnecting", spool_client_error(s->c));
            drop_conn(s);
            continue;
        }
        if (job)
            perform(s, job);
    }
    free(order);
    drop_conn(s);
    return NULL;
}

/* ---- batch mode: job threads, the dispatcher, the acker ---- */

/* A job thread in batch mode: waits for a handed-over job, runs it. Ends
 * once stopping with nothing left to hand over, or at a hard stop (a job
 * still queued then is freed by run; its reservation brings it back). */
static void *batch_job_thread(void *arg)
{
    struct slot *s = arg;
    spool_worker *w = s->w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (atomic_load(&w->is_hard_stop))
            break;
        if (w->hlen == 0) {
            if (atomic_load(&w->want_stop) && w->is_disp_done)
                break;
            w->waiting++;
            pthread_cond_signal(&w->idle_cv);
            while (w->hlen == 0 && !atomic_load(&w->is_hard_stop) &&
                   !(atomic_load(&w->want_stop) && w->is_disp_done))
                pthread_cond_wait(&w->work_cv, &w->mu);
            w->waiting--;
            continue;
        }
        spool_job *job = w->handq[w->hhead];
        w->handq[w->hhead] = NULL;
        w->hhead = (w->hhead + 1) % (size_t)w->concurrency;
        w->hlen--;
        /* Claimed under the same lock as the take, so a stop never sees a
         * job that is neither queued nor running. */
        claim_locked(s, job);
        pthread_mutex_unlock(&w->mu);
        if (!perform_claimed(s, job))
            spool_job_free(job);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    drop_conn(s);
    return NULL;
}

/* FETCHN for as many jobs as job threads wait for, never more. */
static void *dispatch_thread(void *arg)
{
    struct slot *s = arg;
    spool_worker *w = s->w;
    const char **order = calloc(w->nqueues, sizeof *order);
    spool_job **got = calloc(w->fetch_cap, sizeof *got);
    if (!order || !got)
        set_fatal(w, -ENOMEM, "out of memory");
    int backoff = 0;
    while (order && got && !atomic_load(&w->want_stop)) {
        if (atomic_load(&w->want_quiet)) {
            nap(w->stop_pipe[0], 500);
            continue;
        }
        pthread_mutex_lock(&w->mu);
        while (w->waiting - (int)w->hlen <= 0 && !atomic_load(&w->want_stop))
            pthread_cond_wait(&w->idle_cv, &w->mu);
        size_t want = (size_t)(w->waiting - (int)w->hlen);
        pthread_mutex_unlock(&w->mu);
        if (atomic_load(&w->want_stop))
            break;
        if (want > w->fetch_cap)
            want = w->fetch_cap;
        if (ensure_conn(s, w->stop_pipe[0], &backoff) != 0)
            break;
        order_queues(s, order);
        int n = spool_fetch_many(s->c, order, w->nqueues, got, want);
        if (n < 0) {
            wlog(w, 2, "FETCHN failed (%s); reconnecting", spool_client_error(s->c));
            drop_conn(s);
            continue;
        }
        /* Handed over even when a stop came meanwhile: a job fetched is a
         * job run, as with FETCH. At most `waiting - hlen` came, so the ring
         * (one place per job thread) has room. */
        pthread_mutex_lock(&w->mu);
        for (int i = 0; i < n; i++) {
            w->handq[(w->hhead + w->hlen) % (size_t)w->concurrency] = got[i];
            w->hlen++;
        }
        if (n > 0)
            pthread_cond_broadcast(&w->work_cv);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    w->is_disp_done = 1;
    pthread_cond_broadcast(&w->work_cv);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(order);
    free(got);
    drop_conn(s);
    return NULL;
}

/* Sends the queued ACKs as one ACKN at a time, each carrying all that
 * finished while the previous one was in flight. An ACKN that fails for the
 * connection is sent again after reconnecting, until a hard stop. */
static void *ack_thread(void *arg)
{
    struct slot *s = arg;
    spool_worker *w = s->w;
    spool_job **batch = calloc(w->ack_cap, sizeof *batch);
    const char **jids = calloc(w->ack_cap, sizeof *jids);
    if (!batch || !jids)
        set_fatal(w, -ENOMEM, "out of memory");
    int backoff = 0;
    pthread_mutex_lock(&w->mu);
    while (batch && jids) {
        while (w->nacks == 0 && !w->is_ack_closing && !atomic_load(&w->is_hard_stop))
            pthread_cond_wait(&w->ack_cv, &w->mu);
        if (atomic_load(&w->is_hard_stop) || w->nacks == 0)
            break;
        size_t n = w->nacks;
        memcpy(batch, w->acks, n * sizeof *batch);
        w->nacks = 0;
        pthread_cond_broadcast(&w->cv); /* room in the queue */
        pthread_mutex_unlock(&w->mu);

        for (size_t i = 0; i < n; i++)
            jids[i] = spool_job_jid(batch[i]);
        for (;;) {
            if (atomic_load(&w->is_hard_stop))
                break;
            if (ensure_conn(s, w->hard_pipe[0], &backoff) != 0)
                break;
            int r = spool_ack_many(s->c, jids, n);
            if (r == 0) {
                atomic_fetch_add(&w->processed, n);
                break;
            }
            if (r == SPOOL_ESERVER) {
                /* The server answered for every jid; those it refused hold
                 * no reservation, so there is nothing to send again. */
                wlog(w, 2, "ACKN refused in part: %s", spool_client_error(s->c));
                break;
            }
            wlog(w, 2, "ACKN of %zu jobs not delivered (%s); reconnecting", n,
                 spool_client_error(s->c));
            drop_conn(s);
        }
        for (size_t i = 0; i < n; i++)
            spool_job_free(batch[i]);

        pthread_mutex_lock(&w->mu);
        w->acks_pending -= n;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    free(batch);
    free(jids);
    drop_conn(s);
    return NULL;
}

/* ---- the heartbeat thread (run's caller) ---- */

static int64_t rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    long size = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (int64_t)resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One BEAT; applies the server's state. Drops the connection on failure. */
static void beat_once(spool_worker *w, spool_client **hb)
{
    enum spool_state mine = atomic_load(&w->want_quiet) ? SPOOL_STATE_QUIET : SPOOL_STATE_RUNNING;
    enum spool_state theirs = SPOOL_STATE_RUNNING;
    int rc = spool_beat(*hb, mine, rss_kb(), &theirs);
    if (rc) {
        wlog(w, 2, "BEAT failed: %s", spool_client_error(*hb));
        spool_client_free(*hb);
        *hb = NULL;
        return;
    }
    if (theirs == SPOOL_STATE_QUIET && !atomic_load(&w->want_quiet)) {
        wlog(w, 1, "the server says quiet: no more fetching");
        spool_worker_quiet(w);
    } else if (theirs == SPOOL_STATE_TERMINATE) {
        wlog(w, 1, "the server says terminate");
        spool_worker_stop(w);
    }
}

/* Wakes every thread waiting on a condition variable, after a stop or a
 * hard stop (a signal handler cannot, so the heartbeat thread does). */
static void wake_all(spool_worker *w)
{
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->work_cv);
    pthread_cond_broadcast(&w->idle_cv);
    pthread_cond_broadcast(&w->ack_cv);
    pthread_mutex_unlock(&w->mu);
}

/* Batch mode when the server offers FETCHN and ACKN and more than one job
 * runs at once (with one, FETCH -> ACK is already the shortest path). The
 * answer comes from the heartbeat connection, made here for that. */
static void choose_mode(spool_worker *w, spool_client **hb)
{
    w->is_disp_done = 1;
    if (w->concurrency < 2)
        return;
    if (connect_worker(w, hb) != 0) {
        *hb = NULL;
        wlog(w, 2, "cannot connect (%s): one FETCH per job thread", spool_client_error(NULL));
        return;
    }
    int fetch_max = 0, ack_max = 0;
    spool_client_batch_limits(*hb, &fetch_max, &ack_max, NULL);
    if (fetch_max <= 0 || ack_max <= 0)
        return;
    w->fetch_cap = (size_t)(fetch_max < w->concurrency ? fetch_max : w->concurrency);
    w->ack_cap = (size_t)ack_max;
    w->handq = calloc((size_t)w->concurrency, sizeof *w->handq);
    w->acks = calloc(w->ack_cap, sizeof *w->acks);
    if (!w->handq || !w->acks) {
        free(w->handq);
        free(w->acks);
        w->handq = NULL;
        w->acks = NULL;
        return;
    }
    w->is_batch = 1;
    w->is_disp_done = 0;
}

/* After a stop: waits for running jobs up to the shutdown timeout, then FAILs
 * those still running and declares a hard stop. */
static void shutdown_jobs(spool_worker *w, spool_client **hb)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += w->shutdown_ms / 1000;
    dl.tv_nsec += (long)(w->shutdown_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->mu);
    /* Batch mode: jobs handed over but not yet taken, a FETCHN still out
     * and ACKs not yet confirmed are waited for as running jobs are. */
    while (w->busy > 0 || w->hlen > 0 || !w->is_disp_done || w->acks_pending > 0) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT)
            break;
    }
    size_t n = 0;
    char(*jids)[MAX_JID] = w->busy > 0 ? calloc((size_t)w->concurrency, MAX_JID) : NULL;
    for (int i = 0; jids && i < w->concurrency; i++) {
        struct slot *s = &w->slots[i];
        if (s->jid[0] && !s->is_abandoned) {
            s->is_abandoned = 1;
            memcpy(jids[n++], s->jid, MAX_JID);
        }
    }
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->is_hard_stop, 1);
    poke(w->hard_pipe[1]);
    wake_all(w);
    if (n > 0) {
        if (!*hb)
            connect_worker(w, hb);
        for (size_t i = 0; i < n && *hb; i++) {
            wlog(w, 2, "job %s still running at the shutdown timeout: FAIL", jids[i]);
            if (spool_fail(*hb, jids[i], "Shutdown", "worker shut down before the job finished",
                           NULL, 0) != 0)
                wlog(w, 2, "FAIL %s: %s", jids[i], spool_client_error(*hb));
        }
    }
    free(jids);
}

static void seed_rng(struct slot *s, int i)
{
    unsigned char seed[4] = {0};
    char hex[9];
    if (random_hex(hex, 4) == 0)
        memcpy(seed, hex, 4);
    s->rng = (unsigned)seed[0] | (unsigned)seed[1] << 8 | (unsigned)seed[2] << 16 |
             (unsigned)seed[3] << 24 | (unsigned)i;
}

int spool_worker_run(spool_worker *w)
{
    if (!w)
        return SPOOL_EARG;
    if (atomic_exchange(&w->is_running, 1))
        return SPOOL_EBUSY;
    if (atomic_load(&w->state) == SPOOL_STATE_RUNNING && atomic_load(&w->want_quiet))
        atomic_store(&w->state, SPOOL_STATE_QUIET);
    w->slots = calloc((size_t)w->concurrency, sizeof *w->slots);
    if (!w->slots)
        return -ENOMEM;
    spool_client *hb = NULL;
    choose_mode(w, &hb);
    int has_disp = 0, has_acker = 0;
    if (w->is_batch) {
        w->dispatcher.w = w->acker.w = w;
        seed_rng(&w->dispatcher, w->concurrency);
        int rc = pthread_create(&w->acker.thread, NULL, ack_thread, &w->acker);
        has_acker = rc == 0;
        if (rc == 0) {
            rc = pthread_create(&w->dispatcher.thread, NULL, dispatch_thread, &w->dispatcher);
            has_disp = rc == 0;
        }
        if (rc) {
            pthread_mutex_lock(&w->mu);
            w->is_disp_done = 1;
            pthread_mutex_unlock(&w->mu);
            set_fatal(w, -rc, "cannot start a worker thread");
        }
    }
    for (int i = 0; i < w->concurrency; i++) {
        struct slot *s = &w->slots[i];
        s->w = w;
        seed_rng(s, i);
        int rc = pthread_create(&s->thread, NULL, w->is_batch ? batch_job_thread : job_thread, s);
        if (rc) {
            set_fatal(w, -rc, "cannot start a worker thread");
            break;
        }
        s->is_started = 1;
    }
    wlog(w, 1, "worker %s running %d threads%s", w->wid, w->concurrency,
         w->is_batch ? " (FETCHN/ACKN)" : "");

    int backoff = 0;
    while (!atomic_load(&w->want_stop)) {
        int64_t wait = w->heartbeat_ms;
        if (!hb) {
            int rc = connect_worker(w, &hb);
            if (rc && is_fatal(rc)) {
                set_fatal(w, rc, spool_client_error(NULL));
                break;
            }
            if (rc) {
                backoff = backoff ? backoff * 2 : BACKOFF_START_MS;
                if (backoff > w->reconnect_max_ms)
                    backoff = w->reconnect_max_ms;
                wait = backoff < wait ? backoff : wait;
            } else {
                backoff = 0;
            }
        }
        if (hb)
            beat_once(w, &hb);
        if (atomic_load(&w->want_stop))
            break;
        nap(w->stop_pipe[0], hb ? w->heartbeat_ms : wait);
    }
    atomic_store(&w->state, SPOOL_STATE_TERMINATE);
    wake_all(w);
    shutdown_jobs(w, &hb);
    if (has_disp)
        pthread_join(w->dispatcher.thread, NULL);
    for (int i = 0; i < w->concurrency; i++)
        if (w->slots[i].is_started)
            pthread_join(w->slots[i].thread, NULL);
    if (has_acker) {
        pthread_mutex_lock(&w->mu);
        w->is_ack_closing = 1;
        pthread_cond_broadcast(&w->ack_cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->acker.thread, NULL);
    }
    /* Left after a hard stop: their reservations bring the jobs back. */
    for (; w->hlen > 0; w->hlen--, w->hhead = (w->hhead + 1) % (size_t)w->concurrency)
        spool_job_free(w->handq[w->hhead]);
    for (size_t i = 0; i < w->nacks; i++)
        spool_job_free(w->acks[i]);
    w->nacks = w->acks_pending = 0;
    spool_client_free(hb);
    wlog(w, 1, "worker %s stopped", w->wid);
    pthread_mutex_lock(&w->mu);
    int rc = w->fatal_rc;
    pthread_mutex_unlock(&w->mu);
    return rc;
}
