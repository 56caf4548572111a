#include "cli/table.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct table {
    size_t ncols, nrows, cap;
    char **cells; /* row-major, (nrows + 1) * ncols; row 0 is the header */
    int *is_right;
};

struct table *table_new(size_t ncols, const char *const *headers)
{
    struct table *t = xcalloc(1, sizeof *t);
    t->ncols = ncols;
    t->is_right = xcalloc(ncols, sizeof *t->is_right);
    table_add_row(t, headers);
    return t;
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->is_right);
    free(t);
}

void table_align_right(struct table *t, size_t col)
{
    if (col < t->ncols)
        t->is_right[col] = 1;
}

void table_add_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = xstrdup(cells[c] ? cells[c] : "-");
    t->nrows++;
}

void table_print(const struct table *t, FILE *f)
{
    size_t *width = xcalloc(t->ncols, sizeof *width);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = strlen(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            int pad = (int)(width[c] - strlen(cell));
            int is_last = c + 1 == t->ncols;
            if (c > 0)
                fputs("  ", f);
            if (t->is_right[c])
                fprintf(f, "%*s%s", pad, "", cell);
            else if (is_last)
                fputs(cell, f);
            else
                fprintf(f, "%s%*s", cell, pad, "");
        }
        fputc('\n', f);
    }
    free(width);
}

void table_print_pairs(const char *const *keys, const char *const *values, size_t n, FILE *f)
{
    int width = 0;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(keys[i]) > width)
            width = (int)strlen(keys[i]);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%-*s  %s\n", width, keys[i], values[i]);
}
