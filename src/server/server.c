#include "server/server.h"
#include "server/pgsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "server/api.h"
#include "server/backup.h"
#include "server/authdelay.h"
#include "server/conn.h"
#include "server/confload.h"
#include "server/crond.h"
#include "server/datadir.h"
#include "server/http.h"
#include "server/tls.h"
#include "server/notify.h"
#include "server/rlimit.h"
#include "store/journal.h"

int64_t server_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

uint64_t server_commit(struct server *srv)
{
    return srv->commit_seq;
}

int server_push(struct server *srv, struct job *job, char *err)
{
    if ((size_t)job->body_len > srv->cfg.max_job) {
        snprintf(err, JOB_ERR_MAX,
                 "job too large: %zu bytes, over the limit of %zu bytes (--max-job-size)",
                 (size_t)job->body_len, srv->cfg.max_job);
        job_free(job);
        return PUSH_INVALID;
    }
    int64_t now = server_now();
    int rc = engine_push(srv->engine, job, now);
    if (rc == 0) {
        if (srv->is_full) {
            srv->is_full = 0;
            log_info("msg=\"accepting pushes again\" jobs=%zu job_memory=%zu",
                     srv->engine->jobs.count, srv->engine->job_bytes);
        }
        return PUSH_OK;
    }
    if (rc == 1) { /* the same job again: already stored */
        job_free(job);
        return PUSH_OK;
    }
    if (rc == ENGINE_EFULL) {
        struct engine *e = srv->engine;
        if (srv->cfg.max_jobs && e->jobs.count >= srv->cfg.max_jobs)
            snprintf(err, JOB_ERR_MAX,
                     "server full: it holds %zu jobs, the limit set by --max-jobs is %zu; "
                     "retry once workers have drained some",
                     e->jobs.count, srv->cfg.max_jobs);
        else
            snprintf(err, JOB_ERR_MAX,
                     "server full: its jobs take %zu bytes and this one needs %zu more, over the "
                     "limit of %zu bytes set by --max-memory; retry once workers have drained some",
                     e->job_bytes, engine_job_footprint(job), srv->cfg.max_memory);
        if (!srv->is_full) { /* once per episode, not once per refused push */
            srv->is_full = 1;
            log_warn("msg=\"refusing pushes: the job limit is reached\" jobs=%zu max_jobs=%zu "
                     "job_memory=%zu max_memory=%zu", e->jobs.count, srv->cfg.max_jobs,
                     e->job_bytes, srv->cfg.max_memory);
        }
        job_free(job);
        return PUSH_FULL;
    }
    if (rc == ENGINE_ENOTUNIQUE) {
        const char *holder = engine_unique_holder(srv->engine, job, now);
        snprintf(err, JOB_ERR_MAX,
                 "NOTUNIQUE job %.100s is already queued with the same jobtype, args and queue",
                 holder ? holder : "?");
        job_free(job);
        return PUSH_NOT_UNIQUE;
    }
    if (rc == ENGINE_EBATCH_UNKNOWN || rc == ENGINE_EBATCH_CLOSED) {
        char *bid = batch_bid_of(job);
        if (rc == ENGINE_EBATCH_UNKNOWN)
            snprintf(err, JOB_ERR_MAX, "unknown batch %.100s in custom.bid: create one with BATCH NEW",
                     bid ? bid : "?");
        else
            snprintf(err, JOB_ERR_MAX,
                     "batch %.100s is committed: BATCH OPEN it before pushing more jobs into it",
                     bid ? bid : "?");
        free(bid);
        job_free(job);
        return PUSH_BATCH;
    }
    snprintf(err, JOB_ERR_MAX, "jid %.100s is already in use by a different job", job->jid);
    job_free(job);
    return PUSH_JID_IN_USE;
}

/* The engine made a change: journal it. Its sequence now covers every change so far. */
static void on_record(void *ctx, const void *rec, size_t len)
{
    struct server *srv = ctx;
    srv->commit_seq = journal_append(srv->journal, rec, len);
}

/* Writer thread: wake the loop. */
static void journal_notify(void *ctx)
{
    struct server *srv = ctx;
    uint64_t one = 1;
    ssize_t w = write(srv->notify_fd, &one, sizeof one);
    (void)w;
}

