/* Tests for the full-jitter backoff and the Retry-After parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <string.h>
#include <time.h>

#include "backoff.h"

#define BASE_MS 100
#define MAX_MS 30000
#define ONE_DAY_MS (24LL * 60 * 60 * 1000)

/* Returns min(max_ms, base_ms * 2^(attempts - 1)) by repeated doubling, a
 * different route from the shift in the code under test. */
static int64_t expected_ceiling(int attempts, int base_ms, int max_ms)
{
    int64_t ceiling = base_ms;

    for (int i = 1; i < attempts && ceiling < max_ms; i++)
        ceiling *= 2;
    return ceiling < max_ms ? ceiling : max_ms;
}

/* splitmix64: a fixed-seed generator, so the sampled values are the same
 * on every run. */
static uint64_t next_random(uint64_t *seed)
{
    uint64_t z = (*seed += 0x9E3779B97F4A7C15u);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Milliseconds since the epoch of a UTC calendar time. */
static int64_t utc_ms(int year, int month, int day, int hour, int minute,
                      int second)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return (int64_t)timegm(&tm) * 1000;
}

static void test_jitter_random_zero_is_zero(void **state)
{
    (void)state;
    for (int attempts = 1; attempts <= 70; attempts++)
        assert_int_equal(backoff_full_jitter_ms(attempts, BASE_MS, MAX_MS, 0),
                         0);
}

static void test_jitter_random_max_is_ceiling(void **state)
{
    (void)state;
    for (int attempts = 1; attempts <= 70; attempts++)
        assert_int_equal(
            backoff_full_jitter_ms(attempts, BASE_MS, MAX_MS, UINT64_MAX),
            expected_ceiling(attempts, BASE_MS, MAX_MS));
}

static void test_jitter_ceiling_doubles(void **state)
{
    (void)state;
    assert_int_equal(backoff_full_jitter_ms(1, BASE_MS, MAX_MS, UINT64_MAX),
                     100);
    assert_int_equal(backoff_full_jitter_ms(2, BASE_MS, MAX_MS, UINT64_MAX),
                     200);
    assert_int_equal(backoff_full_jitter_ms(3, BASE_MS, MAX_MS, UINT64_MAX),
                     400);
    assert_int_equal(backoff_full_jitter_ms(9, BASE_MS, MAX_MS, UINT64_MAX),
                     25600);
    assert_int_equal(backoff_full_jitter_ms(10, BASE_MS, MAX_MS, UINT64_MAX),
                     MAX_MS);
}

static void test_jitter_within_bound(void **state)
{
    uint64_t seed = 42;

    (void)state;
    for (int attempts = 1; attempts <= 70; attempts++) {
        int64_t ceiling = expected_ceiling(attempts, BASE_MS, MAX_MS);

        for (int i = 0; i < 1000; i++) {
            int64_t delay = backoff_full_jitter_ms(attempts, BASE_MS, MAX_MS,
                                                   next_random(&seed));

            assert_true(delay >= 0);
            assert_true(delay <= ceiling);
        }
    }
}

static void test_jitter_large_values_bounded(void **state)
{
    uint64_t seed = 7;

    (void)state;
    for (int attempts = 1; attempts <= 70; attempts++) {
        int64_t delay = backoff_full_jitter_ms(attempts, INT_MAX, INT_MAX,
                                               next_random(&seed));

        assert_true(delay >= 0);
        assert_true(delay <= INT_MAX);
    }
    assert_int_equal(
        backoff_full_jitter_ms(INT_MAX, INT_MAX, INT_MAX, UINT64_MAX),
        INT_MAX);
    assert_int_equal(backoff_full_jitter_ms(INT_MAX, 1, INT_MAX, UINT64_MAX),
                     INT_MAX);
    assert_int_equal(backoff_full_jitter_ms(33, 1, INT_MAX, UINT64_MAX),
                     INT_MAX);
    assert_int_equal(backoff_full_jitter_ms(32, 1, INT_MAX, UINT64_MAX),
                     INT_MAX);
    assert_int_equal(backoff_full_jitter_ms(31, 1, INT_MAX, UINT64_MAX),
                     1 << 30);
}

