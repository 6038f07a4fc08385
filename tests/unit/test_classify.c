/* Tests for classify_attempt(): a table with one named cmocka test per
 * status, transport failure and body, then generated hostile bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "classify.h"

#define API_MESSAGE_SIZE 256 /* sizeof(struct classify_result.error_message) */
#define MESSAGE_ID_SIZE 129  /* sizeof(struct classify_result.message_id) */

/* One attempt and the expected result. body is NUL-terminated here but is
 * passed to classify_attempt() as an exact-size copy without terminator. */
struct classify_case {
    const char *name;
    enum classify_transport transport;
    bool body_sent;
    long http_status;
    const char *body;
    enum classify_action action;
    bool unknown_outcome;
    const char *error_class; /* NULL when sent */
    const char *error_code;
    const char *error_message;
    const char *message_id; /* "" when absent */
};

#define OK CLASSIFY_TRANSPORT_OK
#define SENT CLASSIFY_SENT
#define FAILED CLASSIFY_FAILED
#define RETRY CLASSIFY_RETRY
#define DEAD_LETTER CLASSIFY_DEAD_LETTER

static const struct classify_case cases[] = {
    /* 2xx accepted */
    {"200 with message id", OK, true, 200,
     "{\"messageId\":\"eba8d8ef-ec4d-41ad-825f-9a60ccda49bf\","
     "\"status\":\"sent\"}",
     SENT, false, NULL, "", "", "eba8d8ef-ec4d-41ad-825f-9a60ccda49bf"},
    {"200 without message id", OK, true, 200, "{\"status\":\"sent\"}",
     SENT, false, NULL, "", "", ""},
    {"200 enqueued status", OK, true, 200,
     "{\"messageId\":\"m-1\",\"status\":\"enqueued\"}",
     SENT, false, NULL, "", "", "m-1"},
    {"200 unknown fields ignored", OK, true, 200,
     "{\"messageId\":\"m-2\",\"recipientId\":\"123\",\"type\":\"Text\"}",
     SENT, false, NULL, "", "", "m-2"},
    {"200 trailing newline", OK, true, 200, "{\"messageId\":\"m-3\"}\r\n",
     SENT, false, NULL, "", "", "m-3"},
    {"200 empty body", OK, true, 200, "", SENT, false, NULL, "", "", ""},
    {"200 no body", OK, true, 200, NULL, SENT, false, NULL, "", "", ""},
    {"200 non-JSON body", OK, true, 200, "OK", SENT, false, NULL, "", "",
     ""},
    {"200 HTML body", OK, true, 200, "<html><body>error</body></html>",
     SENT, false, NULL, "", "", ""},
    {"200 JSON array body", OK, true, 200, "[{\"status\":\"error\"}]", SENT,
     false, NULL, "", "", ""},
    {"200 JSON string body", OK, true, 200, "\"error\"", SENT, false, NULL,
     "", "", ""},
    {"200 truncated JSON body", OK, true, 200, "{\"status\":\"error\"",
     SENT, false, NULL, "", "", ""},
    {"200 numeric message id", OK, true, 200, "{\"messageId\":42}", SENT,
     false, NULL, "", "", ""},
    {"200 empty message id", OK, true, 200, "{\"messageId\":\"\"}", SENT,
     false, NULL, "", "", ""},
    {"200 non-printable message id", OK, true, 200,
     "{\"messageId\":\"abc\\u0001def\"}", SENT, false, NULL, "", "", ""},
    {"200 non-ASCII message id", OK, true, 200,
     "{\"messageId\":\"id-\xc3\xa9\"}", SENT, false, NULL, "", "", ""},
    {"200 message id with DEL", OK, true, 200,
     "{\"messageId\":\"id\\u007f\"}", SENT, false, NULL, "", "", ""},
    {"201 with message id", OK, true, 201, "{\"messageId\":\"m-201\"}", SENT,
     false, NULL, "", "", "m-201"},
    {"204 empty body", OK, true, 204, "", SENT, false, NULL, "", "", ""},

    /* 2xx with an error body */
    {"200 error with code", OK, true, 200,
     "{\"messageId\":null,\"status\":\"error\","
     "\"errorMessage\":\"The recipient is not a valid WhatsApp user\","
     "\"errorCode\":\"130472\"}",
     FAILED, false, "send_error", "130472",
     "The recipient is not a valid WhatsApp user", ""},
    {"200 error without code", OK, true, 200, "{\"status\":\"error\"}",
     FAILED, false, "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 error status uppercase", OK, true, 200,
     "{\"status\":\"ERROR\",\"errorCode\":\"E1\"}", FAILED, false,
     "send_error", "E1",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 error status mixed case", OK, true, 200,
     "{\"status\":\"Error\",\"errorMessage\":\"closed window\"}", FAILED,
     false, "send_error", "send_error", "closed window", ""},
    {"200 error status with message id", OK, true, 200,
     "{\"messageId\":\"m-4\",\"status\":\"error\"}", FAILED, false,
     "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 status error with NUL suffix", OK, true, 200,
     "{\"messageId\":\"m-9\",\"status\":\"error\\u0000x\"}", SENT, false, NULL,
     "", "", "m-9"},
    {"200 status errors is not error", OK, true, 200,
     "{\"messageId\":\"m-5\",\"status\":\"errors\"}", SENT, false, NULL, "",
     "", "m-5"},
    {"200 numeric errorCode", OK, true, 200,
     "{\"status\":\"error\",\"errorCode\":130472,\"errorMessage\":\"m\"}",
     FAILED, false, "send_error", "130472", "m", ""},
    {"200 negative errorCode", OK, true, 200,
     "{\"status\":\"error\",\"errorCode\":-7}", FAILED, false, "send_error",
     "-7",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 fractional errorCode", OK, true, 200,
     "{\"status\":\"error\",\"errorCode\":1.5}", FAILED, false, "send_error",
     "1.5",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 boolean errorCode", OK, true, 200,
     "{\"status\":\"error\",\"errorCode\":true}", FAILED, false,
     "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 empty errorCode", OK, true, 200,
     "{\"status\":\"error\",\"errorCode\":\"\",\"errorMessage\":\"\"}",
     FAILED, false, "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 object errorMessage", OK, true, 200,
     "{\"status\":\"error\",\"errorMessage\":{\"text\":\"x\"}}", FAILED,
     false, "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 null message id", OK, true, 200,
     "{\"messageId\":null,\"status\":\"sent\"}", FAILED, false,
     "send_error", "send_error",
     "the API responded with HTTP 200 and reported a send error without an "
     "error message",
     ""},
    {"200 session not found", OK, true, 200,
     "{\"messageId\":null,\"status\":\"error\","
     "\"errorCode\":\"session_not_found\","
     "\"errorMessage\":\"no active session\"}",
     FAILED, false, "send_error", "session_not_found", "no active session",
     ""},
    {"299 error body", OK, true, 299, "{\"status\":\"error\"}", FAILED, false,
     "send_error", "send_error",
     "the API responded with HTTP 299 and reported a send error without an "
     "error message",
     ""},

    /* Statuses other than 2xx */
    {"100 informational", OK, true, 100, "", FAILED, false,
     "unexpected_status", "http_100",
     "the API responded with HTTP 100 and no error message", ""},
    {"301 redirect", OK, true, 301, "<html>moved</html>", FAILED, false,
     "unexpected_status", "http_301",
     "the API responded with HTTP 301 and no error message", ""},
    {"400 with API error", OK, true, 400,
     "{\"errorCode\":\"invalid_to\",\"errorMessage\":\"to must not start "
     "with +\"}",
     FAILED, false, "bad_request", "invalid_to", "to must not start with +",
     ""},
    {"400 without body", OK, true, 400, "", FAILED, false, "bad_request",
     "http_400", "the API responded with HTTP 400 and no error message", ""},
    {"400 framework body", OK, true, 400,
     "{\"message\":\"Bad Request\",\"statusCode\":400}", FAILED, false,
     "bad_request", "http_400",
     "the API responded with HTTP 400 and no error message", ""},
    {"400 non-JSON body", OK, true, 400, "secret-body-text", FAILED, false,
     "bad_request", "http_400",
     "the API responded with HTTP 400 and no error message", ""},
    {"400 numeric errorCode", OK, true, 400, "{\"errorCode\":400}", FAILED,
     false, "bad_request", "400",
     "the API responded with HTTP 400 and no error message", ""},
    {"400 message id ignored", OK, true, 400, "{\"messageId\":\"m-6\"}",
     FAILED, false, "bad_request", "http_400",
     "the API responded with HTTP 400 and no error message", ""},
    {"401 with API error", OK, true, 401,
     "{\"errorCode\":\"invalid_key\",\"errorMessage\":\"API key revoked\"}",
     DEAD_LETTER, false, "auth", "invalid_key", "API key revoked", ""},
    {"401 without body", OK, true, 401, "", DEAD_LETTER, false, "auth",
     "http_401", "the API responded with HTTP 401 and no error message", ""},
    {"401 body not sent", OK, false, 401, NULL, DEAD_LETTER, false, "auth",
     "http_401", "the API responded with HTTP 401 and no error message", ""},
    {"403 forbidden", OK, true, 403, "", FAILED, false, "client_error",
     "http_403", "the API responded with HTTP 403 and no error message", ""},
    {"404 channel not found", OK, true, 404,
     "{\"errorMessage\":\"channel not found\"}", FAILED, false, "not_found",
     "http_404", "channel not found", ""},
    {"408 request timeout", OK, true, 408, "", RETRY, false, "timeout",
     "http_408", "the API responded with HTTP 408 and no error message", ""},
    {"409 conflict", OK, true, 409, "", FAILED, false, "client_error",
     "http_409", "the API responded with HTTP 409 and no error message", ""},
    {"422 unprocessable", OK, true, 422,
     "{\"errorCode\":\"E422\",\"errorMessage\":\"bad template\"}", FAILED,
     false, "client_error", "E422", "bad template", ""},
    {"429 rate limited", OK, true, 429, "", RETRY, false, "rate_limited",
     "http_429", "the API responded with HTTP 429 and no error message", ""},
    {"499 client error", OK, true, 499, "", FAILED, false, "client_error",
     "http_499", "the API responded with HTTP 499 and no error message", ""},
    {"500 body sent", OK, true, 500, "", RETRY, false, "server_error",
     "http_500", "the API responded with HTTP 500 and no error message", ""},
    {"500 with API error", OK, true, 500,
     "{\"errorCode\":\"internal\",\"errorMessage\":\"try later\"}", RETRY,
     false, "server_error", "internal", "try later", ""},
    {"502 body sent", OK, true, 502, "<html>Bad Gateway</html>", RETRY, true,
     "server_error", "http_502",
     "the API responded with HTTP 502 and no error message", ""},
    {"502 body not sent", OK, false, 502, "", RETRY, false, "server_error",
     "http_502", "the API responded with HTTP 502 and no error message", ""},
    {"503 body sent", OK, true, 503, "", RETRY, false, "server_error",
     "http_503", "the API responded with HTTP 503 and no error message", ""},
    {"504 body sent", OK, true, 504, "", RETRY, true, "server_error",
     "http_504", "the API responded with HTTP 504 and no error message", ""},
    {"504 body not sent", OK, false, 504, "", RETRY, false, "server_error",
     "http_504", "the API responded with HTTP 504 and no error message", ""},
    {"599 server error", OK, true, 599, "", RETRY, false, "server_error",
     "http_599", "the API responded with HTTP 599 and no error message", ""},
    {"600 out of range", OK, true, 600, "", FAILED, false,
     "unexpected_status", "http_600",
     "the API responded with HTTP 600 and no error message", ""},
    {"status 0 with response", OK, true, 0, "", FAILED, false,
     "unexpected_status", "http_0",
     "the API responded with HTTP 0 and no error message", ""},
    {"negative status", OK, true, -1, "", FAILED, false,
     "unexpected_status", "http_-1",
     "the API responded with HTTP -1 and no error message", ""},

    /* Transport failures */
    {"connect failed body not sent", CLASSIFY_TRANSPORT_CONNECT_FAILED,
     false, 0, NULL, RETRY, false, "connect_failed", "connect_failed",
     "the connection to the API could not be established", ""},
    {"connect failed body sent", CLASSIFY_TRANSPORT_CONNECT_FAILED, true, 0,
     NULL, RETRY, false, "connect_failed", "connect_failed",
     "the connection to the API could not be established", ""},
    {"timeout body not sent", CLASSIFY_TRANSPORT_TIMEOUT, false, 0, NULL,
     RETRY, false, "timeout", "timeout",
     "the request timed out before the request body was sent", ""},
    {"timeout body sent", CLASSIFY_TRANSPORT_TIMEOUT, true, 0, NULL, RETRY,
     true, "timeout", "timeout",
     "the request timed out after the request body was sent", ""},
    {"connection lost body not sent", CLASSIFY_TRANSPORT_CONNECTION_LOST,
     false, 0, NULL, RETRY, false, "connection_lost", "connection_lost",
     "the connection was lost before the request body was sent", ""},
    {"connection lost body sent", CLASSIFY_TRANSPORT_CONNECTION_LOST, true,
     0, NULL, RETRY, true, "connection_lost", "connection_lost",
     "the connection was lost after the request body was sent", ""},
    {"other transport body not sent", CLASSIFY_TRANSPORT_OTHER, false, 0,
     NULL, RETRY, false, "transport_error", "transport_error",
     "the HTTP transfer failed before the request body was sent", ""},
    {"other transport body sent", CLASSIFY_TRANSPORT_OTHER, true, 0, NULL,
     RETRY, true, "transport_error", "transport_error",
     "the HTTP transfer failed after the request body was sent", ""},
    {"timeout ignores partial response", CLASSIFY_TRANSPORT_TIMEOUT, true,
     200, "{\"messageId\":\"m-7\"}", RETRY, true, "timeout", "timeout",
     "the request timed out after the request body was sent", ""},
    {"unknown transport value", (enum classify_transport)99, false, 0, NULL,
     RETRY, false, "transport_error", "transport_error",
     "the HTTP transfer failed before the request body was sent", ""},

    /* Hostile text inside otherwise valid bodies */
    {"control characters replaced", OK, true, 400,
     "{\"errorMessage\":\"a\\nb\\tc\\u0000d\\u001b[31me\\u007ff\\u0085g\"}",
     FAILED, false, "bad_request", "http_400", "a b c d [31me f g", ""},
    {"raw control byte replaced", OK, true, 400,
     "{\"errorMessage\":\"a\x01" "b\"}", FAILED, false, "bad_request",
     "http_400", "a b", ""},
    {"control characters in errorCode", OK, true, 400,
     "{\"errorCode\":\"E\\r\\n1\"}", FAILED, false, "bad_request", "E  1",
     "the API responded with HTTP 400 and no error message", ""},
    {"non-ASCII text kept", OK, true, 400,
     "{\"errorMessage\":\"n\xc3\xa3o \\u00e9 v\xc3\xa1lido \xf0\x9f\x98\x80\"}",
     FAILED, false, "bad_request", "http_400",
     "n\xc3\xa3o \xc3\xa9 v\xc3\xa1lido \xf0\x9f\x98\x80", ""},
    {"invalid UTF-8 byte replaced", OK, true, 400,
     "{\"errorMessage\":\"a\xff" "b\"}", FAILED, false, "bad_request",
     "http_400", "a?b", ""},
    {"overlong UTF-8 replaced", OK, true, 400,
     "{\"errorMessage\":\"a\xc0\xaf" "b\"}", FAILED, false, "bad_request",
     "http_400", "a??b", ""},
    {"UTF-8 surrogate replaced", OK, true, 400,
     "{\"errorMessage\":\"a\xed\xa0\x80" "b\"}", FAILED, false,
     "bad_request", "http_400", "a???b", ""},
    {"lone continuation byte replaced", OK, true, 400,
     "{\"errorMessage\":\"a\x80" "b\"}", FAILED, false, "bad_request",
     "http_400", "a?b", ""},
    {"truncated UTF-8 sequence replaced", OK, true, 400,
     "{\"errorMessage\":\"a\xe2\x82\"}", FAILED, false, "bad_request",
     "http_400", "a??", ""},
};

