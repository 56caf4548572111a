/*
 * spool work: fetches jobs from queues and runs a command once per job.
 *
 * The command gets the job's JSON (and a newline) on stdin and JOB_ID,
 * JOB_TYPE, JOB_ARGS (JSON text) and JOB_QUEUE in its environment. Exit 0
 * ACKs the job; anything else FAILs it with errtype ExitStatus<N>,
 * Signal<N>, Timeout (--timeout), Shutdown or SpawnError, the last ~1000
 * bytes of its stderr as the message and the last lines as the backtrace.
 *
 * Threads: `concurrency` job threads, each with its own libspool
 * connection (FETCH, then ACK/FAIL), and the main thread, which owns a
 * heartbeat connection (BEAT every 15 s) and the signals. All connections
 * say HELLO with one wid, so the server sees one worker process.
 *
 * libspool's worker runtime dispatches by jobtype and FAILs a job whose
 * type has no handler; this command runs every jobtype, so it drives the
 * low-level verbs itself.
 *
 * Stopping: SIGTERM or SIGINT (or "terminate" from the server) stops
 * fetching; running commands get --shutdown-timeout seconds, then their
 * process groups get SIGTERM (SIGKILL 5 s later) and their jobs are FAILed
 * with errtype Shutdown. A second signal (1 s or more later) skips the
 * wait. SIGTSTP (or "quiet" from the server) stops fetching until the process is stopped.
 * Signals are blocked in every thread and read by the main thread through
 * a signalfd; commands run in their own process group with the default
 * signal mask and dispositions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/sbuf.h"
#include "common/xalloc.h"

extern char **environ;

#define WORK_HEARTBEAT_MS 15000
#define WORK_KILL_GRACE_MS 5000
#define WORK_RECONNECT_MAX_MS 5000
#define WORK_MESSAGE_MAX 1000 /* the server keeps 1000 bytes of a FAIL message */
#define WORK_BACKTRACE_LINES 20
#define WORK_TAIL_KEEP 4096 /* stderr bytes kept per command */
#define WORK_CONCURRENCY_MAX 1000
/* A signal this long after the first one means "stop waiting". Closer
 * ones are the same request delivered twice (timeout(1) and shells signal
 * both the process and its group). */
#define WORK_SECOND_SIGNAL_MS 1000

enum work_state { WORK_RUNNING, WORK_QUIET, WORK_STOPPING };

struct work {
    struct cli *cli;
    const char **queues;
    size_t nqueues;
    int concurrency;
    int64_t timeout_ms; /* 0: none */
    int64_t shutdown_ms;
    char **argv; /* the command, NULL-terminated */
    char **base_env; /* environ without JOB_*; NULL-terminated */
    size_t nbase_env;
    char wid[25];

    atomic_int state;   /* enum work_state */
    atomic_int abandon; /* the shutdown deadline passed */
    int abandon_fd;     /* eventfd, readable once abandon is set */
    int done_fd;        /* eventfd, written by each job thread as it exits */
    atomic_int threads_left;
    atomic_int fatal;   /* an exit code when a thread hit an unrecoverable error */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* state changed: quiet threads wait on it */
    atomic_long processed, failed;
};

struct outcome {
    int is_ok;
    char errtype[64];
    struct sbuf message;
    struct sbuf tail; /* the last stderr bytes */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "spool work: %s\n", line);
}