static void on_journal_progress(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    uint64_t n;
    ssize_t r = read(srv->notify_fd, &n, sizeof n);
    (void)r;
    server_mark_durable(srv, journal_durable(srv->journal));
    char why[256];
    if (!srv->is_readonly && journal_failed(srv->journal, why, sizeof why)) {
        if (srv->cfg.fsync == FSYNC_ALWAYS) {
            /* Replies still held were never sent: nothing unsaved was acknowledged. */
            log_error("msg=\"exiting: the journal cannot write, and --fsync always promises every "
                      "reply is on disk\" error=\"%s\"", why);
            _exit(3);
        }
        srv->is_readonly = 1;
        snprintf(srv->readonly_reason, sizeof srv->readonly_reason, "%s", why);
        log_error("msg=\"the journal failed: refusing changes from now on\" error=\"%s\"", why);
        /* Replies still waiting for the failed write will never be sent: close those
         * connections so their clients see a failure instead of waiting forever. */
        for (struct conn *c = srv->conns; c; c = c->next)
            if (c->nmarks)
                conn_close_soon(c);
        api_release_durable(srv); /* held HTTP replies: answered 503 instead */
    }
}

struct snap_ctx {
    struct snapshot_writer *w;
};

static void snap_out(void *ctx, const void *rec, size_t len)
{
    snapshot_add(((struct snap_ctx *)ctx)->w, rec, len);
}

/*
 * Writes a snapshot in a forked child: the child sees the state as of the
 * fork without stopping the loop. The journal rotates at the same instant,
 * so the snapshot covers exactly the segments before the new one.
 */
static void maybe_snapshot(struct server *srv)
{
    if (!srv->journal || srv->snapshot_pid || srv->is_readonly ||
        journal_bytes_since_rotation(srv->journal) < srv->cfg.snapshot_every)
        return;
    uint64_t seg = journal_rotate(srv->journal);
    if (!seg)
        return;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("msg=\"cannot fork for a snapshot; will retry\" error=\"%s\"", strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Die with the parent: a snapshot finishing after a new spoold took the
         * directory could land beside that server's journal. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        struct snap_ctx sc = {snapshot_begin(srv->cfg.data_dir, seg, &fileio_posix)};
        if (!sc.w)
            _exit(1);
        engine_dump(srv->engine, snap_out, &sc);
        _exit(snapshot_commit(sc.w) == 0 ? 0 : 1);
    }
    srv->snapshot_pid = pid;
    srv->snapshot_segment = seg;
    log_info("msg=\"snapshot started\" pid=%d covers_below_segment=%llu", (int)pid,
             (unsigned long long)seg);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (backup_reaped(srv, pid, status))
            continue;
        if (pid != srv->snapshot_pid)
            continue;
        srv->snapshot_pid = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            srv->snapshots_taken++;
            journal_prune(srv->cfg.data_dir, &fileio_posix, srv->snapshot_segment);
            log_info("msg=\"snapshot written; older journal segments removed\" segment=%llu",
                     (unsigned long long)srv->snapshot_segment);
        } else {
            log_error("msg=\"snapshot failed; the journal is kept and the snapshot will be retried\" "
                      "status=%d", status);
        }
    }
}

void server_mark_durable(struct server *srv, uint64_t seq)
{
    if (seq <= srv->durable_seq)
        return;
    srv->durable_seq = seq;
    for (struct conn *c = srv->conns; c; c = c->next)
        if (c->nmarks)
            conn_release_durable(c, seq);
    /* HTTP API requests wait on their own list (not a connection's reply buffer). */
    api_release_durable(srv);
}

