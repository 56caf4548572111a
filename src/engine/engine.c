#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "common/xalloc.h"
#include "common/xorshift.h"
#include "engine/record.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define job_of(node) container_of(node, struct job, tnode)

/* A recently finished job, remembered for TRACK GET; in finished-order list. */
struct finished_job {
    char *jid;
    enum track_state state;
    int percent;
    char *desc;
    int64_t updated_at_ns;
    struct finished_job *prev, *next;
};

/* Blocked fetchers waiting on one queue name, oldest first. */
struct wait_list {
    char *name;
    struct waiter_link *head, *tail;
};

const char *engine_strerror(int err)
{
    switch (err) {
#define X(name, value, text) \
    case value: return text;
        ENGINE_ERRORS(X)
#undef X
    default: return "unknown error";
    }
}

/* The struct, the index slots, allocator overhead: the part of a job's memory that does
 * not grow with its text. bench/memory_bench.js measured 517 bytes of RSS per 54-byte job,
 * of which this constant plus the strings counted below make about 514. */
#define JOB_FIXED_FOOTPRINT 400

size_t engine_job_footprint(const struct job *job)
{
    size_t n = JOB_FIXED_FOOTPRINT + job->body_len;
    const char *strs[] = {job->jid, job->jobtype, job->queue, job->created_at,
                          job_extra(job)->unique_key};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i])
            n += strlen(strs[i]) + 1;
    return n;
}

void engine_config_defaults(struct engine_config *cfg)
{
    cfg->dead_max = 100000;
    cfg->dead_ttl_ns = INT64_C(180) * 86400 * NS_PER_S;
    cfg->worker_ttl_ns = 60 * NS_PER_S;
    cfg->seed = 0x2545F491u;
    cfg->finished_max = 10000;
    cfg->batch_ttl_ns = (int64_t)BATCH_DEFAULT_TTL_S * NS_PER_S;
    cfg->batch_max = BATCH_DEFAULT_MAX;
    cfg->max_jobs = 0;
    cfg->max_memory = 0;
}

struct engine *engine_new(const struct engine_config *cfg, const struct engine_hooks *hooks)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->cfg = *cfg;
    if (hooks)
        e->hooks = *hooks;
    strmap_init(&e->jobs);
    strmap_init(&e->queues);
    strmap_init(&e->waiting);
    strmap_init(&e->workers);
    strmap_init(&e->unique);
    strmap_init(&e->finished);
    strmap_init(&e->cron_last);
    strmap_init(&e->throttles);
    batch_set_init(&e->batches);
    tset_init(&e->scheduled);
    tset_init(&e->retries);
    tset_init(&e->dead);
    tset_init(&e->working);
    e->rng = cfg->seed ? cfg->seed : 1;
    sbuf_init(&e->scratch);
    sbuf_init(&e->recbuf);
    return e;
}

static void queue_free(struct queue *q)
{
    free(q->name);
    free(q);
}

static void worker_free(struct worker *w)
{
    free(w->wid);
    free(w->hostname);
    free(w->labels);
    free(w->v);
    free(w);
}

static void finished_unlink(struct engine *e, struct finished_job *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        e->finished_head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        e->finished_tail = f->prev;
    strmap_del(&e->finished, f->jid);
    free(f->jid);
    free(f->desc);
    free(f);
}

static void drop_all_finished(struct engine *e)
{
    while (e->finished_head)
        finished_unlink(e, e->finished_head);
}

static void drop_all_jobs(struct engine *e)
{
    const char *key;
    void *val;
    /* Locks live inside the jobs: forget them before the jobs go. */
    strmap_release(&e->unique);
    strmap_init(&e->unique);
    for (size_t i = 0; strmap_next(&e->jobs, &i, &key, &val);)
        job_free(val);
    strmap_release(&e->jobs);
    e->job_bytes = 0;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);)
        queue_free(val);
    strmap_release(&e->queues);
    tset_init(&e->scheduled);
    tset_init(&e->retries);
    tset_init(&e->dead);
    tset_init(&e->working);
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val);)
        ((struct throttle *)val)->in_flight = 0;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    drop_all_jobs(e);
    batch_set_release(&e->batches);
    strmap_release(&e->unique);
    drop_all_finished(e);
    strmap_release(&e->finished);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->waiting, &i, &key, &val);) {
        struct wait_list *l = val;
        free(l->name);
        free(l);
    }
    strmap_release(&e->waiting);
    for (size_t i = 0; strmap_next(&e->workers, &i, &key, &val);)
        worker_free(val);
    strmap_release(&e->workers);
    for (size_t i = 0; strmap_next(&e->cron_last, &i, &key, &val);)
        free(val);
    strmap_release(&e->cron_last);
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val);)
        throttle_free(val);
    strmap_release(&e->throttles);
    sbuf_release(&e->scratch);
    sbuf_release(&e->recbuf);
    free(e);
}

static uint32_t next_rand(struct engine *e)
{
    return xorshift32(&e->rng);
}

static struct day_stats *today(struct engine *e, int64_t now_ns)
{
    int64_t day = timefmt_day(now_ns);
    struct day_stats *d = &e->history[(uint64_t)day % ENGINE_HISTORY_DAYS];
    if (d->day != day) {
        d->day = day;
        d->processed = d->failed = 0;
    }
    return d;
}

/* ---- change records ---- */

static void emit(struct engine *e)
{
    if (e->hooks.record && !e->is_replaying)
        e->hooks.record(e->hooks.ctx, e->recbuf.buf, e->recbuf.len);
    sbuf_reset(&e->recbuf);
}

static struct placement placement_of(const struct job *job)
{
    struct placement pl = {.state = job->state, .enqueued_at_ns = job->enqueued_at_ns};
    if (job->state != JOB_ENQUEUED && job->state != JOB_NEW)
        pl.score_ns = job->tnode.score_ns;
    if (job->state == JOB_WORKING) {
        pl.wid = job->wid;
        pl.reserved_at_ns = job->reserved_at_ns;
    }
    return pl;
}

static void emit_add(struct engine *e, const struct job *job)
{
    if (e->is_replaying || !e->hooks.record)
        return;
    struct placement pl = placement_of(job);
    rec_encode_add(&e->recbuf, job, &pl);
    emit(e);
}

static void emit_place(struct engine *e, const struct job *job)
{
    if (e->is_replaying || !e->hooks.record)
        return;
    struct placement pl = placement_of(job);
    rec_encode_place(&e->recbuf, job->jid, &pl);
    emit(e);
}

static void emit_del(struct engine *e, const char *jid, enum record_del_reason why, int64_t now_ns)
{
    if (e->is_replaying || !e->hooks.record)
        return;
    rec_encode_del(&e->recbuf, jid, why, now_ns);
    emit(e);
}

struct day_stats engine_day(const struct engine *e, int64_t day)
{
    const struct day_stats *d = &e->history[(uint64_t)day % ENGINE_HISTORY_DAYS];
    if (d->day == day)
        return *d;
    return (struct day_stats){.day = day};
}

