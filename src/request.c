/* Send request parsing. The strict scanner in json_scan.c first validates
 * the whole record value. The envelope fields are then read from the byte
 * spans it reports, and the content kind is detected from the keys of
 * "content". The HTTP body wraps the original bytes of "content". Error
 * messages name fields and rules but never quote a value, because values
 * are phone numbers and message texts. */
#include "request.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_scan.h"
#include "util.h"

#define ID_MAX_LENGTH 128
#define ADDRESS_MAX_BYTES 256

/* Used when the caller passes no limits. */
static const struct request_limits default_limits = {
    .max_bytes = 1024 * 1024,
    .max_depth = 64,
};

static const char *const channel_names[REQUEST_CHANNEL_COUNT] = {
    [REQUEST_CHANNEL_WHATSAPP] = "whatsapp",
    [REQUEST_CHANNEL_INSTAGRAM] = "instagram",
    [REQUEST_CHANNEL_MESSENGER] = "messenger",
    [REQUEST_CHANNEL_TELEGRAM] = "telegram",
    [REQUEST_CHANNEL_SMS] = "sms",
    [REQUEST_CHANNEL_WEB_CHATT] = "web-chatt2me",
};

static const char *const kind_names[REQUEST_KIND_COUNT] = {
    [REQUEST_KIND_TEXT] = "text",
    [REQUEST_KIND_IMAGE] = "image",
    [REQUEST_KIND_VIDEO] = "video",
    [REQUEST_KIND_AUDIO] = "audio",
    [REQUEST_KIND_DOCUMENT] = "document",
    [REQUEST_KIND_STICKER] = "sticker",
    [REQUEST_KIND_LOCATION] = "location",
    [REQUEST_KIND_CONTACTS] = "contacts",
    [REQUEST_KIND_INTERACTIVE] = "interactive",
    [REQUEST_KIND_TEMPLATE] = "template",
    [REQUEST_KIND_REACTION] = "reaction",
    [REQUEST_KIND_PAYMENT_REQUEST] = "payment_request",
    [REQUEST_KIND_ORDER_STATUS] = "order_status",
    [REQUEST_KIND_UNKNOWN] = "unknown",
};

/* The kinds each channel supports, from the availability table of the
 * Chatt2.me "Content Types" page (docs.chatt2.me, version 1.0). The API
 * responds with 400 to a kind its channel does not support, so such a
 * request is rejected here without a call. Reply and mark-as-seen are in that
 * table too, but their content keys are not documented, so they are never
 * detected and arrive here as REQUEST_KIND_UNKNOWN. */
static const bool kind_available[REQUEST_KIND_COUNT][REQUEST_CHANNEL_COUNT] = {
    /*                                 WA IG MS TG SMS WEB */
    [REQUEST_KIND_TEXT]            = { 1, 1, 1, 1, 1, 1 },
    [REQUEST_KIND_IMAGE]           = { 1, 1, 1, 1, 1, 1 },
    [REQUEST_KIND_VIDEO]           = { 1, 1, 1, 1, 0, 1 },
    [REQUEST_KIND_AUDIO]           = { 1, 1, 1, 1, 0, 1 },
    [REQUEST_KIND_DOCUMENT]        = { 1, 0, 0, 1, 0, 1 },
    [REQUEST_KIND_STICKER]         = { 1, 1, 0, 1, 0, 1 },
    [REQUEST_KIND_LOCATION]        = { 1, 0, 0, 1, 0, 1 },
    [REQUEST_KIND_CONTACTS]        = { 1, 0, 0, 1, 0, 1 },
    [REQUEST_KIND_INTERACTIVE]     = { 1, 1, 1, 1, 0, 1 },
    [REQUEST_KIND_TEMPLATE]        = { 1, 0, 0, 0, 0, 0 },
    [REQUEST_KIND_REACTION]        = { 1, 1, 1, 1, 0, 1 },
    [REQUEST_KIND_PAYMENT_REQUEST] = { 1, 0, 0, 0, 0, 0 },
    [REQUEST_KIND_ORDER_STATUS]    = { 1, 0, 0, 0, 0, 0 },
    [REQUEST_KIND_UNKNOWN]         = { 1, 1, 1, 1, 1, 1 },
};

