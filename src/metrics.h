/* Metrics: counters and gauges the event loop updates and the health
 * server renders in the Prometheus text format. Updates come from the
 * loop thread only; rendering may run on another thread, so every value
 * is an atomic and the per-partition table is behind a mutex. */
#ifndef C2M_METRICS_H
#define C2M_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "request.h"

/* Final outcomes, the label "status" of chatt2me_results_total. */
enum metrics_status {
    METRICS_STATUS_SENT = 0,
    METRICS_STATUS_FAILED,
    METRICS_STATUS_REJECTED,
    METRICS_STATUS_DEAD_LETTER,
    METRICS_STATUS_COUNT,
};

/* HTTP responses by class, the label "code" of
 * chatt2me_http_responses_total: "2xx", "4xx", "5xx", "other", or
 * "transport_error" when no response arrived. */
enum metrics_http_class {
    METRICS_HTTP_2XX = 0,
    METRICS_HTTP_4XX,
    METRICS_HTTP_5XX,
    METRICS_HTTP_OTHER,
    METRICS_HTTP_TRANSPORT,
    METRICS_HTTP_CLASS_COUNT,
};

struct metrics;

struct metrics *metrics_new(void);
void metrics_destroy(struct metrics *metrics);

void metrics_consumed(struct metrics *metrics);

/* Counts a final outcome. error_class is NULL for sent results; classes
 * outside the known set are counted as "other". */
void metrics_result(struct metrics *metrics, enum metrics_status status,
                    const char *error_class);

/* Counts one HTTP attempt and its duration in seconds. channel may be
 * REQUEST_CHANNEL_NONE. */
void metrics_http_response(struct metrics *metrics,
                           enum request_channel channel, long http_status,
                           bool transport_error, double seconds);

/* Observes the time from consuming a request to its final outcome. */
void metrics_request_duration(struct metrics *metrics, double seconds);

void metrics_retry(struct metrics *metrics);
void metrics_commit_failure(struct metrics *metrics);
void metrics_produce_failure(struct metrics *metrics);

void metrics_set_in_flight(struct metrics *metrics, size_t count);
void metrics_set_buffered(struct metrics *metrics, size_t count);
void metrics_set_paused_partitions(struct metrics *metrics, size_t count);
void metrics_set_outage(struct metrics *metrics, bool active);
void metrics_set_auth_paused(struct metrics *metrics, bool active);

/* Replaces the consumer lag table: one entry per assigned partition,
 * lag in records, or -1 when unknown. Arrays are copied. */
void metrics_set_lag(struct metrics *metrics, const char *topic,
                     const int32_t *partitions, const int64_t *lags,
                     size_t count);

/* Writes every metric in the Prometheus text exposition format 0.0.4. */
void metrics_render(struct metrics *metrics, FILE *out);

#endif
