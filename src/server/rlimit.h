/*
 * rlimit: the process's descriptor limit. spoold needs one descriptor per
 * connection plus a few dozen of its own (listeners, journal segments, the
 * eventfd, HTTP clients), so at start it raises its soft RLIMIT_NOFILE to
 * the hard limit and says so when even that cannot serve --max-connections.
 * Called once at start, before the event loop runs.
 */
#ifndef SPOOL_RLIMIT_H
#define SPOOL_RLIMIT_H

#include <stddef.h>

/* Descriptors spoold keeps for itself beyond one per FWP connection. */
#define RLIMIT_RESERVED_FDS 64

/*
 * Raises the soft descriptor limit to the hard one. Returns 0 when the
 * resulting limit covers max_connections + RLIMIT_RESERVED_FDS, 1 when it
 * does not (msg says what to change), -1 when the limit cannot be read or
 * set (msg holds the error). msg always gets a one-line summary.
 */
int rlimit_raise_nofile(int max_connections, char *msg, size_t msglen);

#endif
