/* Unit tests of the metrics module: the rendered Prometheus text format,
 * counters, histograms, gauges, the consumer lag table, label escaping,
 * and rendering while another thread updates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

/* ---- helpers ---- */

/* Returns the metrics_render output; the caller frees it. */
static char *render(struct metrics *metrics)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    assert_non_null(out);
    metrics_render(metrics, out);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* Copies into value the value of the sample line that starts with series
 * (a name with its labels) followed by a space. Returns false when no
 * line has that series. */
static bool find_sample(const char *text, const char *series, char *value,
                        size_t value_size)
{
    size_t len = strlen(series);

    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t line_len = end ? (size_t)(end - line) : strlen(line);

        if (line_len > len && strncmp(line, series, len) == 0 &&
            line[len] == ' ') {
            snprintf(value, value_size, "%.*s", (int)(line_len - len - 1),
                     line + len + 1);
            return true;
        }
        line += line_len + (end ? 1 : 0);
    }
    return false;
}

/* Fails the test unless series renders with exactly the value expected. */
static void check_sample(const char *text, const char *series,
                         const char *expected)
{
    char value[64];

    if (!find_sample(text, series, value, sizeof(value)))
        fail_msg("no sample %s in:\n%s", series, text);
    if (strcmp(value, expected) != 0)
        fail_msg("%s is %s, expected %s", series, value, expected);
}

static void check_no_sample(const char *text, const char *series)
{
    char value[64];

    if (find_sample(text, series, value, sizeof(value)))
        fail_msg("unexpected sample %s %s", series, value);
}

static int setup(void **state)
{
    *state = metrics_new();
    return 0;
}

static int teardown(void **state)
{
    metrics_destroy(*state);
    return 0;
}

/* ---- the format ---- */

static const struct {
    const char *name;
    const char *type;
} families[] = {
    {"chatt2me_requests_consumed_total", "counter"},
    {"chatt2me_results_total", "counter"},
    {"chatt2me_http_responses_total", "counter"},
    {"chatt2me_http_request_duration_seconds", "histogram"},
    {"chatt2me_request_duration_seconds", "histogram"},
    {"chatt2me_retries_total", "counter"},
    {"chatt2me_commit_failures_total", "counter"},
    {"chatt2me_produce_failures_total", "counter"},
    {"chatt2me_requests_in_flight", "gauge"},
    {"chatt2me_requests_buffered", "gauge"},
    {"chatt2me_partitions_paused", "gauge"},
    {"chatt2me_outage_mode", "gauge"},
    {"chatt2me_auth_paused", "gauge"},
    {"chatt2me_consumer_lag", "gauge"},
    {"process_start_time_seconds", "gauge"},
    {"chatt2me_build_info", "gauge"},
};

#define FAMILY_COUNT (sizeof(families) / sizeof(families[0]))

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t count = 0;

    for (const char *p = strstr(text, needle); p != NULL;
         p = strstr(p + 1, needle))
        count++;
    return count;
}

static void test_render_every_family(void **state)
{
    char *rendered = render(*state);
    /* A leading newline lets every line be searched as "\n<line>". */
    size_t size = strlen(rendered) + 2;
    char *text = malloc(size);

    assert_non_null(text);
    snprintf(text, size, "\n%s", rendered);
    for (size_t i = 0; i < FAMILY_COUNT; i++) {
        char help[128];
        char type[128];

        snprintf(help, sizeof(help), "\n# HELP %s ", families[i].name);
        snprintf(type, sizeof(type), "\n# TYPE %s %s\n", families[i].name,
                 families[i].type);
        if (count_occurrences(text, help) != 1)
            fail_msg("HELP of %s appears %zu times", families[i].name,
                     count_occurrences(text, help));
        if (count_occurrences(text, type) != 1)
            fail_msg("TYPE of %s appears %zu times", families[i].name,
                     count_occurrences(text, type));
    }
    assert_int_equal(count_occurrences(text, "# TYPE "), FAMILY_COUNT);
    assert_int_equal(count_occurrences(text, "# HELP "), FAMILY_COUNT);
    free(text);
    free(rendered);
}

static bool is_name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

/* Returns the length of a metric name at p, 0 when there is none. */
static size_t name_length(const char *p)
{
    size_t len = 0;

    while (is_name_char(p[len], len == 0))
        len++;
    return len;
}

/* Checks one sample line: name, optional {label="value",...}, a space
 * and a number. Returns the length of the name. */