/* A key of "content" that selects the kind, and the JSON type its value
 * must have. "text" is not here because it is also an image or video
 * caption, so it selects the text kind only when no key below is present. */
struct content_key {
    const char *name;
    enum request_kind kind;
    enum json_scan_type type;
};

static const struct content_key content_keys[] = {
    { "imageUrl", REQUEST_KIND_IMAGE, JSON_SCAN_TYPE_STRING },
    { "videoUrl", REQUEST_KIND_VIDEO, JSON_SCAN_TYPE_STRING },
    { "audioUrl", REQUEST_KIND_AUDIO, JSON_SCAN_TYPE_STRING },
    { "documentUrl", REQUEST_KIND_DOCUMENT, JSON_SCAN_TYPE_STRING },
    { "stickerUrl", REQUEST_KIND_STICKER, JSON_SCAN_TYPE_STRING },
    { "location", REQUEST_KIND_LOCATION, JSON_SCAN_TYPE_OBJECT },
    { "contacts", REQUEST_KIND_CONTACTS, JSON_SCAN_TYPE_ARRAY },
    { "interactive", REQUEST_KIND_INTERACTIVE, JSON_SCAN_TYPE_OBJECT },
    { "template", REQUEST_KIND_TEMPLATE, JSON_SCAN_TYPE_OBJECT },
    { "reaction", REQUEST_KIND_REACTION, JSON_SCAN_TYPE_OBJECT },
    { "paymentRequest", REQUEST_KIND_PAYMENT_REQUEST, JSON_SCAN_TYPE_OBJECT },
    { "orderStatus", REQUEST_KIND_ORDER_STATUS, JSON_SCAN_TYPE_OBJECT },
};

#define CONTENT_KEY_COUNT (sizeof(content_keys) / sizeof(content_keys[0]))

/* A payment method and the key of the object that must come with it. */
struct payment_method {
    const char *name;
    const char *object_key;
};

static const struct payment_method payment_methods[] = {
    { "pix", "pix" },
    { "boleto", "boleto" },
    { "payment_link", "paymentLink" },
};

#define PAYMENT_METHOD_COUNT \
    (sizeof(payment_methods) / sizeof(payment_methods[0]))

/* A scanned object or array. The spans in scan are offsets into bytes.
 * The path names the container in error messages, such as
 * "content.template", and is empty for the record value itself. */
struct container {
    const char *bytes;
    struct json_scan_result scan;
    char path[96];
};

