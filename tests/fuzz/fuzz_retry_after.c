/* Fuzz target for backoff_parse_retry_after(). The input up to its first
 * NUL byte is the header value, as libcurl hands it over. Each value is
 * parsed at several "now" times between 1970 and 9999. Besides memory
 * errors and undefined behaviour it checks:
 *
 *   - the status is 0 or -1, and -1 leaves the delay untouched;
 *   - a delay lies in [0, one day];
 *   - delay-seconds (digits only, with optional spaces and tabs around)
 *     always parse, to min(value, 86400) seconds whatever the time;
 *   - an HTTP-date without '-' parses at every time or at none (the RFC
 *     850 form has a two-digit year whose century depends on the time, so
 *     29-Feb-00 is valid in 2026 and invalid in 1970);
 *   - one second later the delay of a date is one second shorter, unless
 *     it is clamped to 0 or one day.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "fuzz_util.h"

#define DAY_MS (24LL * 60 * 60 * 1000)
#define UNTOUCHED_DELAY INT64_C(-777)

/* 1970-01-01, 2026-01-15T12:00:00Z, 2038-01-19T03:14:08Z (past 32-bit
 * time_t) and 9999-12-31T23:59:58Z. */
static const int64_t now_values[] = {
    INT64_C(0),
    INT64_C(1768478400000),
    INT64_C(2147483648000),
    INT64_C(253402300798000),
};

#define NOW_COUNT (sizeof(now_values) / sizeof(now_values[0]))

/* Returns the digits of a delay-seconds value with its optional
 * whitespace removed, or NULL when text is not one. */
static const char *delay_seconds_digits(const char *text, size_t *count)
{
    const char *start = text + strspn(text, " \t");
    size_t digits = strspn(start, "0123456789");

    if (digits == 0 || start[digits + strspn(start + digits, " \t")] != '\0')
        return NULL;
    *count = digits;
    return start;
}

/* Returns min(digits, 86400) * 1000 without overflow. */
static int64_t expected_delay_ms(const char *digits, size_t count)
{
    int64_t seconds = 0;

    for (size_t i = 0; i < count && seconds <= DAY_MS / 1000; i++)
        seconds = seconds * 10 + (digits[i] - '0');
    if (seconds > DAY_MS / 1000)
        seconds = DAY_MS / 1000;
    return seconds * 1000;
}

static int parse(const char *value, int64_t now, int64_t *delay_ms)
{
    int status;

    *delay_ms = UNTOUCHED_DELAY;
    status = backoff_parse_retry_after(value, now, delay_ms);
    FUZZ_REQUIRE(status == 0 || status == -1, "status %d", status);
    if (status == -1)
        FUZZ_REQUIRE(*delay_ms == UNTOUCHED_DELAY,
                     "a failed parse wrote the delay");
    else
        FUZZ_REQUIRE(*delay_ms >= 0 && *delay_ms <= DAY_MS,
                     "delay %lld ms out of range", (long long)*delay_ms);
    return status;
}

static void check_at(const char *value, int64_t now, bool is_delay_seconds,
                     int64_t seconds_delay_ms, int first_status)
{
    int64_t delay_ms, later_delay_ms;
    int status, later_status;

    status = parse(value, now, &delay_ms);
    if (strchr(value, '-') == NULL)
        FUZZ_REQUIRE(status == first_status,
                     "parses at one time and not at another");
    if (status != 0)
        return;
    if (is_delay_seconds) {
        FUZZ_REQUIRE(delay_ms == seconds_delay_ms,
                     "delay-seconds gave %lld ms instead of %lld ms",
                     (long long)delay_ms, (long long)seconds_delay_ms);
        return;
    }

    later_status = parse(value, now + 1000, &later_delay_ms);
    FUZZ_REQUIRE(later_status == 0, "a date stops parsing a second later");
    if (delay_ms >= 1000 && delay_ms < DAY_MS && later_delay_ms < DAY_MS)
        FUZZ_REQUIRE(delay_ms - later_delay_ms == 1000,
                     "a second later the delay went from %lld to %lld ms",
                     (long long)delay_ms, (long long)later_delay_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    const char *digits;
    size_t digit_count = 0;
    bool is_delay_seconds;
    int64_t seconds_delay_ms = 0;
    int64_t delay_ms;
    int first_status;

    FUZZ_REQUIRE(value != NULL, "out of memory");
    memcpy(value, data, size);
    value[size] = '\0';

    digits = delay_seconds_digits(value, &digit_count);
    is_delay_seconds = digits != NULL;
    if (is_delay_seconds)
        seconds_delay_ms = expected_delay_ms(digits, digit_count);

    first_status = parse(value, now_values[0], &delay_ms);
    if (is_delay_seconds)
        FUZZ_REQUIRE(first_status == 0, "delay-seconds did not parse");
    for (size_t i = 0; i < NOW_COUNT; i++)
        check_at(value, now_values[i], is_delay_seconds, seconds_delay_ms,
                 first_status);
    free(value);
    return 0;
}
