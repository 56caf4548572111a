/* Pushes one job: ./producer [jobtype] [args-json]. Uses SPOOL_URL. */
#include <spool/spool.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    spool_client *c;
    int rc = spool_client_connect(NULL, &c);
    if (rc) {
        fprintf(stderr, "connect: %s\n", spool_client_error(NULL));
        return 1;
    }
    spool_job *job = spool_job_new(argc > 1 ? argv[1] : "hello");
    spool_job_set_args(job, argc > 2 ? argv[2] : "[\"world\"]");
    rc = spool_push(c, job);
    if (rc)
        fprintf(stderr, "push: %s\n", spool_client_error(c));
    else
        printf("pushed %s\n", spool_job_jid(job));
    spool_job_free(job);
    spool_client_free(c);
    return rc ? 1 : 0;
}
