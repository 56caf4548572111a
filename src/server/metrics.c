#include "server/metrics.h"

#include <cjson/cJSON.h>
#include "server/pgsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "engine/engine.h"
#include "server/server.h"
#include "store/journal.h"

/* Label values are escaped per the exposition format: backslash, double quote, newline. */
static void add_label_value(struct sbuf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            sbuf_adds(out, "\\\\");
        else if (*p == '"')
            sbuf_adds(out, "\\\"");
        else if (*p == '\n')
            sbuf_adds(out, "\\n");
        else
            sbuf_add(out, p, 1);
    }
}

static void head(struct sbuf *out, const char *name, const char *type, const char *help)
{
    sbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(struct sbuf *out, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    head(out, name, type, help);
    sbuf_addf(out, "%s %llu\n", name, (unsigned long long)v);
}

/*
 * One Prometheus histogram from per-bucket counts: bucket i's upper bound is
 * le[i] (the last bucket is +Inf); the exposition wants cumulative counts.
 */
static void histogram(struct sbuf *out, const char *name, const char *help, const uint64_t *counts,
                      const double *le, int n, double sum)
{
    head(out, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < n; i++) {
        cum += counts[i];
        if (i < n - 1)
            sbuf_addf(out, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
        else
            sbuf_addf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    sbuf_addf(out, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

static void add_journal_histograms(struct sbuf *out, const struct journal_stats *js)
{
    double le_fsync[JOURNAL_FSYNC_HIST_BUCKETS], le_batch[JOURNAL_BATCH_HIST_BUCKETS];
    for (int i = 0; i < JOURNAL_FSYNC_HIST_BUCKETS; i++)
        le_fsync[i] = (double)((uint64_t)JOURNAL_FSYNC_HIST_BASE_NS << i) / 1e9;
    for (int i = 0; i < JOURNAL_BATCH_HIST_BUCKETS; i++)
        le_batch[i] = (double)(UINT64_C(1) << i);
    histogram(out, "spool_journal_fsync_duration_seconds", "Latency of journal fsyncs.",
              js->fsync_hist, le_fsync, JOURNAL_FSYNC_HIST_BUCKETS,
              (double)js->fsync_ns_total / 1e9);
    histogram(out, "spool_journal_batch_records", "Records made durable by one group commit.",
              js->batch_hist, le_batch, JOURNAL_BATCH_HIST_BUCKETS, (double)js->records);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct queue *const *)a)->name, (*(struct queue *const *)b)->name);
}

static void add_queues(struct server *srv, struct sbuf *out, int64_t now)
{
    struct engine *e = srv->engine;
    size_t n = 0;
    struct queue **qs = xmalloc((e->queues.count ? e->queues.count : 1) * sizeof *qs);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val) && n < e->queues.count;)
        qs[n++] = val;
    qsort(qs, n, sizeof *qs, by_name); /* a stable order keeps scrapes diffable */
    head(out, "spool_queue_size", "gauge", "Jobs waiting in the queue.");
    for (size_t i = 0; i < n; i++) {
        sbuf_adds(out, "spool_queue_size{queue=\"");
        add_label_value(out, qs[i]->name);
        sbuf_addf(out, "\"} %zu\n", qs[i]->size);
    }
    head(out, "spool_queue_latency_seconds", "gauge",
         "Seconds since the oldest job in the queue was enqueued (0 when empty).");
    for (size_t i = 0; i < n; i++) {
        sbuf_adds(out, "spool_queue_latency_seconds{queue=\"");
        add_label_value(out, qs[i]->name);
        sbuf_addf(out, "\"} %.6f\n", engine_queue_latency(e, qs[i]->name, now));
    }
    head(out, "spool_queue_paused", "gauge", "1 when the queue is paused.");
    for (size_t i = 0; i < n; i++) {
        sbuf_adds(out, "spool_queue_paused{queue=\"");
        add_label_value(out, qs[i]->name);
        sbuf_addf(out, "\"} %d\n", qs[i]->is_paused ? 1 : 0);
    }
    free(qs);
}

static int throttle_by_name(const void *a, const void *b)
{
    return strcmp((*(struct throttle *const *)a)->queue, (*(struct throttle *const *)b)->queue);
}

static void throttle_gauge(struct sbuf *out, const char *name, const struct throttle *t)
{
    sbuf_addf(out, "%s{queue=\"", name);
    add_label_value(out, t->queue);
    sbuf_adds(out, "\"} ");
}

