/* Regression tests for the inputs of the fuzz targets in tests/fuzz.
 *
 * Every input committed under tests/fuzz/corpus/<target>/ (seeds, and the
 * reproducer of each crash a fuzzer found) runs here through the function
 * that target fuzzes. This build has no libFuzzer, but with
 * scripts/test-sanitizers it has AddressSanitizer and UBSan, so a fixed
 * crash stays fixed in every CI run, not only when the fuzzers run. The
 * checks are the contract of each function; the fuzz targets check more.
 *
 * A crash found by a fuzzer also gets a named test in this file that
 * fails until the bug is fixed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "classify.h"
#include "json_scan.h"
#include "request.h"
#include "util.h"

/* The limits fuzz_request.c runs request_parse() with. */
static const struct request_limits fuzz_limits = {
    .max_bytes = 64 * 1024,
    .max_depth = 64,
};

/* 2026-01-15T12:00:00Z, one of the times fuzz_retry_after.c uses. */
#define RETRY_AFTER_NOW_MS INT64_C(1768478400000)
#define DAY_MS (24LL * 60 * 60 * 1000)

/* One corpus file, read into a buffer of exactly its size, so that
 * AddressSanitizer catches a read past its end. */
struct corpus_input {
    char name[256];
    unsigned char *data;
    size_t size;
};

typedef void corpus_check_fn(const struct corpus_input *input);

/* Writes the path of tests/fuzz/corpus/<target> to buf. It is found from
 * this file's path, which CMake passes to the compiler as an absolute
 * path. */
static void corpus_dir(const char *target, char *buf, size_t size)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int length;

    assert_non_null(slash);
    length = snprintf(buf, size, "%.*s/../fuzz/corpus/%s",
                      (int)(slash - file), file, target);
    assert_true(length > 0 && (size_t)length < size);
}

static void read_input(const char *path, struct corpus_input *input)
{
    FILE *file = fopen(path, "rb");
    long size;

    assert_non_null(file);
    assert_int_equal(fseek(file, 0, SEEK_END), 0);
    size = ftell(file);
    assert_true(size >= 0);
    assert_int_equal(fseek(file, 0, SEEK_SET), 0);
    input->size = (size_t)size;
    input->data = xmalloc(input->size);
    if (input->size > 0)
        assert_int_equal(fread(input->data, 1, input->size, file), input->size);
    fclose(file);
}

/* Runs check on every file of the target's corpus and returns how many
 * there were. */
static size_t replay_corpus(const char *target, corpus_check_fn *check)
{
    char dir_path[PATH_MAX], path[PATH_MAX + 256];
    struct dirent *entry;
    size_t count = 0;
    DIR *dir;

    corpus_dir(target, dir_path, sizeof(dir_path));
    dir = opendir(dir_path);
    if (dir == NULL)
        fail_msg("cannot open the corpus directory %s", dir_path);
    while ((entry = readdir(dir)) != NULL) {
        struct corpus_input input = { 0 };

        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
        snprintf(input.name, sizeof(input.name), "%s", entry->d_name);
        read_input(path, &input);
        check(&input);
        free(input.data);
        count++;
    }
    closedir(dir);
    return count;
}

