#include "server/rlimit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

int rlimit_raise_nofile(int max_connections, char *msg, size_t msglen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(msg, msglen, "cannot read the descriptor limit: %s", strerror(errno));
        return -1;
    }
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            snprintf(msg, msglen, "cannot raise the descriptor limit from %llu to %llu: %s",
                     (unsigned long long)before, (unsigned long long)rl.rlim_max, strerror(errno));
            return -1;
        }
    }
    unsigned long long want = (unsigned long long)max_connections + RLIMIT_RESERVED_FDS;
    if (rl.rlim_cur != RLIM_INFINITY && (unsigned long long)rl.rlim_cur < want) {
        snprintf(msg, msglen,
                 "the descriptor limit %llu (hard limit) cannot serve --max-connections %d, which "
                 "needs %llu: raise the hard limit (ulimit -Hn, LimitNOFILE= under systemd) or "
                 "lower --max-connections",
                 (unsigned long long)rl.rlim_cur, max_connections, want);
        return 1;
    }
    snprintf(msg, msglen, "descriptor limit %llu (was %llu), enough for --max-connections %d",
             (unsigned long long)rl.rlim_cur, (unsigned long long)before, max_connections);
    return 0;
}
