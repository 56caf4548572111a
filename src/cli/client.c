/*
 * The CLI's side of libspool: connecting, and turning libspool's return
 * codes into the CLI's exit codes and messages.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const char *cli_server_error(const spool_client *c)
{
    const char *e = spool_client_error(c);
    if (strncmp(e, "ERR ", 4) == 0)
        e += 4;
    return e;
}

int cli_exit_for(int rc)
{
    switch (rc) {
    case 0:
        return CLI_OK;
    case SPOOL_ESERVER:
    case SPOOL_EAUTH:
    case SPOOL_EJSON:
    case SPOOL_EARG:
    case SPOOL_ETIME:
    case SPOOL_ETOOBIG:
        return CLI_REFUSED;
    case SPOOL_EURL:
    case SPOOL_ETLS:
        return CLI_USAGE;
    default:
        /* -errno, SPOOL_ECLOSED, SPOOL_EPROTO, SPOOL_ENOTCONN: the connection. */
        return CLI_UNREACHABLE;
    }
}

/* The server address for messages, without any password. */
static void describe_url(const struct cli *cli, char *out, size_t len)
{
    spool_url u;
    if (spool_url_parse(cli->url, &u) == 0)
        snprintf(out, len, "%s%s:%d", u.is_tls ? "tcp+tls://" : "", u.host, u.port);
    else
        snprintf(out, len, "%s", cli->url ? cli->url : "(default)");
}

int cli_connect(struct cli *cli)
{
    spool_url u;
    if (spool_url_parse(cli->url, &u) != 0)
        return cli_usage(cli, "bad server URL %s: %s (expected tcp://[:password@]host[:port])",
                         cli->url ? cli->url : "from SPOOL_URL/FAKTORY_URL",
                         spool_client_error(NULL));
    spool_client_options o = {.url = cli->url, .tls_ca_file = cli->tls_ca};
    int rc = spool_client_connect_opts(&o, &cli->client);
    if (rc == 0)
        return CLI_OK;
    /* Copied first: describe_url parses the URL again, which clears this thread's message. */
    char why[1024];
    snprintf(why, sizeof why, "%s", spool_client_error(NULL));
    if (!why[0])
        snprintf(why, sizeof why, "%s", spool_strerror(rc));
    char where[300];
    describe_url(cli, where, sizeof where);
    int code = cli_exit_for(rc);
    if (rc == SPOOL_EAUTH)
        return cli_fail(cli, CLI_REFUSED, "the server at %s refused the password: %s", where, why);
    if (code == CLI_USAGE)
        return cli_fail(cli, code, "cannot use %s: %s", where, why);
    return cli_fail(cli, CLI_UNREACHABLE, "cannot connect to %s: %s", where, why);
}

void cli_disconnect(struct cli *cli)
{
    spool_client_free(cli->client);
    cli->client = NULL;
}

int cli_check(struct cli *cli, int rc, const char *what)
{
    if (rc == 0)
        return CLI_OK;
    int code = cli_exit_for(rc);
    if (rc == SPOOL_ESERVER)
        return cli_fail(cli, code, "%s refused: %s", what, cli_server_error(cli->client));
    const char *why = cli->client ? spool_client_error(cli->client) : "";
    if (!why || !*why)
        why = spool_strerror(rc);
    if (code == CLI_UNREACHABLE)
        return cli_fail(cli, code, "%s: connection to the server failed: %s", what, why);
    return cli_fail(cli, code, "%s: %s", what, why);
}

static cJSON *parse_reply(struct cli *cli, const char *what, char *text, int *rc)
{
    if (!text) {
        *rc = cli_fail(cli, CLI_REFUSED, "%s: the server sent no reply body", what);
        return NULL;
    }
    cJSON *doc = cJSON_Parse(text);
    if (!doc)
        *rc = cli_fail(cli, CLI_REFUSED, "%s: the server's reply is not JSON: %.200s", what, text);
    spool_free(text);
    return doc;
}

cJSON *cli_command_json(struct cli *cli, const char *line, int *rc)
{
    char *text = NULL;
    char verb[16];
    snprintf(verb, sizeof verb, "%.*s", (int)strcspn(line, " "), line);
    *rc = cli_check(cli, spool_command(cli->client, line, &text), verb);
    if (*rc)
        return NULL;
    return parse_reply(cli, verb, text, rc);
}

cJSON *cli_info(struct cli *cli, int *rc)
{
    char *text = NULL;
    *rc = cli_check(cli, spool_info(cli->client, &text), "INFO");
    if (*rc)
        return NULL;
    return parse_reply(cli, "INFO", text, rc);
}
