/*
 * spool info: the server's INFO document, as key/value lines or (--json)
 * exactly as the server sent it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"

static const char info_description[] =
    "Shows the server's version, uptime, connections, the job counters (processed,\n"
    "failures), the number of queues and enqueued jobs, and the size of each set\n"
    "(scheduled, retries, dead, working). With --json, prints the server's INFO\n"
    "document unchanged.";

static const char *json_string(const cJSON *doc, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(doc, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : "?";
}

static void print_info(const cJSON *doc)
{
    enum { NKEYS = 14 };
    char values[NKEYS][128];
    const char *keys[NKEYS] = {"server",    "now",     "uptime",  "connections", "memory",
                               "processed", "failures", "queues", "enqueued",    "scheduled",
                               "retries",   "dead",     "working", "workers"};
    const char *version = json_string(doc, "server", "spool_version");
    if (strcmp(version, "?") == 0)
        version = json_string(doc, "server", "faktory_version");
    snprintf(values[0], sizeof values[0], "%s %s (Faktory protocol %s)",
             json_string(doc, "server", "description"), version,
             json_string(doc, "server", "faktory_version"));
    snprintf(values[1], sizeof values[1], "%s", json_string(doc, "now", NULL));
    char up[32];
    cli_format_seconds(cli_json_number(doc, "server", "uptime", NULL), up);
    snprintf(values[2], sizeof values[2], "%s", up);
    snprintf(values[3], sizeof values[3], "%.0f", cli_json_number(doc, "server", "connections", NULL));
    snprintf(values[4], sizeof values[4], "%.0f MB", cli_json_number(doc, "server", "used_memory_mb", NULL));
    snprintf(values[5], sizeof values[5], "%.0f", cli_json_number(doc, "faktory", "total_processed", NULL));
    snprintf(values[6], sizeof values[6], "%.0f", cli_json_number(doc, "faktory", "total_failures", NULL));
    snprintf(values[7], sizeof values[7], "%.0f", cli_json_number(doc, "faktory", "total_queues", NULL));
    snprintf(values[8], sizeof values[8], "%.0f", cli_json_number(doc, "faktory", "total_enqueued", NULL));
    const char *sets[] = {"scheduled", "retries", "dead", "working"};
    for (int i = 0; i < 4; i++)
        snprintf(values[9 + i], sizeof values[9 + i], "%.0f", cli_json_number(doc, "faktory", "sets", sets[i]));
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "faktory"), "tasks"), "Workers");
    snprintf(values[13], sizeof values[13], "%.0f", cli_json_number(workers, "size", NULL, NULL));
    const char *vals[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        vals[i] = values[i];
    table_print_pairs(keys, vals, NKEYS, stdout);
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
    const struct opt_spec specs[] = {{NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}};
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "info [--json]", info_description, argc, argv, &pos, &rc) != 0)
        goto out;
    if (pos.n > 0) {
        rc = cli_usage(cli, "unexpected argument '%s'", pos.v[0]);
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;
    cJSON *doc = cli_info(cli, &rc);
    if (!doc)
        goto out;
    if (cli->want_json)
        cli_print_json(doc);
    else
        print_info(doc);
    cJSON_Delete(doc);
out:
    strv_release(&pos);
    return rc;
}
