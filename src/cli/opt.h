/*
 * opt: the command line's option parser and the help text made from the
 * same table, so that what `--help` shows is exactly what is accepted.
 *
 * A command describes its options in an array of struct opt_spec ending in
 * a zeroed entry. opt_parse() accepts `--name value`, `--name=value`, `-x
 * value`, `-xvalue`, bundled short flags (`-qv`), options between the
 * positional arguments, and `--` to end the options. It never prints: a
 * problem comes back as a message in `err` for the caller to report as a
 * usage error. Single-threaded, like the rest of the CLI's start-up.
 */
#ifndef SPOOL_CLI_OPT_H
#define SPOOL_CLI_OPT_H

#include <stddef.h>
#include <stdio.h>

enum opt_kind {
    OPT_FLAG,   /* no value; `*flag` is set to 1 */
    OPT_STRING, /* one value; the last one given wins */
    OPT_LIST,   /* a value that may be repeated; each is appended to `*list` */
};

/* A growable array of borrowed strings (they point into argv). */
struct strv {
    const char **v;
    size_t n, cap;
};

void strv_push(struct strv *s, const char *str);
void strv_release(struct strv *s);

struct opt_spec {
    const char *name; /* long name without the dashes; NULL ends the table */
    char short_name;  /* 0 when there is none */
    enum opt_kind kind;
    const char *metavar; /* the value's name in the help, e.g. "QUEUE" */
    const char *help;    /* one line; say the default here */
    int *flag;           /* OPT_FLAG */
    const char **str;    /* OPT_STRING: points into argv */
    struct strv *list;   /* OPT_LIST */
};

/* How opt_parse treats the first argument that is not an option. */
enum opt_mode {
    OPT_INTERLEAVED,   /* options may follow positional arguments */
    OPT_STOP_AT_FIRST, /* everything from the first positional on is positional */
};

/*
 * Parses argv[0..argc) (argv[0] is the first argument, not the program) with
 * specs. Positional arguments are appended to pos. Returns 0, or -1 with a
 * message of at most errlen bytes in err.
 */
int opt_parse(const struct opt_spec *specs, enum opt_mode mode, int argc, char **argv,
              struct strv *pos, char *err, size_t errlen);

/* Writes the option table as aligned help lines to f. */
void opt_print_help(const struct opt_spec *specs, FILE *f);

#endif
