#include "server/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "server/fwp.h"
#include "server/server.h"
#include "server/tls.h"

#define HANDSHAKE_TIMEOUT_S 2

static void conn_free(struct conn *c);
static void process_input(struct conn *c);

/*
 * Plaintext replies are written as soon as they are ready instead of on the
 * loop's next turn: one writev per reply, and no epoll change to watch for
 * writability and another to stop watching. Replies to what one read
 * brought go out together once process_input is done with it. Only what the
 * socket does not take waits for libevent's write event, which is enabled
 * for that and disabled again once the buffer is empty (on_write). Under
 * TLS the bufferevent writes through the session as before.
 */
static void flush_output(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->srv->tls || c->in_process || !evbuffer_get_length(out))
        return;
    /* A socket bufferevent keeps its output's front frozen for its own write
     * callback; this write stands in for that callback. On an error the write
     * event retries and reports it (on_event closes). */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out))
        bufferevent_enable(c->bev, EV_WRITE);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    process_input(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->is_closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        conn_free(c);
        return;
    }
    if (!c->srv->tls) /* drained: flush_output writes the next replies */
        bufferevent_disable(bev, EV_WRITE);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_debug("msg=\"connection closed\" peer=%s", c->peer);
        conn_free(c);
    }
}

static void on_close_soon(evutil_socket_t fd, short what, void *arg)
{
    conn_free(arg);
}

void conn_close_soon(struct conn *c)
{
    c->is_closing = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_active(c->close_ev, 0, 0);
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    log_debug("msg=\"handshake timed out\" peer=%s", c->peer);
    conn_free(c);
}

static void on_line_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->is_blocked) { /* its input waits for the FETCH, not for the client */
        struct timeval tv = {c->srv->cfg.line_timeout_s, 0};
        evtimer_add(c->line_timer, &tv);
        return;
    }
    log_info("msg=\"closing a client that left a command line unfinished\" peer=%s timeout_s=%d",
             c->peer, c->srv->cfg.line_timeout_s);
    conn_reply_err(c, "timed out after %d s waiting for the rest of the command line",
                   c->srv->cfg.line_timeout_s);
    conn_close_after_flush(c);
}

void conn_accept(struct server *srv, int fd, const char *peer)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    /* Under TLS the handshake deadline below covers the TLS handshake too. */
    c->bev = srv->tls ? tls_server_bufferevent(srv->tls, srv->base, fd)
                      : bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->held = evbuffer_new();
    c->timer = evtimer_new(srv->base, on_handshake_timeout, c);
    c->line_timer = evtimer_new(srv->base, on_line_timeout, c);
    c->fetch_timer = evtimer_new(srv->base, fwp_fetch_timeout, c);
    c->close_ev = event_new(srv->base, -1, 0, on_close_soon, c);
    if (!c->bev || !c->held || !c->timer || !c->line_timer || !c->fetch_timer || !c->close_ev) {
        /* libevent allocations fail only when memory is gone: treat as xmalloc does. */
        log_error("msg=\"out of memory setting up a connection\" peer=%s", peer);
        abort();
    }
    c->waiter.ctx = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;

    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    /* Stop reading once a full line plus slack is buffered: bounded memory per client. */
    size_t high = srv->cfg.max_line + 65536;
    bufferevent_setwatermark(c->bev, EV_READ, 0, high);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (!srv->tls) /* flush_output writes; the write event only finishes what it cannot */
        bufferevent_disable(c->bev, EV_WRITE);

    if (srv->cfg.password) {
        unsigned char rnd[10];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            memset(rnd, 0x5a, sizeof rnd);
        uint64_t salt = 0;
        memcpy(&salt, rnd, 8);
        salt &= INT64_MAX; /* a 63-bit salt, as Faktory sends */
        c->iterations = 4000 + ((rnd[8] << 8 | rnd[9]) % 4096);
        snprintf(c->salt, sizeof c->salt, "%llx", (unsigned long long)salt);
        char hi[256];
        int n = snprintf(hi, sizeof hi, "+HI {\"v\":2,\"i\":%d,\"s\":\"%s\"%s}\r\n", c->iterations,
                         c->salt, srv->cfg.is_plain_fwp ? "" : "," FWP_HI_SPOOL);
        conn_reply(c, hi, (size_t)n);
    } else if (srv->cfg.is_plain_fwp) {
        conn_reply_str(c, "+HI {\"v\":2}\r\n");
    } else {
        conn_reply_str(c, "+HI {\"v\":2," FWP_HI_SPOOL "}\r\n");
    }
    struct timeval tv = {HANDSHAKE_TIMEOUT_S, 0};
    evtimer_add(c->timer, &tv);
    log_debug("msg=\"connection accepted\" peer=%s", c->peer);
}

static void conn_free(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->in_process) { /* finish the command first; process_input frees it */
        c->want_free = 1;
        return;
    }
    engine_unwait(srv->engine, &c->waiter);
    fwp_pg_conn_gone(c);
    if (c->wid) {
        engine_worker_detach(srv->engine, c->wid);
        free(c->wid);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    event_free(c->timer);
    event_free(c->fetch_timer);
    event_free(c->line_timer);
    event_free(c->close_ev);
    if (c->auth_timer)
        event_free(c->auth_timer);
    bufferevent_free(c->bev);
    evbuffer_free(c->held);
    free(c->marks);
    free(c);
}

