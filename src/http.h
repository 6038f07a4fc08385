/* The HTTP client: libcurl's multi interface driven by the worker's epoll
 * loop, one POST per transfer, many transfers at once over kept-alive
 * connections. Single-threaded: call everything from the loop thread. */
#ifndef C2M_HTTP_H
#define C2M_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify.h"

struct http_client;
struct http_transfer;

struct http_options {
    const char *api_key;        /* copied; goes into x-api-key only */
    const char *ca_file;        /* NULL: the system's CA bundle */
    bool tls_verify;
    int connect_timeout_ms;
    int request_timeout_ms;
    size_t max_response_bytes;  /* the rest of a longer body is dropped */
    int max_connections;
};

struct http_response {
    enum classify_transport transport;
    bool body_sent;             /* the request may have reached the server */
    long status;                /* 0 without a response */
    const char *body;           /* NUL-terminated; valid during the callback */
    size_t body_len;
    const char *retry_after;    /* header value, or NULL */
    const char *request_id;     /* x-request-id header value, or NULL */
    const char *error;          /* libcurl's message on transport errors */
    double seconds;             /* duration of the attempt */
    /* libcurl sent the request a second time on a fresh connection, after
     * a reused one died before any response: a second, hidden attempt. */
    bool resent;
};

typedef void http_done_fn(void *opaque, const struct http_response *resp);

/* Creates a client registering its sockets in epoll_fd. Each registered
 * socket's epoll data.ptr points to a struct whose first member is an int
 * equal to HTTP_EPOLL_TAG, so the loop can route events to
 * http_client_on_event(). Returns NULL with errstr on failure. */
struct http_client *http_client_new(int epoll_fd,
                                    const struct http_options *options,
                                    char *errstr, size_t errstr_size);
void http_client_destroy(struct http_client *client);

#define HTTP_EPOLL_TAG 0x48545450 /* "HTTP" */

/* Replaces the API key for transfers started from now on. */
void http_client_set_api_key(struct http_client *client, const char *api_key);

/* Options of one POST. */
struct http_post {
    const char *url;
    const char *body;           /* not copied: valid until done or abort */
    size_t body_len;
    const char *idempotency_key;
    /* false: the request must never be sent twice by libcurl itself. It
     * goes over a new connection, and a transfer that would need resending
     * fails as a lost connection instead, so the caller decides. */
    bool may_resend;
};

/* Starts a POST. done is called exactly once from a later
 * http_client_on_* call, unless the transfer is aborted. Returns the
 * transfer, or NULL with errstr when it could not start. */
struct http_transfer *http_client_post(struct http_client *client,
                                       const struct http_post *post,
                                       http_done_fn *done, void *opaque,
                                       char *errstr, size_t errstr_size);

/* Stops a transfer without calling its done callback. */
void http_transfer_abort(struct http_client *client,
                         struct http_transfer *transfer);

/* Frees the sockets libcurl closed since the last call. Call after the
 * loop has handled a whole batch of epoll events, because an event later
 * in the batch may point at a socket closed by an earlier one. */
void http_client_release_sockets(struct http_client *client);

/* Feeds an epoll event for one of the client's sockets. */
void http_client_on_event(struct http_client *client, void *epoll_ptr,
                          uint32_t events);

/* Runs libcurl's timers when due; call every loop iteration. */
void http_client_on_tick(struct http_client *client, int64_t now_mono_ms);

/* Returns when http_client_on_tick() is next due, or -1 for no timer. */
int64_t http_client_next_due(const struct http_client *client);

size_t http_client_in_flight(const struct http_client *client);

#endif
