/* Checks of POST /v1/communication/<channel>/message, following the
 * Chatt2.me documentation (docs.chatt2.me, versions 1.0 and latest):
 * required envelope fields, the `to` format per channel, and which content
 * kinds each channel offers. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CH(c) (1u << (c))
#define ALL_CHANNELS (CH(SIM_CHANNEL_COUNT) - 1u)

static const struct {
    const char *name;
    const char *default_id;
} channels[SIM_CHANNEL_COUNT] = {
    [SIM_CHANNEL_WHATSAPP] = {"whatsapp", "11111111-1111-4111-8111-111111111111"},
    [SIM_CHANNEL_INSTAGRAM] = {"instagram", "22222222-2222-4222-8222-222222222222"},
    [SIM_CHANNEL_MESSENGER] = {"messenger", "33333333-3333-4333-8333-333333333333"},
    [SIM_CHANNEL_TELEGRAM] = {"telegram", "44444444-4444-4444-8444-444444444444"},
    [SIM_CHANNEL_SMS] = {"sms", "55555555-5555-4555-8555-555555555555"},
    [SIM_CHANNEL_WEB_CHATT2ME] = {"web-chatt2me", "66666666-6666-4666-8666-666666666666"},
};

/* The content keys that name a message kind, and the channels offering
 * each kind (the availability table of the "Content Types" page). Keys
 * the table does not list are accepted, because the real API may be
 * newer than this table. */
static const struct {
    const char *key;
    const char *label;
    unsigned channels;
} kinds[] = {
    {"text", "text", ALL_CHANNELS},
    {"imageUrl", "image", ALL_CHANNELS},
    {"videoUrl", "video", ALL_CHANNELS & ~CH(SIM_CHANNEL_SMS)},
    {"audioUrl", "audio", ALL_CHANNELS & ~CH(SIM_CHANNEL_SMS)},
    {"documentUrl", "document",
     CH(SIM_CHANNEL_WHATSAPP) | CH(SIM_CHANNEL_TELEGRAM) | CH(SIM_CHANNEL_WEB_CHATT2ME)},
    {"stickerUrl", "sticker",
     ALL_CHANNELS & ~CH(SIM_CHANNEL_MESSENGER) & ~CH(SIM_CHANNEL_SMS)},
    {"location", "location",
     CH(SIM_CHANNEL_WHATSAPP) | CH(SIM_CHANNEL_TELEGRAM) | CH(SIM_CHANNEL_WEB_CHATT2ME)},
    {"contacts", "contacts",
     CH(SIM_CHANNEL_WHATSAPP) | CH(SIM_CHANNEL_TELEGRAM) | CH(SIM_CHANNEL_WEB_CHATT2ME)},
    {"interactive", "interactive", ALL_CHANNELS & ~CH(SIM_CHANNEL_SMS)},
    {"template", "template", CH(SIM_CHANNEL_WHATSAPP)},
    {"reaction", "reaction", ALL_CHANNELS & ~CH(SIM_CHANNEL_SMS)},
    {"paymentRequest", "payment request", CH(SIM_CHANNEL_WHATSAPP)},
    {"orderStatus", "order status", CH(SIM_CHANNEL_WHATSAPP)},
};

#define KIND_COUNT (sizeof(kinds) / sizeof(kinds[0]))
#define KIND_TEXT 0

/* E.164 numbers have at most 15 digits. */
#define E164_MAX_DIGITS 15

const char *sim_channel_name(int channel)
{
    if (channel < 0 || channel >= SIM_CHANNEL_COUNT)
        return "unknown";
    return channels[channel].name;
}

