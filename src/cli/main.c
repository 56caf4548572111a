/*
 * spool: the command line of the spool job server. main() reads the global
 * options (--url, --tls-ca, --json, --help, --version), then hands the rest of argv
 * to the subcommand named first. Each subcommand lives in a cmd_*.c file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"

#ifndef SPOOL_VERSION
#define SPOOL_VERSION "0.0.0"
#endif

const struct cli_command cli_commands[] = {
    {"push", "push a job (or JSON lines from stdin with -)", cmd_push},
    {"info", "show the server's counters, sets and version", cmd_info},
    {"queues", "list queues with size, latency and pause flag", cmd_queues},
    {"pause", "pause queues: fetchers skip them", cmd_pause},
    {"resume", "resume paused queues", cmd_resume},
    {"remove", "delete queues and every job in them", cmd_remove},
    {"jobs", "list the jobs of a set or a queue", cmd_jobs},
    {"retry", "requeue jobs of a set now, by jid or filter", cmd_retry},
    {"kill", "move jobs of a set to the dead set, by jid or filter", cmd_kill},
    {"delete", "delete jobs of a set, by jid or filter", cmd_delete},
    {"workers", "list worker processes; ask them to go quiet or stop", cmd_workers},
    {"cron", "list periodic jobs with their next and last fire times", cmd_cron},
    {"flush", "delete every job, queue and counter (needs --yes)", cmd_flush},
    {"work", "run a command once per job fetched from queues", cmd_work},
    {"bench", "measure push/s, process/s, latency and memory per job", cmd_bench},
    {"help", "show help for a command", cmd_help},
    {NULL, NULL, NULL},
};

static void print_usage(FILE *f)
{
    fprintf(f, "Usage: spool [--url URL] [--tls-ca FILE] [--json] COMMAND [options] [args]\n\n"
               "The command line of spool, a Faktory-compatible job server.\n\nCommands:\n");
    for (const struct cli_command *c = cli_commands; c->name; c++)
        fprintf(f, "  %-8s  %s\n", c->name, c->summary);
    fprintf(f, "\nGlobal options (also accepted after the command):\n"
               "  -u, --url URL   server URL (default: $SPOOL_URL, $FAKTORY_URL, " CLI_DEFAULT_URL ")\n"
               "      --tls-ca FILE  CA file for tcp+tls:// URLs (default: $SPOOL_TLS_CA,\n"
               "                 else the system's CAs)\n"
               "  -j, --json      print one JSON document instead of a table\n"
               "  -h, --help      show this help; 'spool help COMMAND' or 'spool COMMAND --help'\n"
               "  -V, --version   print the version\n\n"
               "Exit status: 0 ok, 1 the server refused or a job failed, 2 usage error,\n"
               "3 the server cannot be reached. See docs/cli.md.\n");
}

static const struct cli_command *find_command(const char *name)
{
    for (const struct cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int cmd_help(struct cli *cli, int argc, char **argv)
{
    if (argc == 0 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        print_usage(stdout);
        return CLI_OK;
    }
    const struct cli_command *c = find_command(argv[0]);
    if (!c)
        return cli_usage(cli, "no command named '%s'", argv[0]);
    if (c->run == cmd_help) {
        print_usage(stdout);
        return CLI_OK;
    }
    char help[] = "--help";
    char *args[] = {help, NULL};
    cli->cmd = c->name;
    return c->run(cli, 1, args);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int i = 1;
    /* Global options before the command. */
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("spool %s (libspool %s)\n", SPOOL_VERSION, spool_version());
            return CLI_OK;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
            cli.want_json = 1;
            i++;
        } else if (strcmp(a, "--url") == 0 || strcmp(a, "-u") == 0) {
            if (i + 1 >= argc)
                return cli_usage(&cli, "option %s needs a value (URL)", a);
            cli.url = argv[i + 1];
            i += 2;
        } else if (strcmp(a, "--tls-ca") == 0) {
            if (i + 1 >= argc)
                return cli_usage(&cli, "option %s needs a value (FILE)", a);
            cli.tls_ca = argv[i + 1];
            i += 2;
        } else if (strncmp(a, "--tls-ca=", 9) == 0) {
            cli.tls_ca = a + 9;
            i++;
        } else if (strncmp(a, "--url=", 6) == 0) {
            cli.url = a + 6;
            i++;
        } else {
            return cli_usage(&cli, "unknown option %s (global options: --url, --tls-ca, --json, --help, --version)", a);
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    const struct cli_command *c = find_command(argv[i]);
    if (!c)
        return cli_usage(&cli, "unknown command '%s'", argv[i]);
    cli.cmd = c->name;
    int rc = c->run(&cli, argc - i - 1, argv + i + 1);
    cli_disconnect(&cli);
    fflush(stdout);
    if (ferror(stdout)) {
        fprintf(stderr, "spool %s: could not write the output\n", c->name);
        if (rc == CLI_OK)
            rc = CLI_REFUSED;
    }
    return rc;
}
