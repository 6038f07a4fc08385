/* Strict RFC 8259 scanner. One loop walks the input with an explicit
 * stack of open containers, so hostile nesting costs heap memory bounded
 * by max_depth instead of C stack. Object keys are decoded into an arena
 * while scanning, and each object's keys are sorted when it closes, which
 * finds duplicates in O(k log k) for an object of k keys. */
#include "json_scan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A growable byte buffer, used for the key arena and for decoded strings. */
struct buffer {
    char *bytes;
    size_t length;
    size_t capacity;
};

/* An open array or object. Its keys are keys[key_base..key_count) of the
 * scanner and their decoded bytes start at arena_mark. */
struct frame {
    bool is_object;
    size_t key_base;
    size_t arena_mark;
};

/* A decoded key of an open object. The bytes pointer is only set while
 * the keys are sorted, because the arena may move while it grows. */
struct key_ref {
    size_t arena_offset;
    size_t length;
    size_t input_offset;
    const char *bytes;
};

struct scanner {
    const unsigned char *data;
    size_t length;
    size_t pos;
    int max_depth;
    int depth;

    struct frame *frames;
    size_t frame_capacity;
    struct key_ref *keys;
    size_t key_count;
    size_t key_capacity;
    struct buffer arena;

    struct json_scan_result *result;   /* NULL when only decoding */
    size_t member_capacity;
    char *errstr;
    size_t errstr_size;
};

static void buffer_reserve(struct buffer *buf, size_t extra)
{
    size_t needed = buf->length + extra;
    size_t capacity;

    if (needed <= buf->capacity)
        return;
    capacity = buf->capacity ? buf->capacity : 64;
    while (capacity < needed)
        capacity *= 2;
    buf->bytes = xrealloc(buf->bytes, capacity);
    buf->capacity = capacity;
}

static void buffer_append(struct buffer *buf, const void *bytes, size_t length)
{
    if (length == 0)
        return;
    buffer_reserve(buf, length);
    memcpy(buf->bytes + buf->length, bytes, length);
    buf->length += length;
}

