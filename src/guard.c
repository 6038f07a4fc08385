#include "guard.h"


void guard_init(struct guard *guard, const struct guard_config *config)
{
    *guard = (struct guard){.config = *config, .mode = GUARD_OPEN};
}

static bool is_failure(long http_status)
{
    return http_status == 0 || http_status >= 500;
}

static void hold(struct guard *guard, enum guard_mode mode, int64_t now_ms)
{
    guard->mode = mode;
    guard->probe_delay_ms = guard->config.probe_base_ms;
    guard->probe_due_ms = now_ms + guard->probe_delay_ms;
}

/* Schedules the next probe after a failed one: the delay doubles up to
 * the maximum, and the probe starts at a jittered point within it so
 * that a pool of workers does not probe in step. */
static void back_off(struct guard *guard, int64_t now_ms, uint64_t random)
{
    int64_t delay = guard->probe_delay_ms * 2;

    if (delay > guard->config.probe_max_ms)
        delay = guard->config.probe_max_ms;
    if (delay < 1)
        delay = 1;
    guard->probe_delay_ms = delay;
    guard->probe_due_ms = now_ms + delay / 2 +
                          (int64_t)(random % (uint64_t)(delay / 2 + 1));
}

enum guard_mode guard_record(struct guard *guard, long http_status,
                             bool was_probe, int64_t now_ms, uint64_t random)
{
    bool failure = is_failure(http_status);
    bool auth_failure = http_status == 401;

    if (was_probe)
        guard->probe_in_flight = false;
    guard->failures = failure ? guard->failures + 1 : 0;
    guard->auth_failures = auth_failure ? guard->auth_failures + 1 : 0;

    switch (guard->mode) {
    case GUARD_OUTAGE:
        /* Any answer that is not a failure shows the API is back, even a
         * 4xx about this one request. Answers to requests sent before the
         * outage began do not count: only the probe decides. */
        if (was_probe && !failure)
            guard_open(guard);
        else if (was_probe)
            back_off(guard, now_ms, random);
        break;
    case GUARD_AUTH_PAUSED:
        if (was_probe && http_status > 0 && !auth_failure && !failure)
            guard_open(guard);
        else if (was_probe)
            back_off(guard, now_ms, random);
        break;
    case GUARD_OPEN:
        break;
    }

    if (guard->mode != GUARD_OPEN)
        return guard->mode;
    if (guard->config.auth_pause_after > 0 &&
        guard->auth_failures >= guard->config.auth_pause_after)
        hold(guard, GUARD_AUTH_PAUSED, now_ms);
    else if (guard->config.outage_after > 0 &&
             guard->failures >= guard->config.outage_after)
        hold(guard, GUARD_OUTAGE, now_ms);
    return guard->mode;
}

bool guard_probe_due(const struct guard *guard, int64_t now_ms)
{
    return guard->mode != GUARD_OPEN && !guard->probe_in_flight &&
           now_ms >= guard->probe_due_ms;
}

void guard_probe_started(struct guard *guard)
{
    guard->probe_in_flight = true;
}

void guard_open(struct guard *guard)
{
    guard->mode = GUARD_OPEN;
    guard->failures = 0;
    guard->auth_failures = 0;
    guard->probe_in_flight = false;
}

const char *guard_mode_name(enum guard_mode mode)
{
    switch (mode) {
    case GUARD_OUTAGE:
        return "outage";
    case GUARD_AUTH_PAUSED:
        return "auth_paused";
    case GUARD_OPEN:
        break;
    }
    return "open";
}
