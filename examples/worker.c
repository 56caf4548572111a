/* Runs "hello" jobs until SIGTERM/SIGINT (SIGTSTP: quiet). Uses SPOOL_URL. */
#include <spool/spool.h>
#include <stdio.h>

static int hello(spool_ctx *ctx, const spool_job *job, void *ud)
{
    printf("hello %s\n", spool_job_args(job));
    return 0;
}

int main(void)
{
    spool_worker *w;
    spool_worker_config cfg = {.concurrency = 4};
    if (spool_worker_new(&cfg, &w) != 0) {
        fprintf(stderr, "worker: %s\n", spool_client_error(NULL));
        return 1;
    }
    spool_worker_register(w, "hello", hello, NULL);
    spool_worker_install_signals(w);
    int rc = spool_worker_run(w);
    spool_worker_free(w);
    return rc ? 1 : 0;
}
