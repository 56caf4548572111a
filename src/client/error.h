/*
 * Error messages of libspool: spool_strerror (public) and the calling
 * thread's last error, which spool_client_error(NULL) returns for calls that
 * have no client (URL parsing, connect, worker_new). Any thread.
 */
#ifndef SPOOL_CLIENT_ERROR_H
#define SPOOL_CLIENT_ERROR_H

/* Sets the calling thread's last error message (printf style). Returns err,
 * so callers can `return tls_error(err, "...")`. */
int tls_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last error message, "" when none. */
const char *tls_error_get(void);

/* Clears it. */
void tls_error_clear(void);

#endif
