/*
 * beanstalk_bench: a load generator for beanstalkd, for the peer comparison
 * (bench/compare.sh). Plain sockets and beanstalkd's text protocol: put,
 * reserve-with-timeout, delete.
 *
 * Two phases, each timed on its own:
 *   enqueue  N producer threads, one connection each, put --jobs jobs in all;
 *   process  N consumer threads, one connection each, reserve and delete
 *            every job the enqueue phase left, until the tube is empty.
 * In "serial" mode each connection has one command in flight (send, wait for
 * the reply); in "pipelined" mode a connection keeps up to --depth commands
 * in flight (a consumer sends --depth reserves, then deletes what it got).
 *
 * Prints one JSON object on stdout; errors go to stderr and exit 1. Every
 * reply is checked: an unexpected one names the command and the reply.
 * Bounded: --timeout seconds for the whole run (alarm).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)
#define MAX_THREADS 1024
#define MAX_DEPTH 4096

struct opts {
    const char *host;
    int port;
    int producers;
    int consumers;
    long jobs;
    long payload;
    int depth; /* commands in flight per connection; 1 = serial */
    int is_pipelined;
    int timeout_s;
    const char *tube;
    long server_pid; /* 0: do not report the server's CPU use */
};

struct conn {
    int fd;
    char *rbuf;
    size_t rpos, rlen;
    char *wbuf;
    size_t wlen, wcap;
};

static struct opts o;
static char *payload_buf;
static atomic_long processed;

/* Prints the first error of any thread and exits; later callers wait for
 * the exit, so one message is printed. */
static void die(const char *fmt, ...)
{
    static atomic_int is_dying;
    if (atomic_exchange(&is_dying, 1))
        for (;;)
            pause();
    va_list ap;
    va_start(ap, fmt);
    fputs("beanstalk_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_open(struct conn *c)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1)
        die("--host %s is not an IPv4 address", o.host);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect to %s:%d: %s", o.host, o.port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->rbuf = malloc(RBUF_SIZE);
    c->wcap = 64 * 1024;
    c->wbuf = malloc(c->wcap);
    if (!c->rbuf || !c->wbuf)
        die("out of memory");
    c->rpos = c->rlen = c->wlen = 0;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->rbuf);
    free(c->wbuf);
}

static void conn_append(struct conn *c, const char *p, size_t n)
{
    if (c->wlen + n > c->wcap) {
        while (c->wlen + n > c->wcap)
            c->wcap *= 2;
        c->wbuf = realloc(c->wbuf, c->wcap);
        if (!c->wbuf)
            die("out of memory");
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
}

static void conn_flush(struct conn *c)
{
    size_t off = 0;
    while (off < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + off, c->wlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write: %s", strerror(errno));
        }
        off += (size_t)n;
    }
    c->wlen = 0;
}

/* Makes at least `need` unread bytes available in rbuf. */
static void conn_fill(struct conn *c, size_t need)
{
    if (need > RBUF_SIZE)
        die("reply of %zu bytes is larger than the read buffer", need);
    if (c->rpos > 0 && c->rpos + need > RBUF_SIZE) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    while (c->rlen - c->rpos < need) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read: %s", strerror(errno));
        }
        if (n == 0)
            die("beanstalkd closed the connection");
        c->rlen += (size_t)n;
    }
}

/* Returns the next reply line (NUL-terminated, without CRLF); valid until
 * the next read on this connection. */
static char *conn_line(struct conn *c)
{
    size_t scanned = 0;
    for (;;) {
        char *start = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        char *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - start);
            if (len > 0 && start[len - 1] == '\r')
                start[len - 1] = '\0';
            else
                *nl = '\0';
            c->rpos += len + 1;
            return start;
        }
        scanned = avail;
        conn_fill(c, avail + 1);
    }
}

static void conn_skip(struct conn *c, size_t n)
{
    conn_fill(c, n);
    c->rpos += n;
}

static void put_cmd(struct conn *c)
{
    char head[64];
    int n = snprintf(head, sizeof head, "put 1024 0 60 %ld\r\n", o.payload);
    conn_append(c, head, (size_t)n);
    conn_append(c, payload_buf, (size_t)o.payload);
    conn_append(c, "\r\n", 2);
}

static void put_reply(struct conn *c)
{
    char *l = conn_line(c);
    if (strncmp(l, "INSERTED ", 9) != 0)
        die("put: expected INSERTED <id>, got \"%s\"", l);
}

static void use_tube(struct conn *c, int is_consumer)
{
    char cmd[256];
    int n = is_consumer ? snprintf(cmd, sizeof cmd, "watch %s\r\nignore default\r\n", o.tube)
                        : snprintf(cmd, sizeof cmd, "use %s\r\n", o.tube);
    conn_append(c, cmd, (size_t)n);
    conn_flush(c);
    char *l = conn_line(c);
    if (strncmp(l, is_consumer ? "WATCHING " : "USING ", is_consumer ? 9 : 6) != 0)
        die("%s: unexpected reply \"%s\"", is_consumer ? "watch" : "use", l);
    if (is_consumer) {
        l = conn_line(c);
        if (strncmp(l, "WATCHING ", 9) != 0)
            die("ignore default: unexpected reply \"%s\"", l);
    }
}

