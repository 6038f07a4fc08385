/* chatt2me-worker: command line, configuration, signals, and the worker. */
#define _GNU_SOURCE /* pipe2 */
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "health.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

extern char **environ;

static volatile sig_atomic_t signals_received;
static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    /* The first signal starts a drain, and a second one exits at once. */
    signals_received++;
    if (signals_received > 1)
        _exit(128 + signo);
    worker_stop_requested = 1;

    /* A full pipe already wakes the loop, so a failed write loses nothing. */
    int saved_errno = errno;
    ssize_t written = write(signal_pipe[1], "s", 1);
    (void)written;
    errno = saved_errno;
}

/* The shutdown watchdog (see begin_shutdown) fired. */
static void on_alarm(int signo)
{
    static const char message[] =
        "chatt2me-worker: shutdown did not finish in time; exiting\n";
    ssize_t written = write(STDERR_FILENO, message, sizeof(message) - 1);

    (void)signo;
    (void)written;
    _exit(1);
}

/* SIGHUP makes the worker re-read CHATT2ME_API_KEY_FILE. */
static void on_hangup(int signo)
{
    (void)signo;
    if (worker_reload_requested)
        return; /* one reload covers a burst of SIGHUPs */
    worker_reload_requested = 1;

    int saved_errno = errno;
    ssize_t written = write(signal_pipe[1], "h", 1);
    (void)written;
    errno = saved_errno;
}

static int install_signals(void)
{
    struct sigaction action = {0};

    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0 ||
        sigaction(SIGINT, &action, NULL) != 0)
        return -1;
    action.sa_handler = on_hangup;
    if (sigaction(SIGHUP, &action, NULL) != 0)
        return -1;
    action.sa_handler = on_alarm;
    if (sigaction(SIGALRM, &action, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The API key lives in this process's memory; a core dump would write it
 * to disk, so the process opts out of core dumps entirely. */
static void disable_core_dumps(void)
{
    struct rlimit none = {0, 0};

    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: chatt2me-worker [-c FILE] [--check-config | --healthcheck]\n"
            "       chatt2me-worker -h | -V\n"
            "\n"
            "Consumes send requests from Kafka, sends them through the Hub\n"
            "Chatt2.me API and produces one result record per request.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   read settings from a libconfig FILE (default:\n"
            "                      $CHATT2ME_CONFIG when set, else built-in\n"
            "                      defaults and the environment only)\n"
            "      --check-config  print the effective configuration with secrets\n"
            "                      redacted, check it, and exit (0 when valid)\n"
            "      --healthcheck   ask the running worker's /healthz on this host\n"
            "                      (health.port) and exit 0 when it is healthy,\n"
            "                      1 otherwise; for container health checks\n"
            "  -h, --help          print this help and exit\n"
            "  -V, --version       print the version and exit\n"
            "\n"
            "The API key comes from CHATT2ME_API_KEY, or from the file named by\n"
            "CHATT2ME_API_KEY_FILE. Settings from the environment override the\n"
            "file:\n\n");
    config_print_env_help(out);
}

struct options {
    const char *config_path;
    bool check_config;
    bool healthcheck;
};

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, struct options *opts)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_usage(stdout);
            return 0;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf("chatt2me-worker %s (librdkafka %s, %s)\n", C2M_VERSION,
                   rd_kafka_version_str(), curl_version());
            return 0;
        }
        if (strcmp(arg, "--check-config") == 0) {
            opts->check_config = true;
        } else if (strcmp(arg, "--healthcheck") == 0) {
            opts->healthcheck = true;
        } else if ((strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) &&
                   i + 1 < argc) {
            opts->config_path = argv[++i];
        } else if (strncmp(arg, "--config=", 9) == 0) {
            opts->config_path = arg + 9;
        } else {
            fprintf(stderr, "chatt2me-worker: unknown option \"%s\";"
                            " see --help\n", arg);
            return 2;
        }
    }
    if (!opts->config_path)
        opts->config_path = getenv("CHATT2ME_CONFIG");
    return -1;
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

static void warn_unknown_env(const char *name)
{
    fprintf(stderr, "chatt2me-worker: warning: %s is not a setting of this"
                    " worker and is ignored; check its spelling in --help\n",
            name);
}

