#include "fuzz_server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/config.h"
#include "server/conn.h"

/* Rounds of the loop with no byte moved before a run is given up. */
#define IDLE_ROUNDS 64
#define MAX_ROUNDS 100000

static struct engine *shadow;

static void on_record(void *ctx, const void *rec, size_t len)
{
    char err[256];
    if (engine_apply(shadow, rec, len, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_server: the engine wrote a record (type %u, %zu bytes) that "
                        "recovery cannot apply: %s\n",
                len ? ((const unsigned char *)rec)[0] : 0u, len, err);
        abort();
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    engine_tick(srv->engine, server_now());
}

static struct engine *new_engine(const struct engine_hooks *hooks)
{
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.seed = 7;
    return engine_new(&ec, hooks);
}

void fuzz_server_init(struct server *srv)
{
    static struct config cfg;
    static int have_cfg;
    if (!have_cfg) {
        char prog[] = "spoold", *argv[] = {prog, NULL};
        unsetenv("SPOOL_PASSWORD");
        unsetenv("FAKTORY_PASSWORD");
        if (config_parse(&cfg, 1, argv) != 0)
            abort();
        log_set_level(LOG_ERROR); /* the targets make the server log on every bad input */
        signal(SIGPIPE, SIG_IGN);
        have_cfg = 1;
    }
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->lock_fd = -1;
    srv->notify_fd = -1;
    srv->started_ns = server_now();
    srv->tick_armed_ns = INT64_MAX;
    srv->base = event_base_new();
    if (!srv->base)
        abort();
    struct engine_hooks hooks = {.ctx = srv, .record = on_record};
    srv->engine = new_engine(&hooks);
    shadow = new_engine(NULL);
    srv->tick_ev = evtimer_new(srv->base, on_tick, srv);
}

void fuzz_server_release(struct server *srv)
{
    while (srv->conns)
        conn_close(srv->conns);
    event_free(srv->tick_ev);
    engine_free(srv->engine);
    engine_free(shadow);
    shadow = NULL;
    event_base_free(srv->base);
    memset(srv, 0, sizeof *srv);
}

void fuzz_socketpair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
        perror("socketpair");
        abort();
    }
    for (int i = 0; i < 2; i++)
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
}

void fuzz_server_drive(struct server *srv, int client_fd, const uint8_t *input, size_t len)
{
    size_t sent = 0;
    int is_shut = 0, idle = 0;
    char buf[65536];
    int is_echo = getenv("FUZZ_ECHO") != NULL; /* to see what the server answered */
    for (int round = 0; round < MAX_ROUNDS && idle < IDLE_ROUNDS; round++) {
        int moved = 0;
        if (sent < len) {
            ssize_t n = write(client_fd, input + sent, len - sent);
            if (n > 0) {
                sent += (size_t)n;
                moved = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                sent = len; /* the server closed: nothing more can go in */
            }
        }
        /* End of input once the server has gone quiet: pipelined HTTP requests are
         * all answered first (evhttp drops the rest of a connection at EOF). */
        if (sent == len && !is_shut && idle >= 4) {
            shutdown(client_fd, SHUT_WR);
            is_shut = 1;
            idle = 0;
        }
        event_base_loop(srv->base, EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t n = read(client_fd, buf, sizeof buf);
            if (n > 0) {
                if (is_echo)
                    fwrite(buf, 1, (size_t)n, stderr);
                moved = 1;
                continue;
            }
            if (n == 0) /* the server closed its end: the run is over */
                return;
            break;
        }
        idle = moved ? 0 : idle + 1;
    }
}
