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
    int is_plain_fwp;      /* --plain-fwp: no native batch verbs, none advertised */
};

/*
 * Fills cfg from argv and the environment. Returns 0 to run, 1 when the
 * process should exit successfully (--help, --version, already printed), or
 * -1 after printing an error to stderr.
 */
int config_parse(struct config *cfg, int argc, char **argv);
void config_release(struct config *cfg);

/* Splits "host:port" (or "[v6]:port"); returns 0, or -1 if malformed. */
int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