static void set_state(struct work *w, enum work_state s)
{
    pthread_mutex_lock(&w->lock);
    /* States only move forward: running -> quiet -> stopping. */
    if ((int)s > atomic_load(&w->state))
        atomic_store(&w->state, (int)s);
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static void set_abandon(struct work *w)
{
    if (atomic_exchange(&w->abandon, 1) == 0) {
        uint64_t one = 1;
        if (write(w->abandon_fd, &one, sizeof one) < 0) {
            /* An eventfd write fails only on overflow, impossible after one write. */
        }
    }
}

/* ---- running one command ---- */

/* Copies s[0..n) into b as valid UTF-8 without NUL (the server refuses
 * \u0000): invalid bytes and NULs become '?'. */
static void add_clean_utf8(struct sbuf *b, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int ok = len > 0 && i + len <= n && !(len == 2 && c < 0xC2);
        for (size_t k = 1; ok && k < len; k++)
            ok = (s[i + k] & 0xC0) == 0x80;
        if (!ok || c == 0) {
            sbuf_add(b, "?", 1);
            i++;
            continue;
        }
        sbuf_add(b, s + i, len);
        i += len;
    }
}

/* The stderr tail as the FAIL message (at most WORK_MESSAGE_MAX bytes). */
static void tail_message(const struct sbuf *tail, struct sbuf *out)
{
    size_t n = tail->len;
    while (n > 0 && (tail->buf[n - 1] == '\n' || tail->buf[n - 1] == '\r' || tail->buf[n - 1] == ' '))
        n--;
    size_t start = n > WORK_MESSAGE_MAX ? n - WORK_MESSAGE_MAX : 0;
    /* Do not start inside a UTF-8 character. */
    while (start < n && ((unsigned char)tail->buf[start] & 0xC0) == 0x80)
        start++;
    add_clean_utf8(out, (const unsigned char *)tail->buf + start, n - start);
}

/* The last lines of the stderr tail, for the backtrace; returns how many. */
static size_t tail_lines(const struct sbuf *tail, char **lines, size_t max)
{
    size_t n = 0, end = tail->len;
    while (n < max && end > 0) {
        while (end > 0 && (tail->buf[end - 1] == '\n' || tail->buf[end - 1] == '\r'))
            end--;
        if (end == 0)
            break;
        size_t start = end;
        while (start > 0 && tail->buf[start - 1] != '\n')
            start--;
        if (start == 0 && tail->len >= WORK_TAIL_KEEP)
            break; /* a line cut by the tail's start: not a whole line */
        struct sbuf line;
        sbuf_init(&line);
        size_t len = end - start > 500 ? 500 : end - start;
        add_clean_utf8(&line, (const unsigned char *)tail->buf + start, len);
        lines[n++] = sbuf_detach(&line, NULL);
        end = start;
    }
    /* Collected last line first; the backtrace reads top to bottom. */
    for (size_t i = 0; i < n / 2; i++) {
        char *t = lines[i];
        lines[i] = lines[n - 1 - i];
        lines[n - 1 - i] = t;
    }
    return n;
}

static void keep_tail(struct sbuf *tail, const char *data, size_t n)
{
    sbuf_add(tail, data, n);
    if (tail->len > 2 * WORK_TAIL_KEEP) {
        memmove(tail->buf, tail->buf + tail->len - WORK_TAIL_KEEP, WORK_TAIL_KEEP);
        tail->len = WORK_TAIL_KEEP;
        tail->buf[tail->len] = '\0';
    }
}

static char *env_entry(const char *name, const char *value)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "%s=%s", name, value ? value : "");
    return sbuf_detach(&b, NULL);
}

static int spawn_command(struct work *w, const spool_job *job, int in_fd, int err_fd, pid_t *pid)
{
    char *extra[4] = {
        env_entry("JOB_ID", spool_job_jid(job)),
        env_entry("JOB_TYPE", spool_job_jobtype(job)),
        env_entry("JOB_ARGS", spool_job_args(job)),
        env_entry("JOB_QUEUE", spool_job_queue(job)),
    };
    char **envp = xcalloc(w->nbase_env + 5, sizeof *envp);
    memcpy(envp, w->base_env, w->nbase_env * sizeof *envp);
    memcpy(envp + w->nbase_env, extra, sizeof extra);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
    /* Its own process group (so a timeout kills what it started too), the
     * default signal mask and dispositions (ours block and ignore some). */
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGTSTP);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(pid, w->argv[0], &fa, &attr, w->argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 4; i++)
        free(extra[i]);
    free(envp);
    return rc;
}