static void buffer_append_code_point(struct buffer *buf, uint32_t cp)
{
    unsigned char utf8[4];
    size_t length;

    if (cp < 0x80) {
        utf8[0] = (unsigned char)cp;
        length = 1;
    } else if (cp < 0x800) {
        utf8[0] = (unsigned char)(0xC0 | (cp >> 6));
        utf8[1] = (unsigned char)(0x80 | (cp & 0x3F));
        length = 2;
    } else if (cp < 0x10000) {
        utf8[0] = (unsigned char)(0xE0 | (cp >> 12));
        utf8[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        utf8[2] = (unsigned char)(0x80 | (cp & 0x3F));
        length = 3;
    } else {
        utf8[0] = (unsigned char)(0xF0 | (cp >> 18));
        utf8[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        utf8[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        utf8[3] = (unsigned char)(0x80 | (cp & 0x3F));
        length = 4;
    }
    buffer_append(buf, utf8, length);
}

static enum json_scan_status fail(struct scanner *sc,
                                  enum json_scan_status status, size_t offset,
                                  const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "<reason> at byte offset N." to errstr and returns status. */
static enum json_scan_status fail(struct scanner *sc,
                                  enum json_scan_status status, size_t offset,
                                  const char *fmt, ...)
{
    va_list args;
    int written;

    if (sc->errstr == NULL || sc->errstr_size == 0)
        return status;
    va_start(args, fmt);
    written = vsnprintf(sc->errstr, sc->errstr_size, fmt, args);
    va_end(args);
    if (written >= 0 && (size_t)written < sc->errstr_size)
        snprintf(sc->errstr + written, sc->errstr_size - (size_t)written,
                 " at byte offset %zu.", offset);
    return status;
}

/* Returns the length of the well-formed UTF-8 sequence at s, or 0. The
 * ranges follow table 3-7 of the Unicode Standard, so overlong forms,
 * UTF-16 surrogates (U+D800-U+DFFF) and code points above U+10FFFF are
 * all ill-formed. */
static size_t utf8_sequence_length(const unsigned char *s, size_t available)
{
    unsigned char lead = s[0];
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    size_t length;

    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0)
            low = 0xA0;
        if (lead == 0xED)
            high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0)
            low = 0x90;
        if (lead == 0xF4)
            high = 0x8F;
    } else {
        return 0;
    }
    if (available < length || s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return length;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits of a \u escape whose backslash is at offset. */
static bool read_hex4(const struct scanner *sc, size_t offset, uint32_t *cp)
{
    uint32_t value = 0;

    if (sc->length - offset < 6 || sc->data[offset + 1] != 'u')
        return false;
    for (size_t i = offset + 2; i < offset + 6; i++) {
        int digit = hex_value(sc->data[i]);

        if (digit < 0)
            return false;
        value = value * 16 + (uint32_t)digit;
    }
    *cp = value;
    return true;
}

/* Decodes the \u escape at *offset, joining a surrogate pair into one
 * code point. A lone surrogate cannot become UTF-8, so it is rejected. */
static enum json_scan_status scan_unicode_escape(struct scanner *sc,
                                                 size_t *offset,
                                                 struct buffer *out)
{
    size_t start = *offset;
    uint32_t cp, low;

    if (!read_hex4(sc, start, &cp))
        return fail(sc, JSON_SCAN_INVALID_JSON, start,
                    "A \\u escape needs four hex digits");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(sc, JSON_SCAN_INVALID_JSON, start,
                    "A \\u escape is a low surrogate without a high one");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (start + 6 >= sc->length || sc->data[start + 6] != '\\' ||
            !read_hex4(sc, start + 6, &low) || low < 0xDC00 || low > 0xDFFF)
            return fail(sc, JSON_SCAN_INVALID_JSON, start,
                        "A \\u escape is a high surrogate without a low one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        *offset = start + 12;
    } else {
        *offset = start + 6;
    }
    if (out != NULL)
        buffer_append_code_point(out, cp);
    return JSON_SCAN_OK;
}

/* Decodes the escape sequence whose backslash is at *offset. */
static enum json_scan_status scan_escape(struct scanner *sc, size_t *offset,
                                         struct buffer *out)
{
    size_t start = *offset;
    char decoded;

    if (start + 1 >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, start,
                    "The input ends inside an escape sequence");
    switch (sc->data[start + 1]) {
    case '"': decoded = '"'; break;
    case '\\': decoded = '\\'; break;
    case '/': decoded = '/'; break;
    case 'b': decoded = '\b'; break;
    case 'f': decoded = '\f'; break;
    case 'n': decoded = '\n'; break;
    case 'r': decoded = '\r'; break;
    case 't': decoded = '\t'; break;
    case 'u': return scan_unicode_escape(sc, offset, out);
    default:
        return fail(sc, JSON_SCAN_INVALID_JSON, start,
                    "Invalid escape sequence in a string");
    }
    if (out != NULL)
        buffer_append(out, &decoded, 1);
    *offset = start + 2;
    return JSON_SCAN_OK;
}

/* Scans the string token at sc->pos and appends its decoded bytes to out
 * when out is not NULL. Plain runs are copied in one piece. */
static enum json_scan_status scan_string(struct scanner *sc, struct buffer *out)
{
    size_t start = sc->pos;
    size_t i = start + 1;
    size_t run = i;

    for (;;) {
        unsigned char c;
        enum json_scan_status status;

        if (i >= sc->length)
            return fail(sc, JSON_SCAN_INVALID_JSON, start,
                        "Unterminated string starting");
        c = sc->data[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (out != NULL)
            buffer_append(out, sc->data + run, i - run);
        if (c == '"') {
            sc->pos = i + 1;
            return JSON_SCAN_OK;
        }
        if (c == '\\') {
            status = scan_escape(sc, &i, out);
            if (status != JSON_SCAN_OK)
                return status;
        } else if (c < 0x20) {
            return fail(sc, JSON_SCAN_INVALID_JSON, i,
                        "Raw control character U+%04X in a string", c);
        } else {
            size_t length = utf8_sequence_length(sc->data + i, sc->length - i);

            if (length == 0)
                return fail(sc, JSON_SCAN_INVALID_UTF8, i,
                            "Invalid UTF-8 in a string");
            if (out != NULL)
                buffer_append(out, sc->data + i, length);
            i += length;
        }
        run = i;
    }
}

static bool is_digit(const struct scanner *sc, size_t i)
{
    return i < sc->length && sc->data[i] >= '0' && sc->data[i] <= '9';
}

static size_t skip_digits(const struct scanner *sc, size_t i)
{
    while (is_digit(sc, i))
        i++;
    return i;
}

/* Checks the number grammar of RFC 8259 section 6 without converting, so
 * numbers of any size and precision are accepted as text. */
static enum json_scan_status scan_number(struct scanner *sc)
{
    size_t i = sc->pos;

    if (sc->data[i] == '-')
        i++;
    if (!is_digit(sc, i))
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "A number needs a digit after its sign");
    if (sc->data[i] == '0' && is_digit(sc, i + 1))
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "A number has a leading zero");
    i = skip_digits(sc, i);
    if (i < sc->length && sc->data[i] == '.') {
        if (!is_digit(sc, i + 1))
            return fail(sc, JSON_SCAN_INVALID_JSON, i,
                        "A number needs a digit after its decimal point");
        i = skip_digits(sc, i + 1);
    }
    if (i < sc->length && (sc->data[i] == 'e' || sc->data[i] == 'E')) {
        i++;
        if (i < sc->length && (sc->data[i] == '+' || sc->data[i] == '-'))
            i++;
        if (!is_digit(sc, i))
            return fail(sc, JSON_SCAN_INVALID_JSON, i,
                        "A number needs a digit in its exponent");
        i = skip_digits(sc, i);
    }
    sc->pos = i;
    return JSON_SCAN_OK;
}

/* Scans true, false or null. NaN, Infinity and other words are errors. */
static enum json_scan_status scan_literal(struct scanner *sc)
{
    static const char *const literals[] = { "true", "false", "null" };

    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
        size_t length = strlen(literals[i]);

        if (sc->length - sc->pos >= length &&
            memcmp(sc->data + sc->pos, literals[i], length) == 0) {
            sc->pos += length;
            return JSON_SCAN_OK;
        }
    }
    return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                "Unexpected word where a value was expected");
}

