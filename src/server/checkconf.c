#include "server/checkconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/confload.h"
#include "server/crond.h"
#include "server/rlimit.h"
#include "server/tls.h"

#define MSG_MAX 8192

/*
 * The files of the config directory. check returns 0 with a summary in msg,
 * or -1 with what is wrong; a missing file is the validator's call (cron.json
 * is optional).
 */
struct config_file {
    const char *name;
    int (*check)(const char *config_dir, char *msg, size_t msglen);
};

static const struct config_file config_files[] = {
    {"cron.json", crond_check_file},
    {"throttles.json", confload_check_file},
};

static int report(int ok, const char *what, const char *msg)
{
    printf("%-5s %s: %s\n", ok ? "ok" : "FAIL", what, msg);
    return ok ? 0 : 1;
}

/* The data directory exists (or its parent lets us create it) and takes a file and an fsync. */
static int check_data_dir(const char *dir, char *msg, size_t msglen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(msg, msglen, "%s: %s", dir, strerror(errno));
            return -1;
        }
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
            *slash = '\0';
            slash = strrchr(parent, '/');
        }
        if (!slash)
            snprintf(parent, sizeof parent, ".");
        else if (slash == parent)
            parent[1] = '\0';
        else
            *slash = '\0';
        if (access(parent, W_OK | X_OK) != 0) {
            snprintf(msg, msglen, "%s does not exist and cannot be created in %.900s: %s", dir, parent,
                     strerror(errno));
            return -1;
        }
        snprintf(msg, msglen, "%s does not exist yet; it will be created at start", dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "%s is not a directory", dir);
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/.check-config.%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(msg, msglen, "%s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    int rc = write(fd, "x", 1) == 1 && fsync(fd) == 0 ? 0 : -1;
    int err = errno;
    close(fd);
    unlink(path);
    if (rc != 0) {
        snprintf(msg, msglen, "%s: cannot write and sync a file: %s", dir, strerror(err));
        return -1;
    }
    /* In use is not an error (checking a running server's settings is fine), but worth saying. */
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    int lfd = open(lock, O_RDONLY | O_CLOEXEC);
    int in_use = 0;
    if (lfd >= 0) {
        in_use = flock(lfd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(lfd);
    }
    snprintf(msg, msglen, "%s is writable%s", dir,
             in_use ? " (in use by a running spoold)" : "");
    return 0;
}

int checkconf_run(const struct config *cfg)
{
    char msg[MSG_MAX];
    int failed = 0;
    errno = 0;
    snprintf(msg, sizeof msg, "fwp %s, http %s, fsync %s, max-connections %d, max-jobs %zu, "
             "max-memory %zu", cfg->fwp_bind, cfg->http_bind, journal_policy_name(cfg->fsync),
             cfg->max_connections, cfg->max_jobs, cfg->max_memory);
    failed += report(1, "flags", msg);

    if (cfg->config_dir) {
        struct stat st;
        int is_dir = stat(cfg->config_dir, &st) == 0 && S_ISDIR(st.st_mode);
        if (!is_dir) {
            snprintf(msg, sizeof msg, "%s: %s", cfg->config_dir,
                     errno ? strerror(errno) : "not a directory");
            failed += report(0, "config directory", msg);
        } else {
            for (size_t i = 0; i < sizeof config_files / sizeof config_files[0]; i++) {
                int rc = config_files[i].check(cfg->config_dir, msg, sizeof msg);
                failed += report(rc == 0, config_files[i].name, msg);
            }
        }
    } else {
        failed += report(1, "config directory", "none (-c not given)");
    }

    if (cfg->tls_cert) { /* the same loading the start does: the pair, and the client CA */
        struct tls_server *t = tls_server_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ca, msg, sizeof msg);
        if (t)
            snprintf(msg, sizeof msg, "%s with %s%s%s", cfg->tls_cert, cfg->tls_key,
                     cfg->tls_ca ? ", client certificates from " : "", cfg->tls_ca ? cfg->tls_ca : "");
        failed += report(t != NULL, "tls", msg);
        tls_server_free(t);
    } else {
        failed += report(1, "tls", "off (plaintext on both ports)");
    }

    int rc = rlimit_raise_nofile(cfg->max_connections, msg, sizeof msg);
    failed += report(rc == 0, "descriptors", msg);

    rc = check_data_dir(cfg->data_dir, msg, sizeof msg);
    failed += report(rc == 0, "data directory", msg);

    if (cfg->backup_dir) { /* SIGUSR1 creates a directory in it: it must exist and take one */
        struct stat st;
        int ok = stat(cfg->backup_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
                 access(cfg->backup_dir, W_OK | X_OK) == 0;
        snprintf(msg, sizeof msg, "%s %s", cfg->backup_dir,
                 ok ? "is a writable directory" : "must be an existing, writable directory");
        failed += report(ok, "backup directory", msg);
    }

    printf("spoold --check-config: %s\n", failed ? "FAILED" : "OK");
    return failed ? 1 : 0;
}