/* Runs the command for job and fills out. Blocks until it is over. */
static void run_job(struct work *w, const spool_job *job, struct outcome *out)
{
    int in_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    pid_t pid = -1;
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        snprintf(out->errtype, sizeof out->errtype, "SpawnError");
        sbuf_addf(&out->message, "cannot make pipes: %s", strerror(errno));
        goto close_all;
    }
    int src = spawn_command(w, job, in_pipe[0], err_pipe[1], &pid);
    close(in_pipe[0]);
    close(err_pipe[1]);
    in_pipe[0] = err_pipe[1] = -1;
    if (src != 0) {
        snprintf(out->errtype, sizeof out->errtype, "SpawnError");
        sbuf_addf(&out->message, "cannot run %s: %s", w->argv[0], strerror(src));
        goto close_all;
    }
    fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    struct sbuf input;
    sbuf_init(&input);
    sbuf_adds(&input, spool_job_json(job));
    sbuf_add(&input, "\n", 1);
    size_t written = 0;

    int64_t start = mono_ms();
    int64_t kill_at = w->timeout_ms > 0 ? start + w->timeout_ms : -1;
    int64_t sigkill_at = -1; /* when SIGTERM was sent: SIGKILL is due then */
    int sigkill_sent = 0;
    int timed_out = 0, abandoned = 0, status = 0, has_exited = 0;
    while (!has_exited) {
        struct pollfd pf[4];
        int n = 0, i_in = -1, i_err = -1, i_ab = -1;
        if (in_pipe[1] >= 0) {
            pf[n] = (struct pollfd){in_pipe[1], POLLOUT, 0};
            i_in = n++;
        }
        if (err_pipe[0] >= 0) {
            pf[n] = (struct pollfd){err_pipe[0], POLLIN, 0};
            i_err = n++;
        }
        if (pidfd >= 0) {
            pf[n++] = (struct pollfd){pidfd, POLLIN, 0}; /* readable once it exits */
        }
        if (!abandoned && sigkill_at < 0) {
            pf[n] = (struct pollfd){w->abandon_fd, POLLIN, 0};
            i_ab = n++;
        }
        int64_t now = mono_ms();
        int64_t next = sigkill_sent ? -1 : sigkill_at >= 0 ? sigkill_at : kill_at;
        int wait_ms = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
        if (pidfd < 0 && (wait_ms < 0 || wait_ms > 50))
            wait_ms = 50; /* no pidfd: look for the exit every 50 ms */
        if (poll(pf, (nfds_t)n, wait_ms) < 0 && errno != EINTR)
            break;
        now = mono_ms();
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t k = write(in_pipe[1], input.buf + written, input.len - written);
            if (k > 0)
                written += (size_t)k;
            /* Done, or the command closed its stdin (EPIPE): either way stop writing. */
            if (written == input.len || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                close(in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
        if (i_err >= 0 && pf[i_err].revents) {
            char buf[4096];
            ssize_t k = read(err_pipe[0], buf, sizeof buf);
            if (k > 0) {
                keep_tail(&out->tail, buf, (size_t)k);
            } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(err_pipe[0]);
                err_pipe[0] = -1;
            }
        }
        if (i_ab >= 0 && pf[i_ab].revents && !timed_out) {
            abandoned = 1;
            kill(-pid, SIGTERM);
            sigkill_at = now + WORK_KILL_GRACE_MS;
        }
        if (!timed_out && !abandoned && kill_at >= 0 && now >= kill_at) {
            timed_out = 1;
            kill(-pid, SIGTERM);
            sigkill_at = now + WORK_KILL_GRACE_MS;
        } else if (sigkill_at >= 0 && !sigkill_sent && now >= sigkill_at) {
            kill(-pid, SIGKILL);
            sigkill_sent = 1;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            has_exited = 1;
    }
    if (!has_exited)
        waitpid(pid, &status, 0);
    /* What the command wrote just before it exited (the pipe may stay open
     * in its own children, so take what is there and stop). */
    if (err_pipe[0] >= 0) {
        char buf[4096];
        ssize_t k;
        while ((k = read(err_pipe[0], buf, sizeof buf)) > 0)
            keep_tail(&out->tail, buf, (size_t)k);
    }
    if (pidfd >= 0)
        close(pidfd);
    sbuf_release(&input);

    if (abandoned) {
        snprintf(out->errtype, sizeof out->errtype, "Shutdown");
    } else if (timed_out) {
        snprintf(out->errtype, sizeof out->errtype, "Timeout");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        out->is_ok = 1;
    } else if (WIFEXITED(status)) {
        snprintf(out->errtype, sizeof out->errtype, "ExitStatus%d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(out->errtype, sizeof out->errtype, "Signal%d", WTERMSIG(status));
    }
    if (!out->is_ok) {
        tail_message(&out->tail, &out->message);
        if (out->message.len == 0) {
            if (abandoned)
                sbuf_addf(&out->message, "spool work was stopped before the command finished");
            else if (timed_out)
                sbuf_addf(&out->message, "the command ran longer than %lld s and was killed",
                          (long long)(w->timeout_ms / 1000));
            else if (WIFEXITED(status))
                sbuf_addf(&out->message, "the command exited with status %d", WEXITSTATUS(status));
            else
                sbuf_addf(&out->message, "the command was killed by signal %d (%s)", WTERMSIG(status),
                          strsignal(WTERMSIG(status)));
        }
    }
close_all:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
}

/* ---- job threads ---- */

static int connect_worker(struct work *w, spool_client **out)
{
    spool_client_options o = {0};
    o.url = w->cli->url;
    o.wid = w->wid;
    o.tls_ca_file = w->cli->tls_ca;
    return spool_client_connect_opts(&o, out);
}

/* Sleeps up to ms, or less once the state changes. */
static void backoff(struct work *w, int64_t ms, int from_state)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->lock);
    while (atomic_load(&w->state) == from_state && !atomic_load(&w->abandon))
        if (pthread_cond_timedwait(&w->changed, &w->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&w->lock);
}

/* (Re)connects *c when it is NULL. Returns 0, or -1 when the worker is giving up. */
static int ensure_connected(struct work *w, spool_client **c, int64_t *delay_ms)
{
    while (!*c) {
        if (atomic_load(&w->abandon) || atomic_load(&w->fatal))
            return -1;
        int rc = connect_worker(w, c);
        if (rc == 0) {
            *delay_ms = 100;
            return 0;
        }
        if (rc == SPOOL_EAUTH || rc == SPOOL_EURL || rc == SPOOL_ETLS) {
            logf_("cannot connect: %s", spool_client_error(NULL));
            atomic_store(&w->fatal, cli_exit_for(rc));
            set_state(w, WORK_STOPPING);
            return -1;
        }
        logf_("cannot connect (retrying in %lld ms): %s", (long long)*delay_ms, spool_client_error(NULL));
        backoff(w, *delay_ms, atomic_load(&w->state));
        *delay_ms = *delay_ms * 2 > WORK_RECONNECT_MAX_MS ? WORK_RECONNECT_MAX_MS : *delay_ms * 2;
    }
    return 0;
}

/* ACKs or FAILs the job, reconnecting as needed until the shutdown deadline. */
static void report(struct work *w, spool_client **c, const spool_job *job, const struct outcome *o)
{
    char *bt[WORK_BACKTRACE_LINES];
    size_t nbt = o->is_ok ? 0 : tail_lines(&o->tail, bt, WORK_BACKTRACE_LINES);
    int64_t delay = 100;
    for (;;) {
        if (ensure_connected(w, c, &delay) != 0) {
            logf_("job %s: could not %s it before stopping; the server will retry it when its reservation "
                  "expires", spool_job_jid(job), o->is_ok ? "ACK" : "FAIL");
            break;
        }
        int rc = o->is_ok ? spool_ack(*c, spool_job_jid(job))
                          : spool_fail(*c, spool_job_jid(job), o->errtype, o->message.buf,
                                       (const char *const *)bt, nbt);
        if (rc == 0 || rc == SPOOL_ESERVER) {
            if (rc == SPOOL_ESERVER)
                logf_("job %s: %s refused: %s", spool_job_jid(job), o->is_ok ? "ACK" : "FAIL",
                      spool_client_error(*c));
            break;
        }
        logf_("job %s: %s failed, reconnecting: %s", spool_job_jid(job), o->is_ok ? "ACK" : "FAIL",
              spool_client_error(*c));
        spool_client_free(*c);
        *c = NULL;
    }
    for (size_t i = 0; i < nbt; i++)
        free(bt[i]);
}

static void *job_thread(void *arg)
{
    struct work *w = arg;
    spool_client *c = NULL;
    int64_t delay = 100;
    for (;;) {
        int st = atomic_load(&w->state);
        if (st == WORK_STOPPING)
            break;
        if (st == WORK_QUIET) {
            pthread_mutex_lock(&w->lock);
            while (atomic_load(&w->state) == WORK_QUIET)
                pthread_cond_wait(&w->changed, &w->lock);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (ensure_connected(w, &c, &delay) != 0)
            break;
        spool_job *job = NULL;
        int rc = spool_fetch(c, w->queues, w->nqueues, &job);
        if (rc != 0) {
            if (rc == SPOOL_ESERVER) {
                logf_("FETCH refused: %s", spool_client_error(c));
                backoff(w, 1000, st);
                continue;
            }
            logf_("FETCH failed, reconnecting: %s", spool_client_error(c));
            spool_client_free(c);
            c = NULL;
            continue;
        }
        if (!job)
            continue;
        struct outcome o = {0};
        sbuf_init(&o.message);
        sbuf_init(&o.tail);
        run_job(w, job, &o);
        atomic_fetch_add(&w->processed, 1);
        if (!o.is_ok) {
            atomic_fetch_add(&w->failed, 1);
            char brief[201];
            snprintf(brief, sizeof brief, "%s", o.message.buf ? o.message.buf : "");
            for (char *p = brief; *p; p++)
                if (*p == '\n' || *p == '\r')
                    *p = ' ';
            logf_("job %s (%s) failed: %s: %s", spool_job_jid(job), spool_job_jobtype(job), o.errtype, brief);
        }
        report(w, &c, job, &o);
        sbuf_release(&o.message);
        sbuf_release(&o.tail);
        spool_job_free(job);
    }
    spool_client_free(c);
    atomic_fetch_sub(&w->threads_left, 1);
    uint64_t one = 1;
    if (write(w->done_fd, &one, sizeof one) < 0) {
        /* Cannot overflow: at most WORK_CONCURRENCY_MAX writes. */
    }
    return NULL;
}

/* ---- the main thread: signals, heartbeat, shutdown ---- */

static void heartbeat(struct work *w, spool_client **hb)
{
    if (!*hb && connect_worker(w, hb) != 0) {
        logf_("heartbeat: cannot connect: %s", spool_client_error(NULL));
        return;
    }
    int st = atomic_load(&w->state);
    enum spool_state mine = st == WORK_RUNNING  ? SPOOL_STATE_RUNNING
                            : st == WORK_QUIET ? SPOOL_STATE_QUIET
                                               : SPOOL_STATE_TERMINATE;
    enum spool_state theirs = SPOOL_STATE_RUNNING;
    int rc = spool_beat(*hb, mine, 0, &theirs);
    if (rc != 0) {
        logf_("heartbeat failed: %s", spool_client_error(*hb));
        spool_client_free(*hb);
        *hb = NULL;
        return;
    }
    if (theirs == SPOOL_STATE_QUIET && st == WORK_RUNNING) {
        logf_("the server asked this process to go quiet: no more fetching");
        set_state(w, WORK_QUIET);
    } else if (theirs == SPOOL_STATE_TERMINATE && st != WORK_STOPPING) {
        logf_("the server asked this process to stop");
        set_state(w, WORK_STOPPING);
    }
}

/* Builds the environment the commands share: ours without JOB_*. */
static void build_base_env(struct work *w)
{
    size_t n = 0;
    while (environ[n])
        n++;
    w->base_env = xcalloc(n + 1, sizeof *w->base_env);
    static const char *const ours[] = {"JOB_ID=", "JOB_TYPE=", "JOB_ARGS=", "JOB_QUEUE="};
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t k = 0; k < sizeof ours / sizeof *ours; k++)
            skip |= strncmp(environ[i], ours[k], strlen(ours[k])) == 0;
        if (!skip)
            w->base_env[w->nbase_env++] = environ[i];
    }
}

