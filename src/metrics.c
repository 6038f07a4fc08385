/* Metrics in the Prometheus text exposition format 0.0.4.
 *
 * The event loop thread updates the values and the health server thread
 * renders them. Each value is an independent C11 atomic updated with
 * relaxed order: a scrape may see one counter a moment before another,
 * which Prometheus tolerates, and no value is ever torn. Only the consumer
 * lag table, replaced as a whole, is behind a mutex. */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Values of the "class" label of chatt2me_results_total. "none" is the
 * class of a sent result, and "other" collects classes outside this
 * list so that an unexpected string cannot create new series. */
enum result_class {
    CLASS_NONE = 0,
    CLASS_INVALID_REQUEST,
    CLASS_BAD_REQUEST,
    CLASS_NOT_FOUND,
    CLASS_CLIENT_ERROR,
    CLASS_SEND_ERROR,
    CLASS_UNEXPECTED_STATUS,
    CLASS_EXHAUSTED,
    CLASS_UNKNOWN_OUTCOME,
    CLASS_AUTH,
    CLASS_OTHER,
    CLASS_COUNT,
};

static const char *const class_names[CLASS_COUNT] = {
    [CLASS_NONE] = "none",
    [CLASS_INVALID_REQUEST] = "invalid_request",
    [CLASS_BAD_REQUEST] = "bad_request",
    [CLASS_NOT_FOUND] = "not_found",
    [CLASS_CLIENT_ERROR] = "client_error",
    [CLASS_SEND_ERROR] = "send_error",
    [CLASS_UNEXPECTED_STATUS] = "unexpected_status",
    [CLASS_EXHAUSTED] = "exhausted",
    [CLASS_UNKNOWN_OUTCOME] = "unknown_outcome",
    [CLASS_AUTH] = "auth",
    [CLASS_OTHER] = "other",
};

static const char *const status_names[METRICS_STATUS_COUNT] = {
    [METRICS_STATUS_SENT] = "sent",
    [METRICS_STATUS_FAILED] = "failed",
    [METRICS_STATUS_REJECTED] = "rejected",
    [METRICS_STATUS_DEAD_LETTER] = "dead_letter",
};

/* The outcomes the worker produces, rendered as 0 before their first
 * event so that rate() and alerts see the series from the start. Other
 * combinations appear once they are counted. */
static const struct {
    enum metrics_status status;
    enum result_class class;
} declared_results[] = {
    {METRICS_STATUS_SENT, CLASS_NONE},
    {METRICS_STATUS_REJECTED, CLASS_INVALID_REQUEST},
    {METRICS_STATUS_FAILED, CLASS_BAD_REQUEST},
    {METRICS_STATUS_FAILED, CLASS_NOT_FOUND},
    {METRICS_STATUS_FAILED, CLASS_CLIENT_ERROR},
    {METRICS_STATUS_FAILED, CLASS_SEND_ERROR},
    {METRICS_STATUS_FAILED, CLASS_UNEXPECTED_STATUS},
    {METRICS_STATUS_FAILED, CLASS_EXHAUSTED},
    {METRICS_STATUS_FAILED, CLASS_UNKNOWN_OUTCOME},
    {METRICS_STATUS_DEAD_LETTER, CLASS_AUTH},
};

static const char *const http_class_names[METRICS_HTTP_CLASS_COUNT] = {
    [METRICS_HTTP_2XX] = "2xx",
    [METRICS_HTTP_4XX] = "4xx",
    [METRICS_HTTP_5XX] = "5xx",
    [METRICS_HTTP_OTHER] = "other",
    [METRICS_HTTP_TRANSPORT] = "transport_error",
};

/* One slot per channel plus a last one for REQUEST_CHANNEL_NONE, which
 * renders as channel="none" and only once it is counted. */
#define CHANNEL_SLOT_NONE REQUEST_CHANNEL_COUNT
#define CHANNEL_SLOTS (REQUEST_CHANNEL_COUNT + 1)

