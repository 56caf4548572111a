#include "store/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int posix_open(const char *path, int flags, int mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

static off_t posix_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_size : -1;
}

static int posix_fsync(int fd)
{
    return fdatasync(fd);
}

static int posix_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int posix_list(const char *dir, void (*fn)(void *ctx, const char *name), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            fn(ctx, de->d_name);
    closedir(d);
    return 0;
}

const struct fileio fileio_posix = {
    .open = posix_open,
    .write = write,
    .pread = pread,
    .fsync = posix_fsync,
    .ftruncate = ftruncate,
    .size = posix_size,
    .close = close,
    .rename = rename,
    .unlink = unlink,
    .fsync_dir = posix_fsync_dir,
    .list = posix_list,
};

int fileio_write_all(const struct fileio *io, int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = io->write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* no progress and no error: treat as a full disk */
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