void conn_close(struct conn *c)
{
    conn_free(c);
}

void conn_close_after_flush(struct conn *c)
{
    c->is_closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    if (c->in_process)
        return; /* process_input flushes and frees */
    flush_output(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_free(c);
}

/* A client that does not read its replies is cut off before it can grow our memory. */
static void check_output(struct conn *c)
{
    size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
    if (out + evbuffer_get_length(c->held) > c->srv->cfg.max_output) {
        log_warn("msg=\"disconnecting a client that does not read its replies\" peer=%s bytes=%zu",
                 c->peer, out);
        conn_close_soon(c);
    }
}

static void hold(struct conn *c, const char *data, size_t len, uint64_t seq)
{
    if (c->nmarks == c->marks_cap) {
        c->marks_cap = c->marks_cap ? c->marks_cap * 2 : 8;
        c->marks = xrealloc(c->marks, c->marks_cap * sizeof *c->marks);
    }
    c->marks[c->nmarks++] = (struct held_mark){seq, len};
    evbuffer_add(c->held, data, len);
}

void conn_reply(struct conn *c, const char *data, size_t len)
{
    if (c->nmarks) { /* keep order behind replies still waiting for the disk */
        hold(c, data, len, 0);
        return;
    }
    bufferevent_write(c->bev, data, len);
    check_output(c);
    flush_output(c);
}

void conn_reply_str(struct conn *c, const char *s)
{
    conn_reply(c, s, strlen(s));
}

void conn_reply_err(struct conn *c, const char *fmt, ...)
{
    char buf[1200];
    memcpy(buf, "-ERR ", 5);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + 5, sizeof buf - 7, fmt, ap);
    va_end(ap);
    size_t len = 5 + (n < 0 ? 0 : (size_t)n > sizeof buf - 8 ? sizeof buf - 8 : (size_t)n);
    /* A reply is one line: no CR or LF from echoed client text may split it. */
    for (size_t i = 5; i < len; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    buf[len++] = '\r';
    buf[len++] = '\n';
    conn_reply(c, buf, len);
}

void conn_reply_bulk(struct conn *c, const char *data, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof head, "$%zu\r\n", len);
    if (c->nmarks) {
        hold(c, head, (size_t)n, 0);
        hold(c, data, len, 0);
        hold(c, "\r\n", 2, 0);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, head, (size_t)n);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
    check_output(c);
    flush_output(c);
}

void conn_reply_durable(struct conn *c, const char *data, size_t len, uint64_t seq)
{
    if (seq <= c->srv->durable_seq) {
        conn_reply(c, data, len);
        return;
    }
    hold(c, data, len, seq);
}

void conn_release_durable(struct conn *c, uint64_t durable_seq)
{
    size_t k = 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (k < c->nmarks && c->marks[k].seq <= durable_seq) {
        evbuffer_remove_buffer(c->held, out, c->marks[k].len);
        k++;
    }
    if (!k)
        return;
    memmove(c->marks, c->marks + k, (c->nmarks - k) * sizeof *c->marks);
    c->nmarks -= k;
    flush_output(c);
}

void conn_unblock(struct conn *c)
{
    c->is_blocked = 0;
    evtimer_del(c->fetch_timer);
    /* Go on with buffered commands from the loop, not from inside whoever woke us. */
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void handle_line(struct conn *c, char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        line[--len] = '\0';
    if (c->state == CONN_HANDSHAKE)
        fwp_hello(c, line, len);
    else
        fwp_dispatch(c, line, len);
}

static void process_input(struct conn *c)
{
    struct server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->in_process = 1;
    while (!c->is_blocked && !c->is_closing && !c->want_free) {
        size_t avail = evbuffer_get_length(in);
        if (!avail) {
            evtimer_del(c->line_timer);
            break;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (c->is_skipping) {
                evbuffer_drain(in, avail);
            } else if (avail > srv->cfg.max_line) {
                conn_reply_err(c, "line too long: over the limit of %zu bytes (--max-line)",
                               srv->cfg.max_line);
                c->is_skipping = 1; /* resynchronise at the next newline */
                evbuffer_drain(in, avail);
            } else if (!evtimer_pending(c->line_timer, NULL)) {
                struct timeval tv = {srv->cfg.line_timeout_s, 0};
                evtimer_add(c->line_timer, &tv);
            }
            break;
        }
        size_t len = (size_t)eol.pos;
        evtimer_del(c->line_timer);
        if (c->is_skipping) {
            c->is_skipping = 0;
            evbuffer_drain(in, len + eol_len);
            continue;
        }
        if (len > srv->cfg.max_line) {
            conn_reply_err(c, "line too long: over the limit of %zu bytes (--max-line)",
                           srv->cfg.max_line);
            evbuffer_drain(in, len + eol_len);
            continue;
        }
        char *line = (char *)evbuffer_pullup(in, (ssize_t)(len + eol_len));
        line[len] = '\0'; /* overwrites the '\n' we are about to drain */
        handle_line(c, line, len);
        evbuffer_drain(in, len + eol_len);
    }
    c->in_process = 0;
    flush_output(c);
    if (c->want_free) {
        c->want_free = 0;
        conn_free(c);
        return;
    }
    if (c->is_closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_free(c);
}
