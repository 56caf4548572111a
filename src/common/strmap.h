/*
 * strmap: a hash map from NUL-terminated strings to pointers, open
 * addressing with linear probing and backward-shift deletion.
 *
 * Keys are borrowed: the caller keeps each key's bytes alive and unchanged
 * while it is in the map (usually the key lives inside the value). The hash
 * is seeded per process so clients cannot aim collisions at it.
 * Single-threaded.
 */
#ifndef SPOOL_STRMAP_H
#define SPOOL_STRMAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * 16 bytes a slot: the hash is not stored but recomputed when a slot moves
 * (growth, deletion), which keeps the map of every job in memory a third
 * smaller. Lookups compare keys directly; strcmp stops at the first byte
 * that differs, and probe runs stay short at the load factor kept (<= 3/4).
 */
struct strmap_slot {
    const char *key; /* NULL = empty */
    void *value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

void strmap_init(struct strmap *m);
/* Frees the table (not the keys or values). */
void strmap_release(struct strmap *m);

void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Removes key; returns its value or NULL when absent. */
void *strmap_del(struct strmap *m, const char *key);

/*
 * Iteration: for (size_t i = 0; strmap_next(m, &i, &k, &v);) ...
 * The map must not change during iteration.
 */
int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **value);

#endif
