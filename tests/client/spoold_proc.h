/*
 * Test helper: runs the real spoold (path from env SPOOLD) on 127.0.0.1,
 * port 0 or a given port, with a data dir under a mkdtemp dir, and reads
 * its ready line from stderr through a pipe. Test thread only.
 */
#ifndef SPOOL_TEST_SPOOLD_PROC_H
#define SPOOL_TEST_SPOOLD_PROC_H

#include <sys/types.h>

struct spoold_proc {
    pid_t pid;
    int port;
    char dir[256];
    char url[512];
    char extra_arg[64]; /* one more spoold argument, or "" */
};

/* Starts spoold; port 0 = any; password NULL = none. Returns 0 or -1. */
int spoold_start(struct spoold_proc *p, int port, const char *password);

/* Starts spoold with -c config_dir (holding public.cert.pem and
 * private.key.pem): TLS on; p->url is tcp+tls://localhost:PORT. 0 or -1. */
int spoold_start_tls(struct spoold_proc *p, const char *config_dir);
/* Same, with one more spoold argument (e.g. "--plain-fwp"); NULL = none. */
int spoold_start_with(struct spoold_proc *p, int port, const char *password, const char *arg);

/* SIGTERM and wait (bounded); keeps the data dir. */
void spoold_stop(struct spoold_proc *p);

/* Restarts on the same port and data dir, retrying while the port is busy. */
int spoold_restart(struct spoold_proc *p, const char *password);

/* Stops it and removes the data dir. */
void spoold_destroy(struct spoold_proc *p);

/* Milliseconds on a monotonic clock. */
long long test_now_ms(void);

#endif
