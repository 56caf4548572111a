#include "engine/batch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "common/xalloc.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "engine/record.h"

static const char *const cb_name[2] = {"complete", "success"};

void batch_set_init(struct batch_set *s)
{
    memset(s, 0, sizeof *s);
    strmap_init(&s->by_bid);
    strmap_init(&s->callbacks);
}

static void batch_free(struct batch *b)
{
    free(b->bid);
    free(b->parent_bid);
    free(b->description);
    for (int i = 0; i < 2; i++) {
        free(b->cb_json[i]);
        free(b->cb_jid[i]);
    }
    free(b);
}

void batch_set_release(struct batch_set *s)
{
    struct batch *b = s->head;
    while (b) {
        struct batch *next = b->next;
        batch_free(b);
        b = next;
    }
    strmap_release(&s->by_bid);
    strmap_release(&s->callbacks);
    free(s->dirty);
    batch_set_init(s);
}

struct batch *batch_find(struct engine *e, const char *bid)
{
    return bid ? strmap_get(&e->batches.by_bid, bid) : NULL;
}

/* ---- records ---- */

static void emit_rec(struct engine *e)
{
    if (e->hooks.record && !e->is_replaying)
        e->hooks.record(e->hooks.ctx, e->recbuf.buf, e->recbuf.len);
    sbuf_reset(&e->recbuf);
}

static void encode_new(struct sbuf *b, const struct batch *bt)
{
    rec_put_u8(b, REC_BATCH_NEW);
    rec_put_cstr(b, bt->bid);
    rec_put_cstr(b, bt->parent_bid);
    rec_put_cstr(b, bt->description);
    rec_put_i64(b, bt->created_at_ns);
    rec_put_cstr(b, bt->cb_json[BATCH_SUCCESS]);
    rec_put_cstr(b, bt->cb_json[BATCH_COMPLETE]);
}

static void encode_state(struct sbuf *b, const struct batch *bt)
{
    rec_put_u8(b, REC_BATCH_STATE);
    rec_put_cstr(b, bt->bid);
    rec_put_u8(b, (uint8_t)bt->is_committed);
    rec_put_i64(b, bt->total);
    rec_put_i64(b, bt->pending);
    rec_put_i64(b, bt->failed);
    rec_put_u8(b, bt->st[BATCH_COMPLETE]);
    rec_put_u8(b, bt->st[BATCH_SUCCESS]);
    rec_put_i64(b, bt->updated_at_ns);
}

static void emit_state(struct engine *e, const struct batch *b)
{
    if (e->is_replaying || !e->hooks.record)
        return;
    encode_state(&e->recbuf, b);
    emit_rec(e);
}

/* ---- the set ---- */

static void mark_dirty(struct engine *e, struct batch *b)
{
    struct batch_set *s = &e->batches;
    if (b->is_dirty)
        return;
    if (s->ndirty == s->capdirty) {
        s->capdirty = s->capdirty ? s->capdirty * 2 : 16;
        s->dirty = xrealloc(s->dirty, s->capdirty * sizeof *s->dirty);
    }
    s->dirty[s->ndirty++] = b;
    b->is_dirty = 1;
}

/* Links a new batch (and its parent) into the set; the set owns it from here. */
static void set_add(struct engine *e, struct batch *b)
{
    struct batch_set *s = &e->batches;
    b->prev = s->tail;
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    s->count++;
    strmap_put(&s->by_bid, b->bid, b);
    b->parent = batch_find(e, b->parent_bid);
    if (b->parent) {
        b->parent->nchildren_held++;
        b->parent->children_incomplete++;
        b->parent->children_unsucceeded++;
    }
}

/* Drops a batch nothing points at any more. */
static void set_remove(struct engine *e, struct batch *b)
{
    struct batch_set *s = &e->batches;
    if (b->prev)
        b->prev->next = b->next;
    else
        s->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        s->tail = b->prev;
    s->count--;
    strmap_del(&s->by_bid, b->bid);
    for (int i = 0; i < 2; i++)
        if (b->cb_jid[i] && strmap_get(&s->callbacks, b->cb_jid[i]) == b)
            strmap_del(&s->callbacks, b->cb_jid[i]);
    if (b->is_dirty) {
        for (size_t i = 0; i < s->ndirty; i++)
            if (s->dirty[i] == b)
                s->dirty[i] = s->dirty[--s->ndirty];
    }
    if (b->parent) {
        /* A parent still waiting on this child keeps waiting: the child never finished. */
        b->parent->nchildren_held--;
    }
    batch_free(b);
}

