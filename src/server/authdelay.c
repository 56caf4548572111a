#include "server/authdelay.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "server/auth.h"
#include "server/conn.h"
#include "server/http.h"
#include "server/server.h"

struct held_request {
    struct held_request *prev, *next;
    struct authdelay *ad;
    struct evhttp_request *req;
    struct event *timer;
};

struct authdelay {
    struct auth_throttle throttle;
    struct held_request *held; /* HTTP requests waiting for their 401 */
};

static struct authdelay *get(struct server *srv)
{
    if (!srv->authdelay) {
        srv->authdelay = xcalloc(1, sizeof *srv->authdelay);
        auth_throttle_init(&srv->authdelay->throttle);
    }
    return srv->authdelay;
}

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    return tv;
}

static void on_fwp_delay(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    conn_reply_err(c, "Invalid password");
    conn_close_after_flush(c);
}

void authdelay_fwp(struct conn *c)
{
    struct server *srv = c->srv;
    char ip[64];
    auth_peer_ip(c->peer, ip, sizeof ip);
    unsigned failures;
    int64_t ms = auth_throttle_fail(&get(srv)->throttle, ip, server_now(), &failures);
    log_warn("msg=\"wrong password\" proto=fwp peer=%s failures=%u delay_ms=%lld", c->peer,
             failures, (long long)ms);
    /* The handshake deadline must not cut the delay short, and no later line may run:
     * the connection counts as blocked until the timer answers and closes it. */
    evtimer_del(c->timer);
    c->is_blocked = 1;
    if (!c->auth_timer)
        c->auth_timer = evtimer_new(srv->base, on_fwp_delay, c);
    if (!c->auth_timer) {
        log_error("msg=\"out of memory holding a wrong-password reply\" peer=%s", c->peer);
        abort();
    }
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(c->auth_timer, &tv);
}

static void unlink_held(struct held_request *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        h->ad->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
}

/*
 * If the client hangs up meanwhile, evhttp keeps the request (detached from
 * its connection) until it is answered, so the pointer stays valid; the
 * reply then only frees it.
 */
static void on_http_delay(evutil_socket_t fd, short what, void *arg)
{
    struct held_request *h = arg;
    unlink_held(h);
    http_reply_unauthorized(h->req);
    event_free(h->timer);
    free(h);
}

void authdelay_http(struct server *srv, struct evhttp_request *req)
{
    struct authdelay *ad = get(srv);
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    const char *ip = addr && *addr ? addr : "?";
    unsigned failures;
    int64_t ms = auth_throttle_fail(&ad->throttle, ip, server_now(), &failures);
    log_warn("msg=\"wrong password\" proto=http peer=%s:%u failures=%u delay_ms=%lld", ip,
             (unsigned)port, failures, (long long)ms);
    struct held_request *h = xcalloc(1, sizeof *h);
    h->ad = ad;
    h->req = req;
    h->timer = evtimer_new(srv->base, on_http_delay, h);
    if (!h->timer) {
        log_error("msg=\"out of memory holding a wrong-password reply\" peer=%s", ip);
        abort();
    }
    h->next = ad->held;
    if (ad->held)
        ad->held->prev = h;
    ad->held = h;
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(h->timer, &tv);
}

void authdelay_release(struct server *srv)
{
    struct authdelay *ad = srv->authdelay;
    if (!ad)
        return;
    while (ad->held) {
        struct held_request *h = ad->held;
        unlink_held(h);
        event_free(h->timer);
        http_reply_unauthorized(h->req);
        free(h);
    }
    auth_throttle_release(&ad->throttle);
    free(ad);
    srv->authdelay = NULL;
}
