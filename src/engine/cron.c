#include "engine/cron.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/xalloc.h"
#include "common/xorshift.h"
#include "engine/engine.h"
#include "engine/job.h"

#define DAY_S INT64_C(86400)
/* A schedule that has not fired within this long never will (29 Feb on a Monday: 28 years; we stop earlier). */
#define SEARCH_LIMIT_S (9 * 366 * DAY_S)

/* ---- civil calendar (Howard Hinnant's algorithms) ---- */

int64_t cron_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- parsing ---- */

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct field_spec {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[0] is the value lo */
    int nnames;
};

static const struct field_spec fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 12},
    {"day-of-week", 0, 7, dow_names, 7}, /* 7 is Sunday too */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* One value: a number or a name. Returns the end of it, or NULL. */
static const char *parse_value(const char *p, const struct field_spec *f, int *out)
{
    if (isdigit((unsigned char)*p)) {
        long v = 0;
        int n = 0;
        while (isdigit((unsigned char)*p) && n < 4) {
            v = v * 10 + (*p++ - '0');
            n++;
        }
        if (isdigit((unsigned char)*p))
            return NULL;
        *out = (int)v;
        return p;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(p, f->names[i], 3) == 0 && !isalpha((unsigned char)p[3])) {
            *out = f->lo + i;
            return p + 3;
        }
    }
    return NULL;
}

/* A field "a,b-c,*\/n,d-e/n" into a bit set over lo..hi. */
static int parse_field(const char *text, const struct field_spec *f, uint64_t *bits, char *err,
                       size_t errlen)
{
    *bits = 0;
    const char *p = text;
    for (;;) {
        int a, b, step = 1;
        const char *item = p;
        if (*p == '*') {
            a = f->lo;
            b = f->hi == 7 ? 6 : f->hi;
            p++;
        } else {
            const char *q = parse_value(p, f, &a);
            if (!q)
                goto bad;
            p = q;
            b = a;
            if (*p == '-') {
                q = parse_value(p + 1, f, &b);
                if (!q)
                    goto bad;
                p = q;
            }
        }
        if (*p == '/') {
            const char *q = p + 1;
            long v = 0;
            int n = 0;
            while (isdigit((unsigned char)*q) && n < 4) {
                v = v * 10 + (*q++ - '0');
                n++;
            }
            if (!n || isdigit((unsigned char)*q)) {
                set_err(err, errlen, "%s field \"%s\": a step must be a number", f->what, text);
                return -1;
            }
            if (v < 1) {
                set_err(err, errlen, "%s field \"%s\": a step must be at least 1", f->what, text);
                return -1;
            }
            step = (int)v;
            /* "5/15" means 5 to the end in steps of 15 (Vixie cron). */
            if (item[0] != '*' && a == b)
                b = f->hi == 7 ? 6 : f->hi;
            p = q;
        }
        if (a < f->lo || a > f->hi || b < f->lo || b > f->hi) {
            set_err(err, errlen, "%s field \"%s\": %d is out of range %d-%d", f->what, text,
                    (a < f->lo || a > f->hi) ? a : b, f->lo, f->hi);
            return -1;
        }
        if (a > b) {
            set_err(err, errlen, "%s field \"%s\": range %d-%d goes backwards", f->what, text, a, b);
            return -1;
        }
        for (int v = a; v <= b; v += step)
            *bits |= UINT64_C(1) << (f->hi == 7 && v == 7 ? 0 : v);
        if (*p == '\0')
            return 0;
        if (*p != ',')
            goto bad;
        p++;
    }
bad:
    set_err(err, errlen, "%s field \"%s\": expected a number%s, a range a-b, * or a step /n, "
            "separated by commas", f->what, text, f->names ? " or a name" : "");
    return -1;
}

static int days_in_month(unsigned m)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return days[m - 1];
}