/* Changes a callback state, keeping the callback index and the parent's child counts. */
static void set_st(struct engine *e, struct batch *b, int which, int st)
{
    int was = b->st[which];
    if (was == st)
        return;
    b->st[which] = (uint8_t)st;
    const char *jid = b->cb_jid[which];
    if (jid && st == BATCH_ST_ENQUEUED)
        strmap_put(&e->batches.callbacks, jid, b);
    else if (jid && strmap_get(&e->batches.callbacks, jid) == b)
        strmap_del(&e->batches.callbacks, jid);
    if (!b->parent || (was > 0) == (st > 0))
        return;
    uint32_t *n = which == BATCH_COMPLETE ? &b->parent->children_incomplete
                                          : &b->parent->children_unsucceeded;
    if (st > 0 && *n > 0)
        (*n)--;
    else if (st == 0)
        (*n)++;
}

/* ---- firing ---- */

static int complete_due(const struct batch *b)
{
    return b->is_committed && b->st[BATCH_COMPLETE] == BATCH_ST_PENDING &&
           b->pending == b->failed && b->children_incomplete == 0;
}

static int success_due(const struct batch *b)
{
    return b->is_committed && b->st[BATCH_COMPLETE] != BATCH_ST_PENDING &&
           b->st[BATCH_SUCCESS] == BATCH_ST_PENDING && b->pending == 0 &&
           b->children_unsucceeded == 0;
}

/*
 * Pushes a callback and records that it fired. The job is pushed first: if
 * a crash cuts the state record, the callback fires again after recovery as
 * the same job (same jid and body), which engine_push takes as a repeat.
 */
static void fire(struct engine *e, struct batch *b, int which, int64_t now_ns)
{
    int st = BATCH_ST_DONE; /* no callback: nothing left to run */
    if (b->cb_json[which]) {
        struct job *job;
        char err[JOB_ERR_MAX];
        if (job_parse(b->cb_json[which], strlen(b->cb_json[which]), now_ns, &job, err) == 0) {
            /* Refused (jid taken by another job, unique lock held): it counts as fired. */
            if (engine_push(e, job, now_ns) != 0)
                job_free(job);
        }
        st = BATCH_ST_ENQUEUED;
    }
    set_st(e, b, which, st);
    b->updated_at_ns = now_ns;
    emit_state(e, b);
}

/* Fires what is due on b, then on its ancestors whose children just finished. */
static void check(struct engine *e, struct batch *b, int64_t now_ns)
{
    while (b) {
        if (e->is_replaying) {
            mark_dirty(e, b);
            return;
        }
        int fired = 0;
        if (complete_due(b)) {
            fire(e, b, BATCH_COMPLETE, now_ns);
            fired = 1;
        }
        if (success_due(b)) {
            fire(e, b, BATCH_SUCCESS, now_ns);
            fired = 1;
        }
        if (!fired)
            return;
        b = b->parent;
    }
}

/* ---- job events ---- */

char *batch_bid_of(const struct job *job)
{
    /* Most jobs name no batch: look for the key before parsing anything. */
    if (!job->body || !memmem(job->body, job->body_len, "\"bid\"", 5))
        return NULL;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "{", 1);
    sbuf_add(&b, job->body, job->body_len);
    sbuf_add(&b, "}", 1);
    cJSON *o = cJSON_ParseWithLength(b.buf, b.len);
    sbuf_release(&b);
    cJSON *custom = cJSON_GetObjectItemCaseSensitive(o, "custom");
    cJSON *bid = cJSON_GetObjectItemCaseSensitive(custom, "bid");
    char *out = cJSON_IsString(bid) && *bid->valuestring ? xstrdup(bid->valuestring) : NULL;
    cJSON_Delete(o);
    return out;
}

int batch_admit(struct engine *e, const struct job *job, struct batch **out)
{
    *out = NULL;
    char *bid = batch_bid_of(job);
    if (!bid)
        return 0;
    struct batch *b = batch_find(e, bid);
    free(bid);
    if (!b)
        return ENGINE_EBATCH_UNKNOWN;
    if (b->is_committed)
        return ENGINE_EBATCH_CLOSED;
    *out = b;
    return 0;
}

