/*
 * sbuf: a growable byte string for building replies and JSON text.
 * Always NUL-terminated after any call. Owned by whoever embeds it.
 */
#ifndef SPOOL_SBUF_H
#define SPOOL_SBUF_H

#include <stddef.h>

struct sbuf {
    char *buf;
    size_t len, cap;
};

void sbuf_init(struct sbuf *b);
void sbuf_release(struct sbuf *b);
/* Empties b, keeping its memory. */
void sbuf_reset(struct sbuf *b);
void sbuf_add(struct sbuf *b, const void *data, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string, escaping as RFC 8259 requires. */
void sbuf_add_json_str(struct sbuf *b, const char *s, size_t n);
/* Hands the buffer to the caller (free() it) and leaves b empty. */
char *sbuf_detach(struct sbuf *b, size_t *len);

#endif
