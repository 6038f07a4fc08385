/* The event loop: one thread, one epoll set. librdkafka wakes it through
 * queue event pipes, libcurl through its sockets and timer, signals
 * through a pipe. Each iteration runs the same phases in order. */
#define _GNU_SOURCE /* pipe2 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"
#include "util.h"
#include "worker_int.h"

/* epoll data.ptr targets for our own descriptors. HTTP sockets carry
 * HTTP_EPOLL_TAG instead. */
enum wake_tag { WAKE_CONSUMER = 1, WAKE_PRODUCER, WAKE_SIGNAL };
static int wake_tags[] = {0, WAKE_CONSUMER, WAKE_PRODUCER, WAKE_SIGNAL};

volatile sig_atomic_t worker_stop_requested;
volatile sig_atomic_t worker_reload_requested;

/* Records consumed per iteration, so HTTP and results keep flowing while
 * a deep backlog is read. */
#define CONSUME_BATCH 500
/* The loop wakes at least this often to poll the consumer, which keeps
 * the group membership alive even when nothing arrives. */
#define MAX_IDLE_MS 200
/* Seconds after the drain deadline by which the process is gone: the
 * final flush (5 s), leaving the group and destroying the clients. */
#define SHUTDOWN_GRACE_SECONDS 10
/* At most one commit failure warning per this period. */
#define COMMIT_FAILURE_LOG_PERIOD_MS 10000

static const char *getenv_lookup(const char *name)
{
    return getenv(name);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions,
                         void *opaque);

static int watch_fd(struct worker *w, int fd, int *tag, char *errstr,
                    size_t errstr_size)
{
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = tag};

    if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
        util_snprintf(errstr, errstr_size, "epoll_ctl failed: %s",
                      strerror(errno));
        return -1;
    }
    return 0;
}

static int make_wake_pipe(struct worker *w, int fds[2], rd_kafka_queue_t *queue,
                          int *tag, char *errstr, size_t errstr_size)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        util_snprintf(errstr, errstr_size, "pipe2 failed: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(queue, fds[1], "1", 1);
    return watch_fd(w, fds[0], tag, errstr, errstr_size);
}

static void drain_fd(int fd)
{
    char buf[256];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void build_urls(struct worker *w)
{
    for (int i = 0; i < REQUEST_CHANNEL_COUNT; i++) {
        const char *name = request_channel_name((enum request_channel)i);
        size_t len = strlen(w->cfg->base_url) + strlen(name) + 64;
        w->urls[i] = xmalloc(len);
        snprintf(w->urls[i], len, "%s/v1/communication/%s/message",
                 w->cfg->base_url, name);
    }
}

/* librdkafka reports ALL_BROKERS_DOWN when it has lost every broker. Any
 * later sign of life (a record, an acknowledged result, a commit) marks
 * the brokers reachable again, and readiness reports the state. */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
    struct worker *w = opaque;

    kafka_log_error(rk, err, reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        w->brokers_down = true;
}

static void on_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets,
                         void *opaque)
{
    struct worker *w = opaque;

    (void)rk;
    (void)offsets;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        w->brokers_down = false;
        return;
    }
    w->stats.commit_failures++;
    metrics_commit_failure(w->metrics);

    /* While the coordinator is away, every commit fails the same way, so
     * one line per period with a count is enough. */
    int64_t now = util_now_mono_ms();
    w->commit_failures_unlogged++;
    if (now < w->commit_failure_log_due_ms)
        return;
    w->commit_failure_log_due_ms = now + COMMIT_FAILURE_LOG_PERIOD_MS;
    log_warn("worker", "offset commit failed %d time(s) since the last report:"
             " %s; commits are retried every %d ms",
             w->commit_failures_unlogged, rd_kafka_err2str(err),
             w->cfg->commit_interval_ms);
    w->commit_failures_unlogged = 0;
}

