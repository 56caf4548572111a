/*
 * crond: the server side of cron (docs/cron.md). Reads <config-dir>/cron.json
 * at start and when confload.c reloads the configuration (SIGHUP, POST
 * /api/v1/config/reload), answers the zone offsets the pure cron module
 * asks for, fires due entries from the server's tick and lists them for the
 * CRON verb. Owns the cron table (engine/cron.h).
 *
 * Time zones come from the C library: crond sets TZ, calls tzset and
 * localtime_r, and restores TZ. setenv is not thread-safe, so this module
 * runs on the event-loop thread only, and no other thread of spoold reads
 * the environment or local time (the journal writer does neither).
 */
#ifndef SPOOL_CROND_H
#define SPOOL_CROND_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

struct server;

/*
 * Loads cron.json when a config directory was given (a missing file means
 * no entries). Returns 0, or -1 after logging which entry and field are
 * wrong (the server then refuses to start).
 */
int crond_init(struct server *srv);

struct cron_table;
/*
 * Reads and parses cron.json again without applying it. Returns 0 with a
 * new table in *out (NULL: no config directory or no file), or -1 with a
 * message in err naming the file, the entry and the field.
 */
int crond_load(struct server *srv, struct cron_table **out, char *err, size_t errlen);
/* Replaces the entries by t (taken; NULL = none), with reload rules (docs/cron.md). */
void crond_apply(struct server *srv, struct cron_table *t);
/* How many entries are loaded. */
size_t crond_entries(struct server *srv);

/*
 * Fires the entries that are due (not while the journal refuses changes).
 * Returns the next fire time in Unix ns, INT64_MAX when there is none.
 */
int64_t crond_tick(struct server *srv, int64_t now_ns);

/* Appends the CRON listing (a JSON array; "[]" without entries) to out. */
void crond_list_json(struct server *srv, struct sbuf *out);

/*
 * spoold --check-config: reads and validates <config_dir>/cron.json without a
 * server (a missing file is fine: no entries). Returns 0 with a one-line
 * summary in msg, or -1 with what is wrong in msg.
 */
int crond_check_file(const char *config_dir, char *msg, size_t msglen);

/* Frees the table; safe on a half-initialised server. */
void crond_release(struct server *srv);

#endif
