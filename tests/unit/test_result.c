/* Result records and dead-letter headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "job.h"
#include "result.h"

static const char *get_string(json_object *obj, const char *key)
{
    json_object *value = NULL;

    if (!json_object_object_get_ex(obj, key, &value) || !value)
        return NULL;
    return json_object_get_string(value);
}

static bool is_null(json_object *obj, const char *key)
{
    json_object *value = NULL;

    return json_object_object_get_ex(obj, key, &value) && value == NULL;
}

static struct request *make_request(void)
{
    static const char record[] =
        "{\"id\":\"order-1\",\"channel\":\"telegram\",\"from\":\"bot\","
        "\"to\":\"123\",\"content\":{\"text\":\"hi\"},"
        "\"metadata\":{\"b\":1.50,\"a\":[1,2]}}";
    struct request_limits limits = {.max_bytes = 1 << 20, .max_depth = 64};

    return request_parse(record, sizeof(record) - 1, &limits);
}

static void sent_result_has_every_field(void **state)
{
    struct job job = {
        .topic = "requests",
        .partition = 3,
        .offset = 42,
        .attempts = 2,
        .last_http_status = 200,
        .received_wall_ms = 1000,
    };
    size_t len;

    (void)state;
    job.req = make_request();
    assert_true(job.req->valid);
    job.outcome.status = "sent";
    job.outcome.has_message_id = true;
    strcpy(job.outcome.message_id, "m-1");
    strcpy(job.outcome.api_request_id, "req-9");

    char *text = result_encode(&job, 2000, &len);
    assert_int_equal(strlen(text), len);
    json_object *root = json_tokener_parse(text);
    assert_non_null(root);

    assert_int_equal(json_object_get_int(json_object_object_get(root, "schema")), 1);
    assert_string_equal(get_string(root, "id"), "order-1");
    assert_string_equal(get_string(root, "status"), "sent");
    assert_string_equal(get_string(root, "channel"), "telegram");
    assert_string_equal(get_string(root, "message_id"), "m-1");
    assert_int_equal(json_object_get_int(json_object_object_get(root, "http_status")), 200);
    assert_true(is_null(root, "error"));
    assert_int_equal(json_object_get_int(json_object_object_get(root, "attempts")), 2);
    assert_string_equal(get_string(root, "received_at"), "1970-01-01T00:00:01.000Z");
    assert_string_equal(get_string(root, "completed_at"), "1970-01-01T00:00:02.000Z");
    assert_string_equal(get_string(root, "api_request_id"), "req-9");
    json_object *duplicate = json_object_object_get(root, "possible_duplicate");
    assert_true(json_object_is_type(duplicate, json_type_boolean));
    assert_false(json_object_get_boolean(duplicate));

    json_object *source = json_object_object_get(root, "source");
    assert_string_equal(get_string(source, "topic"), "requests");
    assert_int_equal(json_object_get_int(json_object_object_get(source, "partition")), 3);
    assert_int_equal(json_object_get_int64(json_object_object_get(source, "offset")), 42);

    /* metadata is echoed byte for byte: "1.50" keeps its trailing zero. */
    assert_non_null(strstr(text, "\"metadata\":{\"b\":1.50,\"a\":[1,2]}}"));

    json_object_put(root);
    free(text);
    request_free(job.req);
}

static void resent_after_unknown_outcome_is_flagged(void **state)
{
    struct job job = {.topic = "requests", .attempts = 2,
                      .possible_duplicate = true};
    size_t len;

    (void)state;
    job.req = make_request();
    job.outcome.status = "sent";
    char *text = result_encode(&job, 0, &len);
    json_object *root = json_tokener_parse(text);

    assert_non_null(root);
    assert_true(json_object_get_boolean(
        json_object_object_get(root, "possible_duplicate")));
    json_object_put(root);
    free(text);
    request_free(job.req);
}

