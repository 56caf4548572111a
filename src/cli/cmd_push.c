/*
 * spool push: one job from the command line, or JSON lines from stdin sent
 * with PUSHB in batches. Every line's problem is reported with its line
 * number; the exit code is 1 when any line failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/timefmt.h"
#include "common/xalloc.h"

#define PUSH_BATCH_DEFAULT 500
#define PUSH_BATCH_MAX 10000
/* A batch is sent once its JSON reaches this size, well under the server's
 * 16 MiB line limit. */
#define PUSH_BATCH_BYTES (4u << 20)
/* Longest stdin line accepted; the server refuses jobs over 1 MiB anyway. */
#define PUSH_LINE_MAX (16u << 20)
#define PROGRESS_AFTER_NS (1000 * NS_PER_MS)
#define PROGRESS_EVERY_NS (200 * NS_PER_MS)

struct push_opts {
    const char *queue, *at, *in, *retry, *reserve_for, *custom, *jid, *batch;
    /* Validated forms. */
    int64_t retry_n, reserve_for_s, in_s, batch_n;
    cJSON *custom_obj;
    char at_text[TIMEFMT_MAX]; /* --at or --in as RFC 3339 UTC; "" when neither */
};

static const char push_usage[] = "push [options] JOBTYPE [ARG...]\n       spool push [options] -";
static const char push_description[] =
    "Pushes a job of type JOBTYPE whose args are the ARGs, and prints its jid.\n"
    "Each ARG is read as a JSON value (42, true, null, \"a b\", [1,2], {\"k\":1});\n"
    "an ARG that is not valid JSON is taken as a string, so `spool push Email bob`\n"
    "sends [\"bob\"]. Put -- before an ARG that starts with '-' (a negative number).\n"
    "\n"
    "With - instead of JOBTYPE, reads one job per line from stdin as a JSON object\n"
    "({\"jobtype\":\"Email\",\"args\":[\"bob\"]}) and pushes them with PUSHB in batches.\n"
    "A line without a jid gets a fresh one; --queue, --retry, --reserve-for,\n"
    "--at/--in and --custom fill in what a line leaves out. Blank lines are skipped.\n"
    "Each refused line is reported on stderr with its line number; the exit status\n"
    "is 1 when any line was refused. A progress line is shown on a terminal.";

/* Validates the option values shared by both modes. */
static int check_opts(struct cli *cli, struct push_opts *o)
{
    if (o->queue && !cli_is_queue_name(o->queue))
        return cli_usage(cli, "invalid --queue '%s': names are made of letters, digits, '.', '_' and '-'",
                         o->queue);
    if (o->at && o->in)
        return cli_usage(cli, "give --at or --in, not both");
    if (o->at) {
        int64_t ns;
        const char *why;
        if (timefmt_parse(o->at, strlen(o->at), &ns, &why) != 0)
            return cli_usage(cli, "invalid --at '%s': %s (expected RFC 3339, e.g. 2030-01-02T15:04:05Z)",
                             o->at, why);
        timefmt_format(ns, o->at_text);
    }
    if (o->in) {
        if (cli_parse_duration(o->in, &o->in_s) != 0)
            return cli_usage(cli, "invalid --in '%s' (expected a duration such as 30s, 5m, 2h, 1d or 1h30m)",
                             o->in);
        timefmt_format(cli_now_ns() + o->in_s * NS_PER_S, o->at_text);
    }
    if (o->retry && cli_parse_int(o->retry, -1000000, 1000000, &o->retry_n) != 0)
        return cli_usage(cli, "invalid --retry '%s' (expected a whole number; 0 discards on failure, "
                              "-1 goes to dead)", o->retry);
    if (o->reserve_for && cli_parse_int(o->reserve_for, 1, 86400, &o->reserve_for_s) != 0)
        return cli_usage(cli, "invalid --reserve-for '%s' (expected seconds, 1 to 86400)", o->reserve_for);
    if (o->custom) {
        o->custom_obj = cJSON_Parse(o->custom);
        if (!cJSON_IsObject(o->custom_obj))
            return cli_usage(cli, "invalid --custom '%s' (expected a JSON object, e.g. '{\"tenant\":7}')",
                             o->custom);
    }
    if (o->jid && strlen(o->jid) < 8)
        return cli_usage(cli, "invalid --jid '%s' (at least 8 characters)", o->jid);
    o->batch_n = PUSH_BATCH_DEFAULT;
    if (o->batch && cli_parse_int(o->batch, 1, PUSH_BATCH_MAX, &o->batch_n) != 0)
        return cli_usage(cli, "invalid --batch '%s' (expected 1 to %d)", o->batch, PUSH_BATCH_MAX);
    return CLI_OK;
}

