/* Test helper: see spoold_proc.h. */
#define _GNU_SOURCE
#include "spoold_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int launch(struct spoold_proc *p, int port, const char *password, const char *config_dir)
{
    const char *extra = p->extra_arg[0] ? p->extra_arg : NULL;
    const char *bin = getenv("SPOOLD");
    if (!bin)
        return -1;
    char bind[64], data[300];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", port);
    snprintf(data, sizeof data, "%s/data", p->dir);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        if (password)
            setenv("SPOOL_PASSWORD", password, 1);
        else
            unsetenv("SPOOL_PASSWORD");
        unsetenv("FAKTORY_PASSWORD");
        const char *argv[12] = {bin, "-b", bind, "-w", "127.0.0.1:0", "-d", data};
        int argc = 7;
        if (config_dir) {
            argv[argc++] = "-c";
            argv[argc++] = config_dir;
        }
        if (extra)
            argv[argc++] = extra;
        argv[argc] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    /* Read stderr until the ready line, for at most 10 s. */
    char buf[8192];
    size_t len = 0;
    long long deadline = test_now_ms() + 10000;
    int found = 0;
    while (!found && test_now_ms() < deadline && len < sizeof buf - 1) {
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *r = strstr(buf, "spoold ready fwp=");
        if (r && strchr(r, '\n')) {
            char *colon = strchr(r + 17, ':');
            if (colon)
                p->port = (int)strtol(colon + 1, NULL, 10);
            found = p->port > 0;
        }
    }
    /* Keep draining stderr in the background so spoold never blocks on it:
     * a child process that copies the pipe to our stderr. */
    if (fork() == 0) {
        char b[4096];
        ssize_t n;
        while ((n = read(fds[0], b, sizeof b)) > 0)
            (void)!write(2, b, (size_t)n);
        _exit(0);
    }
    close(fds[0]);
    if (!found) {
        if (len)
            fprintf(stderr, "spoold output: %s\n", buf);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    p->pid = pid;
    /* Under TLS the URL names the host the test certificate is made out to. */
    snprintf(p->url, sizeof p->url, "%s://%s%s%s%s:%d", config_dir ? "tcp+tls" : "tcp",
             password ? ":" : "", password ? password : "", password ? "@" : "",
             config_dir ? "localhost" : "127.0.0.1", p->port);
    return 0;
}

int spoold_start_with(struct spoold_proc *p, int port, const char *password, const char *arg)
{
    memset(p, 0, sizeof *p);
    if (arg)
        snprintf(p->extra_arg, sizeof p->extra_arg, "%s", arg);
    snprintf(p->dir, sizeof p->dir, "/tmp/spool-client-test-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    return launch(p, port, password, NULL);
}

int spoold_start(struct spoold_proc *p, int port, const char *password)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/spool-client-test-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    return launch(p, port, password, NULL);
}

int spoold_start_tls(struct spoold_proc *p, const char *config_dir)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/spool-client-test-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    return launch(p, 0, NULL, config_dir);
}

void spoold_stop(struct spoold_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    long long deadline = test_now_ms() + 10000;
    while (test_now_ms() < deadline) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        poll(NULL, 0, 20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

int spoold_restart(struct spoold_proc *p, const char *password)
{
    int port = p->port;
    long long deadline = test_now_ms() + 15000;
    while (test_now_ms() < deadline) {
        if (launch(p, port, password, NULL) == 0)
            return 0;
        poll(NULL, 0, 200); /* the port may be briefly busy */
    }
    return -1;
}

void spoold_destroy(struct spoold_proc *p)
{
    spoold_stop(p);
    if (p->dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
        (void)!system(cmd);
    }
}
