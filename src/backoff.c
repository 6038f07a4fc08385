/* Retry delays: exponential backoff with full jitter, and parsing of the
 * HTTP Retry-After header (RFC 9110, sections 10.2.3 and 5.6.7). */
#include "backoff.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

/* A Retry-After beyond one day is clamped to one day, because a
 * misconfigured or hostile server must not park a request for years. */
#define RETRY_AFTER_MAX_MS (24LL * 60 * 60 * 1000)
#define RETRY_AFTER_MAX_S (RETRY_AFTER_MAX_MS / 1000)

/* Returns min(max_ms, base_ms * 2^(failed_attempts - 1)). Negative base_ms
 * or max_ms count as 0, and failed_attempts below 1 counts as 1. */
static int64_t backoff_ceiling_ms(int failed_attempts, int base_ms, int max_ms)
{
    int shift;
    int64_t ceiling;

    if (base_ms <= 0 || max_ms <= 0)
        return 0;

    shift = failed_attempts > 1 ? failed_attempts - 1 : 0;
    /* base_ms is at least 1, so base_ms * 2^32 exceeds every int max_ms.
     * With the shift capped at 32 the product stays below 2^63. */
    if (shift > 32)
        shift = 32;
    ceiling = (int64_t)base_ms << shift;
    return ceiling < max_ms ? ceiling : max_ms;
}