static void run_classify(enum classify_transport transport, bool body_sent,
                         long http_status, const char *body, size_t body_len,
                         struct classify_result *out)
{
    struct classify_input in;

    memset(&in, 0, sizeof(in));
    in.transport = transport;
    in.body_sent = body_sent;
    in.http_status = http_status;
    in.body = body;
    in.body_len = body_len;

    /* Garbage in every field shows a field the classifier forgot to set. */
    memset(out, 0xA5, sizeof(*out));
    classify_attempt(&in, out);
}

/* Classifies a NUL-terminated body from an exact-size heap copy, so that
 * a read past body_len shows up under AddressSanitizer. */
static void run_classify_copy(long http_status, const char *body,
                              struct classify_result *out)
{
    size_t len = strlen(body);
    char *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    memcpy(copy, body, len);
    run_classify(OK, true, http_status, copy, len, out);
    free(copy);
}

static void test_classify_case(void **state)
{
    const struct classify_case *c = *state;
    struct classify_result out;
    char *copy = NULL;
    size_t len = 0;

    if (c->body != NULL) {
        len = strlen(c->body);
        copy = malloc(len > 0 ? len : 1);
        assert_non_null(copy);
        memcpy(copy, c->body, len);
    }
    run_classify(c->transport, c->body_sent, c->http_status, copy, len, &out);
    free(copy);

    assert_int_equal(out.action, c->action);
    assert_int_equal(out.unknown_outcome, c->unknown_outcome);
    if (c->error_class == NULL)
        assert_null(out.error_class);
    else
        assert_string_equal(out.error_class, c->error_class);
    assert_string_equal(out.error_code, c->error_code);
    assert_string_equal(out.error_message, c->error_message);
    assert_string_equal(out.message_id, c->message_id);
    assert_int_equal(out.has_message_id, c->message_id[0] != '\0');
}

