/*
 * spool_client: one blocking FWP connection. Owns the socket (non-blocking,
 * every read and write waits in poll() with the client's timeout), a read
 * buffer for RESP replies, the last error message, and the push middleware.
 * One thread at a time. A network failure marks the client broken: every
 * later call returns SPOOL_ENOTCONN, the caller connects again.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "error.h"
#include "job.h"
#include "tlsconn.h"
#include "spool/spool.h"

#define DEFAULT_TIMEOUT_MS 10000
#define MAX_REPLY (64u << 20) /* a reply larger than this is refused */
#define MAX_WID 128

struct spool_client {
    int fd;
    struct tlsconn *tls; /* NULL: plaintext */
    int timeout_ms;
    int is_broken;
    int is_awaiting; /* a command went out and nothing was read since: poll before recv */
    char *rbuf; /* unread bytes are rbuf[rpos..rlen) */
    size_t rpos, rlen, rcap;
    char wid[MAX_WID];
    char err[1024];
    struct push_mw *push;
    size_t npush;
    /* Native batch limits from the greeting's "spool" key; 0 = not offered. */
    int fetch_max, ack_max, push_max;
};

static int set_err(spool_client *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(spool_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on c->fd until deadline; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int broken(spool_client *c, int rc, const char *what)
{
    c->is_broken = 1;
    if (rc == SPOOL_ECLOSED)
        return set_err(c, rc, "%s: connection closed by the server", what);
    return set_err(c, rc, "%s: %s", what, spool_strerror(rc));
}

static int send_all(spool_client *c, const char *buf, size_t len)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    while (len > 0) {
        if (c->tls) {
            short ev = 0;
            ssize_t n = tlsconn_write(c->tls, buf, len, &ev);
            if (n > 0) {
                buf += n;
                len -= (size_t)n;
                continue;
            }
            int rc = n == -EAGAIN ? wait_fd(c->fd, ev, deadline) : n < 0 ? (int)n : SPOOL_ECLOSED;
            if (rc)
                return broken(c, rc, "send");
            continue;
        }
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc)
                return broken(c, rc, "send");
            continue;
        }
        return broken(c, n < 0 ? -errno : SPOOL_ECLOSED, "send");
    }
    c->is_awaiting = 1;
    return 0;
}

/* Reads more bytes into rbuf, waiting until deadline. */
static int fill(spool_client *c, int64_t deadline)
{
    if (c->rpos > 0 && c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    if (c->rlen == c->rcap) {
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        } else {
            size_t ncap = c->rcap ? c->rcap * 2 : 16384;
            if (ncap > MAX_REPLY + 64)
                return broken(c, SPOOL_ETOOBIG, "read");
            char *nb = realloc(c->rbuf, ncap);
            if (!nb)
                return set_err(c, -ENOMEM, "out of memory reading a reply");
            c->rbuf = nb;
            c->rcap = ncap;
        }
    }
    while (c->tls) {
        short ev = 0;
        ssize_t n = tlsconn_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen, &ev);
        if (n > 0) {
            c->rlen += (size_t)n;
            return 0;
        }
        int rc = n == -EAGAIN ? wait_fd(c->fd, ev, deadline) : n < 0 ? (int)n : SPOOL_ECLOSED;
        if (rc)
            return broken(c, rc, "read");
    }
    /* Right after a command its reply is almost never there yet: wait first
     * instead of paying for a recv that can only say EAGAIN. */
    if (c->is_awaiting) {
        c->is_awaiting = 0;
        int rc = wait_fd(c->fd, POLLIN, deadline);
        if (rc)
            return broken(c, rc, "read");
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            return 0;
        }
        if (n == 0)
            return broken(c, SPOOL_ECLOSED, "read");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c->fd, POLLIN, deadline);
            if (rc)
                return broken(c, rc, "read");
            continue;
        }
        return broken(c, -errno, "read");
    }
}

/* Reads one line (without CRLF); *line points into rbuf, valid until the
 * next read. */
