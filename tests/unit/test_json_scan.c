/* Unit tests for the strict JSON scanner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_scan.h"
#include "util.h"

#define DEPTH 64

/* A test input with an explicit length, so it may contain NUL bytes. */
struct scan_case {
    const char *name;
    const char *input;
    size_t length;              /* 0 means strlen(input) */
    enum json_scan_status expected;
};

static enum json_scan_status scan_bytes(const char *input, size_t length,
                                        int max_depth,
                                        struct json_scan_result *result,
                                        char *errstr, size_t errstr_size)
{
    return json_scan_document(input, length, max_depth, result, errstr,
                              errstr_size);
}

static enum json_scan_status scan_text(const char *input,
                                       struct json_scan_result *result)
{
    char errstr[200];

    return scan_bytes(input, strlen(input), DEPTH, result, errstr,
                      sizeof(errstr));
}

static void run_cases(const struct scan_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct json_scan_result result;
        char errstr[200];
        size_t length = cases[i].length ? cases[i].length
                                        : strlen(cases[i].input);
        enum json_scan_status status;

        status = scan_bytes(cases[i].input, length, DEPTH, &result, errstr,
                            sizeof(errstr));
        if (status != cases[i].expected)
            print_message("case \"%s\": status %d, message: %s\n",
                          cases[i].name, (int)status, errstr);
        assert_int_equal(status, cases[i].expected);
        if (status != JSON_SCAN_OK)
            assert_true(strlen(errstr) > 0);
        json_scan_result_clear(&result);
    }
}

static void assert_span_text(const char *input, struct json_scan_span span,
                             const char *expected)
{
    assert_int_equal(span.length, strlen(expected));
    assert_memory_equal(input + span.offset, expected, span.length);
}

/* Builds count opening brackets followed by count closing ones. */
static char *nested_arrays(size_t count, size_t *length)
{
    char *text = xmalloc(2 * count + 1);

    memset(text, '[', count);
    memset(text + count, ']', count);
    text[2 * count] = '\0';
    *length = 2 * count;
    return text;
}

static void scan_object_members(void **state)
{
    const char *input = " {\"a\" : 1 , \"b\":[1, {\"x\":2}], \"c\":{\"d\":null},"
                        "\"e\":\"s\\\"t\", \"f\":true, \"g\":{}} ";
    struct json_scan_result result;

    (void)state;
    assert_int_equal(scan_text(input, &result), JSON_SCAN_OK);
    assert_int_equal(result.type, JSON_SCAN_TYPE_OBJECT);
    assert_int_equal(result.root.offset, 1);
    assert_int_equal(result.root.length, strlen(input) - 2);
    assert_int_equal(result.member_count, 6);

    assert_string_equal(result.members[0].name, "a");
    assert_span_text(input, result.members[0].key, "\"a\"");
    assert_span_text(input, result.members[0].value, "1");
    assert_int_equal(result.members[0].type, JSON_SCAN_TYPE_NUMBER);

    assert_string_equal(result.members[1].name, "b");
    assert_span_text(input, result.members[1].value, "[1, {\"x\":2}]");
    assert_int_equal(result.members[1].type, JSON_SCAN_TYPE_ARRAY);

    assert_span_text(input, result.members[2].value, "{\"d\":null}");
    assert_int_equal(result.members[2].type, JSON_SCAN_TYPE_OBJECT);

    assert_span_text(input, result.members[3].value, "\"s\\\"t\"");
    assert_int_equal(result.members[3].type, JSON_SCAN_TYPE_STRING);

    assert_span_text(input, result.members[4].value, "true");
    assert_int_equal(result.members[4].type, JSON_SCAN_TYPE_BOOLEAN);

    assert_span_text(input, result.members[5].value, "{}");
    assert_int_equal(result.members[5].type, JSON_SCAN_TYPE_OBJECT);
    json_scan_result_clear(&result);
}

