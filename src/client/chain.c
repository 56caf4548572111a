/* Middleware chains: see chain.h. */
#include "chain.h"

#include <errno.h>
#include <stdlib.h>

int push_mw_add(struct push_mw **v, size_t *n, spool_push_middleware fn, void *ud)
{
    struct push_mw *nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return -ENOMEM;
    nv[*n].fn = fn;
    nv[*n].ud = ud;
    *v = nv;
    (*n)++;
    return 0;
}

int perform_mw_add(struct perform_mw **v, size_t *n, spool_perform_middleware fn, void *ud)
{
    struct perform_mw *nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return -ENOMEM;
    nv[*n].fn = fn;
    nv[*n].ud = ud;
    *v = nv;
    (*n)++;
    return 0;
}

int spool_next(spool_chain *ch)
{
    if (!ch)
        return SPOOL_EARG;
    if (ch->push && ch->pos < ch->npush) {
        const struct push_mw *m = &ch->push[ch->pos++];
        return m->fn(ch, ch->job, m->ud);
    }
    if (ch->perform && ch->pos < ch->nperform) {
        const struct perform_mw *m = &ch->perform[ch->pos++];
        return m->fn(ch, ch->ctx, ch->cjob, m->ud);
    }
    return ch->final(ch);
}