/* Fails the test with the corpus file's name and the condition. */
#define assert_input(input, condition)                                      \
    do {                                                                    \
        if (!(condition))                                                   \
            fail_msg("corpus input %s: %s", (input)->name, #condition);     \
    } while (0)

static void check_request_input(const struct corpus_input *input)
{
    struct request *req = request_parse(input->data, input->size,
                                        &fuzz_limits);

    assert_input(input, req != NULL);
    assert_input(input, req->valid == (req->error_code == NULL));
    if (req->valid) {
        assert_input(input, req->id != NULL);
        assert_input(input, req->from != NULL);
        assert_input(input, req->to != NULL);
        assert_input(input, req->body != NULL);
        assert_input(input, req->body_len == strlen(req->body));
    } else {
        assert_input(input, req->error_code != NULL);
        assert_input(input, strnlen(req->error_message,
                                    sizeof(req->error_message)) <
                                sizeof(req->error_message));
        assert_input(input, req->from == NULL);
        assert_input(input, req->to == NULL);
        assert_input(input, req->body == NULL);
    }
    request_free(req);
}

static void check_json_scan_input(const struct corpus_input *input)
{
    const char *data = (const char *)input->data;
    struct json_scan_result result;
    enum json_scan_status status;
    char errstr[200];
    size_t decoded_length;
    int64_t number;
    char *decoded;

    status = json_scan_document(data, input->size, 64, &result, errstr,
                                sizeof(errstr));
    if (status == JSON_SCAN_OK) {
        assert_input(input, errstr[0] == '\0');
        assert_input(input,
                     result.root.offset + result.root.length <= input->size);
        for (size_t i = 0; i < result.member_count; i++)
            assert_input(input, result.members[i].value.offset +
                                        result.members[i].value.length <=
                                    input->size);
    } else {
        assert_input(input, errstr[0] != '\0');
        assert_input(input, result.members == NULL);
        assert_input(input, result.member_count == 0);
    }
    json_scan_result_clear(&result);

    decoded = json_scan_string_decode(data, input->size, &decoded_length);
    if (decoded != NULL)
        assert_input(input, decoded_length + 2 <= input->size);
    free(decoded);
    (void)json_scan_number_to_int64(data, input->size, &number);
}

/* The statuses that fuzz_classify.c picks with the high bit of byte 2, in
 * its order. */
static const long classify_statuses[] = {
    0, 1, 99, 100, 199, 200, 201, 202, 204, 226, 299, 300, 301, 304, 399,
    400, 401, 403, 404, 408, 409, 413, 422, 429, 499, 500, 501, 502, 503,
    504, 599, 600, 999, -1, LONG_MIN, LONG_MAX,
};

/* Decodes the 4 header bytes as fuzz_classify.c does: transport, flags
 * (body_sent, NULL body) and the HTTP status. */
static void check_classify_input(const struct corpus_input *input)
{
    const size_t status_count =
        sizeof(classify_statuses) / sizeof(classify_statuses[0]);
    struct classify_input in = { 0 };
    struct classify_result out;
    unsigned status_bits;

    if (input->size < 4)
        return;
    in.transport = (enum classify_transport)(input->data[0] % 5);
    in.body_sent = (input->data[1] & 1) != 0;
    status_bits = ((unsigned)input->data[2] << 8) | input->data[3];
    if (status_bits & 0x8000)
        in.http_status = classify_statuses[input->data[3] % status_count];
    else
        in.http_status = (long)status_bits - 100;
    if ((input->data[1] & 2) == 0) {
        in.body = (const char *)input->data + 4;
        in.body_len = input->size - 4;
    }
    classify_attempt(&in, &out);
    assert_input(input, out.action >= CLASSIFY_SENT &&
                            out.action <= CLASSIFY_DEAD_LETTER);
    assert_input(input,
                 (out.action == CLASSIFY_SENT) == (out.error_class == NULL));
    assert_input(input, strnlen(out.error_code, sizeof(out.error_code)) <
                            sizeof(out.error_code));
    assert_input(input, strnlen(out.error_message, sizeof(out.error_message)) <
                            sizeof(out.error_message));
    assert_input(input, strnlen(out.message_id, sizeof(out.message_id)) <
                            sizeof(out.message_id));
}

static void check_retry_after_input(const struct corpus_input *input)
{
    char *value = xmalloc(input->size + 1);
    int64_t delay_ms = -1;
    int status;

    memcpy(value, input->data, input->size);
    value[input->size] = '\0';
    status = backoff_parse_retry_after(value, RETRY_AFTER_NOW_MS, &delay_ms);
    assert_input(input, status == 0 || status == -1);
    if (status == 0) {
        assert_input(input, delay_ms >= 0);
        assert_input(input, delay_ms <= DAY_MS);
    }
    free(value);
}

static void request_corpus_replays(void **state)
{
    (void)state;
    assert_true(replay_corpus("fuzz_request", check_request_input) > 0);
}

static void json_scan_corpus_replays(void **state)
{
    (void)state;
    assert_true(replay_corpus("fuzz_json_scan", check_json_scan_input) > 0);
}

static void classify_corpus_replays(void **state)
{
    (void)state;
    assert_true(replay_corpus("fuzz_classify", check_classify_input) > 0);
}

static void retry_after_corpus_replays(void **state)
{
    (void)state;
    assert_true(replay_corpus("fuzz_retry_after", check_retry_after_input) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_corpus_replays),
        cmocka_unit_test(json_scan_corpus_replays),
        cmocka_unit_test(classify_corpus_replays),
        cmocka_unit_test(retry_after_corpus_replays),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
