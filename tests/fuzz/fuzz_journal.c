/*
 * fuzz_journal: whole-directory recovery (store/journal.c): snapshot
 * loading, segment replay, torn-tail truncation and corruption reports, over
 * a data directory held in memory by a small fileio table.
 *
 * Input: a sequence of files, each [u8 name length][name][u32 LE data
 * length][data] (seeds: real directories written by the journal and
 * snapshot code, see gen_corpus.c). Recovery runs three times: check-only,
 * then for real (which may cut a torn tail in the fake directory), then
 * again: a directory that recovered once must recover again to the same
 * number of jobs without anything left to cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "store/journal.h"

#define DIR "/mem/data"
#define MAX_FILES 16
#define MAX_OPEN 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct memfile {
    char name[256];
    unsigned char *data;
    size_t len;
    int is_used;
};

static struct memfile files[MAX_FILES];
static int open_fd[MAX_OPEN]; /* file index + 1, or 0 when the descriptor is free */

static const char *base_name(const char *path)
{
    size_t n = strlen(DIR);
    if (strncmp(path, DIR, n) != 0 || path[n] != '/')
        return NULL;
    return path + n + 1;
}

static struct memfile *find(const char *path)
{
    const char *name = base_name(path);
    if (!name)
        return NULL;
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].is_used && strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

static struct memfile *file_of(int fd)
{
    if (fd < 3 || fd >= 3 + MAX_OPEN || !open_fd[fd - 3])
        return NULL;
    return &files[open_fd[fd - 3] - 1];
}

static int mem_open(const char *path, int flags, int mode)
{
    (void)mode;
    struct memfile *f = find(path);
    if (!f && (flags & O_CREAT)) {
        const char *name = base_name(path);
        for (int i = 0; name && i < MAX_FILES && !f; i++)
            if (!files[i].is_used && strlen(name) < sizeof files[i].name) {
                f = &files[i];
                memset(f, 0, sizeof *f);
                f->is_used = 1;
                snprintf(f->name, sizeof f->name, "%s", name);
            }
        if (!f) {
            errno = ENOSPC;
            return -1;
        }
    }
    if (!f) {
        errno = ENOENT;
        return -1;
    }
    if (flags & O_TRUNC)
        f->len = 0;
    for (int i = 0; i < MAX_OPEN; i++)
        if (!open_fd[i]) {
            open_fd[i] = (int)(f - files) + 1;
            return i + 3;
        }
    errno = EMFILE;
    return -1;
}

static ssize_t mem_write(int fd, const void *buf, size_t n)
{
    struct memfile *f = file_of(fd);
    if (!f) {
        errno = EBADF;
        return -1;
    }
    unsigned char *nd = realloc(f->data, f->len + n + 1);
    if (!nd) {
        errno = ENOSPC;
        return -1;
    }
    f->data = nd;
    memcpy(f->data + f->len, buf, n);
    f->len += n;
    return (ssize_t)n;
}

static ssize_t mem_pread(int fd, void *buf, size_t n, off_t off)
{
    struct memfile *f = file_of(fd);
    if (!f || off < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)off >= f->len)
        return 0;
    if (n > f->len - (size_t)off)
        n = f->len - (size_t)off;
    memcpy(buf, f->data + off, n);
    return (ssize_t)n;
}

static int mem_fsync(int fd)
{
    return file_of(fd) ? 0 : (errno = EBADF, -1);
}

static int mem_ftruncate(int fd, off_t len)
{
    struct memfile *f = file_of(fd);
    if (!f || len < 0) {
        errno = EINVAL;
        return -1;
    }
    if ((size_t)len > f->len) { /* growing: zero-fill, as a file system does */
        unsigned char *nd = realloc(f->data, (size_t)len);
        if (!nd)
            return -1;
        memset(nd + f->len, 0, (size_t)len - f->len);
        f->data = nd;
    }
    f->len = (size_t)len;
    return 0;
}

static off_t mem_size(int fd)
{
    struct memfile *f = file_of(fd);
    return f ? (off_t)f->len : (errno = EBADF, -1);
}

static int mem_close(int fd)
{
    if (!file_of(fd)) {
        errno = EBADF;
        return -1;
    }
    open_fd[fd - 3] = 0;
    return 0;
}

static int mem_unlink(const char *path)
{
    struct memfile *f = find(path);
    if (!f) {
        errno = ENOENT;
        return -1;
    }
    free(f->data);
    memset(f, 0, sizeof *f);
    return 0;
}

