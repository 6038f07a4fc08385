/* The control API under /_sim/: scripted rules, the fault mode, the
 * request log and the counters. Tests drive it with plain HTTP; it needs
 * no API key and serves loopback clients only (checked by the caller). */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rule may script at most this many responses. */
#define MAX_RULE_RESPONSES 10000

static void reply_json(struct sim_reply *reply, unsigned status, const char *json)
{
    reply->status = status;
    reply->content_type = "application/json";
    sim_buf_reset(&reply->body);
    sim_buf_append_str(&reply->body, json);
}

static void reply_error(struct sim_reply *reply, unsigned status, const char *code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply_error(struct sim_reply *reply, unsigned status, const char *code,
                        const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    reply->status = status;
    reply->content_type = "application/json";
    sim_buf_reset(&reply->body);
    sim_buf_append_str(&reply->body, "{\"errorCode\":");
    sim_buf_append_json_string(&reply->body, code, strlen(code));
    sim_buf_append_str(&reply->body, ",\"errorMessage\":");
    sim_buf_append_json_string(&reply->body, message, strlen(message));
    sim_buf_append_str(&reply->body, "}");
}

static json_object *parse_object(const char *body, size_t body_len, struct sim_reply *reply)
{
    json_tokener *tok = json_tokener_new();
    json_object *root = NULL;

    if (body_len > 0 && body_len <= SIM_MAX_BODY)
        root = json_tokener_parse_ex(tok, body, (int)body_len);
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        root = NULL;
        reply_error(reply, 400, "invalid_body", "The body must be a JSON object.");
    }
    json_tokener_free(tok);
    return root;
}

/* Returns whether every key of obj is in allowed (NULL-terminated), so that
 * a misspelt field is reported instead of silently ignored. */
static bool keys_allowed(json_object *obj, const char *const *allowed, const char *where,
                         struct sim_reply *reply)
{
    json_object_object_foreach(obj, key, value) {
        bool found = false;

        (void)value;
        for (size_t i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            reply_error(reply, 400, "invalid_rule", "Unknown field '%s' in %s.", key, where);
            return false;
        }
    }
    return true;
}

static bool get_bool(json_object *obj, const char *key, bool *out, const char *where,
                     struct sim_reply *reply)
{
    json_object *value;

    *out = false;
    if (!json_object_object_get_ex(obj, key, &value) || !value)
        return true;
    if (!json_object_is_type(value, json_type_boolean)) {
        reply_error(reply, 400, "invalid_rule", "The field '%s' in %s must be a boolean.",
                    key, where);
        return false;
    }
    *out = json_object_get_boolean(value);
    return true;
}

static bool get_uint(json_object *obj, const char *key, int64_t max, unsigned *out,
                     const char *where, struct sim_reply *reply)
{
    json_object *value;
    int64_t number;

    *out = 0;
    if (!json_object_object_get_ex(obj, key, &value) || !value)
        return true;
    number = json_object_get_int64(value);
    if (!json_object_is_type(value, json_type_int) || number < 0 || number > max) {
        reply_error(reply, 400, "invalid_rule",
                    "The field '%s' in %s must be an integer from 0 to %lld.", key, where,
                    (long long)max);
        return false;
    }
    *out = (unsigned)number;
    return true;
}

static bool parse_retry_after(json_object *value, struct sim_fault *fault, const char *where,
                              struct sim_reply *reply)
{
    const char *text;
    char number[32];

    if (json_object_is_type(value, json_type_int) && json_object_get_int64(value) >= 0) {
        snprintf(number, sizeof(number), "%lld", (long long)json_object_get_int64(value));
        text = number;
    } else if (json_object_is_type(value, json_type_string)) {
        text = json_object_get_string(value);
    } else {
        text = NULL;
    }

    if (text && text[0] != '\0' && strlen(text) <= SIM_RETRY_AFTER_MAX) {
        bool printable = true;

        for (const char *p = text; *p; p++)
            printable = printable && *p >= 0x20 && *p <= 0x7e;
        if (printable) {
            fault->retry_after = sim_xstrdup(text);
            return true;
        }
    }
    reply_error(reply, 400, "invalid_rule",
                "The field 'retry_after' in %s must be a non-negative integer or a "
                "string of 1 to %d printable ASCII characters.",
                where, SIM_RETRY_AFTER_MAX);
    return false;
}