static bool reject(struct request *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error of a request and returns false, so checks can
 * end with `return reject(...)`. Later errors are dropped because the
 * first one is the one to fix first. */
static bool reject(struct request *req, const char *code, const char *fmt, ...)
{
    va_list args;

    if (req->error_code != NULL)
        return false;
    req->error_code = code;
    va_start(args, fmt);
    vsnprintf(req->error_message, sizeof(req->error_message), fmt, args);
    va_end(args);
    return false;
}

static const char *type_phrase(enum json_scan_type type)
{
    switch (type) {
    case JSON_SCAN_TYPE_NULL: return "null";
    case JSON_SCAN_TYPE_BOOLEAN: return "a boolean";
    case JSON_SCAN_TYPE_NUMBER: return "a number";
    case JSON_SCAN_TYPE_STRING: return "a string";
    case JSON_SCAN_TYPE_ARRAY: return "an array";
    case JSON_SCAN_TYPE_OBJECT: return "a JSON object";
    }
    return "a JSON value";
}

static const char *field_path(const struct container *parent, const char *name,
                              char *buf, size_t size)
{
    if (parent->path[0] == '\0')
        return util_snprintf(buf, size, "%s", name);
    return util_snprintf(buf, size, "%s.%s", parent->path, name);
}

/* Scans the value of member, which lies inside parent, so that its own
 * members can be read. The value was already validated with the whole
 * record, so a failure here is reported as invalid JSON defensively. */
static bool container_open(struct request *req, const struct container *parent,
                           const struct json_scan_member *member,
                           const char *path, struct container *child)
{
    enum json_scan_status status;
    char errstr[160];

    child->bytes = parent->bytes + member->value.offset;
    util_snprintf(child->path, sizeof(child->path), "%s", path);
    status = json_scan_document(child->bytes, member->value.length,
                                INT32_MAX, &child->scan, errstr,
                                sizeof(errstr));
    if (status != JSON_SCAN_OK)
        return reject(req, "invalid_json", "Field \"%s\" could not be read: %s",
                      path, errstr);
    return true;
}

static void container_close(struct container *container)
{
    json_scan_result_clear(&container->scan);
}

static char *member_decode(const struct container *container,
                           const struct json_scan_member *member,
                           size_t *length)
{
    return json_scan_string_decode(container->bytes + member->value.offset,
                                   member->value.length, length);
}

/* Returns the member called name when it exists with the given type.
 * Otherwise rejects the request and returns NULL. */
static const struct json_scan_member *
require_member(struct request *req, const struct container *container,
               const char *name, enum json_scan_type type)
{
    const struct json_scan_member *member;
    char path[128];

    field_path(container, name, path, sizeof(path));
    member = json_scan_result_find(&container->scan, name);
    if (member == NULL) {
        reject(req, "missing_field", "Field \"%s\" is missing.", path);
        return NULL;
    }
    if (member->type != type) {
        reject(req, "invalid_field", "Field \"%s\" must be %s.", path,
               type_phrase(type));
        return NULL;
    }
    return member;
}

/* Stores the member called name in *out, or NULL when it is absent.
 * Returns false, after rejecting the request, when it has another type. */
static bool optional_member(struct request *req,
                            const struct container *container,
                            const char *name, enum json_scan_type type,
                            const struct json_scan_member **out)
{
    char path[128];

    *out = json_scan_result_find(&container->scan, name);
    if (*out == NULL || (*out)->type == type)
        return true;
    return reject(req, "invalid_field", "Field \"%s\" must be %s.",
                  field_path(container, name, path, sizeof(path)),
                  type_phrase(type));
}

static bool require_nonempty_string(struct request *req,
                                    const struct container *container,
                                    const char *name)
{
    const struct json_scan_member *member;
    char path[128];

    member = require_member(req, container, name, JSON_SCAN_TYPE_STRING);
    if (member == NULL)
        return false;
    /* A token longer than its two quotes decodes to at least one byte. */
    if (member->value.length > 2)
        return true;
    return reject(req, "invalid_field", "Field \"%s\" must not be empty.",
                  field_path(container, name, path, sizeof(path)));
}

/* ---- Envelope: id, channel, from, to, metadata ---- */

static void read_metadata(struct request *req, const struct container *root)
{
    const struct json_scan_member *member;

    member = json_scan_result_find(&root->scan, "metadata");
    if (member == NULL)
        return;
    req->metadata_json = xstrndup(root->bytes + member->value.offset,
                                  member->value.length);
    req->metadata_len = member->value.length;
}

/* The id goes into Kafka headers, an HTTP header and logs, so it is kept
 * to printable ASCII of a bounded length. */
static void read_id(struct request *req, const struct container *root)
{
    const struct json_scan_member *member;
    char *id;
    size_t length;

    member = require_member(req, root, "id", JSON_SCAN_TYPE_STRING);
    if (member == NULL)
        return;
    id = member_decode(root, member, &length);
    if (length == 0 || length > ID_MAX_LENGTH) {
        reject(req, "invalid_field",
               "Field \"id\" must be 1 to %d characters long.", ID_MAX_LENGTH);
        free(id);
        return;
    }
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)id[i];

        if (c < 0x20 || c > 0x7E) {
            reject(req, "invalid_field",
                   "Field \"id\" must contain only printable ASCII "
                   "characters (0x20 to 0x7E).");
            free(id);
            return;
        }
    }
    req->id = id;
}

