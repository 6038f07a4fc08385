/* Logging: one line per event on stderr, as text or as JSON.
 *
 * Every line carries a level, a module tag and a message. Lines about a
 * record name it as "topic [partition] @offset" and by request id; they
 * never contain message contents, phone numbers or the API key. The level
 * check happens inside the macro, so filtered lines cost no formatting. */
#ifndef C2M_LOG_H
#define C2M_LOG_H

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON,
};

extern enum log_level log_current_level;

void log_setup(enum log_level level, enum log_format format);

/* Parses "error", "warn", "info" or "debug"; returns 0, or -1 when the
 * name is not one of those. */
int log_level_parse(const char *name, enum log_level *out);
int log_format_parse(const char *name, enum log_format *out);
const char *log_level_name(enum log_level level);

/* Writes one line. Safe to call from any thread (librdkafka's own
 * threads log through it): the line is built in a local buffer and
 * written with a single write(2). */
void log_write(enum log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(level, tag, ...)                                               \
    do {                                                                      \
        if ((level) <= log_current_level)                                     \
            log_write((level), (tag), __VA_ARGS__);                           \
    } while (0)

#define log_error(tag, ...) LOG_AT(LOG_LEVEL_ERROR, tag, __VA_ARGS__)
#define log_warn(tag, ...)  LOG_AT(LOG_LEVEL_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...)  LOG_AT(LOG_LEVEL_INFO, tag, __VA_ARGS__)
#define log_debug(tag, ...) LOG_AT(LOG_LEVEL_DEBUG, tag, __VA_ARGS__)

#endif
