#include "server/info.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/timefmt.h"
#include "server/server.h"
#include "store/journal.h"

/* Faktory's INFO reports this; clients that check it see a compatible server. */
#define FAKTORY_COMPAT_VERSION "1.10.0"

/* Resident set size in bytes from /proc/self/statm, 0 when unreadable. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long pages_total = 0, pages_rss = 0;
    int n = fscanf(f, "%lu %lu", &pages_total, &pages_rss);
    fclose(f);
    if (n != 2)
        return 0;
    return (double)pages_rss * (double)sysconf(_SC_PAGESIZE);
}

static void add_task(cJSON *tasks, const char *name, size_t size)
{
    cJSON *t = cJSON_AddObjectToObject(tasks, name);
    cJSON_AddNumberToObject(t, "size", (double)size);
}

static void add_server(struct server *srv, cJSON *root, int64_t now)
{
    cJSON *s = cJSON_AddObjectToObject(root, "server");
    cJSON_AddStringToObject(s, "description", "spool");
    cJSON_AddStringToObject(s, "faktory_version", FAKTORY_COMPAT_VERSION);
    cJSON_AddStringToObject(s, "spool_version", SPOOL_VERSION);
    cJSON_AddStringToObject(s, "store", srv->pgsrv ? "postgres" : "journal");
    cJSON_AddNumberToObject(s, "uptime", (double)((now - srv->started_ns) / NS_PER_S));
    cJSON_AddNumberToObject(s, "connections", srv->nconns);
    cJSON_AddNumberToObject(s, "command_count", (double)srv->command_count);
    double rss = rss_bytes();
    cJSON_AddNumberToObject(s, "used_memory_mb", (double)(long)(rss / (1024.0 * 1024.0) + 0.5));
    cJSON_AddNumberToObject(s, "rss_bytes", rss); /* exact, for benchmarks' bytes per job */
    /* spool extension: the push limits (0 = none) and what counts against them. */
    struct engine *e = srv->engine;
    cJSON *lim = cJSON_AddObjectToObject(s, "limits");
    cJSON_AddNumberToObject(lim, "max_jobs", (double)srv->cfg.max_jobs);
    cJSON_AddNumberToObject(lim, "jobs", (double)e->jobs.count);
    cJSON_AddNumberToObject(lim, "max_memory", (double)srv->cfg.max_memory);
    cJSON_AddNumberToObject(lim, "job_memory", (double)e->job_bytes);
    cJSON_AddNumberToObject(lim, "refused", (double)e->pushes_refused_full);
    cJSON_AddNumberToObject(lim, "max_connections", srv->cfg.max_connections);
    if (srv->journal) {
        struct journal_stats js;
        journal_get_stats(srv->journal, &js);
        cJSON *j = cJSON_AddObjectToObject(s, "journal");
        cJSON_AddStringToObject(j, "fsync", journal_policy_name(srv->cfg.fsync));
        cJSON_AddNumberToObject(j, "records", (double)js.records);
        cJSON_AddNumberToObject(j, "batches", (double)js.batches);
        cJSON_AddNumberToObject(j, "fsyncs", (double)js.fsyncs);
        cJSON_AddNumberToObject(j, "bytes", (double)js.bytes);
        cJSON_AddNumberToObject(j, "fsync_ms_avg",
                                js.fsyncs ? (double)js.fsync_ns_total / (double)js.fsyncs / 1e6 : 0);
        cJSON_AddNumberToObject(j, "fsync_ms_max", (double)js.fsync_ns_max / 1e6);
        cJSON_AddNumberToObject(j, "snapshots", (double)srv->snapshots_taken);
        cJSON_AddBoolToObject(j, "failed", srv->is_readonly);
    }
}

static void add_now(cJSON *root, int64_t now)
{
    char ts[TIMEFMT_MAX];
    timefmt_format(now, ts);
    cJSON_AddStringToObject(root, "now", ts);
}

/* INFO's first members: now and server_utc_time. */
static cJSON *info_root(int64_t now)
{
    cJSON *root = cJSON_CreateObject();
    add_now(root, now);
    char ts[TIMEFMT_MAX];
    timefmt_format(now, ts);
    char hms[16];
    snprintf(hms, sizeof hms, "%.8s UTC", ts + 11);
    cJSON_AddStringToObject(root, "server_utc_time", hms);
    return root;
}

static void emit(cJSON *root, struct sbuf *out)
{
    char *text = cJSON_PrintUnformatted(root);
    sbuf_adds(out, text);
    cJSON_free(text);
    cJSON_Delete(root);
}