/* ---- unique locks, expiry, finished jobs (docs/features.md) ---- */

/*
 * Invariant: a job's unique_until_ns != 0 exactly when the unique map points
 * at it under its unique_key. Releasing is idempotent.
 */
static void unique_release(struct engine *e, struct job *job)
{
    struct job_extra *x = job->extra;
    if (!x)
        return; /* no key, no lock */
    if (x->unique_key && strmap_get(&e->unique, x->unique_key) == job)
        strmap_del(&e->unique, x->unique_key);
    x->unique_until_ns = 0;
}

/* Gives job the lock on its key until until_ns, taking it from any earlier (expired) holder. */
static void unique_acquire(struct engine *e, struct job *job, int64_t until_ns)
{
    struct job_extra *x = job->extra; /* a job with a key has extras */
    struct job *old = strmap_get(&e->unique, x->unique_key);
    if (old)
        unique_release(e, old);
    x->unique_until_ns = until_ns;
    /* The map borrows the key from the job that holds the lock. */
    strmap_put(&e->unique, x->unique_key, job);
}

static struct job *unique_holder(struct engine *e, const struct job *job, int64_t now_ns)
{
    const char *key = job_extra(job)->unique_key;
    struct job *h = key ? strmap_get(&e->unique, key) : NULL;
    return h && job_extra(h)->unique_until_ns > now_ns ? h : NULL;
}

const char *engine_unique_holder(struct engine *e, const struct job *job, int64_t now_ns)
{
    struct job *h = unique_holder(e, job, now_ns);
    return h ? h->jid : NULL;
}

/* Drops a job the engine no longer holds (the caller has unplaced and recorded it). */
static void forget(struct engine *e, struct job *job)
{
    if (job_extra(job)->batch)
        batch_job_gone(e, job);
    /* What push or replay added: the strings it counts never change while the job is held. */
    e->job_bytes -= engine_job_footprint(job);
    unique_release(e, job);
    strmap_del(&e->jobs, job->jid);
    job_free(job);
}

static int is_expired(const struct job *job, int64_t now_ns)
{
    int64_t at = job_extra(job)->expires_at_ns;
    return at && at <= now_ns;
}

/* Discards a job whose custom.expires_at passed; the job is taken out of its place already. */
static void expire_job(struct engine *e, struct job *job, int64_t now_ns)
{
    e->expired_jobs++;
    emit_del(e, job->jid, RECDEL_EXPIRED, now_ns);
    forget(e, job);
}

/* Remembers how a job ended for TRACK GET; the oldest entries go beyond the cap. */
static void finished_note(struct engine *e, const char *jid, enum track_state st,
                          const struct job_track *t, int64_t now_ns)
{
    if (!e->cfg.finished_max || !jid)
        return;
    struct finished_job *f = strmap_get(&e->finished, jid);
    if (f)
        finished_unlink(e, f);
    f = xcalloc(1, sizeof *f);
    f->jid = xstrdup(jid);
    f->state = st;
    f->percent = t ? t->percent : -1;
    f->desc = t && t->desc ? xstrdup(t->desc) : NULL;
    f->updated_at_ns = now_ns;
    f->prev = e->finished_tail;
    if (e->finished_tail)
        e->finished_tail->next = f;
    else
        e->finished_head = f;
    e->finished_tail = f;
    strmap_put(&e->finished, f->jid, f);
    while (e->finished.count > e->cfg.finished_max)
        finished_unlink(e, e->finished_head);
}

/* ---- throttles (docs/features.md) ---- */

static struct throttle *throttle_of(struct engine *e, const char *queue)
{
    return e->throttles.count ? strmap_get(&e->throttles, queue) : NULL;
}

/* Whether queue may hand out no job now (its throttle is full). */
static int is_throttled(struct engine *e, const char *queue, int64_t now_ns)
{
    struct throttle *t = throttle_of(e, queue);
    return t && throttle_is_full(t, now_ns);
}

/* A job of queue left the working set (not for the jobs FLUSH drops). */
static void throttle_released(struct engine *e, const char *queue)
{
    struct throttle *t = throttle_of(e, queue);
    if (t && t->in_flight)
        t->in_flight--;
}

/* ---- queues and waiters ---- */

struct queue *engine_queue(struct engine *e, const char *name)
{
    return strmap_get(&e->queues, name);
}

static struct queue *queue_get_or_create(struct engine *e, const char *name)
{
    struct queue *q = strmap_get(&e->queues, name);
    if (!q) {
        q = xcalloc(1, sizeof *q);
        q->name = xstrdup(name);
        strmap_put(&e->queues, q->name, q);
    }
    return q;
}

static void queue_append(struct queue *q, struct job *job)
{
    job->qnext = NULL;
    job->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = job;
    else
        q->head = job;
    q->tail = job;
    q->size++;
}

static void queue_unlink(struct queue *q, struct job *job)
{
    if (job->qprev)
        job->qprev->qnext = job->qnext;
    else
        q->head = job->qnext;
    if (job->qnext)
        job->qnext->qprev = job->qprev;
    else
        q->tail = job->qprev;
    job->qprev = job->qnext = NULL;
    q->size--;
}

size_t engine_enqueued_total(const struct engine *e)
{
    size_t total = 0;
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);)
        total += ((struct queue *)val)->size;
    return total;
}

static void reserve(struct engine *e, struct job *job, const char *wid, int64_t now_ns)
{
    job->state = JOB_WORKING;
    free(job->wid);
    job->wid = xstrdup(wid ? wid : "");
    job->reserved_at_ns = now_ns;
    tset_insert(&e->working, &job->tnode, now_ns + (int64_t)job_reserve_s(job) * NS_PER_S);
    struct throttle *t = throttle_of(e, job->queue);
    if (t)
        throttle_note_reserved(t, now_ns);
    if (job_extra(job)->is_unique_until_start)
        unique_release(e, job);
    emit_place(e, job);
}

void engine_unwait(struct engine *e, struct waiter *w)
{
    for (int i = 0; i < w->nlinks; i++) {
        struct waiter_link *l = &w->links[i];
        struct wait_list *list = l->list;
        if (l->prev)
            l->prev->next = l->next;
        else
            list->head = l->next;
        if (l->next)
            l->next->prev = l->prev;
        else
            list->tail = l->prev;
        if (!list->head) {
            strmap_del(&e->waiting, list->name);
            free(list->name);
            free(list);
        }
    }
    free(w->links);
    w->links = NULL;
    w->nlinks = 0;
}

int engine_wait(struct engine *e, struct waiter *w, const char *const *queues, int n)
{
    engine_unwait(e, w);
    w->links = xcalloc((size_t)(n ? n : 1), sizeof *w->links);
    for (int i = 0; i < n; i++) {
        struct queue *q = strmap_get(&e->queues, queues[i]);
        if (q && q->is_paused)
            continue;
        struct wait_list *list = strmap_get(&e->waiting, queues[i]);
        if (!list) {
            list = xcalloc(1, sizeof *list);
            list->name = xstrdup(queues[i]);
            strmap_put(&e->waiting, list->name, list);
        } else {
            int dup = 0; /* FETCH a a: wait once */
            for (int k = 0; k < w->nlinks; k++)
                dup |= w->links[k].list == list;
            if (dup)
                continue;
        }
        struct waiter_link *l = &w->links[w->nlinks++];
        l->w = w;
        l->list = list;
        l->next = NULL;
        l->prev = list->tail;
        if (list->tail)
            list->tail->next = l;
        else
            list->head = l;
        list->tail = l;
    }
    return w->nlinks;
}

