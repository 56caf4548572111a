/*
 * tls: spoold's TLS server side. Owns one OpenSSL context (certificate
 * chain, private key, optional client CA) shared by the FWP and HTTP
 * listeners, and makes the OpenSSL bufferevents both listeners use in place
 * of plain sockets. TLS 1.2 is the minimum; ciphers are OpenSSL's defaults
 * for TLS 1.2 and 1.3. Built once at start, before listening. Event-loop
 * thread only.
 */
#ifndef SPOOL_TLS_H
#define SPOOL_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;
struct evhttp;
struct tls_server;

/*
 * Loads cert_file (PEM, the server certificate followed by any intermediate
 * ones) and key_file (PEM, unencrypted), checks that they belong together,
 * and, when ca_file is not NULL, requires clients to present a certificate
 * signed by a CA in it. Returns a new context (tls_server_free), or NULL
 * with a message naming the file at fault in err.
 */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, const char *ca_file,
                                  char *err, size_t errlen);
void tls_server_free(struct tls_server *t);

/*
 * A bufferevent that accepts a TLS session on fd (or on the descriptor set
 * later with bufferevent_setfd when fd is -1) and closes fd when freed. Reads
 * and writes on it carry plaintext, as a socket bufferevent's do.
 */
struct bufferevent *tls_server_bufferevent(struct tls_server *t, struct event_base *base, int fd);

/* Makes every connection http accepts from now on a TLS one. */
void tls_server_attach_http(struct tls_server *t, struct evhttp *http);

#endif
