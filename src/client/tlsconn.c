/* TLS for libspool connections: see tlsconn.h. */
#define _GNU_SOURCE
#include "tlsconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "spool/spool.h"

struct tlsconn {
    SSL_CTX *ctx;
    SSL *ssl;
};

/*
 * A BIO over the socket that writes with MSG_NOSIGNAL: OpenSSL's own socket
 * BIO uses write(), which raises SIGPIPE when the server has gone, and a
 * library must not change the process's signal handling to avoid that.
 */
static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int nosig_read(BIO *b, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(fd, buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void nosig_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "spool socket");
    if (m && BIO_meth_set_write(m, nosig_write) && BIO_meth_set_read(m, nosig_read) &&
        BIO_meth_set_ctrl(m, nosig_ctrl) && BIO_meth_set_create(m, nosig_create)) {
        nosig_method = m;
        return;
    }
    BIO_meth_free(m);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The oldest queued OpenSSL error as text (or what errno says); clears the queue. */
static void ssl_reason(char *buf, size_t len, int saved_errno)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, len);
    else if (saved_errno)
        snprintf(buf, len, "%s", strerror(saved_errno));
    else
        snprintf(buf, len, "the connection was closed during the handshake");
    ERR_clear_error();
}

static int fail(struct tlsconn *t, int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(struct tlsconn *t, int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    tlsconn_free(t);
    return rc;
}

int tlsconn_open(int fd, const char *host, const char *ca_file, int is_insecure,
                 int64_t deadline_ms, struct tlsconn **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&nosig_once, nosig_init);
    ERR_clear_error();
    struct tlsconn *t = calloc(1, sizeof *t);
    if (!t)
        return fail(NULL, -ENOMEM, err, errlen, "out of memory");
    char why[256];
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx || !nosig_method)
        return fail(t, SPOOL_ETLS, err, errlen, "TLS: cannot set up OpenSSL");
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* A server that closes without close_notify ends the stream like a plain socket. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!is_insecure) {
        int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(t->ctx);
        if (ok != 1) {
            ssl_reason(why, sizeof why, 0);
            if (ca_file && *ca_file)
                return fail(t, SPOOL_ETLS, err, errlen, "TLS: cannot load the CA file %s: %s",
                            ca_file, why);
            return fail(t, SPOOL_ETLS, err, errlen, "TLS: cannot load the system CAs: %s", why);
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    }
    t->ssl = SSL_new(t->ctx);
    BIO *bio = t->ssl ? BIO_new(nosig_method) : NULL;
    if (!bio)
        return fail(t, -ENOMEM, err, errlen, "out of memory setting up TLS");
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(t->ssl, bio, bio);
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    /* SNI carries host names only (RFC 6066); the check below covers addresses too. */
    if (!is_ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return fail(t, SPOOL_ETLS, err, errlen, "TLS: bad server name \"%.200s\"", host);
    if (!is_insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
                       : X509_VERIFY_PARAM_set1_host(vp, host, 0);
        if (ok != 1)
            return fail(t, SPOOL_ETLS, err, errlen, "TLS: cannot check the name \"%.200s\"", host);
    }
    for (;;) {
        errno = 0;
        int r = SSL_connect(t->ssl);
        if (r == 1)
            break;
        int saved = errno;
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int64_t left = deadline_ms - now_ms();
            if (left <= 0)
                return fail(t, -ETIMEDOUT, err, errlen, "TLS handshake with %s timed out", host);
            struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
            if (poll(&p, 1, (int)(left > 1000000 ? 1000000 : left)) < 0 && errno != EINTR)
                return fail(t, -errno, err, errlen, "TLS handshake with %s: %s", host,
                            strerror(errno));
            continue;
        }
        long vr = SSL_get_verify_result(t->ssl);
        if (!is_insecure && vr != X509_V_OK) {
            ERR_clear_error();
            return fail(t, SPOOL_ETLS, err, errlen,
                        "TLS: the server's certificate for %s is not trusted: %s (give its CA with "
                        "SPOOL_TLS_CA or --tls-ca)",
                        host, X509_verify_cert_error_string(vr));
        }
        if (e == SSL_ERROR_SYSCALL && saved && ERR_peek_error() == 0)
            return fail(t, -saved, err, errlen, "TLS handshake with %s: %s", host, strerror(saved));
        ssl_reason(why, sizeof why, saved);
        return fail(
            t, e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ? SPOOL_ECLOSED : SPOOL_ETLS,
            err, errlen, "TLS handshake with %s failed: %s (is that port serving TLS?)", host, why);
    }
    *out = t;
    return 0;
}

/* Maps an SSL_read/SSL_write result to the tlsconn_read/write contract. */
static ssize_t io_result(struct tlsconn *t, int r, short *events)
{
    if (r > 0)
        return r;
    int saved = errno;
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: *events = POLLIN; return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: *events = POLLOUT; return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: ERR_clear_error(); return saved ? -saved : 0;
    default: ERR_clear_error(); return SPOOL_ETLS;
    }
}

ssize_t tlsconn_read(struct tlsconn *t, void *buf, size_t len, short *events)
{
    errno = 0;
    int n = len > INT32_MAX ? INT32_MAX : (int)len;
    return io_result(t, SSL_read(t->ssl, buf, n), events);
}

ssize_t tlsconn_write(struct tlsconn *t, const void *buf, size_t len, short *events)
{
    errno = 0;
    int n = len > INT32_MAX ? INT32_MAX : (int)len;
    return io_result(t, SSL_write(t->ssl, buf, n), events);
}

void tlsconn_free(struct tlsconn *t)
{
    if (!t)
        return;
    if (t->ssl) {
        SSL_shutdown(t->ssl); /* one try: the socket is non-blocking and closes next */
        ERR_clear_error();
        SSL_free(t->ssl);
    }
    SSL_CTX_free(t->ctx);
    free(t);
}
