#include "server/http.h"

#include <cjson/cJSON.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <stdlib.h>

#include "common/log.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/authdelay.h"
#include "server/config.h"
#include "server/dashboard.h"
#include "server/pgsrv.h"
#include "common/xalloc.h"
#include "server/info.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/tls.h"

static void send_json(struct evhttp_request *req, struct sbuf *body)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body->buf, body->len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/*
 * HTTP Basic auth with the server password (any user name), compared in
 * constant time (auth_password_equal). 1 when authorized; 0 when not, with
 * *has_credentials set when the request carried an Authorization header
 * (a wrong password, as opposed to a first request without one).
 */
static int authorized(struct server *srv, struct evhttp_request *req, int *has_credentials)
{
    const char *pw = srv->cfg.password;
    *has_credentials = 0;
    if (!pw)
        return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h)
        return 0;
    *has_credentials = 1;
    if (strncasecmp(h, "Basic ", 6) != 0)
        return 0;
    h += 6;
    size_t n = strlen(h);
    if (n == 0 || n > 4096 || n % 4)
        return 0;
    unsigned char *dec = malloc(n);
    if (!dec)
        return 0;
    int len = EVP_DecodeBlock(dec, (const unsigned char *)h, (int)n);
    while (len > 0 && n && h[--n] == '=') /* EVP_DecodeBlock counts padding as zero bytes */
        len--;
    int ok = 0;
    if (len > 0) {
        unsigned char *colon = memchr(dec, ':', (size_t)len);
        if (colon) {
            size_t plen = (size_t)len - (size_t)(colon + 1 - dec);
            ok = auth_password_equal(colon + 1, plen, pw);
        }
    }
    free(dec);
    return ok;
}

void http_reply_unauthorized(struct evhttp_request *req)
{
    /* evhttp_send_error drops our headers, so the 401 is sent by hand. */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "WWW-Authenticate", "Basic realm=\"spool\"");
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_printf(body, "a password is required\n");
    evhttp_send_reply(req, 401, "Unauthorized", body);
    evbuffer_free(body);
}

static void send_metrics(struct evhttp_request *req, const struct sbuf *body)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body->buf, body->len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", METRICS_CONTENT_TYPE);
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/* /stats and /metrics on the PostgreSQL store: one statement's counts, then the same shapes. */
struct store_counts {
    struct server *srv;
    struct evhttp_request *req;
    int is_metrics;
};

static void on_store_counts(void *arg, int rc, const char *msg, const char *out, size_t outlen)
{
    struct store_counts *sc = arg;
    if (rc != 0) {
        evhttp_send_error(sc->req, 503, msg);
    } else {
        cJSON *counts = cJSON_ParseWithLength(out, outlen);
        struct sbuf body;
        sbuf_init(&body);
        if (sc->is_metrics) {
            metrics_render_store(sc->srv, counts, &body);
            send_metrics(sc->req, &body);
        } else {
            info_render_store(sc->srv, counts, &body);
            send_json(sc->req, &body);
        }
        sbuf_release(&body);
        cJSON_Delete(counts);
    }
    free(sc);
}

static void http_store_counts(struct server *srv, struct evhttp_request *req, int is_metrics)
{
    struct store_counts *sc = xcalloc(1, sizeof *sc);
    sc->srv = srv;
    sc->req = req;
    sc->is_metrics = is_metrics;
    pgsrv_exec(srv->pgsrv, "SELECT spool.info()::text", 0, NULL, on_store_counts, sc);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    int has_credentials;
    if (!authorized(srv, req, &has_credentials)) {
        if (has_credentials)
            authdelay_http(srv, req); /* a wrong password: 401 after a growing delay */
        else
            http_reply_unauthorized(req);
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path && (strcmp(path, "/api/v1") == 0 || strncmp(path, "/api/v1/", 8) == 0)) {
        api_handle(srv, req, path);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || !path) {
        evhttp_send_error(req, 405, "only GET is served here");
        return;
    }
    if (srv->pgsrv && (strcmp(path, "/stats") == 0 || strcmp(path, "/metrics") == 0)) {
        http_store_counts(srv, req, strcmp(path, "/metrics") == 0);
        return;
    }
    struct sbuf body;
    sbuf_init(&body);
    if (strcmp(path, "/stats") == 0) {
        info_render(srv, &body);
        send_json(req, &body);
    } else if (strcmp(path, "/health") == 0) {
        info_render_health(srv, &body);
        send_json(req, &body);
    } else if (strcmp(path, "/metrics") == 0) {
        metrics_render(srv, &body);
        send_metrics(req, &body);
    } else if (!dashboard_serve(req, path)) {
        evhttp_send_error(req, HTTP_NOTFOUND, "no such page");
    }
    sbuf_release(&body);
}

void http_new(struct server *srv)
{
    srv->http = evhttp_new(srv->base);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(srv->http, 16384);
    /* The API takes a job (--max-job-size) or a batch (--max-line); evhttp answers 413 beyond. */
    size_t max_body = srv->cfg.max_line > srv->cfg.max_job ? srv->cfg.max_line : srv->cfg.max_job;
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)max_body + 1);
    evhttp_set_timeout(srv->http, 30);
    evhttp_set_gencb(srv->http, on_request, srv);
    if (srv->tls)
        tls_server_attach_http(srv->tls, srv->http);
}

int http_init(struct server *srv)
{
    char host[256];
    int port;
    if (config_split_hostport(srv->cfg.http_bind, host, sizeof host, &port))
        return -1;
    http_new(srv);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!sock) {
        log_error("msg=\"cannot listen for HTTP\" bind=%s", srv->cfg.http_bind);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
    srv->http_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void http_release(struct server *srv)
{
    api_abort_pending(srv); /* evhttp_free would free the held requests under us */
    if (srv->http)
        evhttp_free(srv->http);
    srv->http = NULL;
}
