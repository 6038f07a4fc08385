/* Worker configuration as one table. Each entry names a libconfig path, an
 * environment variable, a type, a default, bounds and a description, and
 * the defaults, file and environment loading, validation, config_print
 * and --help all walk that table. config/worker.cfg and
 * docs/configuration.md list the same entries, and a unit test checks
 * that they name every variable. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libconfig.h>
#include <netdb.h>
#include <sys/socket.h>

#include "util.h"

#define API_KEY_ENV "CHATT2ME_API_KEY"
#define API_KEY_FILE_ENV "CHATT2ME_API_KEY_FILE"

/* An API key is a few dozen characters, so a larger key file is the
 * wrong file. */
#define API_KEY_FILE_MAX 4096

/* Kafka rejects longer topic names. */
#define TOPIC_NAME_MAX 249

/* Maximum length of a value quoted in an error message. Longer values
 * are cut. */
#define QUOTED_VALUE_MAX 80

enum entry_type {
    ENTRY_STRING,     /* char *; NULL only with ENTRY_OPTIONAL */
    ENTRY_INT,        /* int */
    ENTRY_SIZE,       /* size_t, in bytes */
    ENTRY_BOOL,       /* bool */
    ENTRY_LOG_LEVEL,  /* enum log_level */
    ENTRY_LOG_FORMAT, /* enum log_format */
    ENTRY_PROPERTIES, /* struct config_properties; env is a name prefix */
    ENTRY_API_KEY,    /* char *; only from the environment or a key file */
};

/* An empty value unsets the string (NULL). */
#define ENTRY_OPTIONAL 0x1u
/* The value is never printed, not even in an error message. */
#define ENTRY_SENSITIVE 0x2u
/* Trailing '/' characters are removed when the value is set. */
#define ENTRY_TRIM_SLASH 0x4u

struct entry {
    const char *path;         /* libconfig "group.name" */
    const char *env;          /* variable, or prefix for ENTRY_PROPERTIES */
    enum entry_type type;
    size_t offset;            /* into struct config */
    const char *default_text; /* parsed as an environment value; NULL: none */
    long long min;            /* ENTRY_INT and ENTRY_SIZE only */
    long long max;
    const char *unit;         /* "ms", "bytes" or "" */
    unsigned flags;
    /* Extra rule for a string value: returns 0, or -1 with a reason. */
    int (*check)(const char *value, char *reason, size_t reason_size);
    const char *description;  /* one line, unit included */
};

static int check_topic(const char *value, char *reason, size_t reason_size);
static int check_base_url(const char *value, char *reason, size_t reason_size);
static int check_numeric_address(const char *value, char *reason,
                                 size_t reason_size);

#define OFFSET(field) offsetof(struct config, field)

