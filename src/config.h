/* Worker configuration: defaults, then the libconfig file, then
 * environment variables, then validation of the whole. */
#ifndef C2M_CONFIG_H
#define C2M_CONFIG_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

/* One librdkafka property passed through unchanged, "name" = "value". */
struct config_property {
    char *name;
    char *value;
};

struct config_properties {
    struct config_property *items;
    size_t count;
};

struct config {
    /* kafka */
    char *brokers;              /* bootstrap.servers */
    char *group_id;
    char *requests_topic;
    char *results_topic;
    char *dead_letter_topic;
    struct config_properties common_properties;   /* consumer and producer */
    struct config_properties consumer_properties;
    struct config_properties producer_properties;
    bool exactly_once;          /* results in Kafka transactions */
    char *transactional_id;     /* "": <group_id>-<hostname> */

    /* api */
    char *base_url;             /* no trailing slash after validation */
    char *ca_file;              /* NULL: the system's CA bundle */
    bool tls_verify;
    int connect_timeout_ms;
    int request_timeout_ms;     /* total time of one HTTP attempt */
    size_t max_response_bytes;

    /* retry */
    int max_attempts;
    int backoff_base_ms;
    int backoff_max_ms;
    int retry_max_total_ms;     /* from the first attempt's start */
    bool retry_payment_on_unknown_outcome;
    int outage_after;           /* consecutive failures; 0 disables */
    int probe_max_ms;
    int auth_pause_after;       /* consecutive 401 responses; 0 disables */

    /* worker */
    int max_in_flight;          /* concurrent HTTP requests */
    int max_buffered;           /* consumed requests without a result yet */
    size_t max_request_bytes;   /* larger records are rejected unread */
    int drain_timeout_ms;       /* shutdown: in-flight requests finish */
    int revoke_timeout_ms;      /* rebalance: in-flight requests finish */
    int produce_failure_exit_ms;/* results cannot be produced: exit after */
    int commit_interval_ms;
    int startup_timeout_ms;     /* brokers and topics checked within */

    /* health */
    bool health_enabled;        /* serve /healthz, /readyz and /metrics */
    char *health_address;       /* numeric IPv4 or IPv6 address */
    int health_port;            /* 0: any free port */
    int health_stale_after_ms;  /* /healthz fails after this loop silence */

    /* log */
    enum log_level log_level;
    enum log_format log_format;

    /* secret, never printed */
    char *api_key;
};

/* Fills cfg with the documented defaults. Free with config_free().
 * Not named config_init: libconfig exports a function of that name. */
void config_set_defaults(struct config *cfg);

/* Reads a libconfig file over the current values. Returns 0, or -1 with
 * errstr naming the file, the line and the setting. */
int config_load_file(struct config *cfg, const char *path, char *errstr,
                     size_t errstr_size);

/* Applies every documented CHATT2ME_* environment variable over the
 * current values, reading them through getenv_fn (getenv in production,
 * a table in tests). Returns 0, or -1 with errstr naming the variable. */
int config_load_env(struct config *cfg,
                    const char *(*getenv_fn)(const char *name), char *errstr,
                    size_t errstr_size);

/* Adds the librdkafka properties found in an environ-style list (NULL
 * terminated "NAME=value" strings) over the current values:
 * CHATT2ME_KAFKA_PROPERTY_<NAME> for consumer and producer,
 * CHATT2ME_CONSUMER_PROPERTY_<NAME> and CHATT2ME_PRODUCER_PROPERTY_<NAME>.
 * <NAME> is the property name in any case with '.' written as '_'. Returns
 * 0, or -1 with errstr naming the variable but never its value. */
int config_load_env_properties(struct config *cfg, char *const *environ_list,
                               char *errstr, size_t errstr_size);

/* Loads the API key from CHATT2ME_API_KEY, or else from the file named by
 * CHATT2ME_API_KEY_FILE (one trailing newline is trimmed). An empty
 * variable counts as unset. When neither is set, returns 0 and leaves
 * api_key unchanged, so config_validate reports a missing key. Returns 0,
 * or -1 with an errstr that never contains the key. */
int config_load_api_key(struct config *cfg,
                        const char *(*getenv_fn)(const char *name),
                        char *errstr, size_t errstr_size);

/* Checks ranges, cross-field rules, that the CA file is readable and that
 * the API key is set. Returns 0, or -1 with errstr. */
int config_validate(const struct config *cfg, char *errstr,
                    size_t errstr_size);

/* Prints the effective configuration in libconfig syntax with the key
 * and every sensitive librdkafka property (passwords, secrets, keys)
 * replaced by "[redacted]". */
void config_print(const struct config *cfg, FILE *out);

/* Returns true when a librdkafka property contains a secret (sasl.password,
 * ssl.key.password, ...), so that it must never be printed. */
bool config_property_is_sensitive(const char *name);

/* Lists every environment variable with its default, range and meaning,
 * for --help. */
void config_print_env_help(FILE *out);

/* Calls warn(name) for every CHATT2ME_* variable in environ_list that no
 * setting reads, so that a misspelt variable does not go unnoticed. */
void config_find_unknown_env(char *const *environ_list,
                             void (*warn)(const char *name));

void config_free(struct config *cfg);

#endif
