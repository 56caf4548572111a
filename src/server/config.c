#include "server/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"

static const char usage[] =
    "Usage: spoold [options]\n"
    "\n"
    "spool's job server. Speaks the Faktory work protocol (FWP).\n"
    "\n"
    "Options:\n"
    "  -b, --bind HOST:PORT        FWP listener (default 127.0.0.1:7419)\n"
    "  -w, --web-bind HOST:PORT    HTTP listener: /api/v1, /metrics, /stats, /health\n"
    "                              (default 127.0.0.1:7420)\n"
    "  -d, --data-dir DIR          data directory (default ./data)\n"
    "  -c, --config-dir DIR        configuration directory (default: none): cron.json\n"
    "                              holds periodic jobs, throttles.json per-queue\n"
    "                              concurrency and rate limits; both are reloaded on\n"
    "                              SIGHUP and by POST /api/v1/config/reload\n"
    "                              public.cert.pem and private.key.pem there turn TLS on\n"
    "  -l, --log-level LEVEL       error, warn, info or debug (default info)\n"
    "      --max-line BYTES        longest command line (default 16777216)\n"
    "      --max-job-size BYTES    largest job (default 1048576)\n"
    "      --max-output BYTES      reply bytes held for a client that does not\n"
    "                              read before it is disconnected (default 67108864)\n"
    "      --max-connections N     connection limit (default 2000)\n"
    "      --max-jobs N            jobs held (queued, scheduled, working, retries,\n"
    "                              dead) before new pushes are refused (default 0:\n"
    "                              no limit)\n"
    "      --max-memory BYTES      estimated memory of the jobs held before new\n"
    "                              pushes are refused; K, M, G suffixes (512M, 2G)\n"
    "                              (default 0: no limit)\n"
    "      --dead-max N            dead jobs kept; oldest dropped beyond it\n"
    "                              (default 100000, 0 = no limit)\n"
    "      --line-timeout SECONDS  a command line must be complete this long\n"
    "                              after its first byte (default 30)\n"
    "      --fsync POLICY          always (default): a change is on disk before\n"
    "                              its reply; everysec: written at once, synced\n"
    "                              every second; never: left to the OS\n"
    "      --snapshot-every BYTES  journal growth that triggers a snapshot\n"
    "                              (default 67108864)\n"
    "      --segment-size BYTES    journal segment size (default 67108864)\n"
    "      --tls-cert FILE         serve FWP and HTTP over TLS only, with this PEM\n"
    "                              certificate (chain); needs --tls-key\n"
    "      --tls-key FILE          the certificate's PEM private key (unencrypted)\n"
    "      --tls-ca FILE           with TLS: require client certificates signed by a\n"
    "                              CA in this PEM file\n"
    "                              Without these flags, TLS is on when the config\n"
    "                              directory holds public.cert.pem and private.key.pem\n"
    "      --backup-dir DIR        SIGUSR1 writes a consistent copy of the data\n"
    "                              (a complete data directory) under DIR\n"
    "      --check-config          validate the flags, the config directory's files,\n"
    "                              the TLS files and the data directory's\n"
    "                              permissions, then exit\n"
    "      --plain-fwp             speak plain FWP only: do not offer spool's\n"
    "                              batch verbs (FETCHN, ACKN) in the greeting\n"
    "      --store URL             where jobs live: postgres://user@host/db keeps them\n"
    "                              in PostgreSQL, shared by every spoold pointed at\n"
    "                              the same database (default: the data directory's\n"
    "                              journal); also SPOOL_STORE\n"
    "      --pg-pool N             connections to PostgreSQL running queries\n"
    "                              (default 4)\n"
    "      --check                 verify the data directory, print a summary, exit\n"
    "      --repair                with --check: cut a corrupt journal at the\n"
    "                              first bad record (what follows is lost)\n"
    "  -h, --help                  print this help and exit\n"
    "  -v, --version               print the version and exit\n"
    "\n"
    "Environment:\n"
    "  SPOOL_PASSWORD, FAKTORY_PASSWORD  require this password from clients;\n"
    "                                    a value starting with '/' names a file\n"
    "                                    holding it\n"
    "  SPOOL_STORE                       as --store (the flag wins)\n"
    "\n"
    "With TLS on, both ports speak TLS (1.2 or later) only: plaintext clients\n"
    "are dropped. Clients connect with tcp+tls://host:port and https://.\n";