/* The order here is the order of config_print, --help and worker.cfg. */
static const struct entry entries[] = {
    {"kafka.brokers", "CHATT2ME_KAFKA_BROKERS", ENTRY_STRING,
     OFFSET(brokers), "localhost:9092", 0, 0, "", 0, NULL,
     "Kafka bootstrap servers, a comma-separated list of host:port."},
    {"kafka.group_id", "CHATT2ME_KAFKA_GROUP_ID", ENTRY_STRING,
     OFFSET(group_id), "chatt2me-worker", 0, 0, "", 0, NULL,
     "Kafka consumer group, shared by all replicas of the worker."},
    {"kafka.requests_topic", "CHATT2ME_KAFKA_REQUESTS_TOPIC", ENTRY_STRING,
     OFFSET(requests_topic), "chatt2me.requests", 0, 0, "", 0, check_topic,
     "Topic that send requests are consumed from."},
    {"kafka.results_topic", "CHATT2ME_KAFKA_RESULTS_TOPIC", ENTRY_STRING,
     OFFSET(results_topic), "chatt2me.results", 0, 0, "", 0, check_topic,
     "Topic that one result per request is produced to."},
    {"kafka.dead_letter_topic", "CHATT2ME_KAFKA_DEAD_LETTER_TOPIC",
     ENTRY_STRING, OFFSET(dead_letter_topic), "chatt2me.dead-letters", 0, 0,
     "", 0, check_topic,
     "Topic that dead letters are produced to, such as requests rejected "
     "with HTTP 401."},
    {"kafka.properties", "CHATT2ME_KAFKA_PROPERTY_", ENTRY_PROPERTIES,
     OFFSET(common_properties), NULL, 0, 0, "", 0, NULL,
     "librdkafka properties for the consumer and the producer."},
    {"kafka.consumer_properties", "CHATT2ME_CONSUMER_PROPERTY_",
     ENTRY_PROPERTIES, OFFSET(consumer_properties), NULL, 0, 0, "", 0, NULL,
     "librdkafka properties for the consumer only."},
    {"kafka.producer_properties", "CHATT2ME_PRODUCER_PROPERTY_",
     ENTRY_PROPERTIES, OFFSET(producer_properties), NULL, 0, 0, "", 0, NULL,
     "librdkafka properties for the producer only."},
    {"kafka.exactly_once", "CHATT2ME_KAFKA_EXACTLY_ONCE", ENTRY_BOOL,
     OFFSET(exactly_once), "false", 0, 0, "", 0, NULL,
     "Produce results in Kafka transactions together with the consumer "
     "offsets, so that read_committed consumers see one result per request."},
    {"kafka.transactional_id", "CHATT2ME_KAFKA_TRANSACTIONAL_ID", ENTRY_STRING,
     OFFSET(transactional_id), NULL, 0, 0, "", ENTRY_OPTIONAL, NULL,
     "Transactional id with exactly_once; unset: <group_id>-<hostname>. "
     "Give each replica its own, stable across restarts."},

    {"api.base_url", "CHATT2ME_API_BASE_URL", ENTRY_STRING, OFFSET(base_url),
     "https://api.chatt2.me", 0, 0, "", ENTRY_TRIM_SLASH, check_base_url,
     "Base URL of the Chatt2.me API. Use http:// only for local tests "
     "against a simulator."},
    {"api.key", API_KEY_ENV, ENTRY_API_KEY, OFFSET(api_key), NULL, 0, 0, "",
     ENTRY_SENSITIVE, NULL,
     "API key sent in the x-api-key header; required unless "
     API_KEY_FILE_ENV " is set."},
    {"api.ca_file", "CHATT2ME_API_CA_FILE", ENTRY_STRING, OFFSET(ca_file),
     NULL, 0, 0, "", ENTRY_OPTIONAL, NULL,
     "PEM file of CA certificates that verify the API's TLS certificate; "
     "empty: the system's CA bundle."},
    {"api.tls_verify", "CHATT2ME_API_TLS_VERIFY", ENTRY_BOOL,
     OFFSET(tls_verify), "true", 0, 0, "", 0, NULL,
     "Verify the API's TLS certificate and host name. Set false only for "
     "local tests."},
    {"api.connect_timeout_ms", "CHATT2ME_API_CONNECT_TIMEOUT_MS", ENTRY_INT,
     OFFSET(connect_timeout_ms), "5000", 100, 600000, "ms", 0, NULL,
     "Maximum time in ms to establish a connection to the API."},
    {"api.request_timeout_ms", "CHATT2ME_API_REQUEST_TIMEOUT_MS", ENTRY_INT,
     OFFSET(request_timeout_ms), "30000", 100, 600000, "ms", 0, NULL,
     "Maximum time in ms of one HTTP attempt, connection included."},
    {"api.auth_pause_after", "CHATT2ME_API_AUTH_PAUSE_AFTER", ENTRY_INT,
     OFFSET(auth_pause_after), "0", 0, 1000000, "", 0, NULL,
     "Consecutive HTTP 401 answers after which the worker pauses consumption "
     "instead of dead-lettering more requests; 0 always dead-letters."},
    {"api.max_response_bytes", "CHATT2ME_API_MAX_RESPONSE_BYTES", ENTRY_SIZE,
     OFFSET(max_response_bytes), "65536", 1024, 16777216, "bytes", 0, NULL,
     "Maximum size in bytes of an API response body."},

    {"retry.max_attempts", "CHATT2ME_RETRY_MAX_ATTEMPTS", ENTRY_INT,
     OFFSET(max_attempts), "5", 1, 100, "", 0, NULL,
     "Maximum number of HTTP attempts per request, the first one included."},
    {"retry.backoff_base_ms", "CHATT2ME_RETRY_BACKOFF_BASE_MS", ENTRY_INT,
     OFFSET(backoff_base_ms), "500", 1, 3600000, "ms", 0, NULL,
     "Backoff base in ms: the delay before retry n is drawn from 0 to "
     "base * 2^(n-1)."},
    {"retry.backoff_max_ms", "CHATT2ME_RETRY_BACKOFF_MAX_MS", ENTRY_INT,
     OFFSET(backoff_max_ms), "30000", 1, 3600000, "ms", 0, NULL,
     "Maximum backoff delay in ms before one retry."},
    {"retry.max_total_ms", "CHATT2ME_RETRY_MAX_TOTAL_MS", ENTRY_INT,
     OFFSET(retry_max_total_ms), "300000", 1000, 86400000, "ms", 0, NULL,
     "Time in ms from the start of the first attempt after which no retry "
     "starts."},
    {"retry.payment_on_unknown_outcome",
     "CHATT2ME_RETRY_PAYMENT_ON_UNKNOWN_OUTCOME", ENTRY_BOOL,
     OFFSET(retry_payment_on_unknown_outcome), "false", 0, 0, "", 0, NULL,
     "Retry a payment request whose attempt has an unknown outcome, such as "
     "a timeout. A retry may charge twice."},
    {"retry.outage_after", "CHATT2ME_RETRY_OUTAGE_AFTER", ENTRY_INT,
     OFFSET(outage_after), "20", 0, 1000000, "", 0, NULL,
     "Consecutive connection failures, timeouts or 5xx answers after which "
     "the worker pauses consumption and probes the API with one request at "
     "a time; 0 disables outage mode."},
    {"retry.probe_max_ms", "CHATT2ME_RETRY_PROBE_MAX_MS", ENTRY_INT,
     OFFSET(probe_max_ms), "30000", 100, 3600000, "ms", 0, NULL,
     "Maximum delay in ms between probes in outage mode or auth pause; the "
     "first probe waits backoff_base_ms."},

    {"worker.max_in_flight", "CHATT2ME_WORKER_MAX_IN_FLIGHT", ENTRY_INT,
     OFFSET(max_in_flight), "256", 1, 10000, "", 0, NULL,
     "Maximum number of concurrent HTTP requests."},
    {"worker.max_buffered", "CHATT2ME_WORKER_MAX_BUFFERED", ENTRY_INT,
     OFFSET(max_buffered), "4096", 1, 1000000, "", 0, NULL,
     "Maximum number of consumed requests without a result yet; at least "
     "max_in_flight."},
    {"worker.max_request_bytes", "CHATT2ME_WORKER_MAX_REQUEST_BYTES",
     ENTRY_SIZE, OFFSET(max_request_bytes), "921600", 1024, 104857600,
     "bytes", 0, NULL,
     "Maximum size in bytes of a request record; larger records are "
     "rejected unread. Keep it about 64 KiB below the max.message.bytes of "
     "the results and dead-letter topics (1 MB by default), because a "
     "result echoes the metadata and a dead letter copies the record."},
    {"worker.drain_timeout_ms", "CHATT2ME_WORKER_DRAIN_TIMEOUT_MS", ENTRY_INT,
     OFFSET(drain_timeout_ms), "20000", 0, 3600000, "ms", 0, NULL,
     "Maximum time in ms that shutdown waits for in-flight requests."},
    {"worker.revoke_timeout_ms", "CHATT2ME_WORKER_REVOKE_TIMEOUT_MS",
     ENTRY_INT, OFFSET(revoke_timeout_ms), "15000", 0, 3600000, "ms", 0, NULL,
     "Maximum time in ms that a rebalance waits for in-flight requests of "
     "the revoked partitions."},
    {"worker.produce_failure_exit_ms",
     "CHATT2ME_WORKER_PRODUCE_FAILURE_EXIT_MS", ENTRY_INT,
     OFFSET(produce_failure_exit_ms), "60000", 1000, 3600000, "ms", 0, NULL,
     "Time in ms after which the worker exits while results cannot be "
     "produced."},
    {"worker.commit_interval_ms", "CHATT2ME_WORKER_COMMIT_INTERVAL_MS",
     ENTRY_INT, OFFSET(commit_interval_ms), "1000", 10, 600000, "ms", 0, NULL,
     "Interval in ms between offset commits."},
    {"worker.startup_timeout_ms", "CHATT2ME_WORKER_STARTUP_TIMEOUT_MS",
     ENTRY_INT, OFFSET(startup_timeout_ms), "30000", 1000, 3600000, "ms", 0,
     NULL,
     "Time in ms that start-up waits for the brokers and topics before it "
     "exits with code 2."},

    {"health.enabled", "CHATT2ME_HEALTH_ENABLED", ENTRY_BOOL,
     OFFSET(health_enabled), "true", 0, 0, "", 0, NULL,
     "Serve /healthz, /readyz and /metrics over HTTP."},
    {"health.address", "CHATT2ME_HEALTH_ADDRESS", ENTRY_STRING,
     OFFSET(health_address), "0.0.0.0", 0, 0, "", 0, check_numeric_address,
     "Numeric IPv4 or IPv6 address that the health server listens on. "
     "0.0.0.0 accepts probes from outside the pod."},
    {"health.port", "CHATT2ME_HEALTH_PORT", ENTRY_INT, OFFSET(health_port),
     "8080", 0, 65535, "", 0, NULL,
     "TCP port of the health server, or 0 for any free port."},
    {"health.stale_after_ms", "CHATT2ME_HEALTH_STALE_AFTER_MS", ENTRY_INT,
     OFFSET(health_stale_after_ms), "30000", 1000, 600000, "ms", 0, NULL,
     "Time in ms without an event loop iteration after which /healthz "
     "fails."},

    {"log.level", "CHATT2ME_LOG_LEVEL", ENTRY_LOG_LEVEL, OFFSET(log_level),
     "info", 0, 0, "", 0, NULL, "Log level: error, warn, info or debug."},
    {"log.format", "CHATT2ME_LOG_FORMAT", ENTRY_LOG_FORMAT, OFFSET(log_format),
     "text", 0, 0, "", 0, NULL, "Log line format: text or json."},
};

