/* Classification of one HTTP attempt into sent, failed, retry or dead
 * letter, with the error code and message that go into the result record.
 * Response bodies come from the network, so everything copied out of them
 * is bounded, valid UTF-8 and free of control characters. */
#include "classify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

/* Send responses are flat objects. The limit stops a hostile body from
 * costing memory per nesting level, and a deeper body counts as non-JSON. */
#define JSON_MAX_DEPTH 32

/* json_tokener_parse_ex() takes an int length, and no send response comes
 * near this size. Bytes after the limit are not parsed, so a body whose
 * JSON value does not end within it counts as non-JSON. */
#define JSON_MAX_PARSE_BYTES (1024 * 1024)

/* Decodes the UTF-8 sequence at s (len bytes available) into *code_point.
 * Returns its length, or 0 when the bytes are not valid UTF-8: a bad lead
 * byte, a missing continuation byte, an overlong form, a surrogate or a
 * value above U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t len,
                          uint32_t *code_point)
{
    uint32_t value;
    uint32_t min_value;
    size_t seq_len;

    if (s[0] < 0x80) {
        *code_point = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        seq_len = 2;
        value = s[0] & 0x1F;
        min_value = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        seq_len = 3;
        value = s[0] & 0x0F;
        min_value = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        seq_len = 4;
        value = s[0] & 0x07;
        min_value = 0x10000;
    } else {
        return 0;
    }
    if (seq_len > len)
        return 0;

    for (size_t i = 1; i < seq_len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (s[i] & 0x3F);
    }
    if (value < min_value || value > 0x10FFFF ||
        (value >= 0xD800 && value <= 0xDFFF))
        return 0;

    *code_point = value;
    return seq_len;
}

/* Copies an API-supplied string into dst (size bytes, always terminated).
 * C0 and C1 control characters and DEL become spaces, each invalid byte
 * becomes '?', and the copy stops before a character that does not fit, so
 * a multi-byte character is never cut. */
static void copy_api_text(char *dst, size_t size, const char *src, size_t len)
{
    const unsigned char *in = (const unsigned char *)src;
    size_t in_pos = 0;
    size_t out_pos = 0;

    while (in_pos < len) {
        uint32_t code_point = 0;
        size_t seq_len = utf8_decode(in + in_pos, len - in_pos, &code_point);
        const char *replacement = NULL;
        size_t out_len;

        if (seq_len == 0) {
            replacement = "?";
            seq_len = 1;
        } else if (code_point < 0x20 || code_point == 0x7F ||
                   (code_point >= 0x80 && code_point < 0xA0)) {
            replacement = " ";
        }
        out_len = replacement ? 1 : seq_len;
        if (out_pos + out_len > size - 1)
            break;

        memcpy(dst + out_pos, replacement ? replacement : src + in_pos,
               out_len);
        out_pos += out_len;
        in_pos += seq_len;
    }
    dst[out_pos] = '\0';
}

/* Parses the first JSON value of the body and returns it when it is an
 * object, else NULL. The caller releases it with json_object_put(). Bytes
 * after the first complete value are ignored, which keeps the parse
 * lenient towards trailing newlines or padding. */
static json_object *parse_body_object(const char *body, size_t body_len)
{
    json_tokener *tok;
    json_object *value;
    size_t parse_len;

    if (body == NULL || body_len == 0)
        return NULL;

    parse_len = body_len < JSON_MAX_PARSE_BYTES ? body_len
                                                : JSON_MAX_PARSE_BYTES;
    tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (tok == NULL)
        abort(); /* out of memory, handled like the x*alloc wrappers do */

    value = json_tokener_parse_ex(tok, body, (int)parse_len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(value);
        value = NULL;
    }
    json_tokener_free(tok);

    if (value != NULL && !json_object_is_type(value, json_type_object)) {
        json_object_put(value);
        value = NULL;
    }
    return value;
}

/* Returns the member `key` when it is a non-empty string, else NULL. */
static json_object *get_string_member(json_object *obj, const char *key)
{
    json_object *member = NULL;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &member))
        return NULL;
    if (!json_object_is_type(member, json_type_string) ||
        json_object_get_string_len(member) == 0)
        return NULL;
    return member;
}

