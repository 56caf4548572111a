/*
 * fwp: the Faktory work protocol. Turns one command line from a connection
 * into engine calls and RESP replies, with Faktory's reply forms and error
 * strings (docs/protocol.md lists where spool differs on purpose).
 * Event-loop thread only.
 */
#ifndef SPOOL_FWP_H
#define SPOOL_FWP_H

#include <stddef.h>

struct conn;

/* How long a FETCH blocks when no job is there. */
#define FWP_FETCH_BLOCK_S 2

/* Handles the first line of a connection, which must be HELLO {...}. */
void fwp_hello(struct conn *c, char *line, size_t len);
/* Handles one command line (NUL-terminated at line[len]) after the handshake. */
void fwp_dispatch(struct conn *c, char *line, size_t len);
/* libevent callback: a blocked FETCH reached its deadline. */
void fwp_fetch_timeout(int fd, short what, void *arg);

#endif
