/* Unit tests of the configuration module: defaults, the file, the
 * environment, the API key, validation and redacted printing. The tests
 * read config/worker.cfg and docs/configuration.md from the source tree,
 * found from __FILE__ or from the first argument. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char source_root[PATH_MAX];

/* ---- helpers ---- */

/* The environment seen by fake_getenv: "NAME=value" strings, NULL last. */
static char *const *fake_environ;

static const char *fake_getenv(const char *name)
{
    size_t len = strlen(name);

    if (fake_environ == NULL)
        return NULL;
    for (char *const *var = fake_environ; *var != NULL; var++) {
        if (strncmp(*var, name, len) == 0 && (*var)[len] == '=')
            return *var + len + 1;
    }
    return NULL;
}

/* Writes len bytes to a new temporary file and stores its path. */
static void write_temp_file(const void *data, size_t len, char *path,
                            size_t path_size)
{
    int fd;

    snprintf(path, path_size, "/tmp/test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Loads text as a configuration file over cfg. */
static int load_text(struct config *cfg, const char *text, char *errstr,
                     size_t errstr_size)
{
    char path[64];
    int rc;

    write_temp_file(text, strlen(text), path, sizeof(path));
    rc = config_load_file(cfg, path, errstr, errstr_size);
    unlink(path);
    return rc;
}

/* Returns the config_print output; the caller frees it. */
static char *print_to_string(const struct config *cfg)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    assert_non_null(out);
    config_print(cfg, out);
    assert_int_equal(fclose(out), 0);
    return text;
}

static char *env_help_to_string(void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    assert_non_null(out);
    config_print_env_help(out);
    assert_int_equal(fclose(out), 0);
    return text;
}

static bool printed_contains(const struct config *cfg, const char *needle)
{
    char *text = print_to_string(cfg);
    bool found = strstr(text, needle) != NULL;

    free(text);
    return found;
}

static char *read_source_file(const char *relative)
{
    char path[PATH_MAX + 64];
    FILE *in;
    char *text;
    long size;

    snprintf(path, sizeof(path), "%s/%s", source_root, relative);
    in = fopen(path, "r");
    if (in == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(in, 0, SEEK_END), 0);
    size = ftell(in);
    assert_true(size >= 0);
    rewind(in);
    text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, in), (size_t)size);
    text[size] = '\0';
    fclose(in);
    return text;
}

static int setup(void **state)
{
    struct config *cfg = calloc(1, sizeof(*cfg));

    assert_non_null(cfg);
    config_set_defaults(cfg);
    fake_environ = NULL;
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    config_free(*state);
    free(*state);
    return 0;
}

/* ---- defaults and the documented example ---- */

static void test_defaults_documented_values(void **state)
{
    struct config *cfg = *state;

    assert_string_equal(cfg->brokers, "localhost:9092");
    assert_string_equal(cfg->group_id, "chatt2me-worker");
    assert_string_equal(cfg->requests_topic, "chatt2me.requests");
    assert_string_equal(cfg->results_topic, "chatt2me.results");
    assert_string_equal(cfg->dead_letter_topic, "chatt2me.dead-letters");
    assert_int_equal(cfg->common_properties.count, 0);
    assert_int_equal(cfg->consumer_properties.count, 0);
    assert_int_equal(cfg->producer_properties.count, 0);
    assert_string_equal(cfg->base_url, "https://api.chatt2.me");
    assert_null(cfg->ca_file);
    assert_true(cfg->tls_verify);
    assert_int_equal(cfg->connect_timeout_ms, 5000);
    assert_int_equal(cfg->request_timeout_ms, 30000);
    assert_int_equal(cfg->max_response_bytes, 65536);
    assert_int_equal(cfg->max_attempts, 5);
    assert_int_equal(cfg->backoff_base_ms, 500);
    assert_int_equal(cfg->backoff_max_ms, 30000);
    assert_int_equal(cfg->retry_max_total_ms, 300000);
    assert_false(cfg->retry_payment_on_unknown_outcome);
    assert_int_equal(cfg->max_in_flight, 256);
    assert_int_equal(cfg->max_buffered, 4096);
    assert_int_equal(cfg->max_request_bytes, 921600);
    assert_int_equal(cfg->drain_timeout_ms, 20000);
    assert_int_equal(cfg->revoke_timeout_ms, 15000);
    assert_int_equal(cfg->produce_failure_exit_ms, 60000);
    assert_int_equal(cfg->commit_interval_ms, 1000);
    assert_true(cfg->health_enabled);
    assert_string_equal(cfg->health_address, "0.0.0.0");
    assert_int_equal(cfg->health_port, 8080);
    assert_int_equal(cfg->health_stale_after_ms, 30000);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
    assert_null(cfg->api_key);
}

static void test_defaults_valid_with_key(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    cfg->api_key = strdup("key-123");
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);
}

static void test_example_file_equals_defaults(void **state)
{
    struct config *defaults = *state;
    struct config loaded;
    char path[PATH_MAX + 64];
    char errstr[512] = "";
    char *expected;
    char *actual;

    snprintf(path, sizeof(path), "%s/config/worker.cfg", source_root);
    config_set_defaults(&loaded);
    if (config_load_file(&loaded, path, errstr, sizeof(errstr)) != 0)
        fail_msg("%s", errstr);

    expected = print_to_string(defaults);
    actual = print_to_string(&loaded);
    assert_string_equal(actual, expected);
    free(expected);
    free(actual);
    config_free(&loaded);
}

/* Every variable that --help lists, and every setting that config_print
 * writes, must appear in the docs and in the example file. */
