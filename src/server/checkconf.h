/*
 * checkconf: spoold --check-config. Validates what a start would read
 * without starting: the flags (already parsed), every file of the config
 * directory that spoold knows, the descriptor limit against
 * --max-connections, and that the data directory exists or can be created
 * and is writable. Prints one line per check on stdout; runs before any
 * server exists, on the main thread.
 *
 * A configuration file gets its validator by adding one row to the table in
 * checkconf.c: a file name and a function that reads and checks it.
 */
#ifndef SPOOL_CHECKCONF_H
#define SPOOL_CHECKCONF_H

#include "server/config.h"

/* Runs every check; returns the exit code: 0 when all pass, 1 otherwise. */
int checkconf_run(const struct config *cfg);

#endif
