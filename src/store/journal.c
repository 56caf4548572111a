#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "common/xalloc.h"
#include "store/crc32c.h"

static const char journal_magic[8] = {'S', 'P', 'O', 'O', 'L', 'J', 'N', 'L'};
static const char snapshot_magic[8] = {'S', 'P', 'O', 'O', 'L', 'S', 'N', 'P'};
/* A snapshot ends with a frame whose payload is this single byte. */
#define SNAPSHOT_END 0

struct journal {
    char *dir;
    const struct fileio *io;
    enum fsync_policy policy;
    size_t segment_max;
    void (*notify)(void *ctx);
    void *ctx;

    /* Event-loop thread only. */
    uint64_t appended_seq;
    uint64_t loop_segment;      /* the segment new appends belong to */
    uint64_t loop_segment_bytes;
    uint64_t bytes_since_rotation;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Guarded by mu. */
    struct sbuf pending;        /* framed records for the writer */
    uint64_t pending_seq;       /* sequence of the last record in pending */
    size_t rotate_at;           /* offset in pending where a new segment starts, or SIZE_MAX */
    uint64_t rotate_segment;
    uint64_t durable_seq;
    int is_failed;
    int want_stop;
    char error[256];
    struct journal_stats stats;

    /* Writer thread only. */
    int fd;
    uint64_t segment;
    pthread_t thread;
};

int journal_parse_policy(const char *s, enum fsync_policy *out)
{
    if (!strcmp(s, "always"))
        *out = FSYNC_ALWAYS;
    else if (!strcmp(s, "everysec"))
        *out = FSYNC_EVERYSEC;
    else if (!strcmp(s, "never"))
        *out = FSYNC_NEVER;
    else
        return -1;
    return 0;
}

const char *journal_policy_name(enum fsync_policy p)
{
    return p == FSYNC_ALWAYS ? "always" : p == FSYNC_EVERYSEC ? "everysec" : "never";
}

static void segment_path(char *out, size_t n, const char *dir, uint64_t seg)
{
    snprintf(out, n, "%s/journal-%020" PRIu64 ".log", dir, seg);
}