/* The queues with a throttle (docs/features.md), in name order. */
static void add_throttles(struct server *srv, struct sbuf *out, int64_t now)
{
    struct engine *e = srv->engine;
    size_t n = 0;
    struct throttle **ts = xmalloc((e->throttles.count ? e->throttles.count : 1) * sizeof *ts);
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val) && n < e->throttles.count;)
        ts[n++] = val;
    qsort(ts, n, sizeof *ts, throttle_by_name);
    head(out, "spool_queue_in_flight", "gauge",
         "Jobs of a throttled queue reserved and not yet ACKed, FAILed or expired.");
    for (size_t i = 0; i < n; i++) {
        throttle_gauge(out, "spool_queue_in_flight", ts[i]);
        sbuf_addf(out, "%zu\n", ts[i]->in_flight);
    }
    head(out, "spool_queue_throttled", "gauge",
         "1 when the queue's throttle lets no job out now (concurrency reached or rate window full).");
    for (size_t i = 0; i < n; i++) {
        throttle_gauge(out, "spool_queue_throttled", ts[i]);
        sbuf_addf(out, "%d\n", throttle_is_full(ts[i], now) ? 1 : 0);
    }
    head(out, "spool_queue_concurrency_limit", "gauge",
         "Most jobs of the queue in flight at once (queues with a concurrency limit).");
    for (size_t i = 0; i < n; i++) {
        if (!ts[i]->limits.concurrency)
            continue;
        throttle_gauge(out, "spool_queue_concurrency_limit", ts[i]);
        sbuf_addf(out, "%u\n", ts[i]->limits.concurrency);
    }
    head(out, "spool_queue_rate_limit", "gauge",
         "Most jobs of the queue handed out per rate period (queues with a rate limit).");
    for (size_t i = 0; i < n; i++) {
        if (!ts[i]->limits.rate_limit)
            continue;
        throttle_gauge(out, "spool_queue_rate_limit", ts[i]);
        sbuf_addf(out, "%u\n", ts[i]->limits.rate_limit);
    }
    head(out, "spool_queue_rate_period_seconds", "gauge",
         "Length of the queue's sliding rate window (queues with a rate limit).");
    for (size_t i = 0; i < n; i++) {
        if (!ts[i]->limits.rate_limit)
            continue;
        throttle_gauge(out, "spool_queue_rate_period_seconds", ts[i]);
        sbuf_addf(out, "%.9g\n", (double)ts[i]->limits.rate_period_ns / 1e9);
    }
    free(ts);
}

void metrics_render(struct server *srv, struct sbuf *out)
{
    struct engine *e = srv->engine;
    int64_t now = server_now();
    add_queues(srv, out, now);
    add_throttles(srv, out, now);
    head(out, "spool_set_size", "gauge", "Jobs in each time-ordered set.");
    sbuf_addf(out, "spool_set_size{set=\"scheduled\"} %zu\n", (size_t)e->scheduled.count);
    sbuf_addf(out, "spool_set_size{set=\"retries\"} %zu\n", (size_t)e->retries.count);
    sbuf_addf(out, "spool_set_size{set=\"dead\"} %zu\n", (size_t)e->dead.count);
    sbuf_addf(out, "spool_set_size{set=\"working\"} %zu\n", (size_t)e->working.count);
    metric_u64(out, "spool_jobs_processed_total", "counter",
               "Jobs finished by ACK or FAIL since the data directory was created.", e->processed);
    metric_u64(out, "spool_jobs_failed_total", "counter",
               "Jobs failed (FAIL or reservation expiry).", e->failures);
    metric_u64(out, "spool_dead_dropped_total", "counter",
               "Dead jobs dropped by age or by the dead set cap.", e->dead_dropped);
    metric_u64(out, "spool_reservations_expired_total", "counter",
               "Reservations that expired before an ACK or FAIL.", e->expired_reservations);
    metric_u64(out, "spool_connections", "gauge", "Open FWP connections.", (uint64_t)srv->nconns);
    metric_u64(out, "spool_connections_max", "gauge", "The connection limit (--max-connections).",
               (uint64_t)srv->cfg.max_connections);
    metric_u64(out, "spool_jobs_held", "gauge", "Jobs held in every state.",
               (uint64_t)e->jobs.count);
    metric_u64(out, "spool_jobs_held_max", "gauge",
               "Jobs held before new pushes are refused (--max-jobs; 0 = no limit).",
               (uint64_t)srv->cfg.max_jobs);
    metric_u64(out, "spool_job_memory_bytes", "gauge",
               "Estimated memory of the jobs held, as --max-memory counts it.",
               (uint64_t)e->job_bytes);
    metric_u64(out, "spool_job_memory_max_bytes", "gauge",
               "Estimated job memory before new pushes are refused (--max-memory; 0 = no limit).",
               (uint64_t)srv->cfg.max_memory);
    metric_u64(out, "spool_pushes_refused_full_total", "counter",
               "Pushes refused because --max-jobs or --max-memory was reached.",
               e->pushes_refused_full);
    metric_u64(out, "spool_workers", "gauge", "Known worker processes.",
               (uint64_t)e->workers.count);
    metric_u64(out, "spool_readonly", "gauge", "1 when the journal failed and changes are refused.",
               srv->is_readonly ? 1 : 0);
    if (srv->journal) {
        struct journal_stats js;
        journal_get_stats(srv->journal, &js);
        metric_u64(out, "spool_journal_records_total", "counter", "Journal records made durable.",
                   js.records);
        metric_u64(out, "spool_journal_fsyncs_total", "counter", "fsync calls on the journal.",
                   js.fsyncs);
        head(out, "spool_journal_fsync_seconds_total", "counter", "Time spent in journal fsyncs.");
        sbuf_addf(out, "spool_journal_fsync_seconds_total %.9f\n", (double)js.fsync_ns_total / 1e9);
        head(out, "spool_journal_fsync_seconds_max", "gauge", "Longest journal fsync since start.");
        sbuf_addf(out, "spool_journal_fsync_seconds_max %.9f\n", (double)js.fsync_ns_max / 1e9);
        add_journal_histograms(out, &js);
    }
}

