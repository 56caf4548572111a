/*
 * datadir: the data directory: created when missing and locked so that a
 * second spoold on the same directory refuses to start and says which
 * process holds it.
 */
#ifndef SPOOL_DATADIR_H
#define SPOOL_DATADIR_H

#include <stddef.h>

/*
 * Creates dir (and parents) if needed and takes its lock (dir/LOCK, holding
 * our pid). Returns the lock's file descriptor (keep it open for the life of
 * the process), or -1 with a message in err.
 */
int datadir_lock(const char *dir, char *err, size_t errlen);

#endif
