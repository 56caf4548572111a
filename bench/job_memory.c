/*
 * job_memory: the heap a queued job costs in the embedded engine, without a
 * server, sockets or journal around it (bench/README.md, "Memory per queued
 * job").
 *
 * Pushes N jobs shaped like `spool bench`'s (24-character jid, jobtype
 * "bench", args [timestamp, payload string]) into a fresh engine and reads
 * glibc's own count of the bytes in use (mallinfo2: allocated chunks with
 * their headers, plus mmap'd blocks such as the jid map's table) before and
 * after. The difference over N is what each job holds on the heap: its one
 * allocation, the index slots pointing at it and malloc's rounding. The
 * JSON text each job is parsed from is freed before the next is built, so
 * it does not count. Deterministic: the same build gives the same numbers.
 *
 *   build/bin/job_memory [JOBS [PAYLOAD]]    (defaults 200000 and 100)
 */
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "engine/engine.h"
#include "engine/job.h"

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int parse_count(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long n = 200000, payload = 100;
    if (argc > 3 || (argc > 1 && parse_count(argv[1], 1, 50000000, &n) != 0) ||
        (argc > 2 && parse_count(argv[2], 0, 1000000, &payload) != 0)) {
        fprintf(stderr, "usage: job_memory [JOBS (1..50000000) [PAYLOAD BYTES (0..1000000)]]\n");
        return 2;
    }
    char *pad = malloc((size_t)payload + 1);
    if (!pad)
        return 1;
    memset(pad, 'x', (size_t)payload);
    pad[payload] = '\0';

    const int64_t now_ns = INT64_C(1800000000) * 1000000000;
    struct engine_config cfg;
    engine_config_defaults(&cfg);
    struct engine *e = engine_new(&cfg, NULL);
    struct sbuf json;
    sbuf_init(&json);
    char err[JOB_ERR_MAX];
    size_t json_total = 0, strings_total = 0, chunk_total = 0;

    /* The first push creates the queue and sizes the first tables: not part of a job's cost. */
    sbuf_addf(&json, "{\"jid\":\"warmup-job-000000000000\",\"jobtype\":\"bench\","
                     "\"queue\":\"bench\",\"args\":[]}");
    struct job *job;
    if (job_parse(json.buf, json.len, now_ns, &job, err) != 0 || engine_push(e, job, now_ns) != 0) {
        fprintf(stderr, "job_memory: warm-up push refused: %s\n", err);
        return 1;
    }
    sbuf_reset(&json);
    size_t heap0 = heap_in_use();

    for (long i = 0; i < n; i++) {
        sbuf_reset(&json);
        sbuf_addf(&json,
                  "{\"jid\":\"b3nchrun01%04x%010lx\",\"jobtype\":\"bench\",\"queue\":\"bench\","
                  "\"retry\":0,\"args\":[%lld,\"%s\"]}",
                  0, (unsigned long)i, (long long)(now_ns + i), pad);
        json_total += json.len;
        if (job_parse(json.buf, json.len, now_ns, &job, err) != 0) {
            fprintf(stderr, "job_memory: job %ld refused: %s\n", i, err);
            return 1;
        }
        strings_total += strlen(job->jid) + strlen(job->jobtype) + strlen(job->queue) +
                         strlen(job->created_at) + job->body_len + 5;
        /* glibc's chunk: the usable size plus its one size word. */
        chunk_total += malloc_usable_size(job) + sizeof(size_t);
        int rc = engine_push(e, job, now_ns);
        if (rc != 0) {
            fprintf(stderr, "job_memory: push %ld: %s\n", i, engine_strerror(rc));
            return 1;
        }
    }
    size_t heap1 = heap_in_use();
    sbuf_release(&json);

    double per_job = (double)(heap1 - heap0) / (double)n;
    double json_per_job = (double)json_total / (double)n;
    double chunk_per_job = (double)chunk_total / (double)n;
    printf("struct job %zu bytes, struct job_extra %zu bytes (only for jobs that use it)\n",
           sizeof(struct job), sizeof(struct job_extra));
    printf("%ld jobs of %.0f bytes of JSON: heap %.1f MB, %.1f bytes/job, %.1f beyond the JSON\n",
           n, json_per_job, (double)(heap1 - heap0) / 1048576.0, per_job, per_job - json_per_job);
    printf("of which: the job's one allocation %.1f (struct %zu + strings %.1f + malloc's header\n"
           "and rounding %.1f), the rest (jid map slots, extras) %.1f\n",
           chunk_per_job, sizeof(struct job), (double)strings_total / (double)n,
           chunk_per_job - (double)strings_total / (double)n - (double)sizeof(struct job),
           per_job - chunk_per_job);
    printf("counted by --max-memory: %.1f bytes/job\n", (double)e->job_bytes / (double)(n + 1));
    engine_free(e);
    free(pad);
    return 0;
}
