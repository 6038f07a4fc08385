/* Dispatch: turns consumed records into jobs, keeps each ordering key's
 * jobs one after another, runs HTTP attempts and decides on retries. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "classify.h"
#include "log.h"
#include "util.h"
#include "worker_int.h"

uint64_t dispatch_random(struct worker *w)
{
    /* xorshift64*: jitter needs spread, not secrecy. */
    uint64_t x = w->random_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->random_state = x;
    return x * 2685821657736338717ULL;
}

static void ready_push(struct worker *w, struct job *job)
{
    job->state = JOB_READY;
    job->ready_next = NULL;
    if (w->ready_tail)
        w->ready_tail->ready_next = job;
    else
        w->ready_head = job;
    w->ready_tail = job;
}

static struct job *ready_pop(struct worker *w)
{
    struct job *job = w->ready_head;

    if (!job)
        return NULL;
    w->ready_head = job->ready_next;
    if (!w->ready_head)
        w->ready_tail = NULL;
    job->ready_next = NULL;
    return job;
}

static void ready_remove(struct worker *w, struct job *job)
{
    struct job *prev = NULL;

    for (struct job *it = w->ready_head; it; prev = it, it = it->ready_next) {
        if (it != job)
            continue;
        if (prev)
            prev->ready_next = job->ready_next;
        else
            w->ready_head = job->ready_next;
        if (w->ready_tail == job)
            w->ready_tail = prev;
        job->ready_next = NULL;
        return;
    }
}

void dispatch_job_free(struct worker *w, struct job *job)
{
    struct partition_state *part = job->part;

    if (job->live_prev)
        job->live_prev->live_next = job->live_next;
    else
        w->live_jobs = job->live_next;
    if (job->live_next)
        job->live_next->live_prev = job->live_prev;

    request_free(job->req);
    free(job->key);
    free(job->value);
    if (job->headers)
        rd_kafka_headers_destroy(job->headers);
    free(job);
    w->buffered--;

    part->live_jobs--;
    if (part->revoked && part->live_jobs == 0) {
        tracker_destroy(part->tracker);
        free(part->topic);
        free(part);
    }
}

/* Releases the next job of the same ordering key, if any. */
static void release_order(struct worker *w, struct job *job)
{
    struct job *next = order_map_remove(w->order, job);

    if (next)
        ready_push(w, next);
}

static void set_outcome(struct job *job, const char *status,
                        const char *error_class, const char *code,
                        const char *message)
{
    struct job_outcome *outcome = &job->outcome;

    outcome->status = status;
    outcome->error_class = error_class;
    util_snprintf(outcome->error_code, sizeof(outcome->error_code), "%s",
                  code ? code : "");
    util_snprintf(outcome->error_message, sizeof(outcome->error_message), "%s",
                  message ? message : "");
    util_trim_partial_utf8(outcome->error_message);
}

/* Ends the sending part of a job: the next job of its key may start, and
 * its result or dead letter goes to the producer. */
static void complete(struct worker *w, struct job *job)
{
    release_order(w, job);
    produce_outcome(w, job);
}

static struct job *job_from_record(struct worker *w,
                                   struct partition_state *part,
                                   rd_kafka_message_t *rkm)
{
    struct job *job = xcalloc(1, sizeof(*job));

    job->topic = part->topic;
    job->partition = rkm->partition;
    job->offset = rkm->offset;
    job->part = part;
    job->received_wall_ms = util_now_wall_ms();
    job->received_mono_ms = util_now_mono_ms();
    if (rkm->key) {
        job->key = xmemdup(rkm->key, rkm->key_len);
        job->key_len = rkm->key_len;
    }
    if (rkm->payload) {
        job->value = xmemdup(rkm->payload, rkm->len);
        job->value_len = rkm->len;
    }
    if (rd_kafka_message_detach_headers(rkm, &job->headers) != 0)
        job->headers = NULL;

    job->tracker_handle = tracker_add(part->tracker, rkm->offset);
    if (part->first_offset < 0)
        part->first_offset = rkm->offset;
    part->live_jobs++;
    w->buffered++;
    job->live_next = w->live_jobs;
    if (w->live_jobs)
        w->live_jobs->live_prev = job;
    w->live_jobs = job;
    return job;
}

