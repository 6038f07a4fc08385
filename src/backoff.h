/* Retry delays: exponential backoff with full jitter, and the HTTP
 * Retry-After header. */
#ifndef C2M_BACKOFF_H
#define C2M_BACKOFF_H

#include <stdint.h>

/* Returns the delay before the next attempt after `failed_attempts`
 * failures (1 or more): a value drawn uniformly from
 * [0, min(max_ms, base_ms * 2^(failed_attempts - 1))] using `random`
 * (any 64-bit value; the caller supplies entropy so tests can fix it). */
int64_t backoff_full_jitter_ms(int failed_attempts, int base_ms, int max_ms,
                               uint64_t random);

/* Parses a Retry-After value: delay-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", also the obsolete RFC 850 and
 * asctime forms). now_wall_ms is the current time in ms since the epoch.
 * Stores the delay in ms and returns 0, or returns -1 when the value is
 * invalid. A date in the past gives 0, and a delay above one day is
 * clamped to one day. */
int backoff_parse_retry_after(const char *value, int64_t now_wall_ms,
                              int64_t *delay_ms);

#endif
