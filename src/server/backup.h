/*
 * backup: an online, consistent copy of the whole state on SIGUSR1.
 *
 * spoold forks (as for a snapshot); the child writes the engine's state as of
 * the fork into a new directory <--backup-dir>/spool-<UTC time>/ as a single
 * snapshot file, which is a complete data directory: `spoold -d` on it
 * recovers that state. The parent keeps serving meanwhile and logs the
 * result when the child exits. Every change acknowledged before the signal
 * is in the copy (the fork sees every change applied so far).
 *
 * One backup at a time. Event-loop thread.
 */
#ifndef SPOOL_BACKUP_H
#define SPOOL_BACKUP_H

#include <sys/types.h>

struct server;

/* Registers the SIGUSR1 handler. 0, or -1 (logged). */
int backup_init(struct server *srv);

/*
 * From the SIGCHLD handler: when pid is the backup child, logs its result
 * and returns 1; otherwise returns 0.
 */
int backup_reaped(struct server *srv, pid_t pid, int status);

/* Waits for a running backup child (at shutdown) and frees the handler. */
void backup_release(struct server *srv);

#endif
