/* Exactly-once results (kafka.exactly_once): results and the consumer
 * offsets they cover are committed together in one Kafka transaction, so
 * a read_committed consumer of the results topic reads exactly one result
 * per request even across crashes. Sends to the API stay at-least-once.
 *
 * Every commit_interval_ms the open transaction is flushed, the offsets
 * of the finished prefix of each partition are added to it, and it is
 * committed. When a transaction must be aborted, its results vanish, so
 * every partition rewinds to its last committed offset and the records
 * after it are processed again. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "worker_int.h"

/* After this many aborted transactions in a row the results topic is
 * taken as unusable, as a failed delivery is without transactions. */
#define MAX_ABORTS_IN_ROW 5

static int txn_timeout_ms(const struct worker *w)
{
    return w->cfg->produce_failure_exit_ms;
}

static bool report(const char *what, rd_kafka_error_t *error)
{
    if (!error)
        return false;
    log_error("txn", "%s failed: %s", what, rd_kafka_error_string(error));
    return true;
}

int txn_start(struct worker *w, char *errstr, size_t errstr_size)
{
    rd_kafka_error_t *error;

    error = rd_kafka_init_transactions(w->producer, w->cfg->startup_timeout_ms);
    if (!error)
        error = rd_kafka_begin_transaction(w->producer);
    if (error) {
        util_snprintf(errstr, errstr_size,
                      "cannot start a Kafka transaction: %s",
                      rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
    }
    w->txn_commit_due_ms = util_now_mono_ms() + w->cfg->commit_interval_ms;
    return 0;
}

/* Returns the offsets to commit with this transaction, or NULL. */
static rd_kafka_topic_partition_list_t *finished_offsets(struct worker *w)
{
    rd_kafka_topic_partition_list_t *list = NULL;

    for (struct partition_state *part = w->partitions; part; part = part->next) {
        int64_t offset = tracker_commit_offset(part->tracker);
        if (offset < 0 || offset <= part->committed_offset)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_add(list, part->topic, part->partition)
            ->offset = offset;
    }
    return list;
}

static void mark_committed(struct worker *w,
                           const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; list && i < list->cnt; i++) {
        for (struct partition_state *part = w->partitions; part;
             part = part->next) {
            if (part->partition == list->elems[i].partition &&
                strcmp(part->topic, list->elems[i].topic) == 0)
                part->committed_offset = list->elems[i].offset;
        }
    }
}

/* Moves every partition back to its last committed offset after an
 * abort: the aborted results are gone, so those records go again. */
static void rewind_partitions(struct worker *w)
{
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(4);

    dispatch_drop_unstarted(w, NULL);
    dispatch_abort_in_flight(w, NULL);
    rd_kafka_poll(w->producer, 0); /* purged results report back */

    for (struct partition_state *part = w->partitions; part; part = part->next) {
        int64_t target = part->committed_offset >= 0 ? part->committed_offset
                                                     : part->first_offset;
        tracker_destroy(part->tracker);
        part->tracker = tracker_new();
        part->first_offset = -1;
        if (target < 0)
            continue;
        rd_kafka_topic_partition_list_add(seek, part->topic, part->partition)
            ->offset = target;
        log_info("txn", "%s [%" PRId32 "]: rewinding to @%" PRId64,
                 part->topic, part->partition, target);
    }

    if (seek->cnt > 0) {
        rd_kafka_error_t *error = rd_kafka_seek_partitions(
            w->consumer, seek, txn_timeout_ms(w));
        if (report("seeking back to the committed offsets", error)) {
            rd_kafka_error_destroy(error);
            produce_begin_failure(w, "cannot rewind after an aborted transaction");
        }
    }
    rd_kafka_topic_partition_list_destroy(seek);
}

static void abort_and_rewind(struct worker *w)
{
    rd_kafka_error_t *error = rd_kafka_abort_transaction(w->producer,
                                                         txn_timeout_ms(w));

    w->txn_aborts_in_row++;
    log_warn("txn", "transaction aborted (%d in a row); its results are"
             " discarded and their requests will be processed again",
             w->txn_aborts_in_row);
    if (report("aborting the transaction", error)) {
        rd_kafka_error_destroy(error);
        produce_begin_failure(w, "cannot abort the Kafka transaction");
        return;
    }
    rewind_partitions(w);
    if (w->txn_aborts_in_row >= MAX_ABORTS_IN_ROW)
        produce_begin_failure(w, "results cannot be committed to Kafka");
}

/* Commits the open transaction with its offsets. Returns 0, or -1 when
 * the transaction had to be aborted. */
static int commit(struct worker *w)
{
    rd_kafka_topic_partition_list_t *offsets = NULL;
    rd_kafka_consumer_group_metadata_t *group = NULL;
    rd_kafka_error_t *error = NULL;
    int status = -1;

    /* Flushing serves the delivery reports, so every result of this
     * transaction has finished its record before the offsets are read. */
    rd_kafka_flush(w->producer, txn_timeout_ms(w));
    if (w->txn_abort_needed)
        goto out;

    offsets = finished_offsets(w);
    if (offsets) {
        group = rd_kafka_consumer_group_metadata(w->consumer);
        error = rd_kafka_send_offsets_to_transaction(w->producer, offsets,
                                                     group, txn_timeout_ms(w));
        if (report("adding offsets to the transaction", error))
            goto out;
    }
    error = rd_kafka_commit_transaction(w->producer, txn_timeout_ms(w));
    if (report("committing the transaction", error))
        goto out;

    mark_committed(w, offsets);
    w->txn_aborts_in_row = 0;
    status = 0;

out:
    if (error && rd_kafka_error_is_fatal(error)) {
        w->exit_code = WORKER_EXIT_FATAL;
        produce_begin_failure(w, "the transactional producer failed fatally");
    }
    if (error)
        rd_kafka_error_destroy(error);
    if (group)
        rd_kafka_consumer_group_metadata_destroy(group);
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    return status;
}

void txn_commit_if_due(struct worker *w, bool force)
{
    int64_t now = util_now_mono_ms();
    rd_kafka_error_t *error;

    if (!w->cfg->exactly_once || w->exit_code == WORKER_EXIT_FATAL)
        return;
    if (!force && now < w->txn_commit_due_ms && !w->txn_abort_needed)
        return;
    w->txn_commit_due_ms = now + w->cfg->commit_interval_ms;
    if (w->txn_messages == 0 && !w->txn_abort_needed)
        return;

    if (commit(w) != 0 && w->exit_code != WORKER_EXIT_FATAL)
        abort_and_rewind(w);
    w->txn_abort_needed = false;
    w->txn_messages = 0;

    if (w->exit_code == WORKER_EXIT_FATAL)
        return;
    error = rd_kafka_begin_transaction(w->producer);
    if (report("beginning a transaction", error)) {
        rd_kafka_error_destroy(error);
        produce_begin_failure(w, "cannot begin a Kafka transaction");
    }
}