#define ENTRY_COUNT (sizeof(entries) / sizeof(entries[0]))

/* Properties that the worker sets itself because its delivery guarantee
 * depends on them, each with the reason shown to the user. */
static const struct {
    const char *name;
    const char *reason;
} forbidden_properties[] = {
    {"enable.auto.commit",
     "the worker sets it so that only the offsets of requests whose result "
     "was produced are committed"},
    {"enable.auto.offset.store",
     "the worker stores an offset only after the result of its request "
     "was produced"},
    {"enable.idempotence",
     "the worker enables it so that producer retries do not write a "
     "result twice"},
    {"group.id", "set kafka.group_id (CHATT2ME_KAFKA_GROUP_ID) instead"},
    {"transactional.id",
     "the worker produces results outside transactions and would stall "
     "waiting for one"},
};

/* librdkafka properties whose values are secrets. Any name that contains
 * "password", "secret" or "private.key" is a secret as well. */
static const char *const sensitive_properties[] = {
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl_key",
};

static void *field_of(struct config *cfg, const struct entry *e)
{
    return (char *)cfg + e->offset;
}

static const void *const_field_of(const struct config *cfg,
                                  const struct entry *e)
{
    return (const char *)cfg + e->offset;
}

static const struct entry *find_entry(const char *path)
{
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        if (strcmp(entries[i].path, path) == 0)
            return &entries[i];
    }
    return NULL;
}

/* Length of the group part of "group.name". */
static size_t group_length(const char *path)
{
    const char *dot = strchr(path, '.');

    return dot ? (size_t)(dot - path) : strlen(path);
}

static bool is_known_group(const char *name)
{
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        size_t len = group_length(entries[i].path);

        if (strlen(name) == len && strncmp(entries[i].path, name, len) == 0)
            return true;
    }
    return false;
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* ---- string rules ---- */

static int check_topic(const char *value, char *reason, size_t reason_size)
{
    size_t len = strlen(value);

    if (len > TOPIC_NAME_MAX) {
        util_snprintf(reason, reason_size,
                      "topic name is %zu characters long, Kafka allows at "
                      "most %d",
                      len, TOPIC_NAME_MAX);
        return -1;
    }
    if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0) {
        util_snprintf(reason, reason_size, "\"%s\" is not a valid topic name",
                      value);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        bool legal = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                     c == '-';

        if (!legal) {
            util_snprintf(reason, reason_size,
                          "\"%.*s\" is not a valid topic name: Kafka allows "
                          "only letters, digits, '.', '_' and '-'",
                          QUOTED_VALUE_MAX, value);
            return -1;
        }
    }
    return 0;
}

/* Parses the URL as libcurl will, so that a typo stops the worker at
 * start instead of failing every request. The URL must be printable
 * ASCII with a host and a port in range. It must have no "." or ".." path
 * segments, because libcurl would resolve them to a path outside the
 * configured prefix. */
static int check_url_syntax(const char *value, char *reason,
                            size_t reason_size)
{
    CURLU *url = curl_url();
    char *host = NULL;
    char *path = NULL;
    int status = -1;

    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            util_snprintf(reason, reason_size,
                          "the URL contains a character that is not printable"
                          " ASCII at byte %zu",
                          (size_t)(p - (const unsigned char *)value));
            goto out;
        }
    }
    if (!url || curl_url_set(url, CURLUPART_URL, value, 0) != CURLUE_OK) {
        util_snprintf(reason, reason_size, "\"%.*s\" is not a valid URL",
                      QUOTED_VALUE_MAX, value);
        goto out;
    }
    if (curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        host[0] == '\0') {
        util_snprintf(reason, reason_size, "\"%.*s\" has no host name",
                      QUOTED_VALUE_MAX, value);
        goto out;
    }
    /* Checked on the text as written, because libcurl's parser already
     * resolves the segments away. */
    const char *slash = strchr(strstr(value, "://") + 3, '/');
    size_t tail_len = slash ? strlen(slash) : 0;
    char *tail = xmalloc(tail_len + 2);
    memcpy(tail, slash ? slash : "", tail_len);
    memcpy(tail + tail_len, "/", 2);
    bool dot_segment = strstr(tail, "/./") || strstr(tail, "/../");
    free(tail);
    if (dot_segment) {
        util_snprintf(reason, reason_size,
                      "\"%.*s\" must not contain \".\" or \"..\" path segments",
                      QUOTED_VALUE_MAX, value);
        goto out;
    }
    status = 0;

out:
    curl_free(host);
    curl_free(path);
    curl_url_cleanup(url);
    return status;
}

static int check_base_url(const char *value, char *reason, size_t reason_size)
{
    const char *authority;
    size_t authority_len;

    if (strncmp(value, "https://", 8) == 0) {
        authority = value + 8;
    } else if (strncmp(value, "http://", 7) == 0) {
        authority = value + 7;
    } else {
        util_snprintf(reason, reason_size,
                      "\"%.*s\" must start with https:// (or http:// for "
                      "local tests)",
                      QUOTED_VALUE_MAX, value);
        return -1;
    }
    authority_len = strcspn(authority, "/");
    if (authority_len == 0) {
        util_snprintf(reason, reason_size, "\"%.*s\" has no host name",
                      QUOTED_VALUE_MAX, value);
        return -1;
    }
    /* Credentials in the URL would be printed by config_print, and the
     * API authenticates with the x-api-key header anyway. */
    if (memchr(authority, '@', authority_len) != NULL) {
        util_snprintf(reason, reason_size,
                      "the URL must not contain credentials (user@host)");
        return -1;
    }
    if (strpbrk(value, " ?#") != NULL) {
        util_snprintf(reason, reason_size,
                      "\"%.*s\" must not contain spaces, a query or a "
                      "fragment: the worker appends the request path to it",
                      QUOTED_VALUE_MAX, value);
        return -1;
    }
    if (value[strlen(value) - 1] == '/') {
        util_snprintf(reason, reason_size, "\"%.*s\" must not end with '/'",
                      QUOTED_VALUE_MAX, value);
        return -1;
    }
    return check_url_syntax(value, reason, reason_size);
}

/* Accepts only a numeric address: the health server binds the one
 * address the operator chose, not whatever a host name resolves to. */