/* An ARG: JSON when the whole of it parses, else a string. */
static cJSON *arg_value(const char *arg)
{
    cJSON *v = cJSON_ParseWithOpts(arg, NULL, 1);
    return v ? v : cJSON_CreateString(arg);
}

/* ---- push - ---- */

struct batch_entry {
    spool_job *job;
    long line;
    size_t bytes;
};

struct stdin_push {
    struct cli *cli;
    struct push_opts *o;
    struct batch_entry *batch;
    size_t n;
    size_t bytes;
    long lines, pushed, failed;
    cJSON *errors; /* [{line, jid, error}] for --json */
    int is_tty;
    int progress_shown;
    int64_t started_ns, progress_ns;
};

static void progress_clear(struct stdin_push *p)
{
    if (p->progress_shown) {
        fputs("\r\033[K", stderr);
        p->progress_shown = 0;
    }
}

static void progress_update(struct stdin_push *p)
{
    if (!p->is_tty)
        return;
    int64_t now = cli_now_ns();
    if (now - p->started_ns < PROGRESS_AFTER_NS || now - p->progress_ns < PROGRESS_EVERY_NS)
        return;
    p->progress_ns = now;
    fprintf(stderr, "\r\033[Kspool push: %ld lines read, %ld pushed, %ld failed", p->lines, p->pushed,
            p->failed);
    fflush(stderr);
    p->progress_shown = 1;
}

static void line_error(struct stdin_push *p, long line, const char *jid, const char *what)
{
    progress_clear(p);
    p->failed++;
    if (jid)
        fprintf(stderr, "spool push: line %ld (jid %s): %s\n", line, jid, what);
    else
        fprintf(stderr, "spool push: line %ld: %s\n", line, what);
    if (p->errors) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "line", (double)line);
        if (jid)
            cJSON_AddStringToObject(e, "jid", jid);
        else
            cJSON_AddNullToObject(e, "jid");
        cJSON_AddStringToObject(e, "error", what);
        cJSON_AddItemToArray(p->errors, e);
    }
}

/* Sends the batch. Returns CLI_OK, or CLI_UNREACHABLE when the connection failed. */
static int flush_batch(struct stdin_push *p)
{
    if (p->n == 0)
        return CLI_OK;
    spool_job **jobs = xcalloc(p->n, sizeof *jobs);
    char **errs = xcalloc(p->n, sizeof *errs);
    for (size_t i = 0; i < p->n; i++)
        jobs[i] = p->batch[i].job;
    int rc = spool_push_many(p->cli->client, jobs, p->n, errs);
    int code = CLI_OK;
    if (rc >= 0) {
        for (size_t i = 0; i < p->n; i++) {
            if (errs[i]) {
                const char *e = errs[i];
                if (strncmp(e, "ERR ", 4) == 0)
                    e += 4;
                line_error(p, p->batch[i].line, spool_job_jid(jobs[i]), e);
                spool_free(errs[i]);
            } else {
                p->pushed++;
            }
        }
    } else if (cli_exit_for(rc) == CLI_UNREACHABLE) {
        code = CLI_UNREACHABLE;
        progress_clear(p);
        cli_check(p->cli, rc, "PUSHB");
        fprintf(stderr, "spool push: lines %ld to %ld and after were not confirmed (the server may "
                        "or may not hold them)\n", p->batch[0].line, p->batch[p->n - 1].line);
    } else {
        /* The batch as a whole was refused: every line in it failed. */
        char why[1100];
        snprintf(why, sizeof why, "the batch was refused: %s",
                 rc == SPOOL_ESERVER ? cli_server_error(p->cli->client) : spool_strerror(rc));
        for (size_t i = 0; i < p->n; i++)
            line_error(p, p->batch[i].line, spool_job_jid(jobs[i]), why);
    }
    for (size_t i = 0; i < p->n; i++)
        spool_job_free(p->batch[i].job);
    free(jobs);
    free(errs);
    p->n = 0;
    p->bytes = 0;
    progress_update(p);
    return code;
}