static void rejected_result_without_id(void **state)
{
    struct request_limits limits = {.max_bytes = 1 << 20, .max_depth = 64};
    struct job job = {.topic = "requests", .partition = 0, .offset = 7};
    size_t len;

    (void)state;
    job.req = request_parse("not json", 8, &limits);
    assert_false(job.req->valid);
    job.outcome.status = "rejected";
    job.outcome.error_class = "invalid_request";
    strcpy(job.outcome.error_code, job.req->error_code);
    strcpy(job.outcome.error_message, "a \"quoted\"\nmessage");

    char *text = result_encode(&job, 0, &len);
    json_object *root = json_tokener_parse(text);
    assert_non_null(root);
    assert_true(is_null(root, "id"));
    assert_true(is_null(root, "channel"));
    assert_true(is_null(root, "message_id"));
    assert_true(is_null(root, "http_status"));
    assert_true(is_null(root, "metadata"));
    assert_string_equal(get_string(root, "status"), "rejected");

    json_object *error = json_object_object_get(root, "error");
    assert_string_equal(get_string(error, "class"), "invalid_request");
    assert_string_equal(get_string(error, "code"), job.req->error_code);
    assert_string_equal(get_string(error, "message"), "a \"quoted\"\nmessage");
    /* The record stays on one line whatever the message contains. */
    assert_null(strchr(text, '\n'));

    json_object_put(root);
    free(text);
    request_free(job.req);
}

static const char *header(rd_kafka_headers_t *headers, const char *name)
{
    static char copy[512];
    const void *value;
    size_t size;

    if (rd_kafka_header_get_last(headers, name, &value, &size) != 0)
        return NULL;
    memcpy(copy, value, size < sizeof(copy) - 1 ? size : sizeof(copy) - 1);
    copy[size < sizeof(copy) - 1 ? size : sizeof(copy) - 1] = '\0';
    return copy;
}

static void result_headers_name_the_source(void **state)
{
    struct job job = {.topic = "requests", .partition = 1, .offset = 99,
                      .attempts = 3, .last_http_status = 503};

    (void)state;
    job.req = make_request();
    job.outcome.status = "failed";
    rd_kafka_headers_t *headers = result_headers(&job);

    assert_string_equal(header(headers, "chatt2me.request_id"), "order-1");
    assert_string_equal(header(headers, "chatt2me.source_topic"), "requests");
    assert_string_equal(header(headers, "chatt2me.source_partition"), "1");
    assert_string_equal(header(headers, "chatt2me.source_offset"), "99");
    assert_string_equal(header(headers, "chatt2me.attempts"), "3");
    assert_string_equal(header(headers, "chatt2me.http_status"), "503");
    assert_string_equal(header(headers, "chatt2me.status"), "failed");

    rd_kafka_headers_destroy(headers);
    request_free(job.req);
}

static void dead_letter_keeps_original_headers(void **state)
{
    struct job job = {.topic = "requests", .partition = 0, .offset = 5,
                      .attempts = 1, .last_http_status = 401};
    static const char binary[] = {'\x00', '\xff', 'x'};

    (void)state;
    job.req = make_request();
    job.headers = rd_kafka_headers_new(2);
    rd_kafka_header_add(job.headers, "trace", -1, binary, sizeof(binary));
    rd_kafka_header_add(job.headers, "empty", -1, NULL, 0);
    job.outcome.error_class = "auth";
    strcpy(job.outcome.error_code, "unauthorized");
    strcpy(job.outcome.error_message, "Invalid API key");

    rd_kafka_headers_t *headers = result_dead_letter_headers(&job, 0);

    const void *value;
    size_t size;
    assert_int_equal(rd_kafka_header_get(headers, 0, "trace", &value, &size), 0);
    assert_int_equal(size, sizeof(binary));
    assert_memory_equal(value, binary, sizeof(binary));
    assert_int_equal(rd_kafka_header_get(headers, 0, "empty", &value, &size), 0);
    assert_null(value);

    assert_string_equal(header(headers, "chatt2me.error_class"), "auth");
    assert_string_equal(header(headers, "chatt2me.error_code"), "unauthorized");
    assert_string_equal(header(headers, "chatt2me.error_message"), "Invalid API key");
    assert_string_equal(header(headers, "chatt2me.http_status"), "401");
    assert_string_equal(header(headers, "chatt2me.failed_at"), "1970-01-01T00:00:00.000Z");
    assert_string_equal(header(headers, "chatt2me.source_offset"), "5");

    rd_kafka_headers_destroy(headers);
    rd_kafka_headers_destroy(job.headers);
    request_free(job.req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sent_result_has_every_field),
        cmocka_unit_test(resent_after_unknown_outcome_is_flagged),
        cmocka_unit_test(rejected_result_without_id),
        cmocka_unit_test(result_headers_name_the_source),
        cmocka_unit_test(dead_letter_keeps_original_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
