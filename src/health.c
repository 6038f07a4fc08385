/* The health server: libmicrohttpd serves /healthz, /readyz and /metrics
 * on its own internal thread. The event loop publishes its state through
 * atomics (flags and the last beat), and the metrics through the metrics
 * module, so a probe never waits for the loop and never touches Kafka or
 * curl. */
#include "health.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* Probes and scrapes are few and short. The limit keeps a misbehaving
 * client from taking file descriptors that Kafka and curl need. */
#define CONNECTION_LIMIT 32
/* A client that opens CONNECTION_LIMIT idle connections blocks every
 * other client until they time out, so one address may hold only a few.
 * A probe or a scrape needs one connection at a time. */
#define CONNECTION_LIMIT_PER_ADDRESS 8
/* Seconds of inactivity after which a connection is closed. */
#define CONNECTION_TIMEOUT_S 10

/* libmicrohttpd logs a line per refused or broken connection, so a port
 * scan or a flood of connections could fill the log. At most
 * LOG_BURST of its lines per LOG_WINDOW_MS are written. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 60000

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CONTENT_TYPE "text/plain; charset=utf-8"

struct health {
    struct MHD_Daemon *daemon;
    struct metrics *metrics;
    int stale_after_ms;
    int port;                       /* the bound port */
    atomic_bool flags[HEALTH_FLAG_COUNT];
    _Atomic int64_t last_beat_ms;   /* monotonic clock */

    /* While health_start runs, libmicrohttpd's error messages go to
     * start_error so that the errstr can report why the start failed. */
    atomic_bool starting;
    char start_error[256];

    /* The log limit's state, used only on libmicrohttpd's thread. */
    int64_t log_window_start_ms;
    int log_count;
    uint64_t log_suppressed;
};

/* Returns whether one more libmicrohttpd line may be written now. The
 * count of suppressed lines is written with the first line of the next
 * window, so a burst that is followed by silence is never reported. */
static bool log_allowed(struct health *health)
{
    int64_t now = util_now_mono_ms();

    if (now - health->log_window_start_ms >= LOG_WINDOW_MS) {
        if (health->log_suppressed > 0)
            log_warn("health",
                     "%" PRIu64 " more libmicrohttpd messages were "
                     "suppressed (at most %d are written per %d s)",
                     health->log_suppressed, LOG_BURST,
                     LOG_WINDOW_MS / 1000);
        health->log_window_start_ms = now;
        health->log_count = 0;
        health->log_suppressed = 0;
    }
    if (health->log_count >= LOG_BURST) {
        health->log_suppressed++;
        return false;
    }
    health->log_count++;
    return true;
}

/* Routes libmicrohttpd's error log to ours. libmicrohttpd ends its
 * messages with a newline, which log_write adds itself. */
__attribute__((format(printf, 2, 0))) static void
log_mhd_message(void *cls, const char *fmt, va_list ap)
{
    struct health *health = cls;
    char message[512];
    size_t len;

    vsnprintf(message, sizeof(message), fmt, ap);
    len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == '\r'))
        message[--len] = '\0';

    if (atomic_load(&health->starting)) {
        util_snprintf(health->start_error, sizeof(health->start_error), "%s",
                      message);
        return;
    }
    if (log_allowed(health))
        log_warn("health", "libmicrohttpd: %s", message);
}

/* ---- responses ---- */

static enum MHD_Result reply(struct MHD_Connection *connection,
                             unsigned int status, const char *content_type,
                             struct MHD_Response *response)
{
    enum MHD_Result result;

    if (response == NULL)
        return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type);
    result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result reply_text(struct MHD_Connection *connection,
                                  unsigned int status, const char *text)
{
    /* MUST_COPY: the text is often a local buffer. */
    return reply(connection, status, TEXT_CONTENT_TYPE,
                 MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                 MHD_RESPMEM_MUST_COPY));
}

/* HTTP requires a 405 response to list the allowed methods. */
static enum MHD_Result reply_method_not_allowed(
    struct MHD_Connection *connection)
{
    static const char text[] = "method not allowed: use GET\n";
    struct MHD_Response *response = MHD_create_response_from_buffer(
        strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);

