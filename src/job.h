/* A job: one consumed Kafka record on its way to a result or a dead
 * letter. Shared by the worker's internal modules (ordering queues, retry
 * schedule, the loop); not part of any public surface. */
#ifndef C2M_JOB_H
#define C2M_JOB_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "classify.h"
#include "request.h"

struct partition_state;
struct order_queue;
struct http_transfer;

enum job_state {
    JOB_WAITING = 0,    /* behind an earlier job of the same ordering key */
    JOB_READY,          /* may start as soon as a send slot is free */
    JOB_IN_FLIGHT,      /* an HTTP attempt is running */
    JOB_BACKOFF,        /* waiting for its next attempt */
    JOB_PRODUCING,      /* result or dead letter handed to the producer */
};

/* The final outcome, copied into the result or dead letter. */
struct job_outcome {
    const char *status;         /* "sent", "failed", "rejected"; NULL in DLQ */
    const char *error_class;    /* NULL when sent */
    char error_code[64];
    char error_message[256];
    char message_id[129];
    bool has_message_id;
    char api_request_id[128];   /* the response's x-request-id, if any */
};

struct job {
    /* The record, copied so the librdkafka message can be freed at once.
     * The dead letter needs these exact bytes. */
    char *topic;                /* borrowed from partition_state */
    int32_t partition;
    int64_t offset;
    void *key;
    size_t key_len;
    void *value;
    size_t value_len;
    rd_kafka_headers_t *headers;    /* NULL when the record had none */
    int64_t received_wall_ms;
    int64_t received_mono_ms;

    struct request *req;
    struct partition_state *part;
    uint64_t tracker_handle;
    enum job_state state;

    int attempts;
    int64_t first_attempt_mono_ms;
    int64_t due_mono_ms;        /* JOB_BACKOFF: when to try again */
    size_t heap_index;          /* position in the retry schedule */
    long last_http_status;
    struct classify_result last;
    bool unknown_outcome_seen;
    bool possible_duplicate;    /* sent again after an unknown outcome */
    struct http_transfer *transfer;

    struct order_queue *order;  /* NULL for jobs that never send */
    struct job *order_next;     /* next job with the same ordering key */
    struct job *ready_next;     /* next job in the ready list */
    struct job *live_prev;      /* every live job, for revoke and shutdown */
    struct job *live_next;

    struct job_outcome outcome;
};

#endif