/* Puts job at the end of its queue. The caller records the change, then wakes fetchers. */
static struct queue *enqueue(struct engine *e, struct job *job, int64_t now_ns)
{
    struct queue *q = queue_get_or_create(e, job->queue);
    job->enqueued_at_ns = now_ns;
    job->state = JOB_ENQUEUED;
    queue_append(q, job);
    return q;
}

/*
 * Hands the queue's oldest jobs to the fetchers blocked on it, oldest
 * fetcher first, while its throttle lets them through.
 */
static void wake(struct engine *e, struct queue *q, int64_t now_ns)
{
    struct wait_list *list;
    while (!q->is_paused && q->head && (list = strmap_get(&e->waiting, q->name)) &&
           !is_throttled(e, q->name, now_ns)) {
        struct job *job = q->head;
        struct waiter *w = list->head->w;
        queue_unlink(q, job);
        if (is_expired(job, now_ns)) {
            expire_job(e, job, now_ns);
            continue;
        }
        engine_unwait(e, w);
        reserve(e, job, w->wid, now_ns);
        w->deliver(w, job);
    }
}

/* A job of t's queue left the working set: fetchers blocked on the queue may get one now. */
static void throttle_room(struct engine *e, struct throttle *t, int64_t now_ns)
{
    struct queue *q = t ? strmap_get(&e->queues, t->queue) : NULL;
    if (q)
        wake(e, q, now_ns);
}

/* Enqueues a job already indexed and recorded elsewhere, records the move, wakes a fetcher. */
static void enqueue_recorded(struct engine *e, struct job *job, int64_t now_ns)
{
    struct queue *q = enqueue(e, job, now_ns);
    emit_place(e, job);
    wake(e, q, now_ns);
}

/* ---- lifecycle ---- */

/* Takes job out of wherever it is, leaving it indexed but placed nowhere. */
static void unplace(struct engine *e, struct job *job)
{
    switch (job->state) {
    case JOB_ENQUEUED: queue_unlink(engine_queue(e, job->queue), job); break;
    case JOB_SCHEDULED: tset_remove(&e->scheduled, &job->tnode); break;
    case JOB_RETRY: tset_remove(&e->retries, &job->tnode); break;
    case JOB_DEAD: tset_remove(&e->dead, &job->tnode); break;
    case JOB_WORKING:
        tset_remove(&e->working, &job->tnode);
        throttle_released(e, job->queue);
        break;
    case JOB_NEW: break;
    }
    job->state = JOB_NEW;
}

/* Puts job in the dead set without recording it (the caller records). */
static void kill_job_quiet(struct engine *e, struct job *job, int64_t now_ns)
{
    unique_release(e, job); /* a dead job no longer blocks its twins */
    job->state = JOB_DEAD;
    tset_insert(&e->dead, &job->tnode, now_ns + e->cfg.dead_ttl_ns);
}

/* The cap drops the jobs closest to expiry: the oldest deaths. */
static void trim_dead(struct engine *e, int64_t now_ns)
{
    while (e->cfg.dead_max && e->dead.count > e->cfg.dead_max) {
        struct job *old = job_of(tset_min(&e->dead));
        tset_remove(&e->dead, &old->tnode);
        old->state = JOB_NEW;
        e->dead_dropped++;
        emit_del(e, old->jid, RECDEL_DEAD_DROPPED, now_ns);
        finished_note(e, old->jid, TRACK_DEAD, job_extra(old)->track, now_ns);
        forget(e, old);
    }
}

static void kill_job(struct engine *e, struct job *job, int64_t now_ns)
{
    kill_job_quiet(e, job, now_ns);
    emit_place(e, job);
    trim_dead(e, now_ns);
}

int engine_push(struct engine *e, struct job *job, int64_t now_ns)
{
    struct job *old = strmap_get(&e->jobs, job->jid);
    if (old) {
        /* A client re-sending a push whose reply it lost gets OK, not a twin. */
        if (old->body_len == job->body_len && memcmp(old->body, job->body, job->body_len) == 0 &&
            strcmp(old->queue, job->queue) == 0)
            return 1;
        return ENGINE_EEXIST;
    }
    size_t footprint = engine_job_footprint(job);
    if ((e->cfg.max_jobs && e->jobs.count >= e->cfg.max_jobs) ||
        (e->cfg.max_memory && e->job_bytes + footprint > e->cfg.max_memory)) {
        e->pushes_refused_full++;
        return ENGINE_EFULL;
    }
    struct batch *batch;
    int brc = batch_admit(e, job, &batch);
    if (brc != 0)
        return brc;
    const struct job_extra *x = job_extra(job);
    if (x->unique_key && x->unique_for_s > 0) {
        if (unique_holder(e, job, now_ns))
            return ENGINE_ENOTUNIQUE;
        unique_acquire(e, job, now_ns + (int64_t)x->unique_for_s * NS_PER_S);
    }
    strmap_put(&e->jobs, job->jid, job);
    if (batch)
        batch_join(e, job, batch);
    e->job_bytes += footprint;
    if (job->at_ns > now_ns) {
        job->state = JOB_SCHEDULED;
        tset_insert(&e->scheduled, &job->tnode, job->at_ns);
        queue_get_or_create(e, job->queue); /* the queue is known from its first push */
        emit_add(e, job);
    } else {
        struct queue *q = enqueue(e, job, now_ns);
        emit_add(e, job);
        wake(e, q, now_ns);
    }
    return 0;
}

struct job *engine_fetch(struct engine *e, const char *const *queues, int n, const char *wid,
                         int64_t now_ns)
{
    for (int i = 0; i < n; i++) {
        struct queue *q = strmap_get(&e->queues, queues[i]);
        if (!q || q->is_paused || is_throttled(e, q->name, now_ns))
            continue; /* a throttled queue is skipped: the next one asked for is tried */
        while (q->head) {
            struct job *job = q->head;
            queue_unlink(q, job);
            if (is_expired(job, now_ns)) { /* discarded instead of fetched */
                expire_job(e, job, now_ns);
                continue;
            }
            reserve(e, job, wid, now_ns);
            return job;
        }
    }
    return NULL;
}

static struct job *working_job(struct engine *e, const char *jid)
{
    struct job *job = strmap_get(&e->jobs, jid);
    return job && job->state == JOB_WORKING ? job : NULL;
}

