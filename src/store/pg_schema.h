/*
 * pg_schema: spoold's PostgreSQL schema as numbered migrations (the SQL
 * files in src/store/pg/, embedded at build time), and the start-up step
 * that brings a database up to date.
 *
 * Migrating takes a transaction-level advisory lock, so servers starting
 * together apply each migration once; spool.schema_migrations records what
 * is applied. A database newer than this binary (a migration it does not
 * know) refuses the start rather than run against a schema it cannot read.
 */
#ifndef SPOOL_PG_SCHEMA_H
#define SPOOL_PG_SCHEMA_H

#include <stddef.h>

struct pg;

struct pg_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct pg_migration pg_migrations[];
extern const int pg_migrations_count;

/*
 * Applies every migration the database lacks (blocking: start-up only).
 * Returns the schema version reached, or -1 with a message in err.
 */
int pg_schema_migrate(struct pg *pg, char *err, size_t errlen);

#endif
