#include "server/backup.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "server/server.h"
#include "store/journal.h"

/* The snapshot in a backup is numbered 1: a fresh data directory starts its journal there. */
#define BACKUP_SEGMENT 1

struct backup {
    struct event *sig_usr1;
    pid_t pid;       /* the running child, or 0 */
    char path[4096]; /* its target directory */
    int64_t started_ns;
};

struct dump_ctx {
    struct snapshot_writer *w;
};

static void dump_out(void *ctx, const void *rec, size_t len)
{
    snapshot_add(((struct dump_ctx *)ctx)->w, rec, len);
}

static void on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    struct backup *b = srv->backup;
    if (!srv->cfg.backup_dir) {
        log_warn("msg=\"SIGUSR1: no backup directory (--backup-dir), no backup taken\"");
        return;
    }
    if (b->pid) {
        log_warn("msg=\"SIGUSR1: a backup is already running\" pid=%d path=%s", (int)b->pid, b->path);
        return;
    }
    int64_t now = server_now();
    time_t secs = (time_t)(now / NS_PER_S);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(b->path, sizeof b->path, "%s/spool-%04d%02d%02dT%02d%02d%02d.%03dZ", srv->cfg.backup_dir,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now % NS_PER_S / NS_PER_MS));
    if (mkdir(b->path, 0700) != 0) {
        log_error("msg=\"backup failed: cannot create its directory\" path=%s error=\"%s\"", b->path,
                  strerror(errno));
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("msg=\"backup failed: cannot fork\" error=\"%s\"", strerror(errno));
        rmdir(b->path);
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a half-written backup is never mistaken for one */
        if (getppid() != parent)
            _exit(1);
        struct dump_ctx dc = {snapshot_begin(b->path, BACKUP_SEGMENT, &fileio_posix)};
        if (!dc.w)
            _exit(1);
        engine_dump(srv->engine, dump_out, &dc);
        _exit(snapshot_commit(dc.w) == 0 ? 0 : 1);
    }
    b->pid = pid;
    b->started_ns = now;
    log_info("msg=\"backup started\" pid=%d path=%s jobs=%zu", (int)pid, b->path,
             srv->engine->jobs.count);
}

int backup_reaped(struct server *srv, pid_t pid, int status)
{
    struct backup *b = srv->backup;
    if (!b || !b->pid || pid != b->pid)
        return 0;
    b->pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        log_info("msg=\"backup written\" path=%s took_ms=%lld", b->path,
                 (long long)((server_now() - b->started_ns) / NS_PER_MS));
    else
        log_error("msg=\"backup failed: the writer could not finish; the directory holds no "
                  "complete snapshot\" path=%s status=%d", b->path, status);
    return 1;
}

int backup_init(struct server *srv)
{
    struct backup *b = xcalloc(1, sizeof *b);
    srv->backup = b;
    b->sig_usr1 = evsignal_new(srv->base, SIGUSR1, on_sigusr1, srv);
    if (!b->sig_usr1 || evsignal_add(b->sig_usr1, NULL) != 0) {
        log_error("msg=\"cannot handle SIGUSR1\"");
        return -1;
    }
    return 0;
}

void backup_release(struct server *srv)
{
    struct backup *b = srv->backup;
    if (!b)
        return;
    if (b->pid) {
        int status;
        if (waitpid(b->pid, &status, 0) == b->pid)
            backup_reaped(srv, b->pid, status);
    }
    if (b->sig_usr1)
        event_free(b->sig_usr1);
    free(b);
    srv->backup = NULL;
}