void server_schedule_tick(struct server *srv)
{
    /* A new deadline earlier than the armed timer (e.g. a job scheduled 100 ms out) re-arms it. */
    struct engine *e = srv->engine;
    struct tset *sets[] = {&e->scheduled, &e->retries, &e->working, &e->dead};
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < 4; i++) {
        struct tset_node *n = tset_min(sets[i]);
        if (n && n->score_ns < next)
            next = n->score_ns;
    }
    int64_t now = server_now();
    int64_t opens = engine_throttle_next_ns(e, now); /* a full rate window with fetchers waiting */
    if (opens < next)
        next = opens;
    if (next >= srv->tick_armed_ns)
        return;
    int64_t delay = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(delay / NS_PER_S), (suseconds_t)(delay % NS_PER_S / 1000)};
    evtimer_add(srv->tick_ev, &tv);
    srv->tick_armed_ns = next;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    int64_t now = server_now();
    int64_t next = engine_tick(srv->engine, now);
    int64_t cron_next_ns = crond_tick(srv, now);
    if (cron_next_ns < next)
        next = cron_next_ns;
    maybe_snapshot(srv);
    int64_t delay = next > now ? next - now : 0;
    /* Round up to the next millisecond so a due job is never a hair early. */
    delay += NS_PER_MS - 1;
    struct timeval tv = {(time_t)(delay / NS_PER_S), (suseconds_t)(delay % NS_PER_S / 1000)};
    evtimer_add(srv->tick_ev, &tv);
    srv->tick_armed_ns = next;
}

static void on_reaped(void *ctx, const char *wid)
{
    struct server *srv = ctx;
    log_info("msg=\"reaping a worker process that stopped sending BEAT\" wid=%s", wid);
    struct conn *c = srv->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->wid && strcmp(c->wid, wid) == 0)
            conn_close(c);
        c = next;
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                      void *arg)
{
    struct server *srv = arg;
    char peer[64] = "?";
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(peer, sizeof peer, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(peer, sizeof peer, "[%s]:%d", ip, ntohs(in6->sin6_port));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_accept(srv, fd, peer);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors is transient: keep listening; the client's connect just waits. */
    log_warn("msg=\"accept failed\" error=\"%s\"", evutil_socket_error_to_string(err));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    log_info("msg=\"shutting down\" signal=%d", (int)sig);
    notify_stopping();
    srv->is_stopping = 1;
    event_base_loopexit(srv->base, NULL);
}

static int apply_record(void *ctx, const void *rec, size_t len, char *err, size_t errlen)
{
    return engine_apply(ctx, rec, len, err, errlen);
}

static struct engine *new_engine(const struct config *cfg, const struct engine_hooks *hooks,
                                 uint32_t seed)
{
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.dead_max = cfg->dead_max;
    ec.max_jobs = cfg->max_jobs;
    ec.max_memory = cfg->max_memory;
    ec.seed = seed | 1;
    return engine_new(&ec, hooks);
}

static void log_recovery(const struct recovery *r, struct engine *e, int64_t took_ns)
{
    log_info("msg=\"recovered\" snapshot=%llu snapshot_records=%llu segments=%llu records=%llu "
             "jobs=%zu took_ms=%lld skipped=%llu",
             (unsigned long long)r->snapshot, (unsigned long long)r->snapshot_records,
             (unsigned long long)r->segments, (unsigned long long)r->records, e->jobs.count,
             (long long)(took_ns / NS_PER_MS), (unsigned long long)e->replay_skipped);
    if (r->message[0])
        log_warn("msg=\"%s\"", r->message);
}

int server_check(const struct config *cfg)
{
    char err[512];
    int fd = datadir_lock(cfg->data_dir, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "spoold: %s\n", err);
        return 1;
    }
    struct engine *e = new_engine(cfg, NULL, 1);
    struct recovery r;
    int64_t t0 = server_now();
    int rc = journal_recover(cfg->data_dir, &fileio_posix, apply_record, e, cfg->is_repair,
                             !cfg->is_repair, &r);
    int64_t took = server_now() - t0;
    if (rc != 0) {
        printf("spoold --check: %s: FAILED\n  %s\n", cfg->data_dir, r.message);
    } else {
        printf("spoold --check: %s: %s\n", cfg->data_dir,
               r.repaired ? "REPAIRED" : r.truncated ? (cfg->is_repair ? "REPAIRED" : "OK (torn tail)") : "OK");
        printf("  snapshot %llu (%llu records), %llu journal segments, %llu records, %.3f s\n",
               (unsigned long long)r.snapshot, (unsigned long long)r.snapshot_records,
               (unsigned long long)r.segments, (unsigned long long)r.records,
               (double)took / (double)NS_PER_S);
        printf("  jobs %zu: queued %zu, scheduled %zu, retries %zu, dead %zu, working %zu\n",
               e->jobs.count, engine_enqueued_total(e), e->scheduled.count, e->retries.count,
               e->dead.count, e->working.count);
        if (r.message[0])
            printf("  %s\n", r.message);
    }
    engine_free(e);
    close(fd);
    return rc == 0 ? 0 : 1;
}