static void snapshot_path(char *out, size_t n, const char *dir, uint64_t seg, int tmp)
{
    snprintf(out, n, "%s/snapshot-%020" PRIu64 ".snap%s", dir, seg, tmp ? ".tmp" : "");
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void header(unsigned char out[JOURNAL_HEADER_SIZE], const char magic[8])
{
    memset(out, 0, JOURNAL_HEADER_SIZE);
    memcpy(out, magic, 8);
    put_u32(out + 8, JOURNAL_VERSION);
}

static void frame(struct sbuf *b, const void *rec, size_t len)
{
    unsigned char h[JOURNAL_FRAME_HEADER];
    put_u32(h, (uint32_t)len);
    put_u32(h + 4, crc32c(0, rec, len));
    sbuf_add(b, h, sizeof h);
    sbuf_add(b, rec, len);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Creates segment seg with its header, durably. Writer thread (or open). */
static int open_segment(struct journal *j, uint64_t seg)
{
    char path[4096];
    segment_path(path, sizeof path, j->dir, seg);
    int fd = j->io->open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0)
        return -1;
    unsigned char h[JOURNAL_HEADER_SIZE];
    header(h, journal_magic);
    if (fileio_write_all(j->io, fd, h, sizeof h) != 0 || j->io->fsync(fd) != 0 ||
        j->io->fsync_dir(j->dir) != 0) {
        int saved = errno;
        j->io->close(fd);
        errno = saved;
        return -1;
    }
    j->fd = fd;
    j->segment = seg;
    return 0;
}

static void fail(struct journal *j, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s segment %" PRIu64 ": %s", what, j->segment, strerror(errno));
    pthread_mutex_lock(&j->mu);
    if (!j->is_failed) {
        j->is_failed = 1;
        snprintf(j->error, sizeof j->error, "%s", msg);
    }
    pthread_mutex_unlock(&j->mu);
    log_error("msg=\"journal failed\" error=\"%s\"", msg);
}

static int sync_now(struct journal *j)
{
    int64_t t0 = mono_ns();
    if (j->io->fsync(j->fd) != 0) {
        fail(j, "fsync of");
        return -1;
    }
    uint64_t dt = (uint64_t)(mono_ns() - t0);
    pthread_mutex_lock(&j->mu);
    j->stats.fsyncs++;
    j->stats.fsync_ns_total += dt;
    if (dt > j->stats.fsync_ns_max)
        j->stats.fsync_ns_max = dt;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void *writer_main(void *arg)
{
    struct journal *j = arg;
    struct sbuf batch;
    sbuf_init(&batch);
    int64_t last_sync = mono_ns();
    int dirty = 0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->pending.len && !j->want_stop && !j->is_failed) {
            if (j->policy == FSYNC_EVERYSEC && dirty) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += 1;
                pthread_cond_timedwait(&j->cond, &j->mu, &until);
                if (!j->pending.len)
                    break;
            } else {
                pthread_cond_wait(&j->cond, &j->mu);
            }
        }
        if (j->is_failed || (j->want_stop && !j->pending.len && !dirty))
            break;
        /* Take the whole batch: everything that arrived while the last write ran. */
        struct sbuf tmp = batch;
        batch = j->pending;
        j->pending = tmp;
        sbuf_reset(&j->pending);
        uint64_t hi = j->pending_seq;
        size_t rot = j->rotate_at;
        uint64_t rot_seg = j->rotate_segment;
        j->rotate_at = SIZE_MAX;
        /* Only this thread changes the fsync stats: their values now tell what this batch adds. */
        uint64_t fsyncs_before = j->stats.fsyncs, fsync_ns_before = j->stats.fsync_ns_total;
        pthread_mutex_unlock(&j->mu);

        int ok = 1;
        size_t first = rot == SIZE_MAX ? batch.len : rot;
        if (first && fileio_write_all(j->io, j->fd, batch.buf, first) != 0) {
            fail(j, "write to");
            ok = 0;
        }
        if (ok && first)
            dirty = 1;
        if (ok && rot != SIZE_MAX) {
            /* The old segment must be complete on disk before a snapshot may replace it. */
            if (sync_now(j) != 0) {
                ok = 0;
            } else {
                j->io->close(j->fd);
                j->fd = -1;
                dirty = 0;
                if (open_segment(j, rot_seg) != 0) {
                    fail(j, "creating");
                    ok = 0;
                } else if (batch.len > rot &&
                           fileio_write_all(j->io, j->fd, batch.buf + rot, batch.len - rot) != 0) {
                    fail(j, "write to");
                    ok = 0;
                } else if (batch.len > rot) {
                    dirty = 1;
                }
            }
        }
        if (ok && dirty &&
            (j->policy == FSYNC_ALWAYS ||
             (j->policy == FSYNC_EVERYSEC && mono_ns() - last_sync >= 1000000000) || j->want_stop)) {
            if (sync_now(j) != 0)
                ok = 0;
            else {
                dirty = 0;
                last_sync = mono_ns();
            }
        }
        pthread_mutex_lock(&j->mu);
        if (ok) {
            if (hi > j->durable_seq) {
                uint64_t n = hi - j->durable_seq;
                int b = 0;
                while (b < JOURNAL_BATCH_HIST_BUCKETS - 1 && n > (UINT64_C(1) << b))
                    b++;
                j->stats.batch_hist[b]++;
                j->stats.records += n;
                j->durable_seq = hi;
            }
            j->stats.batches++;
        }
        /* Latency histogram: one observation per fsync of this batch. A batch that
         * rotated has two fsyncs; each is counted at their average. */
        uint64_t nsync = j->stats.fsyncs - fsyncs_before;
        if (nsync) {
            uint64_t dt = (j->stats.fsync_ns_total - fsync_ns_before) / nsync;
            int b = 0;
            while (b < JOURNAL_FSYNC_HIST_BUCKETS - 1 && dt > ((uint64_t)JOURNAL_FSYNC_HIST_BASE_NS << b))
                b++;
            j->stats.fsync_hist[b] += nsync;
        }
        pthread_mutex_unlock(&j->mu);
        if (j->notify)
            j->notify(j->ctx);
        pthread_mutex_lock(&j->mu);
        if (!ok)
            break;
    }
    pthread_mutex_unlock(&j->mu);
    if (j->notify)
        j->notify(j->ctx);
    sbuf_release(&batch);
    return NULL;
}

