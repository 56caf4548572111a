/*
 * spool workers: the number of worker processes, and quiet/stop for one.
 *
 * FWP has no command that lists worker processes; INFO gives their count
 * (faktory.tasks.Workers.size). Quiet and stop are sent as a BEAT naming
 * the process's wid with current_state quiet/terminate: the server looks
 * the wid up among all processes, whichever connection the BEAT comes on,
 * and states only move forward. The BEAT also counts as a heartbeat of
 * that process (it delays its reaping by up to 60 s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/sbuf.h"

static const char workers_description[] =
    "spool workers            prints how many worker processes are connected\n"
    "spool workers quiet WID  asks those processes to stop fetching jobs\n"
    "spool workers stop WID   asks them to finish their jobs and exit\n"
    "\n"
    "A process learns a request at its next heartbeat (BEAT, about every 15 s).\n"
    "States move one way only: running -> quiet -> stop.\n"
    "\n"
    "Limitation: FWP has no command that lists worker processes, so plain\n"
    "`spool workers` only prints their number (from INFO) and exits with status 1,\n"
    "and quiet/stop need each process's wid (spool work prints its own at start).";

static int signal_workers(struct cli *cli, const char *state, const char *past, const struct strv *wids)
{
    int rc = cli_connect(cli);
    if (rc != CLI_OK)
        return rc;
    struct sbuf line;
    sbuf_init(&line);
    for (size_t i = 0; i < wids->n; i++) {
        sbuf_reset(&line);
        sbuf_adds(&line, "BEAT {\"wid\":");
        sbuf_add_json_str(&line, wids->v[i], strlen(wids->v[i]));
        sbuf_addf(&line, ",\"current_state\":\"%s\"}", state);
        char *reply = NULL;
        int brc = spool_command(cli->client, line.buf, &reply);
        spool_free(reply);
        if (brc == SPOOL_ESERVER) {
            rc = cli_fail(cli, CLI_REFUSED, "worker %s: %s", wids->v[i], cli_server_error(cli->client));
            continue;
        }
        if (brc != 0) {
            rc = cli_check(cli, brc, "BEAT");
            break;
        }
        printf("%s %s\n", past, wids->v[i]);
    }
    sbuf_release(&line);
    return rc;
}

int cmd_workers(struct cli *cli, int argc, char **argv)
{
    const struct opt_spec specs[] = {{NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}};
    struct strv pos = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_INTERLEAVED, "workers [quiet|stop WID...]", workers_description, argc, argv,
                  &pos, &rc) != 0)
        goto out;
    if (pos.n > 0) {
        const char *state = NULL, *past = NULL;
        if (strcmp(pos.v[0], "quiet") == 0) {
            state = "quiet";
            past = "quieted";
        } else if (strcmp(pos.v[0], "stop") == 0) {
            state = "terminate";
            past = "stopping";
        } else {
            rc = cli_usage(cli, "unknown action '%s' (quiet or stop)", pos.v[0]);
            goto out;
        }
        if (pos.n < 2) {
            rc = cli_usage(cli, "workers %s needs the wid of one or more worker processes", pos.v[0]);
            goto out;
        }
        struct strv wids = {pos.v + 1, pos.n - 1, 0};
        rc = signal_workers(cli, state, past, &wids);
        goto out;
    }
    if ((rc = cli_connect(cli)) != CLI_OK)
        goto out;
    cJSON *info = cli_info(cli, &rc);
    if (!info)
        goto out;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "faktory"), "tasks"), "Workers");
    double n = cli_json_number(w, "size", NULL, NULL);
    if (cli->want_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "count", n);
        cJSON_AddNullToObject(doc, "workers");
        cJSON_AddStringToObject(doc, "error", "the server has no command to list worker processes");
        cli_print_json(doc);
        cJSON_Delete(doc);
    } else {
        printf("%.0f worker process%s connected\n", n, n == 1 ? "" : "es");
    }
    cJSON_Delete(info);
    rc = cli_fail(cli, CLI_REFUSED, "cannot list the worker processes: FWP has no command for it, only "
                                    "their number is known (see 'Limitations' in docs/cli.md)");
out:
    strv_release(&pos);
    return rc;
}
