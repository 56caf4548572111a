/*
 * fuzz_job: job JSON validation (engine/job.c). The input is the argument
 * of a PUSH. A job that validates must render (job_render, what FETCH sends)
 * to JSON that validates again to the same jid, jobtype and queue: what the
 * server hands a worker is a job it would accept back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "engine/job.h"

#define NOW_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z: a fixed clock */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[JOB_ERR_MAX];
    struct job *job = NULL;
    job_json_has_nul((const char *)data, size);
    if (job_parse((const char *)data, size, NOW_NS, &job, err) != 0) {
        if (!memchr(err, '\0', sizeof err) || !err[0]) {
            fprintf(stderr, "fuzz_job: a refused job must come with a message\n");
            abort();
        }
        return 0;
    }
    struct sbuf b;
    sbuf_init(&b);
    job_render(job, &b);
    struct job *again = NULL;
    if (job_parse(b.buf, b.len, NOW_NS, &again, err) != 0) {
        fprintf(stderr, "fuzz_job: a rendered job does not validate again: %s\n%.*s\n", err,
                (int)b.len, b.buf);
        abort();
    }
    if (strcmp(job->jid, again->jid) != 0 || strcmp(job->jobtype, again->jobtype) != 0 ||
        strcmp(job->queue, again->queue) != 0) {
        fprintf(stderr, "fuzz_job: rendering changed the jid, jobtype or queue\n");
        abort();
    }
    job_free(again);
    sbuf_release(&b);
    job_free(job);
    return 0;
}
