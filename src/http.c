#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "log.h"
#include "util.h"

/* One socket libcurl asked us to watch; the epoll data.ptr. */
struct http_socket {
    int tag;                    /* HTTP_EPOLL_TAG, read by the loop */
    curl_socket_t fd;           /* -1 once libcurl is done with it */
    struct http_socket *next_dead;
};

struct http_transfer {
    CURL *easy;
    struct http_client *client;
    struct curl_slist *headers;
    http_done_fn *done;
    void *opaque;

    char *response;
    size_t response_len;
    size_t response_cap;
    char retry_after[64];
    bool has_retry_after;
    char request_id[128];
    bool has_request_id;
    char error[CURL_ERROR_SIZE];

    /* The request body, streamed by on_read so that a resend by libcurl
     * has to ask on_seek first. */
    const char *body;
    size_t body_len;
    size_t body_pos;
    bool may_resend;
    bool resent;

    struct http_transfer *next_free;
};

struct http_client {
    CURLM *multi;
    int epoll_fd;
    struct http_options options;
    char *api_key_header;       /* "x-api-key: <key>"; wiped when freed */
    char *ca_file;
    int64_t timer_due_ms;       /* -1: no libcurl timer pending */
    /* Sockets libcurl removed while the loop may still hold their epoll
     * events from the same batch; freed by http_client_release_sockets. */
    struct http_socket *dead_sockets;
    size_t in_flight;
    struct http_transfer *free_list;
};

static void wipe_and_free(char *secret)
{
    if (!secret)
        return;
    explicit_bzero(secret, strlen(secret));
    free(secret);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    struct http_client *client = userp;
    struct http_socket *sock = socketp;
    struct epoll_event event = {0};

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sock) {
            epoll_ctl(client->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(client->multi, fd, NULL);
            sock->fd = -1;
            sock->next_dead = client->dead_sockets;
            client->dead_sockets = sock;
        }
        return 0;
    }

    event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) |
                   ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (!sock) {
        sock = xcalloc(1, sizeof(*sock));
        sock->tag = HTTP_EPOLL_TAG;
        sock->fd = fd;
        event.data.ptr = sock;
        if (epoll_ctl(client->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
            log_error("http", "cannot watch socket %d: %s", fd,
                      strerror(errno));
            free(sock);
            return -1;
        }
        curl_multi_assign(client->multi, fd, sock);
        return 0;
    }

    event.data.ptr = sock;
    if (epoll_ctl(client->epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0) {
        log_error("http", "cannot update socket %d: %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *client = userp;

    (void)multi;
    client->timer_due_ms =
        timeout_ms < 0 ? -1 : util_now_mono_ms() + timeout_ms;
    return 0;
}

struct http_client *http_client_new(int epoll_fd,
                                    const struct http_options *options,
                                    char *errstr, size_t errstr_size)
{
    struct http_client *client = xcalloc(1, sizeof(*client));

    client->epoll_fd = epoll_fd;
    client->options = *options;
    client->timer_due_ms = -1;
    if (options->ca_file)
        client->ca_file = xstrdup(options->ca_file);
    client->options.ca_file = client->ca_file;
    client->options.api_key = NULL;
    http_client_set_api_key(client, options->api_key);

    client->multi = curl_multi_init();
    if (!client->multi) {
        util_snprintf(errstr, errstr_size, "cannot create a libcurl multi handle");
        http_client_destroy(client);
        return NULL;
    }
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)options->max_connections);
    curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS,
                      (long)options->max_connections);
    return client;
}

static void transfer_free(struct http_transfer *transfer)
{
    curl_easy_cleanup(transfer->easy);
    free(transfer->response);
    free(transfer);
}

void http_client_release_sockets(struct http_client *client)
{
    while (client->dead_sockets) {
        struct http_socket *next = client->dead_sockets->next_dead;
        free(client->dead_sockets);
        client->dead_sockets = next;
    }
}