static void test_docs_name_every_setting(void **state)
{
    struct config *cfg = *state;
    char *help = env_help_to_string();
    char *printed = print_to_string(cfg);
    char *docs = read_source_file("docs/configuration.md");
    char *example = read_source_file("config/worker.cfg");
    char group[64] = "";
    int variables = 0;
    int settings = 0;

    for (char *line = strtok(help, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        char name[128];

        if (sscanf(line, "  %127[A-Z0-9_]", name) != 1 ||
            strncmp(name, "CHATT2ME_", 9) != 0)
            continue;
        variables++;
        if (strstr(docs, name) == NULL)
            fail_msg("docs/configuration.md does not name %s", name);
        if (strstr(example, name) == NULL)
            fail_msg("config/worker.cfg does not name %s", name);
    }

    for (char *line = strtok(printed, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        char name[64];
        char path[160];

        if (sscanf(line, "%63[a-z] = {", group) == 1)
            continue;
        if (sscanf(line, "  %63[a-z_] =", name) != 1)
            continue;
        settings++;
        snprintf(path, sizeof(path), "%s.%s", group, name);
        if (strstr(docs, path) == NULL)
            fail_msg("docs/configuration.md does not name %s", path);
        snprintf(path, sizeof(path), "  %s = ", name);
        if (strstr(example, path) == NULL)
            fail_msg("config/worker.cfg does not set %s.%s", group, name);
    }

    assert_int_equal(variables, 40);
    assert_int_equal(settings, 38);
    free(help);
    free(printed);
    free(docs);
    free(example);
}

static void test_env_help_lists_defaults(void **state)
{
    char *help = env_help_to_string();

    (void)state;
    assert_non_null(strstr(help, "CHATT2ME_API_CONNECT_TIMEOUT_MS  (default "
                                 "5000, range 100 to 600000 ms)"));
    assert_non_null(
        strstr(help, "CHATT2ME_KAFKA_BROKERS  (default \"localhost:9092\")"));
    assert_non_null(strstr(help, "CHATT2ME_API_CA_FILE  (default: not set)"));
    assert_non_null(strstr(help, "CHATT2ME_KAFKA_PROPERTY_<NAME>"));
    assert_non_null(strstr(help, "CHATT2ME_API_KEY_FILE"));
    free(help);
}

/* ---- the file ---- */

static void test_file_overrides_defaults(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    const char *text = "kafka = {\n"
                       "  brokers = \"kafka-1:9092,kafka-2:9092\";\n"
                       "  requests_topic = \"in\";\n"
                       "};\n"
                       "api = {\n"
                       "  base_url = \"http://127.0.0.1:8080/\";\n"
                       "  tls_verify = false;\n"
                       "  connect_timeout_ms = 1500;\n"
                       "  max_response_bytes = 2048L;\n"
                       "};\n"
                       "retry = { payment_on_unknown_outcome = true; };\n"
                       "log = { level = \"debug\"; format = \"json\"; };\n";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->brokers, "kafka-1:9092,kafka-2:9092");
    assert_string_equal(cfg->requests_topic, "in");
    assert_string_equal(cfg->base_url, "http://127.0.0.1:8080");
    assert_false(cfg->tls_verify);
    assert_int_equal(cfg->connect_timeout_ms, 1500);
    assert_int_equal(cfg->max_response_bytes, 2048);
    assert_true(cfg->retry_payment_on_unknown_outcome);
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg->log_format, LOG_FORMAT_JSON);
    /* Settings absent from the file keep their defaults. */
    assert_string_equal(cfg->results_topic, "chatt2me.results");
    assert_int_equal(cfg->request_timeout_ms, 30000);
}

static void test_file_unknown_setting_line(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    const char *text = "kafka = {\n"
                       "  brokers = \"b:9092\";\n"
                       "  brokerz = \"b:9092\";\n"
                       "};\n";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, ":3: "));
    assert_non_null(strstr(errstr, "unknown setting \"kafka.brokerz\""));
}

static void test_file_unknown_group_line(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    assert_int_equal(load_text(cfg, "\n\nkafak = { brokers = \"b\"; };\n",
                               errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, ":3: "));
    assert_non_null(strstr(errstr, "unknown setting \"kafak\""));

    assert_int_equal(load_text(cfg, "brokers = \"b\";\n", errstr,
                               sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "unknown setting \"brokers\""));
}

static void test_file_group_not_group(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    assert_int_equal(load_text(cfg, "api = 5;\n", errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, ":1: api is an integer, expected a group"));
}

static void test_file_type_errors(void **state)
{
    static const struct {
        const char *text;
        const char *expected;
    } cases[] = {
        {"api = { connect_timeout_ms = \"5000\"; };",
         "api.connect_timeout_ms is a string, expected an integer"},
        {"api = { connect_timeout_ms = 5000.0; };",
         "api.connect_timeout_ms is a floating-point number, expected an "
         "integer"},
        {"api = { tls_verify = 1; };",
         "api.tls_verify is an integer, expected a boolean"},
        {"kafka = { brokers = 9092; };",
         "kafka.brokers is an integer, expected a string"},
        {"kafka = { properties = \"a=b\"; };",
         "kafka.properties is a string, expected an array of"},
        {"log = { level = 3; };", "log.level is an integer, expected a string"},
        {"worker = { max_request_bytes = true; };",
         "worker.max_request_bytes is a boolean, expected an integer"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";

        assert_int_equal(load_text(cfg, cases[i].text, errstr,
                                   sizeof(errstr)),
                         -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
        assert_non_null(strstr(errstr, ":1: "));
    }
}

static void test_file_syntax_error_line(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    const char *text = "kafka = {\n"
                       "  brokers = \"b\";\n"
                       "  group_id = ;\n"
                       "};\n";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "/tmp/test_config_"));
    assert_non_null(strstr(errstr, ":3: "));
}

static void test_file_missing_named(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    assert_int_equal(config_load_file(cfg, "/nonexistent/worker.cfg", errstr,
                                      sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "/nonexistent/worker.cfg"));
    assert_non_null(strstr(errstr, "No such file or directory"));
}

static void test_file_api_key_rejected(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    assert_int_equal(load_text(cfg, "api = { key = \"k-secret-file\"; };",
                               errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "CHATT2ME_API_KEY"));
    assert_null(strstr(errstr, "k-secret-file"));
    assert_null(cfg->api_key);
}