static void skip_whitespace(struct scanner *sc)
{
    while (sc->pos < sc->length) {
        unsigned char c = sc->data[sc->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        sc->pos++;
    }
}

/* Reports an unexpected byte, as invalid UTF-8 when it starts no
 * well-formed UTF-8 sequence, since that is the more useful reason. */
static enum json_scan_status fail_unexpected(struct scanner *sc,
                                             const char *expected)
{
    const unsigned char *c = sc->data + sc->pos;

    if (*c >= 0x80 && utf8_sequence_length(c, sc->length - sc->pos) == 0)
        return fail(sc, JSON_SCAN_INVALID_UTF8, sc->pos, "Invalid UTF-8");
    if (*c < 0x20 || *c == 0x7F)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "Expected %s but found control character U+%04X",
                    expected, *c);
    return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                "Expected %s but found another character", expected);
}

static enum json_scan_type type_of(unsigned char first)
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

static struct frame *top_frame(struct scanner *sc)
{
    return &sc->frames[sc->depth - 1];
}

static struct json_scan_member *append_member(struct scanner *sc)
{
    struct json_scan_result *result = sc->result;
    struct json_scan_member *member;

    if (result->member_count == sc->member_capacity) {
        sc->member_capacity = sc->member_capacity ? sc->member_capacity * 2 : 8;
        result->members = xrealloc(result->members,
                                   sc->member_capacity * sizeof(*member));
    }
    member = &result->members[result->member_count++];
    memset(member, 0, sizeof(*member));
    return member;
}

/* Records where a child of the root starts. Object members were already
 * appended by scan_key(), so only array elements are appended here. */