struct worker {
    pthread_t tid;
    int index;
    long jobs; /* producer: jobs to put */
    pthread_barrier_t *start;
};

static void *producer_main(void *arg)
{
    struct worker *w = arg;
    struct conn c;
    conn_open(&c);
    use_tube(&c, 0);
    pthread_barrier_wait(w->start);
    long sent = 0, acked = 0;
    while (acked < w->jobs) {
        /* Keep up to depth puts outstanding: top up, flush, read one window. */
        long room = o.depth - (sent - acked);
        while (room-- > 0 && sent < w->jobs) {
            put_cmd(&c);
            sent++;
        }
        conn_flush(&c);
        long want = sent - acked;
        for (long i = 0; i < want; i++)
            put_reply(&c);
        acked += want;
    }
    conn_close(&c);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct worker *w = arg;
    struct conn c;
    conn_open(&c);
    use_tube(&c, 1);
    pthread_barrier_wait(w->start);
    static const char reserve[] = "reserve-with-timeout 0\r\n";
    unsigned long long *ids = malloc(sizeof *ids * (size_t)o.depth);
    if (!ids)
        die("out of memory");
    for (;;) {
        for (int i = 0; i < o.depth; i++)
            conn_append(&c, reserve, sizeof reserve - 1);
        conn_flush(&c);
        int got = 0, is_empty = 0;
        for (int i = 0; i < o.depth; i++) {
            char *l = conn_line(&c);
            if (strcmp(l, "TIMED_OUT") == 0) {
                is_empty = 1;
                continue;
            }
            unsigned long long id;
            long bytes;
            if (sscanf(l, "RESERVED %llu %ld", &id, &bytes) != 2)
                die("reserve-with-timeout: expected RESERVED <id> <bytes> or TIMED_OUT, got \"%s\"", l);
            if (bytes != o.payload)
                die("reserve: job %llu has %ld bytes, expected %ld", id, bytes, o.payload);
            conn_skip(&c, (size_t)bytes + 2);
            ids[got++] = id;
        }
        for (int i = 0; i < got; i++) {
            char cmd[64];
            int n = snprintf(cmd, sizeof cmd, "delete %llu\r\n", ids[i]);
            conn_append(&c, cmd, (size_t)n);
        }
        conn_flush(&c);
        for (int i = 0; i < got; i++) {
            char *l = conn_line(&c);
            if (strcmp(l, "DELETED") != 0)
                die("delete %llu: expected DELETED, got \"%s\"", ids[i], l);
        }
        atomic_fetch_add(&processed, got);
        /* The tube was filled before this phase began, so an empty reserve
         * means every job is taken (possibly by another consumer). */
        if (is_empty)
            break;
    }
    free(ids);
    conn_close(&c);
    (void)w;
    return NULL;
}

/* CPU seconds (user + system) of this process. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of the server, from /proc/PID/stat (utime and stime are the
 * 12th and 13th fields after the parenthesised command name). */
static double server_cpu_s(void)
{
    if (!o.server_pid)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", o.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        die("--server-pid %ld: cannot open %s: %s", o.server_pid, path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die("--server-pid %ld: cannot parse %s", o.server_pid, path);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct phase {
    double wall_s;
    int client_cpu_pct, server_cpu_pct;
};