int cron_parse(const char *expr, struct cron_schedule *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    while (*expr == ' ' || *expr == '\t')
        expr++;
    static const struct {
        const char *name, *expr;
    } macros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    if (expr[0] == '@') {
        if (strncmp(expr, "@every", 6) == 0 && (expr[6] == ' ' || expr[6] == '\0')) {
            const char *d = expr + 6;
            while (*d == ' ')
                d++;
            char buf[64];
            size_t n = strlen(d);
            while (n && d[n - 1] == ' ')
                n--;
            int64_t ns;
            if (!n || n >= sizeof buf) {
                set_err(err, errlen, "@every needs a duration such as 30s, 5m or 1h30m");
                return -1;
            }
            memcpy(buf, d, n);
            buf[n] = '\0';
            if (job_parse_duration(buf, &ns) != 0) {
                set_err(err, errlen, "@every \"%s\": not a duration (use units ms, s, m, h: 30s, 5m, 1h30m)", buf);
                return -1;
            }
            if (ns < NS_PER_S) {
                set_err(err, errlen, "@every \"%s\": the period must be at least 1s", buf);
                return -1;
            }
            out->every_ns = ns;
            return 0;
        }
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            size_t n = strlen(macros[i].name);
            if (strncmp(expr, macros[i].name, n) == 0 && expr[n + strspn(expr + n, " \t")] == '\0')
                return cron_parse(macros[i].expr, out, err, errlen);
        }
        set_err(err, errlen, "unknown macro \"%.40s\" (@yearly, @annually, @monthly, @weekly, "
                "@daily, @midnight, @hourly or @every <duration>)", expr);
        return -1;
    }

    char copy[256];
    size_t len = strlen(expr);
    if (len >= sizeof copy) {
        set_err(err, errlen, "too long (at most %zu characters)", sizeof copy - 1);
        return -1;
    }
    memcpy(copy, expr, len + 1);
    char *parts[6];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == 6)
            break;
        parts[n++] = tok;
    }
    if (n != 5) {
        set_err(err, errlen, "\"%.100s\" has %s%d field%s; want 5 (minute hour day-of-month month "
                "day-of-week) or a macro such as @daily", expr, n == 6 ? "more than " : "", n == 6 ? 5 : n,
                n == 1 ? "" : "s");
        return -1;
    }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(parts[i], &fields[i], &bits[i], err, errlen) != 0)
            return -1;
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->doms = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->dows = (uint8_t)bits[4];
    /* Vixie cron: a field starting with '*' counts as unrestricted. */
    out->is_dom_restricted = parts[2][0] != '*';
    out->is_dow_restricted = parts[4][0] != '*';
    if (out->is_dom_restricted && !out->is_dow_restricted) {
        int fires = 0;
        for (unsigned m = 1; m <= 12 && !fires; m++)
            if (out->months & (1u << m))
                for (int d = 1; d <= days_in_month(m); d++)
                    fires |= (out->doms >> d) & 1;
        if (!fires) {
            set_err(err, errlen, "\"%.100s\" never fires: no chosen month has the chosen day", expr);
            return -1;
        }
    }
    return 0;
}

/* ---- evaluation ---- */

static int zone_offset(const struct cron_zones *z, const char *zone, int64_t t, int32_t *off)
{
    if (!zone || !strcmp(zone, "UTC")) {
        *off = 0;
        return 0;
    }
    if (!z || !z->offset)
        return -1;
    return z->offset(z->ctx, zone, t, off);
}

static int day_matches(const struct cron_schedule *s, unsigned d, unsigned dow)
{
    int dom_ok = (s->doms >> d) & 1, dow_ok = (s->dows >> dow) & 1;
    if (s->is_dom_restricted && s->is_dow_restricted)
        return dom_ok || dow_ok;
    return dom_ok && dow_ok;
}

/*
 * The first instant whose local wall clock reads x (seconds, wall time as if
 * UTC): the first of two in a fall-back overlap; for a wall time skipped by
 * a spring-forward gap, the first instant after the gap. Assumes at most one
 * offset change within 16 h of x, which holds for every real zone.
 */
