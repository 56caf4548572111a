/*
 * notify: tells a service manager (systemd's Type=notify, through
 * $NOTIFY_SOCKET) when spoold is ready and when it is stopping. Without
 * NOTIFY_SOCKET every call does nothing. Event-loop thread.
 */
#ifndef SPOOL_NOTIFY_H
#define SPOOL_NOTIFY_H

/* READY=1 with a STATUS line naming the listeners; call once both listen. */
void notify_ready(const char *status);
/* STOPPING=1: shutdown began (SIGTERM/SIGINT). */
void notify_stopping(void);

#endif
