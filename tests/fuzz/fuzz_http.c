/*
 * fuzz_http: spoold's HTTP side (server/http.c routing, server/api.c routes
 * and body parsing, /stats, /health, /metrics) behind the real evhttp. The
 * input is what a client sends on one connection: one request or several
 * (keep-alive), with headers and bodies. evhttp accepts it on a listening
 * AF_UNIX socket with an abstract (autobound) address: no port, no file.
 */
#include <event2/http.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_server.h"
#include "server/authdelay.h"
#include "server/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server srv;
    fuzz_server_init(&srv);
    http_new(&srv);
    /* Binding only the family autobinds an abstract address; connect finds it by name. */
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un addr;
    socklen_t alen = sizeof addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr.sun_family) != 0 ||
        listen(lfd, 4) != 0 || getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("fuzz_http: cannot listen on an abstract AF_UNIX socket");
        abort();
    }
    evhttp_accept_socket(srv.http, lfd); /* evhttp owns lfd from here */
    int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&addr, alen) != 0) {
        perror("fuzz_http: cannot connect to the listener");
        abort();
    }
    int fds[2] = {-1, cfd};
    fuzz_server_drive(&srv, fds[1], data, size);
    authdelay_release(&srv); /* as server_release: held 401s go before evhttp */
    http_release(&srv);
    fuzz_server_release(&srv);
    close(fds[1]);
    return 0;
}
