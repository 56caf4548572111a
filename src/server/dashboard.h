/*
 * dashboard: the web UI that spoold serves on its HTTP listener (docs/dashboard.md).
 * A single page (GET /) whose script and style sheet (GET /ui/<name>) talk
 * to the JSON API under /api/v1. The files live in src/server/dashboard/
 * and are compiled into the binary by cmake/embed_assets.cmake; nothing is
 * read from disk at run time.
 *
 * Every reply carries a strict Content-Security-Policy (scripts and styles
 * from this server only, no inline script, no framing) and an ETag; the
 * browser revalidates (Cache-Control: no-cache) and gets 304 when unchanged.
 * Event-loop thread only.
 */
#ifndef SPOOL_DASHBOARD_H
#define SPOOL_DASHBOARD_H

#include <stddef.h>

struct evhttp_request;

/* One embedded file; the generated table ends with an entry whose name is NULL. */
struct dashboard_asset {
    const char *name;         /* file name under src/server/dashboard/, e.g. "app.js" */
    const char *content_type; /* full Content-Type header value */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, e.g. "\"0123456789abcdef\"" */
};

extern const struct dashboard_asset dashboard_assets[];

/*
 * Answers a GET for the dashboard: "/" (index.html) or "/ui/<name>".
 * Returns 1 when req was answered (the asset, a 304, or a 404 for an
 * unknown /ui/ name), 0 when path is not the dashboard's (nothing sent).
 * Authentication is checked by the caller.
 */
int dashboard_serve(struct evhttp_request *req, const char *path);

/* The asset called name, or NULL. */
const struct dashboard_asset *dashboard_find(const char *name);

#endif