static void scan_array_elements(void **state)
{
    const char *input = "[ null, -1.5e3, \"x\", [], [[0]] ]";
    struct json_scan_result result;

    (void)state;
    assert_int_equal(scan_text(input, &result), JSON_SCAN_OK);
    assert_int_equal(result.type, JSON_SCAN_TYPE_ARRAY);
    assert_int_equal(result.member_count, 5);
    assert_null(result.members[0].name);
    assert_int_equal(result.members[0].key.length, 0);
    assert_int_equal(result.members[0].type, JSON_SCAN_TYPE_NULL);
    assert_span_text(input, result.members[1].value, "-1.5e3");
    assert_span_text(input, result.members[2].value, "\"x\"");
    assert_span_text(input, result.members[3].value, "[]");
    assert_span_text(input, result.members[4].value, "[[0]]");
    assert_null(json_scan_result_find(&result, "x"));
    json_scan_result_clear(&result);
}

static void scan_scalar_root(void **state)
{
    const char *input = "\n\t 12345678901234567890123 \r\n";
    struct json_scan_result result;

    (void)state;
    assert_int_equal(scan_text(input, &result), JSON_SCAN_OK);
    assert_int_equal(result.type, JSON_SCAN_TYPE_NUMBER);
    assert_span_text(input, result.root, "12345678901234567890123");
    assert_int_equal(result.member_count, 0);
    json_scan_result_clear(&result);
}

static void scan_find_decodes_keys(void **state)
{
    const char *input = "{\"\\u0069d\":1,\"a\\u0000b\":2,\"a\":3}";
    struct json_scan_result result;
    const struct json_scan_member *member;

    (void)state;
    assert_int_equal(scan_text(input, &result), JSON_SCAN_OK);
    member = json_scan_result_find(&result, "id");
    assert_non_null(member);
    assert_span_text(input, member->value, "1");
    assert_int_equal(result.members[1].name_length, 3);
    assert_memory_equal(result.members[1].name, "a\0b", 3);
    member = json_scan_result_find(&result, "a");
    assert_non_null(member);
    assert_span_text(input, member->value, "3");
    assert_null(json_scan_result_find(&result, "b"));
    json_scan_result_clear(&result);
}