static void test_jitter_max_below_base(void **state)
{
    (void)state;
    assert_int_equal(backoff_full_jitter_ms(1, 1000, 500, UINT64_MAX), 500);
    assert_int_equal(backoff_full_jitter_ms(5, 1000, 500, UINT64_MAX), 500);
}

static void test_jitter_invalid_arguments(void **state)
{
    (void)state;
    /* Fewer than one failed attempt counts as one. */
    assert_int_equal(backoff_full_jitter_ms(0, BASE_MS, MAX_MS, UINT64_MAX),
                     BASE_MS);
    assert_int_equal(backoff_full_jitter_ms(-5, BASE_MS, MAX_MS, UINT64_MAX),
                     BASE_MS);
    assert_int_equal(backoff_full_jitter_ms(INT_MIN, BASE_MS, MAX_MS,
                                            UINT64_MAX),
                     BASE_MS);
    /* A base or maximum of zero or below gives no delay. */
    assert_int_equal(backoff_full_jitter_ms(3, 0, MAX_MS, UINT64_MAX), 0);
    assert_int_equal(backoff_full_jitter_ms(3, -100, MAX_MS, UINT64_MAX), 0);
    assert_int_equal(backoff_full_jitter_ms(3, BASE_MS, 0, UINT64_MAX), 0);
    assert_int_equal(backoff_full_jitter_ms(3, BASE_MS, -1, UINT64_MAX), 0);
}

static void test_jitter_exact_boundaries(void **state)
{
    (void)state;
    /* With the range [0, 2] the delay is floor(random * 3 / 2^64), which
     * steps from 0 to 1 between 0x5555555555555555 and the next value. */
    assert_int_equal(backoff_full_jitter_ms(1, 2, 2, 0x5555555555555555u), 0);
    assert_int_equal(backoff_full_jitter_ms(1, 2, 2, 0x5555555555555556u), 1);
    assert_int_equal(backoff_full_jitter_ms(1, 2, 2, 0xAAAAAAAAAAAAAAAAu), 1);
    assert_int_equal(backoff_full_jitter_ms(1, 2, 2, 0xAAAAAAAAAAAAAAABu), 2);
}

static void test_jitter_evenly_spread(void **state)
{
    enum { BUCKETS = 10, SAMPLES = 100000 };
    int counts[BUCKETS] = {0};
    int stratified[BUCKETS] = {0};
    uint64_t seed = 1;
    const uint64_t step = UINT64_MAX / SAMPLES;

    (void)state;
    /* Base 10 and maximum 9 give the closed range [0, 9]. */
    for (int i = 0; i < SAMPLES; i++) {
        int64_t delay = backoff_full_jitter_ms(1, 10, 9, next_random(&seed));

        assert_in_range(delay, 0, BUCKETS - 1);
        counts[delay]++;
    }
    /* Evenly spaced random values must land evenly, give or take one. */
    for (int i = 0; i < SAMPLES; i++) {
        int64_t delay = backoff_full_jitter_ms(1, 10, 9, (uint64_t)i * step);

        assert_in_range(delay, 0, BUCKETS - 1);
        stratified[delay]++;
    }
    for (int b = 0; b < BUCKETS; b++) {
        /* The expected count is 10000 with a standard deviation of 95, so
         * 9400..10600 allows more than six deviations either side. */
        assert_in_range(counts[b], 9400, 10600);
        assert_in_range(stratified[b], SAMPLES / BUCKETS - 1,
                        SAMPLES / BUCKETS + 1);
    }
}

