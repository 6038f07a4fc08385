/* Helpers shared by the fuzz targets. A broken invariant prints what broke
 * and aborts, so libFuzzer saves the input as a crash like any sanitizer
 * report. */
#ifndef C2M_FUZZ_UTIL_H
#define C2M_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>

void fuzz_fail(const char *file, int line, const char *condition,
               const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* Aborts with the condition's text and a printf-style explanation. */
#define FUZZ_REQUIRE(condition, ...)                                        \
    do {                                                                    \
        if (!(condition))                                                   \
            fuzz_fail(__FILE__, __LINE__, #condition, __VA_ARGS__);         \
    } while (0)

/* Returns whether s[0..length) is well-formed UTF-8 by table 3-7 of the
 * Unicode Standard: no overlong forms, surrogates or values above
 * U+10FFFF. */
bool fuzz_is_utf8(const char *s, size_t length);

/* Returns whether s[0..length) contains a C0 control character, DEL or a
 * C1 control character (U+0080 to U+009F). s must be valid UTF-8. */
bool fuzz_has_control(const char *s, size_t length);

/* Returns whether every byte of s[0..length) is in 0x20..0x7E. */
bool fuzz_is_printable_ascii(const char *s, size_t length);

/* Returns whether s[0..length) contains needle[0..needle_length). */
bool fuzz_contains(const char *s, size_t length, const char *needle,
                   size_t needle_length);

/* Returns whether s[0..length) contains only JSON whitespace. */
bool fuzz_is_json_whitespace(const char *s, size_t length);

#endif