static void test_file_invalid_values(void **state)
{
    static const struct {
        const char *text;
        const char *expected;
    } cases[] = {
        {"api = { base_url = \"ftp://example.com\"; };",
         "api.base_url: \"ftp://example.com\" must start with https://"},
        {"api = { base_url = \"https://\"; };", "has no host name"},
        {"api = { base_url = \"http://127.0.0.1:99999\"; };",
         "is not a valid URL"},
        {"api = { base_url = \"http://[::1\"; };", "is not a valid URL"},
        {"api = { base_url = \"http://h/a/../..\"; };",
         "path segments"},
        {"api = { base_url = \"http://h/./v1\"; };", "path segments"},
        {"api = { base_url = \"http://h\xc3\xa9x\"; };", "not printable ASCII"},
        {"api = { base_url = \"https://u:p@host\"; };",
         "must not contain credentials"},
        {"api = { base_url = \"https://host/v1?x=1\"; };",
         "must not contain spaces, a query or a fragment"},
        {"kafka = { requests_topic = \"bad topic\"; };",
         "kafka.requests_topic: \"bad topic\" is not a valid topic name"},
        {"kafka = { results_topic = \"..\"; };", "is not a valid topic name"},
        {"kafka = { brokers = \"\"; };", "kafka.brokers: must not be empty"},
        {"kafka = { group_id = \"a\\nb\"; };",
         "contains a control character at position 2"},
        {"log = { level = \"verbose\"; };",
         "\"verbose\" is not a log level, expected error, warn, info or "
         "debug"},
        {"log = { format = \"xml\"; };",
         "\"xml\" is not a log format, expected text or json"},
        {"health = { address = \"localhost\"; };",
         "health.address: \"localhost\" is not a numeric IPv4 or IPv6 "
         "address"},
        {"health = { address = \"10.0.0.256\"; };",
         "is not a numeric IPv4 or IPv6 address"},
        {"health = { address = \"127.0.0.1:8080\"; };",
         "is not a numeric IPv4 or IPv6 address"},
        {"health = { address = \"[::1]\"; };",
         "is not a numeric IPv4 or IPv6 address"},
        {"health = { address = \"\"; };", "health.address: must not be empty"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";

        assert_int_equal(load_text(cfg, cases[i].text, errstr,
                                   sizeof(errstr)),
                         -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
    }
}

static void test_health_address_forms(void **state)
{
    static const char *const accepted[] = {
        "0.0.0.0", "127.0.0.1", "10.1.2.3", "::", "::1", "fd00::8:1",
        "::ffff:127.0.0.1",
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        char var[128];
        char *environ_list[] = {var, NULL};
        char errstr[512] = "";

        snprintf(var, sizeof(var), "CHATT2ME_HEALTH_ADDRESS=%s", accepted[i]);
        fake_environ = environ_list;
        if (config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)) != 0)
            fail_msg("%s rejected: %s", accepted[i], errstr);
        assert_string_equal(cfg->health_address, accepted[i]);
    }
}

static void test_file_topic_too_long(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char text[600];
    char topic[251];

    memset(topic, 'a', 250);
    topic[250] = '\0';
    snprintf(text, sizeof(text), "kafka = { results_topic = \"%s\"; };",
             topic);
    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "250 characters long"));

    topic[249] = '\0';
    snprintf(text, sizeof(text), "kafka = { results_topic = \"%s\"; };",
             topic);
    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), 0);
}

static void test_file_ca_file_empty_unsets(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    assert_int_equal(load_text(cfg, "api = { ca_file = \"/etc/ca.pem\"; };",
                               errstr, sizeof(errstr)),
                     0);
    assert_string_equal(cfg->ca_file, "/etc/ca.pem");
    assert_int_equal(load_text(cfg, "api = { ca_file = \"\"; };", errstr,
                               sizeof(errstr)),
                     0);
    assert_null(cfg->ca_file);
}

/* ---- numeric bounds, from both sources ---- */

/* The documented ranges, kept here apart from the table in config.c so
 * that a changed bound fails this test. */
static const struct {
    const char *group;
    const char *name;
    const char *env;
    long long min;
    long long max;
} numeric_keys[] = {
    {"api", "connect_timeout_ms", "CHATT2ME_API_CONNECT_TIMEOUT_MS", 100,
     600000},
    {"api", "request_timeout_ms", "CHATT2ME_API_REQUEST_TIMEOUT_MS", 100,
     600000},
    {"api", "max_response_bytes", "CHATT2ME_API_MAX_RESPONSE_BYTES", 1024,
     16777216},
    {"retry", "max_attempts", "CHATT2ME_RETRY_MAX_ATTEMPTS", 1, 100},
    {"retry", "backoff_base_ms", "CHATT2ME_RETRY_BACKOFF_BASE_MS", 1,
     3600000},
    {"retry", "backoff_max_ms", "CHATT2ME_RETRY_BACKOFF_MAX_MS", 1, 3600000},
    {"retry", "max_total_ms", "CHATT2ME_RETRY_MAX_TOTAL_MS", 1000, 86400000},
    {"worker", "max_in_flight", "CHATT2ME_WORKER_MAX_IN_FLIGHT", 1, 10000},
    {"worker", "max_buffered", "CHATT2ME_WORKER_MAX_BUFFERED", 1, 1000000},
    {"worker", "max_request_bytes", "CHATT2ME_WORKER_MAX_REQUEST_BYTES", 1024,
     104857600},
    {"worker", "drain_timeout_ms", "CHATT2ME_WORKER_DRAIN_TIMEOUT_MS", 0,
     3600000},
    {"worker", "revoke_timeout_ms", "CHATT2ME_WORKER_REVOKE_TIMEOUT_MS", 0,
     3600000},
    {"worker", "produce_failure_exit_ms",
     "CHATT2ME_WORKER_PRODUCE_FAILURE_EXIT_MS", 1000, 3600000},
    {"worker", "commit_interval_ms", "CHATT2ME_WORKER_COMMIT_INTERVAL_MS", 10,
     600000},
    {"health", "port", "CHATT2ME_HEALTH_PORT", 0, 65535},
    {"health", "stale_after_ms", "CHATT2ME_HEALTH_STALE_AFTER_MS", 1000,
     600000},
};

static int load_env_number(struct config *cfg, const char *env,
                           long long value, char *errstr, size_t errstr_size)
{
    char var[128];
    char *environ_list[] = {var, NULL};

    snprintf(var, sizeof(var), "%s=%lld", env, value);
    fake_environ = environ_list;
    return config_load_env(cfg, fake_getenv, errstr, errstr_size);
}

