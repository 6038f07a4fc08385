/* Unit tests of the health server: /healthz, /readyz and /metrics over
 * real HTTP on 127.0.0.1 (and ::1 when the machine has IPv6), with
 * libcurl as the client. Every server listens on port 0, so the tests
 * never collide with a running service. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "health.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* Long enough that a beat taken now stays fresh for the whole test. */
#define FRESH_STALE_AFTER_MS 600000

struct fixture {
    struct metrics *metrics;
    struct health *health;
};

struct http_reply {
    long status;
    char *body;
    size_t body_len;
    char content_type[128];
    char allow[64];
};

/* ---- helpers ---- */

static size_t collect_body(char *data, size_t size, size_t count,
                           void *opaque)
{
    struct http_reply *reply = opaque;
    size_t len = size * count;

    reply->body = realloc(reply->body, reply->body_len + len + 1);
    assert_non_null(reply->body);
    memcpy(reply->body + reply->body_len, data, len);
    reply->body_len += len;
    reply->body[reply->body_len] = '\0';
    return len;
}

/* Stores the value of the Allow header, the only one that curl does not
 * return through curl_easy_getinfo. */
static size_t collect_header(char *data, size_t size, size_t count,
                             void *opaque)
{
    struct http_reply *reply = opaque;
    size_t len = size * count;

    if (len > 6 && strncasecmp(data, "Allow:", 6) == 0) {
        size_t start = 6;
        size_t end = len;

        while (start < end && data[start] == ' ')
            start++;
        while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n'))
            end--;
        snprintf(reply->allow, sizeof(reply->allow), "%.*s",
                 (int)(end - start), data + start);
    }
    return len;
}

/* Sends method to host:port path and fills reply; the caller frees
 * reply->body. host is a loopback literal, "127.0.0.1" or "[::1]". */
static void request_at(const char *host, int port, const char *method,
                       const char *path, struct http_reply *reply)
{
    CURL *easy = curl_easy_init();
    char url[256];
    char *content_type = NULL;
    CURLcode rc;

    assert_non_null(easy);
    memset(reply, 0, sizeof(*reply));
    snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    /* A proxy from the environment must not see these requests. */
    curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
    /* A guard against a hung server, not a timing assertion. */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, reply);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "probe=1");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }

    rc = curl_easy_perform(easy);
    if (rc != CURLE_OK)
        fail_msg("%s %s failed: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &content_type);
    if (content_type != NULL)
        snprintf(reply->content_type, sizeof(reply->content_type), "%s",
                 content_type);
    if (reply->body == NULL)
        reply->body = calloc(1, 1);
    curl_easy_cleanup(easy);
}

static void request(const struct health *health, const char *method,
                    const char *path, struct http_reply *reply)
{
    request_at("127.0.0.1", health_port(health), method, path, reply);
}

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    char errstr[256] = "";

    assert_non_null(fixture);
    fixture->metrics = metrics_new();
    fixture->health = health_start("127.0.0.1", 0, fixture->metrics,
                                   FRESH_STALE_AFTER_MS, errstr,
                                   sizeof(errstr));
    if (fixture->health == NULL)
        fail_msg("health_start failed: %s", errstr);
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;

    health_stop(fixture->health);
    metrics_destroy(fixture->metrics);
    free(fixture);
    return 0;
}

