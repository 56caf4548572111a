/*
 * log: leveled key=value log lines on stderr, one event per line:
 *   ts=2026-11-28T04:05:06.789Z level=info msg="..." key=value ...
 * ts is UTC with milliseconds, level one of error/warn/info/debug, then the
 * caller's fields, which start with msg="..." (docs/operations.md). Used
 * from the event-loop thread; each line is written with a single write so
 * lines from other threads do not interleave.
 */
#ifndef SPOOL_LOG_H
#define SPOOL_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the lowest level that is printed (default LOG_INFO). */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns 0, or -1 if unknown. */
int log_parse_level(const char *name, enum log_level *out);
int log_enabled(enum log_level level);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { \
        if (log_enabled(LOG_DEBUG)) \
            log_write(LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
