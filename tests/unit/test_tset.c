/*
 * Unit tests for common/tset: order by score, FIFO among equal scores,
 * removal of arbitrary members, min, walks, and a long random run checked
 * against a sorted reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/tset.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct item {
    int id;
    int in_set;
    uint64_t order; /* the test's own insertion counter, for the reference */
    struct tset_node node;
};

#define item_of(n) container_of(n, struct item, node)

struct collect {
    int ids[64];
    int n;
    int stop_after; /* 0 = never */
};

static int collect_fn(struct tset_node *node, void *arg)
{
    struct collect *c = arg;
    assert_true(c->n < 64);
    c->ids[c->n++] = item_of(node)->id;
    return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static void expect_walk(const struct tset *s, const int *want, int n)
{
    struct collect c = {.n = 0};
    assert_int_equal(tset_walk(s, collect_fn, &c), 0);
    assert_int_equal(c.n, n);
    for (int i = 0; i < n; i++)
        if (c.ids[i] != want[i])
            fail_msg("walk position %d: got id %d, want %d", i, c.ids[i], want[i]);
    assert_int_equal(s->count, (size_t)n);
}

static void tset_empty_set(void **state)
{
    struct tset s;
    tset_init(&s);
    assert_null(tset_min(&s));
    assert_int_equal(s.count, 0);
    expect_walk(&s, NULL, 0);
}

static void tset_orders_by_score(void **state)
{
    struct tset s;
    struct item it[6] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}, {.id = 5}};
    static const int64_t scores[] = {50, 10, 30, -20, 40, INT64_MAX};
    tset_init(&s);
    for (int i = 0; i < 6; i++)
        tset_insert(&s, &it[i].node, scores[i]);
    assert_ptr_equal(tset_min(&s), &it[3].node);
    assert_true(tset_min(&s)->score_ns == -20);
    expect_walk(&s, (const int[]){3, 1, 2, 4, 0, 5}, 6);
}

static void tset_ties_are_fifo(void **state)
{
    struct tset s;
    struct item it[6];
    tset_init(&s);
    for (int i = 0; i < 6; i++)
        it[i] = (struct item){.id = i};
    /* Scores: 5 5 1 5 1 5 -> the 1s first in insertion order, then the 5s. */
    static const int64_t scores[] = {5, 5, 1, 5, 1, 5};
    for (int i = 0; i < 6; i++)
        tset_insert(&s, &it[i].node, scores[i]);
    expect_walk(&s, (const int[]){2, 4, 0, 1, 3, 5}, 6);
    assert_ptr_equal(tset_min(&s), &it[2].node);
    tset_remove(&s, &it[2].node);
    assert_ptr_equal(tset_min(&s), &it[4].node);
    tset_remove(&s, &it[4].node);
    assert_ptr_equal(tset_min(&s), &it[0].node);

    /* A re-inserted member goes behind the members already at its score. */
    tset_remove(&s, &it[0].node);
    tset_insert(&s, &it[0].node, 5);
    expect_walk(&s, (const int[]){1, 3, 5, 0}, 4);
}

static void tset_remove_arbitrary(void **state)
{
    struct tset s;
    struct item it[10];
    tset_init(&s);
    for (int i = 0; i < 10; i++) {
        it[i] = (struct item){.id = i};
        tset_insert(&s, &it[i].node, (int64_t)((i * 7) % 10)); /* 0 7 4 1 8 5 2 9 6 3 */
    }
    /* Order by score: ids 0 3 6 9 2 5 8 1 4 7. */
    expect_walk(&s, (const int[]){0, 3, 6, 9, 2, 5, 8, 1, 4, 7}, 10);
    tset_remove(&s, &it[5].node); /* middle */
    expect_walk(&s, (const int[]){0, 3, 6, 9, 2, 8, 1, 4, 7}, 9);
    tset_remove(&s, &it[0].node); /* min */
    assert_ptr_equal(tset_min(&s), &it[3].node);
    tset_remove(&s, &it[7].node); /* max */
    expect_walk(&s, (const int[]){3, 6, 9, 2, 8, 1, 4}, 7);
    static const int rest[] = {3, 6, 9, 2, 8, 1, 4};
    for (int i = 0; i < 7; i++) {
        assert_ptr_equal(tset_min(&s), &it[rest[i]].node);
        tset_remove(&s, &it[rest[i]].node);
    }
    assert_null(tset_min(&s));
    assert_int_equal(s.count, 0);

    /* Nodes are intrusive: they can move to another set. */
    struct tset other;
    tset_init(&other);
    tset_insert(&other, &it[1].node, 100);
    tset_insert(&other, &it[2].node, 50);
    expect_walk(&other, (const int[]){2, 1}, 2);
}

static void tset_walk_stops_early(void **state)
{
    struct tset s;
    struct item it[8];
    tset_init(&s);
    for (int i = 0; i < 8; i++) {
        it[i] = (struct item){.id = i};
        tset_insert(&s, &it[i].node, 80 - i * 10);
    }
    struct collect c = {.stop_after = 3};
    assert_int_equal(tset_walk(&s, collect_fn, &c), 7);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.ids[0], 7);
    assert_int_equal(c.ids[1], 6);
    assert_int_equal(c.ids[2], 5);
}