void batch_join(struct engine *e, struct job *job, struct batch *b)
{
    (void)e;
    job_extra_need(job)->batch = b;
    b->nlive++;
    b->total++;
    b->pending++;
}

static void unlink_job(struct job *job)
{
    struct batch *b = job->extra->batch; /* joined, so it has extras */
    job->extra->batch = NULL;
    if (b->nlive > 0)
        b->nlive--;
}

void batch_job_failed(struct engine *e, struct job *job, int64_t now_ns)
{
    struct batch *b = job_extra(job)->batch;
    if (!b)
        return;
    if (b->failed < b->pending)
        b->failed++;
    b->updated_at_ns = now_ns;
    check(e, b, now_ns);
}

void batch_job_acked(struct engine *e, struct job *job, int64_t now_ns)
{
    struct batch *b = job_extra(job)->batch;
    if (!b) {
        struct batch_set *s = &e->batches;
        struct batch *cb = s->callbacks.count ? strmap_get(&s->callbacks, job->jid) : NULL;
        if (!cb)
            return;
        for (int i = 0; i < 2; i++)
            if (cb->st[i] == BATCH_ST_ENQUEUED && cb->cb_jid[i] && !strcmp(cb->cb_jid[i], job->jid))
                set_st(e, cb, i, BATCH_ST_DONE);
        cb->updated_at_ns = now_ns;
        return;
    }
    unlink_job(job);
    if (b->pending > 0)
        b->pending--;
    if (job->failure && b->failed > 0)
        b->failed--;
    b->updated_at_ns = now_ns;
    check(e, b, now_ns);
}

void batch_job_gone(struct engine *e, struct job *job)
{
    struct batch *b = job_extra(job)->batch;
    if (!b)
        return;
    unlink_job(job);
    /* It will never succeed: a job that never failed now counts as failed. */
    if (!job->failure && b->failed < b->pending) {
        b->failed++;
        /* No time at hand here (queue removal has none): engine_tick fires it. */
        mark_dirty(e, b);
    }
}

/* ---- commands ---- */

/*
 * Validates a callback job and returns its JSON as it will be pushed: with
 * a jid (derived from the bid when the client gave none) and custom._bid /
 * custom._cb telling the callback which batch fired it. NULL with err set.
 */
static char *callback_prepare(cJSON *cb, const char *bid, int which, int64_t now_ns, char *err,
                              char **jid_out)
{
    char why[JOB_ERR_MAX];
    if (!cJSON_IsObject(cb)) {
        snprintf(err, JOB_ERR_MAX, "invalid %s callback: must be a job object", cb_name[which]);
        return NULL;
    }
    cJSON *jid = cJSON_GetObjectItemCaseSensitive(cb, "jid");
    if (!jid || cJSON_IsNull(jid) || (cJSON_IsString(jid) && !*jid->valuestring)) {
        char made[160];
        snprintf(made, sizeof made, "%s-%s", bid, cb_name[which]);
        cJSON_DeleteItemFromObjectCaseSensitive(cb, "jid");
        cJSON_AddStringToObject(cb, "jid", made);
    }
    cJSON *custom = cJSON_GetObjectItemCaseSensitive(cb, "custom");
    if (!custom || cJSON_IsNull(custom)) {
        cJSON_DeleteItemFromObjectCaseSensitive(cb, "custom");
        custom = cJSON_AddObjectToObject(cb, "custom");
    }
    if (cJSON_IsObject(custom)) {
        if (cJSON_GetObjectItemCaseSensitive(custom, "bid")) {
            snprintf(
                err, JOB_ERR_MAX,
                "invalid %s callback: custom.bid is not allowed (a callback belongs to no batch)",
                cb_name[which]);
            return NULL;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(custom, "_bid");
        cJSON_DeleteItemFromObjectCaseSensitive(custom, "_cb");
        cJSON_AddStringToObject(custom, "_bid", bid);
        cJSON_AddStringToObject(custom, "_cb", cb_name[which]);
    }
    char *text = cJSON_PrintUnformatted(cb);
    struct job *job = NULL;
    if (job_parse(text, strlen(text), now_ns, &job, why) != 0) {
        snprintf(err, JOB_ERR_MAX, "invalid %s callback: %.400s", cb_name[which], why);
        cJSON_free(text);
        return NULL;
    }
    *jid_out = xstrdup(job->jid);
    job_free(job);
    char *out = xstrdup(text);
    cJSON_free(text);
    return out;
}

static int def_string(cJSON *o, const char *key, char **out, char *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        snprintf(err, JOB_ERR_MAX, "invalid BATCH NEW: \"%s\" must be a string", key);
        return -1;
    }
    if (*v->valuestring)
        *out = xstrdup(v->valuestring);
    return 0;
}

