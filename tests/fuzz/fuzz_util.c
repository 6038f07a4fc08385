#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_fail(const char *file, int line, const char *condition,
               const char *fmt, ...)
{
    va_list args;

    fprintf(stderr, "==fuzz== invariant broken at %s:%d: %s\n==fuzz== ", file,
            line, condition);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    abort();
}

/* Returns the length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_sequence_length(const unsigned char *s, size_t available)
{
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    size_t length;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        length = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        length = 3;
        low = s[0] == 0xE0 ? 0xA0 : 0x80;
        high = s[0] == 0xED ? 0x9F : 0xBF;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        length = 4;
        low = s[0] == 0xF0 ? 0x90 : 0x80;
        high = s[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (available < length || s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return length;
}

bool fuzz_is_utf8(const char *s, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)s;
    size_t i = 0;

    while (i < length) {
        size_t sequence = utf8_sequence_length(bytes + i, length - i);

        if (sequence == 0)
            return false;
        i += sequence;
    }
    return true;
}

bool fuzz_has_control(const char *s, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)s;

    for (size_t i = 0; i < length; i++) {
        if (bytes[i] < 0x20 || bytes[i] == 0x7F)
            return true;
        /* U+0080..U+009F are encoded as C2 80..C2 9F. */
        if (bytes[i] == 0xC2 && i + 1 < length && bytes[i + 1] <= 0x9F)
            return true;
    }
    return false;
}

bool fuzz_is_printable_ascii(const char *s, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (s[i] < 0x20 || s[i] > 0x7E)
            return false;
    }
    return true;
}

bool fuzz_contains(const char *s, size_t length, const char *needle,
                   size_t needle_length)
{
    if (needle_length == 0)
        return true;
    for (size_t i = 0; i + needle_length <= length; i++) {
        if (memcmp(s + i, needle, needle_length) == 0)
            return true;
    }
    return false;
}

bool fuzz_is_json_whitespace(const char *s, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    }
    return true;
}