static int first_instant(const struct cron_zones *z, const char *zone, int64_t x, int64_t *out)
{
    int32_t o1, o2, ou;
    const int64_t w = 16 * 3600; /* beyond the largest offset (14 h) */
    if (zone_offset(z, zone, x - w, &o1) || zone_offset(z, zone, x + w, &o2))
        return -1;
    int64_t u1 = x - o1, u2 = x - o2; /* u1: before a change; u2: after it */
    int64_t best = INT64_MAX;
    if (zone_offset(z, zone, u1, &ou))
        return -1;
    if (u1 + ou == x)
        best = u1;
    if (o2 != o1) {
        if (zone_offset(z, zone, u2, &ou))
            return -1;
        if (u2 + ou == x && u2 < best)
            best = u2;
    }
    if (best != INT64_MAX) {
        *out = best;
        return 0;
    }
    if (o2 <= o1) {
        *out = u1; /* cannot happen for a sane zone; fire rather than stall */
        return 0;
    }
    /* A gap: the change lies in (u2, u1]; find its instant. */
    int64_t lo = u2, hi = u1;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (zone_offset(z, zone, mid, &ou))
            return -1;
        if (ou == o2)
            hi = mid;
        else
            lo = mid;
    }
    *out = hi;
    return 0;
}

int64_t cron_next(const struct cron_schedule *s, const char *zone, const struct cron_zones *z,
                  int64_t after_ns)
{
    if (s->every_ns > 0)
        return (floor_div(after_ns, s->every_ns) + 1) * s->every_ns;
    int64_t after_s = floor_div(after_ns, NS_PER_S);
    int32_t off;
    if (zone_offset(z, zone, after_s, &off))
        return -1;
    /* Walk the wall clock minute by minute, skipping months, days and hours that cannot match. */
    int64_t m = floor_div(after_s + off, 60) * 60 + 60;
    int64_t limit = m + SEARCH_LIMIT_S;
    while (m < limit) {
        int64_t days = floor_div(m, DAY_S);
        int64_t secs = m - days * DAY_S;
        int64_t y;
        unsigned mo, d;
        civil_from_days(days, &y, &mo, &d);
        unsigned dow = (unsigned)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
        if (!((s->months >> mo) & 1)) {
            m = (mo == 12 ? cron_days_from_civil(y + 1, 1, 1) : cron_days_from_civil(y, mo + 1, 1)) * DAY_S;
            continue;
        }
        if (!day_matches(s, d, dow)) {
            m = (days + 1) * DAY_S;
            continue;
        }
        int h = (int)(secs / 3600);
        if (!((s->hours >> h) & 1)) {
            m = days * DAY_S + (h + 1) * 3600;
            continue;
        }
        int mi = (int)(secs % 3600 / 60);
        if (!((s->minutes >> mi) & 1)) {
            m += 60;
            continue;
        }
        int64_t t;
        if (first_instant(z, zone, m, &t))
            return -1;
        /* A wall time whose first occurrence is not after `after` has had its turn. */
        if (t > after_s)
            return t * NS_PER_S;
        m += 60;
    }
    return -1;
}

/* ---- the cron table ---- */

static void entry_release(struct cron_entry *en)
{
    free(en->name);
    free(en->schedule_text);
    free(en->tz);
    free(en->jobtype);
    free(en->queue);
    cJSON_Delete(en->job);
}

void cron_table_free(struct cron_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        entry_release(&t->entries[i]);
    free(t->entries);
    free(t);
}

static const char *const entry_keys[] = {"name", "schedule", "jobtype", "args", "queue", "retry",
                                         "reserve_for", "custom", "tz", "expires_in", "missed"};

