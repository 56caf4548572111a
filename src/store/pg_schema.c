/*
 * pg_schema: applies the embedded migrations (see pg_schema.h).
 */
#include "store/pg_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "store/pg.h"

/* Held while migrating: any 64-bit number that no other program is likely to pick. */
#define PG_SCHEMA_LOCK_KEY "7419007420001"

/* Reads one integer from a query (start-up only); -1 with err on failure. */
static long long query_int(struct pg *pg, const char *sql, char *err, size_t errlen)
{
    char buf[64];
    if (pg_exec_value_sync(pg, sql, buf, sizeof buf, err, errlen) != 0)
        return -1;
    return strtoll(buf, NULL, 10);
}

int pg_schema_migrate(struct pg *pg, char *err, size_t errlen)
{
    if (pg_exec_sync(pg, "SELECT pg_advisory_lock(" PG_SCHEMA_LOCK_KEY ")", err, errlen) != 0)
        return -1;
    int version = -1;
    if (pg_exec_sync(pg,
                     "CREATE SCHEMA IF NOT EXISTS spool;"
                     "CREATE TABLE IF NOT EXISTS spool.schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     err, errlen) != 0)
        goto done;
    long long have = query_int(pg, "SELECT coalesce(max(version), 0) FROM spool.schema_migrations", err, errlen);
    if (have < 0)
        goto done;
    int known = pg_migrations_count ? pg_migrations[pg_migrations_count - 1].version : 0;
    if (have > known) {
        snprintf(err, errlen,
                 "the database's spool schema is at version %lld, newer than this spoold knows (%d): "
                 "run a spoold at least as new as the one that migrated it",
                 have, known);
        goto done;
    }
    for (int i = 0; i < pg_migrations_count; i++) {
        const struct pg_migration *m = &pg_migrations[i];
        if (m->version <= have)
            continue;
        struct sbuf b;
        sbuf_init(&b);
        sbuf_addf(&b, "BEGIN;\n%s\n;INSERT INTO spool.schema_migrations (version, name) VALUES (%d, '%s');\nCOMMIT;",
                  m->sql, m->version, m->name);
        char merr[400];
        int rc = pg_exec_sync(pg, b.buf, merr, sizeof merr);
        sbuf_release(&b);
        if (rc != 0) {
            char ignored[64];
            pg_exec_sync(pg, "ROLLBACK", ignored, sizeof ignored);
            for (char *c = merr; *c; c++) /* one log line */
                if (*c == '\n' || *c == '"')
                    *c = ' ';
            snprintf(err, errlen, "migration %s failed: %s", m->name, merr);
            goto done;
        }
        log_info("msg=\"PostgreSQL schema migrated\" version=%d name=%s", m->version, m->name);
    }
    version = known > have ? known : (int)have;
done:;
    char ignored[64];
    pg_exec_sync(pg, "SELECT pg_advisory_unlock(" PG_SCHEMA_LOCK_KEY ")", ignored, sizeof ignored);
    return version;
}