static int read_line(spool_client *c, int64_t deadline, char **line, size_t *len)
{
    size_t scanned = 0;
    for (;;) {
        /* No buffer before the first read: NULL + 0 is undefined behaviour in C. */
        char *start = c->rbuf ? c->rbuf + c->rpos : NULL;
        size_t avail = c->rlen - c->rpos;
        char *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - start);
            c->rpos += l + 1;
            if (l > 0 && start[l - 1] == '\r')
                l--;
            start[l] = '\0';
            *line = start;
            *len = l;
            return 0;
        }
        scanned = avail;
        if (avail > MAX_REPLY)
            return broken(c, SPOOL_ETOOBIG, "read");
        int rc = fill(c, deadline);
        if (rc)
            return rc;
    }
}

enum reply_kind { REPLY_STRING, REPLY_BULK, REPLY_NULL };

/* Reads one RESP reply. On 0, *out is a malloc'd copy of the payload (NULL
 * for the null bulk). -ERR replies give SPOOL_ESERVER with the text in
 * c->err. */
static int read_reply(spool_client *c, char **out, enum reply_kind *kind)
{
    *out = NULL;
    int64_t deadline = now_ms() + c->timeout_ms;
    char *line = NULL;
    size_t len = 0;
    int rc = read_line(c, deadline, &line, &len);
    if (rc)
        return rc;
    if (len == 0)
        return broken(c, SPOOL_EPROTO, "empty reply line");
    switch (line[0]) {
    case '+':
        *kind = REPLY_STRING;
        *out = strndup(line + 1, len - 1);
        return *out ? 0 : set_err(c, -ENOMEM, "out of memory");
    case '-':
        return set_err(c, SPOOL_ESERVER, "%.*s", (int)(len - 1), line + 1);
    case '$': {
        char *end;
        errno = 0;
        long long n = strtoll(line + 1, &end, 10);
        if (errno || *end || end == line + 1 || n < -1)
            return broken(c, SPOOL_EPROTO, "bad bulk length");
        if (n == -1) {
            *kind = REPLY_NULL;
            return 0;
        }
        if ((unsigned long long)n > MAX_REPLY)
            return broken(c, SPOOL_ETOOBIG, "bulk reply");
        size_t need = (size_t)n + 2;
        while (c->rlen - c->rpos < need) {
            rc = fill(c, deadline);
            if (rc)
                return rc;
        }
        char *p = malloc((size_t)n + 1);
        if (!p)
            return set_err(c, -ENOMEM, "out of memory");
        memcpy(p, c->rbuf + c->rpos, (size_t)n);
        p[n] = '\0';
        c->rpos += need;
        *kind = REPLY_BULK;
        *out = p;
        return 0;
    }
    default:
        return broken(c, SPOOL_EPROTO, "unexpected reply type");
    }
}

/* Sends `verb[ arg]\r\n` and reads the reply. */
static int roundtrip(spool_client *c, const char *verb, const char *arg, char **out,
                     enum reply_kind *kind)
{
    *out = NULL;
    if (c->is_broken || c->fd < 0)
        return set_err(c, SPOOL_ENOTCONN, "not connected (an earlier call failed)");
    c->err[0] = '\0';
    size_t vl = strlen(verb), al = arg ? strlen(arg) : 0;
    if (memchr(verb, '\n', vl) || (arg && memchr(arg, '\n', al)))
        return set_err(c, SPOOL_EARG, "a command may not contain a newline");
    char *buf = malloc(vl + al + 4);
    if (!buf)
        return set_err(c, -ENOMEM, "out of memory");
    memcpy(buf, verb, vl);
    size_t n = vl;
    if (arg) {
        buf[n++] = ' ';
        memcpy(buf + n, arg, al);
        n += al;
    }
    buf[n++] = '\r';
    buf[n++] = '\n';
    int rc = send_all(c, buf, n);
    free(buf);
    if (rc)
        return rc;
    return read_reply(c, out, kind);
}

/* A command whose only good answer is +OK. */
static int expect_ok(spool_client *c, const char *verb, const char *arg)
{
    char *r;
    enum reply_kind k;
    int rc = roundtrip(c, verb, arg, &r, &k);
    if (rc)
        return rc;
    int ok = k == REPLY_STRING && strcmp(r, "OK") == 0;
    free(r);
    if (!ok)
        return set_err(c, SPOOL_EPROTO, "%s: expected +OK", verb);
    return 0;
}

/* A command answered by a bulk string. */
static int expect_bulk(spool_client *c, const char *verb, const char *arg, char **out)
{
    enum reply_kind k;
    int rc = roundtrip(c, verb, arg, out, &k);
    if (rc)
        return rc;
    if (k != REPLY_BULK) {
        free(*out);
        *out = NULL;
        return set_err(c, SPOOL_EPROTO, "%s: expected a bulk reply", verb);
    }
    return 0;
}

