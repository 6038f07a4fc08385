/* State shared by all connections: scripted rules, the fault mode,
 * counters and the request log. One mutex guards it all. The work done
 * under it is small, except for copying a request body into the log. */
#include "sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* by_status counts statuses 0 (dropped) to 599. */
#define STATUS_SLOTS 600

struct rule_entry {
    unsigned id;
    struct sim_rule rule;
    size_t next;           /* index of the response the next match takes */
    unsigned long matched; /* requests that consumed a response */
};

struct sim_state {
    pthread_mutex_t lock;

    struct rule_entry *rules;
    size_t rule_count;
    size_t rule_cap;
    unsigned last_rule_id;

    bool mode_active;
    bool mode_before_auth;
    struct sim_fault mode;

    uint64_t seq;
    uint64_t received;
    uint64_t accepted;
    uint64_t by_status[STATUS_SLOTS];

    struct sim_buf log;
    size_t log_limit;
    uint64_t log_lines_over_limit;
    struct sim_buf line; /* scratch for the line being built */
    FILE *log_file;
    char *log_path;
    bool log_file_failed;
};

void sim_fault_release(struct sim_fault *fault)
{
    free(fault->retry_after);
    free(fault->body);
    free(fault->body_message_id);
    memset(fault, 0, sizeof(*fault));
}

static void rule_release(struct sim_rule *rule)
{
    for (size_t i = 0; i < rule->response_count; i++)
        sim_fault_release(&rule->responses[i]);
    free(rule->responses);
    free(rule->to);
    memset(rule, 0, sizeof(*rule));
}

struct sim_state *sim_state_new(const char *log_path, size_t log_memory_limit,
                                char *errstr, size_t errstr_size)
{
    struct sim_state *state = sim_xcalloc(1, sizeof(*state));

    pthread_mutex_init(&state->lock, NULL);
    state->log_limit = log_memory_limit;
    if (log_path) {
        state->log_file = fopen(log_path, "w");
        if (!state->log_file) {
            snprintf(errstr, errstr_size, "cannot open the log file %s: %s",
                     log_path, strerror(errno));
            sim_state_destroy(state);
            return NULL;
        }
        state->log_path = sim_xstrdup(log_path);
    }
    return state;
}

void sim_state_destroy(struct sim_state *state)
{
    if (!state)
        return;
    for (size_t i = 0; i < state->rule_count; i++)
        rule_release(&state->rules[i].rule);
    free(state->rules);
    sim_fault_release(&state->mode);
    sim_buf_free(&state->log);
    sim_buf_free(&state->line);
    if (state->log_file)
        fclose(state->log_file);
    free(state->log_path);
    pthread_mutex_destroy(&state->lock);
    free(state);
}

/* Returns the response the request consumes, or NULL. Lock held. */
static const struct sim_fault *pick_fault(struct sim_state *state,
                                          const struct sim_send_record *record)
{
    if (!record->faults_apply)
        return NULL;

    for (size_t i = 0; i < state->rule_count; i++) {
        struct rule_entry *entry = &state->rules[i];
        struct sim_rule *rule = &entry->rule;

        if (rule->to && (!record->to || strcmp(rule->to, record->to) != 0))
            continue;
        if (rule->channel >= 0 && rule->channel != record->channel)
            continue;
        if (!record->key_matched && !rule->before_auth)
            continue;
        if (entry->next >= rule->response_count) {
            if (!rule->repeat)
                continue;
            entry->next = 0;
        }
        entry->matched++;
        return &rule->responses[entry->next++];
    }

    if (state->mode_active && (record->key_matched || state->mode_before_auth))
        return &state->mode;
    return NULL;
}

static void apply_fault(const struct sim_fault *fault, struct sim_response *resp)
{
    resp->delay_ms = fault->delay_ms;
    if (fault->drop) {
        unsigned delay_ms = resp->delay_ms;

        sim_response_reset(resp);
        resp->delay_ms = delay_ms;
        return;
    }
    if (fault->status == 0)
        return; /* a delay only, so the normal response is kept */

    if (fault->body) {
        free(resp->body);
        free(resp->message_id);
        resp->status = fault->status;
        resp->body = sim_xstrdup(fault->body);
        resp->message_id =
            fault->body_message_id ? sim_xstrdup(fault->body_message_id) : NULL;
    } else if (fault->status >= 200 && fault->status < 300) {
        sim_response_set_sent(resp, fault->status);
    } else {
        sim_response_set_error(resp, fault->status, "simulated_fault",
                               "Simulated HTTP %u response.", fault->status);
    }
    snprintf(resp->retry_after, sizeof(resp->retry_after), "%s",
             fault->retry_after ? fault->retry_after : "");
}

