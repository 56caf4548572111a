/*
 * The sets and the queues' contents: jobs lists a page of a set or a queue
 * (JOBS, a spool extension), and retry, kill, delete act on sets through
 * MUTATE (requeue, kill, discard).
 *
 * MUTATE answers +OK without saying how many jobs it touched, so
 * retry/kill/delete count the jobs their filter names in each set with JOBS
 * (limit 0: only the total) before and after. Against a server without JOBS
 * (Faktory) they fall back to the sets' sizes from INFO.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/sbuf.h"
#include "common/xalloc.h"

static const char *const set_names[] = {"scheduled", "retries", "dead", "working"};
enum { NSETS = 4, SET_RETRIES = 1, SET_DEAD = 2, SET_WORKING = 3, TARGET_QUEUE = 4 };

/* JOBS serves at most this many jobs per request; longer listings take several. */
#define JOBS_PAGE_MAX 1000
/* Bytes of a failure message shown in a table cell. */
#define MESSAGE_CELL_MAX 60

static int set_index(const char *name)
{
    for (int i = 0; i < NSETS; i++)
        if (strcmp(name, set_names[i]) == 0)
            return i;
    return -1;
}

static double set_size(const cJSON *info, int set)
{
    return cli_json_number(info, "faktory", "sets", set_names[set]);
}

/* The string at o[key], or NULL when it is absent or not a string. */
static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* A JOBS request line: target, queue, page and filter (filter may be NULL). */
static char *jobs_request(const char *target, const char *queue, int64_t offset, int64_t limit,
                          const cJSON *filter)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "target", target);
    if (queue)
        cJSON_AddStringToObject(req, "queue", queue);
    cJSON_AddNumberToObject(req, "offset", (double)offset);
    cJSON_AddNumberToObject(req, "limit", (double)limit);
    if (filter && cJSON_GetArraySize(filter) > 0)
        cJSON_AddItemToObject(req, "filter", cJSON_Duplicate(filter, 1));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        abort(); /* cJSON fails only when memory runs out */
    struct sbuf line;
    sbuf_init(&line);
    sbuf_adds(&line, "JOBS ");
    sbuf_adds(&line, body);
    cJSON_free(body);
    return sbuf_detach(&line, NULL);
}

/* True when doc has JOBS's shape: {"jobs":[...],"total":N,...}. */
static int is_jobs_page(const cJSON *doc)
{
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "jobs")) &&
           cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "total"));
}

/*
 * Copies a failure message into out[] for one table cell: control
 * characters become spaces, and a long message is cut (never inside a
 * UTF-8 character) and ends in "...".
 */