/* The numbers INFO's "faktory" object reports beside its queues. */
struct info_counts {
    double scheduled, retries, dead, working; /* the sets */
    double processed, failed, expired;        /* totals */
};

/*
 * Adds INFO's "faktory" object, the same for both stores: queues (name ->
 * size), throttles and paused (taken) and the counts k. Workers are this
 * server's, from the engine.
 */
static void add_faktory(struct server *srv, cJSON *root, cJSON *queues, cJSON *throttles,
                        cJSON *paused, const struct info_counts *k)
{
    struct engine *e = srv->engine;
    cJSON *f = cJSON_AddObjectToObject(root, "faktory");
    double total = 0;
    int nqueues = 0;
    const cJSON *q;
    cJSON_ArrayForEach(q, queues)
    {
        total += q->valuedouble;
        nqueues++;
    }
    cJSON_AddItemToObject(f, "queues", queues);
    /* spool extension: the queues' throttles, Faktory's "queues" shape left as it is. */
    cJSON_AddItemToObject(f, "throttles", throttles);
    cJSON *sets = cJSON_AddObjectToObject(f, "sets");
    cJSON_AddNumberToObject(sets, "scheduled", k->scheduled);
    cJSON_AddNumberToObject(sets, "retries", k->retries);
    cJSON_AddNumberToObject(sets, "dead", k->dead);
    cJSON_AddNumberToObject(sets, "working", k->working);
    cJSON *tasks = cJSON_AddObjectToObject(f, "tasks");
    add_task(tasks, "Scheduled", (size_t)k->scheduled);
    add_task(tasks, "Retries", (size_t)k->retries);
    add_task(tasks, "Dead", (size_t)k->dead);
    add_task(tasks, "Busy", (size_t)k->working);
    add_task(tasks, "Workers", e->workers.count);
    cJSON_AddNumberToObject(cJSON_GetObjectItem(tasks, "Workers"), "reaped",
                            (double)e->workers_reaped);
    cJSON_AddNumberToObject(f, "total_failures", k->failed);
    cJSON_AddNumberToObject(f, "total_processed", k->processed);
    cJSON_AddNumberToObject(f, "total_enqueued", total);
    cJSON_AddNumberToObject(f, "total_queues", nqueues);
    /* spool extension: jobs discarded because custom.expires_at passed (docs/features.md). */
    cJSON_AddNumberToObject(f, "expired_jobs", k->expired);
    cJSON_AddItemToObject(f, "paused", paused);
}

void info_render(struct server *srv, struct sbuf *out)
{
    struct engine *e = srv->engine;
    int64_t now = server_now();
    cJSON *root = info_root(now);
    cJSON *queues = cJSON_CreateObject(), *throttles = cJSON_CreateObject();
    cJSON *paused = cJSON_CreateArray();
    const char *key;
    void *val;
    for (size_t i = 0; strmap_next(&e->queues, &i, &key, &val);) {
        struct queue *q = val;
        cJSON_AddNumberToObject(queues, q->name, (double)q->size);
        if (q->is_paused)
            cJSON_AddItemToArray(paused, cJSON_CreateString(q->name));
    }
    struct sbuf tb;
    sbuf_init(&tb);
    for (size_t i = 0; strmap_next(&e->throttles, &i, &key, &val);) {
        sbuf_reset(&tb);
        info_render_throttle(e, key, now, &tb);
        cJSON_AddRawToObject(throttles, key, tb.buf);
    }
    sbuf_release(&tb);
    struct info_counts k = {
        .scheduled = (double)e->scheduled.count,
        .retries = (double)e->retries.count,
        .dead = (double)e->dead.count,
        .working = (double)e->working.count,
        .processed = (double)e->processed,
        .failed = (double)e->failures,
        .expired = (double)e->expired_jobs,
    };
    add_faktory(srv, root, queues, throttles, paused, &k);
    add_server(srv, root, now);
    emit(root, out);
}

static double count_of(const cJSON *counts, const char *key)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(counts, key));
}

void info_render_store(struct server *srv, const cJSON *counts, struct sbuf *out)
{
    int64_t now = server_now();
    cJSON *root = info_root(now);
    const cJSON *queues = cJSON_GetObjectItemCaseSensitive(counts, "queues");
    const cJSON *paused = cJSON_GetObjectItemCaseSensitive(counts, "paused");
    struct info_counts k = {
        .scheduled = count_of(counts, "scheduled"),
        .retries = count_of(counts, "retries"),
        .dead = count_of(counts, "dead"),
        .working = count_of(counts, "working"),
        .processed = count_of(counts, "processed"),
        .failed = count_of(counts, "failed"),
        .expired = count_of(counts, "expired"),
    };
    add_faktory(srv, root, queues ? cJSON_Duplicate(queues, 1) : cJSON_CreateObject(),
                cJSON_CreateObject(), paused ? cJSON_Duplicate(paused, 1) : cJSON_CreateArray(), &k);
    add_server(srv, root, now);
    emit(root, out);
}