static size_t check_sample_line(const char *line)
{
    size_t len = name_length(line);
    const char *p = line + len;
    char *end;

    if (len == 0)
        fail_msg("sample without a name: %s", line);
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t label_len = name_length(p);

            if (label_len == 0 || p[label_len] != '=' ||
                p[label_len + 1] != '"')
                fail_msg("malformed label in: %s", line);
            p += label_len + 2;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    fail_msg("unterminated label value in: %s", line);
                if (*p == '\\' && !(p[1] == '\\' || p[1] == '"' ||
                                    p[1] == 'n'))
                    fail_msg("invalid escape in: %s", line);
                p += *p == '\\' ? 2 : 1;
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                fail_msg("malformed label list in: %s", line);
        }
        p++;
    }
    if (*p != ' ')
        fail_msg("no space before the value in: %s", line);
    strtod(p + 1, &end);
    if (end == p + 1 || *end != '\0')
        fail_msg("the value is not a number in: %s", line);
    return len;
}

/* Every line is a HELP, a TYPE or a sample of the family declared by
 * the last TYPE line, with _bucket, _sum and _count for histograms. */
static void test_render_line_syntax(void **state)
{
    struct metrics *metrics = *state;
    const int32_t partitions[] = {0, 1};
    const int64_t lags[] = {4, 7};
    char family[128] = "";
    char type[32] = "";
    char *text;
    char *saveptr = NULL;
    size_t lines = 0;

    metrics_result(metrics, METRICS_STATUS_FAILED, "timeout");
    metrics_http_response(metrics, REQUEST_CHANNEL_NONE, 0, true, 0.5);
    metrics_set_lag(metrics, "chatt2me.requests", partitions, lags, 2);
    text = render(metrics);
    assert_true(strlen(text) > 0);
    assert_int_equal(text[strlen(text) - 1], '\n');

    for (char *line = strtok_r(text, "\n", &saveptr); line != NULL;
         line = strtok_r(NULL, "\n", &saveptr)) {
        size_t len;
        size_t family_len = strlen(family);

        lines++;
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_true(name_length(line + 7) > 0);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(
                sscanf(line, "# TYPE %127s %31s", family, type), 2);
            continue;
        }
        len = check_sample_line(line);
        if (len == family_len && strncmp(line, family, len) == 0)
            continue;
        if (strcmp(type, "histogram") == 0 && len > family_len &&
            strncmp(line, family, family_len) == 0 &&
            (strncmp(line + family_len, "_bucket", len - family_len) == 0 ||
             strncmp(line + family_len, "_sum", len - family_len) == 0 ||
             strncmp(line + family_len, "_count", len - family_len) == 0))
            continue;
        fail_msg("sample outside its family %s: %s", family, line);
    }
    assert_true(lines > 2 * FAMILY_COUNT);
    free(text);
}

/* ---- counters ---- */

static void test_render_starts_at_zero(void **state)
{
    static const char *const zero_series[] = {
        "chatt2me_requests_consumed_total",
        "chatt2me_results_total{status=\"sent\",class=\"none\"}",
        "chatt2me_results_total{status=\"rejected\",class=\"invalid_request\"}",
        "chatt2me_results_total{status=\"failed\",class=\"bad_request\"}",
        "chatt2me_results_total{status=\"failed\",class=\"not_found\"}",
        "chatt2me_results_total{status=\"failed\",class=\"client_error\"}",
        "chatt2me_results_total{status=\"failed\",class=\"send_error\"}",
        "chatt2me_results_total{status=\"failed\",class=\"unexpected_status\"}",
        "chatt2me_results_total{status=\"failed\",class=\"exhausted\"}",
        "chatt2me_results_total{status=\"failed\",class=\"unknown_outcome\"}",
        "chatt2me_results_total{status=\"dead_letter\",class=\"auth\"}",
        "chatt2me_http_request_duration_seconds_count",
        "chatt2me_request_duration_seconds_count",
        "chatt2me_retries_total",
        "chatt2me_commit_failures_total",
        "chatt2me_produce_failures_total",
        "chatt2me_requests_in_flight",
        "chatt2me_requests_buffered",
        "chatt2me_partitions_paused",
        "chatt2me_outage_mode",
        "chatt2me_auth_paused",
    };
    static const char *const channels[] = {
        "whatsapp", "instagram", "messenger", "telegram", "sms",
        "web-chatt2me",
    };
    static const char *const codes[] = {"2xx", "4xx", "5xx", "other",
                                        "transport_error"};
    char *text = render(*state);

    for (size_t i = 0; i < sizeof(zero_series) / sizeof(zero_series[0]); i++)
        check_sample(text, zero_series[i], "0");
    for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++) {
        for (size_t j = 0; j < sizeof(codes) / sizeof(codes[0]); j++) {
            char series[160];

            snprintf(series, sizeof(series),
                     "chatt2me_http_responses_total{channel=\"%s\","
                     "code=\"%s\"}",
                     channels[i], codes[j]);
            check_sample(text, series, "0");
        }
    }
    check_sample(text, "chatt2me_http_request_duration_seconds_sum",
                 "0.000000");
    /* Series that only appear once counted. */
    assert_null(strstr(text, "channel=\"none\""));
    assert_null(strstr(text, "class=\"other\""));
    assert_null(strstr(text, "chatt2me_consumer_lag{"));
    free(text);
}

