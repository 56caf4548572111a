/*
 * tlsconn: the TLS layer of one libspool connection. Owns an OpenSSL
 * context and session over a connected, non-blocking socket that the caller
 * keeps owning. Verifies the server's certificate chain (system CAs, or a
 * given CA file) and its name (SNI is sent for host names), unless
 * verification is switched off. Never aborts: every failure is a return code
 * with a message. One thread at a time per connection.
 */
#ifndef SPOOL_CLIENT_TLSCONN_H
#define SPOOL_CLIENT_TLSCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tlsconn;

/*
 * Runs the TLS handshake on fd (connected, non-blocking) for server name
 * host, waiting in poll() until deadline_ms (CLOCK_MONOTONIC milliseconds).
 * ca_file NULL means the system's CAs; is_insecure skips every check of the
 * server's certificate. Returns 0 and *out (tlsconn_free), or SPOOL_ETLS /
 * -ETIMEDOUT / -errno / SPOOL_ECLOSED with a message in err.
 */
int tlsconn_open(int fd, const char *host, const char *ca_file, int is_insecure,
                 int64_t deadline_ms, struct tlsconn **out, char *err, size_t errlen);

/*
 * Like recv/send on the socket: bytes moved (> 0); 0 from read when the
 * server closed the session; -EAGAIN with *events set to the poll() events
 * to wait for before calling again with the same arguments; or SPOOL_ETLS /
 * -errno.
 */
ssize_t tlsconn_read(struct tlsconn *t, void *buf, size_t len, short *events);
ssize_t tlsconn_write(struct tlsconn *t, const void *buf, size_t len, short *events);

/* Sends close_notify (best effort, no waiting) and frees; leaves the socket open. NULL is fine. */
void tlsconn_free(struct tlsconn *t);

#endif