int engine_batch_new(struct engine *e, const char *bid, const char *json, size_t len,
                     int64_t now_ns, char *err)
{
    if (batch_find(e, bid)) {
        snprintf(err, JOB_ERR_MAX, "batch id %.100s is already in use", bid);
        return ENGINE_EEXIST;
    }
    if (job_json_has_nul(json, len)) { /* cJSON would cut such a string short, unseen */
        snprintf(err, JOB_ERR_MAX,
                 "invalid BATCH NEW: strings containing \\u0000 (NUL) are not supported");
        return ENGINE_EBADARG;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(err, JOB_ERR_MAX, "invalid BATCH NEW: not a JSON object");
        return ENGINE_EBADARG;
    }
    /* cJSON stops after the first value: a second object (a callback) would go unread. */
    size_t at = job_json_trailing_at(json, len, end);
    if (at < len) {
        cJSON_Delete(o);
        snprintf(err, JOB_ERR_MAX,
                 "invalid BATCH NEW: unexpected text after the definition at byte %zu", at);
        return ENGINE_EBADARG;
    }
    struct batch *b = xcalloc(1, sizeof *b);
    b->bid = xstrdup(bid);
    b->created_at_ns = b->updated_at_ns = now_ns;
    int rc = ENGINE_EBADARG;
    if (def_string(o, "description", &b->description, err) != 0 ||
        def_string(o, "parent_bid", &b->parent_bid, err) != 0)
        goto fail;
    if (b->parent_bid) {
        struct batch *p = batch_find(e, b->parent_bid);
        if (!p) {
            snprintf(err, JOB_ERR_MAX, "unknown parent batch %.100s", b->parent_bid);
            rc = ENGINE_EBATCH_UNKNOWN;
            goto fail;
        }
        if (p->is_committed) {
            snprintf(err, JOB_ERR_MAX,
                     "parent batch %.100s is committed: BATCH OPEN it before adding a child batch",
                     b->parent_bid);
            rc = ENGINE_EBATCH_CLOSED;
            goto fail;
        }
    }
    for (int i = 0; i < 2; i++) {
        cJSON *cb = cJSON_GetObjectItemCaseSensitive(o, cb_name[i]);
        if (!cb || cJSON_IsNull(cb))
            continue;
        b->cb_json[i] = callback_prepare(cb, bid, i, now_ns, err, &b->cb_jid[i]);
        if (!b->cb_json[i])
            goto fail;
    }
    if (b->cb_jid[0] && b->cb_jid[1] && !strcmp(b->cb_jid[0], b->cb_jid[1])) {
        /* The second to fire would be refused as a different job with a taken jid. */
        snprintf(err, JOB_ERR_MAX,
                 "invalid BATCH NEW: the success and complete callbacks need different jids "
                 "(both are %.100s)",
                 b->cb_jid[0]);
        goto fail;
    }
    if (!b->cb_json[0] && !b->cb_json[1]) {
        snprintf(err, JOB_ERR_MAX,
                 "invalid BATCH NEW: a batch needs a \"success\" or \"complete\" callback job");
        goto fail;
    }
    cJSON_Delete(o);
    set_add(e, b);
    if (!e->is_replaying && e->hooks.record) {
        encode_new(&e->recbuf, b);
        emit_rec(e);
    }
    return 0;
fail:
    cJSON_Delete(o);
    batch_free(b);
    return rc;
}