int engine_ack(struct engine *e, const char *jid, int64_t now_ns)
{
    struct job *job = working_job(e, jid);
    if (!job)
        return ENGINE_ENOTFOUND;
    struct throttle *t = throttle_of(e, job->queue);
    unplace(e, job);
    e->processed++;
    today(e, now_ns)->processed++;
    emit_del(e, job->jid, RECDEL_ACKED, now_ns);
    finished_note(e, job->jid, TRACK_SUCCESS, job_extra(job)->track, now_ns);
    batch_job_acked(e, job, now_ns);
    forget(e, job);
    throttle_room(e, t, now_ns);
    return 0;
}

static void count_failure(struct engine *e, int64_t now_ns)
{
    struct day_stats *d = today(e, now_ns);
    e->processed++;
    e->failures++;
    d->processed++;
    d->failed++;
}

/* Failure bookkeeping shared by FAIL and reservation expiry; job is unplaced. */
static void fail_job(struct engine *e, struct job *job, const char *errtype, const char *message,
                     const char *backtrace_json, int is_expiry, int64_t now_ns)
{
    count_failure(e, now_ns);
    int is_first = job->failure == NULL;
    switch (job_fail(job, errtype, message, backtrace_json, now_ns, next_rand(e) % 30)) {
    case JOB_FAIL_RETRY:
        job->state = JOB_RETRY;
        tset_insert(&e->retries, &job->tnode, job->failure->next_at_ns);
        break;
    case JOB_FAIL_DEAD: kill_job_quiet(e, job, now_ns); break;
    case JOB_FAIL_DISCARD: break;
    }
    if (!e->is_replaying && e->hooks.record) {
        struct placement pl = placement_of(job); /* JOB_NEW: discarded */
        rec_encode_fail(&e->recbuf, job, now_ns, is_expiry, &pl);
        emit(e);
    }
    if (is_first)
        batch_job_failed(e, job, now_ns);
    if (job->state == JOB_DEAD) {
        trim_dead(e, now_ns);
    } else if (job->state == JOB_NEW) {
        finished_note(e, job->jid, TRACK_FAILED, job_extra(job)->track, now_ns);
        forget(e, job);
    }
}

int engine_fail(struct engine *e, const char *jid, const char *errtype, const char *message,
                const char *backtrace_json, int64_t now_ns)
{
    struct job *job = working_job(e, jid);
    if (!job)
        return ENGINE_ENOTFOUND;
    struct throttle *t = throttle_of(e, job->queue);
    unplace(e, job);
    fail_job(e, job, errtype, message, backtrace_json, 0, now_ns);
    throttle_room(e, t, now_ns);
    return 0;
}

/* ---- TRACK ---- */

int engine_track_set(struct engine *e, const char *jid, int percent, const char *desc,
                     int64_t reserve_until_ns, int64_t now_ns)
{
    struct job *job = strmap_get(&e->jobs, jid);
    if (!job)
        return ENGINE_ENOTFOUND;
    struct job_track *t = job_extra(job)->track;
    if (!t) {
        t = job_extra_need(job)->track = xcalloc(1, sizeof *t);
        t->percent = -1;
    }
    if (percent >= 0)
        t->percent = percent > 100 ? 100 : percent;
    if (desc) {
        free(t->desc);
        t->desc = xstrdup(desc);
    }
    t->updated_at_ns = now_ns;
    if (!e->is_replaying && e->hooks.record) {
        rec_encode_track(&e->recbuf, job->jid, t);
        emit(e);
    }
    /* Extends only, and by at most the longest reservation a push may ask for. */
    int64_t cap = now_ns + (int64_t)JOB_MAX_RESERVE_S * NS_PER_S;
    if (reserve_until_ns > cap)
        reserve_until_ns = cap;
    if (job->state == JOB_WORKING && reserve_until_ns > job->tnode.score_ns) {
        tset_remove(&e->working, &job->tnode);
        tset_insert(&e->working, &job->tnode, reserve_until_ns);
        emit_place(e, job);
    }
    return 0;
}

const char *engine_track_state_name(enum track_state s)
{
    switch (s) {
    case TRACK_ENQUEUED: return "enqueued";
    case TRACK_WORKING: return "working";
    case TRACK_SUCCESS: return "success";
    case TRACK_FAILED: return "failed";
    case TRACK_DEAD: return "dead";
    case TRACK_UNKNOWN: break;
    }
    return "unknown";
}

void engine_track_get(struct engine *e, const char *jid, struct track_info *out)
{
    memset(out, 0, sizeof *out);
    out->percent = -1;
    struct job *job = strmap_get(&e->jobs, jid);
    if (job) {
        switch (job->state) {
        case JOB_SCHEDULED:
        case JOB_ENQUEUED: out->state = TRACK_ENQUEUED; break;
        case JOB_WORKING: out->state = TRACK_WORKING; break;
        case JOB_RETRY: out->state = TRACK_FAILED; break;
        case JOB_DEAD: out->state = TRACK_DEAD; break;
        case JOB_NEW: out->state = TRACK_UNKNOWN; break;
        }
        const struct job_track *t = job_extra(job)->track;
        if (t) {
            out->percent = t->percent;
            out->desc = t->desc;
            out->updated_at_ns = t->updated_at_ns;
        }
        return;
    }
    struct finished_job *f = strmap_get(&e->finished, jid);
    if (f) {
        out->state = f->state;
        out->percent = f->percent;
        out->desc = f->desc;
        out->updated_at_ns = f->updated_at_ns;
    }
}

/* ---- workers ---- */

struct worker *engine_worker(struct engine *e, const char *wid)
{
    return strmap_get(&e->workers, wid);
}

void engine_worker_attach(struct engine *e, const struct worker_hello *h, int64_t now_ns)
{
    struct worker *w = strmap_get(&e->workers, h->wid);
    if (!w) {
        w = xcalloc(1, sizeof *w);
        w->wid = xstrdup(h->wid);
        w->hostname = xstrdup(h->hostname ? h->hostname : "");
        w->labels = xstrdup(h->labels ? h->labels : "[]");
        w->v = xstrdup(h->v ? h->v : "2");
        w->pid = h->pid;
        w->rss_kb = h->rss_kb;
        w->started_at_ns = now_ns;
        w->last_beat_ns = now_ns;
        strmap_put(&e->workers, w->wid, w);
    }
    w->nconns++;
}

void engine_worker_detach(struct engine *e, const char *wid)
{
    struct worker *w = strmap_get(&e->workers, wid);
    if (w && --w->nconns <= 0) {
        strmap_del(&e->workers, wid);
        worker_free(w);
    }
}

int engine_worker_signal(struct engine *e, const char *wid, enum worker_state state)
{
    struct worker *w = strmap_get(&e->workers, wid);
    if (!w)
        return ENGINE_EUNKNOWN_WORKER;
    if (state > w->state)
        w->state = state; /* one way: running -> quiet -> terminate */
    return 0;
}