/* Returns a heap string: prefix, `count` copies of fill, then suffix. */
static char *build_body(const char *prefix, const char *fill, size_t count,
                        const char *suffix)
{
    size_t prefix_len = strlen(prefix);
    size_t fill_len = strlen(fill);
    size_t suffix_len = strlen(suffix);
    char *body = malloc(prefix_len + fill_len * count + suffix_len + 1);
    char *pos = body;

    assert_non_null(body);
    memcpy(pos, prefix, prefix_len);
    pos += prefix_len;
    for (size_t i = 0; i < count; i++) {
        memcpy(pos, fill, fill_len);
        pos += fill_len;
    }
    memcpy(pos, suffix, suffix_len + 1);
    return body;
}

static void test_deep_array_is_sent(void **state)
{
    char *body = build_body("", "[", 100000, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(200, body, &out);
    free(body);

    assert_int_equal(out.action, CLASSIFY_SENT);
    assert_false(out.has_message_id);
    assert_string_equal(out.message_id, "");
}

static void test_nesting_over_limit_ignored(void **state)
{
    /* The object itself is level one, so 40 arrays exceed depth 32. */
    char *open = build_body("{\"errorCode\":\"deep\",\"x\":", "[", 40, "");
    char *body = build_body(open, "]", 40, "}");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);
    free(open);
    free(body);

    assert_int_equal(out.action, CLASSIFY_FAILED);
    assert_string_equal(out.error_class, "bad_request");
    assert_string_equal(out.error_code, "http_400");
}