static int create_clients(struct worker *w, char *errstr, size_t errstr_size)
{
    const struct config *cfg = w->cfg;
    struct http_options http_options = {
        .api_key = cfg->api_key,
        .ca_file = cfg->ca_file,
        .tls_verify = cfg->tls_verify,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .request_timeout_ms = cfg->request_timeout_ms,
        .max_response_bytes = cfg->max_response_bytes,
        .max_connections = cfg->max_in_flight,
    };

    w->http = http_client_new(w->epoll_fd, &http_options, errstr, errstr_size);
    if (!w->http)
        return -1;
    w->callbacks = (struct kafka_callbacks){
        .rebalance = on_rebalance,
        .committed = on_committed,
        .delivered = produce_delivered,
        .error = on_kafka_error,
        .opaque = w,
    };
    w->producer = kafka_producer_new(cfg, &w->callbacks, errstr, errstr_size);
    if (!w->producer)
        return -1;
    w->consumer = kafka_consumer_new(cfg, &w->callbacks, errstr, errstr_size);
    if (!w->consumer)
        return -1;

    w->consumer_queue = rd_kafka_queue_get_consumer(w->consumer);
    w->producer_queue = rd_kafka_queue_get_main(w->producer);
    if (make_wake_pipe(w, w->consumer_pipe, w->consumer_queue,
                       &wake_tags[WAKE_CONSUMER], errstr, errstr_size) != 0 ||
        make_wake_pipe(w, w->producer_pipe, w->producer_queue,
                       &wake_tags[WAKE_PRODUCER], errstr, errstr_size) != 0)
        return -1;
    return 0;
}