int engine_beat(struct engine *e, const char *wid, const char *state, int64_t rss_kb,
                int64_t now_ns, enum worker_state *out)
{
    struct worker *w = strmap_get(&e->workers, wid);
    if (!w)
        return ENGINE_EUNKNOWN_WORKER;
    w->last_beat_ns = now_ns;
    if (rss_kb > 0)
        w->rss_kb = rss_kb;
    if (state && strcmp(state, "quiet") == 0)
        engine_worker_signal(e, wid, WORKER_QUIET);
    else if (state && strcmp(state, "terminate") == 0)
        engine_worker_signal(e, wid, WORKER_TERMINATE);
    *out = w->state;
    return 0;
}

/* ---- queue administration ---- */

typedef void (*queue_fn)(struct engine *e, struct queue *q);

static void each_queue(struct engine *e, const char *name, queue_fn fn)
{
    if (strcmp(name, "*") != 0) {
        struct queue *q = strmap_get(&e->queues, name);
        if (q)
            fn(e, q);
        return;
    }
    /* Collect first: fn may remove the queue from the map. */
    size_t n = e->queues.count, k = 0;
    struct queue **all = xcalloc(n ? n : 1, sizeof *all);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);)
        all[k++] = val;
    for (size_t i = 0; i < k; i++)
        fn(e, all[i]);
    free(all);
}

static void do_pause(struct engine *e, struct queue *q)
{
    q->is_paused = 1;
}

static void do_unpause(struct engine *e, struct queue *q)
{
    q->is_paused = 0;
}

static void do_resume(struct engine *e, struct queue *q)
{
    q->is_paused = 0;
    /* Fetchers that blocked while it was paused get its backlog now. */
    wake(e, q, e->op_now_ns);
}

static void do_remove(struct engine *e, struct queue *q)
{
    while (q->head) {
        struct job *job = q->head;
        queue_unlink(q, job);
        forget(e, job);
    }
    strmap_del(&e->queues, q->name);
    queue_free(q);
}

static void emit_queue(struct engine *e, enum record_queue_op op, const char *name)
{
    if (e->is_replaying || !e->hooks.record)
        return;
    rec_encode_queue(&e->recbuf, op, name);
    emit(e);
}

void engine_queue_pause(struct engine *e, const char *name)
{
    emit_queue(e, RECQ_PAUSE, name);
    each_queue(e, name, do_pause);
}

void engine_queue_resume(struct engine *e, const char *name, int64_t now_ns)
{
    e->op_now_ns = now_ns;
    emit_queue(e, RECQ_RESUME, name);
    each_queue(e, name, do_resume);
}

void engine_queue_remove(struct engine *e, const char *name)
{
    emit_queue(e, RECQ_REMOVE, name);
    each_queue(e, name, do_remove);
}

double engine_queue_latency(struct engine *e, const char *name, int64_t now_ns)
{
    struct queue *q = strmap_get(&e->queues, name);
    if (!q || !q->head)
        return 0.0;
    int64_t d = now_ns - q->head->enqueued_at_ns;
    return d > 0 ? (double)d / (double)NS_PER_S : 0.0;
}

/* ---- listing ---- */

static int job_matches(struct engine *e, const struct job *job, const struct mutate_filter *f)
{
    return job_filter_match(job, f, &e->scratch);
}

struct list_scan {
    struct engine *e;
    const struct mutate_filter *f;
    size_t offset, limit, total;
    void (*fn)(void *ctx, const struct job *job);
    void *ctx;
};

static void list_visit_job(struct list_scan *s, const struct job *job)
{
    if (!job_matches(s->e, job, s->f))
        return;
    if (s->total >= s->offset && s->total - s->offset < s->limit)
        s->fn(s->ctx, job);
    s->total++;
}

static int list_visit(struct tset_node *node, void *arg)
{
    list_visit_job(arg, job_of(node));
    return 0;
}

size_t engine_list(struct engine *e, enum list_target target, const char *queue,
                   const struct mutate_filter *filter, size_t offset, size_t limit,
                   void (*fn)(void *ctx, const struct job *job), void *ctx)
{
    struct list_scan s = {e, filter, offset, limit, 0, fn, ctx};
    if (target == LIST_QUEUE) {
        struct queue *q = queue ? strmap_get(&e->queues, queue) : NULL;
        for (const struct job *job = q ? q->head : NULL; job; job = job->qnext)
            list_visit_job(&s, job);
        return s.total;
    }
    struct tset *set = target == LIST_SCHEDULED ? &e->scheduled
                       : target == LIST_RETRIES ? &e->retries
                       : target == LIST_DEAD    ? &e->dead
                                                : &e->working;
    tset_walk(set, list_visit, &s);
    return s.total;
}

/* ---- mutate ---- */

struct mutate_scan {
    struct engine *e;
    const struct mutate_filter *f;
    struct job **hits;
    size_t n, cap;
};

static int mutate_match(struct tset_node *node, void *arg)
{
    struct mutate_scan *s = arg;
    struct job *job = job_of(node);
    if (job_matches(s->e, job, s->f)) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->hits = xrealloc(s->hits, s->cap * sizeof *s->hits);
        }
        s->hits[s->n++] = job;
    }
    return 0;
}

size_t engine_mutate(struct engine *e, enum mutate_cmd cmd, enum mutate_target target,
                     const struct mutate_filter *filter, int64_t now_ns)
{
    struct tset *set = target == TARGET_SCHEDULED ? &e->scheduled
                       : target == TARGET_RETRIES ? &e->retries
                                                  : &e->dead;
    struct mutate_scan scan = {.e = e, .f = cmd == MUTATE_CLEAR ? NULL : filter};
    tset_walk(set, mutate_match, &scan);
    for (size_t i = 0; i < scan.n; i++) {
        struct job *job = scan.hits[i];
        unplace(e, job);
        switch (cmd) {
        case MUTATE_CLEAR:
        case MUTATE_DISCARD:
            emit_del(e, job->jid, RECDEL_DROPPED, now_ns);
            forget(e, job);
            break;
        case MUTATE_KILL: kill_job(e, job, now_ns); break;
        case MUTATE_REQUEUE: enqueue_recorded(e, job, now_ns); break;
        }
    }
    free(scan.hits);
    return scan.n;
}

void engine_flush(struct engine *e)
{
    if (!e->is_replaying && e->hooks.record) {
        rec_encode_flush(&e->recbuf);
        emit(e);
    }
    drop_all_jobs(e);
    batch_set_release(&e->batches);
    drop_all_finished(e);
    e->processed = e->failures = 0;
    e->dead_dropped = e->expired_reservations = e->expired_jobs = 0;
    memset(e->history, 0, sizeof e->history);
}

/* ---- time ---- */