static int check_numeric_address(const char *value, char *reason,
                                 size_t reason_size)
{
    struct addrinfo hints;
    struct addrinfo *found = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(value, NULL, &hints, &found) != 0) {
        util_snprintf(reason, reason_size,
                      "\"%.*s\" is not a numeric IPv4 or IPv6 address, such "
                      "as 0.0.0.0, 127.0.0.1 or ::",
                      QUOTED_VALUE_MAX, value);
        return -1;
    }
    freeaddrinfo(found);
    return 0;
}

/* Rules shared by every string entry: set or optional, no control
 * characters, and the entry's own check. */
static int check_string(const struct entry *e, const char *value, char *reason,
                        size_t reason_size)
{
    if (value == NULL || value[0] == '\0') {
        if (value == NULL && (e->flags & ENTRY_OPTIONAL))
            return 0;
        util_snprintf(reason, reason_size, "must not be empty");
        return -1;
    }
    for (const char *p = value; *p != '\0'; p++) {
        if (is_control((unsigned char)*p)) {
            util_snprintf(reason, reason_size,
                          "contains a control character at position %zu",
                          (size_t)(p - value) + 1);
            return -1;
        }
    }
    if (e->check != NULL)
        return e->check(value, reason, reason_size);
    return 0;
}

/* Checks the API key without ever copying it into reason: an empty key,
 * spaces and invisible characters are a documented cause of HTTP 401, and
 * CR or LF in a header value would inject headers. */
static int check_api_key(const char *key, size_t len, char *reason,
                         size_t reason_size)
{
    if (len == 0) {
        util_snprintf(reason, reason_size, "is empty");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        const char *problem = NULL;

        if (c == ' ')
            problem = "a space";
        else if (c == '\t')
            problem = "a tab";
        else if (c == '\r' || c == '\n')
            problem = "a line break (CR or LF)";
        else if (c == '\0')
            problem = "a NUL byte";
        else if (is_control(c))
            problem = "a control character";
        else if (c >= 0x80)
            problem = "a non-ASCII byte (an invisible Unicode character?)";
        if (problem != NULL) {
            util_snprintf(reason, reason_size,
                          "contains %s at position %zu of %zu; an API key "
                          "has only visible ASCII characters",
                          problem, i + 1, len);
            return -1;
        }
    }
    return 0;
}

/* ---- setting values ---- */

static void format_range(const struct entry *e, char *buf, size_t size)
{
    util_snprintf(buf, size, "%lld to %lld%s%s", e->min, e->max,
                  e->unit[0] != '\0' ? " " : "", e->unit);
}

static int set_number(struct config *cfg, const struct entry *e,
                      long long value, char *reason, size_t reason_size)
{
    char range[64];

    if (value < e->min || value > e->max) {
        format_range(e, range, sizeof(range));
        util_snprintf(reason, reason_size, "%lld is out of range, expected %s",
                      value, range);
        return -1;
    }
    if (e->type == ENTRY_INT)
        *(int *)field_of(cfg, e) = (int)value;
    else
        *(size_t *)field_of(cfg, e) = (size_t)value;
    return 0;
}

/* Parses a whole decimal integer, sign allowed, nothing else around it. */
static int parse_integer(const char *text, long long *out)
{
    char *end;

    if (!((text[0] >= '0' && text[0] <= '9') || text[0] == '-' ||
          text[0] == '+'))
        return -1;
    errno = 0;
    *out = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return -1;
    if (errno == ERANGE)
        *out = *out < 0 ? LLONG_MIN : LLONG_MAX;
    return 0;
}

static int parse_bool(const char *text, bool *out)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

static int set_string(struct config *cfg, const struct entry *e,
                      const char *text, char *reason, size_t reason_size)
{
    char **slot = field_of(cfg, e);
    char *value = NULL;

    if (text[0] != '\0') {
        value = xstrdup(text);
        if (e->flags & ENTRY_TRIM_SLASH) {
            size_t len = strlen(value);

            /* Stops at "scheme://", so that "https://" is reported as
             * lacking a host rather than a scheme. */
            while (len > 0 && value[len - 1] == '/' &&
                   !(len >= 3 && strncmp(value + len - 3, "://", 3) == 0))
                value[--len] = '\0';
        }
    }
    if (check_string(e, value, reason, reason_size) != 0) {
        free(value);
        return -1;
    }
    free(*slot);
    *slot = value;
    return 0;
}

/* Sets a scalar entry from its text form, as found in an environment
 * variable or in default_text. The reason for a failure goes to reason. */
static int set_from_text(struct config *cfg, const struct entry *e,
                         const char *text, char *reason, size_t reason_size)
{
    long long number;

    switch (e->type) {
    case ENTRY_STRING:
        return set_string(cfg, e, text, reason, reason_size);
    case ENTRY_INT:
    case ENTRY_SIZE:
        if (parse_integer(text, &number) != 0) {
            util_snprintf(reason, reason_size, "\"%.*s\" is not an integer",
                          QUOTED_VALUE_MAX, text);
            return -1;
        }
        return set_number(cfg, e, number, reason, reason_size);
    case ENTRY_BOOL:
        if (parse_bool(text, field_of(cfg, e)) != 0) {
            util_snprintf(reason, reason_size,
                          "\"%.*s\" is not a boolean, expected true or false",
                          QUOTED_VALUE_MAX, text);
            return -1;
        }
        return 0;
    case ENTRY_LOG_LEVEL:
        if (log_level_parse(text, field_of(cfg, e)) != 0) {
            util_snprintf(reason, reason_size,
                          "\"%.*s\" is not a log level, expected error, "
                          "warn, info or debug",
                          QUOTED_VALUE_MAX, text);
            return -1;
        }
        return 0;
    case ENTRY_LOG_FORMAT:
        if (log_format_parse(text, field_of(cfg, e)) != 0) {
            util_snprintf(reason, reason_size,
                          "\"%.*s\" is not a log format, expected text or "
                          "json",
                          QUOTED_VALUE_MAX, text);
            return -1;
        }
        return 0;
    case ENTRY_PROPERTIES:
    case ENTRY_API_KEY:
        break;
    }
    util_snprintf(reason, reason_size, "cannot be set from text");
    return -1;
}

/* ---- librdkafka property lists ---- */

static struct config_property *properties_find(
    const struct config_properties *props, const char *name)
{
    for (size_t i = 0; i < props->count; i++) {
        if (strcmp(props->items[i].name, name) == 0)
            return &props->items[i];
    }
    return NULL;
}

/* Sets name to value, replacing an earlier value of the same name. */
static void properties_set(struct config_properties *props, const char *name,
                           const char *value)
{
    struct config_property *prop = properties_find(props, name);

    if (prop != NULL) {
        free(prop->value);
        prop->value = xstrdup(value);
        return;
    }
    props->items =
        xrealloc(props->items, (props->count + 1) * sizeof(*props->items));
    props->items[props->count].name = xstrdup(name);
    props->items[props->count].value = xstrdup(value);
    props->count++;
}

static void properties_merge(struct config_properties *into,
                             const struct config_properties *from)
{
    for (size_t i = 0; i < from->count; i++)
        properties_set(into, from->items[i].name, from->items[i].value);
}