static void test_nesting_within_limit_parsed(void **state)
{
    char *open = build_body("{\"errorCode\":\"deep\",\"x\":", "[", 30, "");
    char *body = build_body(open, "]", 30, "}");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);
    free(open);
    free(body);

    assert_int_equal(out.action, CLASSIFY_FAILED);
    assert_string_equal(out.error_code, "deep");
}

static void test_huge_error_message_truncated(void **state)
{
    char *body = build_body("{\"errorMessage\":\"", "a", 100000, "\"}");
    char *expected = build_body("", "a", API_MESSAGE_SIZE - 1, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);

    assert_int_equal(strlen(out.error_message), API_MESSAGE_SIZE - 1);
    assert_string_equal(out.error_message, expected);
    free(body);
    free(expected);
}

static void test_huge_error_code_truncated(void **state)
{
    char *body = build_body("{\"errorCode\":\"", "7", 1000, "\"}");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);
    free(body);

    assert_int_equal(strlen(out.error_code), sizeof(out.error_code) - 1);
    assert_int_equal(out.error_code[0], '7');
}

static void test_huge_message_id_truncated(void **state)
{
    char *body = build_body("{\"messageId\":\"", "b", 1000, "\"}");
    char *expected = build_body("", "b", MESSAGE_ID_SIZE - 1, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(200, body, &out);

    assert_int_equal(out.action, CLASSIFY_SENT);
    assert_true(out.has_message_id);
    assert_string_equal(out.message_id, expected);
    free(body);
    free(expected);
}

static void test_message_id_at_buffer_size(void **state)
{
    char *body = build_body("{\"messageId\":\"", "c", MESSAGE_ID_SIZE - 1,
                            "\"}");
    char *expected = build_body("", "c", MESSAGE_ID_SIZE - 1, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(200, body, &out);

    assert_true(out.has_message_id);
    assert_string_equal(out.message_id, expected);
    free(body);
    free(expected);
}

/* Puts `pad` ASCII letters and then `tail` (one UTF-8 character) into
 * errorMessage and checks what fits in the 255 usable bytes. */
static void check_utf8_edge(size_t pad, const char *tail, bool tail_fits)
{
    char *prefix = build_body("{\"errorMessage\":\"", "a", pad, "");
    char *body = build_body(prefix, tail, 1, "\"}");
    char *expected = build_body("", "a", pad, tail_fits ? tail : "");
    struct classify_result out;

    run_classify_copy(400, body, &out);

    assert_string_equal(out.error_message, expected);
    assert_true(strlen(out.error_message) <= API_MESSAGE_SIZE - 1);
    free(prefix);
    free(body);
    free(expected);
}

static void test_utf8_two_bytes_at_edge(void **state)
{
    (void)state;
    check_utf8_edge(API_MESSAGE_SIZE - 2, "\xc3\xa9", false);
    check_utf8_edge(API_MESSAGE_SIZE - 3, "\xc3\xa9", true);
}

static void test_utf8_three_bytes_at_edge(void **state)
{
    (void)state;
    check_utf8_edge(API_MESSAGE_SIZE - 2, "\xe2\x82\xac", false);
    check_utf8_edge(API_MESSAGE_SIZE - 3, "\xe2\x82\xac", false);
    check_utf8_edge(API_MESSAGE_SIZE - 4, "\xe2\x82\xac", true);
}

static void test_utf8_four_bytes_at_edge(void **state)
{
    (void)state;
    check_utf8_edge(API_MESSAGE_SIZE - 4, "\xf0\x9f\x98\x80", false);
    check_utf8_edge(API_MESSAGE_SIZE - 5, "\xf0\x9f\x98\x80", true);
}

static void test_body_len_bounds_parse(void **state)
{
    /* body_len stops one byte before the closing brace, so the body is an
     * unfinished object and the error status must not count. */
    const char text[] = "{\"status\":\"error\"}";
    struct classify_result out;

    (void)state;
    run_classify(OK, true, 200, text, sizeof(text) - 2, &out);

    assert_int_equal(out.action, CLASSIFY_SENT);
    assert_false(out.has_message_id);
    assert_null(out.error_class);
}

static void test_body_without_terminator(void **state)
{
    /* A complete object followed by bytes that are not part of the body. */
    const char text[] = "{\"messageId\":\"m-8\"}{\"status\":\"error\"}";
    struct classify_result out;

    (void)state;
    run_classify(OK, true, 200, text, 19, &out);

    assert_int_equal(out.action, CLASSIFY_SENT);
    assert_string_equal(out.message_id, "m-8");
}

static void test_null_body_with_length(void **state)
{
    struct classify_result out;

    (void)state;
    run_classify(OK, true, 400, NULL, 100, &out);

    assert_int_equal(out.action, CLASSIFY_FAILED);
    assert_string_equal(out.error_code, "http_400");
}

static void test_body_past_parse_limit(void **state)
{
    /* 2 MiB of padding keeps the object open past the 1 MiB parse limit,
     * so the errorCode read before the limit is not used. */
    char *open = build_body("{\"errorCode\":\"big\",\"pad\":\"", "x",
                            2 * 1024 * 1024, "");
    char *body = build_body(open, "\"}", 1, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);
    free(open);
    free(body);

    assert_int_equal(out.action, CLASSIFY_FAILED);
    assert_string_equal(out.error_code, "http_400");
}

static void test_large_body_within_limit(void **state)
{
    char *open = build_body("{\"errorCode\":\"big\",\"pad\":\"", "x",
                            512 * 1024, "");
    char *body = build_body(open, "\"}", 1, "");
    struct classify_result out;

    (void)state;
    run_classify_copy(400, body, &out);
    free(open);
    free(body);

    assert_string_equal(out.error_code, "big");
}

static void test_body_never_in_message(void **state)
{
    const char *bodies[] = {
        "secret-body-text",
        "{\"message\":\"secret-body-text\"}",
        "{\"errorMessage\":42,\"detail\":\"secret-body-text\"}",
    };
    struct classify_result out;

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        run_classify_copy(400, bodies[i], &out);
        assert_null(strstr(out.error_message, "secret-body-text"));
        assert_null(strstr(out.error_code, "secret-body-text"));
    }
}

/* Copies the NUL-terminated text to pos without its terminator and
 * returns its length. */
static size_t append_literal(char *pos, const char *text)
{
    size_t len = strlen(text);

    memcpy(pos, text, len);
    return len;
}

/* Returns whether s is valid UTF-8 without C0 or C1 control characters
 * or DEL, checked by a decoder written separately from the one under
 * test. */
static bool is_clean_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        uint32_t cp;
        int extra;

        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7F)
                return false;
            p++;
            continue;
        }
        if (*p >= 0xC2 && *p <= 0xDF) {
            cp = *p & 0x1Fu;
            extra = 1;
        } else if (*p >= 0xE0 && *p <= 0xEF) {
            cp = *p & 0x0Fu;
            extra = 2;
        } else if (*p >= 0xF0 && *p <= 0xF4) {
            cp = *p & 0x07u;
            extra = 3;
        } else {
            return false;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp >= 0x80 && cp < 0xA0))
            return false;
        p += extra + 1;
    }
    return true;
}

