/* Ordering queues and the retry schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "job.h"
#include "order.h"
#include "schedule.h"

static void same_key_runs_one_after_another(void **state)
{
    struct order_map *map = order_map_new();
    struct job a = {0}, b = {0}, c = {0};

    (void)state;
    assert_true(order_map_push(map, &a, "k1", 2));
    assert_false(order_map_push(map, &b, "k1", 2));
    assert_false(order_map_push(map, &c, "k1", 2));
    assert_int_equal(order_map_keys(map), 1);

    assert_ptr_equal(order_map_remove(map, &a), &b);
    assert_ptr_equal(order_map_remove(map, &b), &c);
    assert_null(order_map_remove(map, &c));
    assert_int_equal(order_map_keys(map), 0);
    order_map_destroy(map);
}

static void different_keys_run_concurrently(void **state)
{
    struct order_map *map = order_map_new();
    struct job a = {0}, b = {0};

    (void)state;
    assert_true(order_map_push(map, &a, "k1", 2));
    assert_true(order_map_push(map, &b, "k2", 2));
    assert_int_equal(order_map_keys(map), 2);
    order_map_remove(map, &a);
    order_map_remove(map, &b);
    order_map_destroy(map);
}

static void keys_compare_all_bytes(void **state)
{
    struct order_map *map = order_map_new();
    struct job a = {0}, b = {0}, c = {0};

    (void)state;
    /* Embedded NUL: "sms\0+1" and "sms\0+2" are different keys. */
    assert_true(order_map_push(map, &a, "sms\0+1", 6));
    assert_true(order_map_push(map, &b, "sms\0+2", 6));
    assert_true(order_map_push(map, &c, "sms", 3));
    assert_int_equal(order_map_keys(map), 3);
    order_map_destroy(map);
}

static void removing_middle_job_keeps_order(void **state)
{
    struct order_map *map = order_map_new();
    struct job a = {0}, b = {0}, c = {0};

    (void)state;
    order_map_push(map, &a, "k", 1);
    order_map_push(map, &b, "k", 1);
    order_map_push(map, &c, "k", 1);
    assert_null(order_map_remove(map, &b));
    assert_ptr_equal(order_map_remove(map, &a), &c);
    assert_null(order_map_remove(map, &c));
    assert_int_equal(order_map_keys(map), 0);
    order_map_destroy(map);
}

static void many_keys_survive_rehash(void **state)
{
    enum { COUNT = 5000 };
    static struct job jobs[COUNT];
    struct order_map *map = order_map_new();
    char key[32];

    (void)state;
    for (int i = 0; i < COUNT; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        assert_true(order_map_push(map, &jobs[i], key, (size_t)n));
    }
    assert_int_equal(order_map_keys(map), COUNT);
    for (int i = 0; i < COUNT; i++)
        assert_null(order_map_remove(map, &jobs[i]));
    assert_int_equal(order_map_keys(map), 0);
    order_map_destroy(map);
}

static void schedule_pops_in_due_order(void **state)
{
    enum { COUNT = 200 };
    static struct job jobs[COUNT];
    struct schedule *schedule = schedule_new();

    (void)state;
    for (int i = 0; i < COUNT; i++) {
        jobs[i].due_mono_ms = (i * 7919) % COUNT;
        schedule_add(schedule, &jobs[i]);
    }
    schedule_remove(schedule, &jobs[10]);
    schedule_remove(schedule, &jobs[150]);
    assert_int_equal(schedule_size(schedule), COUNT - 2);
    assert_null(schedule_pop_due(schedule, -1));

    int64_t last = -1;
    struct job *job;
    size_t popped = 0;
    while ((job = schedule_pop_due(schedule, COUNT))) {
        assert_true(job->due_mono_ms >= last);
        assert_ptr_not_equal(job, &jobs[10]);
        assert_ptr_not_equal(job, &jobs[150]);
        last = job->due_mono_ms;
        popped++;
    }
    assert_int_equal(popped, COUNT - 2);
    assert_int_equal(schedule_next_due(schedule), -1);
    schedule_destroy(schedule);
}

static void schedule_keeps_jobs_not_due(void **state)
{
    struct schedule *schedule = schedule_new();
    struct job early = {.due_mono_ms = 100}, late = {.due_mono_ms = 500};

    (void)state;
    schedule_add(schedule, &late);
    schedule_add(schedule, &early);
    assert_int_equal(schedule_next_due(schedule), 100);
    assert_ptr_equal(schedule_pop_due(schedule, 200), &early);
    assert_null(schedule_pop_due(schedule, 200));
    assert_int_equal(schedule_next_due(schedule), 500);
    schedule_destroy(schedule);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_key_runs_one_after_another),
        cmocka_unit_test(different_keys_run_concurrently),
        cmocka_unit_test(keys_compare_all_bytes),
        cmocka_unit_test(removing_middle_job_keeps_order),
        cmocka_unit_test(many_keys_survive_rehash),
        cmocka_unit_test(schedule_pops_in_due_order),
        cmocka_unit_test(schedule_keeps_jobs_not_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