struct journal *journal_open(const char *dir, uint64_t segment, enum fsync_policy policy,
                             size_t segment_max_bytes, const struct fileio *io,
                             void (*notify)(void *ctx), void *ctx, char *err, size_t errlen)
{
    crc32c_init();
    struct journal *j = xcalloc(1, sizeof *j);
    j->dir = xstrdup(dir);
    j->io = io;
    j->policy = policy;
    j->segment_max = segment_max_bytes;
    j->notify = notify;
    j->ctx = ctx;
    j->loop_segment = segment;
    j->rotate_at = SIZE_MAX;
    j->fd = -1;
    sbuf_init(&j->pending);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cond, NULL);
    if (open_segment(j, segment) != 0) {
        snprintf(err, errlen, "cannot create journal segment %" PRIu64 " in %s: %s", segment, dir,
                 strerror(errno));
        goto fail;
    }
    if (pthread_create(&j->thread, NULL, writer_main, j) != 0) {
        snprintf(err, errlen, "cannot start the journal writer thread");
        io->close(j->fd);
        goto fail;
    }
    return j;
fail:
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cond);
    sbuf_release(&j->pending);
    free(j->dir);
    free(j);
    return NULL;
}

/* Asks the writer to start segment seg at the current end of pending. Caller holds mu. */
static int request_rotation(struct journal *j)
{
    if (j->rotate_at != SIZE_MAX)
        return 0; /* one at a time: the writer has not taken the previous one yet */
    j->rotate_at = j->pending.len;
    j->rotate_segment = ++j->loop_segment;
    j->loop_segment_bytes = 0;
    return 1;
}

uint64_t journal_append(struct journal *j, const void *rec, size_t len)
{
    pthread_mutex_lock(&j->mu);
    if (j->segment_max && j->loop_segment_bytes >= j->segment_max)
        request_rotation(j);
    frame(&j->pending, rec, len);
    j->pending_seq = ++j->appended_seq;
    j->stats.bytes += JOURNAL_FRAME_HEADER + len;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
    j->loop_segment_bytes += JOURNAL_FRAME_HEADER + len;
    j->bytes_since_rotation += JOURNAL_FRAME_HEADER + len;
    return j->appended_seq;
}

uint64_t journal_rotate(struct journal *j)
{
    pthread_mutex_lock(&j->mu);
    /* One boundary per batch: with a size rotation still pending, try again later. */
    int ok = request_rotation(j);
    uint64_t seg = j->loop_segment;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
    if (!ok)
        return 0;
    j->bytes_since_rotation = 0;
    return seg;
}

uint64_t journal_durable(struct journal *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t d = j->durable_seq;
    pthread_mutex_unlock(&j->mu);
    return d;
}

uint64_t journal_last_seq(struct journal *j)
{
    return j->appended_seq;
}

uint64_t journal_bytes_since_rotation(struct journal *j)
{
    return j->bytes_since_rotation;
}

int journal_failed(struct journal *j, char *err, size_t errlen)
{
    pthread_mutex_lock(&j->mu);
    int failed = j->is_failed;
    if (failed && err)
        snprintf(err, errlen, "%s", j->error);
    pthread_mutex_unlock(&j->mu);
    return failed;
}

void journal_get_stats(struct journal *j, struct journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->stats;
    pthread_mutex_unlock(&j->mu);
}

uint64_t journal_close(struct journal *j)
{
    if (!j)
        return 0;
    pthread_mutex_lock(&j->mu);
    j->want_stop = 1;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    uint64_t durable = j->durable_seq;
    if (j->fd >= 0) {
        if (!j->is_failed)
            j->io->fsync(j->fd);
        j->io->close(j->fd);
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cond);
    sbuf_release(&j->pending);
    free(j->dir);
    free(j);
    return durable;
}

/* ---- directory listing ---- */

struct listing {
    uint64_t *segs, *snaps, *tmps;
    size_t nsegs, nsnaps, ntmps;
};