/* Parses one entry into en; on error writes the reason (without the entry's name) to why. */
static int parse_entry(cJSON *obj, const struct cron_zones *zones, struct cron_entry *en,
                       char *why, size_t whylen)
{
    for (cJSON *k = obj->child; k; k = k->next) {
        size_t i = 0;
        while (i < sizeof entry_keys / sizeof entry_keys[0] && strcmp(k->string, entry_keys[i]))
            i++;
        if (i == sizeof entry_keys / sizeof entry_keys[0]) {
            set_err(why, whylen, "field \"%.60s\": unknown field", k->string);
            return -1;
        }
    }
    cJSON *v;
#define STRING_FIELD(key, is_required)                                                             \
    v = cJSON_GetObjectItemCaseSensitive(obj, key);                                                \
    if ((v && !cJSON_IsString(v)) || (is_required && (!v || !v->valuestring[0]))) {                \
        set_err(why, whylen, "field \"%s\": %s", key,                                              \
                v && !cJSON_IsString(v) ? "must be a string" : "is required");                     \
        return -1;                                                                                 \
    }
    STRING_FIELD("schedule", 1)
    en->schedule_text = xstrdup(v->valuestring);
    char perr[300];
    if (cron_parse(en->schedule_text, &en->schedule, perr, sizeof perr) != 0) {
        set_err(why, whylen, "field \"schedule\": %s", perr);
        return -1;
    }
    STRING_FIELD("jobtype", 1)
    en->jobtype = xstrdup(v->valuestring);
    STRING_FIELD("queue", 0)
    en->queue = xstrdup(v ? v->valuestring : "default");
    STRING_FIELD("tz", 0)
    en->tz = xstrdup(v && v->valuestring[0] ? v->valuestring : "UTC");
    int32_t off;
    if (zone_offset(zones, en->tz, 0, &off) != 0) {
        set_err(why, whylen, "field \"tz\": unknown time zone \"%.80s\" (use an IANA name such as "
                "\"Europe/Berlin\", or \"UTC\")", en->tz);
        return -1;
    }
    STRING_FIELD("missed", 0)
    if (v && strcmp(v->valuestring, "fire") && strcmp(v->valuestring, "skip")) {
        set_err(why, whylen, "field \"missed\": must be \"fire\" or \"skip\"");
        return -1;
    }
    en->is_skip_missed = v && !strcmp(v->valuestring, "skip");
#undef STRING_FIELD

    /* The job, checked by the same code as PUSH. */
    cJSON *job = cJSON_CreateObject();
    en->job = job;
    cJSON_AddStringToObject(job, "jobtype", en->jobtype);
    cJSON_AddStringToObject(job, "queue", en->queue);
    v = cJSON_GetObjectItemCaseSensitive(obj, "args");
    if (v && !cJSON_IsArray(v)) {
        set_err(why, whylen, "field \"args\": must be an array");
        return -1;
    }
    cJSON_AddItemToObject(job, "args", v ? cJSON_Duplicate(v, 1) : cJSON_CreateArray());
    static const char *const ints[] = {"retry", "reserve_for"};
    for (size_t i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(obj, ints[i]);
        if (!v)
            continue;
        if (!cJSON_IsNumber(v)) {
            set_err(why, whylen, "field \"%s\": must be a number", ints[i]);
            return -1;
        }
        cJSON_AddItemToObject(job, ints[i], cJSON_Duplicate(v, 1));
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "custom");
    if (v && !cJSON_IsObject(v)) {
        set_err(why, whylen, "field \"custom\": must be an object");
        return -1;
    }
    cJSON *custom = v ? cJSON_Duplicate(v, 1) : cJSON_CreateObject();
    cJSON_AddItemToObject(job, "custom", custom);
    cJSON_DeleteItemFromObjectCaseSensitive(custom, "cron");
    cJSON_AddStringToObject(custom, "cron", en->name);
    v = cJSON_GetObjectItemCaseSensitive(obj, "expires_in");
    if (v) {
        if (!cJSON_IsNumber(v) && !cJSON_IsString(v)) {
            set_err(why, whylen, "field \"expires_in\": must be seconds or a duration string");
            return -1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(custom, "expires_in");
        cJSON_AddItemToObject(custom, "expires_in", cJSON_Duplicate(v, 1));
    }
    cJSON *probe = cJSON_Duplicate(job, 1);
    cJSON_AddStringToObject(probe, "jid", "cron-check-0000000000");
    struct job *parsed = NULL;
    char jerr[JOB_ERR_MAX];
    int rc = job_from_cjson(probe, 0, &parsed, jerr);
    cJSON_Delete(probe);
    job_free(parsed);
    if (rc != 0) {
        set_err(why, whylen, "the job is invalid: %s", jerr);
        return -1;
    }
    return 0;
}

struct cron_table *cron_table_parse(const char *json, size_t len, const struct cron_zones *zones,
                                    uint32_t seed, char *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        set_err(err, CRON_ERR_MAX, "not valid JSON (near byte %zu)",
                end && end >= json ? (size_t)(end - json) : (size_t)0);
        return NULL;
    }
    if (!cJSON_IsArray(root)) {
        set_err(err, CRON_ERR_MAX, "must be a JSON array of entries");
        cJSON_Delete(root);
        return NULL;
    }
    size_t at = job_json_trailing_at(json, len, end);
    if (at < len) { /* cJSON stops after the first value; a second one would go unread */
        set_err(err, CRON_ERR_MAX, "text after the JSON array (at byte %zu)", at);
        cJSON_Delete(root);
        return NULL;
    }
    if (job_json_has_nul(json, len)) { /* cJSON would cut such a name or arg short, unseen */
        set_err(err, CRON_ERR_MAX, "contains \\u0000, which no name, jobtype or argument may hold");
        cJSON_Delete(root);
        return NULL;
    }
    struct cron_table *t = xcalloc(1, sizeof *t);
    t->zones = *zones;
    t->rng = seed ? seed : 1;
    size_t cap = (size_t)cJSON_GetArraySize(root);
    t->entries = xcalloc(cap ? cap : 1, sizeof *t->entries);
    int idx = 0;
    for (cJSON *obj = root->child; obj; obj = obj->next, idx++) {
        struct cron_entry *en = &t->entries[t->n];
        if (!cJSON_IsObject(obj)) {
            set_err(err, CRON_ERR_MAX, "entry #%d: must be a JSON object", idx + 1);
            goto fail;
        }
        cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
        if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 200) {
            set_err(err, CRON_ERR_MAX, "entry #%d: field \"name\": %s", idx + 1,
                    name && !cJSON_IsString(name) ? "must be a string"
                    : name && name->valuestring[0] ? "is longer than 200 characters" : "is required");
            goto fail;
        }
        for (size_t i = 0; i < t->n; i++) {
            if (!strcmp(t->entries[i].name, name->valuestring)) {
                set_err(err, CRON_ERR_MAX, "entry #%d (\"%s\"): field \"name\": used by entry #%zu too; "
                        "names must be unique", idx + 1, name->valuestring, i + 1);
                goto fail;
            }
        }
        en->name = xstrdup(name->valuestring);
        t->n++;
        char why[CRON_ERR_MAX - 240];
        if (parse_entry(obj, zones, en, why, sizeof why) != 0) {
            set_err(err, CRON_ERR_MAX, "entry #%d (\"%.200s\"): %s", idx + 1, en->name, why);
            goto fail;
        }
    }
    cJSON_Delete(root);
    return t;
