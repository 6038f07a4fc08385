/* Fuzz target for request_parse() with the limits the worker is deployed
 * with in tests (64 KiB, depth 64). Besides memory errors and undefined
 * behaviour it checks the parser's contract:
 *
 *   valid:   id, from, to and body are set; the body is one JSON object
 *            that json-c parses in strict mode, contains exactly from, to and
 *            content, and content is the record's own bytes of "content";
 *            metadata_json is the record's own bytes of "metadata".
 *   invalid: error_code and error_message are set and printable ASCII,
 *            from, to and body are NULL, and error_message does not
 *            depend on the value of "to": it contains none of its runs of
 *            six or more digits, and it stays the same when the letters
 *            and digits of "to" are swapped for others of the same class.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz_util.h"
#include "json_scan.h"
#include "request.h"
#include "util.h"

#define ID_MAX_LENGTH 128
#define ADDRESS_MAX_BYTES 256
/* Deeper than request limits allow, so json-c never fails on depth: the
 * body nests one level below the record's own nesting. */
#define JSONC_DEPTH 256
/* A run of this many digits in "to" looks like a phone number. */
#define PHONE_DIGITS 6

static const struct request_limits limits = {
    .max_bytes = 64 * 1024,
    .max_depth = 64,
};

/* A string member of the record's root object, decoded. */
struct decoded_field {
    char *value;
    size_t length;
};

/* Decodes the root member called name when it is a string. Returns
 * whether it did; the caller frees field->value. */
static bool decode_root_string(const struct json_scan_result *scan,
                               const char *data, const char *name,
                               struct decoded_field *field)
{
    const struct json_scan_member *member = json_scan_result_find(scan, name);

    if (member == NULL || member->type != JSON_SCAN_TYPE_STRING)
        return false;
    field->value = json_scan_string_decode(data + member->value.offset,
                                           member->value.length,
                                           &field->length);
    FUZZ_REQUIRE(field->value != NULL,
                 "a string member that the scanner accepted must decode");
    return true;
}

static json_object *parse_strict(const char *text, size_t length)
{
    json_tokener *tok = json_tokener_new_ex(JSONC_DEPTH);
    json_object *value;

    FUZZ_REQUIRE(tok != NULL, "json_tokener_new_ex failed");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    value = json_tokener_parse_ex(tok, text, (int)length);
    FUZZ_REQUIRE(json_tokener_get_error(tok) == json_tokener_success,
                 "json-c rejects the HTTP body: %s",
                 json_tokener_error_desc(json_tokener_get_error(tok)));
    FUZZ_REQUIRE((size_t)json_tokener_get_parse_end(tok) == length,
                 "json-c stopped at byte %zu of a %zu-byte body",
                 json_tokener_get_parse_end(tok), length);
    json_tokener_free(tok);
    return value;
}

static void check_body_string(json_object *body, const char *key,
                              const char *expected)
{
    json_object *member = NULL;

    FUZZ_REQUIRE(json_object_object_get_ex(body, key, &member),
                 "the body has no \"%s\"", key);
    FUZZ_REQUIRE(json_object_is_type(member, json_type_string),
                 "\"%s\" in the body is not a string", key);
    FUZZ_REQUIRE((size_t)json_object_get_string_len(member) ==
                         strlen(expected) &&
                     memcmp(json_object_get_string(member), expected,
                            strlen(expected)) == 0,
                 "\"%s\" in the body differs from the parsed value", key);
}

static void check_address(const char *name, const char *value)
{
    size_t length = strlen(value);

    FUZZ_REQUIRE(length >= 1 && length <= ADDRESS_MAX_BYTES,
                 "%s is %zu bytes long", name, length);
    FUZZ_REQUIRE(fuzz_is_utf8(value, length), "%s is not valid UTF-8", name);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)value[i];

        FUZZ_REQUIRE(c >= 0x20 && c != 0x7F,
                     "%s has control character 0x%02X", name, c);
    }
}