/* ---- connect and handshake ---- */

static int tcp_connect(spool_client *c, const spool_url *u)
{
    char port[16];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(u->host, port, &hints, &res);
    if (gai != 0)
        return set_err(c, SPOOL_EURL, "cannot resolve %s: %s", u->host, gai_strerror(gai));
    int rc = -ECONNREFUSED;
    int64_t deadline = now_ms() + c->timeout_ms;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                rc = -errno;
                close(fd);
                continue;
            }
            rc = wait_fd(fd, POLLOUT, deadline);
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
                rc = -soerr;
            if (rc) {
                close(fd);
                continue;
            }
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(res);
    if (rc)
        return set_err(c, rc, "connect to %s:%d: %s", u->host, u->port, spool_strerror(rc));
    return 0;
}

/* Lowercase hex of SHA-256 applied `iterations` times, first over
 * password+salt, then over the previous digest (FWP handshake). */
static int password_hash(const char *password, const char *salt, long iterations, char hex[65])
{
    size_t pl = strlen(password), sl = strlen(salt);
    unsigned char *first = malloc(pl + sl + 1);
    if (!first)
        return -ENOMEM;
    memcpy(first, password, pl);
    memcpy(first + pl, salt, sl);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(first, pl + sl, d);
    free(first);
    for (long i = 1; i < iterations; i++)
        SHA256(d, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

static int handshake(spool_client *c, const spool_url *u, const spool_client_options *o)
{
    char *hi;
    enum reply_kind k;
    int rc = read_reply(c, &hi, &k);
    if (rc)
        return rc == SPOOL_ESERVER ? SPOOL_EAUTH : rc;
    if (k != REPLY_STRING || strncmp(hi, "HI ", 3) != 0) {
        free(hi);
        return set_err(c, SPOOL_EPROTO, "expected +HI from the server");
    }
    cJSON *h = cJSON_Parse(hi + 3);
    free(hi);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return set_err(c, SPOOL_EPROTO, "bad +HI greeting");
    }
    cJSON *native = cJSON_GetObjectItemCaseSensitive(h, "spool");
    if (cJSON_IsObject(native)) {
        static const char *const keys[] = {"fetch_max", "ack_max", "push_max"};
        int *dst[] = {&c->fetch_max, &c->ack_max, &c->push_max};
        for (int i = 0; i < 3; i++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(native, keys[i]);
            if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 1000000)
                *dst[i] = (int)v->valuedouble;
        }
    }
    cJSON *iters = cJSON_GetObjectItemCaseSensitive(h, "i");
    cJSON *salt = cJSON_GetObjectItemCaseSensitive(h, "s");
    cJSON *hello = cJSON_CreateObject();
    char host[256];
    rc = -ENOMEM;
    if (!hello)
        goto fail;
    if (cJSON_IsString(salt)) {
        if (!u->password[0]) {
            rc = set_err(c, SPOOL_EAUTH,
                         "the server requires a password: use tcp://:password@host:port");
            goto fail;
        }
        char hex[65];
        long n = cJSON_IsNumber(iters) && iters->valuedouble >= 1 ? (long)iters->valuedouble : 1;
        if (n > 10000000) {
            rc = set_err(c, SPOOL_EPROTO, "absurd password iteration count from the server");
            goto fail;
        }
        if (password_hash(u->password, salt->valuestring, n, hex) != 0 ||
            !cJSON_AddStringToObject(hello, "pwdhash", hex))
            goto fail;
    }
    if (o->hostname && *o->hostname)
        snprintf(host, sizeof host, "%s", o->hostname);
    else if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    if (!cJSON_AddNumberToObject(hello, "v", 2) || !cJSON_AddStringToObject(hello, "hostname", host) ||
        !cJSON_AddNumberToObject(hello, "pid", (double)getpid()))
        goto fail;
    if (o->wid && *o->wid) {
        cJSON *labels = cJSON_AddArrayToObject(hello, "labels");
        if (!cJSON_AddStringToObject(hello, "wid", o->wid) || !labels)
            goto fail;
        for (size_t i = 0; i < o->nlabels; i++) {
            cJSON *s = cJSON_CreateString(o->labels[i] ? o->labels[i] : "");
            if (!s)
                goto fail;
            cJSON_AddItemToArray(labels, s);
        }
    }
    char *text = cJSON_PrintUnformatted(hello);
    if (!text)
        goto fail;
    rc = expect_ok(c, "HELLO", text);
    cJSON_free(text);
    if (rc == SPOOL_ESERVER && strstr(c->err, "Invalid password"))
        rc = SPOOL_EAUTH;
fail:
    if (rc == -ENOMEM)
        set_err(c, rc, "out of memory during the handshake");
    cJSON_Delete(hello);
    cJSON_Delete(h);
    return rc;
}

