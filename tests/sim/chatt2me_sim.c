/* chatt2me-sim: a local stand-in for the Hub Chatt2.me send API, for the
 * worker's integration and load tests.
 *
 * It serves POST /v1/communication/<channel>/message the way the public
 * documentation describes, logs every send request it receives, and lets a
 * test script faults (status codes, Retry-After, delays, dropped
 * connections, 2xx error bodies) through the control API under /_sim/.
 * libmicrohttpd serves HTTP with epoll. Delayed responses suspend their
 * connection instead of holding a thread (see sim_timer.c). */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define DEFAULT_API_KEY "sim-test-key"
#define DEFAULT_MAX_CONNECTIONS 10000u
#define DEFAULT_LOG_MEMORY_MB 256u
/* Seconds an idle or slowly sending client may hold a connection.
 * Suspended (delayed) connections do not time out. */
#define CONNECTION_TIMEOUT_S 60u
#define LISTEN_BACKLOG 4096u
#define MAX_THREADS 64u
#define MAX_LATENCY_MS SIM_MAX_DELAY_MS

enum route {
    ROUTE_SEND,
    ROUTE_CONTROL,
    ROUTE_OTHER,
};

/* One HTTP request, from its headers to the completion callback. */
struct exchange {
    enum route route;
    int channel;        /* for ROUTE_SEND; -1 when the channel is unknown */
    char *channel_name; /* path segment of ROUTE_SEND, as received */
    int64_t time_ms;
    struct sim_buf body;
    bool too_large;
    bool waiting; /* suspended, so the next call sends the response */
    struct sim_response resp;
};

struct options {
    unsigned port;
    const char *bind;
    bool allow_non_loopback;
    const char *port_file;
    const char *log_path;
    unsigned threads;
    unsigned max_connections;
    unsigned log_memory_mb;
    bool quiet;
};

static const char send_prefix[] = "/v1/communication/";
static const char send_suffix[] = "/message";

/* ---- requests ------------------------------------------------------ */

static struct exchange *exchange_new(const char *url)
{
    struct exchange *ex = sim_xcalloc(1, sizeof(*ex));
    size_t prefix_len = sizeof(send_prefix) - 1;

    ex->time_ms = sim_now_wall_ms();
    ex->channel = -1;
    ex->route = ROUTE_OTHER;
    if (strncmp(url, "/_sim/", 6) == 0) {
        ex->route = ROUTE_CONTROL;
    } else if (strncmp(url, send_prefix, prefix_len) == 0) {
        const char *segment = url + prefix_len;
        const char *slash = strchr(segment, '/');

        if (slash && slash > segment && strcmp(slash, send_suffix) == 0) {
            ex->route = ROUTE_SEND;
            ex->channel_name = sim_xstrndup(segment, (size_t)(slash - segment));
            ex->channel = sim_channel_lookup(segment, (size_t)(slash - segment));
        }
    }
    return ex;
}

static void exchange_free(struct exchange *ex)
{
    if (!ex)
        return;
    free(ex->channel_name);
    sim_buf_free(&ex->body);
    sim_response_reset(&ex->resp);
    free(ex);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    exchange_free(*con_cls);
    *con_cls = NULL;
}

static const char *get_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static bool client_is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = info ? info->client_addr : NULL;

    if (!addr)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;

        if (IN6_IS_ADDR_LOOPBACK(in6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127;
    }
    return false;
}

/* Queues the response, or returns MHD_NO for status 0, which makes
 * libmicrohttpd close the connection without a response. */
static enum MHD_Result queue_send_response(struct MHD_Connection *conn,
                                           const struct sim_response *resp)
{
    struct MHD_Response *response;
    char request_id[SIM_UUID_LEN + 1];
    size_t body_len = resp->body ? strlen(resp->body) : 0;
    enum MHD_Result ret;

    if (resp->status == 0)
        return MHD_NO;

    response = MHD_create_response_from_buffer(body_len, resp->body ? resp->body : "",
                                               MHD_RESPMEM_MUST_COPY);
    if (!response) {
        fprintf(stderr, "chatt2me-sim: cannot create a response; closing the connection\n");
        return MHD_NO;
    }
    if (resp->body)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    sim_uuid_v4(request_id);
    MHD_add_response_header(response, "x-request-id", request_id);
    if (resp->retry_after[0] != '\0')
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, resp->retry_after);
    if (resp->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST");
    ret = MHD_queue_response(conn, resp->status, response);
    MHD_destroy_response(response);
    return ret;
}

/* Queues a control reply. The body buffer moves into the response, which
 * saves copying a log of hundreds of megabytes once more. */