int64_t backoff_full_jitter_ms(int failed_attempts, int base_ms, int max_ms,
                               uint64_t random)
{
    uint64_t span = (uint64_t)backoff_ceiling_ms(failed_attempts, base_ms,
                                                 max_ms) + 1;
    uint64_t random_high = random >> 32;
    uint64_t random_low = random & 0xFFFFFFFFu;

    /* floor(random * span / 2^64), split into 32-bit halves because span
     * is at most 2^31. It maps 0 to 0 and UINT64_MAX to span - 1, and each
     * delay gets 2^64 / span random values give or take one, so the bias
     * is at most 2^-33. */
    return (int64_t)((random_high * span + ((random_low * span) >> 32)) >>
                     32);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parses delay-seconds (1*DIGIT, nothing else) into ms, clamped to one
 * day. */
static int parse_delay_seconds(const char *text, size_t len,
                               int64_t *delay_ms)
{
    int64_t seconds = 0;

    for (size_t i = 0; i < len; i++) {
        if (!is_digit(text[i]))
            return -1;
        if (seconds <= RETRY_AFTER_MAX_S)
            seconds = seconds * 10 + (text[i] - '0');
    }
    if (seconds > RETRY_AFTER_MAX_S)
        seconds = RETRY_AFTER_MAX_S;
    *delay_ms = seconds * 1000;
    return 0;
}

/* Read position in an HTTP-date. Every take_* helper advances it only on
 * success and returns whether it matched. */
struct date_cursor {
    const char *pos;
    const char *end;
};

static const char *const short_day_names[] = {
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
};
static const char *const long_day_names[] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
    "Sunday",
};
static const char *const month_names[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static bool take_literal(struct date_cursor *cur, const char *literal)
{
    size_t len = strlen(literal);

    if ((size_t)(cur->end - cur->pos) < len ||
        memcmp(cur->pos, literal, len) != 0)
        return false;
    cur->pos += len;
    return true;
}

/* Matches one of names, case-sensitively as RFC 9110 requires. */
static bool take_name(struct date_cursor *cur, const char *const *names,
                      int count, int *index)
{
    for (int i = 0; i < count; i++) {
        if (take_literal(cur, names[i])) {
            *index = i;
            return true;
        }
    }
    return false;
}

/* Matches exactly `count` digits. */
static bool take_digits(struct date_cursor *cur, int count, int *value)
{
    int result = 0;

    if (cur->end - cur->pos < count)
        return false;
    for (int i = 0; i < count; i++) {
        if (!is_digit(cur->pos[i]))
            return false;
        result = result * 10 + (cur->pos[i] - '0');
    }
    cur->pos += count;
    *value = result;
    return true;
}

/* Matches time-of-day, "HH:MM:SS", allowing second 60 for a leap second. */
static bool take_time_of_day(struct date_cursor *cur, struct tm *tm)
{
    return take_digits(cur, 2, &tm->tm_hour) && tm->tm_hour <= 23 &&
           take_literal(cur, ":") && take_digits(cur, 2, &tm->tm_min) &&
           tm->tm_min <= 59 && take_literal(cur, ":") &&
           take_digits(cur, 2, &tm->tm_sec) && tm->tm_sec <= 60;
}

static bool take_month(struct date_cursor *cur, struct tm *tm)
{
    return take_name(cur, month_names, 12, &tm->tm_mon);
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static bool parse_imf_fixdate(struct date_cursor cur, struct tm *tm,
                              int *year)
{
    int day_name;

    return take_name(&cur, short_day_names, 7, &day_name) &&
           take_literal(&cur, ", ") && take_digits(&cur, 2, &tm->tm_mday) &&
           take_literal(&cur, " ") && take_month(&cur, tm) &&
           take_literal(&cur, " ") && take_digits(&cur, 4, year) &&
           take_literal(&cur, " ") && take_time_of_day(&cur, tm) &&
           take_literal(&cur, " GMT") && cur.pos == cur.end;
}

/* Obsolete RFC 850 form: "Sunday, 06-Nov-94 08:49:37 GMT". Stores the
 * two-digit year. */
static bool parse_rfc850_date(struct date_cursor cur, struct tm *tm,
                              int *two_digit_year)
{
    int day_name;

    return take_name(&cur, long_day_names, 7, &day_name) &&
           take_literal(&cur, ", ") && take_digits(&cur, 2, &tm->tm_mday) &&
           take_literal(&cur, "-") && take_month(&cur, tm) &&
           take_literal(&cur, "-") && take_digits(&cur, 2, two_digit_year) &&
           take_literal(&cur, " ") && take_time_of_day(&cur, tm) &&
           take_literal(&cur, " GMT") && cur.pos == cur.end;
}

/* Obsolete asctime form: "Sun Nov  6 08:49:37 1994", where a one-digit
 * day is preceded by a second space. */
static bool parse_asctime_date(struct date_cursor cur, struct tm *tm,
                               int *year)
{
    int day_name;

    if (!take_name(&cur, short_day_names, 7, &day_name) ||
        !take_literal(&cur, " ") || !take_month(&cur, tm) ||
        !take_literal(&cur, " "))
        return false;
    if (!take_digits(&cur, 2, &tm->tm_mday) &&
        !(take_literal(&cur, " ") && take_digits(&cur, 1, &tm->tm_mday)))
        return false;
    return take_literal(&cur, " ") && take_time_of_day(&cur, tm) &&
           take_literal(&cur, " ") && take_digits(&cur, 4, year) &&
           cur.pos == cur.end;
}

/* Expands an RFC 850 two-digit year. RFC 9110 says a year that appears to
 * be more than 50 years in the future is the most recent past year with
 * the same last two digits. */
static int expand_two_digit_year(int two_digit_year, int64_t now_wall_ms)
{
    time_t now_s = (time_t)(now_wall_ms / 1000);
    struct tm now_tm;
    int current_year;
    int year;

    if (gmtime_r(&now_s, &now_tm) == NULL)
        return 1900 + two_digit_year;
    current_year = now_tm.tm_year + 1900;
    year = current_year - current_year % 100 + two_digit_year;
    if (year > current_year + 50)
        year -= 100;
    return year;
}

static bool is_valid_day_of_month(int year, int month, int day)
{
    static const int month_days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
    };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last_day = month_days[month] + (month == 1 && leap ? 1 : 0);

    return day >= 1 && day <= last_day;
}

/* Parses an HTTP-date in any of its three forms into seconds since the
 * epoch. Returns 0, or -1 when the text is not an HTTP-date. */
static int parse_http_date(const char *text, size_t len, int64_t now_wall_ms,
                           int64_t *epoch_s)
{
    struct date_cursor cur = {text, text + len};
    struct tm tm;
    int year = 0;

    memset(&tm, 0, sizeof(tm));
    if (parse_rfc850_date(cur, &tm, &year)) {
        year = expand_two_digit_year(year, now_wall_ms);
    } else {
        memset(&tm, 0, sizeof(tm));
        if (!parse_imf_fixdate(cur, &tm, &year)) {
            memset(&tm, 0, sizeof(tm));
            if (!parse_asctime_date(cur, &tm, &year))
                return -1;
        }
    }
    if (!is_valid_day_of_month(year, tm.tm_mon, tm.tm_mday))
        return -1;

    tm.tm_year = year - 1900;
    /* NOTE: with a 32-bit time_t, timegm() fails for dates after 2038 and
     * returns -1, which reads as a past date and gives no delay. */
    *epoch_s = (int64_t)timegm(&tm);
    return 0;
}

int backoff_parse_retry_after(const char *value, int64_t now_wall_ms,
                              int64_t *delay_ms)
{
    const char *start;
    const char *end;
    int64_t date_s;
    int64_t date_ms;

    if (value == NULL || delay_ms == NULL)
        return -1;

    /* Field values may carry optional whitespace around them. */
    start = value;
    end = value + strlen(value);
    while (start < end && is_ows(*start))
        start++;
    while (end > start && is_ows(end[-1]))
        end--;
    if (start == end)
        return -1;

    if (is_digit(*start))
        return parse_delay_seconds(start, (size_t)(end - start), delay_ms);

    if (parse_http_date(start, (size_t)(end - start), now_wall_ms,
                        &date_s) != 0)
        return -1;

    /* Years are four digits, so date_ms fits easily in int64_t. */
    date_ms = date_s * 1000;
    if (date_ms <= now_wall_ms)
        *delay_ms = 0;
    else if (now_wall_ms < date_ms - RETRY_AFTER_MAX_MS)
        *delay_ms = RETRY_AFTER_MAX_MS;
    else
        *delay_ms = date_ms - now_wall_ms;
    return 0;
}
