/* The API guard: outage mode, auth pause and probing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "guard.h"

static const struct guard_config config = {
    .outage_after = 3,
    .auth_pause_after = 2,
    .probe_base_ms = 100,
    .probe_max_ms = 1000,
};

static void failures_below_threshold_keep_sending(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    assert_int_equal(guard_record(&guard, 503, false, 0, 0), GUARD_OPEN);
    assert_int_equal(guard_record(&guard, 0, false, 0, 0), GUARD_OPEN);
    assert_false(guard_probe_due(&guard, 1000000));
}

static void success_resets_failure_run(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    guard_record(&guard, 503, false, 0, 0);
    guard_record(&guard, 502, false, 0, 0);
    guard_record(&guard, 200, false, 0, 0);
    guard_record(&guard, 503, false, 0, 0);
    assert_int_equal(guard_record(&guard, 503, false, 0, 0), GUARD_OPEN);
}

static void client_errors_are_not_outage(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    for (int i = 0; i < 10; i++)
        assert_int_equal(guard_record(&guard, 400, false, 0, 0), GUARD_OPEN);
    for (int i = 0; i < 10; i++)
        assert_int_equal(guard_record(&guard, 429, false, 0, 0), GUARD_OPEN);
}

static void run_of_failures_starts_outage(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    guard_record(&guard, 0, false, 1000, 0);
    guard_record(&guard, 500, false, 1000, 0);
    assert_int_equal(guard_record(&guard, 503, false, 1000, 0), GUARD_OUTAGE);

    /* The first probe waits probe_base_ms. */
    assert_false(guard_probe_due(&guard, 1099));
    assert_true(guard_probe_due(&guard, 1100));
}

static void late_answers_do_not_end_outage(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    for (int i = 0; i < 3; i++)
        guard_record(&guard, 503, false, 0, 0);
    /* A request sent before the outage began gets 200, but only the probe
     * may end the outage. */
    assert_int_equal(guard_record(&guard, 200, false, 10, 0), GUARD_OUTAGE);
}

static void one_probe_at_a_time(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    for (int i = 0; i < 3; i++)
        guard_record(&guard, 0, false, 0, 0);
    assert_true(guard_probe_due(&guard, 200));
    guard_probe_started(&guard);
    assert_false(guard_probe_due(&guard, 200));
    assert_false(guard_probe_due(&guard, 100000));
}

static void failed_probes_back_off_to_max(void **state)
{
    struct guard guard;
    int64_t now = 0;

    (void)state;
    guard_init(&guard, &config);
    for (int i = 0; i < 3; i++)
        guard_record(&guard, 503, false, now, 0);

    int64_t last_delay = guard.probe_delay_ms;
    for (int i = 0; i < 10; i++) {
        now = guard.probe_due_ms;
        assert_true(guard_probe_due(&guard, now));
        guard_probe_started(&guard);
        assert_int_equal(guard_record(&guard, 503, true, now, UINT64_MAX),
                         GUARD_OUTAGE);
        assert_true(guard.probe_delay_ms >= last_delay);
        assert_true(guard.probe_delay_ms <= config.probe_max_ms);
        assert_true(guard.probe_due_ms > now);
        assert_true(guard.probe_due_ms <= now + guard.probe_delay_ms);
        last_delay = guard.probe_delay_ms;
    }
    assert_int_equal(guard.probe_delay_ms, config.probe_max_ms);
}

static void successful_probe_ends_outage(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    for (int i = 0; i < 3; i++)
        guard_record(&guard, 503, false, 0, 0);
    guard_probe_started(&guard);
    /* A 400 about the probe's own request still shows the API responds. */
    assert_int_equal(guard_record(&guard, 400, true, 500, 0), GUARD_OPEN);
    assert_false(guard_probe_due(&guard, 100000));

    /* The failure run starts from zero again. */
    guard_record(&guard, 503, false, 600, 0);
    guard_record(&guard, 503, false, 600, 0);
    assert_int_equal(guard_record(&guard, 200, false, 600, 0), GUARD_OPEN);
}

static void auth_failures_pause(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    assert_int_equal(guard_record(&guard, 401, false, 0, 0), GUARD_OPEN);
    assert_int_equal(guard_record(&guard, 401, false, 0, 0), GUARD_AUTH_PAUSED);

    guard_probe_started(&guard);
    assert_int_equal(guard_record(&guard, 401, true, 200, 0), GUARD_AUTH_PAUSED);
    guard_probe_started(&guard);
    /* A 5xx probe proves nothing about the key. */
    assert_int_equal(guard_record(&guard, 503, true, 400, 0), GUARD_AUTH_PAUSED);
    guard_probe_started(&guard);
    assert_int_equal(guard_record(&guard, 200, true, 800, 0), GUARD_OPEN);
}

static void auth_pause_disabled_by_default(void **state)
{
    struct guard_config off = config;
    struct guard guard;

    (void)state;
    off.auth_pause_after = 0;
    guard_init(&guard, &off);
    for (int i = 0; i < 100; i++)
        assert_int_equal(guard_record(&guard, 401, false, 0, 0), GUARD_OPEN);
}

static void interleaved_auth_failure_breaks_run(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    guard_record(&guard, 401, false, 0, 0);
    guard_record(&guard, 200, false, 0, 0);
    assert_int_equal(guard_record(&guard, 401, false, 0, 0), GUARD_OPEN);
}

static void guard_open_leaves_hold(void **state)
{
    struct guard guard;

    (void)state;
    guard_init(&guard, &config);
    guard_record(&guard, 401, false, 0, 0);
    guard_record(&guard, 401, false, 0, 0);
    guard_probe_started(&guard);
    guard_open(&guard);
    assert_int_equal(guard.mode, GUARD_OPEN);
    assert_false(guard_probe_due(&guard, 100000));
    assert_string_equal(guard_mode_name(GUARD_OPEN), "open");
    assert_string_equal(guard_mode_name(GUARD_OUTAGE), "outage");
    assert_string_equal(guard_mode_name(GUARD_AUTH_PAUSED), "auth_paused");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failures_below_threshold_keep_sending),
        cmocka_unit_test(success_resets_failure_run),
        cmocka_unit_test(client_errors_are_not_outage),
        cmocka_unit_test(run_of_failures_starts_outage),
        cmocka_unit_test(late_answers_do_not_end_outage),
        cmocka_unit_test(one_probe_at_a_time),
        cmocka_unit_test(failed_probes_back_off_to_max),
        cmocka_unit_test(successful_probe_ends_outage),
        cmocka_unit_test(auth_failures_pause),
        cmocka_unit_test(auth_pause_disabled_by_default),
        cmocka_unit_test(interleaved_auth_failure_breaks_run),
        cmocka_unit_test(guard_open_leaves_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