/* xorshift64: a fixed-seed generator, so every run gets the same bodies. */
static uint64_t next_random(uint64_t *seed)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    return *seed;
}

/* Appends `count` random bytes as the inside of a JSON string, escaping
 * only quote and backslash so that raw control and non-UTF-8 bytes reach
 * the parser. */
static char *append_random_text(char *pos, size_t count, uint64_t *seed)
{
    for (size_t i = 0; i < count; i++) {
        unsigned char byte = (unsigned char)(next_random(seed) & 0xFF);

        if (byte == '\0')
            byte = 0x01;
        if (byte == '"' || byte == '\\')
            *pos++ = '\\';
        *pos++ = (char)byte;
    }
    return pos;
}

static void test_random_text_stays_clean(void **state)
{
    uint64_t seed = 0x2545F4914F6CDD1Du;
    static char body[4096];

    (void)state;
    for (int round = 0; round < 2000; round++) {
        size_t text_len = (size_t)(next_random(&seed) % 600);
        struct classify_result out;
        char *pos = body;

        pos += append_literal(pos, "{\"status\":\"error\",\"errorCode\":\"");
        pos = append_random_text(pos, text_len / 4, &seed);
        pos += append_literal(pos, "\",\"errorMessage\":\"");
        pos = append_random_text(pos, text_len, &seed);
        pos += append_literal(pos, "\",\"messageId\":\"");
        pos = append_random_text(pos, text_len / 4, &seed);
        pos += append_literal(pos, "\"}");

        run_classify(OK, true, 200, body, (size_t)(pos - body), &out);

        assert_int_equal(out.action, CLASSIFY_FAILED);
        assert_true(strlen(out.error_code) < sizeof(out.error_code));
        assert_true(strlen(out.error_message) < sizeof(out.error_message));
        assert_true(is_clean_utf8(out.error_code));
        assert_true(is_clean_utf8(out.error_message));
    }
}

