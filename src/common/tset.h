/*
 * tset: a time-ordered set (scheduled, retries, dead, working). An intrusive
 * treap ordered by (score_ns, insertion sequence), so ties keep FIFO order.
 * The node lives inside the member (a job), so moving a job between sets
 * allocates nothing. Insert, remove and min are O(log n) expected; in-order
 * walks visit members by time. Single-threaded.
 */
#ifndef SPOOL_TSET_H
#define SPOOL_TSET_H

#include <stddef.h>
#include <stdint.h>

/* 32 bytes: every job holds one, so the treap priority is derived from seq, not stored. */
struct tset_node {
    struct tset_node *left, *right;
    int64_t score_ns;
    uint64_t seq;
};

struct tset {
    struct tset_node *root;
    size_t count;
    uint64_t next_seq;
};

void tset_init(struct tset *s);
/* Adds node (not already in a set) with the given score. */
void tset_insert(struct tset *s, struct tset_node *node, int64_t score_ns);
/* Removes node, which must be in s. */
void tset_remove(struct tset *s, struct tset_node *node);
/* The member with the lowest score (oldest on ties), or NULL when empty. */
struct tset_node *tset_min(const struct tset *s);

/*
 * Calls fn on members in score order until fn returns non-zero (which is
 * then returned). fn must not change the set.
 */
int tset_walk(const struct tset *s, int (*fn)(struct tset_node *node, void *arg), void *arg);

#endif