const char *info_worker_state_name(int state)
{
    return state == WORKER_QUIET ? "quiet" : state == WORKER_TERMINATE ? "terminate" : "running";
}

static int count_busy(struct tset_node *node, void *arg)
{
    struct strmap *busy = arg;
    const struct job *job = (const struct job *)((const char *)node - offsetof(struct job, tnode));
    if (job->wid) {
        uintptr_t n = (uintptr_t)strmap_get(busy, job->wid);
        strmap_put(busy, job->wid, (void *)(n + 1));
    }
    return 0;
}

void info_render_workers(struct server *srv, struct sbuf *out)
{
    struct strmap busy; /* wid -> jobs reserved under it, from one walk of the working set */
    strmap_init(&busy);
    tset_walk(&srv->engine->working, count_busy, &busy);
    info_render_workers_busy(srv, &busy, out);
    strmap_release(&busy);
}

void info_render_workers_busy(struct server *srv, const struct strmap *busy, struct sbuf *out)
{
    struct engine *e = srv->engine;
    sbuf_adds(out, "[");
    const char *key;
    void *val;
    int first = 1;
    for (size_t i = 0; strmap_next(&e->workers, &i, &key, &val);) {
        struct worker *w = val;
        sbuf_adds(out, first ? "{\"wid\":" : ",{\"wid\":");
        first = 0;
        sbuf_add_json_str(out, w->wid, strlen(w->wid));
        sbuf_adds(out, ",\"hostname\":");
        sbuf_add_json_str(out, w->hostname ? w->hostname : "", w->hostname ? strlen(w->hostname) : 0);
        sbuf_addf(out, ",\"pid\":%d,\"labels\":%s,\"state\":\"%s\"", w->pid,
                  w->labels && *w->labels ? w->labels : "[]", info_worker_state_name(w->state));
        timefmt_add_json_field(out, "started_at", w->started_at_ns);
        timefmt_add_json_field(out, "last_beat_at", w->last_beat_ns);
        sbuf_addf(out, ",\"rss_kb\":%lld,\"connections\":%d,\"busy\":%zu}", (long long)w->rss_kb,
                  w->nconns, (size_t)(uintptr_t)strmap_get(busy, w->wid));
    }
    sbuf_adds(out, "]");
}

void info_render_list_entry(struct sbuf *out, const struct job *job, int with_at)
{
    sbuf_adds(out, "{\"job\":");
    job_render(job, out);
    if (with_at)
        timefmt_add_json_field(out, "at", job->tnode.score_ns);
    if (job->state == JOB_WORKING) {
        sbuf_adds(out, ",\"wid\":");
        sbuf_add_json_str(out, job->wid ? job->wid : "", job->wid ? strlen(job->wid) : 0);
        timefmt_add_json_field(out, "reserved_at", job->reserved_at_ns);
    }
    sbuf_adds(out, "}");
}

void info_render_throttle(struct engine *e, const char *queue, int64_t now_ns, struct sbuf *out)
{
    struct throttle *t = engine_throttle(e, queue);
    if (!t) {
        sbuf_adds(out, "null");
        return;
    }
    const struct throttle_limits *l = &t->limits;
    if (l->concurrency)
        sbuf_addf(out, "{\"concurrency\":%u", l->concurrency);
    else
        sbuf_adds(out, "{\"concurrency\":null");
    sbuf_addf(out, ",\"in_flight\":%zu", t->in_flight);
    if (l->rate_limit)
        sbuf_addf(out, ",\"rate_limit\":%u,\"rate_period_s\":%.9g", l->rate_limit,
                  (double)l->rate_period_ns / (double)NS_PER_S);
    else
        sbuf_adds(out, ",\"rate_limit\":null,\"rate_period_s\":null");
    sbuf_addf(out, ",\"throttled\":%s}", throttle_is_full(t, now_ns) ? "true" : "false");
}

void info_render_health(struct server *srv, struct sbuf *out)
{
    int64_t now = server_now();
    cJSON *root = cJSON_CreateObject();
    add_now(root, now);
    add_server(srv, root, now);
    emit(root, out);
}