    if (response != NULL)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW,
                                MHD_HTTP_METHOD_GET);
    return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_CONTENT_TYPE,
                 response);
}

/* Liveness: the event loop ran an iteration within stale_after_ms. */
static enum MHD_Result reply_healthz(struct health *health,
                                     struct MHD_Connection *connection)
{
    int64_t last = atomic_load_explicit(&health->last_beat_ms,
                                        memory_order_relaxed);
    int64_t age = util_now_mono_ms() - last;
    char text[256];

    /* A negative age means a beat newer than our clock reading. */
    if (age <= health->stale_after_ms)
        return reply_text(connection, MHD_HTTP_OK, "ok\n");

    util_snprintf(text, sizeof(text),
                  "stale: the event loop last ran %" PRId64 " ms ago, more "
                  "than health.stale_after_ms (%d ms)\n",
                  age, health->stale_after_ms);
    return reply_text(connection, MHD_HTTP_SERVICE_UNAVAILABLE, text);
}

static bool flag_is_set(struct health *health, enum health_flag flag)
{
    return atomic_load_explicit(&health->flags[flag], memory_order_relaxed);
}

/* Readiness: the worker can take work. Each failed condition gets its
 * own line, so that "kubectl describe pod" shows all of them. */
static enum MHD_Result reply_readyz(struct health *health,
                                    struct MHD_Connection *connection)
{
    static const struct {
        enum health_flag flag;
        bool ready_value;       /* the value that allows readiness */
        const char *reason;
    } conditions[] = {
        {HEALTH_ASSIGNED, true, "no partition is assigned"},
        {HEALTH_BROKER_REACHABLE, true, "the Kafka broker is not reachable"},
        {HEALTH_OUTAGE, false, "API outage mode is active"},
        {HEALTH_AUTH_PAUSED, false,
         "consumption is paused after repeated HTTP 401 responses"},
        {HEALTH_STOPPING, false, "the worker is shutting down"},
    };
    char text[512] = "";
    size_t len = 0;

    for (size_t i = 0; i < sizeof(conditions) / sizeof(conditions[0]); i++) {
        if (flag_is_set(health, conditions[i].flag) ==
            conditions[i].ready_value)
            continue;
        util_snprintf(text + len, sizeof(text) - len, "not ready: %s\n",
                      conditions[i].reason);
        len = strlen(text);
    }
    if (len == 0)
        return reply_text(connection, MHD_HTTP_OK, "ready\n");
    return reply_text(connection, MHD_HTTP_SERVICE_UNAVAILABLE, text);
}

static enum MHD_Result reply_metrics(struct health *health,
                                     struct MHD_Connection *connection)
{
    char *body = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&body, &size);

    if (out == NULL) {
        log_warn("health", "cannot render the metrics: open_memstream "
                           "failed");
        return reply_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "cannot render the metrics\n");
    }
    metrics_render(health->metrics, out);
    if (fclose(out) != 0) {
        free(body);
        log_warn("health", "cannot render the metrics: writing to memory "
                           "failed");
        return reply_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "cannot render the metrics\n");
    }
    /* MUST_FREE: libmicrohttpd frees body with free() after sending. */
    return reply(connection, MHD_HTTP_OK, METRICS_CONTENT_TYPE,
                 MHD_create_response_from_buffer(size, body,
                                                 MHD_RESPMEM_MUST_FREE));
}

/* Routes a request. libmicrohttpd calls this on its thread when the
 * request's headers have arrived. Every route responds at once, so the
 * request body, if any, is never read. */
static enum MHD_Result handle_request(void *cls,
                                      struct MHD_Connection *connection,
                                      const char *url, const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    struct health *health = cls;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return reply_method_not_allowed(connection);
    if (strcmp(url, "/healthz") == 0)
        return reply_healthz(health, connection);
    if (strcmp(url, "/readyz") == 0)
        return reply_readyz(health, connection);
    if (strcmp(url, "/metrics") == 0)
        return reply_metrics(health, connection);
    return reply_text(connection, MHD_HTTP_NOT_FOUND,
                      "not found: use /healthz, /readyz or /metrics\n");
}

/* ---- start and stop ---- */

