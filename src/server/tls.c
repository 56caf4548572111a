#include "server/tls.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"

struct tls_server {
    SSL_CTX *ctx;
};

/* The oldest OpenSSL error queued on this thread, as text; clears the queue. */
static unsigned long ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown OpenSSL error");
        return 0;
    }
    const char *r = ERR_reason_error_string(e);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return e;
}

/* A missing or unreadable file gets the system's reason, not OpenSSL's. */
static int check_readable(const char *what, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the TLS %s %s: %s", what, file, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, const char *ca_file,
                                  char *err, size_t errlen)
{
    char why[256];
    if (check_readable("certificate", cert_file, err, errlen) ||
        check_readable("key", key_file, err, errlen) ||
        (ca_file && check_readable("client CA file", ca_file, err, errlen)))
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation is a CPU sink a client could trigger at will; compression leaks (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections (workers blocked in FETCH are most of them) give their
     * read and write buffers back between records: measured in bench/tls_bench.sh. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "the TLS certificate %s is not a usable PEM certificate: %s",
                 cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ssl_reason(why, sizeof why);
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "the TLS key %s does not match the certificate %s", key_file,
                     cert_file);
        else
            snprintf(err, errlen, "the TLS key %s is not a usable unencrypted PEM private key: %s",
                     key_file, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "the TLS key %s does not match the certificate %s: %s", key_file,
                 cert_file, why);
        goto fail;
    }
    if (ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            ssl_reason(why, sizeof why);
            snprintf(err, errlen, "the TLS client CA file %s holds no usable PEM certificate: %s",
                     ca_file, why);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    struct tls_server *t = xcalloc(1, sizeof *t);
    t->ctx = ctx;
    return t;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

struct bufferevent *tls_server_bufferevent(struct tls_server *t, struct event_base *base, int fd)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl) {
        log_error("msg=\"out of memory creating a TLS session\"");
        abort();
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) { /* the bufferevent frees ssl when it fails */
        log_error("msg=\"out of memory creating a TLS connection\"");
        abort();
    }
    /* A peer that closes without close_notify is an ordinary end of stream,
     * not an error to report: nothing it sent is trusted past the last full line. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static struct bufferevent *http_bevcb(struct event_base *base, void *arg)
{
    return tls_server_bufferevent(arg, base, -1);
}

void tls_server_attach_http(struct tls_server *t, struct evhttp *http)
{
    evhttp_set_bevcb(http, http_bevcb, t);
}