static void reject(struct worker *w, struct job *job)
{
    struct request *req = job->req;

    w->stats.rejected++;
    log_info("dispatch", "%s [%" PRId32 "] @%" PRId64 ": request %s rejected: %s",
             job->topic, job->partition, job->offset,
             req->id ? req->id : "(no valid id)", req->error_code);
    set_outcome(job, "rejected", "invalid_request", req->error_code,
                req->error_message);
    produce_outcome(w, job);
}

/* Jobs with the same ordering key go one after another: the record key
 * when there is one, else the channel and the recipient. */
static void enqueue(struct worker *w, struct job *job)
{
    const struct request *req = job->req;
    bool head;

    if (job->key && job->key_len > 0) {
        head = order_map_push(w->order, job, job->key, job->key_len);
    } else {
        const char *channel = request_channel_name(req->channel);
        size_t channel_len = strlen(channel);
        size_t to_len = strlen(req->to);
        char *key = xmalloc(channel_len + 1 + to_len);

        memcpy(key, channel, channel_len);
        key[channel_len] = '\0';
        memcpy(key + channel_len + 1, req->to, to_len);
        head = order_map_push(w->order, job, key, channel_len + 1 + to_len);
        free(key);
    }

    if (head)
        ready_push(w, job);
    else
        job->state = JOB_WAITING;
}

void dispatch_record(struct worker *w, rd_kafka_message_t *rkm)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    struct partition_state *part = worker_partition_find(w, topic, rkm->partition);

    if (!part || part->revoking) {
        /* A record of a partition we no longer own: its new owner will
         * consume it again, since we never stored its offset. */
        log_debug("dispatch", "%s [%" PRId32 "] @%" PRId64
                  ": dropped, partition not assigned",
                  topic, rkm->partition, rkm->offset);
        return;
    }

    struct job *job = job_from_record(w, part, rkm);
    w->stats.consumed++;
    metrics_consumed(w->metrics);
    job->req = request_parse(job->value, job->value_len, &w->limits);
    if (!job->req->valid) {
        reject(w, job);
        return;
    }
    if (job->req->kind == REQUEST_KIND_UNKNOWN) {
        w->stats.passed_through++;
        log_debug("dispatch", "%s [%" PRId32 "] @%" PRId64
                  ": request %s has content of a kind not checked here;"
                  " passed through",
                  job->topic, job->partition, job->offset, job->req->id);
    }
    enqueue(w, job);
}

static void on_http_done(void *opaque, const struct http_response *resp);

/* A payment request is never sent twice without the worker deciding so:
 * a duplicate would charge the customer twice. */
static bool may_resend(const struct worker *w, const struct job *job)
{
    return job->req->kind != REQUEST_KIND_PAYMENT_REQUEST ||
           w->cfg->retry_payment_on_unknown_outcome;
}

static void start_attempt(struct worker *w, struct job *job)
{
    char errstr[256];
    int64_t now = util_now_mono_ms();

    job->attempts++;
    if (job->unknown_outcome_seen)
        job->possible_duplicate = true;
    if (job->attempts == 1)
        job->first_attempt_mono_ms = now;
    job->state = JOB_IN_FLIGHT;
    struct http_post post = {
        .url = w->urls[job->req->channel],
        .body = job->req->body,
        .body_len = job->req->body_len,
        .idempotency_key = job->req->id,
        .may_resend = may_resend(w, job),
    };
    job->transfer = http_client_post(w->http, &post, on_http_done, job, errstr,
                                     sizeof(errstr));
    if (job->transfer)
        return;

    /* Could not even start: treat it as a transport failure that sent
     * nothing, so the retry policy decides. */
    struct http_response resp = {
        .transport = CLASSIFY_TRANSPORT_OTHER,
        .error = errstr,
        .body = "",
    };
    on_http_done(job, &resp);
}