/* Parses a numeric IPv4 or IPv6 address into addr with port set. Host
 * names are rejected: the server binds one address, chosen by the
 * operator, never whatever a resolver returns. */
static int parse_address(const char *address, int port,
                         struct sockaddr_storage *addr, char *errstr,
                         size_t errstr_size)
{
    struct addrinfo hints;
    struct addrinfo *found = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    if (getaddrinfo(address, NULL, &hints, &found) != 0) {
        util_snprintf(errstr, errstr_size,
                      "invalid health server address \"%.80s\": expected a "
                      "numeric IPv4 or IPv6 address such as 0.0.0.0, "
                      "127.0.0.1 or ::",
                      address);
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);

    if (addr->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
    return 0;
}

struct health *health_start(const char *address, int port,
                            struct metrics *metrics, int stale_after_ms,
                            char *errstr, size_t errstr_size)
{
    struct health *health = NULL;
    struct sockaddr_storage addr;
    const union MHD_DaemonInfo *info;
    bool ipv6;
    /* epoll through MHD_USE_AUTO, because select() fails on descriptors
     * above FD_SETSIZE (1024) and the worker may hold many sockets. */
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG;

    if (address == NULL || metrics == NULL) {
        util_snprintf(errstr, errstr_size,
                      "the health server needs an address and metrics");
        return NULL;
    }
    if (port < 0 || port > 65535) {
        util_snprintf(errstr, errstr_size,
                      "invalid health server port %d, expected 0 to 65535",
                      port);
        return NULL;
    }
    if (stale_after_ms <= 0) {
        util_snprintf(errstr, errstr_size,
                      "invalid health.stale_after_ms %d, expected a positive "
                      "number of ms",
                      stale_after_ms);
        return NULL;
    }
    if (parse_address(address, port, &addr, errstr, errstr_size) != 0)
        return NULL;
    ipv6 = addr.ss_family == AF_INET6;
    /* Without MHD_USE_DUAL_STACK, an IPv6 socket is IPv6-only, so "::"
     * does not also accept IPv4: the server binds exactly the address. */
    if (ipv6)
        flags |= MHD_USE_IPv6;

    health = xcalloc(1, sizeof(*health));
    health->metrics = metrics;
    health->stale_after_ms = stale_after_ms;
    for (int i = 0; i < HEALTH_FLAG_COUNT; i++)
        atomic_init(&health->flags[i], false);
    /* The start counts as a beat, so that a slow start-up (connecting to
     * the brokers, checking the topics) has stale_after_ms before
     * /healthz fails. */
    atomic_init(&health->last_beat_ms, util_now_mono_ms());
    atomic_init(&health->starting, true);

    health->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handle_request, health,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)CONNECTION_LIMIT_PER_ADDRESS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd_message, health, MHD_OPTION_END);
    atomic_store(&health->starting, false);
    if (health->daemon == NULL) {
        util_snprintf(errstr, errstr_size,
                      "cannot start the health server on %s%s%s:%d: %s",
                      ipv6 ? "[" : "", address, ipv6 ? "]" : "", port,
                      health->start_error[0] != '\0'
                          ? health->start_error
                          : "libmicrohttpd gave no reason");
        free(health);
        return NULL;
    }

    info = MHD_get_daemon_info(health->daemon, MHD_DAEMON_INFO_BIND_PORT);
    health->port = info != NULL && info->port != 0 ? info->port : port;
    /* main logs the listening address once the server is up. */
    (void)ipv6;
    return health;
}

void health_stop(struct health *health)
{
    if (health == NULL)
        return;
    /* Joins the internal thread and closes every connection. */
    MHD_stop_daemon(health->daemon);
    log_info("health", "health server on port %d stopped", health->port);
    free(health);
}

void health_beat(struct health *health, int64_t now_mono_ms)
{
    if (health == NULL)
        return;
    atomic_store_explicit(&health->last_beat_ms, now_mono_ms,
                          memory_order_relaxed);
}

void health_set(struct health *health, enum health_flag flag, bool value)
{
    if (health == NULL || (int)flag < 0 || flag >= HEALTH_FLAG_COUNT)
        return;
    atomic_store_explicit(&health->flags[flag], value, memory_order_relaxed);
}

int health_port(const struct health *health)
{
    return health->port;
}