static int check_topics_and_subscribe(struct worker *w, char *errstr,
                                      size_t errstr_size)
{
    const struct config *cfg = w->cfg;
    const char *const topics[] = {cfg->requests_topic, cfg->results_topic,
                                  cfg->dead_letter_topic};
    char reason[512];

    /* Short metadata requests until the deadline, so that a stop signal
     * during start-up is honoured within a second. */
    int64_t deadline = util_now_mono_ms() + cfg->startup_timeout_ms;
    for (;;) {
        int64_t left = deadline - util_now_mono_ms();
        int slice = left > 1000 ? 1000 : (int)(left > 0 ? left : 1);
        int status = kafka_check_topics(w->producer, cfg->brokers, topics, 3,
                                        slice, reason, sizeof(reason));
        if (status == 0)
            break;
        if (worker_stop_requested) {
            util_snprintf(errstr, errstr_size, "start-up stopped by a signal");
            return -1;
        }
        if (status != KAFKA_UNREACHABLE || util_now_mono_ms() >= deadline) {
            util_snprintf(errstr, errstr_size, "%s", reason);
            return -1;
        }
    }

    rd_kafka_topic_partition_list_t *subscription =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subscription, cfg->requests_topic,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(w->consumer, subscription);
    rd_kafka_topic_partition_list_destroy(subscription);
    if (err) {
        util_snprintf(errstr, errstr_size, "cannot subscribe to topic \"%s\": %s",
                      cfg->requests_topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

struct worker *worker_new(const struct config *cfg, int signal_fd,
                          struct metrics *metrics, struct health *health,
                          char *errstr, size_t errstr_size)
{
    struct worker *w = xcalloc(1, sizeof(*w));

    w->cfg = cfg;
    w->metrics = metrics;
    w->health = health;
    w->limits.max_bytes = cfg->max_request_bytes;
    w->limits.max_depth = 64;
    w->signal_fd = signal_fd;
    w->consumer_pipe[0] = w->consumer_pipe[1] = -1;
    w->producer_pipe[0] = w->producer_pipe[1] = -1;
    w->order = order_map_new();
    w->schedule = schedule_new();
    struct guard_config guard_config = {
        .outage_after = cfg->outage_after,
        .auth_pause_after = cfg->auth_pause_after,
        .probe_base_ms = cfg->backoff_base_ms,
        .probe_max_ms = cfg->probe_max_ms,
    };
    guard_init(&w->guard, &guard_config);
    if (getrandom(&w->random_state, sizeof(w->random_state), 0) !=
            (ssize_t)sizeof(w->random_state) ||
        w->random_state == 0)
        w->random_state = (uint64_t)util_now_wall_ms() | 1;
    build_urls(w);

    w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epoll_fd < 0) {
        util_snprintf(errstr, errstr_size, "epoll_create1 failed: %s",
                      strerror(errno));
        goto fail;
    }
    if (watch_fd(w, signal_fd, &wake_tags[WAKE_SIGNAL], errstr, errstr_size) != 0 ||
        create_clients(w, errstr, errstr_size) != 0)
        goto fail;
    if (cfg->exactly_once && txn_start(w, errstr, errstr_size) != 0)
        goto fail;
    if (check_topics_and_subscribe(w, errstr, errstr_size) != 0)
        goto fail;
    health_set(w->health, HEALTH_BROKER_REACHABLE, true);
    return w;

fail:
    worker_destroy(w);
    return NULL;
}

static struct partition_state *partition_add(struct worker *w,
                                             const char *topic,
                                             int32_t partition)
{
    struct partition_state *part = xcalloc(1, sizeof(*part));

    part->topic = xstrdup(topic);
    part->partition = partition;
    part->tracker = tracker_new();
    part->stored_offset = -1;
    part->first_offset = -1;
    part->committed_offset = -1;
    part->worker = w;
    part->next = w->partitions;
    w->partitions = part;
    return part;
}

struct partition_state *worker_partition_find(struct worker *w,
                                              const char *topic,
                                              int32_t partition)
{
    for (struct partition_state *part = w->partitions; part; part = part->next) {
        if (part->partition == partition && strcmp(part->topic, topic) == 0)
            return part;
    }
    return NULL;
}

/* Unlinks part from the assigned list; it is freed with its last job. */
static void partition_release(struct worker *w, struct partition_state *part)
{
    struct partition_state **link = &w->partitions;

    while (*link && *link != part)
        link = &(*link)->next;
    if (*link)
        *link = part->next;
    part->next = NULL;
    part->revoked = true;
    if (part->live_jobs == 0) {
        tracker_destroy(part->tracker);
        free(part->topic);
        free(part);
    }
}

static void set_paused(struct worker *w, bool paused)
{
    rd_kafka_topic_partition_list_t *assignment = NULL;

    if (rd_kafka_assignment(w->consumer, &assignment) == 0 && assignment) {
        if (paused)
            rd_kafka_pause_partitions(w->consumer, assignment);
        else
            rd_kafka_resume_partitions(w->consumer, assignment);
        rd_kafka_topic_partition_list_destroy(assignment);
    }
    w->paused = paused;
}

static size_t live_jobs_of(const struct worker *w,
                           rd_kafka_topic_partition_list_t *partitions)
{
    size_t count = 0;

    for (int i = 0; i < partitions->cnt; i++) {
        struct partition_state *part = worker_partition_find(
            (struct worker *)w, partitions->elems[i].topic,
            partitions->elems[i].partition);
        if (part)
            count += part->live_jobs;
    }
    return count;
}

static void run_once(struct worker *w, int max_wait_ms, bool consume);

/* Hands partitions over: no new sends for them, in-flight ones finish
 * within revoke_timeout_ms, and what completed is committed. */
static void revoke_partitions(struct worker *w,
                   rd_kafka_topic_partition_list_t *partitions)
{
    int64_t deadline = util_now_mono_ms() + w->cfg->revoke_timeout_ms;

    /* A lost assignment (the session timed out) can commit nothing, so
     * waiting for in-flight requests would only delay the new owner. */
    if (rd_kafka_assignment_lost(w->consumer))
        deadline = util_now_mono_ms();

    for (int i = 0; i < partitions->cnt; i++) {
        struct partition_state *part = worker_partition_find(
            w, partitions->elems[i].topic, partitions->elems[i].partition);
        if (!part)
            continue;
        part->revoking = true;
        dispatch_drop_unstarted(w, part);
    }

    while (live_jobs_of(w, partitions) > 0 && util_now_mono_ms() < deadline)
        run_once(w, 50, false /* the consumer is mid-callback */);

    for (int i = 0; i < partitions->cnt; i++) {
        struct partition_state *part = worker_partition_find(
            w, partitions->elems[i].topic, partitions->elems[i].partition);
        if (!part)
            continue;
        dispatch_abort_in_flight(w, part);
        produce_store_offsets(w, part);
        if (part->live_jobs > 0)
            log_warn("worker", "%s [%" PRId32 "]: revoked with %zu results"
                     " not yet acknowledged; those records will be consumed"
                     " again", part->topic, part->partition, part->live_jobs);
    }

    if (w->cfg->exactly_once) {
        txn_commit_if_due(w, true);
    } else if (!rd_kafka_assignment_lost(w->consumer)) {
        rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0 /* sync */);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            metrics_commit_failure(w->metrics);
            log_warn("worker", "cannot commit offsets on revoke: %s",
                     rd_kafka_err2str(err));
        }
    }

    for (int i = 0; i < partitions->cnt; i++) {
        struct partition_state *part = worker_partition_find(
            w, partitions->elems[i].topic, partitions->elems[i].partition);
        if (part)
            partition_release(w, part);
    }
}