fail:
    cJSON_Delete(root);
    cron_table_free(t);
    return NULL;
}

static const struct cron_entry *find_entry(const struct cron_table *t, const char *name)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (!strcmp(t->entries[i].name, name))
            return &t->entries[i];
    return NULL;
}

void cron_table_start(struct cron_table *t, struct engine *e, const struct cron_table *prev,
                      int is_reload, int64_t now_ns)
{
    for (size_t i = 0; i < t->n; i++) {
        struct cron_entry *en = &t->entries[i];
        int64_t last = engine_cron_last(e, en->name);
        if (is_reload) {
            const struct cron_entry *old = find_entry(prev, en->name);
            if (old && !strcmp(old->schedule_text, en->schedule_text) && !strcmp(old->tz, en->tz)) {
                en->next_ns = old->next_ns;
                continue;
            }
            en->next_ns = cron_next(&en->schedule, en->tz, &t->zones, last > now_ns ? last : now_ns);
            continue;
        }
        if (!last) {
            en->next_ns = cron_next(&en->schedule, en->tz, &t->zones, now_ns);
            continue;
        }
        en->next_ns = cron_next(&en->schedule, en->tz, &t->zones, last);
        if (en->next_ns >= 0 && en->next_ns <= now_ns && en->is_skip_missed)
            en->next_ns = cron_next(&en->schedule, en->tz, &t->zones, now_ns);
    }
}

/*
 * The latest slot <= now, given that first (<= now) is one. Looks back over
 * growing windows so a long outage costs a few steps, not one per slot.
 */
static int64_t latest_slot(const struct cron_table *t, const struct cron_entry *en, int64_t first,
                           int64_t now_ns)
{
    const struct cron_schedule *s = &en->schedule;
    if (s->every_ns > 0)
        return floor_div(now_ns, s->every_ns) * s->every_ns;
    static const int64_t windows_s[] = {3600, DAY_S, 32 * DAY_S, 367 * DAY_S, 10 * 367 * DAY_S};
    for (size_t w = 0; w < sizeof windows_s / sizeof windows_s[0]; w++) {
        int64_t from = now_ns - windows_s[w] * NS_PER_S;
        if (from < first - 1)
            from = first - 1;
        int64_t slot = cron_next(s, en->tz, &t->zones, from);
        if (slot < 0 || slot > now_ns)
            continue;
        for (int steps = 0; steps < 100000; steps++) {
            int64_t n = cron_next(s, en->tz, &t->zones, slot);
            if (n < 0 || n > now_ns)
                break;
            slot = n;
        }
        return slot;
    }
    return first;
}