static void scan_valid_documents(void **state)
{
    static const struct scan_case cases[] = {
        { "empty object", "{}", 0, JSON_SCAN_OK },
        { "empty array", "[ ]", 0, JSON_SCAN_OK },
        { "nested empty", "[[],{},[{}]]", 0, JSON_SCAN_OK },
        { "string root", "\"x\"", 0, JSON_SCAN_OK },
        { "true", "true", 0, JSON_SCAN_OK },
        { "false", "false", 0, JSON_SCAN_OK },
        { "null", "null", 0, JSON_SCAN_OK },
        { "minus zero", "-0", 0, JSON_SCAN_OK },
        { "fraction exponent", "[0.5e-10, 1E+2, 1e400, -1.0E-400]", 0,
          JSON_SCAN_OK },
        { "huge integer", "[123456789012345678901234567890]", 0, JSON_SCAN_OK },
        { "all escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"", 0,
          JSON_SCAN_OK },
        { "surrogate pair", "\"\\ud83d\\ude00\"", 0, JSON_SCAN_OK },
        { "upper hex escape", "\"\\uD83D\\uDE00\\u00E9\"", 0, JSON_SCAN_OK },
        { "raw UTF-8", "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", 0,
          JSON_SCAN_OK },
        { "max code point", "\"\xf4\x8f\xbf\xbf\"", 0, JSON_SCAN_OK },
        { "DEL in string", "\"a\x7f\"", 0, JSON_SCAN_OK },
        { "escaped NUL", "\"\\u0000\"", 0, JSON_SCAN_OK },
        { "whitespace everywhere", " \t\r\n{ \"a\" \n: [ 1 , 2 ] } \n", 0,
          JSON_SCAN_OK },
        { "same key in sibling objects", "{\"a\":{\"a\":1},\"b\":{\"a\":2}}", 0,
          JSON_SCAN_OK },
        { "key prefix", "{\"a\":1,\"ab\":2,\"a\\u0000\":3}", 0, JSON_SCAN_OK },
    };

    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void scan_invalid_syntax(void **state)
{
    static const struct scan_case cases[] = {
        { "empty", "", 0, JSON_SCAN_INVALID_JSON },
        { "whitespace only", " \n", 0, JSON_SCAN_INVALID_JSON },
        { "plain word", "hello", 0, JSON_SCAN_INVALID_JSON },
        { "unclosed object", "{", 0, JSON_SCAN_INVALID_JSON },
        { "unclosed array", "[1", 0, JSON_SCAN_INVALID_JSON },
        { "stray close", "}", 0, JSON_SCAN_INVALID_JSON },
        { "mismatched close", "[}", 0, JSON_SCAN_INVALID_JSON },
        { "trailing comma array", "[1,]", 0, JSON_SCAN_INVALID_JSON },
        { "trailing comma object", "{\"a\":1,}", 0, JSON_SCAN_INVALID_JSON },
        { "leading comma", "[,1]", 0, JSON_SCAN_INVALID_JSON },
        { "missing comma", "[1 2]", 0, JSON_SCAN_INVALID_JSON },
        { "single quotes", "{'a':1}", 0, JSON_SCAN_INVALID_JSON },
        { "unquoted key", "{a:1}", 0, JSON_SCAN_INVALID_JSON },
        { "missing colon", "{\"a\" 1}", 0, JSON_SCAN_INVALID_JSON },
        { "missing value", "{\"a\":}", 0, JSON_SCAN_INVALID_JSON },
        { "NaN", "[NaN]", 0, JSON_SCAN_INVALID_JSON },
        { "Infinity", "[Infinity]", 0, JSON_SCAN_INVALID_JSON },
        { "minus Infinity", "[-Infinity]", 0, JSON_SCAN_INVALID_JSON },
        { "line comment", "// c\n{}", 0, JSON_SCAN_INVALID_JSON },
        { "block comment", "{/* c */}", 0, JSON_SCAN_INVALID_JSON },
        { "hash comment", "{} # c", 0, JSON_SCAN_INVALID_JSON },
        { "leading zero", "[01]", 0, JSON_SCAN_INVALID_JSON },
        { "bare point", "[1.]", 0, JSON_SCAN_INVALID_JSON },
        { "point first", "[.5]", 0, JSON_SCAN_INVALID_JSON },
        { "plus sign", "[+1]", 0, JSON_SCAN_INVALID_JSON },
        { "empty exponent", "[1e]", 0, JSON_SCAN_INVALID_JSON },
        { "sign only exponent", "[1e+]", 0, JSON_SCAN_INVALID_JSON },
        { "minus alone", "[-]", 0, JSON_SCAN_INVALID_JSON },
        { "hex number", "[0x10]", 0, JSON_SCAN_INVALID_JSON },
        { "short literal", "[tru]", 0, JSON_SCAN_INVALID_JSON },
        { "capital literal", "[True]", 0, JSON_SCAN_INVALID_JSON },
        { "literal with suffix", "[nullx]", 0, JSON_SCAN_INVALID_JSON },
        { "unknown escape", "[\"\\x41\"]", 0, JSON_SCAN_INVALID_JSON },
        { "short unicode escape", "[\"\\u12\"]", 0, JSON_SCAN_INVALID_JSON },
        { "non-hex unicode escape", "[\"\\u12g4\"]", 0, JSON_SCAN_INVALID_JSON },
        { "escape at end", "\"\\", 0, JSON_SCAN_INVALID_JSON },
        { "unterminated string", "[\"abc", 0, JSON_SCAN_INVALID_JSON },
        { "raw tab in string", "[\"a\tb\"]", 0, JSON_SCAN_INVALID_JSON },
        { "raw newline in string", "[\"a\nb\"]", 0, JSON_SCAN_INVALID_JSON },
        { "two documents", "{} {}", 0, JSON_SCAN_INVALID_JSON },
        { "two scalars", "1 2", 0, JSON_SCAN_INVALID_JSON },
        { "trailing garbage", "{}x", 0, JSON_SCAN_INVALID_JSON },
        { "byte order mark", "\xef\xbb\xbf{}", 0, JSON_SCAN_INVALID_JSON },
        { "valid UTF-8 outside a string", "[\xc3\xa9]", 0,
          JSON_SCAN_INVALID_JSON },
        { "NUL in string", "[\"a\0b\"]", 7, JSON_SCAN_INVALID_JSON },
        { "NUL after document", "{}\0", 3, JSON_SCAN_INVALID_JSON },
        { "NUL before document", "\0{}", 3, JSON_SCAN_INVALID_JSON },
        { "NUL between tokens", "[1,\0 2]", 7, JSON_SCAN_INVALID_JSON },
    };

    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void scan_lone_surrogates(void **state)
{
    static const struct scan_case cases[] = {
        { "high alone", "[\"\\ud800\"]", 0, JSON_SCAN_INVALID_JSON },
        { "high at end of input", "\"\\ud800", 0, JSON_SCAN_INVALID_JSON },
        { "high then text", "[\"\\ud800x\"]", 0, JSON_SCAN_INVALID_JSON },
        { "high then other escape", "[\"\\ud800\\n\"]", 0,
          JSON_SCAN_INVALID_JSON },
        { "high then BMP escape", "[\"\\ud800\\u0041\"]", 0,
          JSON_SCAN_INVALID_JSON },
        { "two highs", "[\"\\ud800\\ud800\"]", 0, JSON_SCAN_INVALID_JSON },
        { "low alone", "[\"\\udc00\"]", 0, JSON_SCAN_INVALID_JSON },
        { "low then high", "[\"\\udfff\\udbff\"]", 0, JSON_SCAN_INVALID_JSON },
        { "lone surrogate in key", "{\"\\udbff\":1}", 0,
          JSON_SCAN_INVALID_JSON },
    };

    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void scan_invalid_utf8(void **state)
{
    static const struct scan_case cases[] = {
        { "overlong slash 2 bytes", "[\"\xc0\xaf\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "overlong C1", "[\"\xc1\xbf\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "overlong slash 3 bytes", "[\"\xe0\x80\xaf\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "overlong slash 4 bytes", "[\"\xf0\x80\x80\xaf\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "encoded high surrogate", "[\"\xed\xa0\x80\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "encoded low surrogate", "[\"\xed\xbf\xbf\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "above U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "lead F5", "[\"\xf5\x80\x80\x80\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "byte FF", "[\"\xff\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "lone continuation", "[\"\x80\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "truncated 2 bytes", "[\"\xc3\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "truncated 3 bytes", "[\"\xe2\x82\"]", 0, JSON_SCAN_INVALID_UTF8 },
        { "truncated 4 bytes", "[\"\xf0\x9f\x98\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "truncated at end of input", "\"\xe2\x82", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "bad second continuation", "[\"\xe2\x82\x41\"]", 0,
          JSON_SCAN_INVALID_UTF8 },
        { "invalid in key", "{\"\xff\":1}", 0, JSON_SCAN_INVALID_UTF8 },
        { "invalid outside a string", "[\xff]", 0, JSON_SCAN_INVALID_UTF8 },
    };

    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void scan_duplicate_keys(void **state)
{
    static const struct scan_case cases[] = {
        { "top level", "{\"a\":1,\"b\":2,\"a\":3}", 0, JSON_SCAN_DUPLICATE_KEY },
        { "nested", "{\"a\":{\"x\":1,\"x\":1}}", 0, JSON_SCAN_DUPLICATE_KEY },
        { "inside array", "[{\"x\":1},{\"y\":1,\"y\":2}]", 0,
          JSON_SCAN_DUPLICATE_KEY },
        { "escaped spelling", "{\"a\":1,\"\\u0061\":2}", 0,
          JSON_SCAN_DUPLICATE_KEY },
        { "escaped NUL both", "{\"a\\u0000\":1,\"a\\u0000\":2}", 0,
          JSON_SCAN_DUPLICATE_KEY },
        { "empty keys", "{\"\":1,\"\":2}", 0, JSON_SCAN_DUPLICATE_KEY },
    };

    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Builds an object of count keys "k0".."k<count-1>", and repeats the
 * first key at the end when duplicate is true. */
static char *many_keys(size_t count, bool duplicate)
{
    size_t capacity = count * 24 + 64;
    char *text = xmalloc(capacity);
    size_t length = 0;

    text[length++] = '{';
    for (size_t i = 0; i < count; i++)
        length += (size_t)snprintf(text + length, capacity - length,
                                   "%s\"k%zu\":%zu", i ? "," : "", i, i);
    if (duplicate)
        length += (size_t)snprintf(text + length, capacity - length,
                                   ",\"k0\":0");
    text[length++] = '}';
    text[length] = '\0';
    return text;
}

static void scan_many_keys(void **state)
{
    char *unique = many_keys(200000, false);
    char *repeated = many_keys(200000, true);
    struct json_scan_result result;
    char errstr[200];

    (void)state;
    assert_int_equal(scan_text(unique, &result), JSON_SCAN_OK);
    assert_int_equal(result.member_count, 200000);
    assert_string_equal(result.members[199999].name, "k199999");
    json_scan_result_clear(&result);

    assert_int_equal(scan_bytes(repeated, strlen(repeated), DEPTH, &result,
                                errstr, sizeof(errstr)),
                     JSON_SCAN_DUPLICATE_KEY);
    assert_int_equal(result.member_count, 0);
    assert_null(result.members);
    json_scan_result_clear(&result);
    free(unique);
    free(repeated);
}

static void scan_depth_limit(void **state)
{
    struct json_scan_result result;
    char errstr[200];

    (void)state;
    assert_int_equal(scan_bytes("[[[]]]", 6, 3, &result, errstr, sizeof(errstr)),
                     JSON_SCAN_OK);
    json_scan_result_clear(&result);
    assert_int_equal(scan_bytes("[[[[]]]]", 8, 3, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_TOO_DEEP);
    assert_non_null(strstr(errstr, "limit of 3 levels"));
    json_scan_result_clear(&result);
    assert_int_equal(scan_bytes("{\"a\":{\"b\":{\"c\":{}}}}", 20, 3, &result,
                                errstr, sizeof(errstr)),
                     JSON_SCAN_TOO_DEEP);
    json_scan_result_clear(&result);
    assert_int_equal(scan_bytes("1", 1, 0, &result, errstr, sizeof(errstr)),
                     JSON_SCAN_OK);
    json_scan_result_clear(&result);
    assert_int_equal(scan_bytes("[]", 2, 0, &result, errstr, sizeof(errstr)),
                     JSON_SCAN_TOO_DEEP);
    json_scan_result_clear(&result);
}

static void scan_deep_nesting(void **state)
{
    size_t length;
    char *deep = nested_arrays(10000, &length);
    struct json_scan_result result;
    char errstr[200];

    (void)state;
    assert_int_equal(scan_bytes(deep, length, DEPTH, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_TOO_DEEP);
    json_scan_result_clear(&result);

    /* A limit above the nesting shows the scan itself is not recursive. */
    assert_int_equal(scan_bytes(deep, length, 10000, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_OK);
    assert_int_equal(result.member_count, 1);
    assert_int_equal(result.root.length, length);
    json_scan_result_clear(&result);

    deep[length - 1] = ' ';
    assert_int_equal(scan_bytes(deep, length, 10000, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_INVALID_JSON);
    json_scan_result_clear(&result);
    free(deep);
}

static void scan_error_message_content(void **state)
{
    const char *input = "{\"secret\":\"hidden\x01value\"}";
    struct json_scan_result result;
    char errstr[200];

    (void)state;
    assert_int_equal(scan_bytes(input, strlen(input), DEPTH, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_INVALID_JSON);
    assert_non_null(strstr(errstr, "at byte offset 17."));
    assert_null(strstr(errstr, "secret"));
    assert_null(strstr(errstr, "hidden"));
    json_scan_result_clear(&result);

    assert_int_equal(scan_bytes(input, strlen(input), DEPTH, &result, errstr,
                                4),
                     JSON_SCAN_INVALID_JSON);
    assert_int_equal(strlen(errstr), 3);
    assert_int_equal(scan_bytes(input, strlen(input), DEPTH, &result, NULL, 0),
                     JSON_SCAN_INVALID_JSON);
}

static void scan_null_input(void **state)
{
    struct json_scan_result result;
    char errstr[200];

    (void)state;
    assert_int_equal(scan_bytes(NULL, 10, DEPTH, &result, errstr,
                                sizeof(errstr)),
                     JSON_SCAN_INVALID_JSON);
    assert_int_equal(result.member_count, 0);
}

static void decode_string_tokens(void **state)
{
    size_t length = 99;
    char *text;

    (void)state;
    text = json_scan_string_decode("\"plain\"", 7, &length);
    assert_non_null(text);
    assert_string_equal(text, "plain");
    assert_int_equal(length, 5);
    free(text);

    text = json_scan_string_decode("\"\"", 2, &length);
    assert_non_null(text);
    assert_int_equal(length, 0);
    free(text);

    text = json_scan_string_decode("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 18, &length);
    assert_non_null(text);
    assert_string_equal(text, "\"\\/\b\f\n\r\t");
    free(text);

    text = json_scan_string_decode("\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"", 32,
                                   &length);
    assert_non_null(text);
    assert_string_equal(text, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(length, 10);
    free(text);

    text = json_scan_string_decode("\"a\\u0000b\"", 10, &length);
    assert_non_null(text);
    assert_int_equal(length, 3);
    assert_memory_equal(text, "a\0b", 4);
    free(text);
}

static void decode_rejects_bad_tokens(void **state)
{
    size_t length;

    (void)state;
    assert_null(json_scan_string_decode("plain", 5, &length));
    assert_null(json_scan_string_decode("\"", 1, &length));
    assert_null(json_scan_string_decode("\"a\"b", 4, &length));
    assert_null(json_scan_string_decode("\"\\ud800\"", 8, &length));
    assert_null(json_scan_string_decode("\"\xff\"", 3, &length));
    assert_null(json_scan_string_decode(NULL, 0, &length));
}

static void number_to_int64_values(void **state)
{
    int64_t value = 7;

    (void)state;
    assert_true(json_scan_number_to_int64("0", 1, &value));
    assert_int_equal(value, 0);
    assert_true(json_scan_number_to_int64("-0", 2, &value));
    assert_int_equal(value, 0);
    assert_true(json_scan_number_to_int64("50000", 5, &value));
    assert_int_equal(value, 50000);
    assert_true(json_scan_number_to_int64("9223372036854775807", 19, &value));
    assert_true(value == INT64_MAX);
    assert_true(json_scan_number_to_int64("-9223372036854775808", 20, &value));
    assert_true(value == INT64_MIN);
}

static void number_to_int64_rejects(void **state)
{
    int64_t value;

    (void)state;
    assert_false(json_scan_number_to_int64("9223372036854775808", 19, &value));
    assert_false(json_scan_number_to_int64("-9223372036854775809", 20, &value));
    assert_false(json_scan_number_to_int64("12345678901234567890123", 23,
                                           &value));
    assert_false(json_scan_number_to_int64("1.0", 3, &value));
    assert_false(json_scan_number_to_int64("1e2", 3, &value));
    assert_false(json_scan_number_to_int64("", 0, &value));
    assert_false(json_scan_number_to_int64("-", 1, &value));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scan_object_members),
        cmocka_unit_test(scan_array_elements),
        cmocka_unit_test(scan_scalar_root),
        cmocka_unit_test(scan_find_decodes_keys),
        cmocka_unit_test(scan_valid_documents),
        cmocka_unit_test(scan_invalid_syntax),
        cmocka_unit_test(scan_lone_surrogates),
        cmocka_unit_test(scan_invalid_utf8),
        cmocka_unit_test(scan_duplicate_keys),
        cmocka_unit_test(scan_many_keys),
        cmocka_unit_test(scan_depth_limit),
        cmocka_unit_test(scan_deep_nesting),
        cmocka_unit_test(scan_error_message_content),
        cmocka_unit_test(scan_null_input),
        cmocka_unit_test(decode_string_tokens),
        cmocka_unit_test(decode_rejects_bad_tokens),
        cmocka_unit_test(number_to_int64_values),
        cmocka_unit_test(number_to_int64_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