int engine_batch_open(struct engine *e, const char *bid, int64_t now_ns)
{
    struct batch *b = batch_find(e, bid);
    if (!b)
        return ENGINE_EBATCH_UNKNOWN;
    if (b->st[BATCH_COMPLETE] != BATCH_ST_PENDING)
        return ENGINE_EBATCH_DONE;
    if (!b->is_committed)
        return 0; /* open already */
    b->is_committed = 0;
    b->updated_at_ns = now_ns;
    emit_state(e, b);
    return 0;
}

int engine_batch_commit(struct engine *e, const char *bid, int64_t now_ns)
{
    struct batch *b = batch_find(e, bid);
    if (!b)
        return ENGINE_EBATCH_UNKNOWN;
    if (b->is_committed)
        return 0; /* a repeated COMMIT (a lost reply) changes nothing */
    b->is_committed = 1;
    b->updated_at_ns = now_ns;
    emit_state(e, b);
    check(e, b, now_ns);
    return 0;
}

static void put_opt_str(struct sbuf *out, const char *s)
{
    if (s)
        sbuf_add_json_str(out, s, strlen(s));
    else
        sbuf_adds(out, "null");
}

static const char *st_text(int st)
{
    return st == BATCH_ST_ENQUEUED ? "1" : st == BATCH_ST_DONE ? "2" : "";
}

void batch_render(const struct batch *b, struct sbuf *out)
{
    char ts[TIMEFMT_MAX];
    timefmt_format(b->created_at_ns, ts);
    sbuf_adds(out, "{\"bid\":");
    sbuf_add_json_str(out, b->bid, strlen(b->bid));
    sbuf_adds(out, ",\"parent_bid\":");
    put_opt_str(out, b->parent_bid);
    sbuf_adds(out, ",\"description\":");
    put_opt_str(out, b->description);
    sbuf_addf(out,
              ",\"created_at\":\"%s\",\"committed\":%s,\"total\":%lld,\"pending\":%lld,"
              "\"failed\":%lld,\"complete_st\":\"%s\",\"success_st\":\"%s\"}",
              ts, b->is_committed ? "true" : "false", (long long)b->total, (long long)b->pending,
              (long long)b->failed, st_text(b->st[BATCH_COMPLETE]), st_text(b->st[BATCH_SUCCESS]));
}

size_t engine_batch_list(struct engine *e, size_t offset, size_t limit,
                         void (*fn)(void *ctx, const struct batch *b), void *ctx)
{
    size_t i = 0, end = offset > SIZE_MAX - limit ? SIZE_MAX : offset + limit;
    for (const struct batch *b = e->batches.tail; b && i < end; b = b->prev, i++)
        if (i >= offset)
            fn(ctx, b);
    return e->batches.count;
}

/* ---- time ---- */

static int prunable(const struct batch *b)
{
    return b->nlive == 0 && b->nchildren_held == 0;
}

static void prune_one(struct engine *e, struct batch *b)
{
    if (!e->is_replaying && e->hooks.record) {
        rec_put_u8(&e->recbuf, REC_BATCH_DEL);
        rec_put_cstr(&e->recbuf, b->bid);
        emit_rec(e);
    }
    set_remove(e, b);
}

static int by_updated(const void *a, const void *b)
{
    const struct batch *x = *(struct batch *const *)a, *y = *(struct batch *const *)b;
    return x->updated_at_ns < y->updated_at_ns ? -1 : x->updated_at_ns > y->updated_at_ns;
}

static void prune(struct engine *e, int64_t now_ns)
{
    struct batch_set *s = &e->batches;
    int64_t ttl = e->cfg.batch_ttl_ns;
    for (struct batch *b = s->head; b;) {
        struct batch *next = b->next;
        if (ttl > 0 && prunable(b) && b->updated_at_ns + ttl <= now_ns)
            prune_one(e, b);
        b = next;
    }
    if (!e->cfg.batch_max || s->count <= e->cfg.batch_max)
        return;
    /* Over the cap: the longest idle batches that nothing points at go first. */
    struct batch **cand = xcalloc(s->count, sizeof *cand);
    size_t n = 0;
    for (struct batch *b = s->head; b; b = b->next)
        if (prunable(b))
            cand[n++] = b;
    qsort(cand, n, sizeof *cand, by_updated);
    for (size_t i = 0; i < n && s->count > e->cfg.batch_max; i++)
        prune_one(e, cand[i]);
    free(cand);
}