static void test_counters_move(void **state)
{
    struct metrics *metrics = *state;
    char *text;

    for (int i = 0; i < 3; i++)
        metrics_consumed(metrics);
    metrics_retry(metrics);
    metrics_retry(metrics);
    metrics_commit_failure(metrics);
    for (int i = 0; i < 4; i++)
        metrics_produce_failure(metrics);

    text = render(metrics);
    check_sample(text, "chatt2me_requests_consumed_total", "3");
    check_sample(text, "chatt2me_retries_total", "2");
    check_sample(text, "chatt2me_commit_failures_total", "1");
    check_sample(text, "chatt2me_produce_failures_total", "4");
    free(text);
}

static void test_results_by_class(void **state)
{
    struct metrics *metrics = *state;
    char *text;

    metrics_result(metrics, METRICS_STATUS_SENT, NULL);
    metrics_result(metrics, METRICS_STATUS_SENT, NULL);
    metrics_result(metrics, METRICS_STATUS_FAILED, "bad_request");
    metrics_result(metrics, METRICS_STATUS_FAILED, "exhausted");
    metrics_result(metrics, METRICS_STATUS_FAILED, "unknown_outcome");
    metrics_result(metrics, METRICS_STATUS_REJECTED, "invalid_request");
    metrics_result(metrics, METRICS_STATUS_DEAD_LETTER, "auth");
    /* Classes outside the known list must not create new series. */
    metrics_result(metrics, METRICS_STATUS_FAILED, "timeout");
    metrics_result(metrics, METRICS_STATUS_FAILED, "a\"b\nc");
    metrics_result(metrics, METRICS_STATUS_FAILED, "");
    /* A status outside the enum is ignored. */
    metrics_result(metrics, METRICS_STATUS_COUNT, NULL);

    text = render(metrics);
    check_sample(text, "chatt2me_results_total{status=\"sent\",class=\"none\"}",
                 "2");
    check_sample(text,
                 "chatt2me_results_total{status=\"failed\","
                 "class=\"bad_request\"}",
                 "1");
    check_sample(text,
                 "chatt2me_results_total{status=\"failed\","
                 "class=\"exhausted\"}",
                 "1");
    check_sample(text,
                 "chatt2me_results_total{status=\"failed\","
                 "class=\"unknown_outcome\"}",
                 "1");
    check_sample(text,
                 "chatt2me_results_total{status=\"rejected\","
                 "class=\"invalid_request\"}",
                 "1");
    check_sample(text,
                 "chatt2me_results_total{status=\"dead_letter\","
                 "class=\"auth\"}",
                 "1");
    check_sample(text,
                 "chatt2me_results_total{status=\"failed\",class=\"other\"}",
                 "3");
    check_sample(text,
                 "chatt2me_results_total{status=\"failed\","
                 "class=\"not_found\"}",
                 "0");
    assert_null(strstr(text, "timeout"));
    assert_int_equal(count_occurrences(text, "class=\"other\""), 1);
    free(text);
}