int sim_channel_lookup(const char *name, size_t len)
{
    for (int i = 0; i < SIM_CHANNEL_COUNT; i++) {
        if (strlen(channels[i].name) == len && memcmp(channels[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

const char *sim_channel_default_id(int channel)
{
    return channels[channel].default_id;
}

void sim_response_reset(struct sim_response *resp)
{
    free(resp->body);
    free(resp->message_id);
    memset(resp, 0, sizeof(*resp));
}

void sim_response_set_error(struct sim_response *resp, unsigned status,
                            const char *code, const char *fmt, ...)
{
    struct sim_buf body = {0};
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    sim_buf_append_str(&body, "{\"errorCode\":");
    sim_buf_append_json_string(&body, code, strlen(code));
    sim_buf_append_str(&body, ",\"errorMessage\":");
    sim_buf_append_json_string(&body, message, strlen(message));
    sim_buf_append_str(&body, "}");

    free(resp->body);
    free(resp->message_id);
    resp->message_id = NULL;
    resp->status = status;
    resp->body = body.data;
}

void sim_response_set_sent(struct sim_response *resp, unsigned status)
{
    char id[SIM_UUID_LEN + 1];
    struct sim_buf body = {0};

    sim_uuid_v4(id);
    sim_buf_printf(&body, "{\"messageId\":\"%s\",\"status\":\"sent\"}", id);

    free(resp->body);
    free(resp->message_id);
    resp->status = status;
    resp->body = body.data;
    resp->message_id = sim_xstrdup(id);
}

void sim_send_parse(struct sim_send *send)
{
    json_tokener *tok;
    json_object *root;
    json_object *field;
    size_t end;

    send->root = NULL;
    send->from = NULL;
    send->to = NULL;
    if (!send->body || send->body_len == 0 || send->body_len > INT32_MAX)
        return;

    tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, send->body, (int)send->body_len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(root);
        json_tokener_free(tok);
        return;
    }

    /* Only whitespace may follow the JSON value. */
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    for (; end < send->body_len; end++) {
        char c = send->body[end];

        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            json_object_put(root);
            return;
        }
    }

    send->root = root;
    if (!json_object_is_type(root, json_type_object))
        return;
    if (json_object_object_get_ex(root, "from", &field) &&
        json_object_is_type(field, json_type_string))
        send->from = json_object_get_string(field);
    if (json_object_object_get_ex(root, "to", &field) &&
        json_object_is_type(field, json_type_string))
        send->to = json_object_get_string(field);
}

void sim_send_release(struct sim_send *send)
{
    json_object_put(send->root);
    send->root = NULL;
    send->from = NULL;
    send->to = NULL;
}

bool sim_send_key_matches(const struct sim_send *send, const struct sim_config *config)
{
    return send->api_key && strcmp(send->api_key, config->api_key) == 0;
}

/* Accepts "application/json" in any letter case, with or without
 * parameters such as "; charset=utf-8". */
static bool content_type_is_json(const char *value)
{
    static const char media_type[] = "application/json";
    size_t len = sizeof(media_type) - 1;

    if (!value)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, media_type, len) != 0)
        return false;
    value += len;
    return *value == '\0' || *value == ';' || *value == ' ' || *value == '\t';
}

static bool is_digits(const char *s, size_t min, size_t max)
{
    size_t len = strlen(s);

    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* Checks `to` against the format the channel page documents; returns false
 * and sets a 400 in resp when it does not fit. */
static bool check_recipient(int channel, const char *to, struct sim_response *resp)
{
    switch (channel) {
    case SIM_CHANNEL_WHATSAPP:
        if (is_digits(to, 1, E164_MAX_DIGITS))
            return true;
        sim_response_set_error(resp, 400, "invalid_recipient",
                               "The field 'to' must be an E.164 number of at most "
                               "15 digits without '+' on the whatsapp channel.");
        return false;
    case SIM_CHANNEL_SMS:
        if (to[0] == '+' && is_digits(to + 1, 1, E164_MAX_DIGITS))
            return true;
        sim_response_set_error(resp, 400, "invalid_recipient",
                               "The field 'to' must be an E.164 number with a "
                               "leading '+' and at most 15 digits on the sms channel.");
        return false;
    default:
        if (to[0] != '\0')
            return true;
        sim_response_set_error(resp, 400, "invalid_recipient",
                               "The field 'to' must not be empty.");
        return false;
    }
}

static bool is_nonempty_string(json_object *obj)
{
    return obj && json_object_is_type(obj, json_type_string) &&
           json_object_get_string_len(obj) > 0;
}

/* Checks that `object.key` is a non-empty string, else sets a 400 in resp. */
static bool require_string(json_object *object, const char *path, const char *key,
                           struct sim_response *resp)
{
    json_object *value = NULL;

    json_object_object_get_ex(object, key, &value);
    if (is_nonempty_string(value))
        return true;
    sim_response_set_error(resp, 400, "invalid_content",
                           "The field '%s.%s' is missing or not a non-empty string.",
                           path, key);
    return false;
}

static bool check_payment_request(json_object *payment, struct sim_response *resp)
{
    static const struct {
        const char *method;
        const char *key;
    } methods[] = {
        {"pix", "pix"},
        {"boleto", "boleto"},
        {"payment_link", "paymentLink"},
    };
    const char *path = "content.paymentRequest";
    json_object *value = NULL;
    const char *method;

    if (!json_object_is_type(payment, json_type_object)) {
        sim_response_set_error(resp, 400, "invalid_content",
                               "The field '%s' must be an object.", path);
        return false;
    }
    if (!require_string(payment, path, "bodyText", resp) ||
        !require_string(payment, path, "referenceId", resp) ||
        !require_string(payment, path, "paymentMethod", resp))
        return false;

    json_object_object_get_ex(payment, "paymentMethod", &value);
    method = json_object_get_string(value);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        json_object *details = NULL;

        if (strcmp(method, methods[i].method) != 0)
            continue;
        json_object_object_get_ex(payment, methods[i].key, &details);
        if (details && json_object_is_type(details, json_type_object))
            return true;
        sim_response_set_error(resp, 400, "invalid_content",
                               "The field '%s.%s' must be an object when "
                               "paymentMethod is '%s'.",
                               path, methods[i].key, methods[i].method);
        return false;
    }
    sim_response_set_error(resp, 400, "invalid_content",
                           "The field '%s.paymentMethod' must be one of pix, "
                           "boleto or payment_link.", path);
    return false;
}

/* Checks the required fields of the documented kinds. Document, sticker,
 * location, contacts, reaction and order status get no field checks,
 * because their schema is not published. */
static bool check_kind_fields(size_t kind, json_object *content, int channel,
                              struct sim_response *resp)
{
    const char *key = kinds[kind].key;
    json_object *value = NULL;

    json_object_object_get_ex(content, key, &value);
    if (strcmp(key, "imageUrl") == 0 || strcmp(key, "videoUrl") == 0 ||
        strcmp(key, "audioUrl") == 0 || strcmp(key, "text") == 0)
        return require_string(content, "content", key, resp);

    if (strcmp(key, "template") == 0) {
        if (json_object_is_type(value, json_type_object))
            return require_string(value, "content.template", "id", resp);
        sim_response_set_error(resp, 400, "invalid_content",
                               "The field 'content.template' must be an object.");
        return false;
    }

    if (strcmp(key, "paymentRequest") == 0)
        return check_payment_request(value, resp);

    if (strcmp(key, "interactive") == 0 && json_object_is_type(value, json_type_object)) {
        json_object *type = NULL;

        /* The troubleshooting page names this type as WhatsApp only. */
        json_object_object_get_ex(value, "type", &type);
        if (channel != SIM_CHANNEL_WHATSAPP && type &&
            json_object_is_type(type, json_type_string) &&
            strcmp(json_object_get_string(type), "location_request_message") == 0) {
            sim_response_set_error(resp, 400, "unsupported_content",
                                   "The interactive type 'location_request_message' "
                                   "is available on the whatsapp channel only.");
            return false;
        }
    }
    return true;
}

/* Finds the message kind from the content keys and checks it against the
 * channel. `text` next to a media key is the caption, so a kind other than
 * text wins over text; two such kinds are rejected. */
static bool check_content(json_object *content, int channel, struct sim_response *resp)
{
    size_t kind = KIND_COUNT;
    json_object *text = NULL;

    if (json_object_object_length(content) == 0) {
        sim_response_set_error(resp, 400, "invalid_content", "The field 'content' is empty.");
        return false;
    }

    for (size_t i = KIND_TEXT + 1; i < KIND_COUNT; i++) {
        if (!json_object_object_get_ex(content, kinds[i].key, NULL))
            continue;
        if (kind != KIND_COUNT) {
            sim_response_set_error(resp, 400, "invalid_content",
                                   "The content holds both '%s' and '%s'; send one "
                                   "message kind per request.",
                                   kinds[kind].key, kinds[i].key);
            return false;
        }
        kind = i;
    }

    if (json_object_object_get_ex(content, "text", &text)) {
        if (kind == KIND_COUNT)
            kind = KIND_TEXT;
        else if (!json_object_is_type(text, json_type_string)) {
            sim_response_set_error(resp, 400, "invalid_content",
                                   "The field 'content.text' must be a string.");
            return false;
        }
    }

    /* Content with only unknown keys is accepted, because a newer API
     * version may define them. */
    if (kind == KIND_COUNT)
        return true;

    if (!(kinds[kind].channels & CH(channel))) {
        sim_response_set_error(resp, 400, "unsupported_content",
                               "The %s content kind is not available on the %s channel.",
                               kinds[kind].label, sim_channel_name(channel));
        return false;
    }
    return check_kind_fields(kind, content, channel, resp);
}

static bool from_is_accepted(const struct sim_config *config, int channel, const char *from)
{
    for (size_t i = 0; i < config->channel_id_count[channel]; i++) {
        if (strcmp(config->channel_ids[channel][i], from) == 0)
            return true;
    }
    return false;
}

void sim_send_validate(const struct sim_send *send, const struct sim_config *config,
                       struct sim_response *resp)
{
    json_object *content = NULL;

    if (!content_type_is_json(send->content_type)) {
        sim_response_set_error(resp, 400, "invalid_content_type",
                               "The Content-Type header must be application/json.");
        return;
    }
    if (!send->root || !json_object_is_type(send->root, json_type_object)) {
        sim_response_set_error(resp, 400, "invalid_body",
                               "The request body must be a JSON object.");
        return;
    }
    if (!send->from) {
        sim_response_set_error(resp, 400, "missing_field",
                               "The field 'from' is missing or not a string.");
        return;
    }
    if (!send->to) {
        sim_response_set_error(resp, 400, "missing_field",
                               "The field 'to' is missing or not a string.");
        return;
    }
    if (!json_object_object_get_ex(send->root, "content", &content) ||
        !json_object_is_type(content, json_type_object)) {
        sim_response_set_error(resp, 400, "missing_field",
                               "The field 'content' is missing or not an object.");
        return;
    }
    if (!from_is_accepted(config, send->channel, send->from)) {
        sim_response_set_error(resp, 404, "channel_not_found",
                               "The channel in 'from' does not exist on the %s route "
                               "or belongs to another application.",
                               sim_channel_name(send->channel));
        return;
    }
    if (!check_recipient(send->channel, send->to, resp))
        return;
    if (!check_content(content, send->channel, resp))
        return;
    sim_response_set_sent(resp, 200);
}