void http_client_destroy(struct http_client *client)
{
    if (!client)
        return;
    while (client->free_list) {
        struct http_transfer *next = client->free_list->next_free;
        transfer_free(client->free_list);
        client->free_list = next;
    }
    if (client->multi)
        curl_multi_cleanup(client->multi);
    http_client_release_sockets(client);
    wipe_and_free(client->api_key_header);
    free(client->ca_file);
    free(client);
}

void http_client_set_api_key(struct http_client *client, const char *api_key)
{
    static const char prefix[] = "x-api-key: ";
    size_t len = sizeof(prefix) - 1 + strlen(api_key);
    char *header = xmalloc(len + 1);

    memcpy(header, prefix, sizeof(prefix) - 1);
    memcpy(header + sizeof(prefix) - 1, api_key, strlen(api_key) + 1);
    wipe_and_free(client->api_key_header);
    client->api_key_header = header;
}

/* Copies a header value without its line ending into dst. */
static void copy_header_value(char *dst, size_t size, const char *value,
                              size_t len)
{
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
                       value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len >= size)
        len = size - 1;
    /* Header values end up in logs and records: keep printable ASCII. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t count, void *userp)
{
    struct http_transfer *transfer = userp;
    size_t len = size * count;
    static const char retry_after[] = "retry-after:";
    static const char request_id[] = "x-request-id:";

    /* A new status line starts a new response (an interim 1xx, say), so
     * headers of an earlier one must not leak into this one. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        transfer->has_retry_after = false;
        transfer->has_request_id = false;
        return len;
    }
    if (len > sizeof(retry_after) - 1 &&
        strncasecmp(data, retry_after, sizeof(retry_after) - 1) == 0) {
        copy_header_value(transfer->retry_after,
                          sizeof(transfer->retry_after),
                          data + sizeof(retry_after) - 1,
                          len - (sizeof(retry_after) - 1));
        transfer->has_retry_after = true;
    } else if (len > sizeof(request_id) - 1 &&
               strncasecmp(data, request_id, sizeof(request_id) - 1) == 0) {
        copy_header_value(transfer->request_id, sizeof(transfer->request_id),
                          data + sizeof(request_id) - 1,
                          len - (sizeof(request_id) - 1));
        transfer->has_request_id = true;
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t count, void *userp)
{
    struct http_transfer *transfer = userp;
    size_t len = size * count;
    size_t max = transfer->client->options.max_response_bytes;
    size_t room = transfer->response_len < max ? max - transfer->response_len
                                               : 0;
    size_t keep = len < room ? len : room;

    /* Bytes past the limit are dropped, not an error: the status code is
     * what matters, and a truncated error body still gets classified. */
    if (keep == 0)
        return len;
    if (transfer->response_len + keep + 1 > transfer->response_cap) {
        size_t cap = transfer->response_cap ? transfer->response_cap : 512;
        while (cap < transfer->response_len + keep + 1)
            cap *= 2;
        transfer->response = xrealloc(transfer->response, cap);
        transfer->response_cap = cap;
    }
    memcpy(transfer->response + transfer->response_len, data, keep);
    transfer->response_len += keep;
    transfer->response[transfer->response_len] = '\0';
    return len;
}

static size_t on_read(char *buffer, size_t size, size_t count, void *userp)
{
    struct http_transfer *transfer = userp;
    size_t room = size * count;
    size_t left = transfer->body_len - transfer->body_pos;
    size_t len = left < room ? left : room;

    memcpy(buffer, transfer->body + transfer->body_pos, len);
    transfer->body_pos += len;
    return len;
}

/* libcurl rewinds the body only to send the request again: when a reused
 * connection died before any response, it retries once on a new one. The
 * server may have processed the first copy, so the resend is allowed only
 * where the caller allows it, and is reported either way. */
