/*
 * fuzz_client: libspool's reply parsing (src/client): the +HI greeting and
 * handshake, RESP lines, bulk strings, and what the producer and worker
 * calls make of the replies (jobs from FETCH, PUSHB's error map, BEAT's
 * state, INFO, queue latency). The input is everything a server sends on
 * one connection; a thread plays that server on a loopback port, the client
 * side is the public API connecting to it as to spoold.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spool/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listen_fd = -1;
static int port;

struct serve {
    const uint8_t *data;
    size_t size;
};

/* The fake server: send the input, stop sending, read until the client is gone. */
static void *serve_one(void *arg)
{
    struct serve *s = arg;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t off = 0;
    while (off < s->size) {
        ssize_t n = send(fd, s->data + off, s->size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    return NULL;
}

static void start_listener(void)
{
    signal(SIGPIPE, SIG_IGN);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 4) != 0 || getsockname(listen_fd, (struct sockaddr *)&a, &al) != 0) {
        perror("fuzz_client: cannot listen on loopback");
        abort();
    }
    port = ntohs(a.sin_port);
}

static void exercise(spool_client *c)
{
    char *s = NULL;
    spool_info(c, &s);
    spool_free(s);

    spool_job *job = NULL;
    const char *const queues[] = {"critical", "default"};
    if (spool_fetch(c, queues, 2, &job) == 0 && job) {
        const char *str;
        int64_t i64;
        double d;
        spool_job_args(job);
        spool_job_custom(job, "unique_for");
        spool_job_custom_json(job);
        spool_job_arg_string(job, 0, &str);
        spool_job_arg_int(job, 1, &i64);
        spool_job_arg_double(job, 2, &d);
        spool_job_retry_count(job);
        const char *jid = spool_job_jid(job);
        if (jid)
            spool_ack(c, jid);
        spool_job_free(job);
    }

    spool_push_json(c, "{\"jid\":\"fuzzjob00001\",\"jobtype\":\"t\",\"args\":[1]}");
    spool_job *jobs[2] = {spool_job_new("a"), spool_job_new("b")};
    char *errs[2];
    if (jobs[0] && jobs[1] && spool_job_set_jid(jobs[0], "fuzzjob00002") == 0 &&
        spool_job_set_jid(jobs[1], "fuzzjob00003") == 0 &&
        spool_push_many(c, jobs, 2, errs) > 0) {
        spool_free(errs[0]);
        spool_free(errs[1]);
    }
    spool_job_free(jobs[0]);
    spool_job_free(jobs[1]);

    enum spool_state st;
    spool_beat(c, SPOOL_STATE_RUNNING, 1000, &st);
    s = NULL;
    if (spool_queue_latency(c, queues, 2, &s) == 0)
        spool_free(s);
    s = NULL;
    if (spool_command(c, "CRON", &s) == 0)
        spool_free(s);
    spool_fail(c, "fuzzjob00001", "E", "m", NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (listen_fd < 0)
        start_listener();
    struct serve s = {data, size};
    pthread_t th;
    if (pthread_create(&th, NULL, serve_one, &s) != 0)
        abort();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    spool_client_options o = {.url = url, .wid = "fuzzwid0001", .timeout_ms = 5000};
    spool_client *c = NULL;
    if (spool_client_connect_opts(&o, &c) == 0) {
        exercise(c);
        spool_client_error(c);
        spool_client_free(c);
    }
    pthread_join(th, NULL);
    return 0;
}