/* Parses one scripted response. Returns false and fills reply on error;
 * fault is then released by the caller. */
static bool parse_fault(json_object *obj, const char *const *allowed, const char *where,
                        struct sim_fault *fault, struct sim_reply *reply)
{
    json_object *value;

    if (!json_object_is_type(obj, json_type_object)) {
        reply_error(reply, 400, "invalid_rule", "%s must be an object.", where);
        return false;
    }
    if (!keys_allowed(obj, allowed, where, reply) ||
        !get_uint(obj, "status", 599, &fault->status, where, reply) ||
        !get_uint(obj, "delay_ms", SIM_MAX_DELAY_MS, &fault->delay_ms, where, reply) ||
        !get_bool(obj, "drop", &fault->drop, where, reply))
        return false;

    if (fault->status != 0 && fault->status < 200) {
        reply_error(reply, 400, "invalid_rule",
                    "The field 'status' in %s must be 0 or from 200 to 599.", where);
        return false;
    }
    if (fault->drop && fault->status != 0) {
        reply_error(reply, 400, "invalid_rule",
                    "%s sets both drop and a status; a dropped connection has no status.",
                    where);
        return false;
    }

    if (json_object_object_get_ex(obj, "retry_after", &value) && value &&
        !parse_retry_after(value, fault, where, reply))
        return false;

    if (json_object_object_get_ex(obj, "body", &value) && value) {
        json_object *parsed;
        json_object *message_id;

        if (!json_object_is_type(value, json_type_string)) {
            reply_error(reply, 400, "invalid_rule",
                        "The field 'body' in %s must be a string holding the raw body.",
                        where);
            return false;
        }
        fault->body = sim_xstrdup(json_object_get_string(value));
        parsed = json_tokener_parse(fault->body);
        if (parsed && json_object_object_get_ex(parsed, "messageId", &message_id) &&
            json_object_is_type(message_id, json_type_string))
            fault->body_message_id = sim_xstrdup(json_object_get_string(message_id));
        json_object_put(parsed);
    }

    if (fault->status == 0 && (fault->retry_after || fault->body)) {
        reply_error(reply, 400, "invalid_rule",
                    "%s sets retry_after or body without a status.", where);
        return false;
    }
    return true;
}

static void post_rule(struct sim *sim, json_object *root, struct sim_reply *reply)
{
    static const char *const rule_keys[] = {"to", "channel", "responses", "repeat",
                                            "before_auth", NULL};
    static const char *const response_keys[] = {"status", "retry_after", "delay_ms",
                                                "drop", "body", NULL};
    struct sim_rule rule = {.channel = -1};
    json_object *value;
    json_object *responses;
    size_t count;
    char text[64];

    if (!keys_allowed(root, rule_keys, "the rule", reply))
        goto out;

    if (json_object_object_get_ex(root, "to", &value) && value) {
        if (!json_object_is_type(value, json_type_string)) {
            reply_error(reply, 400, "invalid_rule", "The field 'to' must be a string.");
            goto out;
        }
        rule.to = sim_xstrdup(json_object_get_string(value));
    }
    if (json_object_object_get_ex(root, "channel", &value) && value) {
        const char *name = json_object_get_string(value);

        if (json_object_is_type(value, json_type_string))
            rule.channel = sim_channel_lookup(name, strlen(name));
        if (rule.channel < 0) {
            reply_error(reply, 400, "invalid_rule",
                        "The field 'channel' must be one of whatsapp, instagram, "
                        "messenger, telegram, sms or web-chatt2me.");
            goto out;
        }
    }
    if (!get_bool(root, "repeat", &rule.repeat, "the rule", reply) ||
        !get_bool(root, "before_auth", &rule.before_auth, "the rule", reply))
        goto out;

    if (!json_object_object_get_ex(root, "responses", &responses) ||
        !json_object_is_type(responses, json_type_array) ||
        json_object_array_length(responses) == 0 ||
        json_object_array_length(responses) > MAX_RULE_RESPONSES) {
        reply_error(reply, 400, "invalid_rule",
                    "The field 'responses' must be an array of 1 to %d objects.",
                    MAX_RULE_RESPONSES);
        goto out;
    }
    count = json_object_array_length(responses);
    rule.responses = sim_xcalloc(count, sizeof(*rule.responses));
    rule.response_count = count;
    for (size_t i = 0; i < count; i++) {
        char where[48];

        snprintf(where, sizeof(where), "responses[%zu]", i);
        if (!parse_fault(json_object_array_get_idx(responses, i), response_keys, where,
                         &rule.responses[i], reply))
            goto out;
    }

    snprintf(text, sizeof(text), "{\"id\":%u}", sim_state_add_rule(sim->state, &rule));
    reply_json(reply, 200, text);

out:
    for (size_t i = 0; i < rule.response_count; i++)
        sim_fault_release(&rule.responses[i]);
    free(rule.responses);
    free(rule.to);
}

