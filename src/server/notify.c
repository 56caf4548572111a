#include "server/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"

/* A failed notification is logged, never fatal: spoold also runs without a manager. */
static void send_state(const char *state)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock) /* not under a manager (an empty value counts as none) */
        return;
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_warn("msg=\"cannot notify the service manager\" error=\"%s\"", strerror(-rc));
    else if (rc > 0)
        log_debug("msg=\"notified the service manager\" state=\"%.*s\"", (int)strcspn(state, "\n"),
                  state);
}

void notify_ready(const char *status)
{
    char buf[512];
    snprintf(buf, sizeof buf, "READY=1\nSTATUS=%s", status);
    send_state(buf);
}

void notify_stopping(void)
{
    send_state("STOPPING=1\nSTATUS=shutting down");
}