static void test_http_responses_by_code(void **state)
{
    static const struct {
        long status;
        bool transport_error;
        const char *code;
    } cases[] = {
        {200, false, "2xx"},          {204, false, "2xx"},
        {299, false, "2xx"},          {100, false, "other"},
        {302, false, "other"},        {399, false, "other"},
        {400, false, "4xx"},          {401, false, "4xx"},
        {499, false, "4xx"},          {500, false, "5xx"},
        {599, false, "5xx"},          {600, false, "other"},
        {0, false, "other"},          {0, true, "transport_error"},
        {503, true, "transport_error"},
    };
    struct metrics *metrics = *state;
    char *text;

    /* Each case is checked alone: its own series moves by one. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char series[160];
        char before[64];
        char after[64];

        snprintf(series, sizeof(series),
                 "chatt2me_http_responses_total{channel=\"sms\",code=\"%s\"}",
                 cases[i].code);
        text = render(metrics);
        assert_true(find_sample(text, series, before, sizeof(before)));
        free(text);
        metrics_http_response(metrics, REQUEST_CHANNEL_SMS, cases[i].status,
                              cases[i].transport_error, 0.01);
        text = render(metrics);
        assert_true(find_sample(text, series, after, sizeof(after)));
        free(text);
        if (strtoull(after, NULL, 10) != strtoull(before, NULL, 10) + 1)
            fail_msg("case %zu: HTTP %ld did not count in %s", i,
                     cases[i].status, series);
    }

    text = render(metrics);
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"sms\",code=\"2xx\"}",
                 "3");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"sms\","
                 "code=\"other\"}",
                 "5");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"sms\",code=\"4xx\"}",
                 "3");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"sms\",code=\"5xx\"}",
                 "2");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"sms\","
                 "code=\"transport_error\"}",
                 "2");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"whatsapp\","
                 "code=\"2xx\"}",
                 "0");
    check_sample(text, "chatt2me_http_request_duration_seconds_count", "15");
    free(text);
}

static void test_http_responses_by_channel(void **state)
{
    struct metrics *metrics = *state;
    char *text;

    metrics_http_response(metrics, REQUEST_CHANNEL_WHATSAPP, 200, false, 0.1);
    metrics_http_response(metrics, REQUEST_CHANNEL_WEB_CHATT, 404, false, 0.1);
    metrics_http_response(metrics, REQUEST_CHANNEL_NONE, 0, true, 0.1);
    metrics_http_response(metrics, (enum request_channel)42, 200, false, 0.1);

    text = render(metrics);
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"whatsapp\","
                 "code=\"2xx\"}",
                 "1");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"web-chatt2me\","
                 "code=\"4xx\"}",
                 "1");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"none\","
                 "code=\"transport_error\"}",
                 "1");
    check_sample(text,
                 "chatt2me_http_responses_total{channel=\"none\","
                 "code=\"2xx\"}",
                 "1");
    /* Only the counted "none" series appear. */
    check_no_sample(text, "chatt2me_http_responses_total{channel=\"none\","
                          "code=\"5xx\"}");
    free(text);
}

/* ---- histograms ---- */

static const char *const http_bounds[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1",     "2.5",  "5",     "10",   "30",  "+Inf",
};

/* Reads the buckets of name in order and checks that they never
 * decrease; stores their values in counts. */
static void read_buckets(const char *text, const char *name,
                         const char *const *bounds, size_t bound_count,
                         uint64_t *counts)
{
    for (size_t i = 0; i < bound_count; i++) {
        char series[160];
        char value[64];

        snprintf(series, sizeof(series), "%s_bucket{le=\"%s\"}", name,
                 bounds[i]);
        if (!find_sample(text, series, value, sizeof(value)))
            fail_msg("no bucket %s", series);
        counts[i] = strtoull(value, NULL, 10);
        if (i > 0 && counts[i] < counts[i - 1])
            fail_msg("bucket %s (%" PRIu64 ") is below the one before "
                     "(%" PRIu64 ")",
                     series, counts[i], counts[i - 1]);
    }
}

static void test_histogram_cumulative(void **state)
{
    const char *name = "chatt2me_http_request_duration_seconds";
    /* Bounds are inclusive, so 0.005 counts in le="0.005". A negative or
     * NaN duration counts as 0, and 31 only in +Inf. */
    const double observations[] = {0.001, 0.005, 0.0051, 0.3, 31, -1, NAN};
    const uint64_t expected[] = {4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7};
    struct metrics *metrics = *state;
    uint64_t counts[13];
    char *text;

    for (size_t i = 0; i < sizeof(observations) / sizeof(observations[0]);
         i++)
        metrics_http_response(metrics, REQUEST_CHANNEL_SMS, 200, false,
                              observations[i]);
    text = render(metrics);
    read_buckets(text, name, http_bounds, 13, counts);
    for (size_t i = 0; i < 13; i++) {
        if (counts[i] != expected[i])
            fail_msg("bucket le=\"%s\" is %" PRIu64 ", expected %" PRIu64,
                     http_bounds[i], counts[i], expected[i]);
    }
    check_sample(text, "chatt2me_http_request_duration_seconds_count", "7");
    /* 0.001 + 0.005 + 0.0051 + 0.3 + 31 */
    check_sample(text, "chatt2me_http_request_duration_seconds_sum",
                 "31.311100");
    free(text);
}