int spool_client_connect_opts(const spool_client_options *opts, spool_client **out)
{
    static const spool_client_options none;
    const spool_client_options *o = opts ? opts : &none;
    if (!out)
        return tls_error(SPOOL_EARG, "spool_client_connect: out is NULL");
    *out = NULL;
    if (o->timeout_ms < 0 || (o->wid && strlen(o->wid) >= MAX_WID))
        return tls_error(SPOOL_EARG, "bad client options (timeout < 0 or wid too long)");
    spool_url u;
    int rc = spool_url_parse(o->url, &u);
    if (rc)
        return rc;
    spool_client *c = calloc(1, sizeof *c);
    if (!c)
        return tls_error(-ENOMEM, "out of memory");
    c->fd = -1;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (o->wid)
        snprintf(c->wid, sizeof c->wid, "%s", o->wid);
    rc = tcp_connect(c, &u);
    if (rc == 0 && u.is_tls) {
        const char *ca = o->tls_ca_file;
        if (!ca || !*ca)
            ca = getenv("SPOOL_TLS_CA");
        const char *skip = getenv("SPOOL_TLS_INSECURE_SKIP_VERIFY");
        int is_insecure = o->tls_insecure_skip_verify || (skip && strcmp(skip, "1") == 0);
        rc = tlsconn_open(c->fd, u.host, ca, is_insecure, now_ms() + c->timeout_ms, &c->tls, c->err,
                          sizeof c->err);
    }
    if (rc == 0)
        rc = handshake(c, &u, o);
    if (rc) {
        tls_error(rc, "%s", c->err[0] ? c->err : spool_strerror(rc));
        c->is_broken = 1; /* no END on a failed handshake */
        spool_client_free(c);
        return rc;
    }
    c->err[0] = '\0';
    tls_error_clear();
    *out = c;
    return 0;
}

int spool_client_connect(const char *url, spool_client **out)
{
    spool_client_options o = {.url = url};
    return spool_client_connect_opts(&o, out);
}

void spool_client_free(spool_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        if (!c->is_broken) {
            /* Polite END; do not wait long for the +OK. */
            c->timeout_ms = c->timeout_ms < 500 ? c->timeout_ms : 500;
            char *r = NULL;
            enum reply_kind k;
            roundtrip(c, "END", NULL, &r, &k);
            free(r);
        }
        tlsconn_free(c->tls);
        close(c->fd);
    }
    free(c->rbuf);
    free(c->push);
    free(c);
}

const char *spool_client_error(const spool_client *c)
{
    return c ? c->err : tls_error_get();
}

int spool_client_set_timeout(spool_client *c, int timeout_ms)
{
    if (!c || timeout_ms <= 0)
        return SPOOL_EARG;
    c->timeout_ms = timeout_ms;
    return 0;
}

const char *spool_client_wid(const spool_client *c)
{
    return c ? c->wid : "";
}

int spool_command(spool_client *c, const char *line, char **reply)
{
    if (reply)
        *reply = NULL;
    if (!c || !line || !*line)
        return c ? set_err(c, SPOOL_EARG, "empty command") : SPOOL_EARG;
    char *r;
    enum reply_kind k;
    int rc = roundtrip(c, line, NULL, &r, &k);
    if (rc)
        return rc;
    if (reply)
        *reply = r;
    else
        free(r);
    return 0;
}

int spool_info(spool_client *c, char **json)
{
    if (!c || !json)
        return SPOOL_EARG;
    return expect_bulk(c, "INFO", NULL, json);
}

int spool_flush(spool_client *c)
{
    if (!c)
        return SPOOL_EARG;
    return expect_ok(c, "FLUSH", NULL);
}

