#include "cli/opt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void strv_push(struct strv *s, const char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = str;
}

void strv_release(struct strv *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static const struct opt_spec *find_long(const struct opt_spec *specs, const char *name, size_t len)
{
    for (const struct opt_spec *o = specs; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static const struct opt_spec *find_short(const struct opt_spec *specs, char c)
{
    for (const struct opt_spec *o = specs; o->name; o++)
        if (o->short_name && o->short_name == c)
            return o;
    return NULL;
}

static void store(const struct opt_spec *o, const char *value)
{
    switch (o->kind) {
    case OPT_FLAG:
        *o->flag = 1;
        break;
    case OPT_STRING:
        *o->str = value;
        break;
    case OPT_LIST:
        strv_push(o->list, value);
        break;
    }
}

int opt_parse(const struct opt_spec *specs, enum opt_mode mode, int argc, char **argv,
              struct strv *pos, char *err, size_t errlen)
{
    int i = 0;
    while (i < argc) {
        char *a = argv[i++];
        if (strcmp(a, "--") == 0) {
            while (i < argc)
                strv_push(pos, argv[i++]);
            break;
        }
        /* "-" alone is a positional argument (push - reads stdin). */
        if (a[0] != '-' || a[1] == '\0') {
            strv_push(pos, a);
            if (mode == OPT_STOP_AT_FIRST) {
                while (i < argc)
                    strv_push(pos, argv[i++]);
                break;
            }
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct opt_spec *o = find_long(specs, name, len);
            if (!o) {
                snprintf(err, errlen, "unknown option --%.*s", (int)len, name);
                return -1;
            }
            if (o->kind == OPT_FLAG) {
                if (eq) {
                    snprintf(err, errlen, "option --%s takes no value", o->name);
                    return -1;
                }
                store(o, NULL);
            } else if (eq) {
                store(o, eq + 1);
            } else if (i < argc) {
                store(o, argv[i++]);
            } else {
                snprintf(err, errlen, "option --%s needs a value (%s)", o->name, o->metavar);
                return -1;
            }
            continue;
        }
        /* One or more short options: -q, -qv, -cVALUE, -c VALUE. */
        for (const char *p = a + 1; *p; p++) {
            const struct opt_spec *o = find_short(specs, *p);
            if (!o) {
                snprintf(err, errlen, "unknown option -%c", *p);
                return -1;
            }
            if (o->kind == OPT_FLAG) {
                store(o, NULL);
                continue;
            }
            if (p[1]) {
                store(o, p + 1);
            } else if (i < argc) {
                store(o, argv[i++]);
            } else {
                snprintf(err, errlen, "option -%c needs a value (%s)", o->short_name, o->metavar);
                return -1;
            }
            break;
        }
    }
    return 0;
}

static int format_left(const struct opt_spec *o, char *buf, size_t len)
{
    const char *sep = o->kind == OPT_FLAG ? "" : " ";
    const char *meta = o->kind == OPT_FLAG ? "" : o->metavar;
    if (o->short_name)
        return snprintf(buf, len, "-%c, --%s%s%s", o->short_name, o->name, sep, meta);
    return snprintf(buf, len, "    --%s%s%s", o->name, sep, meta);
}

void opt_print_help(const struct opt_spec *specs, FILE *f)
{
    char left[96];
    int width = 0;
    for (const struct opt_spec *o = specs; o->name; o++) {
        int n = format_left(o, left, sizeof left);
        if (n > width)
            width = n;
    }
    for (const struct opt_spec *o = specs; o->name; o++) {
        format_left(o, left, sizeof left);
        fprintf(f, "  %-*s  %s\n", width, left, o->help);
    }
}