static void test_bounds_env(void **state)
{
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(numeric_keys) / sizeof(numeric_keys[0]);
         i++) {
        const char *env = numeric_keys[i].env;
        char errstr[512] = "";
        char expected[128];

        if (load_env_number(cfg, env, numeric_keys[i].min - 1, errstr,
                            sizeof(errstr)) != -1)
            fail_msg("%s accepted min - 1", env);
        assert_non_null(strstr(errstr, env));
        assert_non_null(strstr(errstr, "is out of range"));

        if (load_env_number(cfg, env, numeric_keys[i].max + 1, errstr,
                            sizeof(errstr)) != -1)
            fail_msg("%s accepted max + 1", env);
        assert_non_null(strstr(errstr, env));

        if (load_env_number(cfg, env, numeric_keys[i].min, errstr,
                            sizeof(errstr)) != 0)
            fail_msg("%s rejected min: %s", env, errstr);
        snprintf(expected, sizeof(expected), "  %s = %lld;",
                 numeric_keys[i].name, numeric_keys[i].min);
        if (!printed_contains(cfg, expected))
            fail_msg("%s did not set %s", env, expected);

        if (load_env_number(cfg, env, numeric_keys[i].max, errstr,
                            sizeof(errstr)) != 0)
            fail_msg("%s rejected max: %s", env, errstr);
        snprintf(expected, sizeof(expected), "  %s = %lld;",
                 numeric_keys[i].name, numeric_keys[i].max);
        if (!printed_contains(cfg, expected))
            fail_msg("%s did not set %s", env, expected);
    }
}

static void test_bounds_file(void **state)
{
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(numeric_keys) / sizeof(numeric_keys[0]);
         i++) {
        const long long rejected[] = {numeric_keys[i].min - 1,
                                      numeric_keys[i].max + 1};
        const long long accepted[] = {numeric_keys[i].min,
                                      numeric_keys[i].max};
        char path[128];

        snprintf(path, sizeof(path), "%s.%s", numeric_keys[i].group,
                 numeric_keys[i].name);
        for (size_t j = 0; j < 2; j++) {
            char text[256];
            char errstr[512] = "";

            snprintf(text, sizeof(text), "%s = {\n  %s = %lld;\n};\n",
                     numeric_keys[i].group, numeric_keys[i].name,
                     rejected[j]);
            if (load_text(cfg, text, errstr, sizeof(errstr)) != -1)
                fail_msg("%s accepted %lld", path, rejected[j]);
            assert_non_null(strstr(errstr, ":2: "));
            assert_non_null(strstr(errstr, path));
            assert_non_null(strstr(errstr, "is out of range"));

            snprintf(text, sizeof(text), "%s = {\n  %s = %lld;\n};\n",
                     numeric_keys[i].group, numeric_keys[i].name,
                     accepted[j]);
            if (load_text(cfg, text, errstr, sizeof(errstr)) != 0)
                fail_msg("%s rejected %lld: %s", path, accepted[j], errstr);
        }
    }
}

static void test_bounds_validate(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    cfg->api_key = strdup("key-123");
    cfg->max_attempts = 0;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "retry.max_attempts"));
    assert_non_null(strstr(errstr, "CHATT2ME_RETRY_MAX_ATTEMPTS"));
    assert_non_null(strstr(errstr, "0 is out of range, expected 1 to 100"));

    cfg->max_attempts = 5;
    cfg->max_response_bytes = 16777217;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "api.max_response_bytes"));

    cfg->max_response_bytes = 65536;
    cfg->log_level = (enum log_level)7;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "log.level"));
}

/* ---- the environment ---- */

static void test_env_overrides_file(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *environ_list[] = {
        "CHATT2ME_API_CONNECT_TIMEOUT_MS=2000",
        "CHATT2ME_KAFKA_BROKERS=env-broker:9092",
        "CHATT2ME_API_TLS_VERIFY=false",
        "CHATT2ME_LOG_LEVEL=warn",
        "CHATT2ME_LOG_FORMAT=json",
        "CHATT2ME_API_BASE_URL=https://staging.example//",
        "CHATT2ME_API_CA_FILE=/etc/ssl/ca.pem",
        NULL,
    };

    assert_int_equal(load_text(cfg,
                               "api = { connect_timeout_ms = 1000; "
                               "request_timeout_ms = 9000; };\n"
                               "kafka = { brokers = \"file-broker:9092\"; };\n",
                               errstr, sizeof(errstr)),
                     0);
    fake_environ = environ_list;
    assert_int_equal(config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(cfg->connect_timeout_ms, 2000);
    assert_string_equal(cfg->brokers, "env-broker:9092");
    assert_false(cfg->tls_verify);
    assert_int_equal(cfg->log_level, LOG_LEVEL_WARN);
    assert_int_equal(cfg->log_format, LOG_FORMAT_JSON);
    assert_string_equal(cfg->base_url, "https://staging.example");
    assert_string_equal(cfg->ca_file, "/etc/ssl/ca.pem");
    /* Set only in the file. */
    assert_int_equal(cfg->request_timeout_ms, 9000);
}

static void test_env_empty_ca_file_unsets(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *environ_list[] = {"CHATT2ME_API_CA_FILE=", NULL};

    cfg->ca_file = strdup("/etc/ca.pem");
    fake_environ = environ_list;
    assert_int_equal(config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)),
                     0);
    assert_null(cfg->ca_file);
}