static enum MHD_Result queue_control_reply(struct MHD_Connection *conn, struct sim_reply *reply)
{
    struct MHD_Response *response;
    enum MHD_Result ret;

    if (!reply->body.data)
        sim_buf_append_str(&reply->body, "");
    response = MHD_create_response_from_buffer(reply->body.len, reply->body.data,
                                               MHD_RESPMEM_MUST_FREE);
    if (!response)
        return MHD_NO;
    reply->body = (struct sim_buf){0};
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
    if (reply->allow)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, reply->allow);
    ret = MHD_queue_response(conn, reply->status, response);
    MHD_destroy_response(response);
    return ret;
}

static enum MHD_Result queue_error_reply(struct MHD_Connection *conn, unsigned status,
                                         const char *json)
{
    struct sim_reply reply = {.status = status, .content_type = "application/json"};
    enum MHD_Result ret;

    sim_buf_append_str(&reply.body, json);
    ret = queue_control_reply(conn, &reply);
    sim_buf_free(&reply.body);
    return ret;
}

/* Decides, logs and sends (or delays) the response to one request on the
 * send route. The checks run in this order: method, channel, body size,
 * key, then body. Scripted faults come after the key check, or before it
 * for before_auth rules. */
static enum MHD_Result finish_send(struct sim *sim, struct MHD_Connection *conn,
                                   struct exchange *ex, const char *method)
{
    struct sim_response *resp = &ex->resp;
    struct sim_buf body_json = {0};
    struct sim_buf body_base64 = {0};
    struct sim_send send = {
        .channel = ex->channel,
        .api_key = get_header(conn, "x-api-key"),
        .content_type = get_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
        .body = ex->body.data,
        .body_len = ex->body.len,
    };
    struct sim_send_record record = {
        .time_ms = ex->time_ms,
        .channel_name = ex->channel_name,
        .idempotency_key = get_header(conn, "Idempotency-Key"),
        .user_agent = get_header(conn, MHD_HTTP_HEADER_USER_AGENT),
        .body_json = &body_json,
        .channel = ex->channel,
    };

    if (strcmp(method, "POST") != 0) {
        sim_response_set_error(resp, 405, "method_not_allowed",
                               "Only POST is allowed on this route.");
    } else if (ex->channel < 0) {
        sim_response_set_error(resp, 404, "not_found", "The route does not exist.");
    } else if (ex->too_large) {
        sim_response_set_error(resp, 413, "payload_too_large",
                               "The request body exceeds %zu bytes.", SIM_MAX_BODY);
    } else {
        sim_send_parse(&send);
        record.faults_apply = true;
        record.key_matched = sim_send_key_matches(&send, &sim->config);
        if (record.key_matched)
            sim_send_validate(&send, &sim->config, resp);
        else
            sim_response_set_error(resp, 401, "unauthorized",
                                   "The x-api-key header is missing or invalid.");
    }
    record.from = send.from;
    record.to = send.to;

    /* Render the body for the log outside the state lock. */
    if (ex->too_large) {
        sim_buf_append_str(&body_json, "null");
    } else if (sim_utf8_is_valid(ex->body.data, ex->body.len)) {
        sim_buf_append_json_string(&body_json, ex->body.data ? ex->body.data : "",
                                   ex->body.len);
    } else {
        sim_buf_append_str(&body_json, "null");
        sim_buf_append_base64(&body_base64, ex->body.data, ex->body.len);
        record.body_base64 = &body_base64;
    }

    sim_state_settle_send(sim->state, &record, resp);
    sim_send_release(&send);
    sim_buf_free(&body_json);
    sim_buf_free(&body_base64);

    resp->delay_ms += sim->config.latency_ms;
    if (resp->delay_ms > 0 && sim_timer_suspend(sim->timer, conn, resp->delay_ms)) {
        ex->waiting = true;
        return MHD_YES;
    }
    return queue_send_response(conn, resp);
}

static enum MHD_Result finish_control(struct sim *sim, struct MHD_Connection *conn,
                                      struct exchange *ex, const char *url, const char *method)
{
    struct sim_reply reply = {0};
    enum MHD_Result ret;

    if (!client_is_loopback(conn))
        return queue_error_reply(conn, 403,
                                 "{\"errorCode\":\"forbidden\",\"errorMessage\":"
                                 "\"The control API serves loopback clients only.\"}");
    if (ex->too_large)
        return queue_error_reply(conn, 413,
                                 "{\"errorCode\":\"payload_too_large\",\"errorMessage\":"
                                 "\"The request body exceeds 1048576 bytes.\"}");

