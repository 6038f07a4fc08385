/* Send requests: parsing and validation of one Kafka record value
 * against the Chatt2.me contract, and the HTTP body built from it. */
#ifndef C2M_REQUEST_H
#define C2M_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

enum request_channel {
    REQUEST_CHANNEL_WHATSAPP = 0,
    REQUEST_CHANNEL_INSTAGRAM,
    REQUEST_CHANNEL_MESSENGER,
    REQUEST_CHANNEL_TELEGRAM,
    REQUEST_CHANNEL_SMS,
    REQUEST_CHANNEL_WEB_CHATT,
    REQUEST_CHANNEL_COUNT,
    REQUEST_CHANNEL_NONE = -1,
};

/* The kind of message, detected from the keys of "content". */
enum request_kind {
    REQUEST_KIND_TEXT = 0,
    REQUEST_KIND_IMAGE,
    REQUEST_KIND_VIDEO,
    REQUEST_KIND_AUDIO,
    REQUEST_KIND_DOCUMENT,
    REQUEST_KIND_STICKER,
    REQUEST_KIND_LOCATION,
    REQUEST_KIND_CONTACTS,
    REQUEST_KIND_INTERACTIVE,
    REQUEST_KIND_TEMPLATE,
    REQUEST_KIND_REACTION,
    REQUEST_KIND_PAYMENT_REQUEST,
    REQUEST_KIND_ORDER_STATUS,
    REQUEST_KIND_UNKNOWN,       /* passed through unchecked */
    REQUEST_KIND_COUNT,
};

struct request_limits {
    size_t max_bytes;           /* larger values are rejected unread */
    int max_depth;              /* JSON nesting depth */
};

/* The outcome of request_parse(). Always allocated; owned by the caller,
 * freed with request_free(). When valid is false, error_code and
 * error_message say why, and id, channel and metadata_json hold what
 * could still be read (NULL or REQUEST_CHANNEL_NONE otherwise), so that
 * the rejected result can carry them. */
struct request {
    bool valid;
    const char *error_code;     /* static string, NULL when valid */
    char error_message[256];    /* never contains field values */

    char *id;
    enum request_channel channel;
    enum request_kind kind;
    char *from;
    char *to;

    /* {"from":...,"to":...,"content":...} where content is the record's
     * own bytes, so numbers, escapes and key order are kept. */
    char *body;
    size_t body_len;

    /* The record's own bytes of "metadata", or NULL when absent. */
    char *metadata_json;
    size_t metadata_len;
};

struct request *request_parse(const void *data, size_t len,
                              const struct request_limits *limits);
void request_free(struct request *req);

/* Returns the URL path segment, for example "web-chatt2me". */
const char *request_channel_name(enum request_channel channel);

/* Returns the kind's name as used in logs and errors, e.g. "image". */
const char *request_kind_name(enum request_kind kind);

#endif
