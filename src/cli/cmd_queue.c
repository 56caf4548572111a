/*
 * Queue commands: queues (size, latency, paused), pause, resume, remove,
 * and flush. Queue names and sizes come from INFO, the pause flags from
 * INFO's faktory.paused (a spool addition; absent from Faktory's INFO, the
 * flag is then shown as unknown), latency from QUEUE LATENCY.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/xalloc.h"

static const cJSON *info_queues(const cJSON *info)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "faktory"), "queues");
}

/* 1 when queue name is in INFO's faktory.paused, 0 when not, -1 when INFO has no such list. */
static int is_paused(const cJSON *info, const char *name)
{
    const cJSON *paused =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "faktory"), "paused");
    if (!cJSON_IsArray(paused))
        return -1;
    const cJSON *p;
    cJSON_ArrayForEach(p, paused) if (cJSON_IsString(p) && strcmp(p->valuestring, name) == 0) return 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char queues_description[] =
    "Lists the server's queues (or only the QUEUEs named) with the number of jobs\n"
    "waiting in each, its latency: the age of its oldest job (QUEUE LATENCY), and\n"
    "whether it is paused (\"-\" when the server does not say, as Faktory's INFO).";

int cmd_queues(struct cli *cli, int argc, char **argv)
{
    const struct opt_spec specs[] = {{NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}};
    struct strv pos = {0};
    struct strv names = {0};
    cJSON *info = NULL, *lat = NULL;
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "queues [--json] [QUEUE...]", queues_description, argc, argv,
                  &pos, &rc) != 0)
        goto out;
    for (size_t i = 0; i < pos.n; i++)
        if (!cli_is_queue_name(pos.v[i])) {
            rc = cli_usage(cli, "invalid queue name '%s'", pos.v[i]);
            goto out;
        }
    if ((rc = cli_connect(cli)) != CLI_OK || !(info = cli_info(cli, &rc)))
        goto out;
    const cJSON *queues = info_queues(info);
    if (pos.n) {
        for (size_t i = 0; i < pos.n; i++) {
            if (cJSON_HasObjectItem(queues, pos.v[i]))
                strv_push(&names, pos.v[i]);
            else
                rc = cli_fail(cli, CLI_REFUSED, "no queue named '%s'", pos.v[i]);
        }
    } else {
        const cJSON *q;
        cJSON_ArrayForEach(q, queues) strv_push(&names, q->string);
    }
    if (names.n) {
        qsort(names.v, names.n, sizeof *names.v, by_name);
        char *text = NULL;
        int lrc = cli_check(cli, spool_queue_latency(cli->client, names.v, names.n, &text), "QUEUE LATENCY");
        if (lrc != CLI_OK) {
            rc = lrc;
            goto out;
        }
        lat = cJSON_Parse(text ? text : "");
        spool_free(text);
    }
    if (cli->want_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "queues");
        for (size_t i = 0; i < names.n; i++) {
            cJSON *q = cJSON_CreateObject();
            cJSON_AddStringToObject(q, "name", names.v[i]);
            cJSON_AddNumberToObject(q, "size", cli_json_number(queues, names.v[i], NULL, NULL));
            cJSON_AddNumberToObject(q, "latency_s", cli_json_number(lat, names.v[i], NULL, NULL));
            int p = is_paused(info, names.v[i]);
            if (p < 0)
                cJSON_AddNullToObject(q, "paused");
            else
                cJSON_AddBoolToObject(q, "paused", p);
            cJSON_AddItemToArray(arr, q);
        }
        cli_print_json(doc);
        cJSON_Delete(doc);
        goto out;
    }
    const char *headers[] = {"QUEUE", "SIZE", "LATENCY", "PAUSED"};
    struct table *t = table_new(4, headers);
    table_align_right(t, 1);
    table_align_right(t, 2);
    for (size_t i = 0; i < names.n; i++) {
        char size[32], latency[32];
        snprintf(size, sizeof size, "%.0f", cli_json_number(queues, names.v[i], NULL, NULL));
        cli_format_seconds(cli_json_number(lat, names.v[i], NULL, NULL), latency);
        int p = is_paused(info, names.v[i]);
        const char *row[] = {names.v[i], size, latency, p < 0 ? NULL : p ? "yes" : "no"};
        table_add_row(t, row);
    }
    table_print(t, stdout);
    table_free(t);
