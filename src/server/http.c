#include "server/http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "server/config.h"
#include "server/info.h"
#include "server/server.h"

static void send_json(struct evhttp_request *req, struct sbuf *body)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body->buf, body->len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || !path) {
        evhttp_send_error(req, 405, "only GET is served here");
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
    } else {
        evhttp_send_error(req, HTTP_NOTFOUND, "no such page");
    }
    sbuf_release(&body);
}

int http_init(struct server *srv)
{
    char host[256];
    int port;
    if (config_split_hostport(srv->cfg.http_bind, host, sizeof host, &port))
        return -1;
    srv->http = evhttp_new(srv->base);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(srv->http, 16384);
    evhttp_set_max_body_size(srv->http, 65536);
    evhttp_set_timeout(srv->http, 30);
    evhttp_set_gencb(srv->http, on_request, srv);
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
    if (srv->http)
        evhttp_free(srv->http);
    srv->http = NULL;
}