static void append_string_field(struct sim_buf *line, const char *name, const char *value)
{
    sim_buf_printf(line, ",\"%s\":", name);
    sim_buf_append_json_string(line, value, value ? strlen(value) : 0);
}

static void write_log_line(struct sim_state *state, const struct sim_send_record *record,
                           const struct sim_response *resp, bool accepted)
{
    struct sim_buf *line = &state->line;

    sim_buf_reset(line);
    sim_buf_printf(line, "{\"seq\":%llu,\"time_ms\":%lld",
                   (unsigned long long)state->seq, (long long)record->time_ms);
    append_string_field(line, "channel", record->channel_name);
    append_string_field(line, "from", record->from);
    append_string_field(line, "to", record->to);
    append_string_field(line, "idempotency_key", record->idempotency_key);
    append_string_field(line, "user_agent", record->user_agent);
    sim_buf_printf(line, ",\"status\":%u,\"accepted\":%s", resp->status,
                   accepted ? "true" : "false");
    append_string_field(line, "message_id", accepted ? resp->message_id : NULL);
    sim_buf_append_str(line, ",\"body\":");
    sim_buf_append(line, record->body_json->data, record->body_json->len);
    if (record->body_base64) {
        sim_buf_append_str(line, ",\"body_base64\":\"");
        sim_buf_append(line, record->body_base64->data, record->body_base64->len);
        sim_buf_append_str(line, "\"");
    }
    sim_buf_append_str(line, "}\n");

    if (state->log.len + line->len <= state->log_limit)
        sim_buf_append(&state->log, line->data, line->len);
    else
        state->log_lines_over_limit++;

    if (state->log_file && !state->log_file_failed) {
        if (fwrite(line->data, 1, line->len, state->log_file) != line->len ||
            fflush(state->log_file) != 0) {
            fprintf(stderr, "chatt2me-sim: writing the log file %s failed: %s; "
                            "the file is no longer written\n",
                    state->log_path, strerror(errno));
            state->log_file_failed = true;
        }
    }
}

void sim_state_settle_send(struct sim_state *state, const struct sim_send_record *record,
                           struct sim_response *resp)
{
    const struct sim_fault *fault;
    bool accepted;

    pthread_mutex_lock(&state->lock);
    fault = pick_fault(state, record);
    if (fault)
        apply_fault(fault, resp);

    accepted = resp->status >= 200 && resp->status < 300 && resp->message_id;
    state->seq++;
    state->received++;
    if (accepted)
        state->accepted++;
    if (resp->status < STATUS_SLOTS)
        state->by_status[resp->status]++;
    write_log_line(state, record, resp, accepted);
    pthread_mutex_unlock(&state->lock);
}

unsigned sim_state_add_rule(struct sim_state *state, struct sim_rule *rule)
{
    unsigned id;

    pthread_mutex_lock(&state->lock);
    if (state->rule_count == state->rule_cap) {
        state->rule_cap = state->rule_cap ? state->rule_cap * 2 : 16;
        state->rules = sim_xrealloc(state->rules, state->rule_cap * sizeof(*state->rules));
    }
    id = ++state->last_rule_id;
    state->rules[state->rule_count++] = (struct rule_entry){.id = id, .rule = *rule};
    pthread_mutex_unlock(&state->lock);

    memset(rule, 0, sizeof(*rule));
    return id;
}

void sim_state_set_mode(struct sim_state *state, struct sim_fault *fault, bool before_auth)
{
    bool active = fault->status != 0 || fault->drop || fault->delay_ms != 0;

    pthread_mutex_lock(&state->lock);
    sim_fault_release(&state->mode);
    if (active) {
        state->mode = *fault;
        memset(fault, 0, sizeof(*fault));
    }
    state->mode_active = active;
    state->mode_before_auth = before_auth;
    pthread_mutex_unlock(&state->lock);

    sim_fault_release(fault);
}

void sim_state_clear_faults(struct sim_state *state)
{
    pthread_mutex_lock(&state->lock);
    for (size_t i = 0; i < state->rule_count; i++)
        rule_release(&state->rules[i].rule);
    state->rule_count = 0;
    sim_fault_release(&state->mode);
    state->mode_active = false;
    state->mode_before_auth = false;
    pthread_mutex_unlock(&state->lock);
}