static void test_env_invalid_values(void **state)
{
    static const struct {
        const char *var;
        const char *expected;
    } cases[] = {
        {"CHATT2ME_RETRY_MAX_ATTEMPTS=12abc",
         "invalid CHATT2ME_RETRY_MAX_ATTEMPTS: \"12abc\" is not an integer"},
        {"CHATT2ME_RETRY_MAX_ATTEMPTS=", "\"\" is not an integer"},
        {"CHATT2ME_RETRY_MAX_ATTEMPTS= 5", "\" 5\" is not an integer"},
        {"CHATT2ME_RETRY_MAX_ATTEMPTS=5.0", "\"5.0\" is not an integer"},
        {"CHATT2ME_RETRY_MAX_ATTEMPTS=99999999999999999999",
         "is out of range, expected 1 to 100"},
        {"CHATT2ME_API_TLS_VERIFY=yes",
         "invalid CHATT2ME_API_TLS_VERIFY: \"yes\" is not a boolean, "
         "expected true or false"},
        {"CHATT2ME_LOG_LEVEL=INFO", "\"INFO\" is not a log level"},
        {"CHATT2ME_LOG_FORMAT=xml", "\"xml\" is not a log format"},
        {"CHATT2ME_KAFKA_BROKERS=",
         "CHATT2ME_KAFKA_BROKERS: must not be empty"},
        {"CHATT2ME_KAFKA_GROUP_ID=a\rb",
         "CHATT2ME_KAFKA_GROUP_ID: contains a control character"},
        {"CHATT2ME_API_BASE_URL=api.chatt2.me", "must start with https://"},
        {"CHATT2ME_KAFKA_DEAD_LETTER_TOPIC=dead/letters",
         "is not a valid topic name"},
        {"CHATT2ME_HEALTH_ADDRESS=health.local",
         "invalid CHATT2ME_HEALTH_ADDRESS: \"health.local\" is not a numeric "
         "IPv4 or IPv6 address"},
        {"CHATT2ME_HEALTH_ENABLED=on", "\"on\" is not a boolean"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *environ_list[] = {(char *)cases[i].var, NULL};
        char errstr[512] = "";

        fake_environ = environ_list;
        assert_int_equal(
            config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)), -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
    }
}

static void test_env_bool_forms(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *set_true[] = {"CHATT2ME_RETRY_PAYMENT_ON_UNKNOWN_OUTCOME=1", NULL};
    char *set_false[] = {"CHATT2ME_RETRY_PAYMENT_ON_UNKNOWN_OUTCOME=0", NULL};
    char *set_word[] = {"CHATT2ME_RETRY_PAYMENT_ON_UNKNOWN_OUTCOME=true",
                        NULL};

    fake_environ = set_true;
    assert_int_equal(config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)),
                     0);
    assert_true(cfg->retry_payment_on_unknown_outcome);
    fake_environ = set_false;
    assert_int_equal(config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)),
                     0);
    assert_false(cfg->retry_payment_on_unknown_outcome);
    fake_environ = set_word;
    assert_int_equal(config_load_env(cfg, fake_getenv, errstr, sizeof(errstr)),
                     0);
    assert_true(cfg->retry_payment_on_unknown_outcome);
}

/* ---- librdkafka properties ---- */

static const char *property_value(const struct config_properties *props,
                                  const char *name)
{
    for (size_t i = 0; i < props->count; i++) {
        if (strcmp(props->items[i].name, name) == 0)
            return props->items[i].value;
    }
    return NULL;
}

static void test_properties_from_file(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    const char *text =
        "kafka = {\n"
        "  properties = [ \"security.protocol=SASL_SSL\",\n"
        "                 \"sasl.jaas.like=a=b\", \"empty.value=\" ];\n"
        "  consumer_properties = ( \"fetch.max.bytes=1048576\" );\n"
        "  producer_properties = [ \"linger.ms=5\", \"acks=all\" ];\n"
        "};\n";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), 0);
    assert_int_equal(cfg->common_properties.count, 3);
    assert_string_equal(
        property_value(&cfg->common_properties, "security.protocol"),
        "SASL_SSL");
    assert_string_equal(
        property_value(&cfg->common_properties, "sasl.jaas.like"), "a=b");
    assert_string_equal(property_value(&cfg->common_properties, "empty.value"),
                        "");
    assert_int_equal(cfg->consumer_properties.count, 1);
    assert_string_equal(
        property_value(&cfg->consumer_properties, "fetch.max.bytes"),
        "1048576");
    assert_int_equal(cfg->producer_properties.count, 2);
    assert_string_equal(property_value(&cfg->producer_properties, "acks"),
                        "all");
}

static void test_properties_file_errors(void **state)
{
    static const struct {
        const char *text;
        const char *expected;
    } cases[] = {
        {"kafka = {\n properties = [ \"sasl.password hunter2\" ]; };",
         ":2: kafka.properties: element 1 is not of the form "
         "\"name=value\""},
        {"kafka = {\n properties = ( \"a=b\", 5 ); };",
         "element 2 is an integer, expected"},
        {"kafka = {\n properties = [ \"linger.ms=1\", \"linger.ms=2\" ]; };",
         "element 2: linger.ms is set twice"},
        {"kafka = {\n properties = [ \"Sasl.Password=hunter2\" ]; };",
         "element 1: invalid property name"},
        {"kafka = {\n properties = [ \"=hunter2\" ]; };",
         "element 1: the property name is empty"},
        {"kafka = {\n consumer_properties = [ \"enable.auto.commit=true\" ]; "
         "};",
         "enable.auto.commit cannot be set: the worker sets it"},
        {"kafka = {\n properties = [ \"enable.auto.offset.store=true\" ]; };",
         "enable.auto.offset.store cannot be set"},
        {"kafka = {\n producer_properties = [ \"enable.idempotence=false\" ]; "
         "};",
         "enable.idempotence cannot be set"},
        {"kafka = {\n properties = [ \"group.id=other\" ]; };",
         "group.id cannot be set"},
        {"kafka = {\n producer_properties = [ \"transactional.id=t\" ]; };",
         "transactional.id cannot be set"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";

        assert_int_equal(load_text(cfg, cases[i].text, errstr,
                                   sizeof(errstr)),
                         -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
        assert_null(strstr(errstr, "hunter2"));
    }
    /* A rejected list adds nothing. */
    assert_int_equal(cfg->common_properties.count, 0);
}

static void test_properties_allowed_overrides(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    const char *text =
        "kafka = { properties = [ \"client.id=c\", \"bootstrap.servers=b:1\" ];"
        " producer_properties = [ \"acks=1\" ];"
        " consumer_properties = "
        "[ \"partition.assignment.strategy=cooperative-sticky\" ]; };";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), 0);
    assert_int_equal(cfg->common_properties.count, 2);
    assert_int_equal(cfg->producer_properties.count, 1);
    assert_int_equal(cfg->consumer_properties.count, 1);
}