/* "SUB q1 q2 ..." for QUEUE; SPOOL_EARG for an empty list or a bad name. */
static int queue_line(spool_client *c, const char *sub, const char *const *queues, size_t n,
                      char **out)
{
    if (!queues || n == 0)
        return set_err(c, SPOOL_EARG, "QUEUE %s needs at least one queue name", sub);
    size_t len = strlen(sub) + 1;
    for (size_t i = 0; i < n; i++) {
        if (!queues[i] || !*queues[i] || strpbrk(queues[i], " \r\n"))
            return set_err(c, SPOOL_EARG, "bad queue name \"%s\"", queues[i] ? queues[i] : "");
        len += strlen(queues[i]) + 1;
    }
    char *s = malloc(len + 1);
    if (!s)
        return set_err(c, -ENOMEM, "out of memory");
    size_t p = strlen(sub);
    memcpy(s, sub, p);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(queues[i]);
        s[p++] = ' ';
        memcpy(s + p, queues[i], l);
        p += l;
    }
    s[p] = '\0';
    *out = s;
    return 0;
}

static int queue_cmd(spool_client *c, const char *sub, const char *const *queues, size_t n)
{
    if (!c)
        return SPOOL_EARG;
    char *arg;
    int rc = queue_line(c, sub, queues, n, &arg);
    if (rc)
        return rc;
    rc = expect_ok(c, "QUEUE", arg);
    free(arg);
    return rc;
}

int spool_queue_pause(spool_client *c, const char *const *queues, size_t n)
{
    return queue_cmd(c, "PAUSE", queues, n);
}

int spool_queue_resume(spool_client *c, const char *const *queues, size_t n)
{
    return queue_cmd(c, "RESUME", queues, n);
}

int spool_queue_remove(spool_client *c, const char *const *queues, size_t n)
{
    return queue_cmd(c, "REMOVE", queues, n);
}

int spool_queue_latency(spool_client *c, const char *const *queues, size_t n, char **json)
{
    if (!c || !json)
        return SPOOL_EARG;
    *json = NULL;
    char *arg;
    int rc = queue_line(c, "LATENCY", queues, n, &arg);
    if (rc)
        return rc;
    rc = expect_bulk(c, "QUEUE", arg, json);
    free(arg);
    return rc;
}

/* Re-prints JSON compactly so it holds no newline. */
static int compact_object(spool_client *c, const char *json, char **out)
{
    cJSON *v = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return set_err(c, SPOOL_EJSON, "not a JSON object");
    }
    char *p = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    if (!p)
        return set_err(c, -ENOMEM, "out of memory");
    *out = strdup(p);
    cJSON_free(p);
    return *out ? 0 : set_err(c, -ENOMEM, "out of memory");
}

/* Sends "VERB <json on one line>" and expects +OK. */
static int send_object(spool_client *c, const char *verb, const char *json)
{
    if (!c)
        return SPOOL_EARG;
    char *arg;
    int rc = compact_object(c, json, &arg);
    if (rc)
        return rc;
    rc = expect_ok(c, verb, arg);
    free(arg);
    return rc;
}

int spool_mutate(spool_client *c, const char *json)
{
    return send_object(c, "MUTATE", json);
}

/* ---- push ---- */

int spool_client_use_push(spool_client *c, spool_push_middleware fn, void *ud)
{
    if (!c || !fn)
        return SPOOL_EARG;
    return push_mw_add(&c->push, &c->npush, fn, ud);
}

static int push_final(spool_chain *ch)
{
    spool_client *c = ch->arg;
    char *text = job_serialize(ch->job);
    if (!text)
        return set_err(c, -ENOMEM, "out of memory");
    int rc = strchr(text, '\n') ? spool_push_json(c, text) : expect_ok(c, "PUSH", text);
    free(text);
    return rc;
}

int spool_push(spool_client *c, spool_job *job)
{
    if (!c || !job)
        return SPOOL_EARG;
    c->err[0] = '\0';
    spool_chain ch = {.push = c->push, .npush = c->npush, .job = job, .final = push_final, .arg = c};
    int rc = spool_next(&ch);
    if (rc && !c->err[0])
        set_err(c, rc, "push refused: %s", spool_strerror(rc));
    return rc;
}

