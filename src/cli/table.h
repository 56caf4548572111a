/*
 * table: human-readable output as aligned columns with a header row, the
 * default format of every read command (--json prints JSON instead).
 * A table owns copies of its cells; columns are as wide as their widest
 * cell. Right-aligned columns suit numbers.
 */
#ifndef SPOOL_CLI_TABLE_H
#define SPOOL_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

/* A table with ncols columns titled by headers[0..ncols). */
struct table *table_new(size_t ncols, const char *const *headers);
void table_free(struct table *t);

/* Makes column col right-aligned (numbers). */
void table_align_right(struct table *t, size_t col);

/* Appends a row; cells[0..ncols) are copied (NULL prints as "-"). */
void table_add_row(struct table *t, const char *const *cells);

/* Writes the header and the rows to f; no trailing spaces on any line. */
void table_print(const struct table *t, FILE *f);

/*
 * Prints "key   value" lines with the keys padded to one width: the shape of
 * `spool info`. keys and values are n entries each.
 */
void table_print_pairs(const char *const *keys, const char *const *values, size_t n, FILE *f);

#endif
