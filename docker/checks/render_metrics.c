/* Prints the worker's /metrics page in the Prometheus text format, with
 * one event of every kind counted so that each labelled series appears.
 * scripts/check-deploy links it against the worker's own library and checks
 * the Grafana dashboard and the autoscaling rules against its output, so
 * that they query only metric names and labels the worker really exports. */
#include <stdint.h>
#include <stdio.h>

#include "metrics.h"
#include "request.h"

int main(void)
{
    struct metrics *metrics = metrics_new();
    const int32_t partitions[] = {0, 1};
    const int64_t lags[] = {0, 5};

    metrics_consumed(metrics);
    metrics_result(metrics, METRICS_STATUS_SENT, NULL);
    metrics_result(metrics, METRICS_STATUS_FAILED, "exhausted");
    metrics_result(metrics, METRICS_STATUS_REJECTED, "invalid_request");
    metrics_result(metrics, METRICS_STATUS_DEAD_LETTER, "auth");
    metrics_http_response(metrics, REQUEST_CHANNEL_TELEGRAM, 200, false, 0.1);
    metrics_http_response(metrics, REQUEST_CHANNEL_NONE, 0, true, 1.0);
    metrics_request_duration(metrics, 0.2);
    metrics_retry(metrics);
    metrics_commit_failure(metrics);
    metrics_produce_failure(metrics);
    metrics_set_in_flight(metrics, 1);
    metrics_set_buffered(metrics, 2);
    metrics_set_paused_partitions(metrics, 1);
    metrics_set_outage(metrics, true);
    metrics_set_auth_paused(metrics, true);
    metrics_set_lag(metrics, "chatt2me.requests", partitions, lags, 2);

    metrics_render(metrics, stdout);
    metrics_destroy(metrics);
    return fflush(stdout) == 0 ? 0 : 1;
}