out:
    cJSON_Delete(info);
    cJSON_Delete(lat);
    strv_release(&names);
    strv_release(&pos);
    return rc;
}

/* ---- pause, resume, remove ---- */

typedef int (*queue_op)(spool_client *c, const char *const *queues, size_t n);

static int queue_admin(struct cli *cli, int argc, char **argv, const char *verb, const char *past,
                       const char *description, queue_op op)
{
    const struct opt_spec specs[] = {{NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}};
    struct strv pos = {0};
    cJSON *info = NULL;
    char usage[64];
    snprintf(usage, sizeof usage, "%s QUEUE... (or '*' for every queue)", verb);
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, usage, description, argc, argv, &pos, &rc) != 0)
        goto out;
    if (pos.n == 0) {
        rc = cli_usage(cli, "missing QUEUE (name one or more queues, or '*')");
        goto out;
    }
    for (size_t i = 0; i < pos.n; i++)
        if (strcmp(pos.v[i], "*") != 0 && !cli_is_queue_name(pos.v[i])) {
            rc = cli_usage(cli, "invalid queue name '%s'", pos.v[i]);
            goto out;
        }
    if ((rc = cli_connect(cli)) != CLI_OK || !(info = cli_info(cli, &rc)))
        goto out;
    char what[32];
    snprintf(what, sizeof what, "QUEUE %s", verb);
    if ((rc = cli_check(cli, op(cli->client, pos.v, pos.n), what)) != CLI_OK)
        goto out;
    /* The server ignores names it does not know; say so rather than claim success. */
    const cJSON *queues = info_queues(info);
    for (size_t i = 0; i < pos.n; i++) {
        if (strcmp(pos.v[i], "*") == 0)
            printf("%s every queue\n", past);
        else if (cJSON_HasObjectItem(queues, pos.v[i]))
            printf("%s %s\n", past, pos.v[i]);
        else
            rc = cli_fail(cli, CLI_REFUSED, "no queue named '%s' (a queue exists once a job was pushed to it)",
                          pos.v[i]);
    }
out:
    cJSON_Delete(info);
    strv_release(&pos);
    return rc;
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
    return queue_admin(cli, argc, argv, "pause", "paused",
                       "Pauses queues: they keep their jobs and accept pushes, but FETCH skips them\n"
                       "until they are resumed. Only existing queues can be paused.",
                       spool_queue_pause);
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
    return queue_admin(cli, argc, argv, "resume", "resumed",
                       "Resumes paused queues; fetchers waiting on them get their backlog at once.",
                       spool_queue_resume);
}

int cmd_remove(struct cli *cli, int argc, char **argv)
{
    return queue_admin(cli, argc, argv, "remove", "removed",
                       "Deletes queues together with every job waiting in them, and forgets their\n"
                       "pause flags. Jobs of these queues in the sets (scheduled, retries, dead,\n"
                       "working) are not touched.",
                       spool_queue_remove);
}

/* ---- flush ---- */

int cmd_flush(struct cli *cli, int argc, char **argv)
{
    int yes = 0;
    const struct opt_spec specs[] = {
        {"yes", 'y', OPT_FLAG, NULL, "really delete everything", &yes, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "flush --yes",
                  "Deletes every job (queues and all sets), every queue and pause flag, and the\n"
                  "counters. There is no undo, so the command refuses to run without --yes.",
                  argc, argv, &pos, &rc) != 0)
        goto out;
    if (pos.n > 0) {
        rc = cli_usage(cli, "unexpected argument '%s'", pos.v[0]);
        goto out;
    }
    if (!yes) {
        rc = cli_usage(cli, "flush deletes every job, queue and counter on the server; "
                            "add --yes if that is what you want");
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;
    if ((rc = cli_check(cli, spool_flush(cli->client), "FLUSH")) == CLI_OK)
        puts("flushed");
out:
    strv_release(&pos);
    return rc;
}