int config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int config_parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && *end == 'i')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -1;
    if (shift && v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_size(const char *flag, const char *arg, size_t min, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end || end == arg || arg[0] == '-' || v < min) {
        fprintf(stderr, "spoold: %s wants a whole number of at least %zu, not \"%s\"\n", flag, min,
                arg);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* Reads the password: a value starting with '/' is a file holding it. */
static int load_password(const char *value, char **out)
{
    if (value[0] != '/') {
        *out = xstrdup(value);
        return 0;
    }
    FILE *f = fopen(value, "r");
    if (!f) {
        fprintf(stderr, "spoold: cannot read the password file %s: %s\n", value, strerror(errno));
        return -1;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    *out = xstrdup(buf);
    return 0;
}

/*
 * Which certificate and key TLS uses: the flags, else Faktory's file names in
 * the config directory. Half a pair is an error rather than a silent
 * plaintext start, so a typo never exposes a server meant to be private.
 */
static int resolve_tls(struct config *cfg)
{
    if (cfg->tls_cert || cfg->tls_key) {
        if (!cfg->tls_cert || !cfg->tls_key) {
            fprintf(stderr, "spoold: --tls-cert and --tls-key go together (%s is missing)\n",
                    cfg->tls_cert ? "--tls-key" : "--tls-cert");
            return -1;
        }
        return 0;
    }
    if (cfg->config_dir) {
        char cert[4096], key[4096];
        snprintf(cert, sizeof cert, "%s/public.cert.pem", cfg->config_dir);
        snprintf(key, sizeof key, "%s/private.key.pem", cfg->config_dir);
        int has_cert = access(cert, F_OK) == 0, has_key = access(key, F_OK) == 0;
        if (has_cert != has_key) {
            fprintf(stderr, "spoold: TLS needs both %s and %s; %s is missing\n", cert, key,
                    has_cert ? key : cert);
            return -1;
        }
        if (has_cert) {
            cfg->tls_cert = xstrdup(cert);
            cfg->tls_key = xstrdup(key);
        }
    }
    if (cfg->tls_ca && !cfg->tls_cert) {
        fprintf(stderr, "spoold: --tls-ca needs TLS on (--tls-cert and --tls-key, or the "
                        "certificate files in the config directory)\n");
        return -1;
    }
    return 0;
}

int config_parse(struct config *cfg, int argc, char **argv)
{
    enum { OPT_MAX_LINE = 256, OPT_MAX_JOB, OPT_MAX_OUTPUT, OPT_MAX_CONN, OPT_DEAD_MAX, OPT_LINE_TIMEOUT,
           OPT_FSYNC, OPT_SNAPSHOT_EVERY, OPT_SEGMENT_MAX, OPT_CHECK, OPT_REPAIR,
           OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA,
           OPT_MAX_JOBS, OPT_MAX_MEMORY, OPT_CHECK_CONFIG, OPT_BACKUP_DIR, OPT_PLAIN_FWP,
           OPT_STORE, OPT_PG_POOL };
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},
        {"web-bind", required_argument, NULL, 'w'},
        {"data-dir", required_argument, NULL, 'd'},
        {"config-dir", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"max-line", required_argument, NULL, OPT_MAX_LINE},
        {"max-job-size", required_argument, NULL, OPT_MAX_JOB},
        {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"dead-max", required_argument, NULL, OPT_DEAD_MAX},
        {"line-timeout", required_argument, NULL, OPT_LINE_TIMEOUT},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY},
        {"segment-size", required_argument, NULL, OPT_SEGMENT_MAX},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"check", no_argument, NULL, OPT_CHECK},
        {"repair", no_argument, NULL, OPT_REPAIR},
        {"max-jobs", required_argument, NULL, OPT_MAX_JOBS},
        {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"backup-dir", required_argument, NULL, OPT_BACKUP_DIR},
        {"plain-fwp", no_argument, NULL, OPT_PLAIN_FWP},
        {"store", required_argument, NULL, OPT_STORE},
        {"pg-pool", required_argument, NULL, OPT_PG_POOL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    memset(cfg, 0, sizeof *cfg);
    cfg->fwp_bind = xstrdup("127.0.0.1:7419");
    cfg->http_bind = xstrdup("127.0.0.1:7420");
    cfg->data_dir = xstrdup("./data");
    cfg->log_level = LOG_INFO;
    cfg->max_line = 16u << 20;
    cfg->max_job = 1u << 20;
    cfg->max_output = 64u << 20;
    cfg->max_connections = 2000;
    cfg->dead_max = 100000;
    cfg->line_timeout_s = 30;
    cfg->fsync = FSYNC_ALWAYS;
    cfg->snapshot_every = 64u << 20;
    cfg->segment_max = 64u << 20;
    cfg->pg_pool = 4;

    size_t n;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":b:w:d:c:l:hv", opts, NULL)) != -1) {
        switch (c) {
        case 'b': free(cfg->fwp_bind); cfg->fwp_bind = xstrdup(optarg); break;
        case 'w': free(cfg->http_bind); cfg->http_bind = xstrdup(optarg); break;
        case 'd': free(cfg->data_dir); cfg->data_dir = xstrdup(optarg); break;
        case 'c': free(cfg->config_dir); cfg->config_dir = xstrdup(optarg); break;
        case 'l':
            if (log_parse_level(optarg, &cfg->log_level) != 0) {
                fprintf(stderr, "spoold: unknown log level \"%s\" (error, warn, info, debug)\n", optarg);
                return -1;
            }
            break;
        case OPT_MAX_LINE:
            if (parse_size("--max-line", optarg, 1024, &cfg->max_line))
                return -1;
            break;
        case OPT_MAX_JOB:
            if (parse_size("--max-job-size", optarg, 256, &cfg->max_job))
                return -1;
            break;
        case OPT_MAX_OUTPUT:
            if (parse_size("--max-output", optarg, 65536, &cfg->max_output))
                return -1;
            break;
        case OPT_MAX_CONN:
            if (parse_size("--max-connections", optarg, 1, &n))
                return -1;
            cfg->max_connections = n > 1000000 ? 1000000 : (int)n;
            break;
        case OPT_DEAD_MAX:
            if (parse_size("--dead-max", optarg, 0, &cfg->dead_max))
                return -1;
            break;
        case OPT_LINE_TIMEOUT:
            if (parse_size("--line-timeout", optarg, 1, &n))
                return -1;
            cfg->line_timeout_s = n > 86400 ? 86400 : (int)n;
            break;
        case OPT_FSYNC:
            if (journal_parse_policy(optarg, &cfg->fsync) != 0) {
                fprintf(stderr, "spoold: --fsync takes always, everysec or never, not \"%s\"\n", optarg);
                return -1;
            }
            break;
        case OPT_SNAPSHOT_EVERY:
            if (parse_size("--snapshot-every", optarg, 4096, &cfg->snapshot_every))
                return -1;
            break;
        case OPT_SEGMENT_MAX:
            if (parse_size("--segment-size", optarg, 4096, &cfg->segment_max))
                return -1;
            break;
        case OPT_TLS_CERT: free(cfg->tls_cert); cfg->tls_cert = xstrdup(optarg); break;
        case OPT_TLS_KEY: free(cfg->tls_key); cfg->tls_key = xstrdup(optarg); break;
        case OPT_TLS_CA: free(cfg->tls_ca); cfg->tls_ca = xstrdup(optarg); break;
        case OPT_MAX_JOBS:
            if (parse_size("--max-jobs", optarg, 0, &cfg->max_jobs))
                return -1;
            break;
        case OPT_MAX_MEMORY:
            if (config_parse_bytes(optarg, &cfg->max_memory)) {
                fprintf(stderr, "spoold: --max-memory wants a byte count such as 1048576, 512M or "
                                "2G, not \"%s\"\n", optarg);
                return -1;
            }
            break;
        case OPT_CHECK_CONFIG: cfg->is_check_config = 1; break;
        case OPT_BACKUP_DIR: free(cfg->backup_dir); cfg->backup_dir = xstrdup(optarg); break;
        case OPT_CHECK: cfg->is_check = 1; break;
        case OPT_REPAIR: cfg->is_repair = 1; break;
        case OPT_PLAIN_FWP: cfg->is_plain_fwp = 1; break;
        case OPT_STORE: free(cfg->store); cfg->store = xstrdup(optarg); break;
        case OPT_PG_POOL:
            if (config_parse_bytes(optarg, &n) || n < 1 || n > 256) {
                fprintf(stderr, "spoold: --pg-pool must be a number from 1 to 256 (got \"%s\")\n", optarg);
                return -1;
            }
            cfg->pg_pool = (int)n;
            break;
        case 'h': fputs(usage, stdout); return 1;
        case 'v': printf("spoold %s\n", SPOOL_VERSION); return 1;
        case ':':
            fprintf(stderr, "spoold: %s needs a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "spoold: unknown option \"%s\"; see spoold --help\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "spoold: unexpected argument \"%s\"; see spoold --help\n", argv[optind]);
        return -1;
    }
    if (cfg->is_repair && !cfg->is_check) {
        fprintf(stderr, "spoold: --repair goes with --check\n");
        return -1;
    }
    char host[256];
    int port;
    if (config_split_hostport(cfg->fwp_bind, host, sizeof host, &port) ||
        config_split_hostport(cfg->http_bind, host, sizeof host, &port)) {
        fprintf(stderr, "spoold: a bind address must look like HOST:PORT (got \"%s\" and \"%s\")\n",
                cfg->fwp_bind, cfg->http_bind);
        return -1;
    }
    if (resolve_tls(cfg))
        return -1;
    const char *store = getenv("SPOOL_STORE");
    if (!cfg->store && store && *store)
        cfg->store = xstrdup(store);
    if (cfg->store && !config_store_is_postgres(cfg->store)) {
        fprintf(stderr,
                "spoold: --store must be a postgres:// or postgresql:// URL (got \"%.100s\"); "
                "leave it out to keep jobs in the data directory\n",
                cfg->store);
        return -1;
    }
    if (cfg->store && (cfg->is_check || cfg->backup_dir)) {
        fprintf(stderr, "spoold: %s works on the data directory's journal, not with --store: "
                        "back up and check PostgreSQL with its own tools\n",
                cfg->is_check ? "--check" : "--backup-dir");
        return -1;
    }
    const char *pw = getenv("SPOOL_PASSWORD");
    if (!pw || !*pw)
        pw = getenv("FAKTORY_PASSWORD");
    if (pw && *pw && load_password(pw, &cfg->password))
        return -1;
    return 0;
}

void config_release(struct config *cfg)
{
    free(cfg->fwp_bind);
    free(cfg->http_bind);
    free(cfg->data_dir);
    free(cfg->config_dir);
    free(cfg->password);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_ca);
    free(cfg->backup_dir);
    free(cfg->store);
    memset(cfg, 0, sizeof *cfg);
}

int config_store_is_postgres(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

int config_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                     size_t errlen)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *b = xmalloc(max + 1);
    size_t n = fread(b, 1, max + 1, f);
    int is_error = ferror(f);
    fclose(f);
    if (is_error || n > max) {
        if (is_error)
            snprintf(err, errlen, "%s: read error", path);
        else
            snprintf(err, errlen, "%s: larger than %zu MiB", path, max / (1024 * 1024));
        free(b);
        return -1;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}