static void check_valid(const struct request *req, const char *data,
                        const struct json_scan_result *scan)
{
    const char content_prefix[] = ",\"content\":";
    const size_t prefix_length = sizeof(content_prefix) - 1;
    const struct json_scan_member *content, *metadata;
    json_object *body, *member = NULL;
    size_t content_at;

    FUZZ_REQUIRE(req->error_code == NULL, "valid but error_code is %s",
                 req->error_code);
    FUZZ_REQUIRE(req->id != NULL && req->from != NULL && req->to != NULL &&
                     req->body != NULL,
                 "valid but a field is NULL");
    FUZZ_REQUIRE(strlen(req->id) >= 1 && strlen(req->id) <= ID_MAX_LENGTH,
                 "id is %zu bytes long", strlen(req->id));
    FUZZ_REQUIRE(fuzz_is_printable_ascii(req->id, strlen(req->id)),
                 "id is not printable ASCII");
    FUZZ_REQUIRE(req->channel >= 0 && req->channel < REQUEST_CHANNEL_COUNT,
                 "channel %d out of range", (int)req->channel);
    FUZZ_REQUIRE((int)req->kind >= 0 && req->kind < REQUEST_KIND_COUNT,
                 "kind %d out of range", (int)req->kind);
    check_address("from", req->from);
    check_address("to", req->to);
    FUZZ_REQUIRE(req->body_len == strlen(req->body),
                 "body_len %zu but strlen %zu", req->body_len,
                 strlen(req->body));

    body = parse_strict(req->body, req->body_len);
    FUZZ_REQUIRE(json_object_is_type(body, json_type_object),
                 "the body is not a JSON object");
    FUZZ_REQUIRE(json_object_object_length(body) == 3,
                 "the body has %d members, not from, to and content",
                 json_object_object_length(body));
    check_body_string(body, "from", req->from);
    check_body_string(body, "to", req->to);
    FUZZ_REQUIRE(json_object_object_get_ex(body, "content", &member) &&
                     json_object_is_type(member, json_type_object),
                 "the body's content is not an object");
    json_object_put(body);

    /* The body ends with ,"content":<the record's bytes>} */
    content = json_scan_result_find(scan, "content");
    FUZZ_REQUIRE(content != NULL, "valid without content");
    FUZZ_REQUIRE(req->body_len >= prefix_length + content->value.length + 1,
                 "the body is shorter than its content");
    content_at = req->body_len - 1 - content->value.length;
    FUZZ_REQUIRE(memcmp(req->body + content_at - prefix_length,
                        content_prefix, prefix_length) == 0 &&
                     memcmp(req->body + content_at,
                            data + content->value.offset,
                            content->value.length) == 0 &&
                     req->body[req->body_len - 1] == '}',
                 "the body's content is not the record's content bytes");

    metadata = json_scan_result_find(scan, "metadata");
    if (metadata == NULL) {
        FUZZ_REQUIRE(req->metadata_json == NULL, "metadata without a member");
        return;
    }
    FUZZ_REQUIRE(req->metadata_json != NULL &&
                     req->metadata_len == metadata->value.length &&
                     memcmp(req->metadata_json, data + metadata->value.offset,
                            metadata->value.length) == 0,
                 "metadata_json is not the record's metadata bytes");
}

/* Returns the letter or digit that replaces c: the next one of its class,
 * with 0 left alone because "to" rules treat a leading 0 specially. Other
 * bytes stay. No rule of "to" (length, control characters, whitespace,
 * E.164 digits) distinguishes the original from the swapped value. */
static char swap_char(char c)
{
    if (c >= '1' && c <= '9')
        return c == '9' ? '1' : (char)(c + 1);
    if (c >= 'a' && c <= 'z')
        return c == 'z' ? 'a' : (char)(c + 1);
    if (c >= 'A' && c <= 'Z')
        return c == 'Z' ? 'A' : (char)(c + 1);
    return c;
}

/* Writes value as a JSON string token, escaping only what JSON requires. */
static size_t encode_json_string(char *out, const char *value, size_t length)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    out[n++] = '"';
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[c >> 4];
            out[n + 5] = hex[c & 0x0F];
            n += 6;
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

/* Parses data again with the letters and digits of "to" swapped and
 * requires the same error: a message that quoted "to" would change. */
