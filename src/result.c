#include "result.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "util.h"

/* A growable byte buffer for building JSON without a DOM. */
struct buffer {
    char *data;
    size_t len;
    size_t cap;
};

static void buffer_reserve(struct buffer *buf, size_t extra)
{
    if (buf->len + extra + 1 <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 512;
    while (cap < buf->len + extra + 1)
        cap *= 2;
    buf->data = xrealloc(buf->data, cap);
    buf->cap = cap;
}

static void buffer_append(struct buffer *buf, const char *data, size_t len)
{
    buffer_reserve(buf, len);
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

static void buffer_puts(struct buffer *buf, const char *s)
{
    buffer_append(buf, s, strlen(s));
}

/* Appends s as a JSON string. Input is UTF-8 (validated on the way in, or
 * cleaned by the classifier); only quotes, backslashes and control
 * characters need escaping. */
static bool needs_escape(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c == 0x7f;
}

static void buffer_put_string(struct buffer *buf, const char *s)
{
    const char *run = s;

    buffer_reserve(buf, strlen(s) + 2);
    buffer_append(buf, "\"", 1);
    /* Copies runs of plain characters at once: most values need no escape. */
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char escaped[8];
        int n;

        if (!needs_escape(c))
            continue;
        buffer_append(buf, run, (size_t)(p - run));
        if (c == '"' || c == '\\')
            n = snprintf(escaped, sizeof(escaped), "\\%c", c);
        else
            n = snprintf(escaped, sizeof(escaped), "\\u%04x", c);
        buffer_append(buf, escaped, (size_t)n);
        run = p + 1;
    }
    buffer_append(buf, run, strlen(run));
    buffer_append(buf, "\"", 1);
}

static void buffer_put_string_or_null(struct buffer *buf, const char *s)
{
    if (s)
        buffer_put_string(buf, s);
    else
        buffer_puts(buf, "null");
}

static void buffer_printf(struct buffer *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buffer_printf(struct buffer *buf, const char *fmt, ...)
{
    char piece[128];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(piece, sizeof(piece), fmt, ap);
    va_end(ap);
    buffer_append(buf, piece, (size_t)n < sizeof(piece) ? (size_t)n
                                                       : sizeof(piece) - 1);
}

static void put_error(struct buffer *buf, const struct job_outcome *outcome)
{
    if (!outcome->error_class) {
        buffer_puts(buf, "null");
        return;
    }
    buffer_puts(buf, "{\"class\":");
    buffer_put_string(buf, outcome->error_class);
    buffer_puts(buf, ",\"code\":");
    buffer_put_string(buf, outcome->error_code);
    buffer_puts(buf, ",\"message\":");
    buffer_put_string(buf, outcome->error_message);
    buffer_puts(buf, "}");
}

char *result_encode(const struct job *job, int64_t completed_wall_ms,
                    size_t *len)
{
    const struct request *req = job->req;
    const struct job_outcome *outcome = &job->outcome;
    struct buffer buf = {0};
    char received[32];

    /* Sized for a typical result, so most results need no regrowth. */
    buffer_reserve(&buf, 1024 + (req && req->metadata_json ? req->metadata_len : 0));
    char completed[32];

    util_format_rfc3339(job->received_wall_ms, received, sizeof(received));
    util_format_rfc3339(completed_wall_ms, completed, sizeof(completed));

    buffer_printf(&buf, "{\"schema\":%d,\"id\":", RESULT_SCHEMA_VERSION);
    buffer_put_string_or_null(&buf, req ? req->id : NULL);
    buffer_puts(&buf, ",\"status\":");
    buffer_put_string(&buf, outcome->status);
    buffer_puts(&buf, ",\"channel\":");
    buffer_put_string_or_null(&buf, req && req->channel != REQUEST_CHANNEL_NONE
                                        ? request_channel_name(req->channel)
                                        : NULL);
    buffer_puts(&buf, ",\"message_id\":");
    buffer_put_string_or_null(&buf, outcome->has_message_id
                                        ? outcome->message_id
                                        : NULL);
    if (job->last_http_status > 0)
        buffer_printf(&buf, ",\"http_status\":%ld", job->last_http_status);
    else
        buffer_puts(&buf, ",\"http_status\":null");
    buffer_puts(&buf, ",\"error\":");
    put_error(&buf, outcome);
    buffer_printf(&buf, ",\"attempts\":%d,\"possible_duplicate\":%s"
                  ",\"source\":{\"topic\":",
                  job->attempts, job->possible_duplicate ? "true" : "false");
    buffer_put_string(&buf, job->topic);
    buffer_printf(&buf, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}",
                  job->partition, job->offset);
    buffer_puts(&buf, ",\"received_at\":");
    buffer_put_string(&buf, received);
    buffer_puts(&buf, ",\"completed_at\":");
    buffer_put_string(&buf, completed);
    buffer_puts(&buf, ",\"api_request_id\":");
    buffer_put_string_or_null(&buf, outcome->api_request_id[0]
                                        ? outcome->api_request_id
                                        : NULL);
    buffer_puts(&buf, ",\"metadata\":");
    if (req && req->metadata_json)
        buffer_append(&buf, req->metadata_json, req->metadata_len);
    else
        buffer_puts(&buf, "null");
    buffer_puts(&buf, "}");

    *len = buf.len;
    return buf.data;
}

static void add_string_header(rd_kafka_headers_t *headers, const char *name,
                              const char *value)
{
    rd_kafka_header_add(headers, name, -1, value, -1);
}

static void add_number_header(rd_kafka_headers_t *headers, const char *name,
                              int64_t value)
{
    char text[32];

    snprintf(text, sizeof(text), "%" PRId64, value);
    rd_kafka_header_add(headers, name, -1, text, -1);
}

static void add_common_headers(rd_kafka_headers_t *headers,
                               const struct job *job)
{
    if (job->req && job->req->id)
        add_string_header(headers, "chatt2me.request_id", job->req->id);
    add_string_header(headers, "chatt2me.source_topic", job->topic);
    add_number_header(headers, "chatt2me.source_partition", job->partition);
    add_number_header(headers, "chatt2me.source_offset", job->offset);
    add_number_header(headers, "chatt2me.attempts", job->attempts);
    if (job->last_http_status > 0)
        add_number_header(headers, "chatt2me.http_status",
                          job->last_http_status);
}

rd_kafka_headers_t *result_headers(const struct job *job)
{
    rd_kafka_headers_t *headers = rd_kafka_headers_new(8);

    add_common_headers(headers, job);
    add_string_header(headers, "chatt2me.status", job->outcome.status);
    return headers;
}

rd_kafka_headers_t *result_dead_letter_headers(const struct job *job,
                                               int64_t failed_wall_ms)
{
    rd_kafka_headers_t *headers = job->headers
                                      ? rd_kafka_headers_copy(job->headers)
                                      : rd_kafka_headers_new(8);
    char failed_at[32];

    util_format_rfc3339(failed_wall_ms, failed_at, sizeof(failed_at));
    add_common_headers(headers, job);
    add_string_header(headers, "chatt2me.error_class",
                      job->outcome.error_class);
    add_string_header(headers, "chatt2me.error_code", job->outcome.error_code);
    add_string_header(headers, "chatt2me.error_message",
                      job->outcome.error_message);
    add_string_header(headers, "chatt2me.failed_at", failed_at);
    return headers;
}