static void read_channel(struct request *req, const struct container *root)
{
    const struct json_scan_member *member;
    char *name;
    size_t length;

    member = require_member(req, root, "channel", JSON_SCAN_TYPE_STRING);
    if (member == NULL)
        return;
    name = member_decode(root, member, &length);
    for (int channel = 0; channel < REQUEST_CHANNEL_COUNT; channel++) {
        if (length == strlen(channel_names[channel]) &&
            memcmp(name, channel_names[channel], length) == 0)
            req->channel = (enum request_channel)channel;
    }
    free(name);
    if (req->channel == REQUEST_CHANNEL_NONE)
        reject(req, "unknown_channel",
               "Field \"channel\" must be one of whatsapp, instagram, "
               "messenger, telegram, sms, web-chatt2me.");
}

/* Decodes the UTF-8 sequence at s, which the scanner already validated. */
static uint32_t decode_code_point(const unsigned char *s)
{
    if (s[0] < 0x80)
        return s[0];
    if (s[0] < 0xE0)
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (s[0] < 0xF0)
        return ((uint32_t)(s[0] & 0x0F) << 12) |
               ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* The code points with the Unicode White_Space property (Unicode 14.0). */
static bool is_whitespace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

static bool has_outer_whitespace(const char *value, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)value;
    size_t last = length - 1;

    while (last > 0 && (bytes[last] & 0xC0) == 0x80)
        last--;
    return is_whitespace(decode_code_point(bytes)) ||
           is_whitespace(decode_code_point(bytes + last));
}

/* Applies the rules shared by "from" and "to" to the decoded value. */
static bool check_address(struct request *req, const char *name,
                          const char *value, size_t length)
{
    if (length == 0)
        return reject(req, "invalid_field", "Field \"%s\" must not be empty.",
                      name);
    if (length > ADDRESS_MAX_BYTES)
        return reject(req, "invalid_field",
                      "Field \"%s\" must be at most %d bytes long.", name,
                      ADDRESS_MAX_BYTES);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c < 0x20 || c == 0x7F)
            return reject(req, "invalid_field",
                          "Field \"%s\" must not contain control characters.",
                          name);
    }
    if (has_outer_whitespace(value, length))
        return reject(req, "invalid_field",
                      "Field \"%s\" must not start or end with whitespace.",
                      name);
    return true;
}

/* Reads "from" or "to" into *out, which stays NULL when it is invalid. */
static bool read_address(struct request *req, const struct container *root,
                         const char *name, char **out)
{
    const struct json_scan_member *member;
    char *value;
    size_t length;

    member = require_member(req, root, name, JSON_SCAN_TYPE_STRING);
    if (member == NULL)
        return false;
    value = member_decode(root, member, &length);
    if (!check_address(req, name, value, length)) {
        free(value);
        return false;
    }
    *out = value;
    return true;
}

static bool is_digits(const char *s, size_t min_count, size_t max_count)
{
    size_t count = strspn(s, "0123456789");

    return s[count] == '\0' && count >= min_count && count <= max_count;
}

/* E.164 numbers have at most 15 digits. The minimum of 7 digits is this
 * worker's own guard against truncated numbers. */
static bool check_to_format(struct request *req)
{
    const char *to = req->to;

    if (req->channel == REQUEST_CHANNEL_WHATSAPP && !is_digits(to, 7, 15))
        return reject(req, "invalid_field",
                      "Field \"to\" must be E.164 digits without a leading "
                      "\"+\" (7 to 15 digits) on channel whatsapp.");
    if (req->channel == REQUEST_CHANNEL_SMS &&
        (to[0] != '+' || to[1] == '0' || !is_digits(to + 1, 7, 15)))
        return reject(req, "invalid_field",
                      "Field \"to\" must be E.164 with a leading \"+\" "
                      "(7 to 15 digits, the first not 0) on channel sms.");
    return true;
}

/* Checks the 8-4-4-4-12 hex form of a UUID, in either letter case. */
static bool is_uuid(const char *s)
{
    static const size_t group_lengths[] = { 8, 4, 4, 4, 12 };

    for (size_t group = 0; group < 5; group++) {
        size_t length = strspn(s, "0123456789abcdefABCDEF");

        if (length != group_lengths[group])
            return false;
        s += length;
        if (group < 4 && *s++ != '-')
            return false;
    }
    return *s == '\0';
}