    sim_control_handle(sim, method, url, ex->body.data, ex->body.len, &reply);
    ret = queue_control_reply(conn, &reply);
    sim_buf_free(&reply.body);
    return ret;
}

static enum MHD_Result handle_access(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    struct sim *sim = cls;
    struct exchange *ex = *con_cls;

    (void)version;
    if (!ex) {
        *con_cls = exchange_new(url);
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        if (!ex->too_large) {
            if (ex->body.len + *upload_data_size > SIM_MAX_BODY) {
                ex->too_large = true;
                sim_buf_free(&ex->body);
            } else {
                sim_buf_append(&ex->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (ex->waiting) {
        ex->waiting = false;
        return queue_send_response(conn, &ex->resp);
    }

    switch (ex->route) {
    case ROUTE_SEND:
        return finish_send(sim, conn, ex, method);
    case ROUTE_CONTROL:
        return finish_control(sim, conn, ex, url, method);
    case ROUTE_OTHER:
    default:
        return queue_error_reply(conn, 404,
                                 "{\"errorCode\":\"not_found\",\"errorMessage\":"
                                 "\"The route does not exist.\"}");
    }
}

/* ---- command line -------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: chatt2me-sim [OPTION]...\n"
            "Simulates the Hub Chatt2.me send API on loopback for tests.\n"
            "\n"
            "  --port N              TCP port to listen on; 0 picks a free port (default 0)\n"
            "  --bind ADDR           IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
            "  --allow-non-loopback  allow --bind to a non-loopback address\n"
            "  --api-key KEY         expected x-api-key (default: $CHATT2ME_SIM_API_KEY,\n"
            "                        else \"" DEFAULT_API_KEY "\")\n"
            "  --channel NAME=UUID   a `from` UUID the channel accepts; the first one given\n"
            "                        for a channel replaces its default, later ones add to it\n"
            "  --latency-ms N        delay every send response by N milliseconds (default 0)\n"
            "  --log FILE            also write the request log (JSON Lines) to FILE\n"
            "  --log-memory-mb N     cap of the in-memory log served by GET /_sim/log\n"
            "                        (default %u)\n"
            "  --port-file FILE      write the bound port to FILE once listening\n"
            "  --threads N           libmicrohttpd threads, each with its own epoll set\n"
            "                        (default 4)\n"
            "  --max-connections N   concurrent connection limit (default %u)\n"
            "  --quiet               print nothing but fatal errors\n"
            "  --help                print this help\n"
            "\n"
            "Default channel UUIDs:\n",
            DEFAULT_LOG_MEMORY_MB, DEFAULT_MAX_CONNECTIONS);
    for (int i = 0; i < SIM_CHANNEL_COUNT; i++)
        fprintf(out, "  %-13s %s\n", sim_channel_name(i), sim_channel_default_id(i));
}

static bool parse_uint(const char *text, unsigned long max, unsigned *out)
{
    char *end;
    unsigned long value;

    if (!text[0] || text[0] == '-' || text[0] == '+')
        return false;
    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > max)
        return false;
    *out = (unsigned)value;
    return true;
}

static bool add_channel_id(struct sim_config *config, bool replaced[], const char *spec)
{
    const char *equals = strchr(spec, '=');
    int channel;

    if (!equals) {
        fprintf(stderr, "chatt2me-sim: --channel %s: expected NAME=UUID\n", spec);
        return false;
    }
    channel = sim_channel_lookup(spec, (size_t)(equals - spec));
    if (channel < 0) {
        fprintf(stderr, "chatt2me-sim: --channel %s: unknown channel; use whatsapp, "
                        "instagram, messenger, telegram, sms or web-chatt2me\n", spec);
        return false;
    }
    if (!sim_uuid_is_valid(equals + 1)) {
        fprintf(stderr, "chatt2me-sim: --channel %s: the value is not a UUID\n", spec);
        return false;
    }
    if (!replaced[channel]) {
        config->channel_id_count[channel] = 0;
        replaced[channel] = true;
    }
    if (config->channel_id_count[channel] == SIM_MAX_CHANNEL_IDS) {
        fprintf(stderr, "chatt2me-sim: --channel: at most %d UUIDs per channel\n",
                SIM_MAX_CHANNEL_IDS);
        return false;
    }
    config->channel_ids[channel][config->channel_id_count[channel]++] = equals + 1;
    return true;
}

/* Parses the command line; returns 0 to run, 1 on an error, 2 after --help. */
static int parse_options(int argc, char **argv, struct options *opts, struct sim_config *config)
{
    enum {
        OPT_PORT = 256, OPT_BIND, OPT_ALLOW_NON_LOOPBACK, OPT_API_KEY, OPT_CHANNEL,
        OPT_LATENCY, OPT_LOG, OPT_LOG_MEMORY, OPT_PORT_FILE, OPT_THREADS,
        OPT_MAX_CONNECTIONS, OPT_QUIET, OPT_HELP,
    };
    static const struct option long_options[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"bind", required_argument, NULL, OPT_BIND},
        {"allow-non-loopback", no_argument, NULL, OPT_ALLOW_NON_LOOPBACK},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"latency-ms", required_argument, NULL, OPT_LATENCY},
        {"log", required_argument, NULL, OPT_LOG},
        {"log-memory-mb", required_argument, NULL, OPT_LOG_MEMORY},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    bool replaced[SIM_CHANNEL_COUNT] = {false};
    const char *env_key = getenv("CHATT2ME_SIM_API_KEY");
    int opt;
    int option_index = 0;

    *opts = (struct options){
        .bind = "127.0.0.1",
        .threads = 4,
        .max_connections = DEFAULT_MAX_CONNECTIONS,
        .log_memory_mb = DEFAULT_LOG_MEMORY_MB,
    };
    config->api_key = env_key && env_key[0] ? env_key : DEFAULT_API_KEY;
    for (int i = 0; i < SIM_CHANNEL_COUNT; i++) {
        config->channel_ids[i][0] = sim_channel_default_id(i);
        config->channel_id_count[i] = 1;
    }

    while ((opt = getopt_long(argc, argv, "", long_options, &option_index)) != -1) {
        bool ok = true;

        switch (opt) {
        case OPT_PORT: ok = parse_uint(optarg, 65535, &opts->port); break;
        case OPT_BIND: opts->bind = optarg; break;
        case OPT_ALLOW_NON_LOOPBACK: opts->allow_non_loopback = true; break;
        case OPT_API_KEY: config->api_key = optarg; ok = optarg[0] != '\0'; break;
        case OPT_CHANNEL:
            if (!add_channel_id(config, replaced, optarg))
                return 1;
            break;
        case OPT_LATENCY: ok = parse_uint(optarg, MAX_LATENCY_MS, &config->latency_ms); break;
        case OPT_LOG: opts->log_path = optarg; break;
        case OPT_LOG_MEMORY: ok = parse_uint(optarg, 1u << 20, &opts->log_memory_mb); break;
        case OPT_PORT_FILE: opts->port_file = optarg; break;
        case OPT_THREADS:
            ok = parse_uint(optarg, MAX_THREADS, &opts->threads) && opts->threads > 0;
            break;
        case OPT_MAX_CONNECTIONS:
            ok = parse_uint(optarg, 1000000, &opts->max_connections) &&
                 opts->max_connections > 0;
            break;
        case OPT_QUIET: opts->quiet = true; break;
        case OPT_HELP: usage(stdout); return 2;
        default:
            /* getopt_long() has printed what is wrong. */
            fputs("chatt2me-sim: see --help\n", stderr);
            return 1;
        }
        if (!ok) {
            fprintf(stderr, "chatt2me-sim: invalid value '%s' for --%s; see --help\n",
                    optarg, long_options[option_index].name);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chatt2me-sim: unexpected argument '%s'; see --help\n", argv[optind]);
        return 1;
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------ */

/* Fills addr from text and rejects a non-loopback address unless allowed. */
static bool parse_bind_address(const char *text, bool allow_non_loopback,
                               struct sockaddr_storage *addr, unsigned port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    bool loopback;

    memset(addr, 0, sizeof(*addr));
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    } else {
        fprintf(stderr, "chatt2me-sim: --bind %s: not an IPv4 or IPv6 address\n", text);
        return false;
    }
    if (!loopback && !allow_non_loopback) {
        fprintf(stderr, "chatt2me-sim: --bind %s: not a loopback address; the simulator "
                        "accepts any client without TLS, so pass --allow-non-loopback "
                        "to bind it anyway\n", text);
        return false;
    }
    return true;
}

/* Raises the open-file limit so that max_connections sockets fit. */
static void raise_file_limit(unsigned max_connections, bool quiet)
{
    struct rlimit limit;
    rlim_t wanted = (rlim_t)max_connections + 64;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted)
        return;
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= wanted
                         ? wanted
                         : limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < wanted && !quiet)
        fprintf(stderr, "chatt2me-sim: the open-file limit is %llu, below the %u "
                        "connections allowed; raise it with ulimit -n\n",
                (unsigned long long)limit.rlim_cur, max_connections);
}

/* Writes the port to a temporary file and renames it, so that a script
 * polling for the file never reads it half-written. */
static bool write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *file;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    file = fopen(tmp, "w");
    if (!file || fprintf(file, "%u\n", port) < 0 || fclose(file) != 0) {
        fprintf(stderr, "chatt2me-sim: cannot write the port file %s: %s\n", tmp,
                strerror(errno));
        return false;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "chatt2me-sim: cannot rename %s to %s: %s\n", tmp, path,
                strerror(errno));
        return false;
    }
    return true;
}

__attribute__((format(printf, 2, 0)))
static void log_mhd_message(void *cls, const char *fmt, va_list ap)
{
    static const char drop_message[] = "Application reported internal error";
    char message[1024];

    (void)cls;
    vsnprintf(message, sizeof(message), fmt, ap);
    /* libmicrohttpd prints this when the access handler returns MHD_NO,
     * which is how a scripted drop closes the connection. */
    if (strncmp(message, drop_message, sizeof(drop_message) - 1) == 0)
        return;
    fprintf(stderr, "chatt2me-sim: libmicrohttpd: %s", message);
}

static struct MHD_Daemon *start_daemon(struct sim *sim, const struct options *opts,
                                       const struct sockaddr_storage *addr)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)opts->threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };

    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (!opts->quiet)
        flags |= MHD_USE_ERROR_LOG;

    return MHD_start_daemon(
        flags, 0, NULL, NULL, handle_access, sim,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd_message, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, LISTEN_BACKLOG,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        /* A pool of one thread is no pool: libmicrohttpd then runs the
         * single internal thread. */
        MHD_OPTION_ARRAY, opts->threads > 1 ? pool : pool + 1,
        MHD_OPTION_END);
}

