/* Internal interfaces of chatt2me-sim, the Chatt2.me API simulator used by
 * the integration tests.
 *
 * The simulator is the other side of the worker's HTTP contract, so it
 * shares no code with src/: a validation bug in the worker must not be
 * mirrored here. Modules: sim_util (allocation, buffers, JSON strings,
 * UUIDs), sim_send (the send route's checks), sim_state (scripted faults,
 * counters and the request log), sim_control (the /_sim/ control API),
 * sim_timer (delayed responses) and chatt2me_sim.c (command line and the
 * libmicrohttpd daemon). */
#ifndef CHATT2ME_SIM_H
#define CHATT2ME_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <microhttpd.h>

/* Largest request body accepted, on the send route and the control API. */
#define SIM_MAX_BODY ((size_t)1024 * 1024)

#define SIM_UUID_LEN 36

/* Longest Retry-After value a scripted response may carry. */
#define SIM_RETRY_AFTER_MAX 64

/* Longest scripted delay: one hour, so that a typo cannot park a
 * connection for days. */
#define SIM_MAX_DELAY_MS 3600000u

/* How many `from` UUIDs one channel may accept. */
#define SIM_MAX_CHANNEL_IDS 16

/* ---- sim_util.c ---------------------------------------------------- */

/* The x*alloc wrappers abort on out-of-memory: the simulator is a test
 * tool and has no useful way to go on. */
void *sim_xmalloc(size_t size);
void *sim_xcalloc(size_t count, size_t size);
void *sim_xrealloc(void *ptr, size_t size);
char *sim_xstrdup(const char *s);
char *sim_xstrndup(const char *s, size_t len);

/* Milliseconds since the Unix epoch. */
int64_t sim_now_wall_ms(void);

/* Milliseconds on the monotonic clock, for deadlines. */
int64_t sim_now_mono_ms(void);

/* Writes a random UUID version 4 in lowercase into out. Uses a per-thread
 * generator seeded from getrandom(2); the ids are unique test ids, not
 * secrets. */
void sim_uuid_v4(char out[SIM_UUID_LEN + 1]);

/* Returns whether s has the 8-4-4-4-12 hexadecimal form of a UUID. */
bool sim_uuid_is_valid(const char *s);

/* Returns whether the len bytes at s are valid UTF-8. */
bool sim_utf8_is_valid(const char *s, size_t len);

/* A growable byte buffer, always NUL-terminated once non-empty. A zeroed
 * struct is an empty buffer. */
struct sim_buf {
    char *data;
    size_t len;
    size_t cap;
};