void batch_tick(struct engine *e, int64_t now_ns)
{
    struct batch_set *s = &e->batches;
    /* check() may mark more batches dirty (a fired child's parent is checked directly). */
    while (s->ndirty) {
        struct batch *b = s->dirty[--s->ndirty];
        b->is_dirty = 0;
        check(e, b, now_ns);
    }
    if (now_ns >= s->next_prune_ns) {
        s->next_prune_ns = now_ns + (int64_t)BATCH_PRUNE_EVERY_S * NS_PER_S;
        prune(e, now_ns);
    }
}

/* ---- replay and snapshots ---- */

static int apply_new(struct engine *e, struct rec_reader *r)
{
    struct batch *b = xcalloc(1, sizeof *b);
    b->bid = rec_get_str(r, NULL);
    b->parent_bid = rec_get_str(r, NULL);
    b->description = rec_get_str(r, NULL);
    b->created_at_ns = b->updated_at_ns = rec_get_i64(r);
    b->cb_json[BATCH_SUCCESS] = rec_get_str(r, NULL);
    b->cb_json[BATCH_COMPLETE] = rec_get_str(r, NULL);
    if (r->is_bad || !b->bid) {
        batch_free(b);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (!b->cb_json[i])
            continue;
        cJSON *o = cJSON_Parse(b->cb_json[i]);
        cJSON *jid = cJSON_GetObjectItemCaseSensitive(o, "jid");
        if (cJSON_IsString(jid))
            b->cb_jid[i] = xstrdup(jid->valuestring);
        cJSON_Delete(o);
    }
    struct batch *old = batch_find(e, b->bid);
    if (old) { /* the same definition again (a snapshot overlapping the journal) */
        batch_free(b);
        return 0;
    }
    set_add(e, b);
    return 0;
}

static int apply_state(struct engine *e, struct rec_reader *r)
{
    char *bid = rec_get_str(r, NULL);
    int committed = rec_get_u8(r);
    int64_t total = rec_get_i64(r), pending = rec_get_i64(r), failed = rec_get_i64(r);
    int st_c = rec_get_u8(r), st_s = rec_get_u8(r);
    int64_t updated = rec_get_i64(r);
    struct batch *b = batch_find(e, bid);
    int rc = 0;
    if (r->is_bad || !bid || st_c > BATCH_ST_DONE || st_s > BATCH_ST_DONE) {
        rc = -1;
    } else if (!b) {
        e->replay_skipped++;
    } else {
        b->is_committed = committed != 0;
        b->total = total;
        b->pending = pending;
        b->failed = failed;
        set_st(e, b, BATCH_COMPLETE, st_c);
        set_st(e, b, BATCH_SUCCESS, st_s);
        b->updated_at_ns = updated;
        mark_dirty(e, b); /* a commit whose callbacks a crash cut off fires after recovery */
    }
    free(bid);
    return rc;
}

int batch_apply(struct engine *e, int type, struct rec_reader *r)
{
    switch (type) {
    case REC_BATCH_NEW: return apply_new(e, r);
    case REC_BATCH_STATE: return apply_state(e, r);
    case REC_BATCH_DEL: {
        char *bid = rec_get_str(r, NULL);
        struct batch *b = batch_find(e, bid);
        int rc = r->is_bad || !bid ? -1 : 0;
        if (rc == 0 && b && prunable(b))
            set_remove(e, b);
        else if (rc == 0)
            e->replay_skipped++;
        free(bid);
        return rc;
    }
    default: return -1;
    }
}

void batch_dump_defs(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len),
                     void *ctx)
{
    /* Creation order: a parent is defined before its children. */
    for (const struct batch *b = e->batches.head; b; b = b->next) {
        sbuf_reset(&e->recbuf);
        encode_new(&e->recbuf, b);
        out(ctx, e->recbuf.buf, e->recbuf.len);
    }
    sbuf_reset(&e->recbuf);
}

void batch_dump_states(struct engine *e, void (*out)(void *ctx, const void *rec, size_t len),
                       void *ctx)
{
    for (const struct batch *b = e->batches.head; b; b = b->next) {
        sbuf_reset(&e->recbuf);
        encode_state(&e->recbuf, b);
        out(ctx, e->recbuf.buf, e->recbuf.len);
    }
    sbuf_reset(&e->recbuf);
}