static void test_properties_from_env(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *environ_list[] = {
        "PATH=/usr/bin",
        "CHATT2ME_KAFKA_PROPERTY_SASL_MECHANISM=PLAIN",
        "CHATT2ME_KAFKA_PROPERTY_security_protocol=SASL_SSL",
        "CHATT2ME_CONSUMER_PROPERTY_FETCH_MAX_BYTES=2097152",
        "CHATT2ME_PRODUCER_PROPERTY_LINGER_MS=10",
        "CHATT2ME_KAFKA_PROPERTY_SASL_PASSWORD=pw=with=equals",
        "CHATT2ME_KAFKA_BROKERS=ignored-here:9092",
        NULL,
    };

    assert_int_equal(
        load_text(cfg,
                  "kafka = { properties = [ \"sasl.mechanism=SCRAM-SHA-512\","
                  " \"client.id=from-file\" ]; };",
                  errstr, sizeof(errstr)),
        0);
    assert_int_equal(config_load_env_properties(cfg, environ_list, errstr,
                                                sizeof(errstr)),
                     0);
    assert_int_equal(cfg->common_properties.count, 4);
    /* The environment wins over the file for the same property. */
    assert_string_equal(
        property_value(&cfg->common_properties, "sasl.mechanism"), "PLAIN");
    assert_string_equal(property_value(&cfg->common_properties, "client.id"),
                        "from-file");
    assert_string_equal(
        property_value(&cfg->common_properties, "security.protocol"),
        "SASL_SSL");
    assert_string_equal(
        property_value(&cfg->common_properties, "sasl.password"),
        "pw=with=equals");
    assert_int_equal(cfg->consumer_properties.count, 1);
    assert_string_equal(
        property_value(&cfg->consumer_properties, "fetch.max.bytes"),
        "2097152");
    assert_int_equal(cfg->producer_properties.count, 1);
    assert_string_equal(property_value(&cfg->producer_properties, "linger.ms"),
                        "10");
    /* config_load_env_properties leaves plain settings to config_load_env. */
    assert_string_equal(cfg->brokers, "localhost:9092");
}

static void test_properties_env_errors(void **state)
{
    static const struct {
        const char *vars[3];
        const char *expected;
    } cases[] = {
        {{"CHATT2ME_KAFKA_PROPERTY_=hunter2", NULL, NULL},
         "invalid CHATT2ME_KAFKA_PROPERTY_: the property name is missing"},
        {{"CHATT2ME_KAFKA_PROPERTY_SASL-PASSWORD=hunter2", NULL, NULL},
         "invalid CHATT2ME_KAFKA_PROPERTY_SASL-PASSWORD: after "
         "CHATT2ME_KAFKA_PROPERTY_ only letters"},
        {{"CHATT2ME_KAFKA_PROPERTY_SASL_PASSWORD=hunter2",
          "CHATT2ME_KAFKA_PROPERTY_sasl_password=hunter2", NULL},
         "another CHATT2ME_KAFKA_PROPERTY_ variable also sets sasl.password"},
        {{"CHATT2ME_CONSUMER_PROPERTY_ENABLE_AUTO_COMMIT=true", NULL, NULL},
         "invalid CHATT2ME_CONSUMER_PROPERTY_ENABLE_AUTO_COMMIT: "
         "enable.auto.commit cannot be set"},
        {{"CHATT2ME_KAFKA_PROPERTY_ENABLE_AUTO_OFFSET_STORE=true", NULL, NULL},
         "enable.auto.offset.store cannot be set"},
        {{"CHATT2ME_PRODUCER_PROPERTY_ENABLE_IDEMPOTENCE=false", NULL, NULL},
         "enable.idempotence cannot be set"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";

        assert_int_equal(config_load_env_properties(
                             cfg, (char *const *)cases[i].vars, errstr,
                             sizeof(errstr)),
                         -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
        assert_null(strstr(errstr, "hunter2"));
    }
    /* Nothing is merged when one variable is invalid. */
    assert_int_equal(cfg->common_properties.count, 0);
}

static void test_property_sensitive_names(void **state)
{
    static const struct {
        const char *name;
        bool sensitive;
    } cases[] = {
        {"sasl.password", true},
        {"ssl.key.password", true},
        {"ssl.key.pem", true},
        {"ssl_key", true},
        {"sasl.oauthbearer.client.secret", true},
        {"ssl.keystore.password", true},
        {"sasl.oauthbearer.config", true},
        {"SASL.PASSWORD", true},
        {"my.custom.password.field", true},
        {"client.secret.x", true},
        {"sasl.oauthbearer.assertion.private.key.passphrase", true},
        {"sasl.username", false},
        {"sasl.mechanism", false},
        {"ssl.ca.location", false},
        {"ssl.certificate.pem", false},
        {"ssl.key.location", false},
        {"bootstrap.servers", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (config_property_is_sensitive(cases[i].name) != cases[i].sensitive)
            fail_msg("%s: expected sensitive=%d", cases[i].name,
                     cases[i].sensitive);
    }
}

/* ---- the API key ---- */

static void test_key_from_env(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *environ_list[] = {"CHATT2ME_API_KEY=key-from-env", NULL};

    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->api_key, "key-from-env");
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);
}

static void test_key_from_file_trims_newline(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char path[64];
    char var[128];
    char *environ_list[] = {var, NULL};

    write_temp_file("key-from-file\n", 14, path, sizeof(path));
    snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->api_key, "key-from-file");
    unlink(path);
}

static void test_key_file_without_newline(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char path[64];
    char var[128];
    char *environ_list[] = {var, NULL};

    write_temp_file("key-no-newline", 14, path, sizeof(path));
    snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->api_key, "key-no-newline");
    unlink(path);
}

static void test_key_env_wins_over_file(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char path[64];
    char var[128];
    char *environ_list[] = {"CHATT2ME_API_KEY=key-from-env", var, NULL};

    write_temp_file("key-from-file\n", 14, path, sizeof(path));
    snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->api_key, "key-from-env");
    unlink(path);
}

static void test_key_empty_env_uses_file(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char path[64];
    char var[128];
    char *environ_list[] = {"CHATT2ME_API_KEY=", var, NULL};

    write_temp_file("key-from-file\n", 14, path, sizeof(path));
    snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_string_equal(cfg->api_key, "key-from-file");
    unlink(path);
}

