/* Classification of one HTTP attempt into what happens next. The whole
 * policy (which statuses retry, which fail, which dead-letter) lives in
 * classify_attempt() so that it can be read and tested in one place. */
#ifndef C2M_CLASSIFY_H
#define C2M_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

enum classify_transport {
    CLASSIFY_TRANSPORT_OK = 0,          /* an HTTP response arrived */
    CLASSIFY_TRANSPORT_CONNECT_FAILED,  /* DNS, refused, TLS handshake */
    CLASSIFY_TRANSPORT_TIMEOUT,
    CLASSIFY_TRANSPORT_CONNECTION_LOST, /* dropped before a full answer */
    CLASSIFY_TRANSPORT_OTHER,
};

enum classify_action {
    CLASSIFY_SENT = 0,
    CLASSIFY_FAILED,        /* permanent: a "failed" result */
    CLASSIFY_RETRY,         /* transient: try again after a backoff */
    CLASSIFY_DEAD_LETTER,   /* HTTP 401: the original record goes to DLQ */
};

struct classify_input {
    enum classify_transport transport;
    /* True when the request body may have reached the server before the
     * failure, so the message may have been delivered. */
    bool body_sent;
    long http_status;       /* 0 when no response */
    const char *body;       /* response body, may be NULL */
    size_t body_len;
};

struct classify_result {
    enum classify_action action;
    bool unknown_outcome;   /* the message may have been delivered */
    const char *error_class;/* static; NULL when sent */
    char error_code[64];    /* API errorCode, else "http_<status>" or the
                               transport error name */
    char error_message[256];/* API errorMessage, else a sentence */
    char message_id[129];   /* from a 2xx body; "" when absent or null */
    bool has_message_id;
};

void classify_attempt(const struct classify_input *in,
                      struct classify_result *out);

#endif
