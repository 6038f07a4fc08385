/* Allocation, clocks, buffers, JSON string escaping and UUIDs for the
 * simulator. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void die_oom(size_t size)
{
    fprintf(stderr, "chatt2me-sim: out of memory allocating %zu bytes\n", size);
    abort();
}

void *sim_xmalloc(size_t size)
{
    void *ptr = malloc(size ? size : 1);

    if (!ptr)
        die_oom(size);
    return ptr;
}

void *sim_xcalloc(size_t count, size_t size)
{
    void *ptr = calloc(count ? count : 1, size ? size : 1);

    if (!ptr)
        die_oom(count * size);
    return ptr;
}

void *sim_xrealloc(void *ptr, size_t size)
{
    void *grown = realloc(ptr, size ? size : 1);

    if (!grown)
        die_oom(size);
    return grown;
}

char *sim_xstrdup(const char *s)
{
    return sim_xstrndup(s, strlen(s));
}

char *sim_xstrndup(const char *s, size_t len)
{
    char *copy = sim_xmalloc(len + 1);

    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static int64_t clock_ms(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_now_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t sim_now_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* splitmix64: small, fast and well distributed, which is all test ids
 * need. Each thread has its own state, so no lock is taken. */
static _Thread_local uint64_t uuid_state;
static _Thread_local bool uuid_seeded;

static uint64_t next_random(void)
{
    uint64_t z;

    if (!uuid_seeded) {
        if (getrandom(&uuid_state, sizeof(uuid_state), 0) !=
            (ssize_t)sizeof(uuid_state))
            uuid_state = (uint64_t)sim_now_wall_ms() ^ (uint64_t)(uintptr_t)&uuid_state;
        uuid_seeded = true;
    }
    uuid_state += 0x9e3779b97f4a7c15ULL;
    z = uuid_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_uuid_v4(char out[SIM_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[16];
    uint64_t high = next_random();
    uint64_t low = next_random();
    size_t pos = 0;

    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(high >> (8 * i));
        bytes[8 + i] = (unsigned char)(low >> (8 * i));
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40); /* version 4 */
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80); /* RFC 4122 variant */

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[pos++] = '-';
        out[pos++] = hex[bytes[i] >> 4];
        out[pos++] = hex[bytes[i] & 0x0f];
    }
    out[pos] = '\0';
}

bool sim_uuid_is_valid(const char *s)
{
    for (size_t i = 0; i < SIM_UUID_LEN; i++) {
        char c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[SIM_UUID_LEN] == '\0';
}

bool sim_utf8_is_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t extra;
        uint32_t code;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            code = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            code = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            code = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (p[i + k] & 0x3f);
        }
        /* Reject overlong forms, surrogates and code points past U+10FFFF. */
        if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000) ||
            (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
            return false;
        i += extra + 1;
    }
    return true;
}

static void buf_reserve(struct sim_buf *buf, size_t extra)
{
    size_t need = buf->len + extra + 1;

    if (need <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    buf->data = sim_xrealloc(buf->data, cap);
    buf->cap = cap;
}

void sim_buf_append(struct sim_buf *buf, const void *data, size_t len)
{
    buf_reserve(buf, len);
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void sim_buf_append_str(struct sim_buf *buf, const char *s)
{
    sim_buf_append(buf, s, strlen(s));
}

void sim_buf_printf(struct sim_buf *buf, const char *fmt, ...)
{
    va_list ap;
    size_t room;
    int needed;

    /* Most lines fit the first try; otherwise grow to the size reported. */
    buf_reserve(buf, 128);
    room = buf->cap - buf->len;
    va_start(ap, fmt);
    needed = vsnprintf(buf->data + buf->len, room, fmt, ap);
    va_end(ap);
    if (needed < 0) {
        buf->data[buf->len] = '\0';
        return;
    }
    if ((size_t)needed >= room) {
        buf_reserve(buf, (size_t)needed);
        va_start(ap, fmt);
        vsnprintf(buf->data + buf->len, (size_t)needed + 1, fmt, ap);
        va_end(ap);
    }
    buf->len += (size_t)needed;
}

void sim_buf_append_json_string(struct sim_buf *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    if (!s) {
        sim_buf_append(buf, "null", 4);
        return;
    }

    /* Worst case every byte becomes \u00XX. */
    buf_reserve(buf, len * 6 + 2);
    buf->data[buf->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char *out;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        memcpy(buf->data + buf->len, s + start, i - start);
        buf->len += i - start;
        start = i + 1;
        out = buf->data + buf->len;
        out[0] = '\\';
        switch (c) {
        case '"': out[1] = '"'; buf->len += 2; break;
        case '\\': out[1] = '\\'; buf->len += 2; break;
        case '\n': out[1] = 'n'; buf->len += 2; break;
        case '\r': out[1] = 'r'; buf->len += 2; break;
        case '\t': out[1] = 't'; buf->len += 2; break;
        default:
            out[1] = 'u';
            out[2] = '0';
            out[3] = '0';
            out[4] = hex[c >> 4];
            out[5] = hex[c & 0x0f];
            buf->len += 6;
            break;
        }
    }
    memcpy(buf->data + buf->len, s + start, len - start);
    buf->len += len - start;
    buf->data[buf->len++] = '"';
    buf->data[buf->len] = '\0';
}

void sim_buf_append_base64(struct sim_buf *buf, const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = data;
    size_t i = 0;
    char *out;

    buf_reserve(buf, (len + 2) / 3 * 4);
    out = buf->data + buf->len;
    for (; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];

        *out++ = alphabet[(v >> 18) & 0x3f];
        *out++ = alphabet[(v >> 12) & 0x3f];
        *out++ = alphabet[(v >> 6) & 0x3f];
        *out++ = alphabet[v & 0x3f];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *out++ = alphabet[(v >> 18) & 0x3f];
        *out++ = alphabet[(v >> 12) & 0x3f];
        *out++ = i + 1 < len ? alphabet[(v >> 6) & 0x3f] : '=';
        *out++ = '=';
    }
    buf->len = (size_t)(out - buf->data);
    buf->data[buf->len] = '\0';
}

void sim_buf_reset(struct sim_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void sim_buf_free(struct sim_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}