static void test_request_duration_buckets(void **state)
{
    static const char *const bounds[] = {
        "0.05", "0.1", "0.25", "0.5", "1",   "2.5",  "5",
        "10",   "30",  "60",   "120", "300", "+Inf",
    };
    const char *name = "chatt2me_request_duration_seconds";
    struct metrics *metrics = *state;
    uint64_t counts[13];
    char *text;

    metrics_request_duration(metrics, 0.02);
    metrics_request_duration(metrics, 45);
    metrics_request_duration(metrics, 300);
    metrics_request_duration(metrics, 301);
    metrics_request_duration(metrics, 1e12);
    text = render(metrics);
    read_buckets(text, name, bounds, 13, counts);
    assert_int_equal(counts[0], 1);   /* le=0.05 */
    assert_int_equal(counts[8], 1);   /* le=30 */
    assert_int_equal(counts[9], 2);   /* le=60 */
    assert_int_equal(counts[11], 3);  /* le=300 */
    assert_int_equal(counts[12], 5);  /* +Inf */
    check_sample(text, "chatt2me_request_duration_seconds_count", "5");
    /* One observation is capped at 1e9 s. */
    check_sample(text, "chatt2me_request_duration_seconds_sum",
                 "1000000646.020000");
    /* The other histogram is untouched. */
    check_sample(text, "chatt2me_http_request_duration_seconds_count", "0");
    free(text);
}

/* ---- gauges and the lag table ---- */

static void test_gauges_set(void **state)
{
    struct metrics *metrics = *state;
    char *text;

    metrics_set_in_flight(metrics, 7);
    metrics_set_buffered(metrics, 12);
    metrics_set_paused_partitions(metrics, 2);
    metrics_set_outage(metrics, true);
    metrics_set_auth_paused(metrics, true);
    text = render(metrics);
    check_sample(text, "chatt2me_requests_in_flight", "7");
    check_sample(text, "chatt2me_requests_buffered", "12");
    check_sample(text, "chatt2me_partitions_paused", "2");
    check_sample(text, "chatt2me_outage_mode", "1");
    check_sample(text, "chatt2me_auth_paused", "1");
    free(text);

    metrics_set_in_flight(metrics, 0);
    metrics_set_buffered(metrics, 3);
    metrics_set_paused_partitions(metrics, 0);
    metrics_set_outage(metrics, false);
    metrics_set_auth_paused(metrics, false);
    text = render(metrics);
    check_sample(text, "chatt2me_requests_in_flight", "0");
    check_sample(text, "chatt2me_requests_buffered", "3");
    check_sample(text, "chatt2me_partitions_paused", "0");
    check_sample(text, "chatt2me_outage_mode", "0");
    check_sample(text, "chatt2me_auth_paused", "0");
    free(text);
}

static void test_lag_table_replaced(void **state)
{
    struct metrics *metrics = *state;
    const int32_t first_partitions[] = {0, 1, 2};
    const int64_t first_lags[] = {5, -1, 0};
    int32_t second_partitions[] = {3};
    int64_t second_lags[] = {9};
    char *text;

    metrics_set_lag(metrics, "requests", first_partitions, first_lags, 3);
    text = render(metrics);
    check_sample(text,
                 "chatt2me_consumer_lag{topic=\"requests\",partition=\"0\"}",
                 "5");
    check_sample(text,
                 "chatt2me_consumer_lag{topic=\"requests\",partition=\"2\"}",
                 "0");
    /* Unknown lag is omitted. */
    check_no_sample(
        text, "chatt2me_consumer_lag{topic=\"requests\",partition=\"1\"}");
    free(text);

    /* The arrays are copied: changing them afterwards changes nothing. */
    metrics_set_lag(metrics, "other", second_partitions, second_lags, 1);
    second_lags[0] = 1000;
    text = render(metrics);
    check_sample(text,
                 "chatt2me_consumer_lag{topic=\"other\",partition=\"3\"}",
                 "9");
    assert_int_equal(count_occurrences(text, "chatt2me_consumer_lag{"), 1);
    free(text);

    metrics_set_lag(metrics, NULL, NULL, NULL, 0);
    text = render(metrics);
    assert_null(strstr(text, "chatt2me_consumer_lag{"));
    assert_non_null(strstr(text, "# TYPE chatt2me_consumer_lag gauge\n"));
    free(text);
}

