/*
 * config: spoold's settings from its command line and environment, with
 * Faktory's flag names so operators feel at home. Parsed once at start.
 */
#ifndef SPOOL_CONFIG_H
#define SPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "store/journal.h"

struct config {
    char *fwp_bind;       /* HOST:PORT */
    char *http_bind;      /* HOST:PORT */
    char *data_dir;
    char *config_dir;     /* NULL: none */
    enum log_level log_level;
    char *password;       /* NULL: none */
    char *tls_cert;       /* PEM certificate chain; NULL: no TLS */
    char *tls_key;        /* PEM private key; set exactly when tls_cert is */
    char *tls_ca;         /* NULL, or clients must show a certificate from these CAs */
    size_t max_line;      /* bytes in one command line */
    size_t max_job;       /* bytes in one job */
    size_t max_output;    /* bytes queued for a client that does not read */
    int max_connections;
    size_t dead_max;
    int line_timeout_s;   /* a started command line must finish within this */
    enum fsync_policy fsync;
    size_t snapshot_every; /* journal bytes that trigger a snapshot */
    size_t segment_max;    /* journal segment size before a new one starts */
    int is_check;          /* --check: verify the data directory and exit */
    int is_repair;         /* with --check: cut corruption off */
    size_t max_jobs;       /* jobs held before pushes are refused (0 = no limit) */
    size_t max_memory;     /* estimated job bytes held before pushes are refused (0 = no limit) */
    int is_check_config;   /* --check-config: validate the settings and exit */
    char *backup_dir;      /* SIGUSR1 writes backups under it; NULL: none */
    int is_plain_fwp;      /* --plain-fwp: no native batch verbs, none advertised */
    char *store;           /* --store / SPOOL_STORE: a PostgreSQL URL, or NULL for the journal */
    int pg_pool;           /* --pg-pool: PostgreSQL connections running queries */
};

/*
 * Fills cfg from argv and the environment. Returns 0 to run, 1 when the
 * process should exit successfully (--help, --version, already printed), or
 * -1 after printing an error to stderr.
 */
int config_parse(struct config *cfg, int argc, char **argv);
void config_release(struct config *cfg);

/*
 * Parses a byte count with an optional K, M, G or T suffix (powers of 1024,
 * an optional trailing B or iB: 512M, 2GiB). Returns 0, or -1 if malformed.
 */
int config_parse_bytes(const char *s, size_t *out);

/* Splits "host:port" (or "[v6]:port"); returns 0, or -1 if malformed. */
/*
 * Reads a file of the config directory whole, at most max bytes. Returns 0
 * with *buf (caller frees; NUL-terminated) and *len, or 0 with *buf NULL when
 * the file does not exist; -1 with a message naming path in err otherwise
 * (unreadable, a read error, or larger than max).
 */
int config_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                     size_t errlen);

/* Whether a --store URL names PostgreSQL (postgres:// or postgresql://). */
int config_store_is_postgres(const char *url);

int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