static void render_fault(struct sim_buf *out, const struct sim_fault *fault)
{
    sim_buf_printf(out, "{\"status\":%u,\"drop\":%s,\"delay_ms\":%u,\"retry_after\":",
                   fault->status, fault->drop ? "true" : "false", fault->delay_ms);
    sim_buf_append_json_string(out, fault->retry_after,
                               fault->retry_after ? strlen(fault->retry_after) : 0);
    sim_buf_append_str(out, ",\"body\":");
    sim_buf_append_json_string(out, fault->body, fault->body ? strlen(fault->body) : 0);
    sim_buf_append_str(out, "}");
}

void sim_state_render_faults(struct sim_state *state, struct sim_buf *out)
{
    pthread_mutex_lock(&state->lock);
    sim_buf_append_str(out, "{\"rules\":[");
    for (size_t i = 0; i < state->rule_count; i++) {
        const struct rule_entry *entry = &state->rules[i];
        const struct sim_rule *rule = &entry->rule;

        sim_buf_printf(out, "%s{\"id\":%u,\"to\":", i ? "," : "", entry->id);
        sim_buf_append_json_string(out, rule->to, rule->to ? strlen(rule->to) : 0);
        sim_buf_append_str(out, ",\"channel\":");
        if (rule->channel >= 0)
            sim_buf_printf(out, "\"%s\"", sim_channel_name(rule->channel));
        else
            sim_buf_append_str(out, "null");
        sim_buf_printf(out, ",\"before_auth\":%s,\"repeat\":%s,\"next\":%zu,"
                            "\"matched\":%lu,\"responses\":[",
                       rule->before_auth ? "true" : "false",
                       rule->repeat ? "true" : "false", entry->next, entry->matched);
        for (size_t k = 0; k < rule->response_count; k++) {
            if (k)
                sim_buf_append_str(out, ",");
            render_fault(out, &rule->responses[k]);
        }
        sim_buf_append_str(out, "]}");
    }
    sim_buf_append_str(out, "],\"mode\":");
    if (state->mode_active) {
        render_fault(out, &state->mode);
        /* Add before_auth inside the object rendered above. */
        out->len--;
        sim_buf_printf(out, ",\"before_auth\":%s}",
                       state->mode_before_auth ? "true" : "false");
    } else {
        sim_buf_append_str(out, "null");
    }
    sim_buf_append_str(out, "}");
    pthread_mutex_unlock(&state->lock);
}

void sim_state_copy_log(struct sim_state *state, struct sim_buf *out)
{
    pthread_mutex_lock(&state->lock);
    sim_buf_append(out, state->log.data ? state->log.data : "", state->log.len);
    pthread_mutex_unlock(&state->lock);
}

void sim_state_clear_log(struct sim_state *state)
{
    pthread_mutex_lock(&state->lock);
    sim_buf_free(&state->log);
    state->log_lines_over_limit = 0;
    if (state->log_file && !state->log_file_failed) {
        fflush(state->log_file);
        if (ftruncate(fileno(state->log_file), 0) != 0)
            fprintf(stderr, "chatt2me-sim: truncating the log file %s failed: %s\n",
                    state->log_path, strerror(errno));
        rewind(state->log_file);
    }
    pthread_mutex_unlock(&state->lock);
}

void sim_state_render_stats(struct sim_state *state, size_t pending, struct sim_buf *out)
{
    bool first = true;

    pthread_mutex_lock(&state->lock);
    sim_buf_printf(out, "{\"received\":%llu,\"accepted\":%llu,\"by_status\":{",
                   (unsigned long long)state->received,
                   (unsigned long long)state->accepted);
    for (size_t status = 0; status < STATUS_SLOTS; status++) {
        if (!state->by_status[status])
            continue;
        sim_buf_printf(out, "%s\"%zu\":%llu", first ? "" : ",", status,
                       (unsigned long long)state->by_status[status]);
        first = false;
    }
    sim_buf_printf(out, "},\"pending_delayed\":%zu,\"log_bytes\":%zu,"
                        "\"log_lines_over_limit\":%llu}",
                   pending, state->log.len,
                   (unsigned long long)state->log_lines_over_limit);
    pthread_mutex_unlock(&state->lock);
}

void sim_state_clear_stats(struct sim_state *state)
{
    pthread_mutex_lock(&state->lock);
    state->received = 0;
    state->accepted = 0;
    memset(state->by_status, 0, sizeof(state->by_status));
    pthread_mutex_unlock(&state->lock);
}
