/*
 * loopback_ceiling: how many round trips per second this machine's loopback
 * carries with the client shape `spool bench --batch 0` and the beanstalkd
 * serial driver use (one thread per connection, one command in flight), for
 * bench/compare.sh.
 *
 * The server is one thread on epoll that answers "+OK\r\n" to every line and
 * does nothing else: no parsing, no storage. Each client thread sends a line
 * of --line bytes (default 220, about a PUSH of a 100-byte payload), waits
 * for the reply, and repeats, for --seconds. No job server can answer faster
 * than this with the same client on the same machine; a plain FWP job costs
 * three round trips (PUSH, FETCH, ACK).
 *
 * Prints one JSON object on stdout; errors go to stderr and exit 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define MAX_LINE 65536

static int port;
static int line_len = 220;
static atomic_int is_stopping;
static atomic_llong round_trips;

static void die(const char *what)
{
    fprintf(stderr, "loopback_ceiling: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("setsockopt TCP_NODELAY");
}

/* Answers every complete line on every connection with "+OK\r\n". */
static void *server_main(void *arg)
{
    int lfd = *(int *)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        die("epoll_ctl");
    static char buf[MAX_LINE];
    static char replies[5 * 1024];
    for (size_t i = 0; i < sizeof replies; i += 5)
        memcpy(replies + i, "+OK\r\n", 5);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0)
                    continue;
                set_nodelay(c);
                struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) != 0)
                    die("epoll_ctl");
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                close(fd);
                continue;
            }
            size_t lines = 0;
            for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + r - p))); p++)
                lines++;
            /* One command in flight per client: a read holds at most a line or two. */
            while (lines > 0) {
                size_t k = lines > sizeof replies / 5 ? sizeof replies / 5 : lines;
                if (write(fd, replies, k * 5) < 0)
                    break;
                lines -= k;
            }
        }
    }
    return NULL;
}

static void *client_main(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect");
    set_nodelay(fd);
    char *line = malloc((size_t)line_len);
    if (!line)
        die("malloc");
    memset(line, 'x', (size_t)line_len);
    line[line_len - 2] = '\r';
    line[line_len - 1] = '\n';
    char reply[64];
    long long n = 0;
    while (!atomic_load(&is_stopping)) {
        if (send(fd, line, (size_t)line_len, MSG_NOSIGNAL) != line_len)
            die("send");
        size_t got = 0;
        while (got < 5) { /* "+OK\r\n" */
            ssize_t r = recv(fd, reply + got, sizeof reply - got, 0);
            if (r <= 0)
                die("recv");
            got += (size_t)r;
        }
        n++;
    }
    atomic_fetch_add(&round_trips, n);
    free(line);
    close(fd);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: loopback_ceiling [--threads N] [--seconds S] [--line BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int threads = 58;
    double seconds = 3;
    static const struct option opts[] = {{"threads", required_argument, NULL, 't'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"line", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        char *end = NULL;
        if (o == 't')
            threads = (int)strtol(optarg, &end, 10);
        else if (o == 's')
            seconds = strtod(optarg, &end);
        else if (o == 'l')
            line_len = (int)strtol(optarg, &end, 10);
        else
            usage();
        if (!end || *end)
            usage();
    }
    if (threads < 1 || threads > MAX_THREADS || seconds <= 0 || seconds > 600 || line_len < 2 ||
        line_len > MAX_LINE)
        usage();

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
        die("listen");
    port = ntohs(sa.sin_port);
    pthread_t server;
    if (pthread_create(&server, NULL, server_main, &lfd) != 0)
        die("pthread_create");
    pthread_t tids[MAX_THREADS];
    double cpu0 = cpu_s(), t0 = now_s();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, client_main, NULL) != 0)
            die("pthread_create");
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
    atomic_store(&is_stopping, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    double dt = now_s() - t0, cpu = cpu_s() - cpu0;
    printf("{\"threads\":%d,\"line_bytes\":%d,\"seconds\":%.2f,\"round_trips\":%lld,"
           "\"round_trips_per_s\":%.0f,\"cpu_percent\":%.0f}\n",
           threads, line_len, dt, (long long)atomic_load(&round_trips),
           (double)atomic_load(&round_trips) / dt, 100 * cpu / dt);
    return 0; /* the server thread ends with the process */
}
