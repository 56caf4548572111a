/*
 * Unit tests for common/strmap: put/get/replace/del, backward-shift deletion
 * under heavy load, and iteration. The hash seed is random per process, so
 * the layouts differ from run to run; the outcomes must not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strmap.h"

static uint32_t rng_state;

static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static void strmap_empty_map(void **state)
{
    struct strmap m;
    strmap_init(&m);
    assert_null(strmap_get(&m, "a"));
    assert_null(strmap_del(&m, "a"));
    assert_int_equal(m.count, 0);
    size_t pos = 0;
    const char *k = NULL;
    void *v = NULL;
    assert_int_equal(strmap_next(&m, &pos, &k, &v), 0);
    strmap_release(&m);
    strmap_release(&m); /* released map is an empty map again */
    assert_null(strmap_get(&m, "a"));
}

static void strmap_put_get_replace_del(void **state)
{
    struct strmap m;
    int a = 1, b = 2, c = 3;
    strmap_init(&m);
    assert_null(strmap_put(&m, "alpha", &a));
    assert_null(strmap_put(&m, "beta", &b));
    assert_int_equal(m.count, 2);
    assert_ptr_equal(strmap_get(&m, "alpha"), &a);
    assert_ptr_equal(strmap_get(&m, "beta"), &b);
    assert_null(strmap_get(&m, "gamma"));
    assert_null(strmap_get(&m, "alph"));
    assert_null(strmap_get(&m, "alphaa"));
    assert_null(strmap_get(&m, ""));

    /* Replace returns the old value and keeps the count. */
    assert_ptr_equal(strmap_put(&m, "alpha", &c), &a);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(strmap_get(&m, "alpha"), &c);

    assert_ptr_equal(strmap_del(&m, "alpha"), &c);
    assert_int_equal(m.count, 1);
    assert_null(strmap_get(&m, "alpha"));
    assert_null(strmap_del(&m, "alpha"));
    assert_ptr_equal(strmap_get(&m, "beta"), &b);

    /* The empty string is a key like any other. */
    assert_null(strmap_put(&m, "", &a));
    assert_ptr_equal(strmap_get(&m, ""), &a);
    assert_ptr_equal(strmap_del(&m, ""), &a);
    assert_int_equal(m.count, 1);
    strmap_release(&m);
}

static void strmap_replace_adopts_new_key(void **state)
{
    /* Keys are borrowed: after a replace, the map must use the new key's
     * bytes, since the old owner (usually the old value) may be freed. */
    struct strmap m;
    int a = 1, b = 2;
    char *k1 = strdup("shared-key");
    char *k2 = strdup("shared-key");
    strmap_init(&m);
    strmap_put(&m, k1, &a);
    assert_ptr_equal(strmap_put(&m, k2, &b), &a);
    memset(k1, 'x', strlen(k1));
    free(k1);
    assert_ptr_equal(strmap_get(&m, "shared-key"), &b);
    size_t pos = 0;
    const char *k = NULL;
    void *v = NULL;
    assert_int_equal(strmap_next(&m, &pos, &k, &v), 1);
    assert_ptr_equal(k, k2);
    assert_ptr_equal(strmap_del(&m, "shared-key"), &b);
    free(k2);
    strmap_release(&m);
}

/* Keys "k0".."k<n-1>" with value index+1 (so no value is NULL). */
static char **make_keys(size_t n)
{
    char **keys = calloc(n, sizeof *keys);
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "k%zu", i);
        keys[i] = strdup(buf);
        assert_non_null(keys[i]);
    }
    return keys;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

static void *val(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static void check_contents(const struct strmap *m, char **keys, const unsigned char *in, size_t n)
{
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        void *got = strmap_get(m, keys[i]);
        if (in[i]) {
            live++;
            if (got != val(i))
                fail_msg("key %s: want value %zu, got %p", keys[i], i + 1, got);
        } else if (got) {
            fail_msg("deleted key %s still found", keys[i]);
        }
    }
    assert_int_equal(m->count, live);
}

static void strmap_every_deletion_position(void **state)
{
    /* Small maps near the growth threshold have long probe runs; deleting
     * each key in turn exercises every backward-shift case. */
    for (size_t n = 1; n <= 24; n++) {
        char **keys = make_keys(n);
        for (size_t d = 0; d < n; d++) {
            struct strmap m;
            unsigned char in[24];
            strmap_init(&m);
            for (size_t i = 0; i < n; i++) {
                strmap_put(&m, keys[i], val(i));
                in[i] = 1;
            }
            assert_ptr_equal(strmap_del(&m, keys[d]), val(d));
            in[d] = 0;
            check_contents(&m, keys, in, n);
            /* And then delete the rest, checking after each one. */
            for (size_t j = 0; j < n; j++) {
                size_t i = (d + j) % n;
                if (!in[i])
                    continue;
                assert_ptr_equal(strmap_del(&m, keys[i]), val(i));
                in[i] = 0;
                check_contents(&m, keys, in, n);
            }
            assert_int_equal(m.count, 0);
            strmap_release(&m);
        }
        free_keys(keys, n);
    }
}