/* While the guard holds, the only request sent is a probe: the oldest
 * ready one, else the one whose retry is due first. */
static void start_probe(struct worker *w)
{
    int64_t now = util_now_mono_ms();
    struct job *job;

    if (!guard_probe_due(&w->guard, now))
        return;
    job = ready_pop(w);
    if (!job)
        job = schedule_pop_due(w->schedule, INT64_MAX);
    if (!job && http_client_in_flight(w->http) == 0) {
        /* Every held request went elsewhere (a rebalance took its
         * partition): consume again, or the hold would never end. */
        log_info("dispatch", "no request left to probe the API with;"
                 " resuming consumption");
        guard_open(&w->guard);
        return;
    }
    if (!job)
        return;

    if (w->guard.mode == GUARD_AUTH_PAUSED)
        worker_reload_api_key(w, true /* quiet */);
    log_info("dispatch", "probing the API with request %s", job->req->id);
    w->probe = job;
    guard_probe_started(&w->guard);
    start_attempt(w, job);
}

void dispatch_start_sends(struct worker *w)
{
    int max = w->cfg->max_in_flight;

    if (w->stopping || w->produce_failed)
        return;
    if (w->guard.mode != GUARD_OPEN) {
        start_probe(w);
        return;
    }
    while ((int)http_client_in_flight(w->http) < max && w->ready_head) {
        struct job *job = ready_pop(w);
        start_attempt(w, job);
    }
}

/* Puts a job back to wait while the guard holds. Its retry budget is not
 * checked: an outage must not fail requests, it only delays them. */
static void park(struct worker *w, struct job *job)
{
    int64_t delay = backoff_full_jitter_ms(job->attempts, w->cfg->backoff_base_ms,
                                           w->cfg->backoff_max_ms,
                                           dispatch_random(w));

    job->state = JOB_BACKOFF;
    job->due_mono_ms = util_now_mono_ms() + delay;
    schedule_add(w->schedule, job);
}

static void log_guard_change(struct worker *w, enum guard_mode before,
                             enum guard_mode after)
{
    if (after == GUARD_OUTAGE)
        log_warn("dispatch", "the API failed %d times in a row (errors or"
                 " 5xx); outage mode: consumption paused, one probe request"
                 " at a time until the API answers",
                 w->guard.config.outage_after);
    else if (after == GUARD_AUTH_PAUSED)
        log_error("dispatch", "the API rejected the key %d times in a row;"
                  " consumption paused until a probe succeeds; replace the"
                  " key in CHATT2ME_API_KEY_FILE and send SIGHUP",
                  w->guard.config.auth_pause_after);
    else
        log_info("dispatch", "the API responds again after %s; resuming",
                 guard_mode_name(before));
}

/* Feeds one attempt's outcome to the guard. */
static void record_for_guard(struct worker *w, struct job *job,
                             const struct http_response *resp)
{
    bool was_probe = w->probe == job;
    enum guard_mode before = w->guard.mode;

    if (was_probe)
        w->probe = NULL;
    enum guard_mode after = guard_record(&w->guard, resp->status, was_probe,
                                         util_now_mono_ms(), dispatch_random(w));
    if (after != before)
        log_guard_change(w, before, after);
}

/* Forgets the probe when its job goes away without a response. */
static void forget_probe(struct worker *w, struct job *job)
{
    if (w->probe != job)
        return;
    w->probe = NULL;
    w->guard.probe_in_flight = false;
}

static void give_up(struct worker *w, struct job *job, const char *why)
{
    char message[256];

    w->stats.failed++;
    util_snprintf(message, sizeof(message), "%s; last error: %s", why,
                  job->last.error_message);
    set_outcome(job, "failed", "exhausted", job->last.error_code, message);
    log_warn("dispatch", "%s [%" PRId32 "] @%" PRId64
             ": request %s failed after %d attempts: %s",
             job->topic, job->partition, job->offset, job->req->id,
             job->attempts, job->last.error_code);
    complete(w, job);
}

