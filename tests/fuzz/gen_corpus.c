/*
 * gen_corpus: writes the binary seed corpora of the record and journal fuzz
 * targets from the real code: it drives an engine through every kind of
 * change with a fixed clock, keeps the records the engine emits, writes them
 * through the real journal and snapshot writer into a temporary data
 * directory, and packs that directory in fuzz_journal's input format.
 *
 *   fuzz_gen_corpus OUTDIR     writes the files of OUTDIR/record and OUTDIR/journal
 *
 * Run it again after a change to the record or journal format and commit
 * the new seeds (docs/fuzzing.md).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "store/journal.h"

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define S INT64_C(1000000000)

static struct sbuf records; /* every record: u16 LE length, bytes */
static size_t nrecords;
static const char *outdir;

static void on_record(void *ctx, const void *rec, size_t len)
{
    unsigned char h[2] = {(unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    if (len > 0xffff) {
        fprintf(stderr, "gen_corpus: a record of %zu bytes does not fit the u16 framing\n", len);
        exit(1);
    }
    sbuf_add(&records, h, 2);
    sbuf_add(&records, rec, len);
    nrecords++;
}

static void write_file(const char *sub, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void push(struct engine *e, const char *json, int64_t now)
{
    struct job *job;
    char err[JOB_ERR_MAX];
    if (job_parse(json, strlen(json), now, &job, err) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", json, err);
        exit(1);
    }
    if (engine_push(e, job, now) != 0)
        job_free(job);
}

static void fetch(struct engine *e, const char *queue, const char *wid, int64_t now)
{
    const char *q[] = {queue};
    engine_fetch(e, q, 1, wid, now);
}

/* Every kind of change, in an order that leaves jobs in every state. */
static void drive(struct engine *e)
{
    int64_t t = T0;
    struct worker_hello wh = {.wid = "w-gen-1", .hostname = "box", .labels = "[\"a\"]", .v = "2", .pid = 7};
    engine_worker_attach(e, &wh, t);
    push(e, "{\"jid\":\"ack0000000000001\",\"jobtype\":\"Email\",\"args\":[1,\"a\"]}", t);
    push(e, "{\"jid\":\"fail000000000001\",\"jobtype\":\"Report\",\"args\":[],\"retry\":2,"
            "\"queue\":\"critical\",\"custom\":{\"tenant\":\"acme\"}}", t);
    push(e, "{\"jid\":\"dead000000000001\",\"jobtype\":\"X\",\"args\":[],\"retry\":-1}", t);
    push(e, "{\"jid\":\"disc000000000001\",\"jobtype\":\"X\",\"args\":[],\"retry\":0}", t);
    push(e, "{\"jid\":\"sched00000000001\",\"jobtype\":\"Later\",\"args\":[],"
            "\"at\":\"2026-01-01T00:10:00Z\"}", t);
    push(e, "{\"jid\":\"uniq000000000001\",\"jobtype\":\"Sync\",\"args\":[42],"
            "\"custom\":{\"unique_for\":3600}}", t);
    push(e, "{\"jid\":\"expi000000000001\",\"jobtype\":\"Flash\",\"args\":[],"
            "\"custom\":{\"expires_at\":\"2026-01-01T00:00:05Z\"}}", t);
    push(e, "{\"jid\":\"work000000000001\",\"jobtype\":\"Long\",\"args\":[],\"queue\":\"slow\","
            "\"reserve_for\":60}", t);
    push(e, "{\"jid\":\"paus000000000001\",\"jobtype\":\"P\",\"args\":[],\"queue\":\"paused\"}", t);
    fetch(e, "default", "w-gen-1", t + S);
    engine_track_set(e, "ack0000000000001", 50, "half way", t + 120 * S, t + S);
    engine_ack(e, "ack0000000000001", t + 2 * S);
    fetch(e, "critical", "w-gen-1", t + 2 * S);
    engine_fail(e, "fail000000000001", "RuntimeError", "boom", "[\"a.rb:1\",\"b.rb:2\"]", t + 3 * S);
    fetch(e, "default", "", t + 3 * S);
    engine_fail(e, "dead000000000001", "E", "to the dead set", NULL, t + 3 * S);
    fetch(e, "default", "", t + 3 * S);
    engine_fail(e, "disc000000000001", "E", "discarded", NULL, t + 3 * S);
    fetch(e, "slow", "w-gen-1", t + 4 * S);
    engine_queue_pause(e, "paused");
    engine_queue_pause(e, "gone");
    engine_queue_remove(e, "gone");
    engine_tick(e, t + 10 * S); /* expires expi..., nothing else due yet */
    engine_cron_mark(e, "nightly", t);
    push(e, "{\"jid\":\"kill000000000001\",\"jobtype\":\"K\",\"args\":[],"
            "\"at\":\"2026-01-02T00:00:00Z\"}", t + 10 * S);
    struct mutate_filter f = {.jobtype = "K"};
    engine_mutate(e, MUTATE_KILL, TARGET_SCHEDULED, &f, t + 11 * S);
    engine_tick(e, t + 100 * S); /* the working job's reservation runs out */
    engine_queue_resume(e, "paused", t + 101 * S);
}

static void no_notify(void *ctx)
{
    (void)ctx; /* journal_close waits for the writer itself */
}

struct dump {
    struct sbuf framed;   /* u16 framing, for fuzz_record */
    struct snapshot_writer *w;
};

static void on_dump(void *ctx, const void *rec, size_t len)
{
    struct dump *d = ctx;
    unsigned char h[2] = {(unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    sbuf_add(&d->framed, h, 2);
    sbuf_add(&d->framed, rec, len);
    if (d->w)
        snapshot_add(d->w, rec, len);
}

/* Packs the files of dir (optionally changed by edit) into fuzz_journal's format. */
static void pack(const char *dir, const char *name, void (*edit)(const char *file, struct sbuf *data))
{
    struct sbuf out;
    sbuf_init(&out);
    DIR *d = opendir(dir);
    struct dirent *de;
    char *names[32];
    int n = 0;
    while (d && (de = readdir(d)) && n < 32)
        if (de->d_name[0] != '.')
            names[n++] = strdup(de->d_name);
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++) {
        for (int k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) {
                char *x = names[i];
                names[i] = names[k];
                names[k] = x;
            }
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        struct sbuf data;
        sbuf_init(&data);
        char buf[65536];
        size_t r;
        while (f && (r = fread(buf, 1, sizeof buf, f)) > 0)
            sbuf_add(&data, buf, r);
        if (f)
            fclose(f);
        if (edit)
            edit(names[i], &data);
        unsigned char nl = (unsigned char)strlen(names[i]);
        uint32_t dl = (uint32_t)data.len;
        unsigned char le[4] = {(unsigned char)dl, (unsigned char)(dl >> 8), (unsigned char)(dl >> 16),
                               (unsigned char)(dl >> 24)};
        sbuf_add(&out, &nl, 1);
        sbuf_add(&out, names[i], nl);
        sbuf_add(&out, le, 4);
        sbuf_add(&out, data.buf, data.len);
        sbuf_release(&data);
        free(names[i]);
    }
    write_file("journal", name, out.buf, out.len);
    sbuf_release(&out);
}

static void edit_torn(const char *file, struct sbuf *data)
{
    if (strncmp(file, "journal-", 8) == 0 && data->len > JOURNAL_HEADER_SIZE + 5)
        data->len -= 5; /* a write cut short by a crash */
}

static void edit_corrupt(const char *file, struct sbuf *data)
{
    if (strncmp(file, "journal-", 8) == 0 && data->len > 200)
        data->buf[data->len / 2] ^= 0x40; /* a flipped bit in the middle */
}

static void append_all(struct journal *j, const struct sbuf *framed)
{
    size_t off = 0;
    while (off + 2 <= framed->len) {
        const unsigned char *p = (const unsigned char *)framed->buf + off;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8;
        journal_append(j, p + 2, len);
        off += 2 + len;
    }
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    sbuf_init(&records);
    struct engine_config ec;
    engine_config_defaults(&ec);
    ec.seed = 7;
    struct engine_hooks hooks = {.record = on_record};
    struct engine *e = engine_new(&ec, &hooks);
    drive(e);

    /* record/: every record alone, the whole stream, and a dump (snapshot content). */
    size_t off = 0;
    for (size_t i = 0; off + 2 <= records.len; i++) {
        const unsigned char *p = (const unsigned char *)records.buf + off;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8;
        char name[64];
        snprintf(name, sizeof name, "rec-%02zu-type%u", i, (unsigned)p[2]);
        write_file("record", name, p, len + 2);
        off += 2 + len;
    }
    write_file("record", "stream", records.buf, records.len);
    struct dump d = {{0}, NULL};
    sbuf_init(&d.framed);
    engine_dump(e, on_dump, &d);
    write_file("record", "dump", d.framed.buf, d.framed.len);

    /* journal/: real data directories. */
    char dir[] = "/tmp/spool-gen-corpus-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char err[256];
    struct journal *j = journal_open(dir, 1, FSYNC_NEVER, 64u << 20, &fileio_posix, no_notify, NULL, err,
                                     sizeof err);
    if (!j) {
        fprintf(stderr, "gen_corpus: %s\n", err);
        return 1;
    }
    append_all(j, &records);
    journal_close(j);
    pack(dir, "segment", NULL);
    pack(dir, "segment-torn", edit_torn);
    pack(dir, "segment-corrupt", edit_corrupt);

    /* A snapshot covering segment 1, then segment 2 with more changes. */
    d.w = snapshot_begin(dir, 2, &fileio_posix);
    sbuf_release(&d.framed);
    sbuf_init(&d.framed);
    engine_dump(e, on_dump, &d);
    if (!d.w || snapshot_commit(d.w) != 0) {
        fprintf(stderr, "gen_corpus: cannot write the snapshot: %s\n", strerror(errno));
        return 1;
    }
    size_t before = records.len;
    engine_flush(e);
    push(e, "{\"jid\":\"aftr000000000001\",\"jobtype\":\"After\",\"args\":[]}", T0 + 200 * S);
    j = journal_open(dir, 2, FSYNC_NEVER, 64u << 20, &fileio_posix, no_notify, NULL, err, sizeof err);
    struct sbuf tail = {0};
    sbuf_init(&tail);
    sbuf_add(&tail, records.buf + before, records.len - before);
    append_all(j, &tail);
    journal_close(j);
    pack(dir, "snapshot-and-segments", NULL);
    journal_prune(dir, &fileio_posix, 2);
    pack(dir, "snapshot-pruned", NULL);
    /* A snapshot a crash left half-written beside the good one. */
    struct snapshot_writer *w = snapshot_begin(dir, 3, &fileio_posix);
    snapshot_add(w, "\x06", 1);
    pack(dir, "snapshot-tmp-left", NULL);
    snapshot_commit(w);

    clear_dir(dir);
    rmdir(dir);
    sbuf_release(&tail);
    sbuf_release(&d.framed);
    sbuf_release(&records);
    engine_free(e);
    printf("gen_corpus: %zu records written to %s/record and %s/journal\n", nrecords, outdir, outdir);
    return 0;
}
