#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "server/conn.h"
#include "server/http.h"

int64_t server_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

uint64_t server_commit(struct server *srv)
{
    /* No journal yet: a change is as durable as it will get when it is made. */
    uint64_t seq = ++srv->commit_seq;
    server_mark_durable(srv, seq);
    return seq;
}

void server_mark_durable(struct server *srv, uint64_t seq)
{
    if (seq <= srv->durable_seq)
        return;
    srv->durable_seq = seq;
    for (struct conn *c = srv->conns; c; c = c->next)
        if (c->nmarks)
            conn_release_durable(c, seq);
}

static int64_t armed_ns;

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
    if (next >= armed_ns)
        return;
    int64_t now = server_now();
    int64_t delay = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(delay / NS_PER_S), (suseconds_t)(delay % NS_PER_S / 1000)};
    evtimer_add(srv->tick_ev, &tv);
    armed_ns = next;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    int64_t now = server_now();
    int64_t next = engine_tick(srv->engine, now);
    int64_t delay = next > now ? next - now : 0;
    /* Round up to the next millisecond so a due job is never a hair early. */
    delay += NS_PER_MS - 1;
    struct timeval tv = {(time_t)(delay / NS_PER_S), (suseconds_t)(delay % NS_PER_S / 1000)};
    evtimer_add(srv->tick_ev, &tv);
    armed_ns = next;
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
    srv->is_stopping = 1;
    event_base_loopexit(srv->base, NULL);
}

static int make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
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

int server_init(struct server *srv, const struct config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = *cfg;
    srv->started_ns = server_now();
    armed_ns = INT64_MAX;
    if (make_dirs(cfg->data_dir) != 0) {
        log_error("msg=\"cannot create the data directory\" dir=%s error=\"%s\"", cfg->data_dir,
                  strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    srv->base = event_base_new();
    if (!srv->base) {
        log_error("msg=\"cannot create the event loop\"");
        return -1;
    }
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.dead_max = cfg->dead_max;
    ec.seed = (uint32_t)(srv->started_ns ^ (srv->started_ns >> 32)) | 1;
    struct engine_hooks hooks = {.ctx = srv, .reaped = on_reaped};
    srv->engine = engine_new(&ec, &hooks);
    if (listen_fwp(srv) != 0 || http_init(srv) != 0)
        return -1;
    srv->tick_ev = evtimer_new(srv->base, on_tick, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    evsignal_add(srv->sig_int, NULL);
    evsignal_add(srv->sig_term, NULL);
    on_tick(-1, 0, srv);
    return 0;
}

int server_run(struct server *srv)
{
    char host[256];
    int port;
    config_split_hostport(srv->cfg.fwp_bind, host, sizeof host, &port);
    char whost[256];
    config_split_hostport(srv->cfg.http_bind, whost, sizeof whost, &port);
    log_info("msg=\"spoold ready fwp=%s:%d http=%s:%d data=%s\" version=%s", host, srv->fwp_port,
             whost, srv->http_port, srv->cfg.data_dir, SPOOL_VERSION);
    return event_base_dispatch(srv->base) < 0 ? -1 : 0;
}

void server_release(struct server *srv)
{
    while (srv->conns)
        conn_close(srv->conns);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    http_release(srv);
    if (srv->tick_ev)
        event_free(srv->tick_ev);
    if (srv->sig_int)
        event_free(srv->sig_int);
    if (srv->sig_term)
        event_free(srv->sig_term);
    engine_free(srv->engine);
    if (srv->base)
        event_base_free(srv->base);
    srv->engine = NULL;
    srv->base = NULL;
}