static struct phase run_phase(int n, void *(*fn)(void *), long jobs_total)
{
    static struct worker ws[MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        ws[i].index = i;
        ws[i].start = &start;
        ws[i].jobs = jobs_total / n + (i < jobs_total % n ? 1 : 0);
        if (pthread_create(&ws[i].tid, NULL, fn, &ws[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    double t0 = now_s(), c0 = self_cpu_s(), s0 = server_cpu_s();
    for (int i = 0; i < n; i++)
        pthread_join(ws[i].tid, NULL);
    struct phase ph;
    ph.wall_s = now_s() - t0;
    ph.client_cpu_pct = (int)((self_cpu_s() - c0) / ph.wall_s * 100 + 0.5);
    ph.server_cpu_pct = (int)((server_cpu_s() - s0) / ph.wall_s * 100 + 0.5);
    pthread_barrier_destroy(&start);
    return ph;
}

static long parse_long(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s must be an integer from %ld to %ld, got \"%s\"", name, min, max, s);
    return v;
}

/* ",\"server_cpu_pct\":N" in a static buffer (two slots, for one printf). */
static const char *server_pct(int pct)
{
    static char bufs[2][48];
    static int next;
    char *b = bufs[next++ % 2];
    snprintf(b, sizeof bufs[0], ",\"server_cpu_pct\":%d", pct);
    return b;
}

static void usage(FILE *f)
{
    fputs("Usage: beanstalk_bench --port PORT [options]\n"
          "  --host IP          beanstalkd address (default 127.0.0.1)\n"
          "  --port PORT        beanstalkd port (required)\n"
          "  --producers N      producer connections (default 8)\n"
          "  --consumers N      consumer connections (default 50)\n"
          "  --jobs N           jobs to put, then to reserve and delete (default 100000)\n"
          "  --payload BYTES    job body size (default 64)\n"
          "  --mode MODE        serial (one command in flight per connection)\n"
          "                     or pipelined (default serial)\n"
          "  --depth N          commands in flight per connection when pipelined (default 64)\n"
          "  --tube NAME        tube to use (default spool-bench)\n"
          "  --server-pid PID   also report the server's CPU use (from /proc)\n"
          "  --timeout SECONDS  give up after this long (default 300)\n",
          f);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "beanstalk_bench: --timeout reached, giving up\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

int main(int argc, char **argv)
{
    o.host = "127.0.0.1";
    o.producers = 8;
    o.consumers = 50;
    o.jobs = 100000;
    o.payload = 64;
    o.depth = 64;
    o.timeout_s = 300;
    o.tube = "spool-bench";
    const char *mode = "serial";
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},   {"port", required_argument, NULL, 'p'},
        {"producers", required_argument, NULL, 'P'}, {"consumers", required_argument, NULL, 'C'},
        {"jobs", required_argument, NULL, 'n'},   {"payload", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},   {"depth", required_argument, NULL, 'D'},
        {"tube", required_argument, NULL, 't'},   {"timeout", required_argument, NULL, 'T'},
        {"server-pid", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = (int)parse_long("--port", optarg, 1, 65535); break;
        case 'P': o.producers = (int)parse_long("--producers", optarg, 1, MAX_THREADS); break;
        case 'C': o.consumers = (int)parse_long("--consumers", optarg, 1, MAX_THREADS); break;
        case 'n': o.jobs = parse_long("--jobs", optarg, 1, 100000000); break;
        case 's': o.payload = parse_long("--payload", optarg, 0, 65536); break;
        case 'm': mode = optarg; break;
        case 'D': o.depth = (int)parse_long("--depth", optarg, 1, MAX_DEPTH); break;
        case 't': o.tube = optarg; break;
        case 'T': o.timeout_s = (int)parse_long("--timeout", optarg, 1, 86400); break;
        case 'S': o.server_pid = parse_long("--server-pid", optarg, 1, INT_MAX); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument \"%s\" (see --help)", argv[optind]);
    if (o.port == 0)
        die("--port is required (see --help)");
    if (strcmp(mode, "pipelined") == 0)
        o.is_pipelined = 1;
    else if (strcmp(mode, "serial") == 0)
        o.depth = 1;
    else
        die("--mode must be serial or pipelined, got \"%s\"", mode);
    if (strlen(o.tube) == 0 || strlen(o.tube) > 200 || strspn(o.tube, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/;.$_()") != strlen(o.tube))
        die("--tube must be 1-200 characters of letters, digits and -+/;.$_(), got \"%s\"", o.tube);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)o.timeout_s);

    payload_buf = malloc((size_t)o.payload + 1);
    if (!payload_buf)
        die("out of memory");
    for (long i = 0; i < o.payload; i++)
        payload_buf[i] = (char)('a' + i % 26);

    server_cpu_s(); /* fail early on a bad --server-pid */
    struct phase enq = run_phase(o.producers, producer_main, o.jobs);
    struct phase proc = run_phase(o.consumers, consumer_main, o.jobs);
    long done = atomic_load(&processed);
    if (done != o.jobs)
        die("process phase deleted %ld jobs, expected %ld (was the tube empty before the run?)", done, o.jobs);

    printf("{\"system\":\"beanstalkd\",\"mode\":\"%s\",\"producers\":%d,\"consumers\":%d,"
           "\"depth\":%d,\"jobs\":%ld,\"payload\":%ld,\"enqueue_s\":%.3f,\"process_s\":%.3f,"
           "\"push_per_s\":%.0f,\"process_per_s\":%.0f,"
           "\"enqueue_cpu\":{\"client_cpu_pct\":%d%s},\"process_cpu\":{\"client_cpu_pct\":%d%s}}\n",
           mode, o.producers, o.consumers, o.depth, o.jobs, o.payload, enq.wall_s, proc.wall_s,
           (double)o.jobs / enq.wall_s, (double)o.jobs / proc.wall_s, enq.client_cpu_pct,
           o.server_pid ? server_pct(enq.server_cpu_pct) : "", proc.client_cpu_pct,
           o.server_pid ? server_pct(proc.server_cpu_pct) : "");
    free(payload_buf);
    return 0;
}