static int on_seek(void *userp, curl_off_t offset, int origin)
{
    struct http_transfer *transfer = userp;

    if (origin != SEEK_SET || offset != 0)
        return CURL_SEEKFUNC_CANTSEEK;
    if (transfer->body_pos == 0)
        return CURL_SEEKFUNC_OK;
    if (!transfer->may_resend)
        return CURL_SEEKFUNC_CANTSEEK;
    transfer->body_pos = 0;
    transfer->resent = true;
    return CURL_SEEKFUNC_OK;
}

static struct http_transfer *transfer_new(struct http_client *client)
{
    struct http_transfer *transfer = xcalloc(1, sizeof(*transfer));
    const struct http_options *options = &client->options;
    CURL *easy = curl_easy_init();

    if (!easy) {
        free(transfer);
        return NULL;
    }
    transfer->easy = easy;
    transfer->client = client;

    /* Options that never change between requests are set once per handle;
     * a recycled handle keeps them. */
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "chatt2me-worker/" C2M_VERSION);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)options->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)options->request_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options->tls_verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options->tls_verify ? 2L : 0L);
    if (options->ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, options->ca_file);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    /* Each pooled handle keeps an upload and a receive buffer (64 KiB and
     * 16 KiB by default), which made up most of the memory per request in
     * flight. Bodies and responses are small, so the smallest sizes libcurl
     * accepts for uploads (16 KiB) and a 4 KiB receive buffer do. */
    curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, transfer);
    return transfer;
}

static struct curl_slist *build_headers(const struct http_client *client,
                                        const char *idempotency_key)
{
    char idempotency[200];
    struct curl_slist *headers = NULL;

    util_snprintf(idempotency, sizeof(idempotency), "Idempotency-Key: %s",
                  idempotency_key);
    headers = curl_slist_append(headers, client->api_key_header);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    /* Without this libcurl waits for "100 Continue" on larger bodies. */
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, idempotency);
    return headers;
}

static void transfer_release(struct http_client *client,
                             struct http_transfer *transfer)
{
    curl_slist_free_all(transfer->headers);
    transfer->headers = NULL;
    transfer->done = NULL;
    transfer->opaque = NULL;
    transfer->response_len = 0;
    transfer->has_retry_after = false;
    transfer->has_request_id = false;
    transfer->error[0] = '\0';
    transfer->body = NULL;
    transfer->body_len = 0;
    transfer->body_pos = 0;
    transfer->resent = false;
    transfer->next_free = client->free_list;
    client->free_list = transfer;
}

struct http_transfer *http_client_post(struct http_client *client,
                                       const struct http_post *post,
                                       http_done_fn *done, void *opaque,
                                       char *errstr, size_t errstr_size)
{
    struct http_transfer *transfer = client->free_list;

    if (transfer) {
        client->free_list = transfer->next_free;
        transfer->next_free = NULL;
    } else {
        transfer = transfer_new(client);
        if (!transfer) {
            util_snprintf(errstr, errstr_size,
                          "cannot create a libcurl easy handle");
            return NULL;
        }
    }

    transfer->done = done;
    transfer->opaque = opaque;
    transfer->headers = build_headers(client, post->idempotency_key);
    transfer->body = post->body;
    transfer->body_len = post->body_len;
    transfer->may_resend = post->may_resend;
    curl_easy_setopt(transfer->easy, CURLOPT_URL, post->url);
    curl_easy_setopt(transfer->easy, CURLOPT_HTTPHEADER, transfer->headers);
    curl_easy_setopt(transfer->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)post->body_len);
    /* A request that must not be resent never rides a reused connection,
     * the one case where libcurl would resend it. */
    curl_easy_setopt(transfer->easy, CURLOPT_FRESH_CONNECT,
                     post->may_resend ? 0L : 1L);

    CURLMcode code = curl_multi_add_handle(client->multi, transfer->easy);
    if (code != CURLM_OK) {
        util_snprintf(errstr, errstr_size, "cannot start the HTTP request: %s",
                      curl_multi_strerror(code));
        transfer_release(client, transfer);
        return NULL;
    }
    client->in_flight++;
    return transfer;
}

