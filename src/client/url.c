/*
 * Server URLs: tcp://[[user]:password@]host[:port] and tcp+tls://..., with
 * the defaults taken from SPOOL_URL, then FAKTORY_URL. Pure: no I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "spool/spool.h"

#define DEFAULT_URL "tcp://localhost:7419"
#define DEFAULT_PORT 7419

int spool_url_parse(const char *url, spool_url *out)
{
    if (!out)
        return tls_error(SPOOL_EARG, "spool_url_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!url || !*url) {
        url = getenv("SPOOL_URL");
        if (!url || !*url)
            url = getenv("FAKTORY_URL");
        if (!url || !*url)
            url = DEFAULT_URL;
    }
    const char *p;
    if (strncmp(url, "tcp://", 6) == 0) {
        p = url + 6;
    } else if (strncmp(url, "tcp+tls://", 10) == 0) {
        p = url + 10;
        out->is_tls = 1;
    } else {
        return tls_error(SPOOL_EURL, "bad URL \"%.200s\": the scheme must be tcp:// or tcp+tls://",
                         url);
    }
    /* Authority ends at the first '/', '?' or '#'; only an optional lone '/'
     * may follow (a path means nothing to FWP). */
    size_t alen = strcspn(p, "/?#");
    if (p[alen] && strcmp(p + alen, "/") != 0)
        return tls_error(SPOOL_EURL, "bad URL \"%.200s\": unexpected path or query after the port",
                         url);
    /* userinfo: everything up to the last '@' (a password may hold '@'). */
    const char *host = p;
    const char *at = NULL;
    for (const char *q = p; q < p + alen; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            size_t plen = (size_t)(at - colon - 1);
            if (plen >= sizeof out->password)
                return tls_error(SPOOL_EURL, "bad URL: password is too long");
            memcpy(out->password, colon + 1, plen);
            out->password[plen] = '\0';
        } else {
            /* tcp://password@host would be a user name; Faktory clients
             * want the password after a colon. */
            return tls_error(SPOOL_EURL,
                             "bad URL: write the password as tcp://:password@host:port");
        }
        host = at + 1;
    }
    const char *end = p + alen;
    const char *hend;
    const char *port = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (!rb)
            return tls_error(SPOOL_EURL, "bad URL \"%.200s\": unclosed '[' in host", url);
        host++;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return tls_error(SPOOL_EURL, "bad URL \"%.200s\": junk after ']'", url);
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        hend = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    size_t hlen = (size_t)(hend - host);
    if (hlen == 0)
        return tls_error(SPOOL_EURL, "bad URL \"%.200s\": missing host", url);
    if (hlen >= sizeof out->host)
        return tls_error(SPOOL_EURL, "bad URL: host name is too long");
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = DEFAULT_PORT;
    if (port) {
        if (port == end)
            return tls_error(SPOOL_EURL, "bad URL \"%.200s\": empty port", url);
        long v = 0;
        for (const char *q = port; q < end; q++) {
            if (*q < '0' || *q > '9')
                return tls_error(SPOOL_EURL, "bad URL \"%.200s\": port must be a number", url);
            v = v * 10 + (*q - '0');
            if (v > 65535)
                break;
        }
        if (v < 1 || v > 65535)
            return tls_error(SPOOL_EURL, "bad URL \"%.200s\": port out of range 1-65535", url);
        out->port = (int)v;
    }
    tls_error_clear();
    return 0;
}