/* Blocks until SIGINT or SIGTERM and returns the signal. The signals are
 * blocked in every thread (set before any thread starts), so only this
 * sigwait() receives them. */
static int wait_for_stop_signal(const sigset_t *stop_signals)
{
    int sig = 0;

    while (sigwait(stop_signals, &sig) != 0)
        ;
    return sig;
}

int main(int argc, char **argv)
{
    struct options opts;
    struct sim sim = {0};
    struct sockaddr_storage addr;
    struct MHD_Daemon *daemon = NULL;
    const union MHD_DaemonInfo *info;
    sigset_t stop_signals;
    char errstr[512];
    unsigned port;
    int status = EXIT_FAILURE;
    int sig;

    /* Block the stop signals before anything else, so that a SIGTERM sent
     * right after start-up is not lost to the default action. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    switch (parse_options(argc, argv, &opts, &sim.config)) {
    case 0: break;
    case 2: return EXIT_SUCCESS;
    default: return EXIT_FAILURE;
    }
    if (!parse_bind_address(opts.bind, opts.allow_non_loopback, &addr, opts.port))
        return EXIT_FAILURE;

    raise_file_limit(opts.max_connections, opts.quiet);

    sim.state = sim_state_new(opts.log_path, (size_t)opts.log_memory_mb << 20, errstr,
                              sizeof(errstr));
    if (!sim.state) {
        fprintf(stderr, "chatt2me-sim: %s\n", errstr);
        goto out;
    }
    sim.timer = sim_timer_start(errstr, sizeof(errstr));
    if (!sim.timer) {
        fprintf(stderr, "chatt2me-sim: %s\n", errstr);
        goto out;
    }

    daemon = start_daemon(&sim, &opts, &addr);
    if (!daemon) {
        fprintf(stderr, "chatt2me-sim: cannot listen on %s port %u (in use, or an "
                        "invalid option)\n", opts.bind, opts.port);
        goto out;
    }
    info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : opts.port;
    if (opts.port_file && !write_port_file(opts.port_file, port))
        goto out;
    if (!opts.quiet)
        fprintf(stderr, "chatt2me-sim: listening on %s port %u (threads %u, latency %u ms)\n",
                opts.bind, port, opts.threads, sim.config.latency_ms);

    sig = wait_for_stop_signal(&stop_signals);
    if (!opts.quiet)
        fprintf(stderr, "chatt2me-sim: stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = EXIT_SUCCESS;

out:
    /* Resume delayed connections first: libmicrohttpd must not be stopped
     * while connections are suspended. */
    sim_timer_stop(sim.timer);
    if (daemon)
        MHD_stop_daemon(daemon);
    sim_timer_destroy(sim.timer);
    sim_state_destroy(sim.state);
    return status;
}