/* An upper bucket bound, with its label text written out so that the
 * rendering never depends on the C locale's decimal separator. */
struct bucket_bound {
    double seconds;
    const char *text;
};

/* An HTTP attempt is bounded by api.request_timeout_ms (default 30 s). */
static const struct bucket_bound http_bounds[] = {
    {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"},
    {0.1, "0.1"},     {0.25, "0.25"}, {0.5, "0.5"},     {1, "1"},
    {2.5, "2.5"},     {5, "5"},       {10, "10"},       {30, "30"},
};

/* A request's life includes its retries, which stop starting after
 * retry.max_total_ms (default 300 s). */
static const struct bucket_bound request_bounds[] = {
    {0.05, "0.05"}, {0.1, "0.1"}, {0.25, "0.25"}, {0.5, "0.5"},
    {1, "1"},       {2.5, "2.5"}, {5, "5"},       {10, "10"},
    {30, "30"},     {60, "60"},   {120, "120"},   {300, "300"},
};

#define HISTOGRAM_MAX_BOUNDS 16

/* Bucket counts are stored per bucket, not cumulated: the renderer adds
 * them up, so the +Inf bucket and _count come from the same reads and
 * always agree within one scrape. */
struct histogram {
    const struct bucket_bound *bounds;
    size_t bound_count;
    _Atomic uint64_t buckets[HISTOGRAM_MAX_BOUNDS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_us;
};

/* A duration sum in microseconds fits 64 bits for 584,000 years of
 * observations. One observation is capped so that a wrong clock reading
 * cannot overflow the sum. */
#define OBSERVATION_MAX_SECONDS 1e9

struct lag_entry {
    int32_t partition;
    int64_t lag;
};

struct metrics {
    _Atomic uint64_t consumed;
    _Atomic uint64_t results[METRICS_STATUS_COUNT][CLASS_COUNT];
    _Atomic uint64_t http_responses[CHANNEL_SLOTS][METRICS_HTTP_CLASS_COUNT];
    struct histogram http_duration;
    struct histogram request_duration;
    _Atomic uint64_t retries;
    _Atomic uint64_t commit_failures;
    _Atomic uint64_t produce_failures;

    _Atomic uint64_t in_flight;
    _Atomic uint64_t buffered;
    _Atomic uint64_t paused_partitions;
    atomic_bool outage;
    atomic_bool auth_paused;

    int64_t start_wall_ms;

    pthread_mutex_t lag_lock;
    char *lag_topic;                /* NULL while the table is empty */
    struct lag_entry *lag_entries;
    size_t lag_count;
};

static void counter_add(_Atomic uint64_t *counter, uint64_t value)
{
    atomic_fetch_add_explicit(counter, value, memory_order_relaxed);
}

static uint64_t counter_read(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

static void gauge_set(_Atomic uint64_t *gauge, uint64_t value)
{
    atomic_store_explicit(gauge, value, memory_order_relaxed);
}

static void histogram_init(struct histogram *h,
                           const struct bucket_bound *bounds,
                           size_t bound_count)
{
    h->bounds = bounds;
    h->bound_count = bound_count;
    for (size_t i = 0; i <= HISTOGRAM_MAX_BOUNDS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_us, 0);
}

/* Counts seconds in the first bucket whose bound is at least seconds, as
 * Prometheus bounds are inclusive ("le"). A negative or NaN duration,
 * which only a clock error can produce, counts as 0. */
static void histogram_observe(struct histogram *h, double seconds)
{
    size_t i = 0;

    if (!(seconds >= 0))
        seconds = 0;
    if (seconds > OBSERVATION_MAX_SECONDS)
        seconds = OBSERVATION_MAX_SECONDS;
    while (i < h->bound_count && seconds > h->bounds[i].seconds)
        i++;
    counter_add(&h->buckets[i], 1);
    counter_add(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

struct metrics *metrics_new(void)
{
    struct metrics *metrics = xcalloc(1, sizeof(*metrics));
    int err;

    /* xcalloc zeroes every atomic. On the platforms C2M builds for (Linux
     * with GCC or Clang), an all-zero atomic integer is a valid 0. */
    histogram_init(&metrics->http_duration, http_bounds,
                   sizeof(http_bounds) / sizeof(http_bounds[0]));
    histogram_init(&metrics->request_duration, request_bounds,
                   sizeof(request_bounds) / sizeof(request_bounds[0]));
    /* NOTE: process_start_time_seconds is the time of this call, which
     * is close to the process start only if main creates the metrics
     * first. */
    metrics->start_wall_ms = util_now_wall_ms();
    err = pthread_mutex_init(&metrics->lag_lock, NULL);
    if (err != 0) {
        /* Only possible when out of memory, handled as xmalloc does. */
        fprintf(stderr, "fatal: cannot create the metrics mutex: %s\n",
                strerror(err));
        abort();
    }
    return metrics;
}

void metrics_destroy(struct metrics *metrics)
{
    if (metrics == NULL)
        return;
    pthread_mutex_destroy(&metrics->lag_lock);
    free(metrics->lag_topic);
    free(metrics->lag_entries);
    free(metrics);
}

void metrics_consumed(struct metrics *metrics)
{
    counter_add(&metrics->consumed, 1);
}

static enum result_class class_from_name(const char *error_class)
{
    if (error_class == NULL)
        return CLASS_NONE;
    for (int i = CLASS_INVALID_REQUEST; i < CLASS_OTHER; i++) {
        if (strcmp(error_class, class_names[i]) == 0)
            return (enum result_class)i;
    }
    return CLASS_OTHER;
}

void metrics_result(struct metrics *metrics, enum metrics_status status,
                    const char *error_class)
{
    if ((int)status < 0 || status >= METRICS_STATUS_COUNT)
        return;
    counter_add(&metrics->results[status][class_from_name(error_class)], 1);
}

static enum metrics_http_class http_class_of(long http_status,
                                             bool transport_error)
{
    if (transport_error)
        return METRICS_HTTP_TRANSPORT;
    if (http_status >= 200 && http_status <= 299)
        return METRICS_HTTP_2XX;
    if (http_status >= 400 && http_status <= 499)
        return METRICS_HTTP_4XX;
    if (http_status >= 500 && http_status <= 599)
        return METRICS_HTTP_5XX;
    return METRICS_HTTP_OTHER;
}

void metrics_http_response(struct metrics *metrics,
                           enum request_channel channel, long http_status,
                           bool transport_error, double seconds)
{
    size_t slot = CHANNEL_SLOT_NONE;

    if ((int)channel >= 0 && channel < REQUEST_CHANNEL_COUNT)
        slot = (size_t)channel;
    counter_add(
        &metrics->http_responses[slot]
                                [http_class_of(http_status, transport_error)],
        1);
    histogram_observe(&metrics->http_duration, seconds);
}

void metrics_request_duration(struct metrics *metrics, double seconds)
{
    histogram_observe(&metrics->request_duration, seconds);
}

void metrics_retry(struct metrics *metrics)
{
    counter_add(&metrics->retries, 1);
}

void metrics_commit_failure(struct metrics *metrics)
{
    counter_add(&metrics->commit_failures, 1);
}

void metrics_produce_failure(struct metrics *metrics)
{
    counter_add(&metrics->produce_failures, 1);
}

void metrics_set_in_flight(struct metrics *metrics, size_t count)
{
    gauge_set(&metrics->in_flight, count);
}

void metrics_set_buffered(struct metrics *metrics, size_t count)
{
    gauge_set(&metrics->buffered, count);
}

void metrics_set_paused_partitions(struct metrics *metrics, size_t count)
{
    gauge_set(&metrics->paused_partitions, count);
}

void metrics_set_outage(struct metrics *metrics, bool active)
{
    atomic_store_explicit(&metrics->outage, active, memory_order_relaxed);
}

void metrics_set_auth_paused(struct metrics *metrics, bool active)
{
    atomic_store_explicit(&metrics->auth_paused, active, memory_order_relaxed);
}

void metrics_set_lag(struct metrics *metrics, const char *topic,
                     const int32_t *partitions, const int64_t *lags,
                     size_t count)
{
    char *new_topic = NULL;
    struct lag_entry *new_entries = NULL;
    char *old_topic;
    struct lag_entry *old_entries;

    /* Copies are made, and the old table freed, outside the lock, so the
     * loop holds it only for the pointer swap. */
    if (count > 0) {
        new_topic = xstrdup(topic != NULL ? topic : "");
        new_entries = xmalloc(count * sizeof(*new_entries));
        for (size_t i = 0; i < count; i++) {
            new_entries[i].partition = partitions[i];
            new_entries[i].lag = lags[i];
        }
    }

    pthread_mutex_lock(&metrics->lag_lock);
    old_topic = metrics->lag_topic;
    old_entries = metrics->lag_entries;
    metrics->lag_topic = new_topic;
    metrics->lag_entries = new_entries;
    metrics->lag_count = count;
    pthread_mutex_unlock(&metrics->lag_lock);

    free(old_topic);
    free(old_entries);
}

/* ---- rendering ---- */

static void write_header(FILE *out, const char *name, const char *type,
                         const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes a label value with the escapes of the text format: backslash,
 * double quote and line feed. */
static void write_label_value(FILE *out, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '"')
            fputs("\\\"", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

/* Writes microseconds as decimal seconds, without floating point. */
static void write_seconds(FILE *out, uint64_t us)
{
    fprintf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void write_counter(FILE *out, const char *name, const char *help,
                          _Atomic uint64_t *counter)
{
    write_header(out, name, "counter", help);
    fprintf(out, "%s %" PRIu64 "\n", name, counter_read(counter));
}

static void write_gauge(FILE *out, const char *name, const char *help,
                        uint64_t value)
{
    write_header(out, name, "gauge", help);
    fprintf(out, "%s %" PRIu64 "\n", name, value);
}

static void write_histogram(FILE *out, const char *name, const char *help,
                            struct histogram *h)
{
    uint64_t cumulative = 0;

    write_header(out, name, "histogram", help);
    for (size_t i = 0; i < h->bound_count; i++) {
        cumulative += counter_read(&h->buckets[i]);
        fprintf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                h->bounds[i].text, cumulative);
    }
    cumulative += counter_read(&h->buckets[h->bound_count]);
    fprintf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    fprintf(out, "%s_sum ", name);
    write_seconds(out, counter_read(&h->sum_us));
    fprintf(out, "\n%s_count %" PRIu64 "\n", name, cumulative);
}

static bool is_declared_result(int status, int class)
{
    for (size_t i = 0;
         i < sizeof(declared_results) / sizeof(declared_results[0]); i++) {
        if ((int)declared_results[i].status == status &&
            (int)declared_results[i].class == class)
            return true;
    }
    return false;
}

static void write_results(FILE *out, struct metrics *metrics)
{
    const char *name = "chatt2me_results_total";

    write_header(out, name, "counter",
                 "Requests that reached a final outcome, by status and "
                 "error class.");
    for (int status = 0; status < METRICS_STATUS_COUNT; status++) {
        for (int class = 0; class < CLASS_COUNT; class++) {
            uint64_t value = counter_read(&metrics->results[status][class]);

            if (value == 0 && !is_declared_result(status, class))
                continue;
            fprintf(out, "%s{status=\"%s\",class=\"%s\"} %" PRIu64 "\n",
                    name, status_names[status], class_names[class], value);
        }
    }
}

static void write_http_responses(FILE *out, struct metrics *metrics)
{
    const char *name = "chatt2me_http_responses_total";

    write_header(out, name, "counter",
                 "HTTP attempts to the Chatt2.me API by channel and "
                 "response status class, or transport_error when no "
                 "response arrived.");
    for (size_t slot = 0; slot < CHANNEL_SLOTS; slot++) {
        const char *channel =
            slot == CHANNEL_SLOT_NONE
                ? "none"
                : request_channel_name((enum request_channel)slot);

        for (int code = 0; code < METRICS_HTTP_CLASS_COUNT; code++) {
            uint64_t value =
                counter_read(&metrics->http_responses[slot][code]);

            if (value == 0 && slot == CHANNEL_SLOT_NONE)
                continue;
            fprintf(out, "%s{channel=\"%s\",code=\"%s\"} %" PRIu64 "\n", name,
                    channel, http_class_names[code], value);
        }
    }
}

static void write_lag(FILE *out, struct metrics *metrics)
{
    const char *name = "chatt2me_consumer_lag";

    write_header(out, name, "gauge",
                 "Consumer lag in records per assigned partition. "
                 "Partitions with unknown lag are omitted.");
    pthread_mutex_lock(&metrics->lag_lock);
    for (size_t i = 0; i < metrics->lag_count; i++) {
        const struct lag_entry *entry = &metrics->lag_entries[i];

        if (entry->lag < 0)
            continue;
        fprintf(out, "%s{topic=\"", name);
        write_label_value(out, metrics->lag_topic);
        fprintf(out, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                entry->partition, entry->lag);
    }
    pthread_mutex_unlock(&metrics->lag_lock);
}

static void write_process_info(FILE *out, struct metrics *metrics)
{
    int64_t start = metrics->start_wall_ms;

    write_header(out, "process_start_time_seconds", "gauge",
                 "Start time of the process since the Unix epoch in "
                 "seconds.");
    fprintf(out, "process_start_time_seconds %" PRId64 ".%03d\n",
            start / 1000, (int)(start % 1000));

    write_header(out, "chatt2me_build_info", "gauge",
                 "Build information of the worker, with the value 1.");
    fputs("chatt2me_build_info{version=\"", out);
    write_label_value(out, C2M_VERSION);
    fputs("\"} 1\n", out);
}

void metrics_render(struct metrics *metrics, FILE *out)
{
    write_counter(out, "chatt2me_requests_consumed_total",
                  "Send request records consumed from Kafka.",
                  &metrics->consumed);
    write_results(out, metrics);
    write_http_responses(out, metrics);
    write_histogram(out, "chatt2me_http_request_duration_seconds",
                    "Duration of one HTTP attempt to the Chatt2.me API in "
                    "seconds.",
                    &metrics->http_duration);
    write_histogram(out, "chatt2me_request_duration_seconds",
                    "Time in seconds from consuming a request to its final "
                    "outcome, retries included.",
                    &metrics->request_duration);
    write_counter(out, "chatt2me_retries_total",
                  "HTTP attempts scheduled again after a retryable failure.",
                  &metrics->retries);
    write_counter(out, "chatt2me_commit_failures_total",
                  "Kafka offset commits that failed.",
                  &metrics->commit_failures);
    write_counter(out, "chatt2me_produce_failures_total",
                  "Result and dead-letter records that could not be "
                  "produced.",
                  &metrics->produce_failures);

    write_gauge(out, "chatt2me_requests_in_flight",
                "HTTP requests to the Chatt2.me API in progress.",
                counter_read(&metrics->in_flight));
    write_gauge(out, "chatt2me_requests_buffered",
                "Consumed requests whose result is not produced yet.",
                counter_read(&metrics->buffered));
    write_gauge(out, "chatt2me_partitions_paused",
                "Assigned partitions whose consumption is paused.",
                counter_read(&metrics->paused_partitions));
    write_gauge(out, "chatt2me_outage_mode",
                "1 while API outage mode is active, else 0.",
                atomic_load_explicit(&metrics->outage, memory_order_relaxed));
    write_gauge(out, "chatt2me_auth_paused",
                "1 while consumption is paused after repeated HTTP 401 "
                "responses, else 0.",
                atomic_load_explicit(&metrics->auth_paused,
                                     memory_order_relaxed));
    write_lag(out, metrics);
    write_process_info(out, metrics);
}
