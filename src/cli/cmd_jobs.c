/*
 * The sets: jobs (size; listing where the server allows it) and retry,
 * kill, delete through MUTATE (requeue, kill, discard).
 *
 * FWP has no command that lists the jobs of a set (Faktory's web UI reads
 * Redis directly), so `spool jobs` can report a set's size from INFO but
 * not its jobs. MUTATE answers +OK without saying how many jobs it touched,
 * so retry/kill/delete report the sets' sizes from INFO before and after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/xalloc.h"

static const char *const set_names[] = {"scheduled", "retries", "dead", "working"};
enum { NSETS = 4, SET_DEAD = 2, SET_WORKING = 3 };

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

static const char jobs_description[] =
    "Lists the jobs of a set: scheduled, retries, dead or working, newest last,\n"
    "LIMIT at a time from OFFSET, optionally only those of one jobtype or whose\n"
    "JSON matches a glob (*, ?, [...]).\n"
    "\n"
    "Limitation: FWP has no command that lists a set's jobs (Faktory's web UI reads\n"
    "its Redis directly), and neither spoold nor libspool offers one yet. The\n"
    "command therefore prints the set's size (from INFO), says on stderr that the\n"
    "listing is not available, and exits with status 1. docs/cli.md names the\n"
    "server command that would make it work.";

int cmd_jobs(struct cli *cli, int argc, char **argv)
{
    const char *limit = NULL, *offset = NULL, *jobtype = NULL, *match = NULL;
    const struct opt_spec specs[] = {
        {"limit", 'n', OPT_STRING, "N", "jobs to list (default 50)", NULL, &limit, NULL},
        {"offset", 0, OPT_STRING, "N", "jobs to skip first (default 0)", NULL, &offset, NULL},
        {"jobtype", 't', OPT_STRING, "TYPE", "only jobs of this jobtype", NULL, &jobtype, NULL},
        {"match", 'm', OPT_STRING, "GLOB", "only jobs whose JSON matches this glob", NULL, &match, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    cJSON *info = NULL;
    int rc;
    int64_t limit_n = 50, offset_n = 0;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "jobs scheduled|retries|dead|working [options]", jobs_description,
                  argc, argv, &pos, &rc) != 0)
        goto out;
    if (pos.n != 1 || set_index(pos.v[0]) < 0) {
        rc = pos.n == 0 ? cli_usage(cli, "missing the set: scheduled, retries, dead or working")
             : pos.n > 1 ? cli_usage(cli, "unexpected argument '%s'", pos.v[1])
                         : cli_usage(cli, "unknown set '%s' (scheduled, retries, dead or working)", pos.v[0]);
        goto out;
    }
    if (limit && cli_parse_int(limit, 1, 100000, &limit_n) != 0) {
        rc = cli_usage(cli, "invalid --limit '%s' (1 to 100000)", limit);
        goto out;
    }
    if (offset && cli_parse_int(offset, 0, INT64_MAX, &offset_n) != 0) {
        rc = cli_usage(cli, "invalid --offset '%s' (a whole number from 0)", offset);
        goto out;
    }
    int set = set_index(pos.v[0]);
    if ((rc = cli_connect(cli)) != CLI_OK || !(info = cli_info(cli, &rc)))
        goto out;
    double size = set_size(info, set);
    if (cli->want_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "set", set_names[set]);
        cJSON_AddNumberToObject(doc, "size", size);
        cJSON_AddNumberToObject(doc, "limit", (double)limit_n);
        cJSON_AddNumberToObject(doc, "offset", (double)offset_n);
        cJSON_AddNullToObject(doc, "jobs");
        cJSON_AddStringToObject(doc, "error", "the server has no command to list the jobs of a set");
        cli_print_json(doc);
        cJSON_Delete(doc);
    } else {
        printf("%s: %.0f job%s\n", set_names[set], size, size == 1 ? "" : "s");
    }
    rc = cli_fail(cli, CLI_REFUSED,
                  "cannot list the jobs: FWP has no command that lists a set, only its size is known "
                  "(see 'Limitations' in docs/cli.md)");
out:
    cJSON_Delete(info);
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
    cJSON *before = NULL, *after = NULL, *filter = NULL;
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

    if ((rc = cli_connect(cli)) != CLI_OK || !(before = cli_info(cli, &rc)))
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
    if (!(after = cli_info(cli, &rc)))
        goto out;

    /* What changed, as far as INFO can tell: kill also grows the dead set. */
    unsigned shown = targets | (strcmp(m->op, "kill") == 0 ? 1u << SET_DEAD : 0);
    int changed = 0;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "cmd", m->op);
    cJSON *sets = cJSON_AddObjectToObject(doc, "sets");
    const char *headers[] = {"SET", "BEFORE", "AFTER"};
    struct table *t = table_new(3, headers);
    table_align_right(t, 1);
    table_align_right(t, 2);
    for (int i = 0; i < NSETS; i++) {
        if (!(shown & (1u << i)))
            continue;
        double b = set_size(before, i), a = set_size(after, i);
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
    if (!changed)
        fprintf(stderr, "spool %s: no set changed size: no job matched (the server does not say how "
                        "many jobs %s touched)\n", m->name, m->op);
out:
    cJSON_Delete(before);
    cJSON_Delete(after);
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
        "and no --set, all three sets are searched. Prints each set's size before and\n"
        "after (MUTATE does not report how many jobs it touched)."};
    return run_mutate(cli, &m, argc, argv);
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
    static const struct mutate_cmd m = {
        "kill", "kill", (1u << 0) | (1u << 1),
        "Moves jobs of the scheduled or retries set to the dead set (MUTATE kill).\n"
        "Jobs are named by jid, or by a filter on one set. With JIDs and no --set,\n"
        "scheduled and retries are searched. Prints the sets' sizes before and after."};
    return run_mutate(cli, &m, argc, argv);
}

int cmd_delete(struct cli *cli, int argc, char **argv)
{
    static const struct mutate_cmd m = {
        "delete", "discard", SETS_ALL,
        "Deletes jobs of the scheduled, retries or dead set (MUTATE discard). Jobs are\n"
        "named by jid, or by a filter on one set; --all empties the set. With JIDs and\n"
        "no --set, all three sets are searched. Prints the sets' sizes before and after."};
    return run_mutate(cli, &m, argc, argv);
}
