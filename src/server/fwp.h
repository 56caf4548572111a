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

/*
 * Native batch verbs for clients that know spool (docs/protocol.md). Plain
 * Faktory clients never see them: they are only advertised by the "spool"
 * key of the HI greeting, which Faktory clients ignore.
 *   FETCHN <n> q1 q2 ...   up to n jobs (n <= FWP_FETCH_MAX) as one JSON array
 *   ACKN {"jids":[...]}    up to FWP_ACK_MAX jobs, one durable reply
 * push_max is advice for PUSHB batch sizes; PUSHB itself is bounded by the
 * line limit only, as in Faktory.
 */
#define FWP_FETCH_MAX 100
#define FWP_ACK_MAX 1000
#define FWP_PUSH_MAX 1000
/* FETCHN stops adding jobs once its reply holds this many bytes (at least one job). */
#define FWP_FETCHN_MAX_BYTES (4u << 20)

#define FWP_STR_(x) #x
#define FWP_STR(x) FWP_STR_(x)
/* The HI greeting's "spool" member, without braces around the whole greeting. */
#define FWP_HI_SPOOL                                                                   \
    "\"spool\":{\"fetch_max\":" FWP_STR(FWP_FETCH_MAX) ",\"ack_max\":" FWP_STR(FWP_ACK_MAX) \
    ",\"push_max\":" FWP_STR(FWP_PUSH_MAX) "}"

/* Handles the first line of a connection, which must be HELLO {...}. */
void fwp_hello(struct conn *c, char *line, size_t len);
/* Handles one command line (NUL-terminated at line[len]) after the handshake. */
void fwp_dispatch(struct conn *c, char *line, size_t len);
/* The connection is closing: drop its PostgreSQL operation and wait, if any. */
void fwp_pg_conn_gone(struct conn *c);
/* libevent callback: a blocked FETCH reached its deadline. */
void fwp_fetch_timeout(int fd, short what, void *arg);

#endif
