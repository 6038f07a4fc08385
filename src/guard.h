/* The API guard: notices when the API is down (a run of transport errors
 * or 5xx responses) or rejects our key (a run of 401 responses), holds all
 * sending while that lasts, and lets one probe request through at a time,
 * with backoff, until a response shows the API is back.
 *
 * A pure state machine: the worker feeds it every attempt's outcome and
 * asks it whether to send. Holding pauses consumption, so no offset moves
 * and no request is failed or dead-lettered for an outage. */
#ifndef C2M_GUARD_H
#define C2M_GUARD_H

#include <stdbool.h>
#include <stdint.h>

struct guard_config {
    int outage_after;       /* consecutive failures; 0 disables */
    int auth_pause_after;   /* consecutive 401 responses; 0 disables */
    int probe_base_ms;      /* first probe delay; doubles up to max */
    int probe_max_ms;
};

enum guard_mode {
    GUARD_OPEN = 0,         /* sending normally */
    GUARD_OUTAGE,           /* the API looks down */
    GUARD_AUTH_PAUSED,      /* the API rejects our key */
};

struct guard {
    struct guard_config config;
    enum guard_mode mode;
    int failures;           /* transport errors or 5xx in a row */
    int auth_failures;      /* 401 responses in a row */
    bool probe_in_flight;
    int64_t probe_due_ms;
    int64_t probe_delay_ms;
};

void guard_init(struct guard *guard, const struct guard_config *config);

/* Records the outcome of one attempt: http_status 0 means no response
 * (transport error). was_probe is true for the probe. Returns
 * the mode after it; a change of mode is the caller's cue to log, pause
 * or resume. random spreads the next probe's delay (full jitter). */
enum guard_mode guard_record(struct guard *guard, long http_status,
                             bool was_probe, int64_t now_ms, uint64_t random);

/* Returns true when a probe may start now: the guard holds, no probe is
 * in flight, and its delay has passed. */
bool guard_probe_due(const struct guard *guard, int64_t now_ms);

void guard_probe_started(struct guard *guard);

/* Leaves any held mode at once, as after a new API key was loaded. */
void guard_open(struct guard *guard);

/* Returns the mode's name for logs and metrics. */
const char *guard_mode_name(enum guard_mode mode);

#endif