/* Copies the API's "errorCode" into out->error_code when it is a non-empty
 * string or a number. Returns whether it did. */
static bool copy_error_code(json_object *body, struct classify_result *out)
{
    json_object *member = NULL;
    const char *text;

    if (body == NULL || !json_object_object_get_ex(body, "errorCode", &member))
        return false;

    if (json_object_is_type(member, json_type_int) ||
        json_object_is_type(member, json_type_double)) {
        /* json-c renders a parsed number from its original text, so
         * 130472 stays "130472". */
        text = json_object_to_json_string_ext(member, JSON_C_TO_STRING_PLAIN);
        copy_api_text(out->error_code, sizeof(out->error_code), text,
                      strlen(text));
        return true;
    }

    member = get_string_member(body, "errorCode");
    if (member == NULL)
        return false;
    copy_api_text(out->error_code, sizeof(out->error_code),
                  json_object_get_string(member),
                  (size_t)json_object_get_string_len(member));
    return true;
}

/* Copies the API's "errorMessage" into out->error_message when it is a
 * non-empty string. Returns whether it did. */
static bool copy_error_message(json_object *body, struct classify_result *out)
{
    json_object *member = get_string_member(body, "errorMessage");

    if (member == NULL)
        return false;
    copy_api_text(out->error_message, sizeof(out->error_message),
                  json_object_get_string(member),
                  (size_t)json_object_get_string_len(member));
    return true;
}

/* Copies a string "messageId" into out->message_id, truncated to the
 * buffer. An id that is empty or contains anything but printable ASCII is
 * treated as absent, because it goes into records and logs verbatim and
 * the API documents UUIDs. */
static void copy_message_id(json_object *body, struct classify_result *out)
{
    json_object *member = get_string_member(body, "messageId");
    const char *id;
    size_t len;
    size_t copy_len;

    if (member == NULL)
        return;

    id = json_object_get_string(member);
    len = (size_t)json_object_get_string_len(member);
    for (size_t i = 0; i < len; i++) {
        unsigned char byte = (unsigned char)id[i];

        if (byte < 0x20 || byte > 0x7E)
            return;
    }

    copy_len = len < sizeof(out->message_id) - 1 ? len
                                                 : sizeof(out->message_id) - 1;
    memcpy(out->message_id, id, copy_len);
    out->message_id[copy_len] = '\0';
    out->has_message_id = true;
}

/* Returns whether a 2xx body reports a failed send: "status" is "error" in
 * any case, or "messageId" is present and null. */
static bool is_send_error(json_object *body)
{
    json_object *member = NULL;

    if (body == NULL)
        return false;

    member = get_string_member(body, "status");
    if (member != NULL && json_object_get_string_len(member) == 5 &&
        strcasecmp(json_object_get_string(member), "error") == 0)
        return true;

    /* json-c stores a JSON null as a NULL member, so get_ex returning true
     * with a NULL value means "messageId": null. */
    member = NULL;
    return json_object_object_get_ex(body, "messageId", &member) &&
           member == NULL;
}

static void classify_transport_error(const struct classify_input *in,
                                     struct classify_result *out)
{
    const char *when = in->body_sent ? "after" : "before";

    out->action = CLASSIFY_RETRY;
    switch (in->transport) {
    case CLASSIFY_TRANSPORT_CONNECT_FAILED:
        /* No connection means no byte of the request reached the server,
         * so body_sent is ignored. */
        out->error_class = "connect_failed";
        out->unknown_outcome = false;
        snprintf(out->error_message, sizeof(out->error_message),
                 "the connection to the API could not be established");
        break;
    case CLASSIFY_TRANSPORT_TIMEOUT:
        out->error_class = "timeout";
        out->unknown_outcome = in->body_sent;
        snprintf(out->error_message, sizeof(out->error_message),
                 "the request timed out %s the request body was sent", when);
        break;
    case CLASSIFY_TRANSPORT_CONNECTION_LOST:
        out->error_class = "connection_lost";
        out->unknown_outcome = in->body_sent;
        snprintf(out->error_message, sizeof(out->error_message),
                 "the connection was lost %s the request body was sent",
                 when);
        break;
    case CLASSIFY_TRANSPORT_OTHER:
    default:
        out->error_class = "transport_error";
        out->unknown_outcome = in->body_sent;
        snprintf(out->error_message, sizeof(out->error_message),
                 "the HTTP transfer failed %s the request body was sent",
                 when);
        break;
    }
    snprintf(out->error_code, sizeof(out->error_code), "%s", out->error_class);
}