static void properties_clear(struct config_properties *props)
{
    for (size_t i = 0; i < props->count; i++) {
        free(props->items[i].name);
        /* Values may be passwords. */
        explicit_bzero(props->items[i].value, strlen(props->items[i].value));
        free(props->items[i].value);
    }
    free(props->items);
    props->items = NULL;
    props->count = 0;
}

/* Checks a property name: lowercase librdkafka syntax and not one that the
 * worker sets itself. An invalid name is not quoted in reason because it may
 * be a misplaced secret. */
static int check_property_name(const char *name, char *reason,
                               size_t reason_size)
{
    if (name[0] == '\0') {
        util_snprintf(reason, reason_size, "the property name is empty");
        return -1;
    }
    for (const char *p = name; *p != '\0'; p++) {
        bool legal = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                     *p == '.' || *p == '_';

        if (!legal) {
            util_snprintf(reason, reason_size,
                          "invalid property name: librdkafka names have "
                          "only lowercase letters, digits, '.' and '_'");
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(forbidden_properties) /
                               sizeof(forbidden_properties[0]);
         i++) {
        if (strcmp(name, forbidden_properties[i].name) == 0) {
            util_snprintf(reason, reason_size, "%s cannot be set: %s", name,
                          forbidden_properties[i].reason);
            return -1;
        }
    }
    return 0;
}

bool config_property_is_sensitive(const char *name)
{
    char *lower = xstrdup(name);
    bool sensitive = false;

    for (char *p = lower; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    for (size_t i = 0; i < sizeof(sensitive_properties) /
                               sizeof(sensitive_properties[0]);
         i++) {
        if (strcmp(lower, sensitive_properties[i]) == 0)
            sensitive = true;
    }
    if (strstr(lower, "password") != NULL || strstr(lower, "secret") != NULL ||
        strstr(lower, "private.key") != NULL)
        sensitive = true;
    free(lower);
    return sensitive;
}

/* ---- the configuration file ---- */

static const char *setting_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a floating-point number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "an unknown type";
    }
}

static const char *expected_type_name(enum entry_type type)
{
    switch (type) {
    case ENTRY_STRING:
    case ENTRY_LOG_LEVEL:
    case ENTRY_LOG_FORMAT:
        return "a string";
    case ENTRY_INT:
    case ENTRY_SIZE:
        return "an integer";
    case ENTRY_BOOL:
        return "a boolean (true or false)";
    case ENTRY_PROPERTIES:
        return "an array of \"name=value\" strings";
    case ENTRY_API_KEY:
        break;
    }
    return "nothing";
}

/* Source file and line of a setting. libconfig records the file, which
 * differs from the path passed in when the setting comes from an
 * @include. */
struct location {
    const char *file;
    unsigned line;
};

static struct location location_of(const config_setting_t *setting,
                                   const char *path)
{
    struct location loc = {path, config_setting_source_line(setting)};

    if (config_setting_source_file(setting) != NULL)
        loc.file = config_setting_source_file(setting);
    return loc;
}

/* Reads a libconfig array or list of "name=value" strings into props. A
 * value is never quoted in an error because it may be a password. */
static int load_property_list(struct config_properties *props,
                              const struct entry *e,
                              const config_setting_t *setting,
                              const char *path, char *errstr,
                              size_t errstr_size)
{
    int count = config_setting_length(setting);
    char reason[256];

    for (int i = 0; i < count; i++) {
        const config_setting_t *elem = config_setting_get_elem(setting, i);
        struct location loc = location_of(elem, path);
        const char *text;
        const char *eq;
        char *name;
        int rc;

        if (config_setting_type(elem) != CONFIG_TYPE_STRING) {
            util_snprintf(errstr, errstr_size,
                          "%s:%u: %s: element %d is %s, expected a "
                          "\"name=value\" string",
                          loc.file, loc.line, e->path, i + 1,
                          setting_type_name(config_setting_type(elem)));
            return -1;
        }
        text = config_setting_get_string(elem);
        eq = strchr(text, '=');
        if (eq == NULL) {
            util_snprintf(errstr, errstr_size,
                          "%s:%u: %s: element %d is not of the form "
                          "\"name=value\"",
                          loc.file, loc.line, e->path, i + 1);
            return -1;
        }
        name = xstrndup(text, (size_t)(eq - text));
        rc = check_property_name(name, reason, sizeof(reason));
        if (rc == 0 && properties_find(props, name) != NULL) {
            util_snprintf(reason, sizeof(reason), "%s is set twice", name);
            rc = -1;
        }
        if (rc == 0)
            properties_set(props, name, eq + 1);
        free(name);
        if (rc != 0) {
            util_snprintf(errstr, errstr_size, "%s:%u: %s: element %d: %s",
                          loc.file, loc.line, e->path, i + 1, reason);
            return -1;
        }
    }
    return 0;
}

static int load_setting(struct config *cfg, const struct entry *e,
                        const config_setting_t *setting, const char *path,
                        char *errstr, size_t errstr_size)
{
    struct location loc = location_of(setting, path);
    int type = config_setting_type(setting);
    bool type_ok = false;
    char reason[256];
    int rc;

    switch (e->type) {
    case ENTRY_STRING:
    case ENTRY_LOG_LEVEL:
    case ENTRY_LOG_FORMAT:
        type_ok = type == CONFIG_TYPE_STRING;
        break;
    case ENTRY_INT:
    case ENTRY_SIZE:
        type_ok = type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
        break;
    case ENTRY_BOOL:
        type_ok = type == CONFIG_TYPE_BOOL;
        break;
    case ENTRY_PROPERTIES:
        type_ok = type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
        break;
    case ENTRY_API_KEY:
        /* A file is often readable by more people than a secret. */
        util_snprintf(errstr, errstr_size,
                      "%s:%u: %s cannot be set in the configuration file; "
                      "set " API_KEY_ENV " or " API_KEY_FILE_ENV " instead",
                      loc.file, loc.line, e->path);
        return -1;
    }
    if (!type_ok) {
        util_snprintf(errstr, errstr_size, "%s:%u: %s is %s, expected %s",
                      loc.file, loc.line, e->path, setting_type_name(type),
                      expected_type_name(e->type));
        return -1;
    }

    if (e->type == ENTRY_PROPERTIES) {
        struct config_properties loaded = {NULL, 0};

        rc = load_property_list(&loaded, e, setting, path, errstr,
                                errstr_size);
        if (rc == 0)
            properties_merge(field_of(cfg, e), &loaded);
        properties_clear(&loaded);
        return rc;
    }

    if (e->type == ENTRY_BOOL) {
        *(bool *)field_of(cfg, e) = config_setting_get_bool(setting) != 0;
        return 0;
    }
    /* NOTE: libconfig 1.5 wraps an integer literal beyond 32 bits that has
     * no L suffix (4294967396 reads as 100), so such a value can pass the
     * range check. Every maximum here is below 2^31, so only an invalid
     * value can wrap. */
    if (e->type == ENTRY_INT || e->type == ENTRY_SIZE)
        rc = set_number(cfg, e, config_setting_get_int64(setting), reason,
                        sizeof(reason));
    else
        rc = set_from_text(cfg, e, config_setting_get_string(setting), reason,
                           sizeof(reason));
    if (rc != 0)
        util_snprintf(errstr, errstr_size, "%s:%u: %s: %s", loc.file,
                      loc.line, e->path, reason);
    return rc;
}