void sim_buf_append(struct sim_buf *buf, const void *data, size_t len);
void sim_buf_append_str(struct sim_buf *buf, const char *s);
void sim_buf_printf(struct sim_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s as a quoted JSON string, or `null` when s is NULL. Bytes of
 * 0x80 and above are copied unchanged, so s should be valid UTF-8. */
void sim_buf_append_json_string(struct sim_buf *buf, const char *s, size_t len);

/* Appends the standard base64 encoding of data, with padding. */
void sim_buf_append_base64(struct sim_buf *buf, const void *data, size_t len);

/* Empties the buffer and keeps its memory. */
void sim_buf_reset(struct sim_buf *buf);
void sim_buf_free(struct sim_buf *buf);

/* ---- sim_send.c ---------------------------------------------------- */

enum sim_channel {
    SIM_CHANNEL_WHATSAPP = 0,
    SIM_CHANNEL_INSTAGRAM,
    SIM_CHANNEL_MESSENGER,
    SIM_CHANNEL_TELEGRAM,
    SIM_CHANNEL_SMS,
    SIM_CHANNEL_WEB_CHATT2ME,
    SIM_CHANNEL_COUNT,
};

/* The path name of a channel ("whatsapp", ..., "web-chatt2me"). */
const char *sim_channel_name(int channel);

/* Returns the channel whose path name is the len bytes at name, or -1. */
int sim_channel_lookup(const char *name, size_t len);

/* The UUID a channel accepts in `from` when --channel does not set one. */
const char *sim_channel_default_id(int channel);

struct sim_config {
    const char *api_key;
    /* Accepted `from` values per channel; the strings are not owned. */
    const char *channel_ids[SIM_CHANNEL_COUNT][SIM_MAX_CHANNEL_IDS];
    size_t channel_id_count[SIM_CHANNEL_COUNT];
    unsigned latency_ms;
};

/* The response the simulator decided for one send request. */
struct sim_response {
    /* HTTP status; 0 closes the connection without a response. */
    unsigned status;
    /* Response body (JSON), owned; NULL sends an empty body. */
    char *body;
    /* Retry-After header value; empty when the header is absent. */
    char retry_after[SIM_RETRY_AFTER_MAX + 1];
    /* The messageId of a 2xx response, owned; NULL when there is none. */
    char *message_id;
    /* Milliseconds to wait before responding (or dropping). */
    unsigned delay_ms;
};

void sim_response_reset(struct sim_response *resp);

/* Sets a JSON error body {"errorCode": code, "errorMessage": message}. */
void sim_response_set_error(struct sim_response *resp, unsigned status,
                            const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets a success body {"messageId": "<new uuid>", "status": "sent"}. */
void sim_response_set_sent(struct sim_response *resp, unsigned status);

/* A send request as received, with the fields the checks need. */
struct sim_send {
    int channel;              /* -1 when the path names no known channel */
    const char *api_key;      /* x-api-key header, or NULL */
    const char *content_type; /* Content-Type header, or NULL */
    const char *body;
    size_t body_len;
    /* Filled by sim_send_parse(). from and to point into root. */
    json_object *root;
    const char *from;
    const char *to;
};

/* Parses the body into send->root and picks out `from` and `to` when they
 * are strings. Leaves root NULL when the body is not valid JSON. */
void sim_send_parse(struct sim_send *send);

/* Releases send->root. */
void sim_send_release(struct sim_send *send);

/* Returns whether the request's x-api-key equals the configured key. */
bool sim_send_key_matches(const struct sim_send *send,
                          const struct sim_config *config);

/* Sets in resp the normal outcome of a POST on a known channel whose
 * key matched: 400 for a bad Content-Type, body, `to` or content, 404 for
 * a `from` the channel does not accept, else 200 with a new messageId. */
void sim_send_validate(const struct sim_send *send,
                       const struct sim_config *config,
                       struct sim_response *resp);

/* ---- sim_state.c --------------------------------------------------- */

/* One scripted response. status 0 without drop means "handle the request
 * normally, after delay_ms". */
struct sim_fault {
    unsigned status;
    bool drop;
    unsigned delay_ms;
    char *retry_after; /* owned, or NULL */
    char *body;        /* owned raw body, or NULL */
    /* messageId found in body when body is a JSON object with a string
     * messageId; decides whether a 2xx counts as accepted. Owned. */
    char *body_message_id;
};

void sim_fault_release(struct sim_fault *fault);

/* A scripted rule. to and channel select the requests (NULL and -1 match
 * any); each match consumes the next response. */
struct sim_rule {
    char *to;
    int channel;
    bool before_auth;
    bool repeat;
    struct sim_fault *responses;
    size_t response_count;
};

/* Everything the request log and the fault choice need about a send. */
struct sim_send_record {
    int64_t time_ms;
    const char *channel_name; /* path segment as received, NUL-terminated */
    const char *from;
    const char *to;
    const char *idempotency_key;
    const char *user_agent;
    /* The body rendered as a JSON value: a string, or null. */
    const struct sim_buf *body_json;
    /* The body in base64 when it is not valid UTF-8, else NULL. */
    const struct sim_buf *body_base64;
    /* Faults apply only to a POST on a known channel whose body fits. */
    bool faults_apply;
    bool key_matched;
    int channel;
};

struct sim_state;

/* Creates the shared state. log_path may be NULL; the file is truncated.
 * log_memory_limit caps the in-memory log in bytes. Returns NULL and
 * fills errstr when the log file cannot be opened. */
struct sim_state *sim_state_new(const char *log_path, size_t log_memory_limit,
                                char *errstr, size_t errstr_size);
void sim_state_destroy(struct sim_state *state);

/* Settles one send: replaces *resp (the normal outcome) with a scripted
 * response when a rule or the mode applies, then logs and counts the
 * request. Rule consumption, sequence numbers and log lines share one lock,
 * so the log order is the order in which requests consumed responses. */
void sim_state_settle_send(struct sim_state *state,
                           const struct sim_send_record *record,
                           struct sim_response *resp);

/* Takes ownership of rule's strings and responses; returns the rule id. */
unsigned sim_state_add_rule(struct sim_state *state, struct sim_rule *rule);

/* Sets the mode applied to every send that no rule matches; a fault with
 * status 0, no drop and no delay clears it. Takes ownership of fault. */
void sim_state_set_mode(struct sim_state *state, struct sim_fault *fault,
                        bool before_auth);

/* Removes all rules and the mode. */
void sim_state_clear_faults(struct sim_state *state);

/* Appends the rules and the mode as a JSON object. */
void sim_state_render_faults(struct sim_state *state, struct sim_buf *out);

/* Copies the in-memory log (JSON Lines) into out. */
void sim_state_copy_log(struct sim_state *state, struct sim_buf *out);

/* Empties the in-memory log and truncates the log file. */
void sim_state_clear_log(struct sim_state *state);

/* Appends the counters as a JSON object, with pending as the number of
 * delayed responses still waiting. */
void sim_state_render_stats(struct sim_state *state, size_t pending,
                            struct sim_buf *out);
void sim_state_clear_stats(struct sim_state *state);

/* ---- sim_timer.c --------------------------------------------------- */

struct sim_timer;

/* Starts the thread that resumes delayed connections. Returns NULL and
 * fills errstr when the thread cannot start. */
struct sim_timer *sim_timer_start(char *errstr, size_t errstr_size);

/* Suspends conn and schedules its resumption after delay_ms. Must be called
 * from the access handler. Returns false, without suspending, once
 * sim_timer_stop() has begun: the caller then responds at once. */
bool sim_timer_suspend(struct sim_timer *timer, struct MHD_Connection *conn,
                       unsigned delay_ms);

/* Number of connections waiting for their delay to pass. */
size_t sim_timer_pending(struct sim_timer *timer);

/* Resumes every waiting connection now and stops the thread; later
 * sim_timer_suspend() calls return false. Call before MHD_stop_daemon(),
 * which must not find suspended connections. Accepts NULL. */
void sim_timer_stop(struct sim_timer *timer);

/* Stops the timer if needed and frees it; call after MHD_stop_daemon(),
 * when no handler can use it any more. Accepts NULL. */
void sim_timer_destroy(struct sim_timer *timer);

/* ---- sim_control.c ------------------------------------------------- */

/* The simulator as a whole, passed to the libmicrohttpd callbacks. */
struct sim {
    struct sim_config config;
    struct sim_state *state;
    struct sim_timer *timer;
};

/* A control API response. */
struct sim_reply {
    unsigned status;
    const char *content_type;
    struct sim_buf body;
    const char *allow; /* Allow header for 405, or NULL */
};

/* Handles a request under /_sim/. url is the full path. */
void sim_control_handle(struct sim *sim, const char *method, const char *url,
                        const char *body, size_t body_len,
                        struct sim_reply *reply);

#endif