static int mem_rename(const char *from, const char *to)
{
    struct memfile *f = find(from);
    const char *name = base_name(to);
    if (!f || !name || strlen(name) >= sizeof f->name) {
        errno = ENOENT;
        return -1;
    }
    struct memfile *old = find(to);
    if (old && old != f)
        mem_unlink(to);
    snprintf(f->name, sizeof f->name, "%s", name);
    return 0;
}

static int mem_fsync_dir(const char *dir)
{
    return strcmp(dir, DIR) == 0 ? 0 : (errno = ENOENT, -1);
}

static int mem_list(const char *dir, void (*fn)(void *ctx, const char *name), void *ctx)
{
    if (strcmp(dir, DIR) != 0) {
        errno = ENOENT;
        return -1;
    }
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].is_used)
            fn(ctx, files[i].name);
    return 0;
}

static const struct fileio mem_io = {
    mem_open, mem_write, mem_pread, mem_fsync, mem_ftruncate, mem_size,
    mem_close, mem_rename, mem_unlink, mem_fsync_dir, mem_list,
};

static void reset_files(void)
{
    for (int i = 0; i < MAX_FILES; i++) {
        free(files[i].data);
        memset(&files[i], 0, sizeof files[i]);
    }
    memset(open_fd, 0, sizeof open_fd);
}

/*
 * Splits the input into files. Names with '/' or NUL bytes, and a second
 * file of a name already taken, are skipped: no directory holds those.
 */
static void load_files(const uint8_t *data, size_t size)
{
    size_t off = 0;
    int n = 0;
    while (off < size && n < MAX_FILES) {
        size_t nl = data[off++];
        if (nl == 0 || nl > size - off)
            break;
        const uint8_t *name = data + off;
        off += nl;
        if (size - off < 4)
            break;
        size_t dl = (size_t)data[off] | (size_t)data[off + 1] << 8 | (size_t)data[off + 2] << 16 |
                    (size_t)data[off + 3] << 24;
        off += 4;
        if (dl > size - off)
            dl = size - off;
        char path[512];
        snprintf(path, sizeof path, "%s/%.*s", DIR, (int)nl, (const char *)name);
        if (!memchr(name, '/', nl) && !memchr(name, '\0', nl) && nl < sizeof files[n].name &&
            !find(path)) {
            struct memfile *f = &files[n++];
            f->is_used = 1;
            memcpy(f->name, name, nl);
            f->name[nl] = '\0';
            f->data = malloc(dl ? dl : 1);
            if (f->data)
                memcpy(f->data, data + off, dl);
            f->len = f->data ? dl : 0;
        }
        off += dl;
    }
}

static int apply(void *ctx, const void *rec, size_t len, char *err, size_t errlen)
{
    return engine_apply(ctx, rec, len, err, errlen);
}

static struct engine *new_engine(void)
{
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.seed = 7;
    return engine_new(&ec, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct recovery r; /* large: kept off the stack */
    reset_files();
    load_files(data, size);

    struct engine *e = new_engine();
    journal_recover(DIR, &mem_io, apply, e, 0, 1, &r);
    engine_free(e);

    e = new_engine();
    int rc = journal_recover(DIR, &mem_io, apply, e, 0, 0, &r);
    if (rc != 0 && !r.message[0]) {
        fprintf(stderr, "fuzz_journal: a failed recovery must say why\n");
        abort();
    }
    if (rc == 0) {
        size_t jobs = e->jobs.count;
        struct engine *again = new_engine();
        if (journal_recover(DIR, &mem_io, apply, again, 0, 0, &r) != 0 || r.truncated) {
            fprintf(stderr, "fuzz_journal: a directory that recovered does not recover cleanly "
                            "a second time: %s\n", r.message);
            abort();
        }
        if (again->jobs.count != jobs) {
            fprintf(stderr, "fuzz_journal: the second recovery found %zu jobs, the first %zu\n",
                    again->jobs.count, jobs);
            abort();
        }
        engine_free(again);
    }
    engine_free(e);

    /* Repair mode cuts corruption off; what is left must then recover. */
    e = new_engine();
    if (journal_recover(DIR, &mem_io, apply, e, 1, 0, &r) == 0) {
        struct engine *again = new_engine();
        if (journal_recover(DIR, &mem_io, apply, again, 0, 0, &r) != 0) {
            fprintf(stderr, "fuzz_journal: a repaired directory does not recover: %s\n", r.message);
            abort();
        }
        engine_free(again);
    }
    engine_free(e);
    reset_files();
    return 0;
}
