#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "common/xalloc.h"

struct auth_peer {
    char *ip; /* the map's key */
    unsigned failures;
    int64_t last_failure_ns;
};

int auth_password_equal(const void *given, size_t len, const char *want)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int alen = 0, blen = 0;
    if (EVP_Digest(given, len, a, &alen, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(want, strlen(want), b, &blen, EVP_sha256(), NULL) != 1 || alen != blen)
        return 0;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void auth_throttle_init(struct auth_throttle *t)
{
    strmap_init(&t->peers);
}

void auth_throttle_release(struct auth_throttle *t)
{
    const char *k;
    void *v;
    for (size_t i = 0; strmap_next(&t->peers, &i, &k, &v);) {
        struct auth_peer *p = v;
        free(p->ip);
        free(p);
    }
    strmap_release(&t->peers);
}

static int is_forgotten(const struct auth_peer *p, int64_t now_ns)
{
    return now_ns - p->last_failure_ns >= (int64_t)AUTH_FORGET_S * NS_PER_S;
}

/* Drops the peers whose failures are forgotten; returns how many remain. */
static size_t sweep(struct auth_throttle *t, int64_t now_ns)
{
    /* The map may not change while iterating: collect first, then delete. */
    struct auth_peer **old = xmalloc(t->peers.count * sizeof *old + 1);
    size_t n = 0;
    const char *k;
    void *v;
    for (size_t i = 0; strmap_next(&t->peers, &i, &k, &v);)
        if (is_forgotten(v, now_ns))
            old[n++] = v;
    for (size_t i = 0; i < n; i++) {
        strmap_del(&t->peers, old[i]->ip);
        free(old[i]->ip);
        free(old[i]);
    }
    free(old);
    return t->peers.count;
}

int64_t auth_throttle_fail(struct auth_throttle *t, const char *ip, int64_t now_ns,
                           unsigned *failures)
{
    struct auth_peer *p = strmap_get(&t->peers, ip);
    if (p && is_forgotten(p, now_ns))
        p->failures = 0;
    if (!p) {
        if (t->peers.count >= AUTH_MAX_PEERS && sweep(t, now_ns) >= AUTH_MAX_PEERS) {
            if (failures)
                *failures = 0;
            return AUTH_DELAY_MAX_MS;
        }
        p = xcalloc(1, sizeof *p);
        p->ip = xstrdup(ip);
        strmap_put(&t->peers, p->ip, p);
    }
    if (p->failures < 1000000)
        p->failures++;
    p->last_failure_ns = now_ns;
    if (failures)
        *failures = p->failures;
    int64_t delay = AUTH_DELAY_BASE_MS;
    for (unsigned i = 1; i < p->failures && delay < AUTH_DELAY_MAX_MS; i++)
        delay *= 2;
    return delay < AUTH_DELAY_MAX_MS ? delay : AUTH_DELAY_MAX_MS;
}

unsigned auth_throttle_failures(const struct auth_throttle *t, const char *ip, int64_t now_ns)
{
    const struct auth_peer *p = strmap_get(&t->peers, ip);
    return p && !is_forgotten(p, now_ns) ? p->failures : 0;
}

void auth_peer_ip(const char *peer, char *ip, size_t iplen)
{
    const char *end = NULL;
    if (peer[0] == '[') {
        end = strchr(peer, ']');
        if (end) {
            snprintf(ip, iplen, "%.*s", (int)(end - peer - 1), peer + 1);
            return;
        }
    }
    end = strrchr(peer, ':');
    /* One colon: host:port. More (a bare IPv6 address) or none: the whole text. */
    if (end && strchr(peer, ':') == end)
        snprintf(ip, iplen, "%.*s", (int)(end - peer), peer);
    else
        snprintf(ip, iplen, "%s", peer);
}