int64_t engine_tick(struct engine *e, int64_t now_ns)
{
    struct tset_node *n;
    while ((n = tset_min(&e->scheduled)) && n->score_ns <= now_ns) {
        struct job *job = job_of(n);
        unplace(e, job);
        if (is_expired(job, now_ns))
            expire_job(e, job, now_ns);
        else
            enqueue_recorded(e, job, now_ns);
    }
    while ((n = tset_min(&e->retries)) && n->score_ns <= now_ns) {
        struct job *job = job_of(n);
        unplace(e, job);
        if (is_expired(job, now_ns))
            expire_job(e, job, now_ns);
        else
            enqueue_recorded(e, job, now_ns);
    }
    /* Expired jobs at the head of a queue go now: cheap, one look per queue. */
    const char *qkey;
    void *qval;
    for (size_t i = 0; strmap_next(&e->queues, &i, &qkey, &qval);) {
        struct queue *q = qval;
        while (q->head && is_expired(q->head, now_ns)) {
            struct job *job = q->head;
            queue_unlink(q, job);
            expire_job(e, job, now_ns);
        }
    }
    while ((n = tset_min(&e->working)) && n->score_ns <= now_ns) {
        struct job *job = job_of(n);
        struct throttle *t = throttle_of(e, job->queue);
        unplace(e, job);
        e->expired_reservations++;
        fail_job(e, job, "ReservationExpired", "Faktory job reservation expired", NULL, 1, now_ns);
        throttle_room(e, t, now_ns);
    }
    /* Rate windows that opened since: serve the fetchers blocked on those queues. */
    for (size_t i = 0; strmap_next(&e->throttles, &i, &qkey, &qval);)
        throttle_room(e, qval, now_ns);
    while ((n = tset_min(&e->dead)) && n->score_ns <= now_ns) {
        struct job *job = job_of(n);
        unplace(e, job);
        e->dead_dropped++;
        emit_del(e, job->jid, RECDEL_DEAD_DROPPED, now_ns);
        finished_note(e, job->jid, TRACK_DEAD, job_extra(job)->track, now_ns);
        forget(e, job);
    }

    /* Reap processes silent too long: collect, then tell the server, then drop. */
    char **reaped = NULL;
    size_t nreaped = 0;
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->workers, &i, &key, &val);) {
        struct worker *w = val;
        if (now_ns - w->last_beat_ns >= e->cfg.worker_ttl_ns) {
            reaped = xrealloc(reaped, (nreaped + 1) * sizeof *reaped);
            reaped[nreaped++] = xstrdup(w->wid);
        }
    }
    for (size_t i = 0; i < nreaped; i++) {
        e->workers_reaped++;
        if (e->hooks.reaped)
            e->hooks.reaped(e->hooks.ctx, reaped[i]);
        struct worker *w = strmap_del(&e->workers, reaped[i]);
        if (w)
            worker_free(w);
        free(reaped[i]);
    }
    free(reaped);
    batch_tick(e, now_ns);

    int64_t next = now_ns + NS_PER_S;
    struct tset *sets[] = {&e->scheduled, &e->retries, &e->working, &e->dead};
    for (size_t i = 0; i < 4; i++)
        if ((n = tset_min(sets[i])) && n->score_ns < next)
            next = n->score_ns;
    int64_t opens = engine_throttle_next_ns(e, now_ns);
    return opens < next ? opens : next;
}

/* ---- replay and snapshots ---- */

/* Puts an indexed, unplaced job where pl says, as a replayed record describes it. */
static void place(struct engine *e, struct job *job, const struct placement *pl)
{
    job->enqueued_at_ns = pl->enqueued_at_ns;
    job->state = pl->state;
    switch (pl->state) {
    case JOB_ENQUEUED: queue_append(queue_get_or_create(e, job->queue), job); break;
    case JOB_SCHEDULED:
        queue_get_or_create(e, job->queue);
        tset_insert(&e->scheduled, &job->tnode, pl->score_ns);
        break;
    case JOB_RETRY: tset_insert(&e->retries, &job->tnode, pl->score_ns); break;
    case JOB_DEAD:
        unique_release(e, job);
        tset_insert(&e->dead, &job->tnode, pl->score_ns);
        break;
    case JOB_WORKING:
        if (job_extra(job)->is_unique_until_start)
            unique_release(e, job);
        free(job->wid);
        job->wid = xstrdup(pl->wid ? pl->wid : "");
        job->reserved_at_ns = pl->reserved_at_ns;
        tset_insert(&e->working, &job->tnode, pl->score_ns);
        if (throttle_of(e, job->queue))
            throttle_of(e, job->queue)->in_flight++;
        break;
    case JOB_NEW: break;
    }
}

static int apply_add(struct engine *e, struct rec_reader *r)
{
    char *jid = rec_get_str(r, NULL), *jobtype = rec_get_str(r, NULL), *queue = rec_get_str(r, NULL);
    char *created_at = rec_get_str(r, NULL);
    size_t body_len = 0;
    char *body = rec_get_str(r, &body_len);
    int is_missing = !jid || !jobtype || !queue || !created_at || !body;
    struct job *job = job_new(jid ? jid : "", jobtype ? jobtype : "", queue ? queue : "",
                              created_at ? created_at : "", body ? body : "", body_len);
    free(jid);
    free(jobtype);
    free(queue);
    free(created_at);
    free(body);
    job->retry = (int)rec_get_u32(r);
    job->reserve_for_s = (int)rec_get_u32(r);
    job->at_ns = rec_get_i64(r);
    if (rec_get_u8(r))
        job->failure = rec_get_failure(r);
    struct placement pl;
    rec_get_placement(r, &pl);
    /* Older ADD records end here; newer ones carry expiry and the unique lock. */
    int64_t lock_until_ns = 0;
    if (r->p < r->end) {
        int64_t expires_at_ns = rec_get_i64(r);
        int unique_for_s = (int)rec_get_u32(r);
        int is_until_start = rec_get_u8(r) != 0;
        lock_until_ns = rec_get_i64(r);
        if (expires_at_ns || unique_for_s || is_until_start) { /* most jobs stay without extras */
            struct job_extra *x = job_extra_need(job);
            x->expires_at_ns = expires_at_ns;
            x->unique_for_s = unique_for_s;
            x->is_unique_until_start = is_until_start;
        }
    }
    if (r->is_bad || is_missing || pl.state == JOB_NEW) {
        free((char *)pl.wid);
        job_free(job);
        return -1;
    }
    struct job *old = strmap_get(&e->jobs, job->jid);
    struct batch *kept = NULL;
    if (old) { /* the newer record wins; it stays in the batch the older one joined */
        kept = job_extra(old)->batch;
        if (kept)
            old->extra->batch = NULL;
        unplace(e, old);
        forget(e, old);
    }
    strmap_put(&e->jobs, job->jid, job);
    if (kept) {
        job_extra_need(job)->batch = kept;
    } else {
        struct batch *b = NULL;
        char *bid = batch_bid_of(job);
        if (bid && (b = batch_find(e, bid)))
            batch_join(e, job, b);
        free(bid);
    }
    if (job_extra(job)->unique_for_s > 0 && job_unique_key_derive(job) == 0 && lock_until_ns)
        unique_acquire(e, job, lock_until_ns);
    /* After the key is derived, so a replayed job counts what its push counted. */
    e->job_bytes += engine_job_footprint(job);
    place(e, job, &pl);
    free((char *)pl.wid);
    return 0;
}

