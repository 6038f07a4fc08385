/* Internals shared by worker.c (the loop), dispatch.c (sending) and
 * produce.c (results and offsets). Not a public surface. */
#ifndef C2M_WORKER_INT_H
#define C2M_WORKER_INT_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "guard.h"
#include "http.h"
#include "health.h"
#include "kafka.h"
#include "metrics.h"
#include "job.h"
#include "order.h"
#include "request.h"
#include "schedule.h"
#include "tracker.h"
#include "worker.h"

/* One assigned partition: its offset tracker and its live jobs. It
 * outlives its revocation until its last job is freed, because results
 * already handed to the producer still report back to it. */
struct partition_state {
    char *topic;
    int32_t partition;
    struct tracker *tracker;
    int64_t stored_offset;      /* last offset handed to offsets_store */
    int64_t first_offset;       /* first offset consumed, or -1 */
    int64_t committed_offset;   /* exactly-once: committed with the last
                                   transaction, or -1 */
    bool revoking;              /* no new sends; being handed over */
    bool revoked;               /* no longer in worker->partitions */
    size_t live_jobs;
    struct worker *worker;
    struct partition_state *next;
};

struct worker_stats {
    uint64_t consumed;
    uint64_t sent;
    uint64_t failed;
    uint64_t rejected;
    uint64_t dead_lettered;
    uint64_t retries;
    uint64_t passed_through;    /* content kinds we cannot check yet */
    uint64_t dropped;           /* released uncommitted for redelivery */
    uint64_t commit_failures;
};

struct worker {
    const struct config *cfg;
    struct request_limits limits;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    struct kafka_callbacks callbacks;   /* must outlive both clients */
    struct metrics *metrics;    /* borrowed from main */
    struct health *health;      /* borrowed from main; NULL when disabled */
    int64_t lag_due_ms;
    int commit_failures_unlogged;
    int64_t commit_failure_log_due_ms;
    bool brokers_down;
    rd_kafka_queue_t *consumer_queue;
    rd_kafka_queue_t *producer_queue;
    int epoll_fd;
    int consumer_pipe[2];
    int producer_pipe[2];
    int signal_fd;

    struct http_client *http;
    struct order_map *order;
    struct schedule *schedule;
    struct job *ready_head;
    struct job *ready_tail;
    struct job *produce_retry;  /* jobs whose produce hit a full queue */
    struct job *live_jobs;
    struct partition_state *partitions;
    char *urls[REQUEST_CHANNEL_COUNT];

    size_t buffered;            /* live jobs: consumed, not yet delivered */
    bool paused;
    bool stopping;
    int64_t stop_deadline_ms;
    bool produce_failed;
    int exit_code;
    bool consumer_more;
    bool backlog_paused;        /* paused because max_buffered was reached */
    struct guard guard;         /* outage mode and auth pause */
    struct job *probe;          /* the one request sent while the guard holds */

    /* exactly-once results (kafka.exactly_once) */
    bool txn_abort_needed;      /* a result in this transaction failed */
    int txn_aborts_in_row;
    size_t txn_messages;        /* results produced in this transaction */
    int64_t txn_commit_due_ms;
    uint64_t random_state;
    struct worker_stats stats;
};

/* worker.c */
void worker_reload_api_key(struct worker *w, bool quiet);

/* Returns the assigned partition's state, or NULL when it is not
 * assigned (or is being revoked and already released). */
struct partition_state *worker_partition_find(struct worker *w,
                                              const char *topic,
                                              int32_t partition);

/* dispatch.c */
uint64_t dispatch_random(struct worker *w);
void dispatch_record(struct worker *w, rd_kafka_message_t *rkm);
void dispatch_start_sends(struct worker *w);
void dispatch_run_timers(struct worker *w, int64_t now_ms);
void dispatch_drop_unstarted(struct worker *w, struct partition_state *only);
void dispatch_abort_in_flight(struct worker *w, struct partition_state *only);
void dispatch_job_free(struct worker *w, struct job *job);

/* transaction.c */
int txn_start(struct worker *w, char *errstr, size_t errstr_size);
void txn_commit_if_due(struct worker *w, bool force);

/* produce.c */
void produce_outcome(struct worker *w, struct job *job);
void produce_retry_queued(struct worker *w);
void produce_delivered(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                       void *opaque);
void produce_store_offsets(struct worker *w, struct partition_state *only);
void produce_begin_failure(struct worker *w, const char *why);

#endif
