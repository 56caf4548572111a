/*
 * spool workers: the worker processes (WORKERS, a spool extension), and
 * quiet/stop for some or all of them (WORKERS QUIET|STOP).
 *
 * Quiet and stop go through WORKERS QUIET|STOP rather than a BEAT naming
 * the wid: a BEAT would also count as that process's heartbeat and delay
 * its reaping. Each wid is sent in its own command, so that one unknown wid
 * is reported without hiding what happened to the others (the server stops
 * at the first unknown wid of a command).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/sbuf.h"
#include "common/xalloc.h"

static const char workers_description[] =
    "spool workers                      lists the worker processes\n"
    "spool workers quiet WID...|--all   asks them to stop fetching jobs\n"
    "spool workers stop WID...|--all    asks them to finish their jobs and exit\n"
    "\n"
    "The list shows each process's wid, hostname, pid, state (running, quiet,\n"
    "terminate), the number of jobs it holds (BUSY), how long ago it last sent a\n"
    "heartbeat and its memory (RSS). --json prints the server's WORKERS document.\n"
    "A process learns a quiet or stop request at its next heartbeat (BEAT, about\n"
    "every 15 s). States move one way only: running -> quiet -> stop.\n"
    "Needs a spool server: WORKERS is a spool extension of FWP.";

/* The string at o[key], or NULL when it is absent, not a string or empty. */
static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) && *x->valuestring ? x->valuestring : NULL;
}

/* A wid that can be sent as one word of a command line. */
static int is_wid(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

static int signal_workers(struct cli *cli, const char *verb, const char *past, const struct strv *wids)
{
    int rc = cli_connect(cli);
    if (rc != CLI_OK)
        return rc;
    struct sbuf line;
    sbuf_init(&line);
    for (size_t i = 0; i < wids->n; i++) {
        sbuf_reset(&line);
        sbuf_addf(&line, "WORKERS %s %s", verb, wids->v[i]);
        int wrc = spool_command(cli->client, line.buf, NULL);
        if (wrc == SPOOL_ESERVER) {
            rc = cli_fail(cli, CLI_REFUSED, "worker %s: %s", wids->v[i], cli_server_error(cli->client));
            continue;
        }
        if (wrc != 0) {
            rc = cli_check(cli, wrc, "WORKERS");
            break;
        }
        if (strcmp(wids->v[i], "*") == 0)
            printf("%s every worker process\n", past);
        else
            printf("%s %s\n", past, wids->v[i]);
    }
    sbuf_release(&line);
    return rc;
}

static int by_wid(const void *a, const void *b)
{
    const char *x = json_str(*(const cJSON *const *)a, "wid"), *y = json_str(*(const cJSON *const *)b, "wid");
    return strcmp(x ? x : "", y ? y : "");
}

/* Writes a size in KiB for a table: "812 KiB", "23.4 MiB", "1.2 GiB"; "-" when unknown. */
static void format_rss(double kb, char out[32])
{
    if (!(kb > 0))
        snprintf(out, 32, "-");
    else if (kb < 1024)
        snprintf(out, 32, "%.0f KiB", kb);
    else if (kb < 1024 * 1024)
        snprintf(out, 32, "%.1f MiB", kb / 1024);
    else
        snprintf(out, 32, "%.1f GiB", kb / (1024 * 1024));
}

static void print_workers_table(const cJSON *list)
{
    int n = cJSON_GetArraySize(list);
    const cJSON **rows = xcalloc(n > 0 ? (size_t)n : 1, sizeof *rows);
    int k = 0;
    double busy = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, list) rows[k++] = w;
    qsort(rows, (size_t)k, sizeof *rows, by_wid);
    const char *headers[] = {"WID", "HOSTNAME", "PID", "STATE", "BUSY", "LAST_BEAT", "RSS"};
    struct table *t = table_new(7, headers);
    table_align_right(t, 2);
    table_align_right(t, 4);
    table_align_right(t, 5);
    table_align_right(t, 6);
    int64_t now = cli_now_ns();
    for (int i = 0; i < k; i++) {
        char pid[32], nbusy[32], beat[48] = "", rss[32];
        snprintf(pid, sizeof pid, "%.0f", cli_json_number(rows[i], "pid", NULL, NULL));
        double b = cli_json_number(rows[i], "busy", NULL, NULL);
        busy += b;
        snprintf(nbusy, sizeof nbusy, "%.0f", b);
        int64_t ns;
        if (cli_json_time(cJSON_GetObjectItemCaseSensitive(rows[i], "last_beat_at"), &ns) == 0) {
            char age[32];
            double d = (double)(now - ns) / 1e9;
            cli_format_seconds(d > 0 ? d : 0, age);
            snprintf(beat, sizeof beat, "%s ago", age);
        }
        format_rss(cli_json_number(rows[i], "rss_kb", NULL, NULL), rss);
        const char *row[] = {json_str(rows[i], "wid"), json_str(rows[i], "hostname"), pid,
                             json_str(rows[i], "state"), nbusy, *beat ? beat : NULL, rss};
        table_add_row(t, row);
    }
    if (k > 0)
        table_print(t, stdout);
    table_free(t);
    free(rows);
    printf("%d worker process%s, %.0f job%s running\n", k, k == 1 ? "" : "es", busy, busy == 1 ? "" : "s");
}

int cmd_workers(struct cli *cli, int argc, char **argv)
{
    int all = 0;
    const struct opt_spec specs[] = {
        {"all", 'a', OPT_FLAG, NULL, "with quiet or stop: every worker process", &all, NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "workers [quiet|stop WID...|--all]", workers_description, argc,
                  argv, &pos, &rc) != 0)
        goto out;
    if (pos.n > 0) {
        const char *verb = NULL, *past = NULL;
        if (strcmp(pos.v[0], "quiet") == 0) {
            verb = "QUIET";
            past = "quieted";
        } else if (strcmp(pos.v[0], "stop") == 0) {
            verb = "STOP";
            past = "stopping";
        } else {
            rc = cli_usage(cli, "unknown action '%s' (quiet or stop)", pos.v[0]);
            goto out;
        }
        if (pos.n < 2 && !all) {
            rc = cli_usage(cli, "workers %s needs the wid of one or more worker processes, or --all", pos.v[0]);
            goto out;
        }
        if (pos.n > 1 && all) {
            rc = cli_usage(cli, "give WIDs or --all, not both");
            goto out;
        }
        for (size_t i = 1; i < pos.n; i++)
            if (!is_wid(pos.v[i])) {
                rc = cli_usage(cli, "invalid wid '%s' (no spaces or control characters)", pos.v[i]);
                goto out;
            }
        const char *every = "*";
        struct strv wids = all ? (struct strv){&every, 1, 0} : (struct strv){pos.v + 1, pos.n - 1, 0};
        rc = signal_workers(cli, verb, past, &wids);
        goto out;
    }
    if (all) {
        rc = cli_usage(cli, "--all goes with quiet or stop");
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;
    cJSON *list = cli_command_json(cli, "WORKERS", &rc);
    if (!list)
        goto out;
    if (!cJSON_IsArray(list))
        rc = cli_fail(cli, CLI_REFUSED, "WORKERS: the server's reply is not a JSON array");
    else if (cli->want_json)
        cli_print_json(list);
    else
        print_workers_table(list);
    cJSON_Delete(list);
out:
    strv_release(&pos);
    return rc;
}