int spool_push_json(spool_client *c, const char *job_json)
{
    return send_object(c, "PUSH", job_json);
}

struct batch {
    spool_client *c;
    cJSON *array;
};

static int batch_final(spool_chain *ch)
{
    struct batch *b = ch->arg;
    char *text = job_serialize(ch->job);
    cJSON *obj = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!obj)
        return -ENOMEM;
    cJSON_AddItemToArray(b->array, obj);
    return 0;
}

int spool_push_many(spool_client *c, spool_job *const *jobs, size_t n, char **errs)
{
    if (!c || (!jobs && n > 0))
        return SPOOL_EARG;
    c->err[0] = '\0';
    if (errs)
        for (size_t i = 0; i < n; i++)
            errs[i] = NULL;
    if (n == 0)
        return 0;
    int refused = 0;
    int rc = 0;
    char *reply = NULL;
    cJSON *res = NULL;
    /* Jobs a middleware refused never reach the server: remember them. */
    unsigned char *sent = calloc(n, 1);
    struct batch b = {.c = c, .array = cJSON_CreateArray()};
    if (!sent || !b.array) {
        rc = set_err(c, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        spool_chain ch = {.push = c->push, .npush = c->npush, .job = jobs[i], .final = batch_final,
                          .arg = &b};
        int r = spool_next(&ch);
        if (r == 0) {
            sent[i] = 1;
            continue;
        }
        if (r == -ENOMEM) {
            rc = set_err(c, r, "out of memory");
            goto out;
        }
        refused++;
        if (errs)
            errs[i] = strdup(spool_strerror(r));
    }
    if (cJSON_GetArraySize(b.array) > 0) {
        char *p = cJSON_PrintUnformatted(b.array);
        if (!p) {
            rc = set_err(c, -ENOMEM, "out of memory");
            goto out;
        }
        rc = expect_bulk(c, "PUSHB", p, &reply);
        cJSON_free(p);
        if (rc)
            goto out;
        res = cJSON_Parse(reply);
        if (!cJSON_IsObject(res)) {
            rc = set_err(c, SPOOL_EPROTO, "PUSHB: the reply is not a JSON object");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (!sent[i])
                continue;
            const char *jid = spool_job_jid(jobs[i]);
            cJSON *e = jid ? cJSON_GetObjectItemCaseSensitive(res, jid) : NULL;
            if (!e)
                continue;
            refused++;
            if (errs)
                errs[i] = strdup(cJSON_IsString(e) ? e->valuestring : "refused");
        }
        /* A refused job with no usable jid is keyed "" or by its bad jid. */
        int keyed = cJSON_GetArraySize(res);
        if (refused == 0 && keyed > 0)
            refused = keyed;
    }
    rc = refused;
    if (refused)
        set_err(c, 0, "%d of %zu jobs were refused", refused, n);
out:
    if (rc < 0 && errs)
        for (size_t i = 0; i < n; i++) {
            free(errs[i]);
            errs[i] = NULL;
        }
    cJSON_Delete(res);
    free(reply);
    cJSON_Delete(b.array);
    free(sent);
    return rc;
}

/* ---- worker verbs ---- */

/*
 * FETCH and FETCHN: sends verb with head (FETCHN's count, or "") and the
 * queue names ("default" when none are given). *r gets the bulk reply, or
 * NULL when there was nothing to fetch; what names what a bulk reply holds,
 * for the error on any other reply.
 */
static int fetch_roundtrip(spool_client *c, const char *verb, const char *head,
                           const char *const *queues, size_t n, const char *what, char **r)
{
    static const char *const dflt[] = {"default"};
    if (!queues || n == 0) {
        queues = dflt;
        n = 1;
    }
    char *arg;
    int rc = queue_line(c, head, queues, n, &arg);
    if (rc)
        return rc;
    enum reply_kind k;
    rc = roundtrip(c, verb, *head ? arg : arg + 1, r, &k); /* no head: skip the leading space */
    free(arg);
    if (rc)
        return rc;
    if (k == REPLY_BULK)
        return 0;
    free(*r);
    *r = NULL;
    if (k == REPLY_NULL)
        return 0;
    return set_err(c, SPOOL_EPROTO, "%s: expected %s or nothing", verb, what);
}

int spool_fetch(spool_client *c, const char *const *queues, size_t n, spool_job **job)
{
    if (!c || !job)
        return SPOOL_EARG;
    *job = NULL;
    char *r;
    int rc = fetch_roundtrip(c, "FETCH", "", queues, n, "a job", &r);
    if (rc || !r)
        return rc;
    rc = job_from_text_take(r, job);
    if (rc)
        return set_err(c, rc, "FETCH: the server sent a job that is not valid JSON");
    return 0;
}

void spool_client_batch_limits(const spool_client *c, int *fetch_max, int *ack_max, int *push_max)
{
    if (fetch_max)
        *fetch_max = c ? c->fetch_max : 0;
    if (ack_max)
        *ack_max = c ? c->ack_max : 0;
    if (push_max)
        *push_max = c ? c->push_max : 0;
}

/*
 * Splits the JSON array text FETCHN sent into its elements, making a job of
 * each from its exact text. Returns the count or a negative code; on error
 * the jobs made so far are freed.
 */
static int split_jobs(spool_client *c, const char *text, spool_job **jobs, size_t max)
{
    const char *p = text;
    size_t got = 0;
    int rc = SPOOL_EPROTO;
    while (*p == ' ')
        p++;
    if (*p++ != '[')
        return set_err(c, SPOOL_EPROTO, "FETCHN: expected a JSON array");
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ']')
            return (int)got;
        if (*p != '{' || got == max)
            break;
        const char *start = p;
        int depth = 0, in_str = 0;
        for (; *p; p++) {
            if (in_str) {
                if (*p == '\\' && p[1])
                    p++;
                else if (*p == '"')
                    in_str = 0;
            } else if (*p == '"') {
                in_str = 1;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                break;
            }
        }
        if (!*p)
            break;
        p++;
        char *one = strndup(start, (size_t)(p - start));
        if (!one) {
            rc = set_err(c, -ENOMEM, "out of memory");
            goto fail;
        }
        rc = job_from_text_take(one, &jobs[got]);
        if (rc) {
            set_err(c, rc, "FETCHN: the server sent a job that is not valid JSON");
            goto fail;
        }
        got++;
    }
    rc = set_err(c, SPOOL_EPROTO, "FETCHN: the reply is not an array of at most %zu jobs", max);
