/*
 * fuzz_server: a spoold without listeners, data directory or journal, for
 * the FWP and HTTP fuzz targets. It owns an event base, an engine and the
 * struct server the real connection and request code runs against; a
 * client's bytes arrive through one end of a socketpair whose other end the
 * server code owns as if accepted.
 *
 * Every change record the engine emits is applied at once to a shadow
 * engine: a record the server writes to its journal that recovery could not
 * read back aborts the run.
 */
#ifndef SPOOL_FUZZ_SERVER_H
#define SPOOL_FUZZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

/* Builds the server (fresh engine, no password, default limits). */
void fuzz_server_init(struct server *srv);
void fuzz_server_release(struct server *srv);

/*
 * Writes input to the client end of a socketpair, closes the client's
 * sending side once all of it is in and the server has gone quiet, and runs
 * the loop until the server closes its end or a bounded number of rounds
 * passes, reading and discarding every reply (copied to stderr when the
 * environment has FUZZ_ECHO). The server's end was already handed to
 * conn_accept or evhttp.
 */
void fuzz_server_drive(struct server *srv, int client_fd, const uint8_t *input, size_t len);

/* A connected AF_UNIX stream pair, both non-blocking: fds[0] server, fds[1] client. */
void fuzz_socketpair(int fds[2]);

#endif
