/*
 * fileio: the table of file operations the journal and snapshots use. The
 * server uses fileio_posix; tests substitute a table that injects short
 * writes, ENOSPC, EIO and crashes that drop data never fsynced.
 * Functions return what the POSIX call returns (-1 with errno set on error).
 * Called from the event-loop thread and the journal writer thread.
 */
#ifndef SPOOL_FILEIO_H
#define SPOOL_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

struct fileio {
    int (*open)(const char *path, int flags, int mode);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    off_t (*size)(int fd);
    int (*close)(int fd);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    /* Makes renames and creations in dir durable. */
    int (*fsync_dir)(const char *dir);
    /* Calls fn for each file name in dir; returns 0 or -1. */
    int (*list)(const char *dir, void (*fn)(void *ctx, const char *name), void *ctx);
};

extern const struct fileio fileio_posix;

/* Writes all n bytes (looping over short writes). 0, or -1 with errno. */
int fileio_write_all(const struct fileio *io, int fd, const void *buf, size_t n);

#endif