static void note_value_start(struct scanner *sc)
{
    struct json_scan_member *member;

    if (sc->depth != 1 || sc->result == NULL)
        return;
    if (top_frame(sc)->is_object)
        member = &sc->result->members[sc->result->member_count - 1];
    else
        member = append_member(sc);
    member->value.offset = sc->pos;
    member->type = type_of(sc->data[sc->pos]);
}

/* Records where a finished value ends if it is the root or its child. */
static void note_value_end(struct scanner *sc)
{
    struct json_scan_span *span;

    if (sc->result == NULL || sc->depth > 1)
        return;
    if (sc->depth == 0)
        span = &sc->result->root;
    else
        span = &sc->result->members[sc->result->member_count - 1].value;
    span->length = sc->pos - span->offset;
}

static void push_frame(struct scanner *sc, bool is_object)
{
    struct frame *frame;

    if ((size_t)sc->depth == sc->frame_capacity) {
        sc->frame_capacity = sc->frame_capacity ? sc->frame_capacity * 2 : 16;
        sc->frames = xrealloc(sc->frames,
                              sc->frame_capacity * sizeof(*sc->frames));
    }
    frame = &sc->frames[sc->depth++];
    frame->is_object = is_object;
    frame->key_base = sc->key_count;
    frame->arena_mark = sc->arena.length;
}

/* Opens the container at sc->pos. An empty one is consumed whole and
 * *opened stays false, so the caller treats it like a scalar. */
static enum json_scan_status open_container(struct scanner *sc, bool *opened)
{
    bool is_object = sc->data[sc->pos] == '{';

    if (sc->depth >= sc->max_depth)
        return fail(sc, JSON_SCAN_TOO_DEEP, sc->pos,
                    "JSON nesting is deeper than the limit of %d levels",
                    sc->max_depth);
    sc->pos++;
    skip_whitespace(sc);
    if (sc->pos < sc->length && sc->data[sc->pos] == (is_object ? '}' : ']')) {
        sc->pos++;
        *opened = false;
        return JSON_SCAN_OK;
    }
    push_frame(sc, is_object);
    *opened = true;
    return JSON_SCAN_OK;
}

/* Scans the value that starts after optional whitespace. Scalars are
 * consumed whole, and containers are opened (see open_container()). */
static enum json_scan_status begin_value(struct scanner *sc, bool *opened)
{
    unsigned char c;

    *opened = false;
    skip_whitespace(sc);
    if (sc->pos >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "The input ends where a value was expected");
    note_value_start(sc);
    c = sc->data[sc->pos];
    if (c == '{' || c == '[')
        return open_container(sc, opened);
    if (c == '"')
        return scan_string(sc, NULL);
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(sc);
    if (c == 't' || c == 'f' || c == 'n')
        return scan_literal(sc);
    return fail_unexpected(sc, "a value");
}

static void push_key(struct scanner *sc, size_t arena_offset,
                     size_t input_offset)
{
    struct key_ref *key;

    if (sc->key_count == sc->key_capacity) {
        sc->key_capacity = sc->key_capacity ? sc->key_capacity * 2 : 32;
        sc->keys = xrealloc(sc->keys, sc->key_capacity * sizeof(*sc->keys));
    }
    key = &sc->keys[sc->key_count++];
    key->arena_offset = arena_offset;
    key->length = sc->arena.length - arena_offset;
    key->input_offset = input_offset;
    key->bytes = NULL;
}

/* Records a key of the root object as a member with its decoded name. */
static void note_root_key(struct scanner *sc, size_t key_start,
                          const struct key_ref *key)
{
    struct json_scan_member *member;
    char *name;

    if (sc->depth != 1 || sc->result == NULL)
        return;
    member = append_member(sc);
    member->key.offset = key_start;
    member->key.length = sc->pos - key_start;
    name = xmalloc(key->length + 1);
    memcpy(name, sc->arena.bytes + key->arena_offset, key->length);
    name[key->length] = '\0';
    member->name = name;
    member->name_length = key->length;
}

/* Scans `"key" :` of an object member, leaving sc->pos at its value. */
static enum json_scan_status scan_key(struct scanner *sc)
{
    size_t key_start, arena_offset;
    enum json_scan_status status;