/* Parses value at now_ms and checks that it gives expected_ms. */
static void check_retry_after(const char *value, int64_t now_ms,
                              int64_t expected_ms)
{
    int64_t delay = -12345;

    assert_int_equal(backoff_parse_retry_after(value, now_ms, &delay), 0);
    assert_int_equal(delay, expected_ms);
}

/* Checks that value is rejected and the output is left alone. */
static void check_retry_after_invalid(const char *value, int64_t now_ms)
{
    int64_t delay = -12345;

    assert_int_equal(backoff_parse_retry_after(value, now_ms, &delay), -1);
    assert_int_equal(delay, -12345);
}

static void test_retry_after_seconds(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);

    (void)state;
    check_retry_after("120", now, 120000);
    check_retry_after("0", now, 0);
    check_retry_after("1", now, 1000);
    check_retry_after("007", now, 7000);
    check_retry_after(" 120", now, 120000);
    check_retry_after("120\t ", now, 120000);
    check_retry_after("86400", now, ONE_DAY_MS);
}

static void test_retry_after_seconds_clamped(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);

    (void)state;
    check_retry_after("86401", now, ONE_DAY_MS);
    check_retry_after("9223372036854775807", now, ONE_DAY_MS);
    check_retry_after("99999999999999999999999999999999", now, ONE_DAY_MS);
}

static void test_retry_after_seconds_invalid(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);

    (void)state;
    check_retry_after_invalid("", now);
    check_retry_after_invalid("   ", now);
    check_retry_after_invalid("-5", now);
    check_retry_after_invalid("+5", now);
    check_retry_after_invalid("1.5", now);
    check_retry_after_invalid("12 34", now);
    check_retry_after_invalid("1e3", now);
    check_retry_after_invalid("120s", now);
    check_retry_after_invalid("0x10", now);
    check_retry_after_invalid("120\r\n", now);
    check_retry_after_invalid("\xef\xbc\x91", now); /* fullwidth digit 1 */
}

static void test_retry_after_null_arguments(void **state)
{
    int64_t delay = -12345;

    (void)state;
    assert_int_equal(backoff_parse_retry_after(NULL, 0, &delay), -1);
    assert_int_equal(delay, -12345);
    assert_int_equal(backoff_parse_retry_after("120", 0, NULL), -1);
}

static void test_retry_after_imf_fixdate(void **state)
{
    const int64_t date = utc_ms(2015, 10, 21, 7, 28, 0);

    (void)state;
    check_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 60000, 60000);
    check_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 1500, 1500);
    check_retry_after("  Wed, 21 Oct 2015 07:28:00 GMT ", date - 1000, 1000);
    check_retry_after("Mon, 29 Feb 2016 00:00:00 GMT",
                      utc_ms(2016, 2, 28, 23, 59, 0), 60000);
    check_retry_after("Sat, 01 Jan 2000 00:00:00 GMT",
                      utc_ms(1999, 12, 31, 23, 59, 59), 1000);
}

static void test_retry_after_rfc850_date(void **state)
{
    const int64_t date = utc_ms(2015, 10, 21, 7, 28, 0);

    (void)state;
    check_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", date - 60000,
                      60000);
}

static void test_retry_after_rfc850_year(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);

    (void)state;
    /* "94" is more than 50 years ahead as 2094, so it means 1994. */
    check_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now, 0);
    /* "26" is this year. */
    check_retry_after("Friday, 02-Jan-26 00:00:00 GMT", now, ONE_DAY_MS);
    check_retry_after("Thursday, 01-Jan-26 00:01:00 GMT", now, 60000);
}

static void test_retry_after_asctime_date(void **state)
{
    const int64_t date = utc_ms(1994, 11, 6, 8, 49, 37);

    (void)state;
    check_retry_after("Sun Nov  6 08:49:37 1994", date - 10000, 10000);
    check_retry_after("Wed Oct 21 07:28:00 2015",
                      utc_ms(2015, 10, 21, 7, 27, 0), 60000);
    check_retry_after("Sun Nov 06 08:49:37 1994", date - 10000, 10000);
}

