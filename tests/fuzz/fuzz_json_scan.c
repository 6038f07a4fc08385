/* Fuzz target for the strict JSON scanner. Each input is scanned as a
 * document at three depth limits, decoded as a string token and converted
 * as a number token. Besides memory errors and undefined behaviour it
 * checks:
 *
 *   - an accepted document is accepted by json-c in strict mode with UTF-8
 *     validation, and its reported spans lie inside the input, start with
 *     the byte their type implies, and rescan on their own;
 *   - a rejected document leaves the result empty and an error sentence
 *     of printable ASCII;
 *   - depth limits only add JSON_SCAN_TOO_DEEP: at a higher limit the
 *     status and the result are otherwise the same;
 *   - json_scan_string_decode() returns valid UTF-8, and
 *     json_scan_number_to_int64() agrees with strtoll().
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz_util.h"
#include "json_scan.h"

#define LOW_DEPTH 2
#define REQUEST_DEPTH 64
#define UNLIMITED_DEPTH INT32_MAX

/* json-c keeps a fixed array per nesting level, so its limit is set just
 * above REQUEST_DEPTH, and only documents accepted at that limit are
 * compared with json-c. */
#define JSONC_DEPTH (REQUEST_DEPTH + 1)

/* Longest input that is converted and compared with strtoll(), which
 * needs a NUL-terminated copy. Leading zeros make longer int64 tokens
 * possible, but they add nothing new. */
#define NUMBER_MAX_LENGTH 32

static enum json_scan_type type_of(char first)
{
    switch (first) {
    case '{': return JSON_SCAN_TYPE_OBJECT;
    case '[': return JSON_SCAN_TYPE_ARRAY;
    case '"': return JSON_SCAN_TYPE_STRING;
    case 't': case 'f': return JSON_SCAN_TYPE_BOOLEAN;
    case 'n': return JSON_SCAN_TYPE_NULL;
    default: return JSON_SCAN_TYPE_NUMBER;
    }
}

static bool span_inside(const struct json_scan_span *span, size_t offset,
                        size_t length)
{
    return span->offset >= offset && span->length <= length &&
           span->offset - offset <= length - span->length;
}

static void check_jsonc_accepts(const char *data, size_t size)
{
    json_tokener *tok = json_tokener_new_ex(JSONC_DEPTH);
    json_object *value;
    enum json_tokener_error error;
    size_t end;

    FUZZ_REQUIRE(tok != NULL, "json_tokener_new_ex failed");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    value = json_tokener_parse_ex(tok, data, (int)size);
    error = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    /* json-c needs more input to end a bare top-level number, because a
     * digit could still follow; an empty final chunk ends it. */
    if (error == json_tokener_continue) {
        value = json_tokener_parse_ex(tok, "", 1);
        error = json_tokener_get_error(tok);
        end = size;
    }
    FUZZ_REQUIRE(error == json_tokener_success,
                 "the scanner accepts a document that json-c rejects: %s",
                 json_tokener_error_desc(error));
    FUZZ_REQUIRE(fuzz_is_json_whitespace(data + end, size - end),
                 "json-c stopped at byte %zu of %zu, before non-whitespace",
                 end, size);
    json_object_put(value);
    json_tokener_free(tok);
}