static void collect(void *ctx, const char *name)
{
    struct listing *l = ctx;
    uint64_t n;
    int len = 0;
    char canon[64];
    /* Only names exactly as segment_path and snapshot_path write them count. Another
     * spelling ("journal-1.log", or a number past 2^64 that sscanf clamps) would be
     * read and removed under a different file's name; it is left alone like any
     * other stranger in the directory. */
    if (sscanf(name, "journal-%20" SCNu64 ".log%n", &n, &len) == 1 && name[len] == '\0' && len) {
        snprintf(canon, sizeof canon, "journal-%020" PRIu64 ".log", n);
        if (strcmp(canon, name) != 0)
            return;
        l->segs = xrealloc(l->segs, (l->nsegs + 1) * sizeof *l->segs);
        l->segs[l->nsegs++] = n;
    } else if (sscanf(name, "snapshot-%20" SCNu64 ".snap%n", &n, &len) == 1 && len) {
        int clen = snprintf(canon, sizeof canon, "snapshot-%020" PRIu64 ".snap", n);
        if (clen != len || strncmp(canon, name, (size_t)len) != 0)
            return;
        if (name[len] == '\0') {
            l->snaps = xrealloc(l->snaps, (l->nsnaps + 1) * sizeof *l->snaps);
            l->snaps[l->nsnaps++] = n;
        } else if (strcmp(name + len, ".tmp") == 0) {
            l->tmps = xrealloc(l->tmps, (l->ntmps + 1) * sizeof *l->tmps);
            l->tmps[l->ntmps++] = n;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_dir(const char *dir, const struct fileio *io, struct listing *l)
{
    memset(l, 0, sizeof *l);
    if (io->list(dir, collect, l) != 0)
        return -1;
    if (l->nsegs)
        qsort(l->segs, l->nsegs, sizeof *l->segs, cmp_u64);
    if (l->nsnaps)
        qsort(l->snaps, l->nsnaps, sizeof *l->snaps, cmp_u64);
    return 0;
}

void journal_prune(const char *dir, const struct fileio *io, uint64_t segment)
{
    struct listing l;
    if (list_dir(dir, io, &l) != 0)
        return;
    char path[4096];
    for (size_t i = 0; i < l.nsegs; i++) {
        if (l.segs[i] < segment) {
            segment_path(path, sizeof path, dir, l.segs[i]);
            io->unlink(path);
        }
    }
    for (size_t i = 0; i < l.nsnaps; i++) {
        if (l.snaps[i] < segment) {
            snapshot_path(path, sizeof path, dir, l.snaps[i], 0);
            io->unlink(path);
        }
    }
    free(l.segs);
    free(l.snaps);
    free(l.tmps);
}

/* ---- snapshots ---- */

struct snapshot_writer {
    const struct fileio *io;
    char *dir;
    uint64_t segment;
    int fd;
    int is_failed;
    int saved_errno;
    struct sbuf buf;
};

struct snapshot_writer *snapshot_begin(const char *dir, uint64_t segment, const struct fileio *io)
{
    crc32c_init();
    char path[4096];
    snapshot_path(path, sizeof path, dir, segment, 1);
    int fd = io->open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return NULL;
    struct snapshot_writer *w = xcalloc(1, sizeof *w);
    w->io = io;
    w->dir = xstrdup(dir);
    w->segment = segment;
    w->fd = fd;
    sbuf_init(&w->buf);
    unsigned char h[JOURNAL_HEADER_SIZE];
    header(h, snapshot_magic);
    sbuf_add(&w->buf, h, sizeof h);
    return w;
}

static void snapshot_flush(struct snapshot_writer *w)
{
    if (!w->is_failed && w->buf.len && fileio_write_all(w->io, w->fd, w->buf.buf, w->buf.len) != 0) {
        w->is_failed = 1;
        w->saved_errno = errno;
    }
    sbuf_reset(&w->buf);
}

void snapshot_add(struct snapshot_writer *w, const void *rec, size_t len)
{
    frame(&w->buf, rec, len);
    if (w->buf.len >= (1u << 20))
        snapshot_flush(w);
}

int snapshot_commit(struct snapshot_writer *w)
{
    unsigned char end = SNAPSHOT_END;
    frame(&w->buf, &end, 1);
    snapshot_flush(w);
    int rc = 0;
    if (w->is_failed || w->io->fsync(w->fd) != 0) {
        rc = -1;
        if (!w->is_failed)
            w->saved_errno = errno;
    }
    w->io->close(w->fd);
    char tmp[4096], final[4096];
    snapshot_path(tmp, sizeof tmp, w->dir, w->segment, 1);
    snapshot_path(final, sizeof final, w->dir, w->segment, 0);
    if (rc == 0 && (w->io->rename(tmp, final) != 0 || w->io->fsync_dir(w->dir) != 0)) {
        rc = -1;
        w->saved_errno = errno;
    }
    if (rc != 0)
        w->io->unlink(tmp);
    int saved = w->saved_errno;
    sbuf_release(&w->buf);
    free(w->dir);
    free(w);
    errno = saved;
    return rc;
}

/* ---- recovery ---- */

/* Reads a whole file; NULL with errno on failure. */
static unsigned char *read_file(const struct fileio *io, const char *path, size_t *len, int *fd_out)
{
    int fd = io->open(path, O_RDWR, 0);
    if (fd < 0)
        return NULL;
    off_t size = io->size(fd);
    if (size < 0) {
        io->close(fd);
        return NULL;
    }
    unsigned char *buf = xmalloc((size_t)size + 1);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t r = io->pread(fd, buf + got, (size_t)size - got, (off_t)got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    *len = got;
    *fd_out = fd;
    return buf;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

enum scan_end { SCAN_OK, SCAN_TORN, SCAN_CORRUPT, SCAN_APPLY_FAILED };

/*
 * Walks the frames of one file from its header on, applying each. Stops at
 * the end or at the first bad frame (*bad_at = its offset). is_last says
 * whether a bad tail may be a torn write rather than corruption.
 */
static enum scan_end scan(const unsigned char *buf, size_t len, int is_last, int is_snapshot,
                          journal_apply_fn apply, void *ctx, uint64_t *count, size_t *bad_at,
                          char *why, size_t whylen)
{
    size_t off = JOURNAL_HEADER_SIZE;
    while (off < len) {
        size_t left = len - off;
        *bad_at = off;
        if (left < JOURNAL_FRAME_HEADER) {
            snprintf(why, whylen, "a frame header is cut short");
            return is_last ? SCAN_TORN : SCAN_CORRUPT;
        }
        uint32_t n = get_u32(buf + off), crc = get_u32(buf + off + 4);
        if (n == 0 && is_last && all_zero(buf + off, left)) {
            snprintf(why, whylen, "zeroed space after the last record");
            return SCAN_TORN;
        }
        if (n > JOURNAL_MAX_RECORD || n == 0) {
            snprintf(why, whylen, "a record length of %u is impossible", n);
            return is_last && (size_t)n + JOURNAL_FRAME_HEADER > left ? SCAN_TORN : SCAN_CORRUPT;
        }
        if ((size_t)n + JOURNAL_FRAME_HEADER > left) {
            snprintf(why, whylen, "the last record is cut short");
            return is_last ? SCAN_TORN : SCAN_CORRUPT;
        }
        const unsigned char *payload = buf + off + JOURNAL_FRAME_HEADER;
        if (crc32c(0, payload, n) != crc) {
            snprintf(why, whylen, "checksum mismatch");
            /* Only the very last record of the last segment can be a torn write. */
            return is_last && off + JOURNAL_FRAME_HEADER + n == len ? SCAN_TORN : SCAN_CORRUPT;
        }
        if (is_snapshot && n == 1 && payload[0] == SNAPSHOT_END)
            return off + JOURNAL_FRAME_HEADER + n == len ? SCAN_OK : SCAN_CORRUPT;
        char err[256];
        if (apply(ctx, payload, n, err, sizeof err) != 0) {
            snprintf(why, whylen, "%s", err);
            *bad_at = off;
            return SCAN_APPLY_FAILED;
        }
        (*count)++;
        off += JOURNAL_FRAME_HEADER + n;
    }
    *bad_at = off;
    if (is_snapshot) {
        snprintf(why, whylen, "the snapshot has no end marker");
        return SCAN_CORRUPT;
    }
    return SCAN_OK;
}

static int check_header(const unsigned char *buf, size_t len, const char magic[8])
{
    return len >= JOURNAL_HEADER_SIZE && memcmp(buf, magic, 8) == 0 &&
           get_u32(buf + 8) == JOURNAL_VERSION;
}

int journal_recover(const char *dir, const struct fileio *io, journal_apply_fn apply, void *ctx,
                    int repair, int check_only, struct recovery *out)
{
    crc32c_init();
    memset(out, 0, sizeof *out);
    struct listing l;
    if (list_dir(dir, io, &l) != 0) {
        snprintf(out->message, sizeof out->message, "cannot list %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = -1;
    char path[4096], why[256];
    size_t len, bad_at;
    int fd;
    uint64_t first = l.nsegs ? l.segs[0] : 1;

    if (l.nsnaps) {
        uint64_t snap = l.snaps[l.nsnaps - 1];
        snapshot_path(path, sizeof path, dir, snap, 0);
        unsigned char *buf = read_file(io, path, &len, &fd);
        if (!buf) {
            snprintf(out->message, sizeof out->message, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        io->close(fd);
        enum scan_end end = SCAN_CORRUPT;
        bad_at = 0;
        snprintf(why, sizeof why, "bad header");
        if (check_header(buf, len, snapshot_magic))
            end = scan(buf, len, 0, 1, apply, ctx, &out->snapshot_records, &bad_at, why, sizeof why);
        free(buf);
        if (end != SCAN_OK) {
            snprintf(out->message, sizeof out->message, "corrupt snapshot %s at offset %zu: %s", path,
                     bad_at, why);
            goto done;
        }
        out->snapshot = snap;
        first = snap;
    }
    out->next_segment = first;
    uint64_t expect = first;
    for (size_t i = 0; i < l.nsegs; i++) {
        uint64_t seg = l.segs[i];
        if (seg < first)
            continue; /* covered by the snapshot; pruning may not have run yet */
        segment_path(path, sizeof path, dir, seg);
        if (seg != expect) {
            snprintf(out->message, sizeof out->message,
                     "journal segment %" PRIu64 " is missing (found %s next)", expect, path);
            goto done;
        }
        expect = seg + 1;
        int is_last = i == l.nsegs - 1;
        unsigned char *buf = read_file(io, path, &len, &fd);
        if (!buf) {
            snprintf(out->message, sizeof out->message, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        enum scan_end end;
        if (len < JOURNAL_HEADER_SIZE && is_last) {
            /* Crashed while creating the segment: nothing in it was ever acknowledged.
             * Remove it and reuse its number, so it never ends up in the middle. */
            free(buf);
            io->close(fd);
            if (!check_only && io->unlink(path) != 0) {
                snprintf(out->message, sizeof out->message, "cannot remove %s: %s", path,
                         strerror(errno));
                goto done;
            }
            if (len)
                snprintf(out->message, sizeof out->message,
                         "removed %s: its header was cut short by a crash", path);
            out->next_segment = seg;
            continue;
        } else if (!check_header(buf, len, journal_magic)) {
            end = SCAN_CORRUPT;
            bad_at = 0;
            snprintf(why, sizeof why, "bad segment header");
        } else {
            end = scan(buf, len, is_last, 0, apply, ctx, &out->records, &bad_at, why, sizeof why);
        }
        free(buf);
        out->segments++;
        out->next_segment = seg + 1;
        if (end == SCAN_OK) {
            io->close(fd);
            continue;
        }
        if (end == SCAN_TORN || (end == SCAN_CORRUPT && repair)) {
            snprintf(out->message, sizeof out->message, "%s %s at offset %zu (%s)%s",
                     end == SCAN_TORN ? "cut a torn last record off" : "cut corruption off", path,
                     bad_at, why, end == SCAN_TORN ? "" : "; later segments removed");
            if (end == SCAN_TORN)
                out->truncated = 1;
            else
                out->repaired = 1;
            if (!check_only) {
                if (io->ftruncate(fd, (off_t)bad_at) != 0 || io->fsync(fd) != 0) {
                    snprintf(out->message, sizeof out->message, "cannot truncate %s: %s", path,
                             strerror(errno));
                    io->close(fd);
                    goto done;
                }
            }
            io->close(fd);
            if (end == SCAN_CORRUPT) {
                for (size_t k = i + 1; k < l.nsegs && !check_only; k++) {
                    segment_path(path, sizeof path, dir, l.segs[k]);
                    io->unlink(path);
                }
                rc = 0;
                goto done;
            }
            continue;
        }
        io->close(fd);
        if (end == SCAN_APPLY_FAILED) /* its checksum is right: not damage, an unknown format */
            snprintf(out->message, sizeof out->message,
                     "cannot decode the record in %s at offset %zu: %s (its checksum is right: was "
                     "it written by a newer spoold?)",
                     path, bad_at, why);
        else
            snprintf(out->message, sizeof out->message,
                     "corrupt journal record in %s at offset %zu: %s (run spoold --check --repair "
                     "to cut the journal there, losing what follows)",
                     path, bad_at, why);
        goto done;
    }
    rc = 0;
    /* A snapshot a crash left half-written is never read: remove it. */
    for (size_t i = 0; i < l.ntmps && !check_only; i++) {
        snapshot_path(path, sizeof path, dir, l.tmps[i], 1);
        io->unlink(path);
    }
done:
    free(l.segs);
    free(l.snaps);
    free(l.tmps);
    return rc;
}
