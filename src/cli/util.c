/*
 * What every subcommand shares: messages and exit codes, argument parsing
 * with the common options, and small parsers and formatters.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cli/cli.h"
#include "common/timefmt.h"
#include "common/xalloc.h"

static void vreport(const struct cli *cli, const char *fmt, va_list ap)
{
    fflush(stdout);
    if (cli->cmd)
        fprintf(stderr, "spool %s: ", cli->cmd);
    else
        fputs("spool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cli, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'spool %s%s--help'.\n", cli->cmd ? cli->cmd : "", cli->cmd ? " " : "");
    return CLI_USAGE;
}

int cli_fail(struct cli *cli, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cli, fmt, ap);
    va_end(ap);
    return code;
}

int cli_parse(struct cli *cli, const struct opt_spec *specs, enum opt_mode mode, const char *usage,
              const char *description, int argc, char **argv, struct strv *pos, int *rc)
{
    const struct opt_spec common[] = {
        {"url", 'u', OPT_STRING, "URL",
         "server URL (default: $SPOOL_URL, $FAKTORY_URL, " CLI_DEFAULT_URL ")", NULL, &cli->url, NULL},
        {"tls-ca", 0, OPT_STRING, "FILE",
         "CA file that the server's TLS certificate must chain to (tcp+tls:// URLs; default: "
         "$SPOOL_TLS_CA, else the system's CAs)", NULL, &cli->tls_ca, NULL},
        {"json", 'j', OPT_FLAG, NULL, "print one JSON document instead of a table", &cli->want_json,
         NULL, NULL},
        {"help", 'h', OPT_FLAG, NULL, "show this help and exit", &cli->want_help, NULL, NULL},
    };
    size_t n = 0;
    while (specs[n].name)
        n++;
    size_t ncommon = sizeof common / sizeof *common;
    struct opt_spec *all = xcalloc(n + ncommon + 1, sizeof *all);
    memcpy(all, specs, n * sizeof *all);
    memcpy(all + n, common, sizeof common);

    char err[256];
    int parsed = opt_parse(all, mode, argc, argv, pos, err, sizeof err);
    if (parsed == 0 && cli->want_help) {
        printf("Usage: spool %s\n\n%s\n", usage, description);
        printf("\nOptions:\n");
        opt_print_help(all, stdout);
        printf("\nExit status: 0 ok, 1 the server refused or a job failed, 2 usage error,\n"
               "3 the server cannot be reached. See docs/cli.md.\n");
        *rc = CLI_OK;
        free(all);
        return -1;
    }
    free(all);
    if (parsed != 0) {
        *rc = cli_usage(cli, "%s", err);
        return -1;
    }
    return 0;
}

void cli_new_jid(char out[25])
{
    unsigned char raw[12];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* No entropy source: time and a counter still keep jids apart. */
            static unsigned counter;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            unsigned long long mix = (unsigned long long)ts.tv_sec * 1000000007ULL ^
                                     (unsigned long long)ts.tv_nsec ^ ((unsigned long long)++counter << 40);
            for (; got < sizeof raw; got++, mix = mix * 6364136223846793005ULL + 1442695040888963407ULL)
                raw[got] = (unsigned char)(mix >> 56);
            break;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[24] = '\0';
}

int cli_parse_duration(const char *s, int64_t *out_s)
{
    int64_t total = 0;
    const char *p = s;
    if (!*p)
        return -1;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -1;
        const char *start = p;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            if (v > INT64_C(100000000000))
                return -1;
            v = v * 10 + (*p++ - '0');
        }
        int64_t unit;
        switch (*p) {
        case '\0':
            /* A bare number is seconds, but only as the whole string. */
            if (start != s)
                return -1;
            unit = 1;
            break;
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -1;
        }
        if (*p)
            p++;
        total += v * unit;
        if (total > INT64_C(100) * 365 * 86400)
            return -1;
    }
    *out_s = total;
    return 0;
}

int cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int64_t cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cli_format_seconds(double s, char out[32])
{
    if (!(s >= 0))
        s = 0;
    if (s < 60) {
        snprintf(out, 32, s < 10 ? "%.2fs" : "%.1fs", s);
        return;
    }
    long long t = (long long)s;
    if (t < 3600)
        snprintf(out, 32, "%lldm%llds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, 32, "%lldh%lldm", t / 3600, t % 3600 / 60);
    else
        snprintf(out, 32, "%lldd%lldh", t / 86400, t % 86400 / 3600);
}

int cli_json_time(const cJSON *item, int64_t *out_ns)
{
    const char *why;
    if (!cJSON_IsString(item) || !item->valuestring)
        return -1;
    return timefmt_parse(item->valuestring, strlen(item->valuestring), out_ns, &why);
}

void cli_format_when(int64_t ns, int64_t now_ns, char out[80])
{
    /* Whole seconds are enough for a table; --json keeps the server's text. */
    char utc[TIMEFMT_MAX];
    timefmt_format(ns - ((ns % NS_PER_S) + NS_PER_S) % NS_PER_S, utc);
    char age[32];
    int64_t d = ns - now_ns;
    cli_format_seconds((double)(d < 0 ? -d : d) / (double)NS_PER_S, age);
    snprintf(out, 80, d < 0 ? "%s (%s ago)" : "%s (in %s)", utc, age);
}

int cli_is_queue_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void cli_print_json(const cJSON *doc)
{
    char *text = cJSON_Print(doc);
    if (!text)
        abort(); /* cJSON fails only when memory runs out; the CLI aborts then */
    puts(text);
    cJSON_free(text);
}

double cli_json_number(const cJSON *doc, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(doc, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}
