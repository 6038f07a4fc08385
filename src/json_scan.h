/* Strict JSON scanning. The scanner validates a whole JSON text against
 * RFC 8259 in one pass and reports where the children of its root value
 * sit.
 *
 * json-c 0.16 accepts, even with JSON_TOKENER_STRICT, inputs that RFC 8259
 * rejects or leaves undefined: duplicate keys (the last one wins), lone
 * surrogate escapes, invalid UTF-8 and NaN. Untrusted input therefore goes
 * through this scanner first. Values are not converted: numbers of any
 * size stay text, and callers read the bytes of the spans reported here. */
#ifndef C2M_JSON_SCAN_H
#define C2M_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_scan_type {
    JSON_SCAN_TYPE_NULL = 0,
    JSON_SCAN_TYPE_BOOLEAN,
    JSON_SCAN_TYPE_NUMBER,
    JSON_SCAN_TYPE_STRING,
    JSON_SCAN_TYPE_ARRAY,
    JSON_SCAN_TYPE_OBJECT,
};

enum json_scan_status {
    JSON_SCAN_OK = 0,
    JSON_SCAN_INVALID_JSON,     /* syntax, escapes, lone surrogates, BOM */
    JSON_SCAN_INVALID_UTF8,
    JSON_SCAN_TOO_DEEP,
    JSON_SCAN_DUPLICATE_KEY,
};

/* A byte range of the scanned input. */
struct json_scan_span {
    size_t offset;
    size_t length;
};

/* One child of the root value: an object member, or an array element
 * (then key.length is 0 and name is NULL). */
struct json_scan_member {
    struct json_scan_span key;      /* the key token, quotes included */
    char *name;                     /* the decoded key, NUL-terminated */
    size_t name_length;             /* may exceed strlen(name) after \u0000 */
    struct json_scan_span value;    /* the value's own bytes */
    enum json_scan_type type;
};

/* The root value and its children, in input order. */
struct json_scan_result {
    enum json_scan_type type;
    struct json_scan_span root;
    struct json_scan_member *members;
    size_t member_count;
};

/* Validates data[0..length) as one JSON text and fills result with the
 * root value and its direct children. Containers nested deeper than
 * max_depth levels (the root container is level 1) are rejected. On
 * failure, returns the error class, leaves result empty and writes a
 * sentence with the byte offset to errstr; the sentence never quotes the
 * input. The caller clears result with json_scan_result_clear() in both
 * cases. Uses no recursion, so any nesting depth is safe to scan. */
enum json_scan_status json_scan_document(const char *data, size_t length,
                                         int max_depth,
                                         struct json_scan_result *result,
                                         char *errstr, size_t errstr_size);

/* Frees what json_scan_document() allocated and empties result. */
void json_scan_result_clear(struct json_scan_result *result);

/* Returns the root object's member whose decoded key equals name, or
 * NULL. Keys are unique after a successful scan. */
const struct json_scan_member *
json_scan_result_find(const struct json_scan_result *result, const char *name);

/* Decodes a string token (quotes included) into a new NUL-terminated
 * UTF-8 string owned by the caller, and stores its byte length, which
 * counts NUL bytes written by \u0000 escapes. Returns NULL when the
 * token is not exactly one valid JSON string. */
char *json_scan_string_decode(const char *token, size_t length,
                              size_t *decoded_length);

/* Converts a number token to int64. Returns false when the token has a
 * fraction or an exponent, or when the value does not fit in int64. */
bool json_scan_number_to_int64(const char *token, size_t length,
                               int64_t *value);

#endif
