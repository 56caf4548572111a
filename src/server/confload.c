#include "server/confload.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "engine/cron.h"
#include "engine/throttle.h"
#include "server/crond.h"
#include "server/server.h"

#define THROTTLES_FILE "throttles.json"
#define THROTTLES_FILE_MAX (1024 * 1024)

struct confload {
    struct event *sig_hup;
    char *throttles_path;             /* <config-dir>/throttles.json, or NULL without -c */
    struct throttle_config throttles; /* what the engine was last given */
};

/* Reads and parses throttles.json: 0 (an absent file is an empty config), or -1 with err. */
static int load_throttles(struct confload *cl, struct throttle_config *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!cl->throttles_path)
        return 0;
    char *buf;
    size_t n;
    if (config_read_file(cl->throttles_path, THROTTLES_FILE_MAX, &buf, &n, err, errlen) != 0)
        return -1;
    if (!buf)
        return 0; /* no throttles.json: no throttles */
    char perr[THROTTLE_ERR_MAX];
    int rc = throttle_config_parse(buf, n, out, perr);
    free(buf);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", cl->throttles_path, perr);
    return rc;
}

int confload_check_file(const char *config_dir, char *msg, size_t msglen)
{
    size_t n = strlen(config_dir) + sizeof THROTTLES_FILE + 1;
    struct confload cl = {.throttles_path = xmalloc(n)};
    snprintf(cl.throttles_path, n, "%s/%s", config_dir, THROTTLES_FILE);
    struct throttle_config thr;
    int rc = load_throttles(&cl, &thr, msg, msglen);
    if (rc == 0 && access(cl.throttles_path, F_OK) == 0)
        snprintf(msg, msglen, "%s: %zu queues", cl.throttles_path, thr.n);
    else if (rc == 0)
        snprintf(msg, msglen, "%s: absent (no throttles)", cl.throttles_path);
    if (rc == 0)
        throttle_config_release(&thr);
    free(cl.throttles_path);
    return rc;
}

static void apply_throttles(struct server *srv, struct throttle_config *cfg)
{
    struct confload *cl = srv->confload;
    engine_throttle_set(srv->engine, cfg, server_now());
    throttle_config_release(&cl->throttles);
    cl->throttles = *cfg;
    memset(cfg, 0, sizeof *cfg);
    /* Fetchers may have been served, and rate windows move the next deadline. */
    server_schedule_tick(srv);
}

static void throttles_json(const struct throttle_config *c, struct sbuf *out)
{
    sbuf_adds(out, "{");
    for (size_t i = 0; i < c->n; i++) {
        if (i)
            sbuf_adds(out, ",");
        sbuf_add_json_str(out, c->specs[i].queue, strlen(c->specs[i].queue));
        sbuf_adds(out, ":");
        throttle_limits_json_open(&c->specs[i].limits, out);
        sbuf_adds(out, "}");
    }
    sbuf_adds(out, "}");
}

int confload_reload(struct server *srv, struct sbuf *out, char *err)
{
    struct confload *cl = srv->confload;
    if (!srv->cfg.config_dir)
        return CONFLOAD_ENODIR;
    struct cron_table *cron = NULL;
    struct throttle_config thr;
    if (crond_load(srv, &cron, err, CONFLOAD_ERR_MAX) != 0)
        return CONFLOAD_EBAD;
    if (load_throttles(cl, &thr, err, CONFLOAD_ERR_MAX) != 0) {
        cron_table_free(cron);
        return CONFLOAD_EBAD;
    }
    crond_apply(srv, cron);
    apply_throttles(srv, &thr);
    sbuf_adds(out, "{\"cron\":");
    crond_list_json(srv, out);
    sbuf_adds(out, ",\"throttles\":");
    throttles_json(&cl->throttles, out);
    sbuf_adds(out, "}");
    return 0;
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    (void)sig;
    (void)what;
    char err[CONFLOAD_ERR_MAX];
    struct sbuf b;
    sbuf_init(&b);
    int rc = confload_reload(srv, &b, err);
    sbuf_release(&b);
    if (rc == CONFLOAD_ENODIR) {
        log_info("msg=\"SIGHUP: no config directory (-c), nothing to reload\"");
    } else if (rc != 0) {
        log_error("msg=\"configuration not reloaded; keeping the previous cron entries and "
                  "throttles\" error=\"%s\"",
                  err);
    } else {
        log_info("msg=\"cron.json reloaded\" entries=%zu", crond_entries(srv));
        log_info("msg=\"throttles.json reloaded\" queues=%zu", srv->confload->throttles.n);
    }
}

int confload_init(struct server *srv)
{
    struct confload *cl = xcalloc(1, sizeof *cl);
    srv->confload = cl;
    if (crond_init(srv) != 0) /* a bad cron.json refuses the start */
        return -1;
    if (srv->cfg.config_dir) {
        size_t n = strlen(srv->cfg.config_dir) + sizeof THROTTLES_FILE + 1;
        cl->throttles_path = xmalloc(n);
        snprintf(cl->throttles_path, n, "%s/%s", srv->cfg.config_dir, THROTTLES_FILE);
        char err[CONFLOAD_ERR_MAX];
        struct throttle_config thr;
        if (load_throttles(cl, &thr, err, sizeof err) != 0) {
            log_error("msg=\"refusing to start: bad throttle configuration\" error=\"%s\"", err);
            return -1;
        }
        /* After recovery: in-flight counts come from the replayed working set. */
        engine_throttle_set(srv->engine, &thr, server_now());
        cl->throttles = thr;
        if (thr.n)
            log_info("msg=\"throttles.json loaded\" path=%s queues=%zu", cl->throttles_path, thr.n);
    }
    cl->sig_hup = evsignal_new(srv->base, SIGHUP, on_sighup, srv);
    evsignal_add(cl->sig_hup, NULL);
    return 0;
}

void confload_release(struct server *srv)
{
    struct confload *cl = srv->confload;
    if (!cl)
        return;
    if (cl->sig_hup)
        event_free(cl->sig_hup);
    throttle_config_release(&cl->throttles);
    free(cl->throttles_path);
    free(cl);
    srv->confload = NULL;
}