void http_transfer_abort(struct http_client *client,
                         struct http_transfer *transfer)
{
    curl_multi_remove_handle(client->multi, transfer->easy);
    client->in_flight--;
    transfer_release(client, transfer);
}

static enum classify_transport transport_of(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return CLASSIFY_TRANSPORT_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return CLASSIFY_TRANSPORT_CONNECT_FAILED;
    case CURLE_OPERATION_TIMEDOUT:
        return CLASSIFY_TRANSPORT_TIMEOUT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SEND_FAIL_REWIND:
        return CLASSIFY_TRANSPORT_CONNECTION_LOST;
    default:
        return CLASSIFY_TRANSPORT_OTHER;
    }
}

static void finish_transfer(struct http_client *client, CURLMsg *msg)
{
    struct http_transfer *transfer = NULL;
    struct http_response resp = {0};
    long request_size = 0;
    curl_off_t uploaded = 0;

    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&transfer);
    curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(msg->easy_handle, CURLINFO_REQUEST_SIZE, &request_size);
    curl_easy_getinfo(msg->easy_handle, CURLINFO_SIZE_UPLOAD_T, &uploaded);

    resp.transport = transport_of(msg->data.result);
    resp.resent = transfer->resent;
    /* A connection that failed before the request went out cannot have
     * delivered anything; every other failure may have. */
    resp.body_sent = request_size > 0 || uploaded > 0;
    if (resp.transport == CLASSIFY_TRANSPORT_CONNECT_FAILED)
        resp.body_sent = false;
    if (resp.transport != CLASSIFY_TRANSPORT_OK) {
        resp.status = 0;
        resp.error = transfer->error[0] ? transfer->error
                                        : curl_easy_strerror(msg->data.result);
    }
    resp.body = transfer->response ? transfer->response : "";
    resp.body_len = transfer->response_len;
    resp.retry_after = transfer->has_retry_after ? transfer->retry_after : NULL;
    resp.request_id = transfer->has_request_id ? transfer->request_id : NULL;
    curl_off_t micros = 0;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &micros);
    resp.seconds = (double)micros / 1e6;

    curl_multi_remove_handle(client->multi, transfer->easy);
    client->in_flight--;

    http_done_fn *done = transfer->done;
    void *opaque = transfer->opaque;
    done(opaque, &resp);
    transfer_release(client, transfer);
}

static void reap_finished(struct http_client *client)
{
    CURLMsg *msg;
    int queued;

    while ((msg = curl_multi_info_read(client->multi, &queued))) {
        if (msg->msg == CURLMSG_DONE)
            finish_transfer(client, msg);
    }
}

void http_client_on_event(struct http_client *client, void *epoll_ptr,
                          uint32_t events)
{
    struct http_socket *sock = epoll_ptr;
    int action = 0;
    int running;

    if (sock->fd < 0)
        return; /* removed earlier in the same batch of events */

    if (events & EPOLLIN)
        action |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        action |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        action |= CURL_CSELECT_ERR;
    curl_multi_socket_action(client->multi, sock->fd, action, &running);
    reap_finished(client);
}

void http_client_on_tick(struct http_client *client, int64_t now_mono_ms)
{
    int running;

    if (client->timer_due_ms < 0 || now_mono_ms < client->timer_due_ms)
        return;
    client->timer_due_ms = -1;
    curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    reap_finished(client);

    /* libcurl calls the timer callback only when its next deadline
     * changes. If it kept the deadline we just cleared, ask for it, or the
     * transfers waiting on it would sleep until a socket woke us. */
    if (client->timer_due_ms < 0 && client->in_flight > 0) {
        long timeout_ms = -1;
        curl_multi_timeout(client->multi, &timeout_ms);
        if (timeout_ms >= 0)
            client->timer_due_ms = util_now_mono_ms() + timeout_ms;
    }
}

int64_t http_client_next_due(const struct http_client *client)
{
    return client->timer_due_ms;
}

size_t http_client_in_flight(const struct http_client *client)
{
    return client->in_flight;
}