static int listen_fwp(struct server *srv)
{
    char host[256];
    int port;
    if (config_split_hostport(srv->cfg.fwp_bind, host, sizeof host, &port))
        return -1;
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV};
    struct evutil_addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = evutil_getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        log_error("msg=\"cannot resolve the FWP bind address\" bind=%s error=\"%s\"",
                  srv->cfg.fwp_bind, evutil_gai_strerror(gai));
        return -1;
    }
    srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                            ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!srv->listener) {
        log_error("msg=\"cannot listen for FWP\" bind=%s error=\"%s\"", srv->cfg.fwp_bind,
                  strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &bl);
    srv->fwp_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static void arm_signals_and_tick(struct server *srv)
{
    srv->tick_ev = evtimer_new(srv->base, on_tick, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    srv->sig_chld = evsignal_new(srv->base, SIGCHLD, on_sigchld, srv);
    evsignal_add(srv->sig_int, NULL);
    evsignal_add(srv->sig_term, NULL);
    evsignal_add(srv->sig_chld, NULL);
    on_tick(-1, 0, srv);
}

/* Descriptors, SIGPIPE and the event loop: what both stores need first. 0 or -1 (logged). */
static int init_loop(struct server *srv)
{
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    int lim = rlimit_raise_nofile(srv->cfg.max_connections, err, sizeof err);
    if (lim == 0)
        log_debug("msg=\"%s\"", err);
    else
        log_warn("msg=\"%s\"", err);
    srv->base = event_base_new();
    if (!srv->base) {
        log_error("msg=\"cannot create the event loop\"");
        return -1;
    }
    return 0;
}

/*
 * --store postgres://: no data directory, no journal. The engine still
 * holds this server's worker processes; jobs live in PostgreSQL (pgsrv).
 */
static int init_postgres(struct server *srv)
{
    const struct config *cfg = &srv->cfg;
    if (cfg->config_dir) {
        static const char *const unsupported[] = {"cron.json", "throttles.json"};
        for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", cfg->config_dir, unsupported[i]);
            if (access(path, F_OK) == 0) {
                log_error("msg=\"refusing to start: %s is not supported with --store postgres yet; "
                          "move it out of the config directory or use the journal store\" path=%s",
                          unsupported[i], path);
                return -1;
            }
        }
    }
    if (init_loop(srv) != 0)
        return -1;
    struct engine_hooks hooks = {.ctx = srv, .reaped = on_reaped};
    srv->engine = new_engine(cfg, &hooks, (uint32_t)(srv->started_ns ^ (srv->started_ns >> 32)));
    if (pgsrv_init(srv) != 0)
        return -1;
    if (listen_fwp(srv) != 0 || http_init(srv) != 0)
        return -1;
    arm_signals_and_tick(srv);
    return 0;
}

int server_init(struct server *srv, const struct config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = *cfg;
    srv->started_ns = server_now();
    srv->lock_fd = -1;
    srv->notify_fd = -1;
    srv->tick_armed_ns = INT64_MAX;
    char err[512];
    /* First, before the data directory is touched. A certificate that cannot be
     * used refuses the start: never fall back to plaintext. */
    if (cfg->tls_cert) {
        srv->tls = tls_server_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ca, err, sizeof err);
        if (!srv->tls) {
            log_error("msg=\"%s\"", err);
            return -1;
        }
    }
    if (cfg->store)
        return init_postgres(srv);
    srv->lock_fd = datadir_lock(cfg->data_dir, err, sizeof err);
    if (srv->lock_fd < 0) {
        log_error("msg=\"%s\"", err);
        return -1;
    }
    if (init_loop(srv) != 0)
        return -1;
    struct engine_hooks hooks = {.ctx = srv, .reaped = on_reaped, .record = on_record};
    srv->engine = new_engine(cfg, &hooks, (uint32_t)(srv->started_ns ^ (srv->started_ns >> 32)));

    /* Recover before listening: no client sees a half-loaded state. */
    struct recovery rec;
    int64_t t0 = server_now();
    if (journal_recover(cfg->data_dir, &fileio_posix, apply_record, srv->engine, 0, 0, &rec) != 0) {
        log_error("msg=\"cannot recover the data directory\" error=\"%s\"", rec.message);
        return -1;
    }
    log_recovery(&rec, srv->engine, server_now() - t0);
    srv->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->notify_fd < 0) {
        log_error("msg=\"cannot create an eventfd\" error=\"%s\"", strerror(errno));
        return -1;
    }
    srv->notify_ev = event_new(srv->base, srv->notify_fd, EV_READ | EV_PERSIST, on_journal_progress, srv);
    event_add(srv->notify_ev, NULL);
    srv->journal = journal_open(cfg->data_dir, rec.next_segment, cfg->fsync, cfg->segment_max,
                                &fileio_posix, journal_notify, srv, err, sizeof err);
    if (!srv->journal) {
        log_error("msg=\"%s\"", err);
        return -1;
    }
    if (confload_init(srv) != 0) /* a bad cron.json or throttles.json refuses the start */
        return -1;
    if (backup_init(srv) != 0)
        return -1;
    if (listen_fwp(srv) != 0 || http_init(srv) != 0)
        return -1;
    arm_signals_and_tick(srv);
    return 0;
}