/* Web Chatt accepts only the channel UUID as "from", while the other
 * channels also accept an alternate such as a phone number or username. */
static bool check_from_format(struct request *req)
{
    if (req->channel == REQUEST_CHANNEL_WEB_CHATT && !is_uuid(req->from))
        return reject(req, "invalid_field",
                      "Field \"from\" must be the channel UUID "
                      "(8-4-4-4-12 hex digits) on channel web-chatt2me.");
    return true;
}

/* ---- Content: kind detection and the fields of documented kinds ---- */

static const struct content_key *find_content_key(const char *name,
                                                   size_t length)
{
    for (size_t i = 0; i < CONTENT_KEY_COUNT; i++) {
        if (strlen(content_keys[i].name) == length &&
            memcmp(content_keys[i].name, name, length) == 0)
            return &content_keys[i];
    }
    return NULL;
}

static const struct content_key *content_key_of_kind(enum request_kind kind)
{
    for (size_t i = 0; i < CONTENT_KEY_COUNT; i++) {
        if (content_keys[i].kind == kind)
            return &content_keys[i];
    }
    return NULL;
}

/* Sets req->kind from the keys of content. Content without any known key
 * is valid as REQUEST_KIND_UNKNOWN and goes out unchanged, because
 * Chatt2.me adds message kinds faster than this worker is released. */
static bool detect_kind(struct request *req, const struct container *content)
{
    const struct content_key *found = NULL;

    for (size_t i = 0; i < content->scan.member_count; i++) {
        const struct json_scan_member *member = &content->scan.members[i];
        const struct content_key *key;

        key = find_content_key(member->name, member->name_length);
        if (key == NULL)
            continue;
        if (found != NULL)
            return reject(req, "ambiguous_content",
                          "Field \"content\" has both \"%s\" and \"%s\", but "
                          "a request must carry exactly one message kind.",
                          found->name, key->name);
        found = key;
    }
    if (found != NULL)
        req->kind = found->kind;
    else if (json_scan_result_find(&content->scan, "text") != NULL)
        req->kind = REQUEST_KIND_TEXT;
    else
        req->kind = REQUEST_KIND_UNKNOWN;
    return true;
}

static bool check_kind_available(struct request *req)
{
    if (kind_available[req->kind][req->channel])
        return true;
    return reject(req, "kind_not_available",
                  "Content of kind %s is not available on channel %s.",
                  kind_names[req->kind], channel_names[req->channel]);
}

/* Media URLs must be absolute http(s) URLs, because Chatt2.me downloads
 * them. The scheme is compared without case, because RFC 3986 section 3.1
 * makes schemes case-insensitive. */
static bool check_media_url(struct request *req,
                            const struct container *content,
                            const char *name)
{
    const struct json_scan_member *member;
    char *url;
    size_t length, scheme_length = 0;
    char path[128];

    member = json_scan_result_find(&content->scan, name);
    url = member_decode(content, member, &length);
    if (strncasecmp(url, "https://", 8) == 0)
        scheme_length = 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        scheme_length = 7;
    free(url);
    if (scheme_length > 0 && length > scheme_length)
        return true;
    return reject(req, "invalid_field",
                  "Field \"%s\" must be a URL starting with http:// or "
                  "https://.", field_path(content, name, path, sizeof(path)));
}

static bool check_caption(struct request *req, const struct container *content)
{
    const struct json_scan_member *caption;

    return optional_member(req, content, "text", JSON_SCAN_TYPE_STRING,
                           &caption);
}

/* Chatt2.me documents "voice" (send as a voice note) for WhatsApp only. */
static bool check_voice(struct request *req, const struct container *content)
{
    const struct json_scan_member *voice;

    if (!optional_member(req, content, "voice", JSON_SCAN_TYPE_BOOLEAN, &voice))
        return false;
    if (voice == NULL || req->channel == REQUEST_CHANNEL_WHATSAPP)
        return true;
    return reject(req, "invalid_field",
                  "Field \"content.voice\" is only allowed on channel "
                  "whatsapp.");
}