fail:
    for (size_t i = 0; i < got; i++) {
        spool_job_free(jobs[i]);
        jobs[i] = NULL;
    }
    return rc;
}

int spool_fetch_many(spool_client *c, const char *const *queues, size_t n, spool_job **jobs, size_t max)
{
    if (!c || !jobs || max == 0)
        return c ? set_err(c, SPOOL_EARG, "spool_fetch_many needs room for at least one job") : SPOOL_EARG;
    for (size_t i = 0; i < max; i++)
        jobs[i] = NULL;
    if (c->fetch_max <= 0 || max == 1) { /* plain FWP: one job per FETCH */
        int rc = spool_fetch(c, queues, n, &jobs[0]);
        return rc ? rc : jobs[0] ? 1 : 0;
    }
    if (max > (size_t)c->fetch_max)
        max = (size_t)c->fetch_max;
    char count[24];
    snprintf(count, sizeof count, "%zu", max);
    char *r;
    int rc = fetch_roundtrip(c, "FETCHN", count, queues, n, "jobs", &r);
    if (rc || !r)
        return rc;
    rc = split_jobs(c, r, jobs, max);
    free(r);
    return rc;
}

int spool_ack_many(spool_client *c, const char *const *jids, size_t n)
{
    if (!c || (!jids && n > 0))
        return SPOOL_EARG;
    for (size_t i = 0; i < n; i++)
        if (!jids[i] || !*jids[i])
            return set_err(c, SPOOL_EARG, "job id %zu is empty", i);
    if (c->ack_max <= 0) { /* plain FWP: one ACK each */
        for (size_t i = 0; i < n; i++) {
            int rc = spool_ack(c, jids[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    for (size_t off = 0; off < n;) {
        size_t m = n - off < (size_t)c->ack_max ? n - off : (size_t)c->ack_max;
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = o ? cJSON_AddArrayToObject(o, "jids") : NULL;
        int ok = arr != NULL;
        for (size_t i = 0; ok && i < m; i++) {
            cJSON *s = cJSON_CreateString(jids[off + i]);
            ok = s != NULL;
            if (s)
                cJSON_AddItemToArray(arr, s);
        }
        char *p = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!p)
            return set_err(c, -ENOMEM, "out of memory");
        char *reply = NULL;
        int rc = expect_bulk(c, "ACKN", p, &reply);
        cJSON_free(p);
        if (rc)
            return rc;
        cJSON *res = cJSON_Parse(reply);
        cJSON *errs = cJSON_GetObjectItemCaseSensitive(res, "errors");
        int bad = !cJSON_IsObject(errs) ? -1 : cJSON_GetArraySize(errs);
        cJSON_Delete(res);
        if (bad != 0) {
            rc = set_err(c, bad < 0 ? SPOOL_EPROTO : SPOOL_ESERVER, "ACKN: %.900s", reply);
            free(reply);
            return rc;
        }
        free(reply);
        off += m;
    }
    return 0;
}

int spool_ack(spool_client *c, const char *jid)
{
    if (!c || !jid || !*jid)
        return SPOOL_EARG;
    cJSON *o = cJSON_CreateObject();
    char *p = NULL;
    int rc = -ENOMEM;
    if (o && cJSON_AddStringToObject(o, "jid", jid) && (p = cJSON_PrintUnformatted(o)))
        rc = expect_ok(c, "ACK", p);
    else
        set_err(c, rc, "out of memory");
    cJSON_free(p);
    cJSON_Delete(o);
    return rc;
}

int spool_fail(spool_client *c, const char *jid, const char *errtype, const char *message,
               const char *const *bt, size_t nbt)
{
    if (!c || !jid || !*jid || (!bt && nbt > 0))
        return SPOOL_EARG;
    cJSON *o = cJSON_CreateObject();
    char *p = NULL;
    int rc = -ENOMEM;
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "backtrace") : NULL;
    if (!arr || !cJSON_AddStringToObject(o, "jid", jid) ||
        !cJSON_AddStringToObject(o, "errtype", errtype ? errtype : "unknown") ||
        !cJSON_AddStringToObject(o, "message", message ? message : "unknown"))
        goto out;
    for (size_t i = 0; i < nbt; i++) {
        cJSON *s = cJSON_CreateString(bt[i] ? bt[i] : "");
        if (!s)
            goto out;
        cJSON_AddItemToArray(arr, s);
    }
    if ((p = cJSON_PrintUnformatted(o)))
        rc = expect_ok(c, "FAIL", p);
out:
    if (rc == -ENOMEM)
        set_err(c, rc, "out of memory");
    cJSON_free(p);
    cJSON_Delete(o);
    return rc;
}

int spool_beat(spool_client *c, enum spool_state current, int64_t rss_kb, enum spool_state *state_out)
{
    if (!c)
        return SPOOL_EARG;
    if (!c->wid[0])
        return set_err(c, SPOOL_EARG, "BEAT needs a client connected with a wid");
    cJSON *o = cJSON_CreateObject();
    char *p = NULL;
    int rc = -ENOMEM;
    if (!o || !cJSON_AddStringToObject(o, "wid", c->wid))
        goto out;
    if (current == SPOOL_STATE_QUIET && !cJSON_AddStringToObject(o, "current_state", "quiet"))
        goto out;
    if (current == SPOOL_STATE_TERMINATE &&
        !cJSON_AddStringToObject(o, "current_state", "terminate"))
        goto out;
    if (rss_kb > 0 && !cJSON_AddNumberToObject(o, "rss_kb", (double)rss_kb))
        goto out;
    if (!(p = cJSON_PrintUnformatted(o)))
        goto out;
    char *r;
    enum reply_kind k;
    rc = roundtrip(c, "BEAT", p, &r, &k);
    if (rc)
        goto out;
    enum spool_state st = SPOOL_STATE_RUNNING;
    if (k == REPLY_BULK) {
        cJSON *s = cJSON_Parse(r);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "state");
        if (cJSON_IsString(v) && strcmp(v->valuestring, "quiet") == 0)
            st = SPOOL_STATE_QUIET;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "terminate") == 0)
            st = SPOOL_STATE_TERMINATE;
        cJSON_Delete(s);
    }
    free(r);
    if (state_out)
        *state_out = st;
out:
    if (rc == -ENOMEM)
        set_err(c, rc, "out of memory");
    cJSON_free(p);
    cJSON_Delete(o);
    return rc;
}