static void test_key_missing(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    fake_environ = NULL;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_null(cfg->api_key);
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "the API key is not set"));
    assert_non_null(strstr(errstr, "CHATT2ME_API_KEY "));
    assert_non_null(strstr(errstr, "CHATT2ME_API_KEY_FILE"));
}

static void test_key_env_invalid_not_echoed(void **state)
{
    static const struct {
        const char *var;
        const char *expected;
    } cases[] = {
        {"CHATT2ME_API_KEY=Secret Part2", "contains a space at position 7"},
        {"CHATT2ME_API_KEY=SecretPart2 ", "contains a space at position 12"},
        {"CHATT2ME_API_KEY=SecretPart2\r\nX-Injected: 1",
         "contains a line break (CR or LF) at position 12"},
        {"CHATT2ME_API_KEY=SecretPart2\n", "contains a line break"},
        {"CHATT2ME_API_KEY=Secret\tPart2", "contains a tab at position 7"},
        {"CHATT2ME_API_KEY=Secret\x01Part2", "contains a control character"},
        {"CHATT2ME_API_KEY=Secret\xe2\x80\x8bPart2", "a non-ASCII byte"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *environ_list[] = {(char *)cases[i].var, NULL};
        char errstr[512] = "";

        fake_environ = environ_list;
        assert_int_equal(
            config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)),
            -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
        assert_non_null(strstr(errstr, "CHATT2ME_API_KEY"));
        assert_null(strstr(errstr, "Secret"));
        assert_null(strstr(errstr, "Part2"));
        assert_null(cfg->api_key);
    }
}

static void test_key_file_invalid_not_echoed(void **state)
{
    static const struct {
        const char *content;
        size_t len;
        const char *expected;
    } cases[] = {
        {"SecretPart2\r\n", 13, "contains a line break (CR or LF)"},
        {"SecretPart2\n\n", 13, "contains a line break"},
        {"Secret Part2\n", 13, "contains a space at position 7"},
        {"\n", 1, "is empty"},
        {"", 0, "is empty"},
        {"Secret\0Part2", 12, "contains a NUL byte"},
    };
    struct config *cfg = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";
        char path[64];
        char var[128];
        char *environ_list[] = {var, NULL};
        int rc;

        write_temp_file(cases[i].content, cases[i].len, path, sizeof(path));
        snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
        fake_environ = environ_list;
        rc = config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr));
        unlink(path);
        assert_int_equal(rc, -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
        assert_non_null(strstr(errstr, path));
        assert_null(strstr(errstr, "Secret"));
        assert_null(strstr(errstr, "Part2"));
        assert_null(cfg->api_key);
    }
}

static void test_key_file_missing_or_large(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *missing[] = {"CHATT2ME_API_KEY_FILE=/nonexistent/api-key", NULL};
    char large[5000];
    char path[64];
    char var[128];
    char *environ_list[] = {var, NULL};

    fake_environ = missing;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "/nonexistent/api-key"));
    assert_non_null(strstr(errstr, "No such file or directory"));

    memset(large, 'k', sizeof(large));
    write_temp_file(large, sizeof(large), path, sizeof(path));
    snprintf(var, sizeof(var), "CHATT2ME_API_KEY_FILE=%s", path);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), -1);
    unlink(path);
    assert_non_null(strstr(errstr, "is larger than 4096 bytes"));
    assert_null(strstr(errstr, "kkkk"));
}

static void test_key_validate_rejects_space(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    cfg->api_key = strdup("Secret Part2");
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "the API key contains a space"));
    assert_null(strstr(errstr, "Secret"));
}

/* ---- cross-checks ---- */

static void test_validate_cross_checks(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    cfg->api_key = strdup("key-123");

    cfg->backoff_base_ms = 40000;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "retry.backoff_base_ms (40000) must not "
                                   "be greater than retry.backoff_max_ms "
                                   "(30000)"));
    cfg->backoff_base_ms = 30000;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);

    cfg->max_buffered = 255;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "worker.max_buffered (255) must be at "
                                   "least worker.max_in_flight (256)"));
    cfg->max_buffered = 256;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);

    cfg->request_timeout_ms = 4999;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "api.request_timeout_ms (4999) must be "
                                   "at least api.connect_timeout_ms (5000)"));
    cfg->request_timeout_ms = 5000;
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);
}

static void test_validate_topics_distinct(void **state)
{
    static const struct {
        const char *requests;
        const char *results;
        const char *dead_letters;
        const char *expected;
    } cases[] = {
        {"t", "t", "d", "kafka.results_topic and kafka.requests_topic"},
        {"t", "r", "t", "kafka.dead_letter_topic and kafka.requests_topic"},
        {"q", "t", "t", "kafka.dead_letter_topic and kafka.results_topic"},
    };
    struct config *cfg = *state;

    cfg->api_key = strdup("key-123");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[512] = "";

        free(cfg->requests_topic);
        free(cfg->results_topic);
        free(cfg->dead_letter_topic);
        cfg->requests_topic = strdup(cases[i].requests);
        cfg->results_topic = strdup(cases[i].results);
        cfg->dead_letter_topic = strdup(cases[i].dead_letters);
        assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
        if (strstr(errstr, cases[i].expected) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errstr,
                     cases[i].expected);
    }
}

static void test_validate_empty_topic(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";

    cfg->api_key = strdup("key-123");
    cfg->results_topic[0] = '\0';
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "kafka.results_topic"));
    assert_non_null(strstr(errstr, "must not be empty"));
}

static void test_validate_ca_file_readable(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char path[64];

    cfg->api_key = strdup("key-123");
    cfg->ca_file = strdup("/nonexistent/ca.pem");
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "api.ca_file: cannot read "
                                   "/nonexistent/ca.pem"));

    write_temp_file("pem", 3, path, sizeof(path));
    free(cfg->ca_file);
    cfg->ca_file = strdup(path);
    assert_int_equal(config_validate(cfg, errstr, sizeof(errstr)), 0);
    unlink(path);
}

/* ---- printing ---- */