static void apply_counters(struct engine *e, struct rec_reader *r)
{
    e->processed = (uint64_t)rec_get_i64(r);
    e->failures = (uint64_t)rec_get_i64(r);
    e->dead_dropped = (uint64_t)rec_get_i64(r);
    e->expired_reservations = (uint64_t)rec_get_i64(r);
    uint32_t n = rec_get_u32(r);
    memset(e->history, 0, sizeof e->history);
    for (uint32_t i = 0; i < n && !r->is_bad; i++) {
        struct day_stats d;
        d.day = rec_get_i64(r);
        d.processed = (uint64_t)rec_get_i64(r);
        d.failed = (uint64_t)rec_get_i64(r);
        e->history[(uint64_t)d.day % ENGINE_HISTORY_DAYS] = d;
    }
    /* Added after version 1's layout. */
    e->expired_jobs = r->p < r->end ? (uint64_t)rec_get_i64(r) : 0;
}

static int apply_track(struct engine *e, struct rec_reader *r)
{
    char *jid = rec_get_str(r, NULL);
    struct job_track *t = xcalloc(1, sizeof *t);
    t->percent = (int)rec_get_u32(r);
    t->desc = rec_get_str(r, NULL);
    t->updated_at_ns = rec_get_i64(r);
    struct job *job = jid ? strmap_get(&e->jobs, jid) : NULL;
    int rc = 0;
    if (r->is_bad || !jid) {
        rc = -1;
    } else if (!job) {
        e->replay_skipped++;
    } else {
        struct job_extra *x = job_extra_need(job);
        job_track_free(x->track);
        x->track = t;
        t = NULL;
    }
    job_track_free(t);
    free(jid);
    return rc;
}

int engine_apply(struct engine *e, const void *rec, size_t len, char *err, size_t errlen)
{
    struct rec_reader r;
    rec_reader_init(&r, rec, len);
    uint8_t type = rec_get_u8(&r);
    int rc = 0;
    e->is_replaying = 1;
    switch (type) {
    case REC_ADD: rc = apply_add(e, &r); break;
    case REC_PLACE: {
        char *jid = rec_get_str(&r, NULL);
        struct placement pl;
        rec_get_placement(&r, &pl);
        struct job *job = jid ? strmap_get(&e->jobs, jid) : NULL;
        if (r.is_bad || pl.state == JOB_NEW) {
            rc = -1;
        } else if (!job) {
            e->replay_skipped++;
        } else {
            unplace(e, job);
            place(e, job, &pl);
        }
        free(jid);
        free((char *)pl.wid);
        break;
    }
    case REC_FAIL: {
        char *jid = rec_get_str(&r, NULL);
        int64_t now = rec_get_i64(&r);
        struct job_failure *f = rec_get_failure(&r);
        struct placement pl;
        rec_get_placement(&r, &pl);
        /* Older FAIL records end here; newer ones add whether it was an expiry. */
        int is_expiry = r.p < r.end ? rec_get_u8(&r) : 0;
        struct job *job = jid ? strmap_get(&e->jobs, jid) : NULL;
        if (r.is_bad) {
            rc = -1;
        } else {
            count_failure(e, now);
            if (is_expiry)
                e->expired_reservations++;
            if (!job) {
                e->replay_skipped++;
            } else {
                unplace(e, job);
                int is_first = job->failure == NULL;
                job_failure_free(job->failure);
                job->failure = f;
                f = NULL;
                if (pl.state != JOB_NEW)
                    place(e, job, &pl);
                if (is_first)
                    batch_job_failed(e, job, now);
                if (pl.state == JOB_NEW) {
                    finished_note(e, job->jid, TRACK_FAILED, job_extra(job)->track, now);
                    forget(e, job);
                }
            }
        }
        job_failure_free(f);
        free(jid);
        free((char *)pl.wid);
        break;
    }
    case REC_DEL: {
        char *jid = rec_get_str(&r, NULL);
        uint8_t why = rec_get_u8(&r);
        int64_t now = rec_get_i64(&r);
        struct job *job = jid ? strmap_get(&e->jobs, jid) : NULL;
        if (r.is_bad) {
            rc = -1;
        } else {
            if (why == RECDEL_ACKED) {
                e->processed++;
                today(e, now)->processed++;
                finished_note(e, jid, TRACK_SUCCESS, job ? job_extra(job)->track : NULL, now);
            } else if (why == RECDEL_DEAD_DROPPED) {
                e->dead_dropped++;
                finished_note(e, jid, TRACK_DEAD, job ? job_extra(job)->track : NULL, now);
            } else if (why == RECDEL_EXPIRED) {
                e->expired_jobs++;
            }
            if (job) {
                unplace(e, job);
                if (why == RECDEL_ACKED)
                    batch_job_acked(e, job, now);
                forget(e, job);
            } else {
                e->replay_skipped++;
            }
        }
        free(jid);
        break;
    }
    case REC_QUEUE: {
        uint8_t op = rec_get_u8(&r);
        char *name = rec_get_str(&r, NULL);
        if (r.is_bad || !name)
            rc = -1;
        else if (op == RECQ_PAUSE)
            each_queue(e, name, do_pause);
        else if (op == RECQ_RESUME)
            each_queue(e, name, do_unpause);
        else if (op == RECQ_REMOVE)
            each_queue(e, name, do_remove);
        else if (op == RECQ_CREATE)
            queue_get_or_create(e, name);
        else
            rc = -1;
        free(name);
        break;
    }
    case REC_FLUSH:
        drop_all_jobs(e);
        batch_set_release(&e->batches);
        drop_all_finished(e);
        e->processed = e->failures = 0;
        e->dead_dropped = e->expired_reservations = e->expired_jobs = 0;
        memset(e->history, 0, sizeof e->history);
        break;
    case REC_COUNTERS: apply_counters(e, &r); rc = r.is_bad ? -1 : 0; break;
    case REC_TRACK: rc = apply_track(e, &r); break;
    case REC_BATCH_NEW:
    case REC_BATCH_STATE:
    case REC_BATCH_DEL: rc = batch_apply(e, type, &r); break;
    case REC_CRON: {
        char *name = rec_get_str(&r, NULL);
        int64_t slot = rec_get_i64(&r);
        if (r.is_bad || !name)
            rc = -1;
        else
            engine_cron_mark(e, name, slot);
        free(name);
        break;
    }
    default: rc = -1;
    }
    e->is_replaying = 0;
    if (rc != 0)
        snprintf(err, errlen, "record of type %u cannot be decoded", (unsigned)type);
    return rc;
}

struct dump_ctx {
    struct engine *e;
    void (*out)(void *ctx, const void *rec, size_t len);
    void *ctx;
};

static void dump_job(struct dump_ctx *d, const struct job *job)
{
    struct placement pl = placement_of(job);
    sbuf_reset(&d->e->recbuf);
    rec_encode_add(&d->e->recbuf, job, &pl);
    d->out(d->ctx, d->e->recbuf.buf, d->e->recbuf.len);
    if (job_extra(job)->track) {
        sbuf_reset(&d->e->recbuf);
        rec_encode_track(&d->e->recbuf, job->jid, job->extra->track);
        d->out(d->ctx, d->e->recbuf.buf, d->e->recbuf.len);
    }
}