static void message_cell(const char *msg, char out[MESSAGE_CELL_MAX + 4])
{
    size_t n = strlen(msg);
    int is_cut = n > MESSAGE_CELL_MAX;
    if (is_cut) {
        n = MESSAGE_CELL_MAX;
        while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80) /* msg[n] continues a character */
            n--;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
    if (is_cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static void print_jobs_table(const cJSON *doc, int target, int64_t offset)
{
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(doc, "jobs");
    double total = cli_json_number(doc, "total", NULL, NULL);
    int n = cJSON_GetArraySize(jobs);
    static const char *const time_header[] = {"AT", "RETRY_AT", "EXPIRES_AT", "EXPIRES_AT", "ENQUEUED_AT"};
    const char *headers[6] = {"JID", "JOBTYPE", "QUEUE", time_header[target], NULL, NULL};
    size_t ncols = 4;
    if (target == SET_RETRIES || target == SET_DEAD) {
        headers[4] = "ERROR";
        headers[5] = "MESSAGE";
        ncols = 6;
    } else if (target == SET_WORKING) {
        headers[4] = "WID";
        ncols = 5;
    }
    if (n > 0) {
        struct table *t = table_new(ncols, headers);
        int64_t now = cli_now_ns();
        const cJSON *entry;
        cJSON_ArrayForEach(entry, jobs)
        {
            const cJSON *job = cJSON_GetObjectItemCaseSensitive(entry, "job");
            const cJSON *failure = cJSON_GetObjectItemCaseSensitive(job, "failure");
            char when[80] = "";
            int64_t ns;
            /* A queue has no "at": its jobs show when they were put on it. */
            const cJSON *at = target == TARGET_QUEUE ? cJSON_GetObjectItemCaseSensitive(job, "enqueued_at")
                                                     : cJSON_GetObjectItemCaseSensitive(entry, "at");
            if (cli_json_time(at, &ns) == 0)
                cli_format_when(ns, now, when);
            char message[MESSAGE_CELL_MAX + 4] = "";
            const char *msg = json_str(failure, "message");
            if (msg)
                message_cell(msg, message);
            const char *wid = json_str(entry, "wid");
            const char *row[6] = {json_str(job, "jid"), json_str(job, "jobtype"), json_str(job, "queue"),
                                  *when ? when : NULL, NULL, NULL};
            if (ncols == 6) {
                row[4] = json_str(failure, "errtype");
                row[5] = msg ? message : NULL;
            } else if (ncols == 5) {
                row[4] = wid && *wid ? wid : NULL; /* "" is a connection without a wid */
            }
            table_add_row(t, row);
        }
        table_print(t, stdout);
        table_free(t);
    }
    if (offset > 0)
        printf("%d of %.0f (from offset %lld)\n", n, total, (long long)offset);
    else
        printf("%d of %.0f\n", n, total);
}

static const char jobs_description[] =
    "Lists the jobs of a set (scheduled, retries, dead, working) in time order, or\n"
    "of one queue in FIFO order, LIMIT at a time from OFFSET, optionally only those\n"
    "of one jobtype or whose JSON matches a glob (*, ?, [...]). The table shows each\n"
    "job's jid, jobtype, queue and the set's time (when a scheduled job runs, when\n"
    "a retry is due, when a dead job expires, when a reservation expires, when a\n"
    "queued job was enqueued); retries and dead add the error and its message,\n"
    "working the wid of the process holding the job. The last line says how many\n"
    "jobs were shown of how many match. --json prints the server's JOBS document.\n"
    "Needs a spool server: JOBS is a spool extension of FWP.";

int cmd_jobs(struct cli *cli, int argc, char **argv)
{
    const char *limit = NULL, *offset = NULL, *jobtype = NULL, *match = NULL;
    const struct opt_spec specs[] = {
        {"limit", 'n', OPT_STRING, "N", "jobs to list (default 50, at most 100000)", NULL, &limit, NULL},
        {"offset", 0, OPT_STRING, "N", "matching jobs to skip first (default 0)", NULL, &offset, NULL},
        {"jobtype", 't', OPT_STRING, "TYPE", "only jobs of this jobtype", NULL, &jobtype, NULL},
        {"match", 'm', OPT_STRING, "GLOB", "only jobs whose JSON matches this glob", NULL, &match, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    cJSON *doc = NULL, *filter = NULL;
    int rc;
    int64_t limit_n = 50, offset_n = 0;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "jobs scheduled|retries|dead|working [options]\n"
                                               "       spool jobs queue QUEUE [options]",
                  jobs_description, argc, argv, &pos, &rc) != 0)
        goto out;
    int target = pos.n ? set_index(pos.v[0]) : -1;
    if (pos.n && strcmp(pos.v[0], "queue") == 0)
        target = TARGET_QUEUE;
    size_t want_args = target == TARGET_QUEUE ? 2 : 1;
    if (pos.n == 0) {
        rc = cli_usage(cli, "missing the set: scheduled, retries, dead or working (or queue QUEUE)");
        goto out;
    }
    if (target < 0) {
        rc = cli_usage(cli, "unknown set '%s' (scheduled, retries, dead, working, or queue QUEUE)", pos.v[0]);
        goto out;
    }
    if (pos.n < want_args) {
        rc = cli_usage(cli, "jobs queue needs the name of a queue");
        goto out;
    }
    if (pos.n > want_args) {
        rc = cli_usage(cli, "unexpected argument '%s'", pos.v[want_args]);
        goto out;
    }
    const char *queue = target == TARGET_QUEUE ? pos.v[1] : NULL;
    if (queue && !cli_is_queue_name(queue)) {
        rc = cli_usage(cli, "invalid queue name '%s'", queue);
        goto out;
    }
    if (limit && cli_parse_int(limit, 1, 100000, &limit_n) != 0) {
        rc = cli_usage(cli, "invalid --limit '%s' (1 to 100000)", limit);
        goto out;
    }
    /* cJSON carries numbers as doubles: keep the offset exact. */
    if (offset && cli_parse_int(offset, 0, INT64_C(1) << 52, &offset_n) != 0) {
        rc = cli_usage(cli, "invalid --offset '%s' (a whole number from 0)", offset);
        goto out;
    }
    filter = cJSON_CreateObject();
    if (jobtype)
        cJSON_AddStringToObject(filter, "jobtype", jobtype);
    if (match)
        cJSON_AddStringToObject(filter, "regexp", match);
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;

    /* Page through the server JOBS_PAGE_MAX at a time until LIMIT jobs or the end. */
    const char *target_name = target == TARGET_QUEUE ? "queue" : set_names[target];
    int64_t at = offset_n, want = limit_n;
    int pages = 0;
    while (want > 0) {
        char *line = jobs_request(target_name, queue, at, want < JOBS_PAGE_MAX ? want : JOBS_PAGE_MAX, filter);
        cJSON *page = cli_command_json(cli, line, &rc);
        free(line);
        if (!page)
            goto out;
        if (!is_jobs_page(page)) {
            cJSON_Delete(page);
            rc = cli_fail(cli, CLI_REFUSED, "JOBS: the server's reply has no \"jobs\" array and \"total\"");
            goto out;
        }
        pages++;
        cJSON *jobs = cJSON_GetObjectItemCaseSensitive(page, "jobs");
        int got = cJSON_GetArraySize(jobs);
        double served = cli_json_number(page, "limit", NULL, NULL);
        if (!doc) {
            doc = page;
        } else {
            cJSON *all = cJSON_GetObjectItemCaseSensitive(doc, "jobs");
            cJSON *entry;
            while ((entry = cJSON_DetachItemFromArray(jobs, 0)))
                cJSON_AddItemToArray(all, entry);
            /* The latest count: other clients may have changed the set meanwhile. */
            cJSON *total = cJSON_DetachItemFromObjectCaseSensitive(page, "total");
            cJSON_ReplaceItemInObjectCaseSensitive(doc, "total", total);
            cJSON_Delete(page);
        }
        want -= got;
        at += got;
        if (got == 0 || (double)got < served)
            break;
    }
    if (pages > 1)
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "limit", cJSON_CreateNumber((double)limit_n));
    if (cli->want_json)
        cli_print_json(doc);
    else
        print_jobs_table(doc, target, offset_n);
out:
    cJSON_Delete(doc);
    cJSON_Delete(filter);
    strv_release(&pos);
    return rc;
}

/* ---- retry, kill, delete ---- */

struct mutate_cmd {
    const char *name;    /* the CLI command */
    const char *op;      /* MUTATE cmd */
    unsigned jid_sets;   /* bit per set searched for jids when --set is not given */
    const char *description;
};

/* How many jobs a command names in each set, and how they were counted. */
struct set_counts {
    int is_by_size; /* the sets' sizes from INFO: the server has no JOBS */
    double n[NSETS];
};

/*
 * Counts, for each set in `sets`, the jobs the command names: the total of
 * JOBS with the command's filter (NULL: every job), or, against a server
 * that has no JOBS, the set's size from INFO (then c->is_by_size is set;
 * pass it in set for the count after). Returns an exit code.
 */

static int count_sets(struct cli *cli, unsigned sets, const cJSON *filter, struct set_counts *c)
{
    int rc = CLI_OK;
    for (int i = 0; i < NSETS && !c->is_by_size; i++) {
        if (!(sets & (1u << i)))
            continue;
        char *line = jobs_request(set_names[i], NULL, 0, 0, filter);
        char *text = NULL;
        int src = spool_command(cli->client, line, &text);
        free(line);
        if (src == SPOOL_ESERVER && strstr(cli_server_error(cli->client), "unknown command")) {
            c->is_by_size = 1; /* a Faktory server: fall back to INFO */
            break;
        }
        if ((rc = cli_check(cli, src, "JOBS")) != CLI_OK)
            return rc;
        cJSON *page = cJSON_Parse(text ? text : "");
        spool_free(text);
        int is_page = is_jobs_page(page);
        c->n[i] = cli_json_number(page, "total", NULL, NULL);
        cJSON_Delete(page);
        if (!is_page)
            return cli_fail(cli, CLI_REFUSED, "JOBS: the server's reply has no \"jobs\" array and \"total\"");
    }
    if (c->is_by_size) {
        cJSON *info = cli_info(cli, &rc);
        if (!info)
            return rc;
        for (int i = 0; i < NSETS; i++)
            c->n[i] = set_size(info, i);
        cJSON_Delete(info);
    }
    return CLI_OK;
}

static int run_mutate(struct cli *cli, const struct mutate_cmd *m, int argc, char **argv)
{
    const char *set = NULL, *jobtype = NULL, *match = NULL;
    int all = 0;
    const struct opt_spec specs[] = {
        {"set", 's', OPT_STRING, "SET", "scheduled, retries or dead (default with JIDs: every set "
                                        "that can hold them; needed with a filter)", NULL, &set, NULL},
        {"jobtype", 't', OPT_STRING, "TYPE", "every job of this jobtype in the set", NULL, &jobtype, NULL},
        {"match", 'm', OPT_STRING, "GLOB", "every job whose JSON matches this glob (*, ?, [...])", NULL,
         &match, NULL},
        {"all", 'a', OPT_FLAG, NULL, "every job in the set", &all, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    cJSON *filter = NULL;
    int rc;
    char usage[128];
    snprintf(usage, sizeof usage, "%s [options] JID...\n       spool %s --set SET (--jobtype TYPE | --match GLOB | --all)",
             m->name, m->name);
    if (cli_parse(cli, specs, OPT_INTERLEAVED, usage, m->description, argc, argv, &pos, &rc) != 0)
        goto out;
    unsigned targets = m->jid_sets;
    if (set) {
        int i = set_index(set);
        if (i < 0 || i == SET_WORKING) {
            rc = cli_usage(cli, "invalid --set '%s' (scheduled, retries or dead)", set);
            goto out;
        }
        targets = 1u << i;
    }
    int has_filter = jobtype || match;
    if (pos.n && (has_filter || all)) {
        rc = cli_usage(cli, "give JIDs or a filter (--jobtype, --match, --all), not both");
        goto out;
    }
    if (!pos.n && !has_filter && !all) {
        rc = cli_usage(cli, "name the jobs: JIDs, --jobtype TYPE, --match GLOB, or --all");
        goto out;
    }
    if (all && has_filter) {
        rc = cli_usage(cli, "--all cannot be combined with --jobtype or --match");
        goto out;
    }
    if (!pos.n && !set) {
        rc = cli_usage(cli, "a filter needs --set scheduled|retries|dead");
        goto out;
    }
    filter = cJSON_CreateObject();
    if (pos.n) {
        cJSON *jids = cJSON_AddArrayToObject(filter, "jids");
        for (size_t i = 0; i < pos.n; i++)
            cJSON_AddItemToArray(jids, cJSON_CreateString(pos.v[i]));
    }
    if (jobtype)
        cJSON_AddStringToObject(filter, "jobtype", jobtype);
    if (match)
        cJSON_AddStringToObject(filter, "regexp", match);

    /* What can change: the sets acted on, and for kill the dead set too. */
    unsigned shown = targets | (strcmp(m->op, "kill") == 0 ? 1u << SET_DEAD : 0);
    const cJSON *count_filter = all ? NULL : filter;
    struct set_counts before = {0}, after = {0};
    if ((rc = cli_connect(cli)) != CLI_OK || (rc = count_sets(cli, shown, count_filter, &before)) != CLI_OK)
        goto out;
    for (int i = 0; i < NSETS; i++) {
        if (!(targets & (1u << i)))
            continue;
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "cmd", m->op);
        cJSON_AddStringToObject(doc, "target", set_names[i]);
        if (!all)
            cJSON_AddItemToObject(doc, "filter", cJSON_Duplicate(filter, 1));
        char *text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        char what[64];
        snprintf(what, sizeof what, "MUTATE %s on %s", m->op, set_names[i]);
        rc = cli_check(cli, spool_mutate(cli->client, text), what);
        cJSON_free(text);
        if (rc != CLI_OK)
            goto out;
    }
    after.is_by_size = before.is_by_size;
    if ((rc = count_sets(cli, shown, count_filter, &after)) != CLI_OK)
        goto out;

    double matched = 0;
    int changed = 0;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "cmd", m->op);
    cJSON_AddStringToObject(doc, "counts", before.is_by_size ? "set sizes" : "matching jobs");
    cJSON *sets = cJSON_AddObjectToObject(doc, "sets");
    const char *headers[] = {"SET", "BEFORE", "AFTER"};
    struct table *t = table_new(3, headers);
    table_align_right(t, 1);
    table_align_right(t, 2);
    for (int i = 0; i < NSETS; i++) {
        if (!(shown & (1u << i)))
            continue;
        double b = before.n[i], a = after.n[i];
        if (targets & (1u << i))
            matched += b;
        changed |= a != b;
        cJSON *s = cJSON_AddObjectToObject(sets, set_names[i]);
        cJSON_AddNumberToObject(s, "before", b);
        cJSON_AddNumberToObject(s, "after", a);
        char bs[32], as[32];
        snprintf(bs, sizeof bs, "%.0f", b);
        snprintf(as, sizeof as, "%.0f", a);
        const char *row[] = {set_names[i], bs, as};
        table_add_row(t, row);
    }
    if (cli->want_json)
        cli_print_json(doc);
    else
        table_print(t, stdout);
    table_free(t);
    cJSON_Delete(doc);
    if (before.is_by_size && !changed)
        fprintf(stderr, "spool %s: no set changed size: no job matched (the server has no JOBS to count "
                        "the jobs %s touched)\n", m->name, m->op);
    else if (!before.is_by_size && matched == 0)
        fprintf(stderr, "spool %s: no job matched\n", m->name);
out:
    cJSON_Delete(filter);
    strv_release(&pos);
    return rc;
}

#define SETS_ALL ((1u << 0) | (1u << 1) | (1u << SET_DEAD))

int cmd_retry(struct cli *cli, int argc, char **argv)
{
    static const struct mutate_cmd m = {
        "retry", "requeue", SETS_ALL,
        "Puts jobs of the scheduled, retries or dead set back on their queues now\n"
        "(MUTATE requeue). Jobs are named by jid, or by a filter on one set. With JIDs\n"
        "and no --set, all three sets are searched. Prints, for each set, how many jobs\n"
        "the command names before and after (MUTATE does not say how many it touched)."};
    return run_mutate(cli, &m, argc, argv);
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
    static const struct mutate_cmd m = {
        "kill", "kill", (1u << 0) | (1u << 1),
        "Moves jobs of the scheduled or retries set to the dead set (MUTATE kill).\n"
        "Jobs are named by jid, or by a filter on one set. With JIDs and no --set,\n"
        "scheduled and retries are searched. Prints, for each set and the dead set, how\n"
        "many jobs the command names before and after."};
    return run_mutate(cli, &m, argc, argv);
}

int cmd_delete(struct cli *cli, int argc, char **argv)
{
    static const struct mutate_cmd m = {
        "delete", "discard", SETS_ALL,
        "Deletes jobs of the scheduled, retries or dead set (MUTATE discard). Jobs are\n"
        "named by jid, or by a filter on one set; --all empties the set. With JIDs and\n"
        "no --set, all three sets are searched. Prints, for each set, how many jobs the\n"
        "command names before and after."};
    return run_mutate(cli, &m, argc, argv);
}