    skip_whitespace(sc);
    if (sc->pos >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "The input ends where an object key was expected");
    if (sc->data[sc->pos] != '"')
        return fail_unexpected(sc, "a string as object key");
    key_start = sc->pos;
    arena_offset = sc->arena.length;
    status = scan_string(sc, &sc->arena);
    if (status != JSON_SCAN_OK)
        return status;
    push_key(sc, arena_offset, key_start);
    note_root_key(sc, key_start, &sc->keys[sc->key_count - 1]);
    skip_whitespace(sc);
    if (sc->pos >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "The input ends where ':' was expected");
    if (sc->data[sc->pos] != ':')
        return fail_unexpected(sc, "':' after an object key");
    sc->pos++;
    return JSON_SCAN_OK;
}

/* Orders keys by their decoded bytes, and equal keys by input position. */
static int compare_keys(const void *a, const void *b)
{
    const struct key_ref *left = a;
    const struct key_ref *right = b;
    size_t common = left->length < right->length ? left->length : right->length;
    int order = memcmp(left->bytes, right->bytes, common);

    if (order != 0)
        return order;
    if (left->length != right->length)
        return left->length < right->length ? -1 : 1;
    return left->input_offset < right->input_offset ? -1 : 1;
}

/* Sorts the keys of the closing object and rejects equal neighbours. The
 * error names the later of the two keys. */
static enum json_scan_status check_duplicate_keys(struct scanner *sc,
                                                  const struct frame *frame)
{
    struct key_ref *keys = sc->keys + frame->key_base;
    size_t count = sc->key_count - frame->key_base;

    if (count < 2)
        return JSON_SCAN_OK;
    for (size_t i = 0; i < count; i++)
        keys[i].bytes = sc->arena.bytes + keys[i].arena_offset;
    qsort(keys, count, sizeof(*keys), compare_keys);
    for (size_t i = 1; i < count; i++) {
        if (keys[i].length == keys[i - 1].length &&
            memcmp(keys[i].bytes, keys[i - 1].bytes, keys[i].length) == 0)
            return fail(sc, JSON_SCAN_DUPLICATE_KEY, keys[i].input_offset,
                        "Duplicate object key");
    }
    return JSON_SCAN_OK;
}

static enum json_scan_status close_container(struct scanner *sc)
{
    struct frame *frame = top_frame(sc);

    if (frame->is_object) {
        enum json_scan_status status = check_duplicate_keys(sc, frame);

        if (status != JSON_SCAN_OK)
            return status;
    }
    sc->key_count = frame->key_base;
    sc->arena.length = frame->arena_mark;
    sc->depth--;
    sc->pos++;
    return JSON_SCAN_OK;
}

/* Reads the ',' or the closing bracket that follows a value inside a
 * container. A ',' sets *more, and a closing bracket closes the container. */
static enum json_scan_status continue_container(struct scanner *sc, bool *more)
{
    bool is_object = top_frame(sc)->is_object;
    unsigned char c;

    *more = false;
    skip_whitespace(sc);
    if (sc->pos >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "The input ends inside an %s",
                    is_object ? "object" : "array");
    c = sc->data[sc->pos];
    if (c == (is_object ? '}' : ']'))
        return close_container(sc);
    if (c != ',')
        return fail_unexpected(sc, is_object ? "',' or '}'" : "',' or ']'");
    sc->pos++;
    *more = true;
    return is_object ? scan_key(sc) : JSON_SCAN_OK;
}

/* Trailing whitespace is all that may follow the root value, so a second
 * document or any garbage after it is an error. */
static enum json_scan_status finish_document(struct scanner *sc)
{
    skip_whitespace(sc);
    if (sc->pos != sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "Unexpected data after the JSON value");
    return JSON_SCAN_OK;
}

/* Runs the scanning loop. Each pass starts a value, and after a finished
 * value it closes as many containers as the input closes. */
static enum json_scan_status scan_values(struct scanner *sc)
{
    enum json_scan_status status;
    bool opened, more;

