#include "kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void on_log(const rd_kafka_t *rk, int level, const char *facility,
                   const char *message)
{
    enum log_level ours = level <= 3   ? LOG_LEVEL_ERROR
                          : level == 4 ? LOG_LEVEL_WARN
                          : level <= 6 ? LOG_LEVEL_INFO
                                       : LOG_LEVEL_DEBUG;

    LOG_AT(ours, "rdkafka", "%s: %s: %s", rd_kafka_name(rk), facility, message);
}

void kafka_log_error(rd_kafka_t *rk, int err, const char *reason)
{
    /* Broker connection errors are retried by librdkafka itself; they are
     * warnings until a fatal error means the client cannot go on. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        log_error("kafka", "%s: fatal error: %s", rd_kafka_name(rk), reason);
    else
        log_warn("kafka", "%s: %s: %s", rd_kafka_name(rk),
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    kafka_log_error(rk, err, reason);
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value,
               char *errstr, size_t errstr_size)
{
    char reason[256];

    if (rd_kafka_conf_set(conf, name, value, reason, sizeof(reason)) ==
        RD_KAFKA_CONF_OK)
        return 0;
    util_snprintf(errstr, errstr_size, "invalid Kafka property \"%s\": %s",
                  name, reason);
    return -1;
}

static int set_all(rd_kafka_conf_t *conf,
                   const struct config_properties *properties, char *errstr,
                   size_t errstr_size)
{
    for (size_t i = 0; i < properties->count; i++) {
        if (set(conf, properties->items[i].name, properties->items[i].value,
                errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

/* Builds a configuration in three layers. Our defaults come first, so
 * users may override them, then the user's properties, then the settings
 * our delivery guarantees depend on, which nothing overrides. */
static rd_kafka_conf_t *build_conf(const struct config *cfg,
                                   const struct kafka_callbacks *callbacks,
                                   const char *const *defaults,
                                   const struct config_properties *own,
                                   const char *const *forced, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, callbacks->error ? callbacks->error
                                                      : on_error);
    rd_kafka_conf_set_opaque(conf, callbacks->opaque);

    for (size_t i = 0; defaults[i]; i += 2) {
        if (set(conf, defaults[i], defaults[i + 1], errstr, errstr_size) != 0)
            goto fail;
    }
    if (set(conf, "bootstrap.servers", cfg->brokers, errstr, errstr_size) != 0)
        goto fail;
    if (set_all(conf, &cfg->common_properties, errstr, errstr_size) != 0 ||
        set_all(conf, own, errstr, errstr_size) != 0)
        goto fail;
    for (size_t i = 0; forced[i]; i += 2) {
        if (set(conf, forced[i], forced[i + 1], errstr, errstr_size) != 0)
            goto fail;
    }
    return conf;

fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kafka_consumer_new(const struct config *cfg,
                               const struct kafka_callbacks *callbacks,
                               char *errstr, size_t errstr_size)
{
    char interval[32];
    const char *const defaults[] = {
        "client.id", "chatt2me-worker",
        "partition.assignment.strategy", "cooperative-sticky",
        "auto.offset.reset", "earliest",
        NULL,
    };
    snprintf(interval, sizeof(interval), "%d", cfg->commit_interval_ms);
    const char *const forced[] = {
        "group.id", cfg->group_id,
        /* Offsets are stored only once a record's result is acknowledged,
         * and librdkafka commits what is stored. */
        "enable.auto.offset.store", "false",
        /* With transactions, offsets are committed inside them. */
        "enable.auto.commit", cfg->exactly_once ? "false" : "true",
        "auto.commit.interval.ms", interval,
        "enable.partition.eof", "false",
        NULL,
    };

    rd_kafka_conf_t *conf = build_conf(cfg, callbacks, defaults, &cfg->consumer_properties,
                                       forced, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, callbacks->rebalance);
    if (callbacks->committed)
        rd_kafka_conf_set_offset_commit_cb(conf, callbacks->committed);

    char reason[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason,
                                  sizeof(reason));
    if (!rk) {
        util_snprintf(errstr, errstr_size, "cannot create the Kafka consumer: %s",
                      reason);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Returns a transactional id that is stable per host. A restarted worker
 * with the same hostname (a Kubernetes pod keeps its name across container
 * restarts) aborts the transaction its previous run left open. Otherwise
 * read_committed consumers would wait for that transaction to time out. */
static void transactional_id_of(const struct config *cfg, char *buf,
                                size_t size)
{
    char host[256] = "localhost";

    if (cfg->transactional_id && cfg->transactional_id[0]) {
        util_snprintf(buf, size, "%s", cfg->transactional_id);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    util_snprintf(buf, size, "%s-%s", cfg->group_id, host);
}

rd_kafka_t *kafka_producer_new(const struct config *cfg,
                               const struct kafka_callbacks *callbacks,
                               char *errstr, size_t errstr_size)
{
    const char *const defaults[] = {
        "client.id", "chatt2me-worker",
        "linger.ms", "5",
        /* A result that cannot be delivered for a minute means the worker
         * cannot keep its promise; it stops rather than wait longer. */
        "message.timeout.ms", "60000",
        NULL,
    };
    char transactional_id[512];
    transactional_id_of(cfg, transactional_id, sizeof(transactional_id));
    const char *const forced[] = {
        "enable.idempotence", "true",
        "acks", "all",
        cfg->exactly_once ? "transactional.id" : NULL, transactional_id,
        NULL,
    };

    rd_kafka_conf_t *conf = build_conf(cfg, callbacks, defaults, &cfg->producer_properties,
                                       forced, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, callbacks->delivered);

    char reason[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason,
                                  sizeof(reason));
    if (!rk) {
        util_snprintf(errstr, errstr_size, "cannot create the Kafka producer: %s",
                      reason);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk;
}

int kafka_check_config(const struct config *cfg, char *errstr,
                       size_t errstr_size)
{
    const char *const none[] = {NULL};
    const struct kafka_callbacks callbacks = {0};
    rd_kafka_conf_t *conf;

    conf = build_conf(cfg, &callbacks, none, &cfg->consumer_properties, none,
                      errstr, errstr_size);
    if (!conf)
        return -1;
    rd_kafka_conf_destroy(conf);
    conf = build_conf(cfg, &callbacks, none, &cfg->producer_properties, none,
                      errstr, errstr_size);
    if (!conf)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

static const rd_kafka_metadata_topic_t *
find_topic(const rd_kafka_metadata_t *metadata, const char *name)
{
    for (int i = 0; i < metadata->topic_cnt; i++) {
        if (strcmp(metadata->topics[i].topic, name) == 0)
            return &metadata->topics[i];
    }
    return NULL;
}

int kafka_check_topics(rd_kafka_t *rk, const char *brokers,
                       const char *const *topics, size_t count,
                       int timeout_ms, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *metadata = NULL;
    int status = -1;

    /* Asking for all topics avoids auto-creating the ones we check. */
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1 /* all topics */, NULL,
                                                &metadata, timeout_ms);
    if (err) {
        util_snprintf(errstr, errstr_size,
                      "cannot read metadata from the Kafka brokers %s within"
                      " %d ms: %s; check kafka.brokers and that the brokers"
                      " are running",
                      brokers, timeout_ms, rd_kafka_err2str(err));
        return KAFKA_UNREACHABLE;
    }

    for (size_t i = 0; i < count; i++) {
        const rd_kafka_metadata_topic_t *topic = find_topic(metadata, topics[i]);
        if (!topic || topic->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            util_snprintf(errstr, errstr_size,
                          "Kafka topic \"%s\" does not exist; create it or fix"
                          " the topic name in the configuration",
                          topics[i]);
            goto out;
        }
        if (topic->err) {
            util_snprintf(errstr, errstr_size, "Kafka topic \"%s\" is not usable: %s",
                          topics[i], rd_kafka_err2str(topic->err));
            goto out;
        }
    }
    status = 0;

out:
    rd_kafka_metadata_destroy(metadata);
    return status;
}

bool kafka_fatal_error(rd_kafka_t *rk, char *errstr, size_t errstr_size)
{
    return rd_kafka_fatal_error(rk, errstr, errstr_size) !=
           RD_KAFKA_RESP_ERR_NO_ERROR;
}