static bool check_template(struct request *req, const struct container *content)
{
    const struct json_scan_member *member, *components;
    struct container template = { 0 };
    bool ok;

    member = json_scan_result_find(&content->scan, "template");
    if (!container_open(req, content, member, "content.template", &template))
        return false;
    ok = require_nonempty_string(req, &template, "id") &&
         optional_member(req, &template, "components", JSON_SCAN_TYPE_ARRAY,
                         &components);
    container_close(&template);
    return ok;
}

/* Amounts are counted in cents, so they must be whole, non-negative and
 * fit in int64. Absent amounts pass, because the API documentation does
 * not say which of them are required. */
static bool check_amount(struct request *req, const struct container *container,
                         const char *name)
{
    const struct json_scan_member *member;
    int64_t value;
    char path[128];

    member = json_scan_result_find(&container->scan, name);
    if (member == NULL)
        return true;
    if (member->type == JSON_SCAN_TYPE_NUMBER &&
        json_scan_number_to_int64(container->bytes + member->value.offset,
                                  member->value.length, &value) &&
        value >= 0)
        return true;
    return reject(req, "invalid_field",
                  "Field \"%s\" must be a non-negative integer that fits in "
                  "64 bits.", field_path(container, name, path, sizeof(path)));
}

static bool check_item(struct request *req, const struct container *items,
                       size_t index)
{
    const struct json_scan_member *member = &items->scan.members[index];
    struct container item = { 0 };
    char path[128];
    bool ok;

    util_snprintf(path, sizeof(path), "%s[%zu]", items->path, index);
    if (member->type != JSON_SCAN_TYPE_OBJECT)
        return reject(req, "invalid_field", "Field \"%s\" must be %s.", path,
                      type_phrase(JSON_SCAN_TYPE_OBJECT));
    if (!container_open(req, items, member, path, &item))
        return false;
    ok = check_amount(req, &item, "amountCents") &&
         check_amount(req, &item, "quantity");
    container_close(&item);
    return ok;
}

static bool check_items(struct request *req, const struct container *payment)
{
    const struct json_scan_member *member;
    struct container items = { 0 };
    bool ok = true;

    if (!optional_member(req, payment, "items", JSON_SCAN_TYPE_ARRAY, &member))
        return false;
    if (member == NULL)
        return true;
    if (!container_open(req, payment, member, "content.paymentRequest.items",
                        &items))
        return false;
    for (size_t i = 0; ok && i < items.scan.member_count; i++)
        ok = check_item(req, &items, i);
    container_close(&items);
    return ok;
}

/* "tax" appears in the payment link example as valueCents, offset and a
 * description, so its amounts follow the same rule as the others. */
static bool check_tax(struct request *req, const struct container *payment)
{
    const struct json_scan_member *member;
    struct container tax = { 0 };
    bool ok;

    if (!optional_member(req, payment, "tax", JSON_SCAN_TYPE_OBJECT, &member))
        return false;
    if (member == NULL)
        return true;
    if (!container_open(req, payment, member, "content.paymentRequest.tax",
                        &tax))
        return false;
    ok = check_amount(req, &tax, "valueCents") &&
         check_amount(req, &tax, "offset");
    container_close(&tax);
    return ok;
}

/* Requires paymentMethod to be a known method and the object that
 * carries that method's details (for example "pix") to be present. */
static bool check_payment_method(struct request *req,
                                 const struct container *payment)
{
    const struct json_scan_member *member;
    const struct payment_method *method = NULL;
    char *name;
    size_t length;

    member = require_member(req, payment, "paymentMethod",
                            JSON_SCAN_TYPE_STRING);
    if (member == NULL)
        return false;
    name = member_decode(payment, member, &length);
    for (size_t i = 0; i < PAYMENT_METHOD_COUNT; i++) {
        if (length == strlen(payment_methods[i].name) &&
            memcmp(name, payment_methods[i].name, length) == 0)
            method = &payment_methods[i];
    }
    free(name);
    if (method == NULL)
        return reject(req, "invalid_field",
                      "Field \"content.paymentRequest.paymentMethod\" must be "
                      "one of pix, boleto, payment_link.");
    return require_member(req, payment, method->object_key,
                          JSON_SCAN_TYPE_OBJECT) != NULL;
}