static int dump_set_member(struct tset_node *node, void *arg)
{
    dump_job(arg, job_of(node));
    return 0;
}

void engine_dump(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len), void *ctx)
{
    struct dump_ctx d = {e, out, ctx};
    struct sbuf *b = &e->recbuf;
    sbuf_reset(b);
    rec_put_u8(b, REC_COUNTERS);
    rec_put_i64(b, (int64_t)e->processed);
    rec_put_i64(b, (int64_t)e->failures);
    rec_put_i64(b, (int64_t)e->dead_dropped);
    rec_put_i64(b, (int64_t)e->expired_reservations);
    uint32_t n = 0;
    for (size_t i = 0; i < ENGINE_HISTORY_DAYS; i++)
        n += e->history[i].processed || e->history[i].failed;
    rec_put_u32(b, n);
    for (size_t i = 0; i < ENGINE_HISTORY_DAYS; i++) {
        const struct day_stats *h = &e->history[i];
        if (!h->processed && !h->failed)
            continue;
        rec_put_i64(b, h->day);
        rec_put_i64(b, (int64_t)h->processed);
        rec_put_i64(b, (int64_t)h->failed);
    }
    rec_put_i64(b, (int64_t)e->expired_jobs); /* optional trailing field */
    out(ctx, b->buf, b->len);
    /* Batches are defined before their jobs join them, and get their counts after. */
    batch_dump_defs(e, out, ctx);

    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);) {
        struct queue *q = val;
        sbuf_reset(b);
        rec_encode_queue(b, RECQ_CREATE, q->name);
        out(ctx, b->buf, b->len);
        if (q->is_paused) {
            sbuf_reset(b);
            rec_encode_queue(b, RECQ_PAUSE, q->name);
            out(ctx, b->buf, b->len);
        }
        for (struct job *job = q->head; job; job = job->qnext)
            dump_job(&d, job);
    }
    tset_walk(&e->scheduled, dump_set_member, &d);
    tset_walk(&e->retries, dump_set_member, &d);
    tset_walk(&e->dead, dump_set_member, &d);
    tset_walk(&e->working, dump_set_member, &d);
    batch_dump_states(e, out, ctx);
    for (size_t i = 0; strmap_next(&e->cron_last, &i, &key, &val);) {
        sbuf_reset(b);
        rec_encode_cron(b, key, *(int64_t *)val);
        out(ctx, b->buf, b->len);
    }
    sbuf_reset(b);
}

/* ---- cron bookkeeping ---- */

int64_t engine_cron_last(const struct engine *e, const char *name)
{
    const int64_t *slot = strmap_get(&e->cron_last, name);
    return slot ? *slot : 0;
}

void engine_cron_mark(struct engine *e, const char *name, int64_t slot_ns)
{
    int64_t *slot = strmap_get(&e->cron_last, name);
    if (!slot) {
        /* The map borrows its keys: keep the name right after the slot. */
        size_t n = strlen(name);
        slot = xmalloc(sizeof *slot + n + 1);
        memcpy((char *)(slot + 1), name, n + 1);
        strmap_put(&e->cron_last, (const char *)(slot + 1), slot);
    }
    *slot = slot_ns;
    if (e->is_replaying || !e->hooks.record)
        return;
    rec_encode_cron(&e->recbuf, name, slot_ns);
    emit(e);
}

/* ---- throttles ---- */

struct throttle *engine_throttle(struct engine *e, const char *queue)
{
    return strmap_get(&e->throttles, queue);
}

struct seed_scan {
    struct engine *e;
    int64_t now_ns;
    int64_t *times; /* reservation times of working jobs whose queue newly got a rate */
    const char **queues;
    size_t n, cap;
};

static int count_in_flight(struct tset_node *node, void *arg)
{
    struct seed_scan *s = arg;
    struct job *job = job_of(node);
    struct throttle *t = strmap_get(&s->e->throttles, job->queue);
    if (!t)
        return 0;
    t->in_flight++;
    if (t->count == 0 && t->limits.rate_limit && /* a window to rebuild */
        job->reserved_at_ns > s->now_ns - t->limits.rate_period_ns) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->times = xrealloc(s->times, s->cap * sizeof *s->times);
            s->queues = xrealloc(s->queues, s->cap * sizeof *s->queues);
        }
        s->times[s->n] = job->reserved_at_ns;
        s->queues[s->n++] = t->queue;
    }
    return 0;
}

static int cmp_i64_at(const void *a, const void *b, void *ctx)
{
    const int64_t *times = ctx;
    int64_t x = times[*(const size_t *)a], y = times[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

void engine_throttle_set(struct engine *e, const struct throttle_config *cfg, int64_t now_ns)
{
    const char *key;
    void *val;
    /* Drop the queues no longer throttled (collect first: the map must not change mid-walk). */
    size_t ndrop = 0;
    struct throttle **drop = xcalloc(e->throttles.count ? e->throttles.count : 1, sizeof *drop);
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val);)
        if (!throttle_config_find(cfg, key))
            drop[ndrop++] = val;
    for (size_t i = 0; i < ndrop; i++) {
        strmap_del(&e->throttles, drop[i]->queue);
        throttle_free(drop[i]);
    }
    free(drop);
    for (size_t i = 0; cfg && i < cfg->n; i++) {
        const struct throttle_spec *sp = &cfg->specs[i];
        struct throttle *t = strmap_get(&e->throttles, sp->queue);
        if (t) {
            throttle_set_limits(t, &sp->limits);
        } else {
            t = throttle_new(sp->queue, &sp->limits);
            strmap_put(&e->throttles, t->queue, t);
        }
        t->in_flight = 0;
    }
    /* One walk of the working set: in-flight counts, and the windows of new rates. */
    struct seed_scan scan = {.e = e, .now_ns = now_ns};
    if (e->throttles.count)
        tset_walk(&e->working, count_in_flight, &scan);
    if (scan.n) {
        size_t *order = xmalloc(scan.n * sizeof *order);
        for (size_t i = 0; i < scan.n; i++)
            order[i] = i;
        qsort_r(order, scan.n, sizeof *order, cmp_i64_at, scan.times);
        for (size_t i = 0; i < scan.n; i++)
            throttle_note_past(strmap_get(&e->throttles, scan.queues[order[i]]),
                               scan.times[order[i]], now_ns);
        free(order);
    }
    free(scan.times);
    free(scan.queues);
    /* Higher limits, or a queue no longer throttled: serve blocked fetchers now. */
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);)
        wake(e, val, now_ns);
}

int64_t engine_throttle_next_ns(struct engine *e, int64_t now_ns)
{
    int64_t next = INT64_MAX;
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val);) {
        struct throttle *t = val;
        struct queue *q = strmap_get(&e->queues, key);
        if (!t->limits.rate_limit || !q || !q->head || q->is_paused ||
            !strmap_get(&e->waiting, key))
            continue;
        int64_t at = throttle_rate_opens_at(t, now_ns);
        if (at < next)
            next = at;
    }
    return next;
}