static void check_message_ignores_to(const struct request *req,
                                     const char *data, size_t size,
                                     const struct json_scan_member *to_member,
                                     const struct decoded_field *to)
{
    char *swapped = xmalloc(to->length + 1);
    char *variant = xmalloc(size + 6 * to->length + 2);
    struct request *other;
    size_t n = 0;
    bool changed = false;

    for (size_t i = 0; i < to->length; i++) {
        swapped[i] = swap_char(to->value[i]);
        changed = changed || swapped[i] != to->value[i];
    }
    if (!changed)
        goto out;

    memcpy(variant, data, to_member->value.offset);
    n = to_member->value.offset;
    n += encode_json_string(variant + n, swapped, to->length);
    memcpy(variant + n, data + to_member->value.offset + to_member->value.length,
           size - to_member->value.offset - to_member->value.length);
    n += size - to_member->value.offset - to_member->value.length;

    other = request_parse(variant, n, &limits);
    if (n <= limits.max_bytes) {
        FUZZ_REQUIRE(!other->valid, "swapping the letters and digits of "
                                    "\"to\" made the request valid");
        FUZZ_REQUIRE(strcmp(other->error_code, req->error_code) == 0 &&
                         strcmp(other->error_message, req->error_message) == 0,
                     "the error depends on the value of \"to\": \"%s\" "
                     "became \"%s\"",
                     req->error_message, other->error_message);
    }
    request_free(other);

out:
    free(variant);
    free(swapped);
}

/* Requires that no run of PHONE_DIGITS or more digits of "to" appears in
 * the error message. */
static void check_message_has_no_number(const struct request *req,
                                        const struct decoded_field *to)
{
    size_t message_length = strlen(req->error_message);
    size_t i = 0;

    while (i < to->length) {
        size_t run = strspn(to->value + i, "0123456789");

        /* strspn stops at a NUL from \u0000, which is fine: the run ends. */
        if (run >= PHONE_DIGITS)
            FUZZ_REQUIRE(!fuzz_contains(req->error_message, message_length,
                                        to->value + i, run),
                         "the error message contains digits of \"to\": %s",
                         req->error_message);
        i += run > 0 ? run : 1;
    }
}

static void check_invalid(const struct request *req, const char *data,
                          size_t size, const struct json_scan_result *scan)
{
    size_t message_length = strnlen(req->error_message,
                                    sizeof(req->error_message));
    const struct json_scan_member *to_member;
    struct decoded_field to = { 0 };

    FUZZ_REQUIRE(req->error_code != NULL && req->error_code[0] != '\0',
                 "invalid without an error code");
    FUZZ_REQUIRE(fuzz_is_printable_ascii(req->error_code,
                                         strlen(req->error_code)),
                 "error_code is not printable ASCII");
    FUZZ_REQUIRE(message_length > 0 &&
                     message_length < sizeof(req->error_message),
                 "error_message is empty or not terminated");
    FUZZ_REQUIRE(fuzz_is_printable_ascii(req->error_message, message_length),
                 "error_message is not printable ASCII: %s",
                 req->error_message);
    FUZZ_REQUIRE(req->from == NULL && req->to == NULL && req->body == NULL &&
                     req->body_len == 0,
                 "a rejected request keeps from, to or its body");
    FUZZ_REQUIRE(req->channel >= REQUEST_CHANNEL_NONE &&
                     req->channel < REQUEST_CHANNEL_COUNT,
                 "channel %d out of range", (int)req->channel);
    if (req->id != NULL)
        FUZZ_REQUIRE(fuzz_is_printable_ascii(req->id, strlen(req->id)),
                     "a rejected request keeps an id that is not printable");

    if (scan->type != JSON_SCAN_TYPE_OBJECT ||
        !decode_root_string(scan, data, "to", &to))
        return;
    to_member = json_scan_result_find(scan, "to");
    check_message_has_no_number(req, &to);
    check_message_ignores_to(req, data, size, to_member, &to);
    free(to.value);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    const char *data = (const char *)bytes;
    struct json_scan_result scan;
    enum json_scan_status status = JSON_SCAN_INVALID_JSON;
    struct request *req;

    memset(&scan, 0, sizeof(scan));
    if (size <= limits.max_bytes)
        status = json_scan_document(data, size, limits.max_depth, &scan, NULL,
                                    0);
    req = request_parse(data, size, &limits);
    FUZZ_REQUIRE(req != NULL, "request_parse returned NULL");
    FUZZ_REQUIRE(req->valid == (req->error_code == NULL),
                 "valid and error_code disagree");
    if (req->valid) {
        FUZZ_REQUIRE(status == JSON_SCAN_OK,
                     "valid although the scanner rejects the record");
        check_valid(req, data, &scan);
    } else {
        check_invalid(req, data, size, &scan);
    }
    request_free(req);
    json_scan_result_clear(&scan);
    return 0;
}