static void test_lag_label_escaped(void **state)
{
    struct metrics *metrics = *state;
    const int32_t partitions[] = {0};
    const int64_t lags[] = {1};
    char *text;

    metrics_set_lag(metrics, "a\"b\\c\nd", partitions, lags, 1);
    text = render(metrics);
    check_sample(text,
                 "chatt2me_consumer_lag{topic=\"a\\\"b\\\\c\\nd\","
                 "partition=\"0\"}",
                 "1");
    free(text);
}

static void test_process_and_build_info(void **state)
{
    int64_t before_ms = util_now_wall_ms();
    struct metrics *metrics = metrics_new();
    int64_t after_ms = util_now_wall_ms();
    char *text = render(metrics);
    char value[64];
    double start;

    (void)state;
    check_sample(text, "chatt2me_build_info{version=\"" C2M_VERSION "\"}",
                 "1");
    assert_true(find_sample(text, "process_start_time_seconds", value,
                            sizeof(value)));
    start = strtod(value, NULL);
    assert_true(start * 1000 >= (double)before_ms - 1);
    assert_true(start * 1000 <= (double)after_ms + 1);
    free(text);
    metrics_destroy(metrics);
}

static void test_destroy_null(void **state)
{
    (void)state;
    metrics_destroy(NULL);
}

/* ---- concurrency ---- */

#define WRITER_ROUNDS 200000

static void *write_metrics(void *opaque)
{
    struct metrics *metrics = opaque;
    const int32_t partitions[] = {0, 1};

    for (int64_t i = 0; i < WRITER_ROUNDS; i++) {
        const int64_t lags[] = {i, i + 1};

        metrics_consumed(metrics);
        metrics_http_response(metrics, REQUEST_CHANNEL_TELEGRAM, 200, false,
                              (double)(i % 40));
        metrics_set_in_flight(metrics, (size_t)(i % 100));
        if (i % 1000 == 0)
            metrics_set_lag(metrics, "requests", partitions, lags, 2);
    }
    return NULL;
}

/* While one thread updates, every render keeps the +Inf bucket equal to
 * _count and counters that never go down. */
static void test_render_while_updating(void **state)
{
    struct metrics *metrics = *state;
    pthread_t writer;
    uint64_t last_consumed = 0;
    uint64_t last_count = 0;
    char value[64];
    char *text;
    int renders = 0;

    assert_int_equal(pthread_create(&writer, NULL, write_metrics, metrics), 0);
    for (;;) {
        uint64_t consumed;
        uint64_t count;
        char inf[64];

        text = render(metrics);
        assert_true(find_sample(text, "chatt2me_requests_consumed_total",
                                value, sizeof(value)));
        consumed = strtoull(value, NULL, 10);
        assert_true(find_sample(text,
                                "chatt2me_http_request_duration_seconds_count",
                                value, sizeof(value)));
        count = strtoull(value, NULL, 10);
        assert_true(find_sample(text,
                                "chatt2me_http_request_duration_seconds_"
                                "bucket{le=\"+Inf\"}",
                                inf, sizeof(inf)));
        assert_string_equal(inf, value);
        assert_true(consumed >= last_consumed);
        assert_true(count >= last_count);
        last_consumed = consumed;
        last_count = count;
        free(text);
        renders++;
        if (consumed == WRITER_ROUNDS && count == WRITER_ROUNDS)
            break;
        /* The writer ends after WRITER_ROUNDS updates, so this loop ends
         * too; the bound only guards against a counter that stops. */
        if (renders > 1000000)
            fail_msg("the counters stopped at %" PRIu64 " and %" PRIu64,
                     consumed, count);
    }
    assert_int_equal(pthread_join(writer, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_render_every_family, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_render_line_syntax, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_render_starts_at_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_counters_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_by_class, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_responses_by_code, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_responses_by_channel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_histogram_cumulative, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_duration_buckets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gauges_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lag_table_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lag_label_escaped, setup,
                                        teardown),
        cmocka_unit_test(test_process_and_build_info),
        cmocka_unit_test(test_destroy_null),
        cmocka_unit_test_setup_teardown(test_render_while_updating, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
