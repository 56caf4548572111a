/*
 * spool cron: the server's periodic jobs (CRON, a spool extension) with
 * their schedules and next and last fire times.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"

static const char cron_description[] =
    "Lists the periodic jobs the server runs from cron.json in its config\n"
    "directory (spoold -c DIR), with each entry's schedule, time zone, jobtype,\n"
    "queue, and when it fires next and fired last. --json prints the server's\n"
    "CRON document. Edit cron.json and send spoold SIGHUP to reload it.\n"
    "Needs a spool server: CRON is a spool extension of FWP.";

/* "2026-11-28T03:00:00Z (in 5m)" or "... (2s ago)"; "-" when absent. */
static void format_when(const cJSON *item, int64_t now, char out[96])
{
    int64_t ns;
    if (cli_json_time(item, &ns) != 0) {
        snprintf(out, 96, "-");
        return;
    }
    char age[32];
    double d = (double)(ns - now) / 1e9;
    cli_format_seconds(d < 0 ? -d : d, age);
    snprintf(out, 96, "%.20s (%s%s%s)", item->valuestring, d < 0 ? "" : "in ", age,
             d < 0 ? " ago" : "");
}

static const char *field(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

int cmd_cron(struct cli *cli, int argc, char **argv)
{
    const struct opt_spec specs[] = {{NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}};
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "cron", cron_description, argc, argv, &pos, &rc) != 0)
        goto out;
    if (pos.n > 0) {
        rc = cli_usage(cli, "cron takes no arguments, got '%s'", pos.v[0]);
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;
    cJSON *list = cli_command_json(cli, "CRON", &rc);
    if (!list)
        goto out;
    if (!cJSON_IsArray(list)) {
        rc = cli_fail(cli, CLI_REFUSED, "CRON: the server's reply is not a JSON array");
    } else if (cli->want_json) {
        cli_print_json(list);
    } else {
        const char *headers[] = {"NAME", "SCHEDULE", "TZ", "JOBTYPE", "QUEUE", "NEXT", "LAST"};
        struct table *t = table_new(7, headers);
        int64_t now = cli_now_ns();
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, list)
        {
            char next[96], last[96];
            format_when(cJSON_GetObjectItemCaseSensitive(e, "next_at"), now, next);
            format_when(cJSON_GetObjectItemCaseSensitive(e, "last_at"), now, last);
            const char *row[] = {field(e, "name"),    field(e, "schedule"), field(e, "tz"),
                                 field(e, "jobtype"), field(e, "queue"),    next,
                                 last};
            table_add_row(t, row);
            n++;
        }
        if (n > 0)
            table_print(t, stdout);
        table_free(t);
        printf("%d cron entr%s\n", n, n == 1 ? "y" : "ies");
    }
    cJSON_Delete(list);
out:
    strv_release(&pos);
    return rc;
}
