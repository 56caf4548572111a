#include "server/crond.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "engine/cron.h"
#include "server/server.h"

#define CRON_FILE "cron.json"
#define CRON_FILE_MAX (4 * 1024 * 1024)

struct crond {
    struct cron_table *table; /* NULL: no entries */
    char *path;               /* <config-dir>/cron.json, or NULL without -c */
    char last_zone[128];      /* the last zone name found in the zone database */
};

/* An IANA name: letters, digits, '_', '-', '+', '/' between parts; no "..", no leading '/'. */
static int zone_name_ok(const char *zone)
{
    size_t n = strlen(zone);
    if (!n || n >= 128 || zone[0] == '/' || strstr(zone, ".."))
        return 0;
    for (const char *p = zone; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            !strchr("_-+/", *p))
            return 0;
    return 1;
}

static int zone_exists(struct crond *cd, const char *zone)
{
    if (!strcmp(cd->last_zone, zone))
        return 1;
    if (!zone_name_ok(zone))
        return 0;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", zone);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    snprintf(cd->last_zone, sizeof cd->last_zone, "%s", zone);
    return 1;
}

/*
 * cron_zones.offset through the C library. glibc quietly treats an unknown
 * TZ as UTC, hence the look in the zone database first.
 */
static int zone_offset(void *ctx, const char *zone, int64_t unix_s, int32_t *off_s)
{
    struct crond *cd = ctx;
    if (!zone_exists(cd, zone))
        return -1;
    const char *old = getenv("TZ");
    char *saved = old ? xstrdup(old) : NULL;
    setenv("TZ", zone, 1);
    tzset();
    time_t t = (time_t)unix_s;
    struct tm tm;
    int ok = localtime_r(&t, &tm) != NULL;
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    if (!ok)
        return -1;
    *off_s = (int32_t)tm.tm_gmtoff;
    return 0;
}

/* Reads and parses cron.json. Returns 0 with *out (NULL when the file is absent), or -1 with err. */
static int load(struct crond *cd, uint32_t seed, struct cron_table **out, char *err, size_t errlen)
{
    *out = NULL;
    char *buf;
    size_t n;
    if (config_read_file(cd->path, CRON_FILE_MAX, &buf, &n, err, errlen) != 0)
        return -1;
    if (!buf)
        return 0; /* no cron.json: no periodic jobs */
    char perr[CRON_ERR_MAX];
    struct cron_zones zones = {zone_offset, cd};
    *out = cron_table_parse(buf, n, &zones, seed, perr);
    free(buf);
    if (!*out) {
        snprintf(err, errlen, "%s: %s", cd->path, perr);
        return -1;
    }
    return 0;
}

int crond_load(struct server *srv, struct cron_table **out, char *err, size_t errlen)
{
    struct crond *cd = srv->crond;
    *out = NULL;
    if (!cd->path)
        return 0;
    int64_t now = server_now();
    return load(cd, (uint32_t)(now ^ (now >> 32)), out, err, errlen);
}

void crond_apply(struct server *srv, struct cron_table *t)
{
    struct crond *cd = srv->crond;
    if (t)
        cron_table_start(t, srv->engine, cd->table, 1, server_now());
    cron_table_free(cd->table);
    cd->table = t;
}

size_t crond_entries(struct server *srv)
{
    struct crond *cd = srv->crond;
    return cd && cd->table ? cd->table->n : 0;
}

int crond_check_file(const char *config_dir, char *msg, size_t msglen)
{
    struct crond cd = {0};
    size_t n = strlen(config_dir) + sizeof CRON_FILE + 1;
    cd.path = xmalloc(n);
    snprintf(cd.path, n, "%s/%s", config_dir, CRON_FILE);
    struct cron_table *t = NULL;
    int rc = load(&cd, 1, &t, msg, msglen);
    if (rc == 0 && t)
        snprintf(msg, msglen, "%s: %zu entries", cd.path, t->n);
    else if (rc == 0)
        snprintf(msg, msglen, "%s: absent (no periodic jobs)", cd.path);
    cron_table_free(t);
    free(cd.path);
    return rc;
}

int crond_init(struct server *srv)
{
    struct crond *cd = xcalloc(1, sizeof *cd);
    srv->crond = cd;
    if (srv->cfg.config_dir) {
        size_t n = strlen(srv->cfg.config_dir) + sizeof CRON_FILE + 1;
        cd->path = xmalloc(n);
        snprintf(cd->path, n, "%s/%s", srv->cfg.config_dir, CRON_FILE);
        char err[CRON_ERR_MAX + 600];
        int64_t now = server_now();
        if (load(cd, (uint32_t)(now ^ (now >> 32)), &cd->table, err, sizeof err) != 0) {
            log_error("msg=\"refusing to start: bad cron configuration\" error=\"%s\"", err);
            return -1;
        }
        if (cd->table) {
            cron_table_start(cd->table, srv->engine, NULL, 0, now);
            log_info("msg=\"cron.json loaded\" path=%s entries=%zu", cd->path, cd->table->n);
        }
    }
    return 0;
}

int64_t crond_tick(struct server *srv, int64_t now_ns)
{
    struct crond *cd = srv->crond;
    if (!cd || !cd->table)
        return INT64_MAX;
    if (srv->is_readonly) /* changes are refused: the slots wait for a restart */
        return INT64_MAX;
    return cron_table_tick(cd->table, srv->engine, now_ns);
}

void crond_list_json(struct server *srv, struct sbuf *out)
{
    struct crond *cd = srv->crond;
    cron_table_list_json(cd ? cd->table : NULL, srv->engine, out);
}

void crond_release(struct server *srv)
{
    struct crond *cd = srv->crond;
    if (!cd)
        return;
    cron_table_free(cd->table);
    free(cd->path);
    free(cd);
    srv->crond = NULL;
}