/* Handles a 2xx response. A body that is empty or not a JSON object still
 * means the API accepted the request, and retrying could send the message
 * twice, so only an explicit error body makes it a failure. */
static void classify_success(const struct classify_input *in,
                             struct classify_result *out)
{
    json_object *body = parse_body_object(in->body, in->body_len);

    if (!is_send_error(body)) {
        out->action = CLASSIFY_SENT;
        copy_message_id(body, out);
        json_object_put(body);
        return;
    }

    out->action = CLASSIFY_FAILED;
    out->error_class = "send_error";
    if (!copy_error_code(body, out))
        snprintf(out->error_code, sizeof(out->error_code), "send_error");
    if (!copy_error_message(body, out))
        snprintf(out->error_message, sizeof(out->error_message),
                 "the API responded with HTTP %ld and reported a send error "
                 "without an error message",
                 in->http_status);
    json_object_put(body);
}

/* Sets the action, class and unknown_outcome for a response that is not
 * 2xx. */
static void apply_status_policy(const struct classify_input *in,
                                struct classify_result *out)
{
    long status = in->http_status;

    out->unknown_outcome = false;
    if (status == 401) {
        out->action = CLASSIFY_DEAD_LETTER;
        out->error_class = "auth";
    } else if (status == 400) {
        out->action = CLASSIFY_FAILED;
        out->error_class = "bad_request";
    } else if (status == 404) {
        out->action = CLASSIFY_FAILED;
        out->error_class = "not_found";
    } else if (status == 408) {
        /* The server states that it did not process the request. */
        out->action = CLASSIFY_RETRY;
        out->error_class = "timeout";
    } else if (status == 429) {
        out->action = CLASSIFY_RETRY;
        out->error_class = "rate_limited";
    } else if (status >= 400 && status <= 499) {
        out->action = CLASSIFY_FAILED;
        out->error_class = "client_error";
    } else if (status >= 500 && status <= 599) {
        out->action = CLASSIFY_RETRY;
        out->error_class = "server_error";
        /* A 5xx from the API itself means it did not deliver. A 502 or 504
         * usually comes from a proxy or load balancer in front of it,
         * which may have forwarded the request and then lost or timed out
         * on the API's response, so the message may have gone out. */
        out->unknown_outcome = (status == 502 || status == 504) &&
                               in->body_sent;
    } else {
        /* 1xx, 3xx (redirects are not followed) and values outside
         * 100-599. */
        out->action = CLASSIFY_FAILED;
        out->error_class = "unexpected_status";
    }
}

static void classify_http_error(const struct classify_input *in,
                                struct classify_result *out)
{
    json_object *body;

    apply_status_policy(in, out);

    body = parse_body_object(in->body, in->body_len);
    if (!copy_error_code(body, out))
        snprintf(out->error_code, sizeof(out->error_code), "http_%ld",
                 in->http_status);
    if (!copy_error_message(body, out))
        snprintf(out->error_message, sizeof(out->error_message),
                 "the API responded with HTTP %ld and no error message",
                 in->http_status);
    json_object_put(body);
}

void classify_attempt(const struct classify_input *in,
                      struct classify_result *out)
{
    memset(out, 0, sizeof(*out));

    if (in->transport != CLASSIFY_TRANSPORT_OK)
        classify_transport_error(in, out);
    else if (in->http_status >= 200 && in->http_status <= 299)
        classify_success(in, out);
    else
        classify_http_error(in, out);
}