/* True when cmd names an executable file (directly, or found in PATH). */
static int command_exists(const char *cmd)
{
    struct stat st;
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 && stat(cmd, &st) == 0 && S_ISREG(st.st_mode);
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    struct sbuf b;
    sbuf_init(&b);
    int found = 0;
    while (!found) {
        size_t len = strcspn(path, ":");
        sbuf_reset(&b);
        if (len)
            sbuf_add(&b, path, len);
        else
            sbuf_add(&b, ".", 1);
        sbuf_addf(&b, "/%s", cmd);
        found = access(b.buf, X_OK) == 0 && stat(b.buf, &st) == 0 && S_ISREG(st.st_mode);
        if (!path[len])
            break;
        path += len + 1;
    }
    sbuf_release(&b);
    return found;
}

static int work_run(struct work *w)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGTSTP);
    /* Blocked before any thread starts, so every thread inherits the mask. */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    w->abandon_fd = eventfd(0, EFD_CLOEXEC);
    w->done_fd = eventfd(0, EFD_CLOEXEC);
    if (sfd < 0 || w->abandon_fd < 0 || w->done_fd < 0)
        return cli_fail(w->cli, CLI_REFUSED, "cannot set up signal handling: %s", strerror(errno));

    /* The heartbeat connection first: if the server cannot be reached at
     * start, say so and exit 3 rather than retry forever. */
    spool_client *hb = NULL;
    int rc = connect_worker(w, &hb);
    if (rc != 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", spool_client_error(NULL));
        int code = cli_exit_for(rc);
        return cli_fail(w->cli, code == CLI_OK ? CLI_UNREACHABLE : code, "cannot connect to the server: %s",
                        why[0] ? why : spool_strerror(rc));
    }

    struct sbuf qs;
    sbuf_init(&qs);
    for (size_t i = 0; i < w->nqueues; i++)
        sbuf_addf(&qs, "%s%s", i ? " " : "", w->queues[i]);
    logf_("wid %s, queues %s, concurrency %d, command %s", w->wid, qs.buf, w->concurrency, w->argv[0]);
    sbuf_release(&qs);

    pthread_t *threads = xcalloc((size_t)w->concurrency, sizeof *threads);
    atomic_store(&w->threads_left, w->concurrency);
    for (int i = 0; i < w->concurrency; i++) {
        int prc = pthread_create(&threads[i], NULL, job_thread, w);
        if (prc != 0) {
            logf_("cannot start thread %d: %s", i, strerror(prc));
            atomic_fetch_sub(&w->threads_left, w->concurrency - i);
            set_state(w, WORK_STOPPING);
            for (int k = i; k < w->concurrency; k++)
                threads[k] = threads[0];
            w->concurrency = i;
            break;
        }
    }

    int64_t next_beat = mono_ms() + WORK_HEARTBEAT_MS;
    int64_t deadline = -1;
    int64_t stop_signal_ms = -1; /* when the first SIGTERM/SIGINT came */
    while (atomic_load(&w->threads_left) > 0) {
        int64_t now = mono_ms();
        if (atomic_load(&w->state) == WORK_STOPPING && deadline < 0) {
            deadline = now + w->shutdown_ms;
            logf_("stopping: no more fetching; waiting up to %lld s for running commands",
                  (long long)(w->shutdown_ms / 1000));
        }
        if (deadline >= 0 && now >= deadline && !atomic_load(&w->abandon)) {
            logf_("shutdown timeout: stopping the commands still running and failing their jobs");
            set_abandon(w);
        }
        if (now >= next_beat) {
            heartbeat(w, &hb);
            next_beat = now + WORK_HEARTBEAT_MS;
        }
        int64_t until = next_beat;
        if (deadline >= 0 && !atomic_load(&w->abandon) && deadline < until)
            until = deadline;
        struct pollfd pf[2] = {{sfd, POLLIN, 0}, {w->done_fd, POLLIN, 0}};
        int wait_ms = until <= now ? 0 : (int)(until - now);
        if (poll(pf, 2, wait_ms) < 0 && errno != EINTR)
            break;
        if (pf[1].revents) {
            uint64_t v;
            if (read(w->done_fd, &v, sizeof v) < 0) {
                /* Nothing to do: the loop condition reads threads_left. */
            }
        }
        if (pf[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGTSTP) {
                    logf_("SIGTSTP: going quiet (no more fetching)");
                    set_state(w, WORK_QUIET);
                } else if (atomic_load(&w->state) == WORK_STOPPING && stop_signal_ms >= 0 &&
                           mono_ms() - stop_signal_ms >= WORK_SECOND_SIGNAL_MS) {
                    logf_("second signal: not waiting any longer");
                    deadline = mono_ms();
                } else {
                    if (stop_signal_ms < 0) {
                        logf_("%s received", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                        stop_signal_ms = mono_ms();
                    }
                    set_state(w, WORK_STOPPING);
                }
            }
        }
    }
    for (int i = 0; i < w->concurrency; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    /* Tell the server this process is gone before its connections close. */
    if (hb) {
        enum spool_state ignored;
        spool_beat(hb, SPOOL_STATE_TERMINATE, 0, &ignored);
        spool_client_free(hb);
    }
    close(sfd);
    close(w->abandon_fd);
    close(w->done_fd);
    logf_("stopped: %ld jobs run, %ld failed", atomic_load(&w->processed), atomic_load(&w->failed));
    return atomic_load(&w->fatal);
}

