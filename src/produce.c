/* Produce: results and dead letters to Kafka, their delivery reports, and
 * the offsets that become safe to commit once they are acknowledged. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "result.h"
#include "util.h"
#include "worker_int.h"

static void queue_for_retry(struct worker *w, struct job *job)
{
    job->ready_next = w->produce_retry;
    w->produce_retry = job;
}

/* Hands the result record to the producer. Returns 0, or the error. */
static rd_kafka_resp_err_t produce_result(struct worker *w, struct job *job)
{
    size_t len;
    char *value = result_encode(job, util_now_wall_ms(), &len);
    rd_kafka_headers_t *headers = result_headers(job);

    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg->results_topic),
        RD_KAFKA_V_KEY(job->key, job->key_len),
        RD_KAFKA_V_VALUE(value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(job), RD_KAFKA_V_END);
    if (err) {
        /* On failure librdkafka keeps ownership of neither. */
        free(value);
        rd_kafka_headers_destroy(headers);
    }
    return err;
}

/* Hands the original record, byte for byte, to the dead-letter topic. */
static rd_kafka_resp_err_t produce_dead_letter(struct worker *w,
                                               struct job *job)
{
    rd_kafka_headers_t *headers =
        result_dead_letter_headers(job, util_now_wall_ms());

    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg->dead_letter_topic),
        RD_KAFKA_V_KEY(job->key, job->key_len),
        RD_KAFKA_V_VALUE(job->value, job->value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(job), RD_KAFKA_V_END);
    if (err)
        rd_kafka_headers_destroy(headers);
    return err;
}

void produce_outcome(struct worker *w, struct job *job)
{
    bool dead_letter = job->outcome.status == NULL;
    rd_kafka_resp_err_t err;

    job->state = JOB_PRODUCING;
    err = dead_letter ? produce_dead_letter(w, job) : produce_result(w, job);
    if (!err) {
        w->txn_messages++;
        return;
    }

    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        queue_for_retry(w, job);
        return;
    }

    char why[256];
    metrics_produce_failure(w->metrics);
    util_snprintf(why, sizeof(why), "cannot produce to topic \"%s\": %s",
                  dead_letter ? w->cfg->dead_letter_topic
                              : w->cfg->results_topic,
                  rd_kafka_err2str(err));
    produce_begin_failure(w, why);
    /* The record stays unfinished in its tracker, so its offset is never
     * committed and it will be consumed again. */
    dispatch_job_free(w, job);
}

void produce_retry_queued(struct worker *w)
{
    struct job *pending = w->produce_retry;

    w->produce_retry = NULL;
    while (pending) {
        struct job *job = pending;
        pending = job->ready_next;
        job->ready_next = NULL;
        produce_outcome(w, job);
    }
}

/* Counted once Kafka has acknowledged the record, so a result produced twice after
 * a failure is not counted twice. */
static void count_outcome(struct worker *w, const struct job *job)
{
    const char *status = job->outcome.status;
    enum metrics_status which = METRICS_STATUS_DEAD_LETTER;

    if (status && strcmp(status, "sent") == 0)
        which = METRICS_STATUS_SENT;
    else if (status && strcmp(status, "failed") == 0)
        which = METRICS_STATUS_FAILED;
    else if (status)
        which = METRICS_STATUS_REJECTED;
    metrics_result(w->metrics, which, job->outcome.error_class);
    metrics_request_duration(w->metrics,
                             (double)(util_now_mono_ms() - job->received_mono_ms) /
                                 1000.0);
}

void produce_delivered(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                       void *opaque)
{
    struct worker *w = opaque;
    struct job *job = rkm->_private;

    (void)rk;
    if (rkm->err && w->cfg->exactly_once) {
        /* The transaction cannot commit with a lost result; it is aborted
         * and its records processed again. */
        w->txn_abort_needed = true;
        dispatch_job_free(w, job);
        return;
    }
    if (rkm->err) {
        char why[256];
        metrics_produce_failure(w->metrics);
        util_snprintf(why, sizeof(why),
                      "result of %s [%" PRId32 "] @%" PRId64
                      " was not delivered to topic \"%s\": %s",
                      job->topic, job->partition, job->offset,
                      rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        produce_begin_failure(w, why);
        dispatch_job_free(w, job);
        return;
    }

    w->brokers_down = false;
    count_outcome(w, job);
    tracker_finish(job->part->tracker, job->tracker_handle);
    dispatch_job_free(w, job);
}

void produce_store_offsets(struct worker *w, struct partition_state *only)
{
    rd_kafka_topic_partition_list_t *list = NULL;

    /* With transactions, offsets are committed inside them instead. */
    if (w->cfg->exactly_once)
        return;
    for (struct partition_state *part = w->partitions; part; part = part->next) {
        if (only && part != only)
            continue;
        int64_t offset = tracker_commit_offset(part->tracker);
        if (offset < 0 || offset <= part->stored_offset)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_add(list, part->topic, part->partition)
            ->offset = offset;
        part->stored_offset = offset;
    }
    if (!list)
        return;

    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, list);
    if (err)
        log_warn("produce", "cannot store offsets: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(list);
}

void produce_begin_failure(struct worker *w, const char *why)
{
    if (w->produce_failed)
        return;
    w->produce_failed = true;
    log_error("produce", "%s; stopping: no new requests are consumed, no offset"
              " moves past this record, and the worker exits with code %d"
              " within %d ms",
              why, 3, w->cfg->produce_failure_exit_ms);
}
