/*
 * Jobs: a cJSON object plus borrowed-string caches for the getters. Built by
 * producers through setters, or parsed from the JSON FETCH returned (then the
 * exact text is kept and returned by spool_job_json until a setter runs).
 * One thread at a time.
 */
#ifndef SPOOL_CLIENT_JOB_H
#define SPOOL_CLIENT_JOB_H

#include <stddef.h>

#include "spool/spool.h"

/* The job as compact JSON text, malloc'd (caller frees), or NULL on ENOMEM. */
char *job_serialize(const spool_job *j);

/* Takes ownership of `text` (malloc'd JSON of a fetched job) and makes a job
 * of it. Returns 0 or SPOOL_EJSON / -ENOMEM; text is freed on error. */
int job_from_text_take(char *text, spool_job **out);

/* Fills buf (2*nbytes+1) with random lowercase hex. 0 or -errno. */
int random_hex(char *buf, size_t nbytes);

#endif
