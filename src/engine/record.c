#include "engine/record.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define STR_NONE UINT32_MAX

void rec_put_u8(struct sbuf *b, uint8_t v)
{
    sbuf_add(b, &v, 1);
}

void rec_put_u32(struct sbuf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    sbuf_add(b, x, 4);
}

void rec_put_i64(struct sbuf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(u >> (8 * i));
    sbuf_add(b, x, 8);
}

void rec_put_str(struct sbuf *b, const char *s, size_t len)
{
    if (!s) {
        rec_put_u32(b, STR_NONE);
        return;
    }
    rec_put_u32(b, (uint32_t)len);
    sbuf_add(b, s, len);
}

void rec_put_cstr(struct sbuf *b, const char *s)
{
    rec_put_str(b, s, s ? strlen(s) : 0);
}

void rec_reader_init(struct rec_reader *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->is_bad = 0;
}

static int need(struct rec_reader *r, size_t n)
{
    if (r->is_bad || (size_t)(r->end - r->p) < n) {
        r->is_bad = 1;
        return 0;
    }
    return 1;
}

uint8_t rec_get_u8(struct rec_reader *r)
{
    if (!need(r, 1))
        return 0;
    return *r->p++;
}

uint32_t rec_get_u32(struct rec_reader *r)
{
    if (!need(r, 4))
        return 0;
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}

int64_t rec_get_i64(struct rec_reader *r)
{
    if (!need(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | r->p[i];
    r->p += 8;
    return (int64_t)v;
}

char *rec_get_str(struct rec_reader *r, size_t *len)
{
    uint32_t n = rec_get_u32(r);
    if (len)
        *len = 0;
    if (r->is_bad || n == STR_NONE)
        return NULL;
    if (!need(r, n))
        return NULL;
    char *s = xstrndup((const char *)r->p, n);
    r->p += n;
    if (len)
        *len = n;
    return s;
}

void rec_put_placement(struct sbuf *b, const struct placement *pl)
{
    rec_put_u8(b, (uint8_t)pl->state);
    rec_put_i64(b, pl->score_ns);
    rec_put_i64(b, pl->enqueued_at_ns);
    rec_put_i64(b, pl->reserved_at_ns);
    rec_put_cstr(b, pl->wid);
}

void rec_get_placement(struct rec_reader *r, struct placement *pl)
{
    uint8_t st = rec_get_u8(r);
    pl->state = st <= JOB_DEAD ? (enum job_state)st : JOB_NEW;
    if (st > JOB_DEAD)
        r->is_bad = 1;
    pl->score_ns = rec_get_i64(r);
    pl->enqueued_at_ns = rec_get_i64(r);
    pl->reserved_at_ns = rec_get_i64(r);
    pl->wid = rec_get_str(r, NULL);
}

void rec_put_failure(struct sbuf *b, const struct job_failure *f)
{
    rec_put_u32(b, (uint32_t)f->retry_count);
    rec_put_u32(b, (uint32_t)f->remaining);
    rec_put_i64(b, f->failed_at_ns);
    rec_put_i64(b, f->next_at_ns);
    rec_put_cstr(b, f->errtype);
    rec_put_cstr(b, f->message);
    rec_put_cstr(b, f->backtrace);
}

struct job_failure *rec_get_failure(struct rec_reader *r)
{
    struct job_failure *f = xcalloc(1, sizeof *f);
    f->retry_count = (int)rec_get_u32(r);
    f->remaining = (int)rec_get_u32(r);
    f->failed_at_ns = rec_get_i64(r);
    f->next_at_ns = rec_get_i64(r);
    f->errtype = rec_get_str(r, NULL);
    f->message = rec_get_str(r, NULL);
    f->backtrace = rec_get_str(r, NULL);
    return f;
}

void rec_encode_add(struct sbuf *b, const struct job *job, const struct placement *pl)
{
    rec_put_u8(b, REC_ADD);
    rec_put_cstr(b, job->jid);
    rec_put_cstr(b, job->jobtype);
    rec_put_cstr(b, job->queue);
    rec_put_cstr(b, job->created_at);
    rec_put_str(b, job->body, job->body_len);
    rec_put_u32(b, (uint32_t)job->retry);
    rec_put_u32(b, (uint32_t)job->reserve_for_s);
    rec_put_i64(b, job->at_ns);
    rec_put_u8(b, job->failure != NULL);
    if (job->failure)
        rec_put_failure(b, job->failure);
    rec_put_placement(b, pl);
    /* Added after version 1's layout: decoders read these only when present. */
    const struct job_extra *x = job_extra(job);
    rec_put_i64(b, x->expires_at_ns);
    rec_put_u32(b, (uint32_t)x->unique_for_s);
    rec_put_u8(b, (uint8_t)(x->is_unique_until_start != 0));
    rec_put_i64(b, x->unique_until_ns);
}

void rec_encode_place(struct sbuf *b, const char *jid, const struct placement *pl)
{
    rec_put_u8(b, REC_PLACE);
    rec_put_cstr(b, jid);
    rec_put_placement(b, pl);
}

void rec_encode_fail(struct sbuf *b, const struct job *job, int64_t now_ns, int is_expiry,
                     const struct placement *pl)
{
    rec_put_u8(b, REC_FAIL);
    rec_put_cstr(b, job->jid);
    rec_put_i64(b, now_ns);
    rec_put_failure(b, job->failure);
    rec_put_placement(b, pl);
    /* Added after version 1's layout: decoders read it only when present. */
    rec_put_u8(b, (uint8_t)(is_expiry != 0));
}

void rec_encode_del(struct sbuf *b, const char *jid, enum record_del_reason why, int64_t now_ns)
{
    rec_put_u8(b, REC_DEL);
    rec_put_cstr(b, jid);
    rec_put_u8(b, (uint8_t)why);
    rec_put_i64(b, now_ns);
}

void rec_encode_queue(struct sbuf *b, enum record_queue_op op, const char *name)
{
    rec_put_u8(b, REC_QUEUE);
    rec_put_u8(b, (uint8_t)op);
    rec_put_cstr(b, name);
}

void rec_encode_flush(struct sbuf *b)
{
    rec_put_u8(b, REC_FLUSH);
}

void rec_encode_track(struct sbuf *b, const char *jid, const struct job_track *t)
{
    rec_put_u8(b, REC_TRACK);
    rec_put_cstr(b, jid);
    rec_put_u32(b, (uint32_t)t->percent);
    rec_put_cstr(b, t->desc);
    rec_put_i64(b, t->updated_at_ns);
}

void rec_encode_cron(struct sbuf *b, const char *name, int64_t slot_ns)
{
    rec_put_u8(b, REC_CRON);
    rec_put_cstr(b, name);
    rec_put_i64(b, slot_ns);
}
