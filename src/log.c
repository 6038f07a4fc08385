#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

enum log_level log_current_level = LOG_LEVEL_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Longer lines are cut: a log line is an event, not a payload. */
#define LOG_LINE_MAX 2048

void log_setup(enum log_level level, enum log_format format)
{
    log_current_level = level;
    current_format = format;
}

const char *log_level_name(enum log_level level)
{
    if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG)
        return "unknown";
    return level_names[level];
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_format_parse(const char *name, enum log_format *out)
{
    if (strcmp(name, "text") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcmp(name, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

/* Appends src to buf as the inside of a JSON string. Control characters
 * are escaped, so a message never breaks the one-line-per-event rule. */
static size_t append_json_escaped(char *buf, size_t pos, size_t size,
                                  const char *src)
{
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        char escaped[8];
        const char *piece = escaped;

        if (*p == '"' || *p == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)*p;
            escaped[2] = '\0';
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(escaped, sizeof(escaped), "\\u%04x", *p);
        } else {
            escaped[0] = (char)*p;
            escaped[1] = '\0';
        }

        size_t len = strlen(piece);
        if (pos + len >= size)
            break;
        memcpy(buf + pos, piece, len);
        pos += len;
    }
    buf[pos] = '\0';
    return pos;
}

/* Replaces control characters in a text line, so that a value that slips
 * into a message cannot forge a second log line. */
static void neutralize_controls(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
}

void log_write(enum log_level level, const char *tag, const char *fmt, ...)
{
    char message[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 256];
    char timestamp[32];
    int saved_errno = errno;
    va_list ap;
    size_t len;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    util_format_rfc3339(util_now_wall_ms(), timestamp, sizeof(timestamp));

    if (current_format == LOG_FORMAT_JSON) {
        len = (size_t)snprintf(line, sizeof(line),
                               "{\"time\":\"%s\",\"level\":\"%s\",\"module\":\"",
                               timestamp, log_level_name(level));
        len = append_json_escaped(line, len, sizeof(line) - 4, tag);
        len += (size_t)snprintf(line + len, sizeof(line) - len,
                                "\",\"message\":\"");
        len = append_json_escaped(line, len, sizeof(line) - 4, message);
        len += (size_t)snprintf(line + len, sizeof(line) - len, "\"}\n");
    } else {
        neutralize_controls(message);
        len = (size_t)snprintf(line, sizeof(line), "%s %-5s [%s] %s\n",
                               timestamp, log_level_name(level), tag, message);
    }
    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }

    /* One write(2) per line keeps lines whole when librdkafka's threads
     * log at the same time as the main thread. */
    ssize_t written = write(STDERR_FILENO, line, len);
    (void)written;
    errno = saved_errno;
}
