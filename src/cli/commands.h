/*
 * commands: the entry point of every subcommand. Each takes the arguments
 * after its name (argv[0] is the first of them, not the command) and
 * returns the process's exit code (cli.h). Each parses its own options with
 * cli_parse, so `--help` works everywhere.
 */
#ifndef SPOOL_CLI_COMMANDS_H
#define SPOOL_CLI_COMMANDS_H

#include "cli/cli.h"

int cmd_push(struct cli *cli, int argc, char **argv);    /* cmd_push.c */
int cmd_info(struct cli *cli, int argc, char **argv);    /* cmd_info.c */
int cmd_queues(struct cli *cli, int argc, char **argv);  /* cmd_queue.c */
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_remove(struct cli *cli, int argc, char **argv);
int cmd_flush(struct cli *cli, int argc, char **argv);
int cmd_jobs(struct cli *cli, int argc, char **argv);    /* cmd_jobs.c */
int cmd_retry(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_delete(struct cli *cli, int argc, char **argv);
int cmd_workers(struct cli *cli, int argc, char **argv); /* cmd_workers.c */
int cmd_work(struct cli *cli, int argc, char **argv);    /* cmd_work.c */
int cmd_cron(struct cli *cli, int argc, char **argv);    /* cmd_cron.c */
int cmd_bench(struct cli *cli, int argc, char **argv);   /* cmd_bench.c */
int cmd_help(struct cli *cli, int argc, char **argv);    /* main.c */

#endif