static int load_group(struct config *cfg, const config_setting_t *group,
                      const char *path, char *errstr, size_t errstr_size)
{
    const char *group_name = config_setting_name(group);
    struct location loc = location_of(group, path);

    if (group_name == NULL || !is_known_group(group_name)) {
        util_snprintf(errstr, errstr_size, "%s:%u: unknown setting \"%s\"",
                      loc.file, loc.line, group_name ? group_name : "");
        return -1;
    }
    if (!config_setting_is_group(group)) {
        util_snprintf(errstr, errstr_size,
                      "%s:%u: %s is %s, expected a group such as "
                      "%s = { ... };",
                      loc.file, loc.line, group_name,
                      setting_type_name(config_setting_type(group)),
                      group_name);
        return -1;
    }

    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *setting = config_setting_get_elem(group, i);
        char entry_path[256];
        const struct entry *e;

        util_snprintf(entry_path, sizeof(entry_path), "%s.%s", group_name,
                      config_setting_name(setting));
        e = find_entry(entry_path);
        if (e == NULL) {
            loc = location_of(setting, path);
            util_snprintf(errstr, errstr_size,
                          "%s:%u: unknown setting \"%s\"", loc.file,
                          loc.line, entry_path);
            return -1;
        }
        if (load_setting(cfg, e, setting, path, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

/* On failure, cfg may contain the settings read before the failing one,
 * so the caller is expected to stop. */
int config_load_file(struct config *cfg, const char *path, char *errstr,
                     size_t errstr_size)
{
    config_t lc;
    const config_setting_t *root;
    int rc = -1;

    config_init(&lc);
    errno = 0;
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            util_snprintf(errstr, errstr_size,
                          "cannot read configuration file %s: %s", path,
                          errno != 0 ? strerror(errno) : "I/O error");
        } else {
            util_snprintf(errstr, errstr_size, "%s:%d: %s",
                          config_error_file(&lc) ? config_error_file(&lc)
                                                 : path,
                          config_error_line(&lc), config_error_text(&lc));
        }
        goto out;
    }

    root = config_root_setting(&lc);
    for (int i = 0; i < config_setting_length(root); i++) {
        if (load_group(cfg, config_setting_get_elem(root, i), path, errstr,
                       errstr_size) != 0)
            goto out;
    }
    rc = 0;

out:
    config_destroy(&lc);
    return rc;
}

/* ---- the environment ---- */

int config_load_env(struct config *cfg,
                    const char *(*getenv_fn)(const char *name), char *errstr,
                    size_t errstr_size)
{
    char reason[256];

    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];
        const char *text;

        /* Property lists come from config_load_env_properties, the key
         * from config_load_api_key. */
        if (e->type == ENTRY_PROPERTIES || e->type == ENTRY_API_KEY)
            continue;
        text = getenv_fn(e->env);
        if (text == NULL)
            continue;
        if (set_from_text(cfg, e, text, reason, sizeof(reason)) != 0) {
            util_snprintf(errstr, errstr_size, "invalid %s: %s", e->env,
                          reason);
            return -1;
        }
    }
    return 0;
}

/* Turns the <NAME> part of a property variable into a librdkafka name:
 * lowercase, '_' to '.'. Returns NULL when the part contains a character
 * other than a letter, a digit or '_'. */
static char *property_name_from_env(const char *part, size_t len)
{
    char *name = xstrndup(part, len);

    for (char *p = name; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        } else if (*p == '_') {
            *p = '.';
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            free(name);
            return NULL;
        }
    }
    return name;
}

/* Reads one CHATT2ME_*_PROPERTY_<NAME>=value string into props. The value
 * is never quoted in an error because it may be a password. */
static int load_env_property(struct config_properties *props,
                             const struct entry *e, const char *var,
                             char *errstr, size_t errstr_size)
{
    const char *part = var + strlen(e->env);
    const char *eq = strchr(part, '=');
    int var_len = (int)(eq - var);
    char reason[256];
    char *name;
    int rc = 0;

    if (eq == part) {
        util_snprintf(errstr, errstr_size,
                      "invalid %.*s: the property name is missing after the "
                      "prefix, for example %sSASL_MECHANISM",
                      var_len, var, e->env);
        return -1;
    }
    name = property_name_from_env(part, (size_t)(eq - part));
    if (name == NULL) {
        util_snprintf(errstr, errstr_size,
                      "invalid %.*s: after %s only letters, digits and '_' "
                      "(for '.') may follow",
                      var_len, var, e->env);
        return -1;
    }
    if (check_property_name(name, reason, sizeof(reason)) != 0) {
        util_snprintf(errstr, errstr_size, "invalid %.*s: %s", var_len, var,
                      reason);
        rc = -1;
    } else if (properties_find(props, name) != NULL) {
        util_snprintf(errstr, errstr_size,
                      "invalid %.*s: another %s variable also sets %s",
                      var_len, var, e->env, name);
        rc = -1;
    } else {
        properties_set(props, name, eq + 1);
    }
    free(name);
    return rc;
}

int config_load_env_properties(struct config *cfg, char *const *environ_list,
                               char *errstr, size_t errstr_size)
{
    struct config_properties loaded[ENTRY_COUNT];
    int rc = -1;

    memset(loaded, 0, sizeof(loaded));
    for (char *const *var = environ_list; *var != NULL; var++) {
        for (size_t i = 0; i < ENTRY_COUNT; i++) {
            const struct entry *e = &entries[i];

            if (e->type != ENTRY_PROPERTIES ||
                strncmp(*var, e->env, strlen(e->env)) != 0 ||
                strchr(*var, '=') == NULL)
                continue;
            if (load_env_property(&loaded[i], e, *var, errstr, errstr_size) !=
                0)
                goto out;
        }
    }

    /* Merged only when every variable is valid, over the file's values. */
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        if (entries[i].type == ENTRY_PROPERTIES)
            properties_merge(field_of(cfg, &entries[i]), &loaded[i]);
    }
    rc = 0;

out:
    for (size_t i = 0; i < ENTRY_COUNT; i++)
        properties_clear(&loaded[i]);
    return rc;
}

/* ---- the API key ---- */

static void set_api_key(struct config *cfg, char *key)
{
    if (cfg->api_key != NULL) {
        explicit_bzero(cfg->api_key, strlen(cfg->api_key));
        free(cfg->api_key);
    }
    cfg->api_key = key;
}

