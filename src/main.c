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
#include "log.h"
#include "worker.h"

extern char **environ;

static volatile sig_atomic_t signals_received;
static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    /* The first signal asks for a drain; a second one means "now". */
    signals_received++;
    if (signals_received > 1)
        _exit(128 + signo);

    int saved_errno = errno;
    ssize_t written = write(signal_pipe[1], "s", 1);
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
            "Usage: chatt2me-worker [--config FILE] [--check-config]\n"
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

static int load_config(struct config *cfg, const struct options *opts,
                       char *errstr, size_t errstr_size)
{
    config_set_defaults(cfg);
    if (opts->config_path &&
        config_load_file(cfg, opts->config_path, errstr, errstr_size) != 0)
        return -1;
    if (config_load_env(cfg, env_lookup, errstr, errstr_size) != 0 ||
        config_load_env_properties(cfg, environ, errstr, errstr_size) != 0)
        return -1;
    if (config_load_api_key(cfg, env_lookup, errstr, errstr_size) != 0)
        return -1;
    return config_validate(cfg, errstr, errstr_size);
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

    struct worker *worker = worker_new(&cfg, signal_pipe[0], errstr,
                                       sizeof(errstr));
    if (!worker) {
        log_error("main", "cannot start: %s", errstr);
        status = WORKER_EXIT_STARTUP;
    } else {
        status = worker_run(worker);
        worker_destroy(worker);
    }

    curl_global_cleanup();
    config_free(&cfg);
    return status;
}