static void check_member(const char *data, int max_depth,
                         const struct json_scan_result *result,
                         const struct json_scan_member *member,
                         size_t previous_end)
{
    struct json_scan_result child;
    enum json_scan_status status;
    size_t decoded_length = 0;
    char *decoded;

    FUZZ_REQUIRE(span_inside(&member->value, result->root.offset,
                             result->root.length) &&
                     member->value.length > 0,
                 "a member's value span lies outside the root");
    FUZZ_REQUIRE(member->value.offset >= previous_end,
                 "members overlap or are out of input order");
    FUZZ_REQUIRE(member->type == type_of(data[member->value.offset]),
                 "a member's type does not match its first byte");

    if (result->type == JSON_SCAN_TYPE_OBJECT) {
        FUZZ_REQUIRE(member->name != NULL && member->key.length >= 2 &&
                         span_inside(&member->key, result->root.offset,
                                     result->root.length) &&
                         member->key.offset < member->value.offset,
                     "an object member's key span is wrong");
        decoded = json_scan_string_decode(data + member->key.offset,
                                          member->key.length,
                                          &decoded_length);
        FUZZ_REQUIRE(decoded != NULL && decoded_length == member->name_length &&
                         memcmp(decoded, member->name, decoded_length) == 0 &&
                         member->name[member->name_length] == '\0',
                     "a member's name is not its decoded key");
        free(decoded);
        if (strlen(member->name) == member->name_length)
            FUZZ_REQUIRE(json_scan_result_find(result, member->name) == member,
                         "json_scan_result_find misses a unique key");
    } else {
        FUZZ_REQUIRE(member->name == NULL && member->key.length == 0,
                     "an array element has a key");
    }

    if (member->type == JSON_SCAN_TYPE_STRING) {
        decoded = json_scan_string_decode(data + member->value.offset,
                                          member->value.length,
                                          &decoded_length);
        FUZZ_REQUIRE(decoded != NULL, "a scanned string does not decode");
        FUZZ_REQUIRE(fuzz_is_utf8(decoded, decoded_length),
                     "a decoded string is not valid UTF-8");
        free(decoded);
    }

    /* A child value is a JSON text of its own, one level shallower. */
    status = json_scan_document(data + member->value.offset,
                                member->value.length, max_depth - 1, &child,
                                NULL, 0);
    FUZZ_REQUIRE(status == JSON_SCAN_OK,
                 "a member's value does not rescan: status %d", (int)status);
    FUZZ_REQUIRE(child.type == member->type && child.root.offset == 0 &&
                     child.root.length == member->value.length,
                 "a member's value rescans differently");
    json_scan_result_clear(&child);
}

static void check_accepted(const char *data, size_t size, int max_depth,
                           const struct json_scan_result *result,
                           const char *errstr)
{
    size_t previous_end;

    FUZZ_REQUIRE(errstr[0] == '\0', "accepted with an error: %s", errstr);
    FUZZ_REQUIRE(result->root.length > 0 &&
                     span_inside(&result->root, 0, size),
                 "the root span lies outside the input");
    FUZZ_REQUIRE(fuzz_is_json_whitespace(data, result->root.offset) &&
                     fuzz_is_json_whitespace(
                         data + result->root.offset + result->root.length,
                         size - result->root.offset - result->root.length),
                 "more than whitespace around the root value");
    FUZZ_REQUIRE(result->type == type_of(data[result->root.offset]),
                 "the root type does not match its first byte");
    if (result->type != JSON_SCAN_TYPE_OBJECT &&
        result->type != JSON_SCAN_TYPE_ARRAY)
        FUZZ_REQUIRE(result->member_count == 0 && result->members == NULL,
                     "a scalar root has members");

    previous_end = result->root.offset;
    for (size_t i = 0; i < result->member_count; i++) {
        const struct json_scan_member *member = &result->members[i];

        check_member(data, max_depth, result, member, previous_end);
        previous_end = member->value.offset + member->value.length;
    }
    if (max_depth == REQUEST_DEPTH)
        check_jsonc_accepts(data, size);
}

static void check_rejected(const struct json_scan_result *result,
                           const char *errstr, size_t errstr_size)
{
    size_t length = strnlen(errstr, errstr_size);

    FUZZ_REQUIRE(length > 0 && length < errstr_size,
                 "rejected without a terminated error sentence");
    FUZZ_REQUIRE(fuzz_is_printable_ascii(errstr, length),
                 "the error sentence is not printable ASCII: %s", errstr);
    FUZZ_REQUIRE(result->members == NULL && result->member_count == 0 &&
                     result->root.offset == 0 && result->root.length == 0,
                 "a rejected scan leaves a result");
}

