/*
 * spool bench: a load generator over libspool (docs/cli.md, bench/README.md).
 *
 * Three phases on fresh queues, each bounded by the job count and by one
 * overall --duration deadline:
 *   fill   producers push --jobs jobs, nobody consumes: push/s, and the
 *          server's RSS growth over the queued jobs (bytes per job);
 *   drain  consumers fetch and acknowledge them all: process/s;
 *   mixed  producers and consumers together (paced by --rate when given):
 *          end-to-end latency from the push call to the moment a consumer
 *          holds the job, taken from a monotonic timestamp in args[0].
 * --batch 0 is plain FWP (PUSH, FETCH, ACK: one job per round trip); N > 0
 * uses PUSHB, FETCHN and ACKN (FETCH and ACK one by one on a server that
 * does not offer the batch verbs). Every connection has one command in
 * flight.
 *
 * Threads: one per producer and per consumer, each with its own connection;
 * they share only atomics and a mutex-guarded first error. The main thread
 * holds a control connection for INFO and the final QUEUE REMOVE.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/sbuf.h"
#include "common/xalloc.h"

#define BENCH_MAX_THREADS 256
#define BENCH_MAX_QUEUES 64

static const char bench_description[] =
    "Measures a server: push/s, process/s, end-to-end latency (push call to\n"
    "consumer) at p50/p99/p99.9, and the server's RSS per queued job. Runs\n"
    "three phases on fresh queues (removed at the end): fill (push all jobs,\n"
    "no consumers), drain (consume them all), mixed (push and consume at once,\n"
    "paced by --rate when given; the latency comes from this phase). Stops by\n"
    "itself after --jobs jobs per phase or --duration, whichever comes first.\n"
    "--batch 0 is plain FWP, one job per PUSH/FETCH/ACK; N uses PUSHB, FETCHN\n"
    "and ACKN of N jobs. Run it against an otherwise idle server: RSS and\n"
    "rates include whatever else the server does. The password goes in the\n"
    "URL: --url tcp://:PASSWORD@HOST:PORT.";

struct bench {
    const char *url;
    const char *tls_ca; /* --tls-ca, for every thread's connection */
    int producers, consumers, nqueues;
    int64_t jobs, mixed_jobs, payload, push_batch, fetch_batch, rate, duration_s;
    char queue_names[BENCH_MAX_QUEUES][32];
    const char *queues[BENCH_MAX_QUEUES];
    char *pad;      /* the payload string, payload bytes of 'x' */
    char run_id[9]; /* makes this run's jids and queue names unique */
    int64_t deadline_ns;

    /* The running phase. */
    int phase;
    int is_paced;
    int want_latency;
    int64_t target;          /* jobs this phase pushes */
    atomic_llong pushed;     /* jobs the server confirmed */
    atomic_llong processed;  /* jobs acknowledged */
    atomic_int is_stopping;  /* an error or the deadline: everyone leaves */
    atomic_int producers_done;
    pthread_mutex_t lock;
    char err[512]; /* first error, "" if none */
    int err_exit;
};

