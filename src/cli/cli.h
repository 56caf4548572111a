/*
 * cli: what every `spool` subcommand shares: the invocation context, exit
 * codes, error reporting, and one call path to the server.
 *
 * Exit codes (docs/cli.md): 0 ok; 1 the server refused or a job failed;
 * 2 usage error; 3 the server cannot be reached (or the connection is lost).
 * Messages go to stderr as "spool CMD: what was wrong". Results go to
 * stdout: aligned tables, or one JSON document with --json.
 *
 * The server is reached through libspool (include/spool/spool.h); this
 * header hides which of its calls are used, so every command talks FWP
 * lines and gets typed replies back. Single-threaded except `spool work`,
 * which opens its own connections (cmd_work.c).
 */
#ifndef SPOOL_CLI_CLI_H
#define SPOOL_CLI_CLI_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/opt.h"
#include "spool/spool.h"

enum cli_exit {
    CLI_OK = 0,
    CLI_REFUSED = 1,
    CLI_USAGE = 2,
    CLI_UNREACHABLE = 3,
};

#define CLI_DEFAULT_URL "tcp://localhost:7419"


struct cli {
    const char *cmd; /* the subcommand, for messages: "push" */
    const char *url; /* --url, else SPOOL_URL, FAKTORY_URL, CLI_DEFAULT_URL */
    const char *tls_ca; /* --tls-ca: CA file for tcp+tls:// URLs, else SPOOL_TLS_CA, system CAs */
    int want_json;
    int want_help;
    spool_client *client; /* opened by cli_connect() */
};

/* A subcommand: its name, one-line summary and entry point. */
struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* The table of subcommands, ending in a zeroed entry (main.c). */
extern const struct cli_command cli_commands[];

/* Prints "spool CMD: message" and a pointer to --help; returns CLI_USAGE. */
int cli_usage(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "spool CMD: message"; returns code. */
int cli_fail(struct cli *cli, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Parses a subcommand's arguments with specs plus the options every command
 * takes (--url, --json, --help). On --help prints the help made of usage,
 * description and the options to stdout and returns -1 with *rc = 0; on a
 * usage error prints it and returns -1 with *rc = CLI_USAGE. Returns 0 when
 * the command should go on. pos must be released by the caller.
 */
int cli_parse(struct cli *cli, const struct opt_spec *specs, enum opt_mode mode, const char *usage,
              const char *description, int argc, char **argv, struct strv *pos, int *rc);

/* ---- the server (client.c) ---- */

/*
 * Connects cli->client to cli->url (NULL: SPOOL_URL, FAKTORY_URL, then
 * CLI_DEFAULT_URL, as libspool resolves it) and shakes hands. Returns 0, or
 * prints why and returns CLI_USAGE (a malformed URL), CLI_REFUSED (the
 * password was refused) or CLI_UNREACHABLE.
 */
int cli_connect(struct cli *cli);

/* Ends the connection (END), if one is open. */
void cli_disconnect(struct cli *cli);

/*
 * Turns a libspool return code from a call on cli->client into an exit
 * code, printing what went wrong (prefixed by what, e.g. "PUSH") unless rc
 * is 0: CLI_REFUSED for an error reply from the server, CLI_UNREACHABLE
 * when the connection failed.
 */
int cli_check(struct cli *cli, int rc, const char *what);

/* The exit code for a libspool error code (no message). */
int cli_exit_for(int rc);

/*
 * Sends a raw FWP line and returns the parsed JSON of its reply, or NULL
 * with the problem printed and *rc set. Free with cJSON_Delete.
 */
cJSON *cli_command_json(struct cli *cli, const char *line, int *rc);

/* INFO, parsed; as cli_command_json. */
cJSON *cli_info(struct cli *cli, int *rc);

/* The server's error text for display: spool_client_error without "ERR ". */
const char *cli_server_error(const spool_client *c);

/* ---- helpers (util.c) ---- */

/* Writes a fresh random jid (24 lowercase hex digits) into out[25]. */
void cli_new_jid(char out[25]);

/*
 * Parses a duration: a positive whole number followed by s, m, h or d, or a
 * sequence of them ("1h30m"); a bare number means seconds. Returns 0 with
 * the total in *out_s, or -1.
 */
int cli_parse_duration(const char *s, int64_t *out_s);

/* Parses a whole decimal number in [min, max]. Returns 0, or -1. */
int cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* The current time, Unix nanoseconds (CLOCK_REALTIME). */
int64_t cli_now_ns(void);

/* Writes seconds as a short human duration ("0.25s", "3m12s", "2h5m", "3d4h") into out[32]. */
void cli_format_seconds(double s, char out[32]);

/*
 * Reads an RFC 3339 string held by item (a cJSON string) into Unix
 * nanoseconds. Returns 0, or -1 when item is not a string holding a time.
 */
int cli_json_time(const cJSON *item, int64_t *out_ns);

/*
 * Writes a time for a table into out[80]: UTC to the second and how far it
 * is from now ("2030-01-02T15:04:05Z (in 3m12s)", "... (2.50s ago)").
 */
void cli_format_when(int64_t ns, int64_t now_ns, char out[80]);

/* True when s is a queue name the server accepts: [a-zA-Z0-9._-]+. */
int cli_is_queue_name(const char *s);

/* Prints doc to stdout as indented JSON and a newline. */
void cli_print_json(const cJSON *doc);

/* The number at path a.b.c in doc (0 when absent). */
double cli_json_number(const cJSON *doc, const char *a, const char *b, const char *c);

#endif