static void schedule_retry(struct worker *w, struct job *job,
                           const struct http_response *resp)
{
    const struct config *cfg = w->cfg;
    int64_t now = util_now_mono_ms();
    int64_t delay = backoff_full_jitter_ms(job->attempts, cfg->backoff_base_ms,
                                           cfg->backoff_max_ms, dispatch_random(w));
    int64_t server_delay;
    char why[128];

    if (resp->retry_after &&
        backoff_parse_retry_after(resp->retry_after, util_now_wall_ms(),
                                  &server_delay) == 0 &&
        server_delay > delay)
        delay = server_delay;

    if (job->attempts >= cfg->max_attempts) {
        util_snprintf(why, sizeof(why), "gave up after %d attempts",
                      job->attempts);
        give_up(w, job, why);
        return;
    }
    if (now + delay - job->first_attempt_mono_ms > cfg->retry_max_total_ms) {
        util_snprintf(why, sizeof(why),
                      "gave up after %d attempts: the next one would start"
                      " after the %d ms retry budget",
                      job->attempts, cfg->retry_max_total_ms);
        give_up(w, job, why);
        return;
    }

    w->stats.retries++;
    metrics_retry(w->metrics);
    log_info("dispatch", "%s [%" PRId32 "] @%" PRId64
             ": request %s attempt %d failed (%s), retrying in %" PRId64 " ms",
             job->topic, job->partition, job->offset, job->req->id,
             job->attempts, job->last.error_code, delay);
    job->state = JOB_BACKOFF;
    job->due_mono_ms = now + delay;
    schedule_add(w->schedule, job);
}

/* A payment request whose outcome is unknown is not sent again unless
 * configured: a duplicate would charge the customer twice. */
static bool may_retry_unknown(const struct worker *w, const struct job *job)
{
    if (!job->last.unknown_outcome)
        return true;
    return job->req->kind != REQUEST_KIND_PAYMENT_REQUEST ||
           w->cfg->retry_payment_on_unknown_outcome;
}

