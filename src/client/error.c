/*
 * Error codes and messages: the SPOOL_ERRORS table, and a thread-local "last
 * error" for calls that have no client object to keep a message in.
 */
#define _GNU_SOURCE
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"

static _Thread_local char last_error[512];

int tls_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return err;
}

const char *tls_error_get(void)
{
    return last_error;
}

void tls_error_clear(void)
{
    last_error[0] = '\0';
}

const char *spool_version(void)
{
    return SPOOL_VERSION;
}

const char *spool_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define SPOOL_ERR_CASE_(name, value, text) \
    case value:                            \
        return text;
        SPOOL_ERRORS(SPOOL_ERR_CASE_)
#undef SPOOL_ERR_CASE_
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerrordesc_np is static text and thread-safe, unlike strerror. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}

void spool_free(void *p)
{
    free(p);
}
