/*
 * fuzz_fwp: the FWP command line framing, handshake and every command's
 * parsing and dispatch (server/conn.c, server/fwp.c) against a real engine.
 * The input is the byte stream a client sends on one connection, starting
 * with its HELLO; it arrives through a socketpair the real connection code
 * owns, in one piece or as the socket buffer splits it.
 */
#include <stdint.h>
#include <unistd.h>

#include "fuzz_server.h"
#include "server/conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server srv;
    fuzz_server_init(&srv);
    int fds[2];
    fuzz_socketpair(fds);
    conn_accept(&srv, fds[0], "127.0.0.1:40000");
    fuzz_server_drive(&srv, fds[1], data, size);
    fuzz_server_release(&srv);
    close(fds[1]);
    return 0;
}
