/* The worker: one event loop that consumes send requests, sends them to
 * Chatt2.me and produces their results, until a signal stops it. */
#ifndef C2M_WORKER_H
#define C2M_WORKER_H

#include "config.h"

#include <signal.h>

struct worker;

/* Set by main's signal handlers, read by the loop: a stop (SIGTERM or
 * SIGINT) and a key reload (SIGHUP). Flags rather than pipe bytes alone,
 * so that no signal is lost when the wake-up pipe is full, and a burst of
 * SIGHUPs reloads once. */
extern volatile sig_atomic_t worker_stop_requested;
extern volatile sig_atomic_t worker_reload_requested;

/* Exit codes of worker_run(), also the process's exit codes. */
enum worker_exit {
    WORKER_EXIT_OK = 0,
    WORKER_EXIT_STARTUP = 2,        /* could not start: brokers, topics */
    WORKER_EXIT_PRODUCE_FAILED = 3, /* results could not be produced */
    WORKER_EXIT_FATAL = 4,          /* a Kafka client failed fatally */
};

/* Creates the clients and checks that the topics exist. A stop signal
 * during start-up makes it return NULL with worker_stop_requested set. cfg and
 * metrics must outlive the worker. signal_fd is the read end of a pipe that receives a byte
 * for every SIGTERM or SIGINT. Returns NULL with errstr on failure. */
struct metrics;
struct health;

/* metrics must outlive the worker; health may be NULL (disabled). */
struct worker *worker_new(const struct config *cfg, int signal_fd,
                          struct metrics *metrics, struct health *health,
                          char *errstr, size_t errstr_size);

/* Runs until shutdown completes; returns an enum worker_exit value. */
int worker_run(struct worker *worker);

void worker_destroy(struct worker *worker);

#endif