int server_run(struct server *srv)
{
    char host[256];
    int port;
    config_split_hostport(srv->cfg.fwp_bind, host, sizeof host, &port);
    char whost[256];
    config_split_hostport(srv->cfg.http_bind, whost, sizeof whost, &port);
    if (srv->pgsrv) /* the URL may hold a password: it is not logged */
        log_info("msg=\"spoold ready fwp=%s:%d http=%s:%d store=postgres\" version=%s tls=%s", host,
                 srv->fwp_port, whost, srv->http_port, SPOOL_VERSION, srv->tls ? "on" : "off");
    else
        log_info("msg=\"spoold ready fwp=%s:%d http=%s:%d data=%s\" version=%s fsync=%s tls=%s", host,
                 srv->fwp_port, whost, srv->http_port, srv->cfg.data_dir, SPOOL_VERSION,
                 journal_policy_name(srv->cfg.fsync), srv->tls ? "on" : "off");
    char status[640];
    snprintf(status, sizeof status, "serving FWP on %s:%d, HTTP on %s:%d", host, srv->fwp_port,
             whost, srv->http_port);
    notify_ready(status);
    return event_base_dispatch(srv->base) < 0 ? -1 : 0;
}

void server_release(struct server *srv)
{
    /* Finish in-flight journal writes first: what was appended gets to disk,
     * and the replies that waited for it get one last chance to leave
     * (plaintext only: releasing them writes them at once; under TLS they
     * would need the session, and the loop that drives it has stopped). */
    if (srv->journal) {
        server_mark_durable(srv, journal_close(srv->journal));
        srv->journal = NULL;
    }
    if (srv->snapshot_pid) {
        int status;
        waitpid(srv->snapshot_pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            journal_prune(srv->cfg.data_dir, &fileio_posix, srv->snapshot_segment);
    }
    backup_release(srv);
    while (srv->conns)
        conn_close(srv->conns);
    pgsrv_free(srv->pgsrv); /* after the connections: none waits on it any more */
    srv->pgsrv = NULL;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    authdelay_release(srv); /* held 401s are answered before evhttp goes */
    http_release(srv);
    confload_release(srv);
    tls_server_free(srv->tls);
    srv->tls = NULL;
    crond_release(srv);
    if (srv->tick_ev)
        event_free(srv->tick_ev);
    if (srv->sig_int)
        event_free(srv->sig_int);
    if (srv->sig_term)
        event_free(srv->sig_term);
    if (srv->sig_chld)
        event_free(srv->sig_chld);
    if (srv->notify_ev)
        event_free(srv->notify_ev);
    if (srv->notify_fd >= 0)
        close(srv->notify_fd);
    if (srv->lock_fd >= 0)
        close(srv->lock_fd);
    engine_free(srv->engine);
    if (srv->base)
        event_base_free(srv->base);
    srv->engine = NULL;
    srv->base = NULL;
}