static int load_api_key_file(struct config *cfg, const char *path,
                             char *errstr, size_t errstr_size)
{
    char buf[API_KEY_FILE_MAX + 1];
    size_t len = 0;
    char reason[256];
    int fd;
    int rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        util_snprintf(errstr, errstr_size, "cannot open %s %s: %s",
                      API_KEY_FILE_ENV, path, strerror(errno));
        return -1;
    }
    while (len < sizeof(buf)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            util_snprintf(errstr, errstr_size, "cannot read %s %s: %s",
                          API_KEY_FILE_ENV, path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > API_KEY_FILE_MAX) {
        util_snprintf(errstr, errstr_size,
                      "%s %s is larger than %d bytes; it must contain only "
                      "the API key",
                      API_KEY_FILE_ENV, path, API_KEY_FILE_MAX);
        goto out;
    }

    /* Editors and "echo" end a file with a newline. Anything else that
     * remains, such as the CR of a Windows line end, is an error. */
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (check_api_key(buf, len, reason, sizeof(reason)) != 0) {
        util_snprintf(errstr, errstr_size, "the API key in %s %s %s",
                      API_KEY_FILE_ENV, path, reason);
        goto out;
    }
    set_api_key(cfg, xstrndup(buf, len));
    rc = 0;

out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

int config_load_api_key(struct config *cfg,
                        const char *(*getenv_fn)(const char *name),
                        char *errstr, size_t errstr_size)
{
    const char *key = getenv_fn(API_KEY_ENV);
    const char *path;
    char reason[256];

    if (key != NULL && key[0] != '\0') {
        if (check_api_key(key, strlen(key), reason, sizeof(reason)) != 0) {
            util_snprintf(errstr, errstr_size, "the API key in %s %s",
                          API_KEY_ENV, reason);
            return -1;
        }
        set_api_key(cfg, xstrdup(key));
        return 0;
    }
    path = getenv_fn(API_KEY_FILE_ENV);
    if (path == NULL || path[0] == '\0')
        return 0;
    return load_api_key_file(cfg, path, errstr, errstr_size);
}

/* ---- defaults, validation, release ---- */

void config_set_defaults(struct config *cfg)
{
    char reason[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];

        if (e->default_text == NULL)
            continue;
        if (set_from_text(cfg, e, e->default_text, reason,
                          sizeof(reason)) != 0) {
            /* A bug in the table above, caught by the unit tests. */
            fprintf(stderr, "invalid default for %s: %s\n", e->path, reason);
            abort();
        }
    }
}

static int validate_entry(const struct config *cfg, const struct entry *e,
                          char *reason, size_t reason_size)
{
    const void *field = const_field_of(cfg, e);
    const struct config_properties *props;
    char range[64];
    long long number;

    switch (e->type) {
    case ENTRY_STRING:
        return check_string(e, *(char *const *)field, reason, reason_size);
    case ENTRY_INT:
    case ENTRY_SIZE:
        if (e->type == ENTRY_INT)
            number = *(const int *)field;
        else
            number = *(const size_t *)field > (size_t)LLONG_MAX
                         ? LLONG_MAX
                         : (long long)*(const size_t *)field;
        if (number < e->min || number > e->max) {
            format_range(e, range, sizeof(range));
            util_snprintf(reason, reason_size,
                          "%lld is out of range, expected %s", number, range);
            return -1;
        }
        return 0;
    case ENTRY_LOG_LEVEL: {
        enum log_level level = *(const enum log_level *)field;

        if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG) {
            util_snprintf(reason, reason_size, "%d is not a log level",
                          (int)level);
            return -1;
        }
        return 0;
    }
    case ENTRY_LOG_FORMAT: {
        enum log_format format = *(const enum log_format *)field;

        if (format != LOG_FORMAT_TEXT && format != LOG_FORMAT_JSON) {
            util_snprintf(reason, reason_size, "%d is not a log format",
                          (int)format);
            return -1;
        }
        return 0;
    }
    case ENTRY_PROPERTIES:
        props = field;
        for (size_t i = 0; i < props->count; i++) {
            if (check_property_name(props->items[i].name, reason,
                                    reason_size) != 0)
                return -1;
        }
        return 0;
    case ENTRY_BOOL:
    case ENTRY_API_KEY:
        break;
    }
    return 0;
}

static int validate_topics(const struct config *cfg, char *errstr,
                           size_t errstr_size)
{
    if (strcmp(cfg->results_topic, cfg->requests_topic) == 0) {
        util_snprintf(errstr, errstr_size,
                      "kafka.results_topic and kafka.requests_topic are both "
                      "\"%s\": the worker would consume its own results",
                      cfg->requests_topic);
        return -1;
    }
    if (strcmp(cfg->dead_letter_topic, cfg->requests_topic) == 0) {
        util_snprintf(errstr, errstr_size,
                      "kafka.dead_letter_topic and kafka.requests_topic are "
                      "both \"%s\": the worker would consume its own dead "
                      "letters",
                      cfg->requests_topic);
        return -1;
    }
    if (strcmp(cfg->dead_letter_topic, cfg->results_topic) == 0) {
        util_snprintf(errstr, errstr_size,
                      "kafka.dead_letter_topic and kafka.results_topic are "
                      "both \"%s\": dead letters would mix with results",
                      cfg->results_topic);
        return -1;
    }
    return 0;
}

/* Rules between settings, checked after every setting is valid alone. */
static int validate_cross(const struct config *cfg, char *errstr,
                          size_t errstr_size)
{
    if (cfg->backoff_base_ms > cfg->backoff_max_ms) {
        util_snprintf(errstr, errstr_size,
                      "retry.backoff_base_ms (%d) must not be greater than "
                      "retry.backoff_max_ms (%d)",
                      cfg->backoff_base_ms, cfg->backoff_max_ms);
        return -1;
    }
    if (cfg->max_buffered < cfg->max_in_flight) {
        util_snprintf(errstr, errstr_size,
                      "worker.max_buffered (%d) must be at least "
                      "worker.max_in_flight (%d): every request in flight "
                      "is also buffered",
                      cfg->max_buffered, cfg->max_in_flight);
        return -1;
    }
    if (cfg->request_timeout_ms < cfg->connect_timeout_ms) {
        util_snprintf(errstr, errstr_size,
                      "api.request_timeout_ms (%d) must be at least "
                      "api.connect_timeout_ms (%d): the request timeout "
                      "includes the connection",
                      cfg->request_timeout_ms, cfg->connect_timeout_ms);
        return -1;
    }
    if (validate_topics(cfg, errstr, errstr_size) != 0)
        return -1;

    /* Found now rather than at the first TLS handshake. */
    if (cfg->ca_file != NULL && access(cfg->ca_file, R_OK) != 0) {
        util_snprintf(errstr, errstr_size, "api.ca_file: cannot read %s: %s",
                      cfg->ca_file, strerror(errno));
        return -1;
    }
    return 0;
}