/* Fills in what the line leaves out from the options. */
static void apply_defaults(cJSON *job, const struct push_opts *o)
{
    if (o->queue && !cJSON_HasObjectItem(job, "queue"))
        cJSON_AddStringToObject(job, "queue", o->queue);
    if (o->retry && !cJSON_HasObjectItem(job, "retry"))
        cJSON_AddNumberToObject(job, "retry", (double)o->retry_n);
    if (o->reserve_for && !cJSON_HasObjectItem(job, "reserve_for"))
        cJSON_AddNumberToObject(job, "reserve_for", (double)o->reserve_for_s);
    if (o->at_text[0] && !cJSON_HasObjectItem(job, "at"))
        cJSON_AddStringToObject(job, "at", o->at_text);
    if (o->custom_obj) {
        cJSON *custom = cJSON_GetObjectItemCaseSensitive(job, "custom");
        if (!custom)
            custom = cJSON_AddObjectToObject(job, "custom");
        if (cJSON_IsObject(custom)) {
            const cJSON *kv;
            cJSON_ArrayForEach(kv, o->custom_obj)
            {
                if (!cJSON_HasObjectItem(custom, kv->string))
                    cJSON_AddItemToObject(custom, kv->string, cJSON_Duplicate(kv, 1));
            }
        }
    }
}

static int push_one(struct cli *cli, struct push_opts *o, const char *jobtype, const struct strv *args)
{
    char jid[25];
    if (!o->jid)
        cli_new_jid(jid);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "jid", o->jid ? o->jid : jid);
    cJSON_AddStringToObject(obj, "jobtype", jobtype);
    cJSON *arr = cJSON_AddArrayToObject(obj, "args");
    for (size_t i = 0; i < args->n; i++)
        cJSON_AddItemToArray(arr, arg_value(args->v[i]));
    apply_defaults(obj, o);
    char *json = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!json)
        abort(); /* only out of memory: the CLI aborts then */

    spool_job *job = NULL;
    int rc = spool_job_from_json(json, &job);
    cJSON_free(json);
    if (rc != 0) {
        rc = cli_fail(cli, CLI_REFUSED, "libspool refused the job: %s", spool_strerror(rc));
        goto done;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto done;
    if ((rc = cli_check(cli, spool_push(cli->client, job), "PUSH")) != CLI_OK)
        goto done;
    if (cli->want_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "jid", spool_job_jid(job));
        cJSON_AddStringToObject(doc, "queue", o->queue ? o->queue : "default");
        if (o->at_text[0])
            cJSON_AddStringToObject(doc, "at", o->at_text);
        cli_print_json(doc);
        cJSON_Delete(doc);
    } else {
        puts(spool_job_jid(job));
    }
done:
    spool_job_free(job);
    return rc;
}

/* Parses one line into the batch; a problem is reported against the line. */
static int add_line(struct stdin_push *p, char *text, size_t len)
{
    long line = p->lines;
    cJSON *job = cJSON_ParseWithLength(text, len);
    if (!job) {
        line_error(p, line, NULL, "not valid JSON");
        return CLI_OK;
    }
    if (!cJSON_IsObject(job)) {
        cJSON_Delete(job);
        line_error(p, line, NULL, "not a JSON object (expected {\"jobtype\":...,\"args\":[...]})");
        return CLI_OK;
    }
    const cJSON *jobtype = cJSON_GetObjectItemCaseSensitive(job, "jobtype");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(job, "jid");
    if (!cJSON_IsString(jobtype) || !jobtype->valuestring[0]) {
        cJSON_Delete(job);
        line_error(p, line, NULL, "needs a \"jobtype\" string");
        return CLI_OK;
    }
    if (jid && !cJSON_IsString(jid)) {
        cJSON_Delete(job);
        line_error(p, line, NULL, "\"jid\" must be a string");
        return CLI_OK;
    }
    if (!jid) {
        char fresh[25];
        cli_new_jid(fresh);
        cJSON_AddStringToObject(job, "jid", fresh);
    }
    apply_defaults(job, p->o);
    char *json = cJSON_PrintUnformatted(job);
    cJSON_Delete(job);
    if (!json)
        abort(); /* only out of memory */
    spool_job *sj = NULL;
    int rc = spool_job_from_json(json, &sj);
    size_t bytes = strlen(json);
    cJSON_free(json);
    if (rc != 0) {
        line_error(p, line, NULL, spool_strerror(rc));
        return CLI_OK;
    }
    /* PUSHB reports errors by jid: a jid already in this batch starts a new
     * one, so that every error names exactly one line. */
    const char *this_jid = spool_job_jid(sj);
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(spool_job_jid(p->batch[i].job), this_jid) == 0) {
            int code = flush_batch(p);
            if (code != CLI_OK) {
                spool_job_free(sj);
                return code;
            }
            break;
        }
    }
    p->batch[p->n++] = (struct batch_entry){sj, line, bytes};
    p->bytes += bytes;
    if (p->n >= (size_t)p->o->batch_n || p->bytes >= PUSH_BATCH_BYTES)
        return flush_batch(p);
    return CLI_OK;
}

