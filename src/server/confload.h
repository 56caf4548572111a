/*
 * confload: the configuration directory (-c DIR) as a whole. Loads
 * throttles.json at start (cron.json through crond.c), and reloads both
 * files on SIGHUP and on POST /api/v1/config/reload. A reload is all or
 * nothing: both files are read and checked first, and only when both are
 * good are the new cron entries and queue throttles applied; otherwise the
 * previous configuration stays (docs/features.md, docs/cron.md).
 *
 * Throttles are configuration: they are handed to the engine with
 * engine_throttle_set() and never journaled.
 *
 * Event-loop thread only.
 */
#ifndef SPOOL_CONFLOAD_H
#define SPOOL_CONFLOAD_H

#include <stddef.h>

#include "common/sbuf.h"

struct server;

#define CONFLOAD_ENODIR (-1) /* spoold was started without -c */
#define CONFLOAD_EBAD (-2)   /* a file is unreadable or wrong; nothing changed */
#define CONFLOAD_ERR_MAX 1400

/*
 * At start, after recovery: cron.json (crond_init), then throttles.json, and
 * the SIGHUP handler. Returns 0, or -1 after logging which file, queue or
 * entry and field are wrong (the server then refuses to start).
 */
int confload_init(struct server *srv);

/*
 * Reloads cron.json and throttles.json, both or neither. Returns 0 and
 * appends {"cron":[...CRON listing...],"throttles":{queue: limits}} to out;
 * CONFLOAD_ENODIR; or CONFLOAD_EBAD with a message in err
 * (CONFLOAD_ERR_MAX bytes) naming the file and what is wrong in it.
 */
int confload_reload(struct server *srv, struct sbuf *out, char *err);

/*
 * spoold --check-config: reads and validates <config_dir>/throttles.json
 * without a server (a missing file is fine: no throttles). Returns 0 with a
 * one-line summary in msg, or -1 with what is wrong in msg.
 */
int confload_check_file(const char *config_dir, char *msg, size_t msglen);

/* Frees the loaded configuration and the SIGHUP event; safe on a half-built server. */
void confload_release(struct server *srv);

#endif