static int load_config(struct config *cfg, const struct options *opts,
                       char *errstr, size_t errstr_size)
{
    config_find_unknown_env(environ, warn_unknown_env);
    config_set_defaults(cfg);
    if (opts->config_path &&
        config_load_file(cfg, opts->config_path, errstr, errstr_size) != 0)
        return -1;
    if (config_load_env(cfg, env_lookup, errstr, errstr_size) != 0 ||
        config_load_env_properties(cfg, environ, errstr, errstr_size) != 0)
        return -1;
    if (config_load_api_key(cfg, env_lookup, errstr, errstr_size) != 0)
        return -1;
    if (config_validate(cfg, errstr, errstr_size) != 0)
        return -1;
    return kafka_check_config(cfg, errstr, errstr_size);
}

static size_t discard_body(char *data, size_t size, size_t count, void *userp)
{
    (void)data;
    (void)userp;
    return size * count;
}

/* Asks the worker on this host for /healthz. Needs no API key, so it
 * reads only the file and the environment. Returns the exit status. */
static int run_healthcheck(const struct options *opts)
{
    struct config cfg;
    char errstr[1024] = "";
    char url[128];
    long status = 0;
    int exit_status = 1;

    config_set_defaults(&cfg);
    if ((opts->config_path &&
         config_load_file(&cfg, opts->config_path, errstr, sizeof(errstr)) != 0) ||
        config_load_env(&cfg, env_lookup, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "chatt2me-worker: invalid configuration: %s\n", errstr);
        config_free(&cfg);
        return 1;
    }
    /* A wildcard or IPv6 listener is reached through loopback. */
    bool ipv6 = strchr(cfg.health_address, ':') != NULL;
    snprintf(url, sizeof(url), "http://%s:%d/healthz",
             ipv6 ? "[::1]" : "127.0.0.1", cfg.health_port);
    config_free(&cfg);

    CURL *easy = curl_easy_init();
    if (!easy)
        return 1;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode code = curl_easy_perform(easy);
    if (code == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200)
        exit_status = 0;
    else
        fprintf(stderr, "chatt2me-worker: %s: %s\n", url,
                code != CURLE_OK ? curl_easy_strerror(code) : "not healthy");
    curl_easy_cleanup(easy);
    return exit_status;
}

int main(int argc, char **argv)
{
    struct options opts = {0};
    struct config cfg;
    char errstr[1024] = "";
    int status;

    disable_core_dumps();
    status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    if (opts.healthcheck)
        return run_healthcheck(&opts);

    int loaded = load_config(&cfg, &opts, errstr, sizeof(errstr));
    if (opts.check_config) {
        config_print(&cfg, stdout);
        if (loaded != 0)
            fprintf(stderr, "chatt2me-worker: invalid configuration: %s\n", errstr);
        config_free(&cfg);
        return loaded == 0 ? 0 : 2;
    }
    if (loaded != 0) {
        fprintf(stderr, "chatt2me-worker: invalid configuration: %s\n", errstr);
        config_free(&cfg);
        return 2;
    }
    log_setup(cfg.log_level, cfg.log_format);

    if (install_signals() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        log_error("main", "cannot set up signals or libcurl");
        config_free(&cfg);
        return 1;
    }

    /* The metrics and the health server start first, so /healthz responds
     * while start-up waits for the brokers. */
    struct metrics *metrics = metrics_new();
    struct health *health = NULL;
    if (cfg.health_enabled) {
        health = health_start(cfg.health_address, cfg.health_port, metrics,
                              cfg.health_stale_after_ms, errstr,
                              sizeof(errstr));
        if (!health) {
            log_error("main", "cannot start the health server: %s", errstr);
            status = WORKER_EXIT_STARTUP;
            goto out;
        }
        log_info("main", "health server listening on %s port %d",
                 cfg.health_address, health_port(health));
    }

    struct worker *worker = worker_new(&cfg, signal_pipe[0], metrics, health,
                                       errstr, sizeof(errstr));
    if (!worker && worker_stop_requested) {
        log_info("main", "stopped during start-up by a signal");
        status = WORKER_EXIT_OK;
    } else if (!worker) {
        log_error("main", "cannot start: %s", errstr);
        status = WORKER_EXIT_STARTUP;
    } else {
        status = worker_run(worker);
        worker_destroy(worker);
    }

out:
    health_stop(health);
    metrics_destroy(metrics);
    curl_global_cleanup();
    config_free(&cfg);
    return status;
}