static void on_http_done(void *opaque, const struct http_response *resp)
{
    struct job *job = opaque;
    struct worker *w = NULL;
    struct classify_input input = {
        .transport = resp->transport,
        .body_sent = resp->body_sent,
        .http_status = resp->status,
        .body = resp->body,
        .body_len = resp->body_len,
    };

    /* The HTTP client passes only the job, which reaches its worker
     * through its partition. */
    w = job->part->worker;
    job->transfer = NULL;
    if (resp->resent) {
        /* libcurl's own resend was a second attempt after one whose
         * outcome is unknown. */
        job->attempts++;
        job->unknown_outcome_seen = true;
        job->possible_duplicate = true;
    }
    if (resp->status > 0)
        job->last_http_status = resp->status;
    if (resp->request_id)
        util_snprintf(job->outcome.api_request_id,
                      sizeof(job->outcome.api_request_id), "%s",
                      resp->request_id);
    classify_attempt(&input, &job->last);
    metrics_http_response(w->metrics, job->req->channel, resp->status,
                          resp->transport != CLASSIFY_TRANSPORT_OK,
                          resp->seconds);
    record_for_guard(w, job, resp);
    if (job->last.unknown_outcome)
        job->unknown_outcome_seen = true;
    if (resp->transport != CLASSIFY_TRANSPORT_OK)
        log_debug("dispatch", "request %s attempt %d: %s", job->req->id,
                  job->attempts, resp->error ? resp->error : "transport error");

    switch (job->last.action) {
    case CLASSIFY_SENT:
        w->stats.sent++;
        job->outcome.status = "sent";
        job->outcome.has_message_id = job->last.has_message_id;
        memcpy(job->outcome.message_id, job->last.message_id,
               sizeof(job->outcome.message_id));
        log_debug("dispatch", "%s [%" PRId32 "] @%" PRId64
                  ": request %s sent (x-request-id %s)",
                  job->topic, job->partition, job->offset, job->req->id,
                  resp->request_id ? resp->request_id : "none");
        complete(w, job);
        return;
    case CLASSIFY_FAILED:
        w->stats.failed++;
        set_outcome(job, "failed", job->last.error_class, job->last.error_code,
                    job->last.error_message);
        log_info("dispatch", "%s [%" PRId32 "] @%" PRId64
                 ": request %s failed: %s %s (x-request-id %s)",
                 job->topic, job->partition, job->offset, job->req->id,
                 job->last.error_class, job->last.error_code,
                 resp->request_id ? resp->request_id : "none");
        complete(w, job);
        return;
    case CLASSIFY_DEAD_LETTER:
        if (w->guard.mode == GUARD_AUTH_PAUSED && !w->stopping) {
            park(w, job);
            return;
        }
        w->stats.dead_lettered++;
        set_outcome(job, NULL, job->last.error_class, job->last.error_code,
                    job->last.error_message);
        log_warn("dispatch", "%s [%" PRId32 "] @%" PRId64
                 ": request %s got HTTP %ld; sending it to the dead-letter"
                 " topic (check the API key; x-request-id %s)",
                 job->topic, job->partition, job->offset, job->req->id,
                 resp->status, resp->request_id ? resp->request_id : "none");
        complete(w, job);
        return;
    case CLASSIFY_RETRY:
        break;
    }

    if (job->part->revoking || w->stopping) {
        /* Hand the record over uncommitted rather than wait out a backoff. */
        forget_probe(w, job);
        w->stats.dropped++;
        release_order(w, job);
        dispatch_job_free(w, job);
        return;
    }
    if (w->guard.mode != GUARD_OPEN && may_retry_unknown(w, job)) {
        park(w, job);
        return;
    }
    if (!may_retry_unknown(w, job)) {
        w->stats.failed++;
        set_outcome(job, "failed", "unknown_outcome", job->last.error_code,
                    "the payment request may have been delivered before the"
                    " connection failed, so it was not sent again; check its"
                    " status before retrying");
        log_warn("dispatch", "%s [%" PRId32 "] @%" PRId64
                 ": payment request %s has an unknown outcome; not retried",
                 job->topic, job->partition, job->offset, job->req->id);
        complete(w, job);
        return;
    }
    schedule_retry(w, job, resp);
}

void dispatch_run_timers(struct worker *w, int64_t now_ms)
{
    struct job *job;

    while ((job = schedule_pop_due(w->schedule, now_ms)))
        ready_push(w, job);
}

static bool in_scope(const struct job *job, const struct partition_state *only)
{
    return !only || job->part == only;
}

void dispatch_drop_unstarted(struct worker *w, struct partition_state *only)
{
    struct job *job = w->live_jobs;

    while (job) {
        struct job *next = job->live_next;
        bool unstarted = job->state == JOB_WAITING || job->state == JOB_READY ||
                         job->state == JOB_BACKOFF;

        if (in_scope(job, only) && unstarted && job->req && job->req->valid) {
            forget_probe(w, job);
            if (job->state == JOB_READY)
                ready_remove(w, job);
            else if (job->state == JOB_BACKOFF)
                schedule_remove(w->schedule, job);
            /* Removing a queue's head promotes the next job; it is either
             * dropped later in this walk or starts as usual. */
            release_order(w, job);
            w->stats.dropped++;
            dispatch_job_free(w, job);
        }
        job = next;
    }
}

void dispatch_abort_in_flight(struct worker *w, struct partition_state *only)
{
    struct job *job = w->live_jobs;

    while (job) {
        struct job *next = job->live_next;

        if (in_scope(job, only) && job->state == JOB_IN_FLIGHT &&
            job->transfer) {
            http_transfer_abort(w->http, job->transfer);
            job->transfer = NULL;
            forget_probe(w, job);
            log_warn("dispatch", "%s [%" PRId32 "] @%" PRId64
                     ": request %s abandoned in flight; it will be consumed"
                     " again and may be sent twice",
                     job->topic, job->partition, job->offset, job->req->id);
            release_order(w, job);
            w->stats.dropped++;
            dispatch_job_free(w, job);
        }
        job = next;
    }
}