static const char work_description[] =
    "Fetches jobs from the QUEUEs (in priority order) and runs COMMAND once per job,\n"
    "up to --concurrency at a time. The command gets the job's JSON and a newline on\n"
    "stdin, and JOB_ID, JOB_TYPE, JOB_ARGS (the args as JSON) and JOB_QUEUE in its\n"
    "environment; its stdout is passed through.\n"
    "\n"
    "Exit status 0 ACKs the job. Otherwise the job is FAILed with errtype\n"
    "ExitStatus<N> (e.g. ExitStatus3), Signal<N> (killed by signal N), Timeout (ran\n"
    "longer than --timeout: SIGTERM to its process group, SIGKILL 5 s later),\n"
    "SpawnError (could not be started) or Shutdown, with the last ~1000 bytes of its\n"
    "stderr as the message and its last lines as the backtrace.\n"
    "\n"
    "SIGTERM or SIGINT stops fetching and waits for running commands up to\n"
    "--shutdown-timeout, then kills them and FAILs their jobs (errtype Shutdown); a\n"
    "second signal (1 s or more after the first) stops waiting. SIGTSTP, or\n"
    "`spool workers quiet WID`, stops fetching; `spool workers stop WID` stops the\n"
    "process. The wid is printed on stderr at start.";

int cmd_work(struct cli *cli, int argc, char **argv)
{
    struct strv queue_opts = {0};
    const char *concurrency = NULL, *timeout = NULL, *shutdown = NULL;
    const struct opt_spec specs[] = {
        {"queue", 'q', OPT_LIST, "QUEUE", "queue to fetch from; repeat or separate with commas, first "
                                          "is highest priority (default: default)", NULL, NULL, &queue_opts},
        {"concurrency", 'c', OPT_STRING, "N", "commands run at once (default 1)", NULL, &concurrency, NULL},
        {"timeout", 't', OPT_STRING, "SECONDS", "kill a command running longer and FAIL its job with "
                                                "Timeout (default: no limit)", NULL, &timeout, NULL},
        {"shutdown-timeout", 0, OPT_STRING, "SECONDS", "on SIGTERM/SIGINT, wait this long for running "
                                                       "commands (default 25)", NULL, &shutdown, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL},
    };
    struct strv pos = {0};
    struct strv queues = {0};
    char *qcopy_all = NULL;
    struct work w = {0};
    int rc;
    if (cli_parse(cli, specs, OPT_STOP_AT_FIRST, "work [options] -- COMMAND [ARG...]", work_description, argc,
                  argv, &pos, &rc) != 0)
        goto out;
    if (pos.n == 0) {
        rc = cli_usage(cli, "missing the COMMAND to run for each job (after --)");
        goto out;
    }
    /* Queues: repeated and/or comma-separated. */
    struct sbuf all;
    sbuf_init(&all);
    for (size_t i = 0; i < queue_opts.n; i++)
        sbuf_addf(&all, "%s%s", i ? "," : "", queue_opts.v[i]);
    qcopy_all = sbuf_detach(&all, NULL);
    if (queue_opts.n) {
        for (char *save = NULL, *q = strtok_r(qcopy_all, ",", &save); q; q = strtok_r(NULL, ",", &save)) {
            if (!cli_is_queue_name(q)) {
                rc = cli_usage(cli, "invalid queue name '%s'", q);
                goto out;
            }
            strv_push(&queues, q);
        }
    }
    if (queues.n == 0)
        strv_push(&queues, "default");
    int64_t n_conc = 1, timeout_s = 0, shutdown_s = 25;
    if (concurrency && cli_parse_int(concurrency, 1, WORK_CONCURRENCY_MAX, &n_conc) != 0) {
        rc = cli_usage(cli, "invalid --concurrency '%s' (1 to %d)", concurrency, WORK_CONCURRENCY_MAX);
        goto out;
    }
    if (timeout && cli_parse_int(timeout, 1, 7 * 86400, &timeout_s) != 0) {
        rc = cli_usage(cli, "invalid --timeout '%s' (whole seconds, at least 1)", timeout);
        goto out;
    }
    if (shutdown && cli_parse_int(shutdown, 0, 86400, &shutdown_s) != 0) {
        rc = cli_usage(cli, "invalid --shutdown-timeout '%s' (whole seconds)", shutdown);
        goto out;
    }
    if (!command_exists(pos.v[0])) {
        rc = cli_usage(cli, "cannot run '%s': no such executable (looked in PATH)", pos.v[0]);
        goto out;
    }
    w.cli = cli;
    w.queues = queues.v;
    w.nqueues = queues.n;
    w.concurrency = (int)n_conc;
    w.timeout_ms = timeout_s * 1000;
    w.shutdown_ms = shutdown_s * 1000;
    w.argv = xcalloc(pos.n + 1, sizeof *w.argv);
    for (size_t i = 0; i < pos.n; i++)
        w.argv[i] = (char *)pos.v[i];
    cli_new_jid(w.wid);
    build_base_env(&w);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.changed, NULL);
    rc = work_run(&w);
    pthread_cond_destroy(&w.changed);
    pthread_mutex_destroy(&w.lock);
out:
    free(w.argv);
    free(w.base_env);
    free(qcopy_all);
    strv_release(&queues);
    strv_release(&queue_opts);
    strv_release(&pos);
    return rc;
}