static int push_stdin(struct cli *cli, struct push_opts *o)
{
    int rc = cli_connect(cli);
    if (rc != CLI_OK)
        return rc;
    struct stdin_push p = {.cli = cli, .o = o};
    p.batch = xcalloc((size_t)o->batch_n, sizeof *p.batch);
    p.is_tty = isatty(STDERR_FILENO);
    p.started_ns = cli_now_ns();
    if (cli->want_json)
        p.errors = cJSON_CreateArray();

    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, stdin)) >= 0) {
        p.lines++;
        size_t len = (size_t)n;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        size_t lead = strspn(buf, " \t");
        if (lead >= len)
            continue;
        if (len > PUSH_LINE_MAX) {
            line_error(&p, p.lines, NULL, "line too long (limit 16 MiB)");
            continue;
        }
        rc = add_line(&p, buf + lead, len - lead);
        if (rc != CLI_OK)
            break;
        progress_update(&p);
    }
    if (rc == CLI_OK && ferror(stdin)) {
        progress_clear(&p);
        rc = cli_fail(cli, CLI_REFUSED, "reading stdin failed after line %ld", p.lines);
    }
    if (rc == CLI_OK)
        rc = flush_batch(&p);
    for (size_t i = 0; i < p.n; i++)
        spool_job_free(p.batch[i].job);
    progress_clear(&p);
    free(buf);
    free(p.batch);

    if (cli->want_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "lines", (double)p.lines);
        cJSON_AddNumberToObject(doc, "pushed", (double)p.pushed);
        cJSON_AddNumberToObject(doc, "failed", (double)p.failed);
        cJSON_AddItemToObject(doc, "errors", p.errors);
        cli_print_json(doc);
        cJSON_Delete(doc);
    }
    fprintf(stderr, "spool push: pushed %ld job%s, %ld failed (%ld lines read)\n", p.pushed,
            p.pushed == 1 ? "" : "s", p.failed, p.lines);
    if (rc == CLI_OK && p.failed > 0)
        rc = CLI_REFUSED;
    return rc;
}

int cmd_push(struct cli *cli, int argc, char **argv)
{
    struct push_opts o = {0};
    const struct opt_spec specs[] = {
        {"queue", 'q', OPT_STRING, "QUEUE", "queue to push to (default: default)", NULL, &o.queue, NULL},
        {"at", 0, OPT_STRING, "TIME", "run at this RFC 3339 time (e.g. 2030-01-02T15:04:05Z)", NULL, &o.at,
         NULL},
        {"in", 0, OPT_STRING, "DURATION", "run after this delay: 30s, 5m, 2h, 1d, 1h30m", NULL, &o.in, NULL},
        {"retry", 'r', OPT_STRING, "N", "retries before the dead set (server default 25; 0: discard "
                                        "on failure; -1: dead at once)", NULL, &o.retry, NULL},
        {"reserve-for", 0, OPT_STRING, "SECONDS", "reservation once fetched (server default 1800)", NULL,
         &o.reserve_for, NULL},
        {"custom", 0, OPT_STRING, "JSON", "a JSON object stored as the job's custom field", NULL, &o.custom,
         NULL},
        {"jid", 0, OPT_STRING, "JID", "the job id (default: 24 random hex digits)", NULL, &o.jid, NULL},
        {"batch", 0, OPT_STRING, "N", "with -: jobs per PUSHB (default 500)", NULL, &o.batch, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, push_usage, push_description, argc, argv, &pos, &rc) != 0)
        goto out;
    if ((rc = check_opts(cli, &o)) != CLI_OK)
        goto out;
    if (pos.n == 0) {
        rc = cli_usage(cli, "missing JOBTYPE (or - to read jobs from stdin)");
        goto out;
    }
    if (strcmp(pos.v[0], "-") == 0) {
        if (pos.n > 1)
            rc = cli_usage(cli, "push - reads the jobs from stdin and takes no ARGs");
        else if (o.jid)
            rc = cli_usage(cli, "--jid cannot be used with push - (give each line its own jid)");
        else
            rc = push_stdin(cli, &o);
        goto out;
    }
    struct strv args = {pos.v + 1, pos.n - 1, 0};
    rc = push_one(cli, &o, pos.v[0], &args);
out:
    cJSON_Delete(o.custom_obj);
    strv_release(&pos);
    return rc;
}