static void strmap_many_keys_interleaved(void **state)
{
    enum { N = 20000 };
    char **keys = make_keys(N);
    unsigned char *in = calloc(N, 1);
    assert_non_null(in);
    struct strmap m;
    strmap_init(&m);
    rng_state = 0x12345678u;
    for (int round = 0; round < 8; round++) {
        /* Insert a random batch, then delete a random batch. */
        for (int i = 0; i < N / 2; i++) {
            size_t k = rnd() % N;
            void *prev = strmap_put(&m, keys[k], val(k));
            assert_ptr_equal(prev, in[k] ? val(k) : NULL);
            in[k] = 1;
        }
        for (int i = 0; i < N / 3; i++) {
            size_t k = rnd() % N;
            void *got = strmap_del(&m, keys[k]);
            assert_ptr_equal(got, in[k] ? val(k) : NULL);
            in[k] = 0;
        }
        check_contents(&m, keys, in, N);
        /* The load factor bound keeps an empty slot for probes to stop at. */
        assert_true(m.count * 4 <= m.cap * 3);
    }
    /* Delete everything in random order. */
    for (size_t i = 0; i < N; i++) {
        size_t k = (i * 7919) % N; /* 7919 is prime and coprime to N */
        assert_ptr_equal(strmap_del(&m, keys[k]), in[k] ? val(k) : NULL);
        in[k] = 0;
        if (i % 2500 == 0)
            check_contents(&m, keys, in, N);
    }
    assert_int_equal(m.count, 0);
    strmap_release(&m);
    free(in);
    free_keys(keys, N);
}

static void strmap_iteration_visits_each_once(void **state)
{
    enum { N = 3000 };
    char **keys = make_keys(N);
    unsigned char in[N] = {0};
    unsigned char seen[N] = {0};
    struct strmap m;
    strmap_init(&m);
    for (size_t i = 0; i < N; i++) {
        strmap_put(&m, keys[i], val(i));
        in[i] = 1;
    }
    for (size_t i = 0; i < N; i += 3) {
        strmap_del(&m, keys[i]);
        in[i] = 0;
    }
    size_t visits = 0;
    const char *k;
    void *v;
    for (size_t pos = 0; strmap_next(&m, &pos, &k, &v);) {
        size_t i = (size_t)(uintptr_t)v - 1;
        assert_true(i < N);
        assert_ptr_equal(k, keys[i]);
        if (!in[i])
            fail_msg("iteration visited deleted key %s", k);
        if (seen[i]++)
            fail_msg("iteration visited %s twice", k);
        visits++;
    }
    assert_int_equal(visits, m.count);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], in[i]);

    /* The value pointer is optional. */
    size_t nkeys = 0;
    for (size_t pos = 0; strmap_next(&m, &pos, &k, NULL);)
        nkeys++;
    assert_int_equal(nkeys, m.count);
    strmap_release(&m);
    free_keys(keys, N);
}

static void strmap_keys_with_shared_prefixes(void **state)
{
    /* The hash reads 8 bytes at a time: keys differing only past a word
     * boundary, or only in length, must stay distinct. */
    static const char *const keys[] = {"", "a", "aaaaaaa", "aaaaaaaa", "aaaaaaaaa",
                                       "aaaaaaaab", "aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaab",
                                       "b", "aaaaaaab"};
    enum { N = sizeof keys / sizeof *keys };
    struct strmap m;
    strmap_init(&m);
    for (size_t i = 0; i < N; i++)
        assert_null(strmap_put(&m, keys[i], val(i)));
    assert_int_equal(m.count, N);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(strmap_get(&m, keys[i]), val(i));
    strmap_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strmap_empty_map),
        cmocka_unit_test(strmap_put_get_replace_del),
        cmocka_unit_test(strmap_replace_adopts_new_key),
        cmocka_unit_test(strmap_every_deletion_position),
        cmocka_unit_test(strmap_many_keys_interleaved),
        cmocka_unit_test(strmap_iteration_visits_each_once),
        cmocka_unit_test(strmap_keys_with_shared_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
