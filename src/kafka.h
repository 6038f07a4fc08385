/* Kafka clients: the consumer of send requests and the producer of
 * results and dead letters, configured from struct config. */
#ifndef C2M_KAFKA_H
#define C2M_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

typedef void kafka_rebalance_fn(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *partitions,
                                void *opaque);
typedef void kafka_delivery_fn(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                               void *opaque);
typedef void kafka_error_fn(rd_kafka_t *rk, int err, const char *reason,
                            void *opaque);
typedef void kafka_commit_fn(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets,
                             void *opaque);

/* Callbacks the clients call from rd_kafka_consumer_poll() and
 * rd_kafka_poll(), so on the thread that polls. opaque reaches each. */
struct kafka_callbacks {
    kafka_rebalance_fn *rebalance;  /* consumer */
    kafka_commit_fn *committed;     /* consumer: offset commit results */
    kafka_delivery_fn *delivered;   /* producer */
    kafka_error_fn *error;          /* both; NULL: kafka_log_error() */
    void *opaque;
};

/* Creates the consumer (cooperative-sticky by default, manual offset
 * store, auto commit of stored offsets unless exactly-once is on).
 * Returns NULL with errstr naming the property at fault. */
rd_kafka_t *kafka_consumer_new(const struct config *cfg,
                               const struct kafka_callbacks *callbacks,
                               char *errstr, size_t errstr_size);

/* Creates the idempotent producer (acks=all), transactional when
 * exactly-once is on. */
rd_kafka_t *kafka_producer_new(const struct config *cfg,
                               const struct kafka_callbacks *callbacks,
                               char *errstr, size_t errstr_size);

/* Builds the consumer's and the producer's librdkafka configurations
 * without creating clients, so that --check-config reports a property
 * librdkafka rejects. Returns 0, or -1 with errstr. */
int kafka_check_config(const struct config *cfg, char *errstr,
                       size_t errstr_size);

/* Checks that each topic exists, asking the cluster for metadata within
 * timeout_ms. brokers is the configured list, named in the error. Returns
 * 0, or -1 with errstr naming the missing topic or the brokers. */
/* kafka_check_topics() result when no broker responded in time, which a
 * caller may retry; -1 is final (a topic is missing or unusable). */
#define KAFKA_UNREACHABLE (-2)

int kafka_check_topics(rd_kafka_t *rk, const char *brokers,
                       const char *const *topics, size_t count,
                       int timeout_ms, char *errstr, size_t errstr_size);

/* Logs a client error at the level it deserves; error callbacks call it
 * before acting on the error. */
void kafka_log_error(rd_kafka_t *rk, int err, const char *reason);

/* Returns true once librdkafka reported a fatal error on rk (for the
 * idempotent producer: a sequence it cannot repair), and fills errstr. */
bool kafka_fatal_error(rd_kafka_t *rk, char *errstr, size_t errstr_size);

#endif
