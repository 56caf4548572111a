/*
 * Test helper for ops.test.js: plays the service manager's side of
 * sd_notify. Binds a datagram socket at argv[1], prints "listening" on
 * stdout, then prints each datagram it receives on one line (newlines
 * inside a message become '|') until argv[2] seconds pass without one.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: notify_probe SOCKET_PATH IDLE_SECONDS\n");
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof sa.sun_path) {
        fprintf(stderr, "notify_probe: socket path too long\n");
        return 2;
    }
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "notify_probe: cannot bind %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    int idle_ms = (int)strtol(argv[2], NULL, 10) * 1000;
    char buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, idle_ms);
        if (n <= 0)
            break;
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r < 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n')
                buf[i] = '|';
        buf[r] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
    close(fd);
    unlink(argv[1]);
    return 0;
}