static bool check_payment_request(struct request *req,
                                  const struct container *content)
{
    const struct json_scan_member *member;
    struct container payment = { 0 };
    bool ok;

    member = json_scan_result_find(&content->scan, "paymentRequest");
    if (!container_open(req, content, member, "content.paymentRequest",
                        &payment))
        return false;
    ok = require_nonempty_string(req, &payment, "bodyText") &&
         require_nonempty_string(req, &payment, "referenceId") &&
         check_payment_method(req, &payment) &&
         check_amount(req, &payment, "totalAmountCents") &&
         check_amount(req, &payment, "subtotalCents") &&
         check_amount(req, &payment, "offset") &&
         check_items(req, &payment) &&
         check_tax(req, &payment);
    container_close(&payment);
    return ok;
}

static bool check_content_fields(struct request *req,
                                 const struct container *content)
{
    const struct content_key *key = content_key_of_kind(req->kind);

    if (key != NULL &&
        require_member(req, content, key->name, key->type) == NULL)
        return false;
    switch (req->kind) {
    case REQUEST_KIND_TEXT:
        return require_nonempty_string(req, content, "text");
    case REQUEST_KIND_IMAGE:
    case REQUEST_KIND_VIDEO:
        return check_media_url(req, content, key->name) &&
               check_caption(req, content);
    case REQUEST_KIND_AUDIO:
        return check_media_url(req, content, key->name) &&
               check_voice(req, content);
    case REQUEST_KIND_TEMPLATE:
        return check_template(req, content);
    case REQUEST_KIND_PAYMENT_REQUEST:
        return check_payment_request(req, content);
    default:
        /* Chatt2.me does not publish the fields of document, sticker,
         * location, contacts, interactive, reaction and order status
         * content, so only the JSON type of their key is checked above.
         * Unknown content is not checked at all. */
        return true;
    }
}

/* Validates "content" and stores the member in *out for the body. */
static bool read_content(struct request *req, const struct container *root,
                         const struct json_scan_member **out)
{
    const struct json_scan_member *member;
    struct container content = { 0 };
    bool ok;

    member = require_member(req, root, "content", JSON_SCAN_TYPE_OBJECT);
    if (member == NULL)
        return false;
    if (!container_open(req, root, member, "content", &content))
        return false;
    ok = detect_kind(req, &content) && check_kind_available(req) &&
         check_content_fields(req, &content);
    container_close(&content);
    *out = member;
    return ok;
}

/* ---- HTTP body ---- */

/* Writes s as a JSON string. Control characters cannot reach here after
 * check_address(), but they are escaped anyway, so the output is valid
 * JSON whatever s holds. */
static char *write_json_string(char *cursor, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    *cursor++ = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            *cursor++ = '\\';
            *cursor++ = (char)c;
        } else if (c < 0x20) {
            memcpy(cursor, "\\u00", 4);
            cursor[4] = hex[c >> 4];
            cursor[5] = hex[c & 0x0F];
            cursor += 6;
        } else {
            *cursor++ = (char)c;
        }
    }
    *cursor++ = '"';
    return cursor;
}

static char *write_text(char *cursor, const char *text, size_t length)
{
    memcpy(cursor, text, length);
    return cursor + length;
}

/* Builds {"from":...,"to":...,"content":...} with the record's own bytes
 * of content, so its numbers, escapes and key order reach the API as the
 * producer wrote them. */
