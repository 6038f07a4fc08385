#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die_out_of_memory(size_t size)
{
    /* fprintf may itself allocate; a fixed message through fputs keeps the
     * chance of saying why we stop as high as it can be. */
    (void)size;
    fputs("fatal: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t size)
{
    void *ptr = malloc(size ? size : 1);

    if (!ptr)
        die_out_of_memory(size);
    return ptr;
}

void *xcalloc(size_t count, size_t size)
{
    void *ptr = calloc(count ? count : 1, size ? size : 1);

    if (!ptr)
        die_out_of_memory(count * size);
    return ptr;
}

void *xrealloc(void *ptr, size_t size)
{
    void *moved = realloc(ptr, size ? size : 1);

    if (!moved)
        die_out_of_memory(size);
    return moved;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t len)
{
    char *copy = xmalloc(len + 1);

    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void *xmemdup(const void *ptr, size_t len)
{
    void *copy = xmalloc(len);

    if (len)
        memcpy(copy, ptr, len);
    return copy;
}

int64_t util_now_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_format_rfc3339(int64_t wall_ms, char *buf, size_t size)
{
    /* Every result formats two timestamps, mostly within the same second:
     * the date and time part is formatted once per second per thread. */
    static _Thread_local time_t cached_seconds = (time_t)-1;
    static _Thread_local char cached[64];
    time_t seconds = (time_t)(wall_ms / 1000);
    int millis = (int)(wall_ms % 1000);

    if (seconds != cached_seconds) {
        struct tm tm;

        gmtime_r(&seconds, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        cached_seconds = seconds;
    }
    snprintf(buf, size, "%s.%03dZ", cached, millis);
}

char *util_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (size == 0)
        return buf;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

void util_trim_partial_utf8(char *s)
{
    size_t len = strlen(s);
    size_t start = len;
    size_t need;

    /* Step back over continuation bytes to the last lead byte. */
    while (start > 0 && len - start < 4 &&
           ((unsigned char)s[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0)
        return;

    unsigned char lead = (unsigned char)s[start - 1];
    if (lead < 0x80)
        return;
    if (lead >= 0xF0)
        need = 4;
    else if (lead >= 0xE0)
        need = 3;
    else if (lead >= 0xC0)
        need = 2;
    else
        need = 1;
    if (len - (start - 1) < need)
        s[start - 1] = '\0';
}