static void test_print_redacts_secrets(void **state)
{
    struct config *cfg = *state;
    char errstr[512] = "";
    char *environ_list[] = {
        "CHATT2ME_API_KEY=TopSecretApiKey42",
        "CHATT2ME_KAFKA_PROPERTY_SASL_PASSWORD=hunter2sasl",
        "CHATT2ME_KAFKA_PROPERTY_SASL_USERNAME=alice-user",
        "CHATT2ME_KAFKA_PROPERTY_SSL_KEY_PASSWORD=hunter2keypw",
        "CHATT2ME_CONSUMER_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET=hunter2oa",
        "CHATT2ME_PRODUCER_PROPERTY_SASL_OAUTHBEARER_CONFIG=scope=x "
        "secret=hunter2cfg",
        NULL,
    };
    char *printed;

    assert_int_equal(load_text(cfg,
                               "kafka = { properties = [ \"ssl.key.pem="
                               "-----BEGIN PRIVATE KEY-----\\nhunter2pem\" ]; "
                               "};",
                               errstr, sizeof(errstr)),
                     0);
    fake_environ = environ_list;
    assert_int_equal(
        config_load_api_key(cfg, fake_getenv, errstr, sizeof(errstr)), 0);
    assert_int_equal(config_load_env_properties(cfg, environ_list, errstr,
                                                sizeof(errstr)),
                     0);

    printed = print_to_string(cfg);
    assert_null(strstr(printed, "TopSecretApiKey42"));
    assert_null(strstr(printed, "hunter2"));
    assert_null(strstr(printed, "BEGIN PRIVATE KEY"));
    assert_non_null(strstr(printed, "# key = [redacted];"));
    assert_non_null(strstr(printed, "\"sasl.password=[redacted]\""));
    assert_non_null(strstr(printed, "\"ssl.key.pem=[redacted]\""));
    assert_non_null(strstr(printed, "\"ssl.key.password=[redacted]\""));
    assert_non_null(
        strstr(printed, "\"sasl.oauthbearer.client.secret=[redacted]\""));
    assert_non_null(strstr(printed, "\"sasl.oauthbearer.config=[redacted]\""));
    assert_non_null(strstr(printed, "\"sasl.username=alice-user\""));
    free(printed);
}

static void test_print_key_not_set(void **state)
{
    struct config *cfg = *state;

    assert_true(printed_contains(cfg, "# key = (not set);"));
}

/* The output of config_print loads back into the same configuration. */
static void test_print_loads_back(void **state)
{
    struct config *cfg = *state;
    struct config reloaded;
    char errstr[512] = "";
    char path[64];
    char *first;
    char *second;
    const char *text =
        "kafka = { group_id = \"quote\\\" back\\\\slash\";"
        " properties = [ \"ssl.ca.pem=line1\\nline2\" ];"
        " producer_properties = [ \"linger.ms=5\", \"acks=all\" ]; };\n"
        "api = { base_url = \"http://127.0.0.1:9999\"; tls_verify = false;"
        " ca_file = \"/etc/ca.pem\"; };\n"
        "retry = { max_attempts = 9; payment_on_unknown_outcome = true; };\n"
        "worker = { max_request_bytes = 2048; };\n"
        "health = { enabled = false; address = \"::1\"; port = 0;"
        " stale_after_ms = 1000; };\n"
        "log = { level = \"debug\"; format = \"json\"; };\n";

    assert_int_equal(load_text(cfg, text, errstr, sizeof(errstr)), 0);
    first = print_to_string(cfg);
    write_temp_file(first, strlen(first), path, sizeof(path));

    config_set_defaults(&reloaded);
    if (config_load_file(&reloaded, path, errstr, sizeof(errstr)) != 0)
        fail_msg("%s\n%s", errstr, first);
    unlink(path);
    second = print_to_string(&reloaded);
    assert_string_equal(second, first);
    assert_string_equal(reloaded.group_id, "quote\" back\\slash");
    assert_string_equal(
        property_value(&reloaded.common_properties, "ssl.ca.pem"),
        "line1\nline2");
    free(first);
    free(second);
    config_free(&reloaded);
}

static void test_free_twice_safe(void **state)
{
    struct config *cfg = *state;

    cfg->api_key = strdup("key-123");
    config_free(cfg);
    assert_null(cfg->brokers);
    assert_null(cfg->api_key);
    assert_null(cfg->common_properties.items);
    assert_int_equal(cfg->common_properties.count, 0);
    /* The teardown frees the same struct again. */
}

/* Stores the source tree root: argv[1], or the path of this file minus
 * tests/unit/test_config.c. */
static void find_source_root(int argc, char **argv)
{
    const char *suffix = "tests/unit/test_config.c";
    size_t file_len = strlen(__FILE__);
    size_t suffix_len = strlen(suffix);

    if (argc > 1) {
        snprintf(source_root, sizeof(source_root), "%s", argv[1]);
        return;
    }
    if (file_len >= suffix_len &&
        strcmp(__FILE__ + file_len - suffix_len, suffix) == 0 &&
        file_len > suffix_len + 1) {
        snprintf(source_root, sizeof(source_root), "%.*s",
                 (int)(file_len - suffix_len - 1), __FILE__);
        return;
    }
    snprintf(source_root, sizeof(source_root), ".");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_documented_values,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_valid_with_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_example_file_equals_defaults,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_docs_name_every_setting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_help_lists_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_overrides_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_unknown_setting_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_unknown_group_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_group_not_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_type_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_syntax_error_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_missing_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_api_key_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_invalid_values, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_topic_too_long, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_health_address_forms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_ca_file_empty_unsets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounds_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_validate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_empty_ca_file_unsets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_invalid_values, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_bool_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_properties_from_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_properties_file_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_properties_allowed_overrides,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_properties_from_env, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_properties_env_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_property_sensitive_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_from_file_trims_newline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_without_newline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_env_wins_over_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_empty_env_uses_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_env_invalid_not_echoed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_file_invalid_not_echoed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_missing_or_large, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_validate_rejects_space, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validate_cross_checks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validate_topics_distinct, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validate_empty_topic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validate_ca_file_readable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_print_redacts_secrets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_print_key_not_set, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_print_loads_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_twice_safe, setup, teardown),
    };

    find_source_root(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
