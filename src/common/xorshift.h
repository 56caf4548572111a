/*
 * xorshift: a tiny deterministic generator (xorshift32) for values that need
 * to be well spread, not unpredictable: backoff jitter, generated jids.
 * The state must never be 0. Pure; the caller owns the state.
 */
#ifndef SPOOL_XORSHIFT_H
#define SPOOL_XORSHIFT_H

#include <stdint.h>

static inline uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

#endif