static int setup_all(void **state)
{
    (void)state;
    /* The start and stop lines at info would clutter the test output. */
    log_setup(LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

/* ---- start ---- */

static void test_start_port_zero_binds(void **state)
{
    struct fixture *fixture = *state;
    int port = health_port(fixture->health);

    assert_true(port > 0);
    assert_true(port <= 65535);
}

static void test_start_invalid_arguments(void **state)
{
    static const struct {
        const char *address;
        int port;
        int stale_after_ms;
        const char *expected;
    } cases[] = {
        {"localhost", 0, 1000, "numeric IPv4 or IPv6 address"},
        {"999.1.1.1", 0, 1000, "invalid health server address \"999.1.1.1\""},
        {"", 0, 1000, "invalid health server address"},
        {"127.0.0.1:80", 0, 1000, "invalid health server address"},
        {"127.0.0.1", -1, 1000, "invalid health server port -1"},
        {"127.0.0.1", 65536, 1000, "invalid health server port 65536"},
        {"127.0.0.1", 0, 0, "invalid health.stale_after_ms 0"},
    };
    struct fixture *fixture = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[256] = "";
        struct health *health =
            health_start(cases[i].address, cases[i].port, fixture->metrics,
                         cases[i].stale_after_ms, errstr, sizeof(errstr));

        if (health != NULL) {
            health_stop(health);
            fail_msg("case %zu: started", i);
        }
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
    }
}

static void test_start_port_in_use(void **state)
{
    struct fixture *fixture = *state;
    int port = health_port(fixture->health);
    char errstr[256] = "";
    char expected[64];
    struct health *second = health_start("127.0.0.1", port, fixture->metrics,
                                         1000, errstr, sizeof(errstr));

    if (second != NULL) {
        health_stop(second);
        fail_msg("a second server started on port %d", port);
    }
    snprintf(expected, sizeof(expected),
             "cannot start the health server on 127.0.0.1:%d: ", port);
    assert_non_null(strstr(errstr, expected));
    assert_non_null(strstr(errstr, "Address already in use"));
}

/* ---- /healthz ---- */

static void test_healthz_ok_after_beat(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    health_beat(fixture->health, util_now_mono_ms());
    request(fixture->health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    assert_string_equal(reply.body, "ok\n");
    assert_string_equal(reply.content_type, "text/plain; charset=utf-8");
    free(reply.body);
}

/* The start counts as a beat, so a fresh server is alive before the
 * loop's first iteration. */
static void test_healthz_ok_at_start(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    request(fixture->health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    free(reply.body);
}

static void test_healthz_stale_beat(void **state)
{
    struct fixture *fixture = *state;
    char errstr[256] = "";
    struct health *health = health_start("127.0.0.1", 0, fixture->metrics, 1,
                                         errstr, sizeof(errstr));
    struct http_reply reply;

    if (health == NULL)
        fail_msg("health_start failed: %s", errstr);
    health_beat(health, util_now_mono_ms() - 5000);
    request(health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 503);
    assert_non_null(strstr(reply.body, "stale: the event loop last ran "));
    assert_non_null(strstr(reply.body, "health.stale_after_ms (1 ms)"));
    free(reply.body);
    health_stop(health);
}

/* A fresh beat after a stale one makes /healthz pass again. */
static void test_healthz_recovers(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    health_beat(fixture->health,
                util_now_mono_ms() - 2 * (int64_t)FRESH_STALE_AFTER_MS);
    request(fixture->health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 503);
    free(reply.body);

    health_beat(fixture->health, util_now_mono_ms());
    request(fixture->health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    free(reply.body);
}

/* ---- /readyz ---- */

static const char *const ready_reasons[HEALTH_FLAG_COUNT] = {
    [HEALTH_ASSIGNED] = "not ready: no partition is assigned\n",
    [HEALTH_BROKER_REACHABLE] = "not ready: the Kafka broker is not "
                                "reachable\n",
    [HEALTH_OUTAGE] = "not ready: API outage mode is active\n",
    [HEALTH_AUTH_PAUSED] = "not ready: consumption is paused after repeated "
                           "HTTP 401 responses\n",
    [HEALTH_STOPPING] = "not ready: the worker is shutting down\n",
};

/* Returns whether flag, at value, blocks readiness. */
static bool blocks_readiness(enum health_flag flag, bool value)
{
    if (flag == HEALTH_ASSIGNED || flag == HEALTH_BROKER_REACHABLE)
        return !value;
    return value;
}

/* Every combination of the five flags: ready only when assigned, broker
 * reachable, and none of outage, auth pause or stopping. */
static void test_readyz_every_combination(void **state)
{
    struct fixture *fixture = *state;
    int ready_count = 0;

    for (unsigned bits = 0; bits < (1u << HEALTH_FLAG_COUNT); bits++) {
        struct http_reply reply;
        bool ready = true;

        for (int flag = 0; flag < HEALTH_FLAG_COUNT; flag++) {
            bool value = (bits >> flag) & 1u;

            health_set(fixture->health, (enum health_flag)flag, value);
            if (blocks_readiness((enum health_flag)flag, value))
                ready = false;
        }
        request(fixture->health, "GET", "/readyz", &reply);
        if (reply.status != (ready ? 200 : 503))
            fail_msg("flags 0x%02x: HTTP %ld, expected %d", bits, reply.status,
                     ready ? 200 : 503);
        assert_string_equal(reply.content_type, "text/plain; charset=utf-8");
        if (ready) {
            ready_count++;
            assert_string_equal(reply.body, "ready\n");
        }
        for (int flag = 0; flag < HEALTH_FLAG_COUNT; flag++) {
            bool blocks = blocks_readiness((enum health_flag)flag,
                                           (bits >> flag) & 1u);
            bool named = strstr(reply.body, ready_reasons[flag]) != NULL;

            if (blocks != named)
                fail_msg("flags 0x%02x: reason \"%s\" is %s in \"%s\"", bits,
                         ready_reasons[flag], named ? "present" : "missing",
                         reply.body);
        }
        free(reply.body);
    }
    assert_int_equal(ready_count, 1);
}

static void test_readyz_not_ready_at_start(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    request(fixture->health, "GET", "/readyz", &reply);
    assert_int_equal(reply.status, 503);
    assert_string_equal(reply.body,
                        "not ready: no partition is assigned\n"
                        "not ready: the Kafka broker is not reachable\n");
    free(reply.body);
}

/* ---- /metrics ---- */

static void test_metrics_content_and_body(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    metrics_consumed(fixture->metrics);
    metrics_consumed(fixture->metrics);
    metrics_set_outage(fixture->metrics, true);
    request(fixture->health, "GET", "/metrics", &reply);
    assert_int_equal(reply.status, 200);
    assert_string_equal(reply.content_type,
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(reply.body,
                           "# TYPE chatt2me_requests_consumed_total counter\n"
                           "chatt2me_requests_consumed_total 2\n"));
    assert_non_null(strstr(reply.body, "\nchatt2me_outage_mode 1\n"));
    assert_non_null(strstr(reply.body, "\nchatt2me_build_info{version=\""));
    assert_int_equal(reply.body[reply.body_len - 1], '\n');
    free(reply.body);
}

/* The body over HTTP is byte for byte what metrics_render writes. */
static void test_metrics_equals_render(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;
    char *text = NULL;
    size_t size = 0;
    FILE *out;

    metrics_http_response(fixture->metrics, REQUEST_CHANNEL_WHATSAPP, 200,
                          false, 0.2);
    request(fixture->health, "GET", "/metrics", &reply);
    out = open_memstream(&text, &size);
    assert_non_null(out);
    metrics_render(fixture->metrics, out);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(reply.body_len, size);
    assert_string_equal(reply.body, text);
    free(text);
    free(reply.body);
}

/* ---- routes and methods ---- */

static void test_unknown_path_not_found(void **state)
{
    static const char *const paths[] = {
        "/", "/health", "/healthz/", "/metricsx", "/readyz/extra", "/HEALTHZ",
    };
    struct fixture *fixture = *state;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_reply reply;

        request(fixture->health, "GET", paths[i], &reply);
        if (reply.status != 404)
            fail_msg("%s: HTTP %ld, expected 404", paths[i], reply.status);
        assert_non_null(strstr(reply.body, "not found"));
        free(reply.body);
    }
}

/* The query string is not part of the path. */
static void test_query_string_ignored(void **state)
{
    struct fixture *fixture = *state;
    struct http_reply reply;

    request(fixture->health, "GET", "/healthz?verbose=1", &reply);
    assert_int_equal(reply.status, 200);
    free(reply.body);
}

static void test_method_not_allowed(void **state)
{
    static const struct {
        const char *method;
        const char *path;
    } cases[] = {
        {"POST", "/healthz"},  {"PUT", "/readyz"},   {"DELETE", "/metrics"},
        {"HEAD", "/healthz"},  {"OPTIONS", "/readyz"}, {"POST", "/unknown"},
    };
    struct fixture *fixture = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_reply reply;

        request(fixture->health, cases[i].method, cases[i].path, &reply);
        if (reply.status != 405)
            fail_msg("%s %s: HTTP %ld, expected 405", cases[i].method,
                     cases[i].path, reply.status);
        assert_string_equal(reply.allow, "GET");
        free(reply.body);
    }
}

/* ---- connection limits ---- */

/* Returns a TCP socket connected from from_ip to 127.0.0.1:port, with a
 * receive timeout that only guards against a hung server. */
static int connect_from(const char *from_ip, int port)
{
    struct sockaddr_in from;
    struct sockaddr_in to;
    struct timeval guard = {20, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, from_ip, &from.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard,
                                sizeof(guard)),
                     0);
    return fd;
}

/* One client address may open at most 8 connections: the ninth gets no
 * response, and other addresses are still served. */
static void test_connection_limit_per_address(void **state)
{
    static const char request_text[] =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    struct fixture *fixture = *state;
    int port = health_port(fixture->health);
    int idle[8];
    int extra;
    char buffer[256];
    ssize_t received;
    struct http_reply reply;

    for (size_t i = 0; i < 8; i++)
        idle[i] = connect_from("127.0.0.2", port);
    extra = connect_from("127.0.0.2", port);
    assert_int_equal(send(extra, request_text, strlen(request_text),
                          MSG_NOSIGNAL),
                     (ssize_t)strlen(request_text));
    received = recv(extra, buffer, sizeof(buffer) - 1, 0);
    if (received > 0) {
        buffer[received] = '\0';
        fail_msg("the ninth connection got a response: %s", buffer);
    }
    close(extra);

    request(fixture->health, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    free(reply.body);
    for (size_t i = 0; i < 8; i++)
        close(idle[i]);
}

/* ---- IPv6 and NULL handles ---- */

/* Returns whether a socket can bind ::1, which containers without IPv6
 * cannot. */
static bool ipv6_loopback_available(void)
{
    struct sockaddr_in6 addr;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool available;

    if (fd < 0)
        return false;
    memset(&addr, 0, sizeof(addr));
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    available = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return available;
}

static void test_ipv6_loopback(void **state)
{
    struct fixture *fixture = *state;
    char errstr[256] = "";
    struct health *health;
    struct http_reply reply;

    if (!ipv6_loopback_available())
        skip();
    health = health_start("::1", 0, fixture->metrics, FRESH_STALE_AFTER_MS,
                          errstr, sizeof(errstr));
    if (health == NULL)
        fail_msg("health_start on ::1 failed: %s", errstr);
    health_beat(health, util_now_mono_ms());
    request_at("[::1]", health_port(health), "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    free(reply.body);
    health_stop(health);
}

/* A disabled server is a NULL handle, and the loop may still call these. */
static void test_null_handle_safe(void **state)
{
    (void)state;
    health_beat(NULL, 1);
    health_set(NULL, HEALTH_ASSIGNED, true);
    health_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_port_zero_binds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_invalid_arguments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_port_in_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_healthz_ok_after_beat, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_healthz_ok_at_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_healthz_stale_beat, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_healthz_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readyz_every_combination, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readyz_not_ready_at_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_content_and_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_equals_render, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_string_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit_per_address,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_loopback, setup, teardown),
        cmocka_unit_test(test_null_handle_safe),
    };

    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