static void test_random_message_id_printable(void **state)
{
    uint64_t seed = 0x9E3779B97F4A7C15u;
    static char body[2048];

    (void)state;
    for (int round = 0; round < 2000; round++) {
        size_t id_len = 1 + (size_t)(next_random(&seed) % 200);
        struct classify_result out;
        char *pos = body;

        pos += append_literal(pos, "{\"messageId\":\"");
        pos = append_random_text(pos, id_len, &seed);
        pos += append_literal(pos, "\"}");

        run_classify(OK, true, 200, body, (size_t)(pos - body), &out);

        assert_int_equal(out.action, CLASSIFY_SENT);
        assert_true(strlen(out.message_id) < sizeof(out.message_id));
        for (const char *c = out.message_id; *c != '\0'; c++)
            assert_in_range((unsigned char)*c, 0x20, 0x7E);
        assert_int_equal(out.has_message_id, out.message_id[0] != '\0');
    }
}

int main(void)
{
    const size_t case_count = sizeof(cases) / sizeof(cases[0]);
    const struct CMUnitTest fixed_tests[] = {
        cmocka_unit_test(test_deep_array_is_sent),
        cmocka_unit_test(test_nesting_over_limit_ignored),
        cmocka_unit_test(test_nesting_within_limit_parsed),
        cmocka_unit_test(test_huge_error_message_truncated),
        cmocka_unit_test(test_huge_error_code_truncated),
        cmocka_unit_test(test_huge_message_id_truncated),
        cmocka_unit_test(test_message_id_at_buffer_size),
        cmocka_unit_test(test_utf8_two_bytes_at_edge),
        cmocka_unit_test(test_utf8_three_bytes_at_edge),
        cmocka_unit_test(test_utf8_four_bytes_at_edge),
        cmocka_unit_test(test_body_len_bounds_parse),
        cmocka_unit_test(test_body_without_terminator),
        cmocka_unit_test(test_null_body_with_length),
        cmocka_unit_test(test_body_past_parse_limit),
        cmocka_unit_test(test_large_body_within_limit),
        cmocka_unit_test(test_body_never_in_message),
        cmocka_unit_test(test_random_text_stays_clean),
        cmocka_unit_test(test_random_message_id_printable),
    };
    const size_t fixed_count = sizeof(fixed_tests) / sizeof(fixed_tests[0]);
    struct CMUnitTest *tests = calloc(case_count + fixed_count,
                                      sizeof(*tests));
    int failures;

    if (tests == NULL)
        return 1;

    /* One named test per table row, so a failure names its case. */
    for (size_t i = 0; i < case_count; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_classify_case;
        tests[i].initial_state = (void *)&cases[i];
    }
    memcpy(tests + case_count, fixed_tests, sizeof(fixed_tests));

    failures = _cmocka_run_group_tests("classify", tests,
                                       case_count + fixed_count, NULL, NULL);
    free(tests);
    return failures;
}
