/* Small helpers: UTF-8 trimming and timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"

static void trim_keeps_complete_text(void **state)
{
    char ascii[] = "plain";
    char two[] = "caf\xc3\xa9";
    char four[] = "x\xf0\x9f\x98\x80";

    (void)state;
    util_trim_partial_utf8(ascii);
    util_trim_partial_utf8(two);
    util_trim_partial_utf8(four);
    assert_string_equal(ascii, "plain");
    assert_string_equal(two, "caf\xc3\xa9");
    assert_string_equal(four, "x\xf0\x9f\x98\x80");
}

static void trim_cuts_partial_sequence(void **state)
{
    char lead_only[] = "caf\xc3";
    char three_of_four[] = "x\xf0\x9f\x98";
    char one_of_three[] = "ab\xe2";
    char empty[] = "";

    (void)state;
    util_trim_partial_utf8(lead_only);
    util_trim_partial_utf8(three_of_four);
    util_trim_partial_utf8(one_of_three);
    util_trim_partial_utf8(empty);
    assert_string_equal(lead_only, "caf");
    assert_string_equal(three_of_four, "x");
    assert_string_equal(one_of_three, "ab");
    assert_string_equal(empty, "");
}

static void truncated_format_stays_utf8(void **state)
{
    char buf[6];

    (void)state;
    /* "ab" then two 2-byte characters: the second one does not fit. */
    util_snprintf(buf, sizeof(buf), "%s", "ab\xc3\xa9\xc3\xa9");
    util_trim_partial_utf8(buf);
    assert_string_equal(buf, "ab\xc3\xa9");
}

static void rfc3339_has_milliseconds(void **state)
{
    char buf[32];

    (void)state;
    util_format_rfc3339(1733340000123, buf, sizeof(buf));
    assert_string_equal(buf, "2024-12-04T19:20:00.123Z");
    util_format_rfc3339(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trim_keeps_complete_text),
        cmocka_unit_test(trim_cuts_partial_sequence),
        cmocka_unit_test(truncated_format_stays_utf8),
        cmocka_unit_test(rfc3339_has_milliseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