static void fire(struct cron_table *t, struct engine *e, struct cron_entry *en, int64_t slot,
                 int64_t now_ns)
{
    char jid[25], jerr[JOB_ERR_MAX];
    int rc = ENGINE_EEXIST;
    /* A fresh jid; a clash with a held job (a reused seed) just draws another. */
    for (int attempt = 0; attempt < 8 && (rc == ENGINE_EEXIST || rc == 1); attempt++) {
        snprintf(jid, sizeof jid, "%08x%08x%08x", xorshift32(&t->rng), xorshift32(&t->rng),
                 xorshift32(&t->rng));
        cJSON *obj = cJSON_Duplicate(en->job, 1);
        cJSON_AddStringToObject(obj, "jid", jid);
        struct job *job = NULL;
        rc = job_from_cjson(obj, now_ns, &job, jerr);
        cJSON_Delete(obj);
        if (rc != 0) {
            log_warn("msg=\"cron: the job is invalid\" entry=\"%s\" error=\"%s\"", en->name, jerr);
            break;
        }
        rc = engine_push(e, job, now_ns);
        if (rc != 0)
            job_free(job);
    }
    if (rc == 0)
        log_debug("msg=\"cron fired\" entry=\"%s\" jid=%s", en->name, jid);
    else if (rc < 0)
        log_warn("msg=\"cron: the job was refused\" entry=\"%s\" error=\"%s\"", en->name,
                 engine_strerror(rc));
    /*
     * The slot is marked after the push: both records go out in the same
     * journal batch, and should a crash tear the batch between them, the slot
     * fires again at the next start (at least once) rather than never.
     */
    engine_cron_mark(e, en->name, slot);
}

int64_t cron_table_tick(struct cron_table *t, struct engine *e, int64_t now_ns)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; t && i < t->n; i++) {
        struct cron_entry *en = &t->entries[i];
        if (en->next_ns >= 0 && en->next_ns <= now_ns) {
            int64_t slot = latest_slot(t, en, en->next_ns, now_ns);
            fire(t, e, en, slot, now_ns);
            en->next_ns = cron_next(&en->schedule, en->tz, &t->zones, slot > now_ns ? slot : now_ns);
        }
        if (en->next_ns >= 0 && en->next_ns < next)
            next = en->next_ns;
    }
    return next;
}

static void add_time_or_null(struct sbuf *out, int64_t ns)
{
    if (ns <= 0) {
        sbuf_adds(out, "null");
        return;
    }
    char buf[TIMEFMT_MAX];
    size_t n = timefmt_format(ns, buf);
    sbuf_add_json_str(out, buf, n);
}

void cron_table_list_json(const struct cron_table *t, const struct engine *e, struct sbuf *out)
{
    sbuf_adds(out, "[");
    for (size_t i = 0; t && i < t->n; i++) {
        const struct cron_entry *en = &t->entries[i];
        sbuf_adds(out, i ? ",{\"name\":" : "{\"name\":");
        sbuf_add_json_str(out, en->name, strlen(en->name));
        sbuf_adds(out, ",\"schedule\":");
        sbuf_add_json_str(out, en->schedule_text, strlen(en->schedule_text));
        sbuf_adds(out, ",\"tz\":");
        sbuf_add_json_str(out, en->tz, strlen(en->tz));
        sbuf_adds(out, ",\"jobtype\":");
        sbuf_add_json_str(out, en->jobtype, strlen(en->jobtype));
        sbuf_adds(out, ",\"queue\":");
        sbuf_add_json_str(out, en->queue, strlen(en->queue));
        sbuf_adds(out, ",\"next_at\":");
        add_time_or_null(out, en->next_ns);
        sbuf_adds(out, ",\"last_at\":");
        add_time_or_null(out, engine_cron_last(e, en->name));
        sbuf_adds(out, "}");
    }
    sbuf_adds(out, "]");
}