/* One gauge per queue from a JSON object of queue -> number (spool.info()'s). */
static void store_gauge(struct sbuf *out, const char *name, const char *help, const cJSON *obj,
                        int is_float)
{
    head(out, name, "gauge", help);
    const cJSON *q;
    cJSON_ArrayForEach(q, obj)
    {
        sbuf_addf(out, "%s{queue=\"", name);
        add_label_value(out, q->string);
        if (is_float)
            sbuf_addf(out, "\"} %.6f\n", q->valuedouble);
        else
            sbuf_addf(out, "\"} %.0f\n", q->valuedouble);
    }
}

static uint64_t count_of(const cJSON *counts, const char *key)
{
    double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(counts, key));
    return v > 0 ? (uint64_t)v : 0;
}

void metrics_render_store(struct server *srv, const cJSON *counts, struct sbuf *out)
{
    store_gauge(out, "spool_queue_size", "Jobs waiting in the queue.",
                cJSON_GetObjectItemCaseSensitive(counts, "queues"), 0);
    store_gauge(out, "spool_queue_latency_seconds",
                "Seconds since the oldest job in the queue was enqueued (0 when empty).",
                cJSON_GetObjectItemCaseSensitive(counts, "latency"), 1);
    head(out, "spool_queue_paused", "gauge", "1 when the queue is paused.");
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(counts, "paused"))
    {
        sbuf_adds(out, "spool_queue_paused{queue=\"");
        add_label_value(out, cJSON_IsString(p) ? p->valuestring : "");
        sbuf_adds(out, "\"} 1\n");
    }
    head(out, "spool_set_size", "gauge", "Jobs in each time-ordered set.");
    sbuf_addf(out, "spool_set_size{set=\"scheduled\"} %llu\n", (unsigned long long)count_of(counts, "scheduled"));
    sbuf_addf(out, "spool_set_size{set=\"retries\"} %llu\n", (unsigned long long)count_of(counts, "retries"));
    sbuf_addf(out, "spool_set_size{set=\"dead\"} %llu\n", (unsigned long long)count_of(counts, "dead"));
    sbuf_addf(out, "spool_set_size{set=\"working\"} %llu\n", (unsigned long long)count_of(counts, "working"));
    metric_u64(out, "spool_jobs_processed_total", "counter",
               "Jobs finished by ACK or FAIL, as the database counts them.", count_of(counts, "processed"));
    metric_u64(out, "spool_jobs_failed_total", "counter",
               "Jobs failed (FAIL or reservation expiry), as the database counts them.",
               count_of(counts, "failed"));
    metric_u64(out, "spool_connections", "gauge", "Open FWP connections.", (uint64_t)srv->nconns);
    metric_u64(out, "spool_connections_max", "gauge", "The connection limit (--max-connections).",
               (uint64_t)srv->cfg.max_connections);
    metric_u64(out, "spool_workers", "gauge", "Worker processes connected to this server.",
               (uint64_t)srv->engine->workers.count);
    metric_u64(out, "spool_store_leader", "gauge",
               "1 when this server runs the PostgreSQL store's maintenance (holds the leader lock).",
               pgsrv_is_leader(srv->pgsrv) ? 1 : 0);
}