static void build_body(struct request *req, const char *content, size_t length)
{
    /* The fixed text plus the worst case of 6 bytes (\u00XX) per byte of
     * from and to. */
    size_t capacity = sizeof("{\"from\":\"\",\"to\":\"\",\"content\":}") +
                      6 * (strlen(req->from) + strlen(req->to)) + length;
    char *body = xmalloc(capacity);
    char *cursor = body;

    cursor = write_text(cursor, "{\"from\":", 8);
    cursor = write_json_string(cursor, req->from);
    cursor = write_text(cursor, ",\"to\":", 6);
    cursor = write_json_string(cursor, req->to);
    cursor = write_text(cursor, ",\"content\":", 11);
    cursor = write_text(cursor, content, length);
    cursor = write_text(cursor, "}", 2);
    req->body = body;
    req->body_len = (size_t)(cursor - body) - 1;
}

/* ---- Entry points ---- */

static bool check_input(struct request *req, const void *data, size_t len,
                        const struct request_limits *limits)
{
    if (data == NULL)
        return reject(req, "empty",
                      "The record value is null (a Kafka tombstone), so it "
                      "carries no send request.");
    if (len == 0)
        return reject(req, "empty", "The record value is empty.");
    if (len > limits->max_bytes)
        return reject(req, "too_large",
                      "The record value is %zu bytes long, more than the "
                      "limit of %zu bytes.", len, limits->max_bytes);
    return true;
}

static const char *scan_error_code(enum json_scan_status status)
{
    switch (status) {
    case JSON_SCAN_INVALID_UTF8: return "invalid_utf8";
    case JSON_SCAN_TOO_DEEP: return "too_deep";
    case JSON_SCAN_DUPLICATE_KEY: return "duplicate_key";
    default: return "invalid_json";
    }
}

/* Reads the fields of the record's root object. Metadata, id and channel
 * are read even when one of them is invalid, so a rejected result can
 * still carry them. */
static void read_request(struct request *req, const struct container *root)
{
    const struct json_scan_member *content = NULL;

    read_metadata(req, root);
    read_id(req, root);
    read_channel(req, root);
    if (req->error_code != NULL)
        return;
    if (!read_address(req, root, "from", &req->from) ||
        !read_address(req, root, "to", &req->to) ||
        !check_from_format(req) || !check_to_format(req) ||
        !read_content(req, root, &content))
        return;
    build_body(req, root->bytes + content->value.offset, content->value.length);
}

/* On rejection, only id, channel and metadata stay. From, to and the body
 * are personal data that a rejected result does not need. */
static void finish(struct request *req)
{
    req->valid = req->error_code == NULL;
    if (req->valid)
        return;
    free(req->from);
    free(req->to);
    free(req->body);
    req->from = NULL;
    req->to = NULL;
    req->body = NULL;
    req->body_len = 0;
}

struct request *request_parse(const void *data, size_t len,
                              const struct request_limits *limits)
{
    struct request *req = xcalloc(1, sizeof(*req));
    struct container root = { .bytes = data };
    enum json_scan_status status;
    char errstr[200];

    req->channel = REQUEST_CHANNEL_NONE;
    req->kind = REQUEST_KIND_UNKNOWN;
    if (limits == NULL)
        limits = &default_limits;
    if (!check_input(req, data, len, limits))
        goto out;
    status = json_scan_document(data, len, limits->max_depth, &root.scan,
                                errstr, sizeof(errstr));
    if (status != JSON_SCAN_OK) {
        reject(req, scan_error_code(status), "%s", errstr);
        goto out;
    }
    if (root.scan.type != JSON_SCAN_TYPE_OBJECT) {
        reject(req, "not_object", "The record value must be a JSON object, "
               "but it is %s.", type_phrase(root.scan.type));
        goto out;
    }
    read_request(req, &root);

out:
    json_scan_result_clear(&root.scan);
    finish(req);
    return req;
}

void request_free(struct request *req)
{
    if (req == NULL)
        return;
    free(req->id);
    free(req->from);
    free(req->to);
    free(req->body);
    free(req->metadata_json);
    free(req);
}

const char *request_channel_name(enum request_channel channel)
{
    if (channel < 0 || channel >= REQUEST_CHANNEL_COUNT)
        return "unknown";
    return channel_names[channel];
}

const char *request_kind_name(enum request_kind kind)
{
    if ((int)kind < 0 || kind >= REQUEST_KIND_COUNT)
        return "unknown";
    return kind_names[kind];
}
