#include "server/dashboard.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

/*
 * Scripts, styles and fetches only from this server; no inline script or
 * style, no plugins, no framing (clickjacking of the buttons), forms post
 * nowhere. The page builds its DOM from text nodes, so a job's text never
 * becomes markup; this policy is the second line of defence.
 */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct dashboard_asset *dashboard_find(const char *name)
{
    for (const struct dashboard_asset *a = dashboard_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* If-None-Match holds the ETag (alone, in a list, or "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return 0;
    if (strcmp(inm, "*") == 0)
        return 1;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ' || after == '\t')
            return 1;
    }
    return 0;
}

static void send_asset(struct evhttp_request *req, const struct dashboard_asset *a)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy", DASHBOARD_CSP);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    /* Revalidate every time: a new spoold binary may carry new files under the same names. */
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "ETag", a->etag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (etag_matches(inm, a->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(h, "Content-Type", a->content_type);
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_reference(out, a->data, a->len, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

int dashboard_serve(struct evhttp_request *req, const char *path)
{
    const struct dashboard_asset *a = NULL;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        a = dashboard_find("index.html");
    } else if (strncmp(path, "/ui/", 4) == 0) {
        a = dashboard_find(path + 4);
        if (!a) {
            evhttp_send_error(req, 404, "no such dashboard file");
            return 1;
        }
    } else {
        return 0;
    }
    if (!a) { /* the build embeds index.html; its absence is a build fault */
        evhttp_send_error(req, 500, "the dashboard was not built into this spoold");
        return 1;
    }
    send_asset(req, a);
    return 1;
}
