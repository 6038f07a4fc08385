/* Small helpers shared by every module: allocation that aborts on
 * out-of-memory, clocks, and bounded string formatting. */
#ifndef C2M_UTIL_H
#define C2M_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The x*alloc wrappers abort the process when memory runs out: a worker
 * that cannot allocate cannot keep its delivery promises, and Kubernetes
 * restarts it. No caller checks for NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);
void *xmemdup(const void *ptr, size_t len);

/* Milliseconds on the monotonic clock: for deadlines and durations. */
int64_t util_now_mono_ms(void);

/* Milliseconds since the Unix epoch: for timestamps in records. */
int64_t util_now_wall_ms(void);

/* Writes wall_ms as RFC 3339 UTC with milliseconds, for example
 * "2026-12-04T19:38:55.123Z", into buf (at least 25 bytes). */
void util_format_rfc3339(int64_t wall_ms, char *buf, size_t size);

/* Cuts a trailing incomplete UTF-8 sequence from the NUL-terminated
 * string s, so a truncated copy of valid UTF-8 stays valid. */
void util_trim_partial_utf8(char *s);

/* snprintf that never overflows and always terminates; returns buf. */
char *util_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