static void assign_partitions(struct worker *w,
                   rd_kafka_topic_partition_list_t *partitions)
{
    for (int i = 0; i < partitions->cnt; i++) {
        const char *topic = partitions->elems[i].topic;
        int32_t partition = partitions->elems[i].partition;
        if (!worker_partition_find(w, topic, partition))
            partition_add(w, topic, partition);
        log_info("worker", "assigned %s [%" PRId32 "]", topic, partition);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions,
                         void *opaque)
{
    struct worker *w = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign_partitions(w, partitions);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, partitions);
        else
            rd_kafka_assign(rk, partitions);
        /* New partitions arrive unpaused; keep the worker's state. */
        if (w->paused || w->stopping || w->produce_failed)
            rd_kafka_pause_partitions(rk, partitions);
    } else {
        for (int i = 0; i < partitions->cnt; i++)
            log_info("worker", "revoked %s [%" PRId32 "]",
                     partitions->elems[i].topic, partitions->elems[i].partition);
        revoke_partitions(w, partitions);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, partitions);
        else
            rd_kafka_assign(rk, NULL);
    }

    if (error) {
        log_error("worker", "rebalance failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    health_set(w->health, HEALTH_ASSIGNED, w->partitions != NULL);
}

static void begin_shutdown(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = true;
    health_set(w->health, HEALTH_STOPPING, true);
    /* A watchdog for what the drain deadline cannot bound: closing the
     * consumer and destroying the clients can block while Kafka is down.
     * main's SIGALRM handler ends the process when it fires. */
    int budget_ms = w->produce_failed ? w->cfg->produce_failure_exit_ms
                                      : w->cfg->drain_timeout_ms;
    alarm((unsigned)(budget_ms / 1000) + SHUTDOWN_GRACE_SECONDS);
    w->stop_deadline_ms = util_now_mono_ms() +
                          (w->produce_failed ? w->cfg->produce_failure_exit_ms
                                             : w->cfg->drain_timeout_ms);
    log_info("worker", "%s: stopping; %zu HTTP requests in flight, %zu"
             " requests without a result yet", why,
             http_client_in_flight(w->http), w->buffered);
    set_paused(w, true);
    dispatch_drop_unstarted(w, NULL);
}

static void poll_consumer(struct worker *w)
{
    int n;

    for (n = 0; n < CONSUME_BATCH; n++) {
        /* Past the bound, leave records queued: the partitions are about
         * to be paused, and the consumer serves them again on resume. */
        if (w->buffered >= (size_t)w->cfg->max_buffered && n > 0)
            break;
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->consumer, 0);
        if (!rkm)
            break;
        if (rkm->err) {
            log_warn("worker", "consumer error: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        w->brokers_down = false;
        if (!w->stopping && !w->produce_failed) {
            dispatch_record(w, rkm);
        }
        rd_kafka_message_destroy(rkm);
    }
    w->consumer_more = n == CONSUME_BATCH;
}

/* Returns whether consumption should be paused now: while stopping, while
 * results cannot be produced, while the API guard holds, or while too many
 * requests wait for a result (resuming at three quarters of the bound). */
static bool want_paused(struct worker *w)
{
    size_t max = (size_t)w->cfg->max_buffered;

    if (w->buffered >= max)
        w->backlog_paused = true;
    else if (w->buffered <= max - max / 4)
        w->backlog_paused = false;

    return w->stopping || w->produce_failed || w->backlog_paused ||
           w->guard.mode != GUARD_OPEN;
}

/* A paused worker keeps polling, so the group never evicts it for being
 * slow. */
static void control_flow(struct worker *w)
{
    bool paused = want_paused(w);

    if (paused == w->paused)
        return;
    log_debug("worker", "%s consumption: %zu requests buffered, API %s",
              paused ? "pausing" : "resuming", w->buffered,
              guard_mode_name(w->guard.mode));
    set_paused(w, paused);
}

/* Acts on the flags main's signal handlers set; the pipe bytes only wake
 * the loop. */
static void handle_signals(struct worker *w)
{
    drain_fd(w->signal_fd);
    if (worker_reload_requested) {
        worker_reload_requested = 0;
        worker_reload_api_key(w, false);
    }
    if (worker_stop_requested)
        begin_shutdown(w, "signal received");
}

void worker_reload_api_key(struct worker *w, bool quiet)
{
    struct config fresh = {0};
    char errstr[512] = "";
    const char *inline_key = getenv("CHATT2ME_API_KEY");

    if ((inline_key && *inline_key) || !getenv("CHATT2ME_API_KEY_FILE")) {
        if (!quiet)
            log_warn("worker", "SIGHUP: the API key comes from CHATT2ME_API_KEY,"
                     " which a running process cannot re-read; use"
                     " CHATT2ME_API_KEY_FILE to rotate keys without a restart");
        return;
    }
    if (config_load_api_key(&fresh, getenv_lookup, errstr, sizeof(errstr)) != 0 ||
        !fresh.api_key) {
        log_error("worker", "cannot reload the API key: %s; keeping the"
                  " current one", errstr[0] ? errstr : "no key found");
        return;
    }

    http_client_set_api_key(w->http, fresh.api_key);
    explicit_bzero(fresh.api_key, strlen(fresh.api_key));
    free(fresh.api_key);
    if (!quiet)
        log_info("worker", "API key reloaded from CHATT2ME_API_KEY_FILE");
    if (!quiet && w->guard.mode == GUARD_AUTH_PAUSED) {
        log_info("worker", "resuming after the auth pause with the new key");
        guard_open(&w->guard);
    }
}

static int compute_wait(struct worker *w, int max_wait_ms)
{
    int64_t now = util_now_mono_ms();
    int64_t wait = max_wait_ms;
    int64_t due;

    bool may_send = !w->stopping && !w->produce_failed &&
                    w->guard.mode == GUARD_OPEN &&
                    (int)http_client_in_flight(w->http) < w->cfg->max_in_flight;

    if (w->consumer_more || w->produce_retry || (w->ready_head && may_send))
        return 0;
    due = http_client_next_due(w->http);
    if (due >= 0 && due - now < wait)
        wait = due - now;
    due = schedule_next_due(w->schedule);
    if (due >= 0 && due - now < wait)
        wait = due - now;
    if (w->guard.mode != GUARD_OPEN && !w->guard.probe_in_flight &&
        w->guard.probe_due_ms - now < wait)
        wait = w->guard.probe_due_ms - now;
    return wait < 0 ? 0 : (int)wait;
}

static void handle_events(struct worker *w, int wait_ms)
{
    struct epoll_event events[64];
    int count = epoll_wait(w->epoll_fd, events, 64, wait_ms);

    for (int i = 0; i < count; i++) {
        int *tag = events[i].data.ptr;
        switch (*tag) {
        case WAKE_CONSUMER:
            drain_fd(w->consumer_pipe[0]);
            w->consumer_more = true;
            break;
        case WAKE_PRODUCER:
            drain_fd(w->producer_pipe[0]);
            break;
        case WAKE_SIGNAL:
            handle_signals(w);
            break;
        case HTTP_EPOLL_TAG:
            http_client_on_event(w->http, tag, events[i].events);
            break;
        }
    }
    http_client_release_sockets(w->http);
}

/* Lag per assigned partition: the high watermark the consumer last saw
 * minus the next offset this worker will commit. */
static void publish_lag(struct worker *w, int64_t now)
{
    enum { MAX_PARTITIONS = 1024 };
    int32_t partitions[MAX_PARTITIONS];
    int64_t lags[MAX_PARTITIONS];
    size_t count = 0;

    if (now < w->lag_due_ms)
        return;
    w->lag_due_ms = now + w->cfg->commit_interval_ms;

    for (struct partition_state *part = w->partitions;
         part && count < MAX_PARTITIONS; part = part->next) {
        int64_t low, high;
        int64_t next = tracker_commit_offset(part->tracker);

        lags[count] = -1;
        if (rd_kafka_get_watermark_offsets(w->consumer, part->topic,
                                           part->partition, &low, &high) == 0 &&
            high >= 0 && next >= 0)
            lags[count] = high > next ? high - next : 0;
        partitions[count++] = part->partition;
    }
    metrics_set_lag(w->metrics, w->cfg->requests_topic, partitions, lags, count);
}

/* Gauges and probe flags, refreshed every loop turn: they are a few
 * atomic stores. */
static void publish_state(struct worker *w, int64_t now)
{
    size_t assigned = 0;

    for (struct partition_state *part = w->partitions; part; part = part->next)
        assigned++;
    metrics_set_in_flight(w->metrics, http_client_in_flight(w->http));
    metrics_set_buffered(w->metrics, w->buffered);
    metrics_set_paused_partitions(w->metrics, w->paused ? assigned : 0);
    metrics_set_outage(w->metrics, w->guard.mode == GUARD_OUTAGE);
    metrics_set_auth_paused(w->metrics, w->guard.mode == GUARD_AUTH_PAUSED);
    health_set(w->health, HEALTH_OUTAGE, w->guard.mode == GUARD_OUTAGE);
    health_set(w->health, HEALTH_AUTH_PAUSED,
               w->guard.mode == GUARD_AUTH_PAUSED);
    health_set(w->health, HEALTH_BROKER_REACHABLE, !w->brokers_down);
    publish_lag(w, now);
}

/* One turn of the loop: wait, then each phase in order. */
static void run_once(struct worker *w, int max_wait_ms, bool consume)
{
    handle_events(w, compute_wait(w, max_wait_ms));

    int64_t now = util_now_mono_ms();
    health_beat(w->health, now);
    http_client_on_tick(w->http, now);
    if (consume)
        poll_consumer(w);
    dispatch_run_timers(w, now);
    dispatch_start_sends(w);
    rd_kafka_poll(w->producer, 0);
    produce_retry_queued(w);
    produce_store_offsets(w, NULL);
    txn_commit_if_due(w, false);
    control_flow(w);
    publish_state(w, now);
}

static void finish_shutdown(struct worker *w)
{
    char fatal[512];

    dispatch_abort_in_flight(w, NULL);
    rd_kafka_resp_err_t err = rd_kafka_flush(w->producer, 5000);
    if (err)
        log_warn("worker", "results still unacknowledged at exit: %s",
                 rd_kafka_err2str(err));
    produce_store_offsets(w, NULL);
    txn_commit_if_due(w, true);

    /* Closing commits the stored offsets and leaves the group; it runs the
     * revoke handler, which finds no work left. */
    err = rd_kafka_consumer_close(w->consumer);
    if (err)
        log_warn("worker", "consumer close: %s", rd_kafka_err2str(err));
    if (kafka_fatal_error(w->producer, fatal, sizeof(fatal)))
        w->exit_code = WORKER_EXIT_FATAL;

    log_info("worker", "stopped: consumed %" PRIu64 ", sent %" PRIu64
             ", failed %" PRIu64 ", rejected %" PRIu64 ", dead-lettered %" PRIu64
             ", retries %" PRIu64 ", released for redelivery %" PRIu64
             ", content of unchecked kinds %" PRIu64,
             w->stats.consumed, w->stats.sent, w->stats.failed,
             w->stats.rejected, w->stats.dead_lettered, w->stats.retries,
             w->stats.dropped, w->stats.passed_through);
}

int worker_run(struct worker *w)
{
    char fatal[512];

    /* Each pause drops the records librdkafka fetched ahead, and the refetch
     * after resuming takes a while: a bound close to the in-flight limit
     * pauses all the time. */
    if (w->cfg->max_buffered < 4 * w->cfg->max_in_flight)
        log_warn("worker", "worker.max_buffered (%d) is below 4 times"
                 " worker.max_in_flight (%d); consumption will pause often and"
                 " throughput suffer; raise max_buffered",
                 w->cfg->max_buffered, w->cfg->max_in_flight);
    log_info("worker", "started: group \"%s\", requests from \"%s\", results to"
             " \"%s\", dead letters to \"%s\", up to %d requests in flight",
             w->cfg->group_id, w->cfg->requests_topic, w->cfg->results_topic,
             w->cfg->dead_letter_topic, w->cfg->max_in_flight);

    for (;;) {
        run_once(w, MAX_IDLE_MS, true);

        if (!w->stopping && w->produce_failed) {
            w->exit_code = WORKER_EXIT_PRODUCE_FAILED;
            begin_shutdown(w, "results cannot be produced");
        }
        if (!w->stopping && kafka_fatal_error(w->producer, fatal, sizeof(fatal))) {
            log_error("worker", "the producer failed: %s", fatal);
            w->exit_code = WORKER_EXIT_FATAL;
            begin_shutdown(w, "fatal producer error");
        }
        if (w->stopping &&
            (w->buffered == 0 || util_now_mono_ms() >= w->stop_deadline_ms))
            break;
    }

    finish_shutdown(w);
    return w->exit_code;
}

void worker_destroy(struct worker *w)
{
    if (!w)
        return;

    /* Jobs still alive here had no result; drop them before the clients. */
    while (w->live_jobs) {
        struct job *job = w->live_jobs;
        if (job->transfer)
            http_transfer_abort(w->http, job->transfer);
        job->state = JOB_WAITING;
        order_map_remove(w->order, job);
        dispatch_job_free(w, job);
    }
    while (w->partitions)
        partition_release(w, w->partitions);

    if (w->consumer_queue)
        rd_kafka_queue_destroy(w->consumer_queue);
    if (w->producer_queue)
        rd_kafka_queue_destroy(w->producer_queue);
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    http_client_destroy(w->http);
    order_map_destroy(w->order);
    schedule_destroy(w->schedule);
    for (int i = 0; i < REQUEST_CHANNEL_COUNT; i++)
        free(w->urls[i]);
    for (int i = 0; i < 2; i++) {
        if (w->consumer_pipe[i] >= 0)
            close(w->consumer_pipe[i]);
        if (w->producer_pipe[i] >= 0)
            close(w->producer_pipe[i]);
    }
    if (w->epoll_fd >= 0)
        close(w->epoll_fd);
    free(w);
}