static void post_mode(struct sim *sim, json_object *root, struct sim_reply *reply)
{
    static const char *const mode_keys[] = {"status", "retry_after", "delay_ms", "drop",
                                            "body", "before_auth", NULL};
    struct sim_fault fault = {0};
    bool before_auth;
    bool active;

    if (!parse_fault(root, mode_keys, "the mode", &fault, reply) ||
        !get_bool(root, "before_auth", &before_auth, "the mode", reply)) {
        sim_fault_release(&fault);
        return;
    }
    active = fault.status != 0 || fault.drop || fault.delay_ms != 0;
    sim_state_set_mode(sim->state, &fault, before_auth);
    reply_json(reply, 200, active ? "{\"mode\":\"set\"}" : "{\"mode\":\"cleared\"}");
}

static void handle_with_body(struct sim *sim, const char *body, size_t body_len,
                             void (*handler)(struct sim *, json_object *, struct sim_reply *),
                             struct sim_reply *reply)
{
    json_object *root = parse_object(body, body_len, reply);

    if (!root)
        return;
    handler(sim, root, reply);
    json_object_put(root);
}

static void method_not_allowed(struct sim_reply *reply, const char *allow)
{
    reply_error(reply, 405, "method_not_allowed", "Allowed methods: %s.", allow);
    reply->allow = allow;
}

void sim_control_handle(struct sim *sim, const char *method, const char *url,
                        const char *body, size_t body_len, struct sim_reply *reply)
{
    bool get = strcmp(method, "GET") == 0;
    bool post = strcmp(method, "POST") == 0;
    bool delete = strcmp(method, "DELETE") == 0;

    reply->allow = NULL;
    if (strcmp(url, "/_sim/rules") == 0) {
        if (post) {
            handle_with_body(sim, body, body_len, post_rule, reply);
        } else if (get) {
            reply_json(reply, 200, "");
            sim_state_render_faults(sim->state, &reply->body);
        } else if (delete) {
            sim_state_clear_faults(sim->state);
            reply_json(reply, 200, "{\"status\":\"ok\"}");
        } else {
            method_not_allowed(reply, "GET, POST, DELETE");
        }
    } else if (strcmp(url, "/_sim/mode") == 0) {
        if (post) {
            handle_with_body(sim, body, body_len, post_mode, reply);
        } else if (delete) {
            struct sim_fault none = {0};

            sim_state_set_mode(sim->state, &none, false);
            reply_json(reply, 200, "{\"mode\":\"cleared\"}");
        } else {
            method_not_allowed(reply, "POST, DELETE");
        }
    } else if (strcmp(url, "/_sim/log") == 0) {
        if (get) {
            reply_json(reply, 200, "");
            reply->content_type = "application/x-ndjson";
            sim_state_copy_log(sim->state, &reply->body);
        } else if (delete) {
            sim_state_clear_log(sim->state);
            reply_json(reply, 200, "{\"status\":\"ok\"}");
        } else {
            method_not_allowed(reply, "GET, DELETE");
        }
    } else if (strcmp(url, "/_sim/stats") == 0) {
        if (get) {
            reply_json(reply, 200, "");
            sim_state_render_stats(sim->state, sim_timer_pending(sim->timer), &reply->body);
        } else if (delete) {
            sim_state_clear_stats(sim->state);
            reply_json(reply, 200, "{\"status\":\"ok\"}");
        } else {
            method_not_allowed(reply, "GET, DELETE");
        }
    } else if (strcmp(url, "/_sim/health") == 0) {
        if (get)
            reply_json(reply, 200, "{\"status\":\"ok\"}");
        else
            method_not_allowed(reply, "GET");
    } else {
        reply_error(reply, 404, "not_found", "No control route at this path.");
    }
}
