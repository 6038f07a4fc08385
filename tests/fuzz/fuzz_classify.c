/* Fuzz target for classify_attempt(). The first four bytes of an input
 * pick the attempt, and the rest is the response body. The layout:
 *
 *   byte 0     transport: the value modulo the number of transports
 *   byte 1     bit 0: body_sent; bit 1: pass body NULL (and length 0)
 *   bytes 2-3  HTTP status: with the high bit of byte 2 set, byte 3 picks
 *              one of interesting_statuses; otherwise the 15-bit value
 *              minus 100, so negative and huge statuses occur too
 *
 * Besides memory errors and undefined behaviour it checks the contract:
 * the action is in range; error_class is set exactly when the attempt was
 * not sent; error_code and error_message are terminated, valid UTF-8 and
 * free of control characters; message_id is printable ASCII; and the
 * fixed parts of the policy (transport errors retry, 401 is the only dead
 * letter, only retries have an unknown outcome) hold. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "classify.h"
#include "fuzz_util.h"

#define HEADER_SIZE 4
#define TRANSPORT_COUNT 5

static const long interesting_statuses[] = {
    0, 1, 99, 100, 199, 200, 201, 202, 204, 226, 299, 300, 301, 304, 399,
    400, 401, 403, 404, 408, 409, 413, 422, 429, 499, 500, 501, 502, 503,
    504, 599, 600, 999, -1, LONG_MIN, LONG_MAX,
};

#define INTERESTING_STATUS_COUNT \
    (sizeof(interesting_statuses) / sizeof(interesting_statuses[0]))

static void check_text(const char *name, const char *text, size_t size)
{
    size_t length = strnlen(text, size);

    FUZZ_REQUIRE(length < size, "%s is not terminated", name);
    FUZZ_REQUIRE(fuzz_is_utf8(text, length), "%s is not valid UTF-8", name);
    FUZZ_REQUIRE(!fuzz_has_control(text, length),
                 "%s contains a control character", name);
}

static void check_result(const struct classify_input *in,
                         const struct classify_result *out)
{
    size_t id_length;

    FUZZ_REQUIRE(out->action >= CLASSIFY_SENT &&
                     out->action <= CLASSIFY_DEAD_LETTER,
                 "action %d out of range", (int)out->action);
    check_text("error_code", out->error_code, sizeof(out->error_code));
    check_text("error_message", out->error_message,
               sizeof(out->error_message));
    check_text("message_id", out->message_id, sizeof(out->message_id));
    id_length = strlen(out->message_id);
    FUZZ_REQUIRE(fuzz_is_printable_ascii(out->message_id, id_length),
                 "message_id is not printable ASCII");
    FUZZ_REQUIRE(out->has_message_id == (id_length > 0),
                 "has_message_id disagrees with message_id");

    if (out->action == CLASSIFY_SENT) {
        FUZZ_REQUIRE(out->error_class == NULL, "sent with error class %s",
                     out->error_class);
        FUZZ_REQUIRE(out->error_code[0] == '\0' &&
                         out->error_message[0] == '\0',
                     "sent with an error code or message");
        FUZZ_REQUIRE(!out->unknown_outcome, "sent with an unknown outcome");
    } else {
        FUZZ_REQUIRE(out->error_class != NULL && out->error_class[0] != '\0',
                     "action %d without an error class", (int)out->action);
        FUZZ_REQUIRE(out->error_code[0] != '\0' &&
                         out->error_message[0] != '\0',
                     "action %d without an error code or message",
                     (int)out->action);
        FUZZ_REQUIRE(!out->has_message_id,
                     "a message id on an attempt that was not sent");
    }

    FUZZ_REQUIRE(!out->unknown_outcome || out->action == CLASSIFY_RETRY,
                 "unknown outcome on action %d", (int)out->action);
    FUZZ_REQUIRE(!out->unknown_outcome || in->body_sent,
                 "unknown outcome although the body was not sent");
    if (in->transport != CLASSIFY_TRANSPORT_OK)
        FUZZ_REQUIRE(out->action == CLASSIFY_RETRY,
                     "transport error %d does not retry", (int)in->transport);
    FUZZ_REQUIRE((out->action == CLASSIFY_DEAD_LETTER) ==
                     (in->transport == CLASSIFY_TRANSPORT_OK &&
                      in->http_status == 401),
                 "dead letter disagrees with HTTP 401 (status %ld)",
                 in->http_status);
    if (in->transport == CLASSIFY_TRANSPORT_OK && in->http_status >= 200 &&
        in->http_status <= 299)
        FUZZ_REQUIRE(out->action == CLASSIFY_SENT ||
                         out->action == CLASSIFY_FAILED,
                     "HTTP %ld gives action %d", in->http_status,
                     (int)out->action);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct classify_input in;
    struct classify_result first, second;
    unsigned status_bits;

    if (size < HEADER_SIZE)
        return 0;
    memset(&in, 0, sizeof(in));
    in.transport = (enum classify_transport)(data[0] % TRANSPORT_COUNT);
    in.body_sent = (data[1] & 1) != 0;
    status_bits = ((unsigned)data[2] << 8) | data[3];
    if (status_bits & 0x8000)
        in.http_status = interesting_statuses[data[3] %
                                              INTERESTING_STATUS_COUNT];
    else
        in.http_status = (long)status_bits - 100;
    if ((data[1] & 2) == 0) {
        in.body = (const char *)data + HEADER_SIZE;
        in.body_len = size - HEADER_SIZE;
    }

    classify_attempt(&in, &first);
    check_result(&in, &first);

    /* The result depends on the input only. */
    memset(&second, 0xA5, sizeof(second));
    classify_attempt(&in, &second);
    FUZZ_REQUIRE(memcmp(&first, &second, sizeof(first)) == 0,
                 "two calls with the same input differ");
    return 0;
}