static void test_retry_after_past_dates(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);
    const int64_t date = utc_ms(2015, 10, 21, 7, 28, 0);

    (void)state;
    check_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, 0);
    check_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now, 0);
    check_retry_after("Wed Oct 21 07:28:00 2015", now, 0);
    check_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date, 0);
    check_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 1, 0);
}

static void test_retry_after_far_date_clamped(void **state)
{
    const int64_t now = utc_ms(2026, 1, 1, 0, 0, 0);

    (void)state;
    check_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now, ONE_DAY_MS);
    check_retry_after("Fri, 02 Jan 2026 00:00:01 GMT", now, ONE_DAY_MS);
    check_retry_after("Fri, 02 Jan 2026 00:00:00 GMT", now, ONE_DAY_MS);
    check_retry_after("Thu, 01 Jan 2026 23:59:59 GMT", now,
                      ONE_DAY_MS - 1000);
}

static void test_retry_after_date_invalid(void **state)
{
    const int64_t now = utc_ms(2015, 10, 21, 7, 0, 0);

    (void)state;
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:00 UTC", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:00 +0000", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:00", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:00 GMT x", now);
    check_retry_after_invalid("wed, 21 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21 oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:00 gmt", now);
    check_retry_after_invalid("Foo, 21 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Foo 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 32 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 00 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 31 Nov 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Sun, 29 Feb 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Thu, 29 Feb 1900 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 24:00:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:60:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 07:28:61 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 2015 7:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21 Oct 15 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 1 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed,  21 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed 21 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wednesday, 21-Oct-2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed, 21-Oct-15 07:28:00 GMT", now);
    check_retry_after_invalid("Wednesday, 21 Oct 2015 07:28:00 GMT", now);
    check_retry_after_invalid("Wed Oct 21 07:28:00 2015 GMT", now);
    check_retry_after_invalid("Wed Oct 21 07:28:00 15", now);
    check_retry_after_invalid("Sun Nov 6 08:49:37 1994", now);
    check_retry_after_invalid("2015-10-21T07:28:00Z", now);
    check_retry_after_invalid("garbage", now);
    check_retry_after_invalid("GMT", now);
    check_retry_after_invalid("Wed, ", now);
}

static void test_retry_after_leap_second(void **state)
{
    const int64_t now = utc_ms(2016, 12, 31, 23, 59, 0);

    (void)state;
    /* timegm() folds second 60 into the next minute. */
    check_retry_after("Sat, 31 Dec 2016 23:59:60 GMT", now, 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jitter_random_zero_is_zero),
        cmocka_unit_test(test_jitter_random_max_is_ceiling),
        cmocka_unit_test(test_jitter_ceiling_doubles),
        cmocka_unit_test(test_jitter_within_bound),
        cmocka_unit_test(test_jitter_large_values_bounded),
        cmocka_unit_test(test_jitter_max_below_base),
        cmocka_unit_test(test_jitter_invalid_arguments),
        cmocka_unit_test(test_jitter_exact_boundaries),
        cmocka_unit_test(test_jitter_evenly_spread),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_seconds_clamped),
        cmocka_unit_test(test_retry_after_seconds_invalid),
        cmocka_unit_test(test_retry_after_null_arguments),
        cmocka_unit_test(test_retry_after_imf_fixdate),
        cmocka_unit_test(test_retry_after_rfc850_date),
        cmocka_unit_test(test_retry_after_rfc850_year),
        cmocka_unit_test(test_retry_after_asctime_date),
        cmocka_unit_test(test_retry_after_past_dates),
        cmocka_unit_test(test_retry_after_far_date_clamped),
        cmocka_unit_test(test_retry_after_date_invalid),
        cmocka_unit_test(test_retry_after_leap_second),
    };

    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
