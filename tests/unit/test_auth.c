/*
 * Unit tests for server/auth: the constant-time password comparison, the
 * per-address failure count and its delays (doubling, capped, forgotten
 * after a quiet period, independent per address, bounded table), and the
 * address part of a peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/timefmt.h"
#include "server/auth.h"

#define T0 INT64_C(1767225600000000000)

static void auth_password_equal_compares_bytes_and_length(void **state)
{
    assert_int_equal(auth_password_equal("s3cret", 6, "s3cret"), 1);
    assert_int_equal(auth_password_equal("s3creT", 6, "s3cret"), 0);
    assert_int_equal(auth_password_equal("s3cre", 5, "s3cret"), 0);
    assert_int_equal(auth_password_equal("s3cret!", 7, "s3cret"), 0);
    assert_int_equal(auth_password_equal("", 0, "s3cret"), 0);
    /* Only len bytes count: what follows in the buffer is not part of the password. */
    assert_int_equal(auth_password_equal("s3cretXYZ", 6, "s3cret"), 1);
    /* A NUL inside the given bytes is a byte like any other, never an early end. */
    assert_int_equal(auth_password_equal("s3\0cret", 7, "s3"), 0);
}

static void auth_delay_doubles_per_failure_up_to_the_cap(void **state)
{
    struct auth_throttle t;
    auth_throttle_init(&t);
    int64_t want = AUTH_DELAY_BASE_MS;
    for (unsigned k = 1; k <= 20; k++) {
        unsigned n = 0;
        int64_t ms = auth_throttle_fail(&t, "10.0.0.1", T0 + k * NS_PER_S, &n);
        if (n != k)
            fail_msg("failure %u should be counted as %u, got %u", k, k, n);
        if (ms != want)
            fail_msg("failure %u should be held %lld ms, got %lld", k, (long long)want, (long long)ms);
        want = want * 2 > AUTH_DELAY_MAX_MS ? AUTH_DELAY_MAX_MS : want * 2;
    }
    assert_int_equal(auth_throttle_failures(&t, "10.0.0.1", T0 + 21 * NS_PER_S), 20);
    auth_throttle_release(&t);
}

static void auth_addresses_are_counted_apart(void **state)
{
    struct auth_throttle t;
    auth_throttle_init(&t);
    for (int k = 0; k < 5; k++)
        auth_throttle_fail(&t, "10.0.0.1", T0, NULL);
    unsigned n = 0;
    assert_int_equal(auth_throttle_fail(&t, "10.0.0.2", T0, &n), AUTH_DELAY_BASE_MS);
    assert_int_equal(n, 1);
    assert_int_equal(auth_throttle_failures(&t, "10.0.0.1", T0), 5);
    assert_int_equal(auth_throttle_failures(&t, "10.0.0.3", T0), 0);
    auth_throttle_release(&t);
}

static void auth_failures_are_forgotten_after_a_quiet_period(void **state)
{
    struct auth_throttle t;
    auth_throttle_init(&t);
    for (int k = 0; k < 6; k++)
        auth_throttle_fail(&t, "::1", T0, NULL);
    int64_t just_before = T0 + (int64_t)AUTH_FORGET_S * NS_PER_S - 1;
    assert_int_equal(auth_throttle_failures(&t, "::1", just_before), 6);
    int64_t after = T0 + (int64_t)AUTH_FORGET_S * NS_PER_S;
    assert_int_equal(auth_throttle_failures(&t, "::1", after), 0);
    unsigned n = 0;
    assert_int_equal(auth_throttle_fail(&t, "::1", after, &n), AUTH_DELAY_BASE_MS);
    assert_int_equal(n, 1);
    auth_throttle_release(&t);
}

static void auth_full_table_gives_unknown_addresses_the_cap(void **state)
{
    struct auth_throttle t;
    auth_throttle_init(&t);
    char ip[32];
    for (int k = 0; k < AUTH_MAX_PEERS; k++) {
        snprintf(ip, sizeof ip, "10.%d.%d.1", k / 256, k % 256);
        auth_throttle_fail(&t, ip, T0, NULL);
    }
    assert_int_equal(t.peers.count, AUTH_MAX_PEERS);
    unsigned n = 99;
    assert_int_equal(auth_throttle_fail(&t, "192.168.1.1", T0 + NS_PER_S, &n), AUTH_DELAY_MAX_MS);
    assert_int_equal(n, 0);
    assert_int_equal(t.peers.count, AUTH_MAX_PEERS);
    /* A known address keeps its own count meanwhile. */
    assert_int_equal(auth_throttle_fail(&t, "10.0.0.1", T0 + NS_PER_S, &n), 2 * AUTH_DELAY_BASE_MS);
    /* Once the old failures are forgotten, their room is reused. */
    int64_t later = T0 + (int64_t)AUTH_FORGET_S * NS_PER_S + NS_PER_S - 1;
    assert_int_equal(auth_throttle_fail(&t, "192.168.1.1", later, &n), AUTH_DELAY_BASE_MS);
    assert_int_equal(n, 1);
    assert_true(t.peers.count < AUTH_MAX_PEERS);
    auth_throttle_release(&t);
}

static void auth_peer_ip_drops_the_port(void **state)
{
    char ip[64];
    auth_peer_ip("127.0.0.1:40000", ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");
    auth_peer_ip("[::1]:7419", ip, sizeof ip);
    assert_string_equal(ip, "::1");
    auth_peer_ip("[fe80::1%eth0]:1", ip, sizeof ip);
    assert_string_equal(ip, "fe80::1%eth0");
    auth_peer_ip("::1", ip, sizeof ip);
    assert_string_equal(ip, "::1");
    auth_peer_ip("?", ip, sizeof ip);
    assert_string_equal(ip, "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_password_equal_compares_bytes_and_length),
        cmocka_unit_test(auth_delay_doubles_per_failure_up_to_the_cap),
        cmocka_unit_test(auth_addresses_are_counted_apart),
        cmocka_unit_test(auth_failures_are_forgotten_after_a_quiet_period),
        cmocka_unit_test(auth_full_table_gives_unknown_addresses_the_cap),
        cmocka_unit_test(auth_peer_ip_drops_the_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
