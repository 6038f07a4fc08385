/* Commit point under out-of-order completion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tracker.h"

static void empty_tracker_has_no_commit_point(void **state)
{
    struct tracker *tracker = tracker_new();

    (void)state;
    assert_int_equal(tracker_commit_offset(tracker), -1);
    assert_int_equal(tracker_unfinished(tracker), 0);
    tracker_destroy(tracker);
}

static void commit_point_waits_for_first_unfinished(void **state)
{
    struct tracker *tracker = tracker_new();
    uint64_t h10 = tracker_add(tracker, 10);
    uint64_t h11 = tracker_add(tracker, 11);
    uint64_t h12 = tracker_add(tracker, 12);

    (void)state;
    assert_int_equal(tracker_commit_offset(tracker), 10);

    tracker_finish(tracker, h12);
    assert_int_equal(tracker_commit_offset(tracker), 10);
    tracker_finish(tracker, h11);
    assert_int_equal(tracker_commit_offset(tracker), 10);
    assert_int_equal(tracker_unfinished(tracker), 1);

    tracker_finish(tracker, h10);
    assert_int_equal(tracker_commit_offset(tracker), 13);
    assert_int_equal(tracker_unfinished(tracker), 0);
    tracker_destroy(tracker);
}

static void commit_point_skips_offset_gaps(void **state)
{
    struct tracker *tracker = tracker_new();
    uint64_t h5 = tracker_add(tracker, 5);
    uint64_t h9 = tracker_add(tracker, 9);
    uint64_t h20 = tracker_add(tracker, 20);

    (void)state;
    tracker_finish(tracker, h5);
    assert_int_equal(tracker_commit_offset(tracker), 9);
    tracker_finish(tracker, h20);
    assert_int_equal(tracker_commit_offset(tracker), 9);
    tracker_finish(tracker, h9);
    assert_int_equal(tracker_commit_offset(tracker), 21);
    tracker_destroy(tracker);
}

static void finishing_twice_changes_nothing(void **state)
{
    struct tracker *tracker = tracker_new();
    uint64_t h1 = tracker_add(tracker, 1);
    tracker_add(tracker, 2);

    (void)state;
    tracker_finish(tracker, h1);
    tracker_finish(tracker, h1);
    assert_int_equal(tracker_unfinished(tracker), 1);
    assert_int_equal(tracker_commit_offset(tracker), 2);
    tracker_destroy(tracker);
}

/* Many records finished in reverse order, crossing ring growth and
 * wrap-around: the commit point never moves until the oldest finishes. */
static void reverse_completion_across_growth(void **state)
{
    enum { COUNT = 1000 };
    struct tracker *tracker = tracker_new();
    uint64_t handles[COUNT];

    (void)state;
    for (int round = 0; round < 3; round++) {
        int64_t base = (int64_t)round * COUNT;
        for (int i = 0; i < COUNT; i++)
            handles[i] = tracker_add(tracker, base + i);
        for (int i = COUNT - 1; i > 0; i--) {
            tracker_finish(tracker, handles[i]);
            assert_int_equal(tracker_commit_offset(tracker), base);
        }
        tracker_finish(tracker, handles[0]);
        assert_int_equal(tracker_commit_offset(tracker), base + COUNT);
        assert_int_equal(tracker_unfinished(tracker), 0);
    }
    tracker_destroy(tracker);
}

/* Interleaved adds and finishes, compared with a simple model. */
static void random_completion_matches_model(void **state)
{
    enum { COUNT = 5000 };
    static uint64_t handles[COUNT];
    static int finished[COUNT];
    struct tracker *tracker = tracker_new();
    uint64_t seed = 42;
    int added = 0;

    (void)state;
    while (added < COUNT || tracker_unfinished(tracker) > 0) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (added < COUNT && (seed >> 33) % 3 != 0) {
            handles[added] = tracker_add(tracker, added * 2);
            added++;
        } else if (added > 0) {
            int pick = (int)((seed >> 20) % (uint64_t)added);
            tracker_finish(tracker, handles[pick]);
            finished[pick] = 1;
        }

        int first = 0;
        while (first < added && finished[first])
            first++;
        int64_t expected = first < added ? first * 2 : (added - 1) * 2 + 1;
        if (added == 0)
            expected = -1;
        assert_int_equal(tracker_commit_offset(tracker), expected);
    }
    tracker_destroy(tracker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_tracker_has_no_commit_point),
        cmocka_unit_test(commit_point_waits_for_first_unfinished),
        cmocka_unit_test(commit_point_skips_offset_gaps),
        cmocka_unit_test(finishing_twice_changes_nothing),
        cmocka_unit_test(reverse_completion_across_growth),
        cmocka_unit_test(random_completion_matches_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