    for (;;) {
        status = begin_value(sc, &opened);
        if (status != JSON_SCAN_OK)
            return status;
        if (opened) {
            if (top_frame(sc)->is_object) {
                status = scan_key(sc);
                if (status != JSON_SCAN_OK)
                    return status;
            }
            continue;
        }
        do {
            note_value_end(sc);
            if (sc->depth == 0)
                return finish_document(sc);
            status = continue_container(sc, &more);
            if (status != JSON_SCAN_OK)
                return status;
        } while (!more);
    }
}

static enum json_scan_status check_start(struct scanner *sc)
{
    static const unsigned char bom[] = { 0xEF, 0xBB, 0xBF };

    if (sc->length >= sizeof(bom) && memcmp(sc->data, bom, sizeof(bom)) == 0)
        return fail(sc, JSON_SCAN_INVALID_JSON, 0,
                    "The input starts with a UTF-8 byte order mark, "
                    "which JSON text must not have");
    skip_whitespace(sc);
    if (sc->pos >= sc->length)
        return fail(sc, JSON_SCAN_INVALID_JSON, sc->pos,
                    "The input contains no JSON value");
    sc->result->root.offset = sc->pos;
    sc->result->type = type_of(sc->data[sc->pos]);
    return JSON_SCAN_OK;
}

enum json_scan_status json_scan_document(const char *data, size_t length,
                                         int max_depth,
                                         struct json_scan_result *result,
                                         char *errstr, size_t errstr_size)
{
    struct scanner sc = {
        .data = (const unsigned char *)data,
        .length = length,
        .max_depth = max_depth,
        .result = result,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };
    enum json_scan_status status;

    memset(result, 0, sizeof(*result));
    if (errstr != NULL && errstr_size > 0)
        errstr[0] = '\0';
    if (data == NULL)
        sc.length = 0;
    /* memcpy() and memcmp() must not get NULL even for empty keys, so the
     * arena exists before the first key is read. */
    buffer_reserve(&sc.arena, 64);
    status = check_start(&sc);
    if (status == JSON_SCAN_OK)
        status = scan_values(&sc);

    free(sc.frames);
    free(sc.keys);
    free(sc.arena.bytes);
    if (status != JSON_SCAN_OK)
        json_scan_result_clear(result);
    return status;
}

void json_scan_result_clear(struct json_scan_result *result)
{
    if (result == NULL)
        return;
    for (size_t i = 0; i < result->member_count; i++)
        free(result->members[i].name);
    free(result->members);
    memset(result, 0, sizeof(*result));
}

const struct json_scan_member *
json_scan_result_find(const struct json_scan_result *result, const char *name)
{
    size_t length = strlen(name);

    if (result->type != JSON_SCAN_TYPE_OBJECT)
        return NULL;
    for (size_t i = 0; i < result->member_count; i++) {
        const struct json_scan_member *member = &result->members[i];

        if (member->name_length == length &&
            memcmp(member->name, name, length) == 0)
            return member;
    }
    return NULL;
}

char *json_scan_string_decode(const char *token, size_t length,
                              size_t *decoded_length)
{
    struct scanner sc = {
        .data = (const unsigned char *)token,
        .length = length,
    };
    struct buffer out = { 0 };

    if (token == NULL || length < 2 || token[0] != '"' ||
        scan_string(&sc, &out) != JSON_SCAN_OK || sc.pos != length) {
        free(out.bytes);
        return NULL;
    }
    buffer_append(&out, "", 1);
    *decoded_length = out.length - 1;
    return out.bytes;
}

bool json_scan_number_to_int64(const char *token, size_t length,
                               int64_t *value)
{
    bool negative = length > 0 && token[0] == '-';
    size_t i = negative ? 1 : 0;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t magnitude = 0;

    if (i == length)
        return false;
    for (; i < length; i++) {
        unsigned digit;

        if (token[i] < '0' || token[i] > '9')
            return false;
        digit = (unsigned)(token[i] - '0');
        if (magnitude > (limit - digit) / 10)
            return false;
        magnitude = magnitude * 10 + digit;
    }
    if (negative)
        *value = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                      : -(int64_t)magnitude;
    else
        *value = (int64_t)magnitude;
    return true;
}
