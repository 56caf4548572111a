/*
 * Middleware chains around push and around perform. A chain is a small
 * caller-owned struct on the stack of the operation it wraps; spool_next()
 * walks it one hook at a time and ends in `final`, the real operation.
 * Used by one thread at a time (the one running the operation).
 */
#ifndef SPOOL_CLIENT_CHAIN_H
#define SPOOL_CLIENT_CHAIN_H

#include <stddef.h>

#include "spool/spool.h"

struct push_mw {
    spool_push_middleware fn;
    void *ud;
};

struct perform_mw {
    spool_perform_middleware fn;
    void *ud;
};

struct spool_chain {
    size_t pos;
    const struct push_mw *push; /* set for a push chain */
    size_t npush;
    const struct perform_mw *perform; /* set for a perform chain */
    size_t nperform;
    spool_job *job;     /* push: mutable job */
    const spool_job *cjob; /* perform: the fetched job */
    spool_ctx *ctx;
    int (*final)(struct spool_chain *ch);
    void *arg; /* for final */
};

/* Appends to a growable array of hooks; 0 or -ENOMEM. */
int push_mw_add(struct push_mw **v, size_t *n, spool_push_middleware fn, void *ud);
int perform_mw_add(struct perform_mw **v, size_t *n, spool_perform_middleware fn, void *ud);

#endif