static uint32_t rng_state;

static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static int cmp_ref(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    if (x->node.score_ns != y->node.score_ns)
        return x->node.score_ns < y->node.score_ns ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

struct walk_check {
    struct item **ref;
    size_t n, pos;
};

static int walk_check_fn(struct tset_node *node, void *arg)
{
    struct walk_check *w = arg;
    if (w->pos >= w->n)
        fail_msg("walk visited more than the %zu members", w->n);
    if (item_of(node) != w->ref[w->pos])
        fail_msg("walk position %zu: got id %d, want id %d", w->pos, item_of(node)->id,
                 w->ref[w->pos]->id);
    w->pos++;
    return 0;
}

static void check_against_reference(const struct tset *s, struct item *items, size_t nitems,
                                    struct item **ref)
{
    size_t n = 0;
    for (size_t i = 0; i < nitems; i++)
        if (items[i].in_set)
            ref[n++] = &items[i];
    qsort(ref, n, sizeof *ref, cmp_ref);
    assert_int_equal(s->count, n);
    assert_ptr_equal(tset_min(s), n ? &ref[0]->node : NULL);
    struct walk_check w = {ref, n, 0};
    assert_int_equal(tset_walk(s, walk_check_fn, &w), 0);
    assert_int_equal(w.pos, n);
}

static void tset_random_against_reference(void **state)
{
    enum { N = 10000, OPS = 30000 };
    struct item *items = calloc(N, sizeof *items);
    struct item **ref = calloc(N, sizeof *ref);
    assert_non_null(items);
    assert_non_null(ref);
    struct tset s;
    tset_init(&s);
    rng_state = 0xC0FFEEu;
    uint64_t order = 0;
    for (int i = 0; i < N; i++)
        items[i].id = i;
    for (int op = 0; op < OPS; op++) {
        struct item *it = &items[rnd() % N];
        if (it->in_set) {
            tset_remove(&s, &it->node);
            it->in_set = 0;
        } else {
            /* A narrow score range makes ties common. */
            int64_t score = (int64_t)(rnd() % 200) - 50;
            tset_insert(&s, &it->node, score);
            it->order = order++;
            it->in_set = 1;
        }
        /* min is checked cheaply every time, the whole order now and then. */
        struct tset_node *min = tset_min(&s);
        if (op % 500 == 0 || op == OPS - 1) {
            check_against_reference(&s, items, N, ref);
        } else if (min) {
            struct item *m = item_of(min);
            assert_true(m->in_set);
            for (int k = 0; k < 8; k++) {
                struct item *o = &items[rnd() % N];
                if (o->in_set && o != m)
                    assert_true(cmp_ref(&m, &o) < 0);
            }
        } else {
            assert_int_equal(s.count, 0);
        }
    }
    /* Drain through min: strictly increasing (score, order). */
    struct item *prev = NULL;
    while (tset_min(&s)) {
        struct item *m = item_of(tset_min(&s));
        if (prev)
            assert_true(cmp_ref(&prev, &m) < 0);
        tset_remove(&s, &m->node);
        m->in_set = 0;
        prev = m;
    }
    assert_int_equal(s.count, 0);
    free(ref);
    free(items);
}

static int depth(const struct tset_node *n)
{
    if (!n)
        return 0;
    int l = depth(n->left), r = depth(n->right);
    return 1 + (l > r ? l : r);
}

/*
 * Jobs arrive in score order (a queue's reservations, a schedule filled in
 * time order) or all at one score: the treap's derived priorities must keep
 * it shallow anyway, also after members leave from the front and come back.
 */
static void tset_stays_shallow_for_ordered_inserts(void **state)
{
    (void)state;
    enum { N = 1 << 16 };
    struct item *items = calloc(N, sizeof *items);
    assert_non_null(items);
    for (int same = 0; same < 2; same++) {
        struct tset s;
        tset_init(&s);
        for (int i = 0; i < N; i++)
            tset_insert(&s, &items[i].node, same ? 42 : i);
        int d = depth(s.root);
        if (d > 80) /* about 3 ln N is expected; a degenerate treap is N deep */
            fail_msg("depth %d for %d %s inserts", d, N, same ? "equal-score" : "rising-score");
        for (int i = 0; i < N / 2; i++) {
            struct tset_node *min = tset_min(&s);
            tset_remove(&s, min);
            tset_insert(&s, min, same ? 42 : N + i);
        }
        d = depth(s.root);
        if (d > 80)
            fail_msg("depth %d after re-inserting half of %d members", d, N);
        assert_int_equal(s.count, N);
    }
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tset_empty_set),
        cmocka_unit_test(tset_orders_by_score),
        cmocka_unit_test(tset_ties_are_fifo),
        cmocka_unit_test(tset_remove_arbitrary),
        cmocka_unit_test(tset_walk_stops_early),
        cmocka_unit_test(tset_random_against_reference),
        cmocka_unit_test(tset_stays_shallow_for_ordered_inserts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
