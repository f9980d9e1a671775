#include "engine/core/dataset.h"

#include <stdbool.h>
#include <string.h>

const char *rf_dataset_schema_name(rf_dataset_schema s)
{
    return s == RF_SCHEMA_MESSAGES          ? "messages"
           : s == RF_SCHEMA_PROMPT_RESPONSE ? "prompt_response"
                                            : "none";
}

const char *rf_split_name(rf_split s)
{
    static const char *const names[] = {"train", "validation", "test"};
    return s < RF_SPLIT_COUNT ? names[s] : "?";
}

static int check_messages(const json_t *m, rf_error *err)
{
    if (!json_is_array(m) || json_array_size(m) == 0)
        return rf_error_field(err, RF_EINVAL, "messages", "'messages' must be a non-empty array");
    size_t i;
    json_t *msg;
    json_array_foreach(m, i, msg)
    {
        char field[64];
        if (!json_is_object(msg)) {
            snprintf(field, sizeof field, "messages[%zu]", i);
            return rf_error_field(err, RF_EINVAL, field, "each message must be an object");
        }
        json_t *role = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
        const char *r = json_string_value(role);
        if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))) {
            snprintf(field, sizeof field, "messages[%zu].role", i);
            return rf_error_field(err, RF_EINVAL, field,
                                  "'role' must be \"system\", \"user\" or \"assistant\"");
        }
        if (!json_is_string(content)) {
            snprintf(field, sizeof field, "messages[%zu].content", i);
            return rf_error_field(err, RF_EINVAL, field, "'content' must be a string");
        }
    }
    return 0;
}

int rf_dataset_check(const json_t *line, rf_dataset_stats *st, rf_error *err)
{
    if (!json_is_object(line))
        return rf_error_field(err, RF_EINVAL, "", "each line must be a JSON object");
    json_t *prompt = json_object_get(line, "prompt"), *response = json_object_get(line, "response");
    json_t *messages = json_object_get(line, "messages");
    rf_dataset_schema schema;
    if (messages) {
        if (prompt || response)
            return rf_error_field(
                err, RF_EINVAL, prompt ? "prompt" : "response",
                "a line has either 'messages' or 'prompt' and 'response', not both");
        int rc = check_messages(messages, err);
        if (rc) return rc;
        schema = RF_SCHEMA_MESSAGES;
    } else if (prompt || response) {
        if (!json_is_string(prompt))
            return rf_error_field(err, RF_EINVAL, "prompt", "'prompt' must be a string");
        /* A multiple-choice line may leave 'response' out: its choices are the answers. */
        if (!response && !json_object_get(line, "choices"))
            return rf_error_field(err, RF_EINVAL, "response", "'response' is required");
        if (response && !json_is_string(response))
            return rf_error_field(err, RF_EINVAL, "response", "'response' must be a string");
        schema = RF_SCHEMA_PROMPT_RESPONSE;
    } else {
        return rf_error_field(err, RF_EINVAL, "prompt",
                              "a line needs 'prompt' and 'response', or 'messages'");
    }
    if (st->schema != RF_SCHEMA_NONE && st->schema != schema)
        return rf_error_field(err, RF_EINVAL, schema == RF_SCHEMA_MESSAGES ? "messages" : "prompt",
                              "this line is in the %s form but the dataset began in the %s form",
                              rf_dataset_schema_name(schema), rf_dataset_schema_name(st->schema));

    json_t *choices = json_object_get(line, "choices"), *answer = json_object_get(line, "answer");
    if (choices || answer) {
        if (!json_is_array(choices) || json_array_size(choices) < 2)
            return rf_error_field(err, RF_EINVAL, "choices",
                                  "'choices' must be an array of at least 2 strings");
        size_t i;
        json_t *c;
        json_array_foreach(choices, i, c)
        {
            if (!json_is_string(c)) {
                char field[32];
                snprintf(field, sizeof field, "choices[%zu]", i);
                return rf_error_field(err, RF_EINVAL, field, "each choice must be a string");
            }
        }
        if (!json_is_integer(answer) || json_integer_value(answer) < 0 ||
            (size_t)json_integer_value(answer) >= json_array_size(choices))
            return rf_error_field(err, RF_EINVAL, "answer",
                                  "'answer' must be the index of the right choice (0 to %zu)",
                                  json_array_size(choices) - 1);
    }
    rf_split split = RF_SPLIT_TRAIN;
    json_t *sp = json_object_get(line, "split");
    if (sp) {
        const char *s = json_string_value(sp);
        if (s && !strcmp(s, "train"))
            split = RF_SPLIT_TRAIN;
        else if (s && !strcmp(s, "validation"))
            split = RF_SPLIT_VALIDATION;
        else if (s && !strcmp(s, "test"))
            split = RF_SPLIT_TEST;
        else
            return rf_error_field(err, RF_EINVAL, "split",
                                  "'split' must be \"train\", \"validation\" or \"test\"");
    }
    bool has_answer = json_is_string(response);
    size_t mi;
    json_t *msg;
    json_array_foreach(messages, mi, msg)
    {
        const char *r = json_string_value(json_object_get(msg, "role"));
        has_answer |= r && !strcmp(r, "assistant");
    }
    st->schema = schema;
    st->rows[split]++;
    if (has_answer) st->answers[split]++;
    if (choices) st->multiple_choice++;
    return 0;
}
