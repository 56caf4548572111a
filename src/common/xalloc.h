/*
 * xalloc: allocation for the server and the command line. Out of memory
 * aborts with a message (every size a client controls is capped before it
 * reaches here). Not for the client library, which returns errors instead.
 */
#ifndef SPOOL_XALLOC_H
#define SPOOL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a NUL-terminated copy of s (never NULL). */
char *xstrdup(const char *s);
/* Returns a NUL-terminated copy of the n bytes at s. */
char *xstrndup(const char *s, size_t n);

#endif
