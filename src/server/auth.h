/*
 * auth: the password checks of FWP's HELLO and of HTTP Basic, and the
 * slowdown of failed attempts (docs/security.md, "Passwords").
 *
 *  - auth_password_equal compares a given password with the server's in
 *    time that depends on neither's contents nor length.
 *  - struct auth_throttle counts consecutive failed attempts per peer IP
 *    address and says how long to hold the error reply: AUTH_DELAY_BASE_MS
 *    doubling with each failure up to AUTH_DELAY_MAX_MS. A peer with no
 *    failure for AUTH_FORGET_S is forgotten. A success does not clear the
 *    count: a client that knows the password must not hand fresh short
 *    delays to a guesser sharing its address. At most AUTH_MAX_PEERS
 *    addresses are tracked; when the table is full of recent failures, an
 *    address it cannot hold gets the longest delay.
 *
 * Pure apart from OpenSSL's SHA-256: no clock reads (now is an argument), no
 * I/O, no timers (authdelay.c holds the replies). Event-loop thread only.
 */
#ifndef SPOOL_AUTH_H
#define SPOOL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/strmap.h"

#define AUTH_DELAY_BASE_MS 100
#define AUTH_DELAY_MAX_MS 10000
#define AUTH_FORGET_S 600
#define AUTH_MAX_PEERS 4096

/*
 * 1 when the len bytes at given equal the NUL-terminated want, else 0. Both
 * are hashed with SHA-256 and the digests compared with CRYPTO_memcmp, so the
 * time taken says nothing about where they differ or how long want is.
 */
int auth_password_equal(const void *given, size_t len, const char *want);

struct auth_throttle {
    struct strmap peers; /* IP address text -> struct auth_peer */
};

void auth_throttle_init(struct auth_throttle *t);
void auth_throttle_release(struct auth_throttle *t);

/*
 * Records a failed attempt from ip (an address without port) at now_ns.
 * Returns how long to hold the error reply, in ms; *failures (may be NULL)
 * gets the consecutive failures counted for ip, this one included.
 */
int64_t auth_throttle_fail(struct auth_throttle *t, const char *ip, int64_t now_ns,
                           unsigned *failures);

/* The consecutive failures counted for ip at now_ns (0 once forgotten). */
unsigned auth_throttle_failures(const struct auth_throttle *t, const char *ip, int64_t now_ns);

/*
 * The address part of a peer as spoold prints it: "1.2.3.4:5678" gives
 * "1.2.3.4", "[::1]:5678" gives "::1"; anything else is copied whole.
 */
void auth_peer_ip(const char *peer, char *ip, size_t iplen);

#endif