struct thread_state {
    struct bench *b;
    int idx;
    pthread_t tid;
    int64_t *lat_ns;
    size_t nlat, lat_cap;
    int64_t last_ns; /* when this thread finished its last unit of work */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void bench_error(struct bench *b, int rc, const char *what, const spool_client *c)
{
    pthread_mutex_lock(&b->lock);
    if (!b->err[0]) {
        snprintf(b->err, sizeof b->err, "%s: %s", what,
                 c && spool_client_error(c)[0] ? spool_client_error(c) : spool_strerror(rc));
        b->err_exit = cli_exit_for(rc);
    }
    pthread_mutex_unlock(&b->lock);
    atomic_store(&b->is_stopping, 1);
}

static int should_stop(struct bench *b)
{
    if (atomic_load(&b->is_stopping))
        return 1;
    if (mono_ns() >= b->deadline_ns) {
        atomic_store(&b->is_stopping, 1);
        return 1;
    }
    return 0;
}

static spool_client *bench_connect(struct bench *b)
{
    spool_client *c = NULL;
    spool_client_options o = {.url = b->url, .tls_ca_file = b->tls_ca, .timeout_ms = 15000};
    int rc = spool_client_connect_opts(&o, &c);
    if (rc) {
        pthread_mutex_lock(&b->lock);
        if (!b->err[0]) {
            snprintf(b->err, sizeof b->err, "connect: %s", spool_client_error(NULL));
            b->err_exit = cli_exit_for(rc);
        }
        pthread_mutex_unlock(&b->lock);
        atomic_store(&b->is_stopping, 1);
    }
    return c;
}

/* Appends one job's JSON: args[0] is the push time on the monotonic clock. */
static void add_job(struct bench *b, struct sbuf *s, int producer, int64_t seq, int64_t ts)
{
    sbuf_addf(s,
              "{\"jid\":\"%s%02x%04x%010llx\",\"jobtype\":\"bench\",\"queue\":\"%s\",\"retry\":0,"
              "\"args\":[%lld,\"%s\"]}",
              b->run_id, b->phase & 0xff, producer & 0xffff, (unsigned long long)seq,
              b->queues[seq % b->nqueues], (long long)ts, b->pad);
}

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *producer_main(void *arg)
{
    struct thread_state *t = arg;
    struct bench *b = t->b;
    spool_client *c = bench_connect(b);
    int64_t share = b->target / b->producers + (t->idx < b->target % b->producers ? 1 : 0);
    /* Paced producers push one job per PUSH; together they make --rate jobs/s. */
    int64_t batch = b->is_paced ? 0 : b->push_batch;
    int64_t interval_ns = b->is_paced ? (int64_t)(1e9 * b->producers / (double)b->rate) : 0;
    int64_t start = mono_ns();
    struct sbuf line;
    sbuf_init(&line);
    int64_t seq = (int64_t)t->idx * 4000000000LL; /* unique per producer within the phase */
    for (int64_t done = 0; c && done < share && !should_stop(b);) {
        if (interval_ns)
            sleep_until(start + done * interval_ns);
        sbuf_reset(&line);
        int64_t n = batch > 0 ? (share - done < batch ? share - done : batch) : 1;
        int64_t now = mono_ns();
        if (batch > 0) {
            sbuf_adds(&line, "PUSHB [");
            for (int64_t k = 0; k < n; k++) {
                if (k)
                    sbuf_add(&line, ",", 1);
                add_job(b, &line, t->idx, seq++, now);
            }
            sbuf_add(&line, "]", 1);
        } else {
            sbuf_adds(&line, "PUSH ");
            add_job(b, &line, t->idx, seq++, now);
        }
        char *reply = NULL;
        int rc = spool_command(c, line.buf, &reply);
        if (rc == 0 && batch > 0 && (!reply || strcmp(reply, "{}") != 0)) {
            pthread_mutex_lock(&b->lock);
            if (!b->err[0]) {
                snprintf(b->err, sizeof b->err, "PUSHB refused jobs: %.400s", reply ? reply : "(null)");
                b->err_exit = CLI_REFUSED;
            }
            pthread_mutex_unlock(&b->lock);
            atomic_store(&b->is_stopping, 1);
            spool_free(reply);
            break;
        }
        spool_free(reply);
        if (rc) {
            bench_error(b, rc, batch > 0 ? "PUSHB" : "PUSH", c);
            break;
        }
        done += n;
        atomic_fetch_add(&b->pushed, n);
    }
    t->last_ns = mono_ns();
    atomic_fetch_add(&b->producers_done, 1);
    sbuf_release(&line);
    spool_client_free(c);
    return NULL;
}

static void record_latency(struct thread_state *t, int64_t ns)
{
    if (t->nlat == t->lat_cap) {
        t->lat_cap = t->lat_cap ? t->lat_cap * 2 : 4096;
        t->lat_ns = xrealloc(t->lat_ns, t->lat_cap * sizeof *t->lat_ns);
    }
    t->lat_ns[t->nlat++] = ns;
}

/* Whether every job this phase will push has been acknowledged. */
static int all_processed(struct bench *b)
{
    int64_t done = atomic_load(&b->processed);
    if (atomic_load(&b->producers_done) == b->producers || b->producers == 0)
        return done >= atomic_load(&b->pushed);
    return done >= b->target;
}

static void *consumer_main(void *arg)
{
    struct thread_state *t = arg;
    struct bench *b = t->b;
    spool_client *c = bench_connect(b);
    size_t max = b->fetch_batch > 0 ? (size_t)b->fetch_batch : 1;
    spool_job **jobs = xcalloc(max, sizeof *jobs);
    const char **jids = xcalloc(max, sizeof *jids);
    while (c && !all_processed(b) && !should_stop(b)) {
        int n;
        int rc = 0;
        if (b->fetch_batch > 0) {
            n = spool_fetch_many(c, b->queues, (size_t)b->nqueues, jobs, max);
            rc = n < 0 ? n : 0;
        } else {
            rc = spool_fetch(c, b->queues, (size_t)b->nqueues, &jobs[0]);
            n = rc == 0 && jobs[0] ? 1 : 0;
        }
        if (rc) {
            bench_error(b, rc, b->fetch_batch > 0 ? "FETCHN" : "FETCH", c);
            break;
        }
        int64_t now = mono_ns();
        for (int i = 0; i < n; i++) {
            int64_t ts;
            if (b->want_latency && spool_job_arg_int(jobs[i], 0, &ts) == 0)
                record_latency(t, now - ts);
            jids[i] = spool_job_jid(jobs[i]);
        }
        if (n > 0) {
            if (b->fetch_batch > 0) {
                rc = spool_ack_many(c, jids, (size_t)n);
            } else {
                rc = spool_ack(c, jids[0]);
            }
        }
        for (int i = 0; i < n; i++) {
            spool_job_free(jobs[i]);
            jobs[i] = NULL;
        }
        if (rc) {
            bench_error(b, rc, b->fetch_batch > 0 ? "ACKN" : "ACK", c);
            break;
        }
        if (n > 0) {
            atomic_fetch_add(&b->processed, n);
            t->last_ns = mono_ns();
        }
    }
    free(jobs);
    free(jids);
    spool_client_free(c);
    return NULL;
}

struct phase_result {
    int64_t pushed, processed;
    double push_s, process_s; /* from the phase start to the last push / last ack */
};

/* Runs one phase with the given thread counts; fills r and merges latencies into lat. */
static void run_phase(struct bench *b, int phase, int nprod, int ncons, int64_t target,
                      struct phase_result *r, int64_t **lat, size_t *nlat)
{
    b->phase = phase;
    b->target = target;
    /* A phase without producers consumes what an earlier phase pushed. */
    atomic_store(&b->pushed, nprod ? 0 : target);
    atomic_store(&b->processed, 0);
    atomic_store(&b->producers_done, 0);
    int saved_producers = b->producers;
    b->producers = nprod;
    struct thread_state *ts = xcalloc((size_t)(nprod + ncons), sizeof *ts);
    int64_t start = mono_ns();
    for (int i = 0; i < nprod + ncons; i++) {
        ts[i].b = b;
        ts[i].idx = i < nprod ? i : i - nprod;
        ts[i].last_ns = start;
        if (pthread_create(&ts[i].tid, NULL, i < nprod ? producer_main : consumer_main, &ts[i]) != 0) {
            fprintf(stderr, "spool bench: cannot start a thread\n");
            exit(CLI_REFUSED);
        }
    }
    int64_t last_push = start, last_ack = start;
    for (int i = 0; i < nprod + ncons; i++) {
        pthread_join(ts[i].tid, NULL);
        if (i < nprod && ts[i].last_ns > last_push)
            last_push = ts[i].last_ns;
        if (i >= nprod && ts[i].last_ns > last_ack)
            last_ack = ts[i].last_ns;
        if (lat && ts[i].nlat) {
            *lat = xrealloc(*lat, (*nlat + ts[i].nlat) * sizeof **lat);
            memcpy(*lat + *nlat, ts[i].lat_ns, ts[i].nlat * sizeof **lat);
            *nlat += ts[i].nlat;
        }
        free(ts[i].lat_ns);
    }
    free(ts);
    b->producers = saved_producers;
    r->pushed = atomic_load(&b->pushed);
    r->processed = atomic_load(&b->processed);
    r->push_s = (double)(last_push - start) / 1e9;
    r->process_s = (double)(last_ack - start) / 1e9;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const int64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t k = (size_t)ceil(q * (double)n);
    k = k == 0 ? 0 : k - 1;
    return (double)v[k < n ? k : n - 1] / 1e6;
}

/* The server's RSS in bytes from INFO (server.rss_bytes, else used_memory_mb). */
static double server_rss(struct cli *cli, int *rc)
{
    cJSON *info = cli_info(cli, rc);
    if (!info)
        return -1;
    double v = cli_json_number(info, "server", "rss_bytes", NULL);
    if (v <= 0)
        v = cli_json_number(info, "server", "used_memory_mb", NULL) * 1024 * 1024;
    cJSON_Delete(info);
    return v;
}

static double per_s(int64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static int parse_count(struct cli *cli, const char *name, const char *s, int64_t min, int64_t max,
                       int64_t *out)
{
    if (!s)
        return 0;
    if (cli_parse_int(s, min, max, out) != 0)
        return cli_usage(cli, "--%s takes a whole number from %lld to %lld, not '%s'", name,
                         (long long)min, (long long)max, s);
    return 0;
}

int cmd_bench(struct cli *cli, int argc, char **argv)
{
    const char *producers_s = NULL, *consumers_s = NULL, *jobs_s = NULL, *payload_s = NULL;
    const char *batch_s = NULL, *push_batch_s = NULL, *fetch_batch_s = NULL, *queues_s = NULL;
    const char *rate_s = NULL, *duration_s = NULL, *mixed_jobs_s = NULL;
    int is_fill_only = 0;
    const struct opt_spec specs[] = {
        {"producers", 'p', OPT_STRING, "N", "producer threads, one connection each (default 1)", NULL,
         &producers_s, NULL},
        {"consumers", 'c', OPT_STRING, "N", "consumer threads, one connection each (default 1)", NULL,
         &consumers_s, NULL},
        {"jobs", 'n', OPT_STRING, "N", "jobs per phase (default 10000)", NULL, &jobs_s, NULL},
        {"mixed-jobs", 0, OPT_STRING, "N", "jobs in the mixed (latency) phase; 0 skips it (default: --jobs)",
         NULL, &mixed_jobs_s, NULL},
        {"payload", 0, OPT_STRING, "BYTES", "bytes of the string in each job's args (default 100)", NULL,
         &payload_s, NULL},
        {"batch", 'b', OPT_STRING, "N",
         "jobs per PUSHB, FETCHN and ACKN; 0 = plain FWP: PUSH, FETCH, ACK (default 0)", NULL, &batch_s,
         NULL},
        {"push-batch", 0, OPT_STRING, "N", "jobs per PUSHB, overriding --batch (0 = PUSH)", NULL,
         &push_batch_s, NULL},
        {"fetch-batch", 0, OPT_STRING, "N", "jobs per FETCHN/ACKN, overriding --batch (0 = FETCH/ACK)",
         NULL, &fetch_batch_s, NULL},
        {"queues", 'q', OPT_STRING, "N", "queues the jobs are spread over (default 1)", NULL, &queues_s,
         NULL},
        {"rate", 'r', OPT_STRING, "N",
         "mixed phase: push N jobs/s in all, one per PUSH (default 0: as fast as possible)", NULL, &rate_s,
         NULL},
        {"fill-only", 0, OPT_FLAG, NULL,
         "only the fill phase: push/s and bytes per job (the jobs are removed after)", &is_fill_only, NULL,
         NULL},
        {"duration", 'd', OPT_STRING, "SECONDS", "stop everything after this long (default 300)", NULL,
         &duration_s, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    int rc;
    struct bench b = {.producers = 1, .consumers = 1, .nqueues = 1, .jobs = 10000,
                      .payload = 100, .duration_s = 300};
    int64_t v, batch = 0;
    pthread_mutex_init(&b.lock, NULL);
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "bench [options]", bench_description, argc, argv, &pos,
                  &rc) != 0)
        goto out;
    /* After parsing: --url and --tls-ca may come after the command name. */
    b.url = cli->url;
    b.tls_ca = cli->tls_ca;
    rc = CLI_USAGE;
    if (pos.n > 0) {
        rc = cli_usage(cli, "bench takes no arguments, got '%s'", pos.v[0]);
        goto out;
    }
    v = b.producers;
    if (parse_count(cli, "producers", producers_s, 1, BENCH_MAX_THREADS, &v))
        goto out;
    b.producers = (int)v;
    v = b.consumers;
    if (parse_count(cli, "consumers", consumers_s, 1, BENCH_MAX_THREADS, &v))
        goto out;
    b.consumers = (int)v;
    v = b.nqueues;
    if (parse_count(cli, "queues", queues_s, 1, BENCH_MAX_QUEUES, &v))
        goto out;
    b.nqueues = (int)v;
    if (parse_count(cli, "jobs", jobs_s, 1, 100000000, &b.jobs) ||
        parse_count(cli, "payload", payload_s, 0, 1000000, &b.payload) ||
        parse_count(cli, "batch", batch_s, 0, 1000, &batch) ||
        parse_count(cli, "rate", rate_s, 0, 10000000, &b.rate))
        goto out;
    b.push_batch = b.fetch_batch = batch;
    b.mixed_jobs = b.jobs;
    if (parse_count(cli, "mixed-jobs", mixed_jobs_s, 0, 100000000, &b.mixed_jobs))
        goto out;
    if (parse_count(cli, "push-batch", push_batch_s, 0, 1000, &b.push_batch) ||
        parse_count(cli, "fetch-batch", fetch_batch_s, 0, 1000, &b.fetch_batch))
        goto out;
    if (duration_s && (cli_parse_duration(duration_s, &b.duration_s) != 0 || b.duration_s < 1)) {
        rc = cli_usage(cli, "--duration takes seconds or a duration like 90s or 5m, not '%s'", duration_s);
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;

    char hex[25];
    cli_new_jid(hex);
    memcpy(b.run_id, hex, 8);
    b.run_id[8] = '\0';
    for (int i = 0; i < b.nqueues; i++) {
        snprintf(b.queue_names[i], sizeof b.queue_names[i], "bench.%s.%d", b.run_id, i);
        b.queues[i] = b.queue_names[i];
    }
    b.pad = xmalloc((size_t)b.payload + 1);
    memset(b.pad, 'x', (size_t)b.payload);
    b.pad[b.payload] = '\0';
    {
        struct sbuf one;
        sbuf_init(&one);
        add_job(&b, &one, 0, 0, mono_ns());
        size_t job_bytes = one.len;
        sbuf_release(&one);

        b.deadline_ns = mono_ns() + b.duration_s * 1000000000LL;
        double rss0 = server_rss(cli, &rc);
        if (rss0 < 0)
            goto out;
        struct phase_result fill, drain, mixed;
        run_phase(&b, 1, b.producers, 0, b.jobs, &fill, NULL, NULL);
        double rss1 = server_rss(cli, &rc);
        if (rss1 < 0)
            goto out;
        if (is_fill_only) {
            b.mixed_jobs = 0;
            memset(&drain, 0, sizeof drain);
        } else {
            run_phase(&b, 2, 0, b.consumers, fill.pushed, &drain, NULL, NULL);
        }
        int64_t *lat = NULL;
        size_t nlat = 0;
        b.want_latency = 1;
        b.is_paced = b.rate > 0;
        if (!atomic_load(&b.is_stopping) && b.mixed_jobs > 0)
            run_phase(&b, 3, b.producers, b.consumers, b.mixed_jobs, &mixed, &lat, &nlat);
        else
            memset(&mixed, 0, sizeof mixed);
        if (nlat)
            qsort(lat, nlat, sizeof *lat, cmp_i64);

        /* Leave nothing behind: this run's queues (and any job left in them) go. */
        struct sbuf rm;
        sbuf_init(&rm);
        sbuf_adds(&rm, "QUEUE REMOVE");
        for (int i = 0; i < b.nqueues; i++)
            sbuf_addf(&rm, " %s", b.queues[i]);
        spool_client_set_timeout(cli->client, 300000); /* removing a million jobs takes a while */
        int rrc = spool_command(cli->client, rm.buf, NULL);
        sbuf_release(&rm);

        int complete = !b.err[0] && fill.pushed == b.jobs && (is_fill_only || drain.processed == fill.pushed) &&
                       mixed.pushed == b.mixed_jobs && mixed.processed == b.mixed_jobs;
        double bytes_per_job = fill.pushed ? (rss1 - rss0) / (double)fill.pushed : 0;
        double mixed_s = mixed.process_s > mixed.push_s ? mixed.process_s : mixed.push_s;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "mode", b.push_batch || b.fetch_batch ? "batch" : "plain");
        cJSON_AddNumberToObject(o, "producers", b.producers);
        cJSON_AddNumberToObject(o, "consumers", b.consumers);
        cJSON_AddNumberToObject(o, "jobs", (double)b.jobs);
        cJSON_AddNumberToObject(o, "payload", (double)b.payload);
        cJSON_AddNumberToObject(o, "push_batch", (double)b.push_batch);
        cJSON_AddNumberToObject(o, "fetch_batch", (double)b.fetch_batch);
        cJSON_AddNumberToObject(o, "queues", b.nqueues);
        cJSON_AddNumberToObject(o, "rate", (double)b.rate);
        cJSON_AddNumberToObject(o, "push_per_s", round(per_s(fill.pushed, fill.push_s)));
        cJSON_AddNumberToObject(o, "process_per_s", round(per_s(drain.processed, drain.process_s)));
        cJSON_AddNumberToObject(o, "mixed_per_s", round(per_s(mixed.processed, mixed_s)));
        cJSON_AddNumberToObject(o, "latency_p50_ms", percentile_ms(lat, nlat, 0.50));
        cJSON_AddNumberToObject(o, "latency_p99_ms", percentile_ms(lat, nlat, 0.99));
        cJSON_AddNumberToObject(o, "latency_p999_ms", percentile_ms(lat, nlat, 0.999));
        cJSON_AddNumberToObject(o, "latency_max_ms", nlat ? (double)lat[nlat - 1] / 1e6 : 0);
        cJSON_AddNumberToObject(o, "latency_samples", (double)nlat);
        cJSON_AddNumberToObject(o, "server_rss_mb", round(rss1 / 1048576.0 * 10) / 10);
        cJSON_AddNumberToObject(o, "server_rss_start_mb", round(rss0 / 1048576.0 * 10) / 10);
        cJSON_AddNumberToObject(o, "bytes_per_job", round(bytes_per_job));
        cJSON_AddNumberToObject(o, "job_bytes", (double)job_bytes);
        cJSON_AddNumberToObject(o, "overhead_per_job", round(bytes_per_job - (double)job_bytes));
        cJSON_AddBoolToObject(o, "complete", complete);
        if (b.err[0])
            cJSON_AddStringToObject(o, "error", b.err);
        if (cli->want_json) {
            char *text = cJSON_PrintUnformatted(o);
            printf("%s\n", text);
            cJSON_free(text);
        } else {
            printf("spool bench: %lld jobs/phase, %d producer%s, %d consumer%s, %d queue%s, "
                   "payload %lld B (job %zu B)\n",
                   (long long)b.jobs, b.producers, b.producers == 1 ? "" : "s", b.consumers,
                   b.consumers == 1 ? "" : "s", b.nqueues, b.nqueues == 1 ? "" : "s",
                   (long long)b.payload, job_bytes);
            printf("paths    push %s, fetch/ack %s\n",
                   b.push_batch ? "PUSHB" : "PUSH", b.fetch_batch ? "FETCHN/ACKN" : "FETCH/ACK");
            printf("fill     %lld pushed in %.2fs: %.0f push/s\n", (long long)fill.pushed, fill.push_s,
                   per_s(fill.pushed, fill.push_s));
            printf("drain    %lld processed in %.2fs: %.0f process/s\n", (long long)drain.processed,
                   drain.process_s, per_s(drain.processed, drain.process_s));
            printf("mixed    %lld processed in %.2fs: %.0f jobs/s%s\n", (long long)mixed.processed, mixed_s,
                   per_s(mixed.processed, mixed_s), b.rate ? " (paced)" : "");
            printf("latency  p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (%zu jobs%s)\n",
                   percentile_ms(lat, nlat, 0.5), percentile_ms(lat, nlat, 0.99),
                   percentile_ms(lat, nlat, 0.999), nlat ? (double)lat[nlat - 1] / 1e6 : 0, nlat,
                   b.rate ? ", at the --rate" : "");
            printf("memory   server RSS %.1f MB with %lld jobs queued (%.1f MB before): "
                   "%.0f bytes/job, %.0f beyond the job's %zu bytes\n",
                   rss1 / 1048576.0, (long long)fill.pushed, rss0 / 1048576.0, bytes_per_job,
                   bytes_per_job - (double)job_bytes, job_bytes);
            if (!complete)
                printf("INCOMPLETE: %s\n", b.err[0] ? b.err : "the --duration ran out");
        }
        cJSON_Delete(o);
        free(lat);
        if (b.err[0]) {
            if (!cli->want_json)
                fprintf(stderr, "spool bench: %s\n", b.err);
            rc = b.err_exit ? b.err_exit : CLI_REFUSED;
        } else {
            rc = rrc ? cli_check(cli, rrc, "QUEUE REMOVE") : CLI_OK;
        }
    }
out:
    free(b.pad);
    pthread_mutex_destroy(&b.lock);
    strv_release(&pos);
    return rc;
}