static bool same_result(const struct json_scan_result *a,
                        const struct json_scan_result *b)
{
    if (a->type != b->type || a->root.offset != b->root.offset ||
        a->root.length != b->root.length || a->member_count != b->member_count)
        return false;
    for (size_t i = 0; i < a->member_count; i++) {
        const struct json_scan_member *x = &a->members[i];
        const struct json_scan_member *y = &b->members[i];

        if (x->type != y->type || x->key.offset != y->key.offset ||
            x->key.length != y->key.length ||
            x->value.offset != y->value.offset ||
            x->value.length != y->value.length)
            return false;
    }
    return true;
}

static void check_document(const char *data, size_t size)
{
    static const int depths[] = { LOW_DEPTH, REQUEST_DEPTH, UNLIMITED_DEPTH };
    struct json_scan_result results[3];
    enum json_scan_status statuses[3];
    char errstrs[3][200];

    for (size_t i = 0; i < 3; i++) {
        statuses[i] = json_scan_document(data, size, depths[i], &results[i],
                                         errstrs[i], sizeof(errstrs[i]));
        if (statuses[i] == JSON_SCAN_OK)
            check_accepted(data, size, depths[i], &results[i], errstrs[i]);
        else
            check_rejected(&results[i], errstrs[i], sizeof(errstrs[i]));
    }
    FUZZ_REQUIRE(statuses[2] != JSON_SCAN_TOO_DEEP,
                 "too deep without a depth limit");
    for (size_t i = 0; i + 1 < 3; i++) {
        if (statuses[i] == JSON_SCAN_TOO_DEEP)
            continue;
        FUZZ_REQUIRE(statuses[i] == statuses[i + 1] &&
                         strcmp(errstrs[i], errstrs[i + 1]) == 0 &&
                         same_result(&results[i], &results[i + 1]),
                     "depth limits %d and %d disagree beyond depth: %s / %s",
                     depths[i], depths[i + 1], errstrs[i], errstrs[i + 1]);
    }
    for (size_t i = 0; i < 3; i++)
        json_scan_result_clear(&results[i]);
}

static void check_string_decode(const char *data, size_t size)
{
    size_t decoded_length = SIZE_MAX;
    char *decoded = json_scan_string_decode(data, size, &decoded_length);

    if (decoded == NULL) {
        FUZZ_REQUIRE(decoded_length == SIZE_MAX,
                     "a failed decode wrote decoded_length");
        return;
    }
    FUZZ_REQUIRE(decoded_length <= size - 2,
                 "decoding %zu bytes gave %zu bytes", size, decoded_length);
    FUZZ_REQUIRE(decoded[decoded_length] == '\0',
                 "the decoded string is not terminated");
    FUZZ_REQUIRE(fuzz_is_utf8(decoded, decoded_length),
                 "the decoded string is not valid UTF-8");
    free(decoded);
}

/* Compares with strtoll() on inputs of an optional '-' and digits only,
 * the form json_scan_number_to_int64() accepts. */
static void check_number(const char *data, size_t size)
{
    char text[NUMBER_MAX_LENGTH + 1];
    size_t digits_at = size > 0 && data[0] == '-' ? 1 : 0;
    int64_t value = 42;
    bool converted;
    long long expected;
    char *end;

    if (size > NUMBER_MAX_LENGTH)
        return;
    converted = json_scan_number_to_int64(data, size, &value);
    memcpy(text, data, size);
    text[size] = '\0';
    if (size == digits_at ||
        strspn(text + digits_at, "0123456789") != size - digits_at) {
        FUZZ_REQUIRE(!converted, "converted a token that is not an integer");
        return;
    }
    errno = 0;
    expected = strtoll(text, &end, 10);
    if (errno == ERANGE) {
        FUZZ_REQUIRE(!converted, "converted an integer beyond int64");
        return;
    }
    FUZZ_REQUIRE(converted && value == expected,
                 "converted %s to %" PRId64 ", strtoll gives %lld", text,
                 value, expected);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    const char *data = (const char *)bytes;

    check_document(data, size);
    check_string_decode(data, size);
    check_number(data, size);
    return 0;
}
