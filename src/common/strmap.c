#include "common/strmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/xalloc.h"

static uint64_t seed;

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static uint64_t hash_str(const char *s)
{
    if (!seed) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)(uintptr_t)&r;
        seed = r | 1;
    }
    uint64_t h = seed;
    size_t n = strlen(s);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    return mix(h ^ w ^ ((uint64_t)n << 56));
}

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof *m);
}

void strmap_release(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

static struct strmap_slot *find(const struct strmap *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key[0] == key[0] && strcmp(s->key, key) == 0)
            return s;
    }
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct strmap_slot *s = find(m, key, hash_str(key));
    return s ? s->value : NULL;
}

static void insert_slot(struct strmap *m, const char *key, uint64_t h, void *value)
{
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key)
        i = (i + 1) & mask;
    m->slots[i] = (struct strmap_slot){key, value};
    m->count++;
}

static void grow(struct strmap *m)
{
    struct strmap_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->count = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            insert_slot(m, old[i].key, hash_str(old[i].key), old[i].value);
    free(old);
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
    uint64_t h = hash_str(key);
    struct strmap_slot *s = find(m, key, h);
    if (s) {
        void *prev = s->value;
        s->key = key;
        s->value = value;
        return prev;
    }
    /* Keep the load factor at or below 3/4 so probes stay short. */
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    insert_slot(m, key, h, value);
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    struct strmap_slot *s = find(m, key, hash_str(key));
    if (!s)
        return NULL;
    void *value = s->value;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
        size_t home = hash_str(m->slots[i].key) & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    m->slots[hole].key = NULL;
    m->slots[hole].value = NULL;
    m->count--;
    return value;
}

int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **value)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->slots[i].key) {
            *key = m->slots[i].key;
            if (value)
                *value = m->slots[i].value;
            *pos = i + 1;
            return 1;
        }
    }
    *pos = m->cap;
    return 0;
}