int config_validate(const struct config *cfg, char *errstr,
                    size_t errstr_size)
{
    char reason[256];

    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];

        if (validate_entry(cfg, e, reason, sizeof(reason)) != 0) {
            util_snprintf(errstr, errstr_size, "invalid %s (%s): %s",
                          e->path, e->env, reason);
            return -1;
        }
    }
    if (validate_cross(cfg, errstr, errstr_size) != 0)
        return -1;

    if (cfg->api_key == NULL) {
        util_snprintf(errstr, errstr_size,
                      "the API key is not set: set %s to the key, or %s to "
                      "the path of a file that contains it",
                      API_KEY_ENV, API_KEY_FILE_ENV);
        return -1;
    }
    if (check_api_key(cfg->api_key, strlen(cfg->api_key), reason,
                      sizeof(reason)) != 0) {
        util_snprintf(errstr, errstr_size, "the API key %s", reason);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];

        if (e->type == ENTRY_STRING) {
            char **slot = field_of(cfg, e);

            free(*slot);
            *slot = NULL;
        } else if (e->type == ENTRY_PROPERTIES) {
            properties_clear(field_of(cfg, e));
        }
    }
    set_api_key(cfg, NULL);
}

/* ---- printing ---- */

/* Writes s as a libconfig string literal. */
static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p == '\r')
            fputs("\\r", out);
        else if (*p == '\f')
            fputs("\\f", out);
        else if (is_control(*p))
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_properties(FILE *out, const struct config_properties *props)
{
    fputc('[', out);
    for (size_t i = 0; i < props->count; i++) {
        const struct config_property *prop = &props->items[i];
        char *item;
        size_t size;
        bool sensitive = config_property_is_sensitive(prop->name);

        size = strlen(prop->name) + 1 +
               strlen(sensitive ? "[redacted]" : prop->value) + 1;
        item = xmalloc(size);
        util_snprintf(item, size, "%s=%s", prop->name,
                      sensitive ? "[redacted]" : prop->value);
        fputs(i == 0 ? "\n    " : ",\n    ", out);
        print_quoted(out, item);
        explicit_bzero(item, size);
        free(item);
    }
    fputs(props->count > 0 ? "\n  ]" : " ]", out);
}

static void print_entry(FILE *out, const struct config *cfg,
                        const struct entry *e)
{
    const void *field = const_field_of(cfg, e);
    const char *name = e->path + group_length(e->path) + 1;

    if (e->type == ENTRY_API_KEY) {
        const char *key = *(char *const *)field;
        const char *shown = key == NULL                   ? "(not set)"
                            : e->flags & ENTRY_SENSITIVE ? "[redacted]"
                                                         : key;

        /* A comment, because the file cannot set the key. */
        fprintf(out, "  # %s = %s;  (from %s or %s only)\n", name, shown,
                API_KEY_ENV, API_KEY_FILE_ENV);
        return;
    }
    fprintf(out, "  %s = ", name);
    switch (e->type) {
    case ENTRY_STRING:
        print_quoted(out, *(char *const *)field ? *(char *const *)field : "");
        break;
    case ENTRY_INT:
        fprintf(out, "%d", *(const int *)field);
        break;
    case ENTRY_SIZE:
        fprintf(out, "%zu", *(const size_t *)field);
        break;
    case ENTRY_BOOL:
        fputs(*(const bool *)field ? "true" : "false", out);
        break;
    case ENTRY_LOG_LEVEL:
        print_quoted(out, log_level_name(*(const enum log_level *)field));
        break;
    case ENTRY_LOG_FORMAT:
        print_quoted(out, *(const enum log_format *)field == LOG_FORMAT_JSON
                              ? "json"
                              : "text");
        break;
    case ENTRY_PROPERTIES:
        print_properties(out, field);
        break;
    case ENTRY_API_KEY:
        break;
    }
    fputs(";\n", out);
}

void config_print(const struct config *cfg, FILE *out)
{
    const char *group = NULL;
    size_t group_len = 0;

    fputs("# Effective configuration: defaults, then the file, then the "
          "environment.\n",
          out);
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];
        size_t len = group_length(e->path);

        if (group == NULL || len != group_len ||
            strncmp(group, e->path, len) != 0) {
            if (group != NULL)
                fputs("};\n", out);
            group = e->path;
            group_len = len;
            fprintf(out, "%.*s = {\n", (int)len, group);
        }
        print_entry(out, cfg, e);
    }
    if (group != NULL)
        fputs("};\n", out);
}

void config_print_env_help(FILE *out)
{
    char range[64];

    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];

        switch (e->type) {
        case ENTRY_PROPERTIES:
            fprintf(out, "  %s<NAME>\n", e->env);
            fprintf(out, "      %s <NAME> is the property name with '.' "
                         "written as '_', in any case.\n",
                    e->description);
            continue;
        case ENTRY_API_KEY:
            fprintf(out, "  %s\n      %s\n", e->env, e->description);
            fprintf(out, "  %s\n      File that contains the API key; one "
                         "trailing newline is removed.\n",
                    API_KEY_FILE_ENV);
            continue;
        case ENTRY_INT:
        case ENTRY_SIZE:
            format_range(e, range, sizeof(range));
            fprintf(out, "  %s  (default %s, range %s)\n", e->env,
                    e->default_text, range);
            break;
        case ENTRY_STRING:
            if (e->default_text != NULL)
                fprintf(out, "  %s  (default \"%s\")\n", e->env,
                        e->default_text);
            else
                fprintf(out, "  %s  (default: not set)\n", e->env);
            break;
        case ENTRY_BOOL:
        case ENTRY_LOG_LEVEL:
        case ENTRY_LOG_FORMAT:
            fprintf(out, "  %s  (default %s)\n", e->env, e->default_text);
            break;
        }
        fprintf(out, "      %s\n", e->description);
    }
}

/* Variables outside the table that are read all the same: by main, by the
 * key loader, and by the simulator in the tests. */
static bool env_name_known(const char *name, size_t len)
{
    static const char *const others[] = {"CHATT2ME_CONFIG", API_KEY_ENV,
                                         API_KEY_FILE_ENV};

    if (len >= 13 && strncmp(name, "CHATT2ME_SIM_", 13) == 0)
        return true;
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (strlen(others[i]) == len && strncmp(name, others[i], len) == 0)
            return true;
    }
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        const struct entry *e = &entries[i];
        size_t env_len = strlen(e->env);

        if (e->type == ENTRY_PROPERTIES) {
            if (len > env_len && strncmp(name, e->env, env_len) == 0)
                return true;
        } else if (env_len == len && strncmp(name, e->env, len) == 0) {
            return true;
        }
    }
    return false;
}

void config_find_unknown_env(char *const *environ_list,
                             void (*warn)(const char *name))
{
    for (char *const *item = environ_list; item && *item; item++) {
        const char *equals = strchr(*item, '=');
        size_t len = equals ? (size_t)(equals - *item) : strlen(*item);
        char name[128];

        if (len < 9 || strncmp(*item, "CHATT2ME_", 9) != 0 ||
            env_name_known(*item, len))
            continue;
        if (len >= sizeof(name))
            len = sizeof(name) - 1;
        memcpy(name, *item, len);
        name[len] = '\0';
        warn(name);
    }
}
