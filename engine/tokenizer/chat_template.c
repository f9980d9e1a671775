#include "engine/tokenizer/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/jinja.h"

struct rf_chat_template {
    rf_jinja *main, *tool_use; /* tool_use: the list form's, used when tools are given */
    json_t *tokens;            /* special_tokens_map: the set ones, as strings */
    char origin[64];
};

/* The fallbacks for a tokenizer without a template, in Jinja. They write
 * what these families' published templates write for system/user/assistant
 * turns: Llama 3 trims content, Llama 2 wraps the system prompt into the
 * first user turn, Llama 2 and Mistral require alternating roles. */
static const struct {
    const char *name, *text;
} builtins[] = {
    {"chatml", "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
               "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
               "'<|im_start|>assistant\\n' }}{% endif %}"},
    {"llama3",
     "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
     "'<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if "
     "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% "
     "endif %}"},
    {"llama2",
     "{% if messages and messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] "
     "%}{% set turns = messages[1:] %}{% else %}{% set sys = none %}{% set turns = messages %}{% "
     "endif %}{% for m in turns %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') "
     "}}{% endif %}{% if m['role'] == 'user' %}{% if loop.first and sys is not none %}{% set c "
     "= '<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n' + m['content'] %}{% else %}{% set c = "
     "m['content'] %}{% endif %}{{ bos_token }}{{ '[INST] ' + c | trim + ' [/INST]' }}{% else %}{{ "
     "' ' + m['content'] | trim + ' ' }}{{ eos_token }}{% endif %}{% endfor %}"},
    {"mistral",
     "{% if messages and messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] "
     "%}{% set turns = messages[1:] %}{% else %}{% set sys = none %}{% set turns = messages %}{% "
     "endif %}{{ bos_token }}{% for m in turns %}{% if (m['role'] == 'user') != (loop.index0 % "
     "2 == 0) %}{{ raise_exception('Conversation roles must alternate "
     "user/assistant/user/assistant/...') }}{% endif %}{% if m['role'] == 'user' %}{{ '[INST] ' "
     "}}{% if loop.first and sys is not none %}{{ sys + '\\n\\n' }}{% endif %}{{ m['content'] + "
     "' [/INST]' }}{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"},
};

/* special_tokens_map: bos, eos, unk, sep, pad, cls, mask and
 * additional_special_tokens, each a string or {"content": …}; unset ones
 * are left out, so `bos_token is defined` is false for them. */
static json_t *special_tokens(const json_t *config)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
    json_t *m = json_object();
    if (!m || !config) return m;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(config, keys[i]);
        if (json_is_object(v)) v = json_object_get(v, "content");
        if (json_is_string(v) && json_string_length(v)) json_object_set(m, keys[i], v);
    }
    json_t *add = json_object_get(config, "additional_special_tokens"), *e;
    size_t i;
    if (json_is_array(add) && json_array_size(add)) {
        json_t *l = json_array();
        json_array_foreach(add, i, e)
        {
            json_t *v = json_is_object(e) ? json_object_get(e, "content") : e;
            if (json_is_string(v)) json_array_append(l, v);
        }
        json_object_set_new(m, "additional_special_tokens", l);
    }
    return m;
}

static int compile(const char *text, const char *what, rf_jinja **out, rf_error *err)
{
    int rc = rf_jinja_compile(text, strlen(text), out, err);
    if (rc) rf_error_wrap(err, "%s", what);
    return rc;
}

int rf_chat_template_load(const rf_tokenizer *tok, const char *spec, rf_chat_template **out,
                          rf_error *err)
{
    return rf_chat_template_from_config(tok ? rf_tokenizer_config(tok) : NULL, spec, out, err);
}

int rf_chat_template_from_config(const json_t *config, const char *spec, rf_chat_template **out,
                                 rf_error *err)
{
    const json_t *tpl = config ? json_object_get(config, "chat_template") : NULL;
    rf_chat_template *t = calloc(1, sizeof *t);
    int rc = 0;
    *out = NULL;
    if (!t || !(t->tokens = special_tokens(config))) {
        free(t);
        return rf_errorf(err, RF_ENOMEM, "out of memory loading the chat template");
    }
    const char *main = NULL, *tool = NULL;
    if (json_is_array(tpl)) {
        size_t i;
        json_t *e;
        const char *dflt = NULL, *named = NULL;
        json_array_foreach(tpl, i, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *text = json_string_value(json_object_get(e, "template"));
            if (!name || !text) continue;
            if (!strcmp(name, "default")) dflt = text;
            if (!strcmp(name, "tool_use")) tool = text;
            if (spec && !strcmp(name, spec)) named = text;
        }
        if (named) {
            main = named, tool = NULL;
            snprintf(t->origin, sizeof t->origin, "tokenizer_config.json (%.32s)", spec);
        } else if (!spec) {
            main = dflt;
            snprintf(t->origin, sizeof t->origin, "tokenizer_config.json");
            if (!dflt && !tool)
                rc = rf_errorf(err, RF_EUNSUPPORTED,
                               "tokenizer_config.json has several chat templates and none called "
                               "\"default\"; name one");
        }
    } else if (json_is_string(tpl) && !spec) {
        main = json_string_value(tpl);
        snprintf(t->origin, sizeof t->origin, "tokenizer_config.json");
    }
    if (!rc && !main && !tool && spec) {
        if (strstr(spec, "{{") || strstr(spec, "{%")) {
            main = spec;
            snprintf(t->origin, sizeof t->origin, "given");
        } else {
            for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
                if (!strcmp(spec, builtins[i].name)) {
                    main = builtins[i].text;
                    snprintf(t->origin, sizeof t->origin, "built-in %s", builtins[i].name);
                }
            if (!main)
                rc = rf_error_field(err, RF_EINVAL, "chat_template",
                                    "unknown chat template \"%.64s\": name one of the tokenizer's "
                                    "templates or a built-in (chatml, llama3, llama2, mistral), or "
                                    "give a template's text",
                                    spec);
        }
    }
    if (!rc && !main && !tool)
        rc = rf_errorf(err, RF_EUNSUPPORTED,
                       "tokenizer_config.json has no chat_template; name a built-in template "
                       "(chatml, llama3, llama2, mistral) or give one");
    if (!rc && main) rc = compile(main, "the chat template", &t->main, err);
    if (!rc && tool) rc = compile(tool, "the tool_use chat template", &t->tool_use, err);
    if (rc) {
        rf_chat_template_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

bool rf_chat_template_present(const rf_tokenizer *tok)
{
    const json_t *c = tok ? rf_tokenizer_config(tok) : NULL;
    const json_t *t = c ? json_object_get(c, "chat_template") : NULL;
    return json_is_string(t) || (json_is_array(t) && json_array_size(t) > 0);
}

void rf_chat_template_free(rf_chat_template *t)
{
    if (!t) return;
    rf_jinja_free(t->main);
    rf_jinja_free(t->tool_use);
    json_decref(t->tokens);
    free(t);
}

const char *rf_chat_template_origin(const rf_chat_template *t)
{
    return t->origin;
}

/* render(messages=…, tools=…, documents=…, add_generation_prompt=…,
 * **special_tokens, **kwargs), transformers' call. */
static int render(const rf_chat_template *t, const json_t *messages, const rf_chat_opts *o, int gen,
                  char **text, size_t *len, rf_error *err)
{
    const rf_jinja *tpl = o->tools && t->tool_use ? t->tool_use : t->main;
    if (!tpl)
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "tokenizer_config.json has a tool_use chat template but no \"default\" "
                         "one for a conversation without tools");
    json_t *vars = json_copy(t->tokens);
    if (!vars) return rf_errorf(err, RF_ENOMEM, "out of memory rendering a chat");
    if (o->kwargs) json_object_update(vars, (json_t *)o->kwargs);
    json_object_set(vars, "messages", (json_t *)messages);
    json_object_set_new(vars, "tools", o->tools ? json_incref((json_t *)o->tools) : json_null());
    json_object_set_new(vars, "documents",
                        o->documents ? json_incref((json_t *)o->documents) : json_null());
    json_object_set_new(vars, "add_generation_prompt", json_boolean(gen));
    rf_jinja_opts jo = {.now = o->now};
    int raised;
    int rc = rf_jinja_render(tpl, vars, &jo, text, len, &raised, err);
    json_decref(vars);
    return rc;
}

int rf_chat_render(const rf_chat_template *t, const json_t *messages, const rf_chat_opts *o,
                   char **text, size_t *len, rf_error *err)
{
    rf_chat_opts none = {0};
    if (!json_is_array(messages))
        return rf_error_field(err, RF_EINVAL, "messages", "messages must be an array");
    return render(t, messages, o ? o : &none, o ? o->add_generation_prompt : 0, text, len, err);
}

static json_t *head(const json_t *messages, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append(a, json_array_get(messages, i));
    return a;
}

static int starts(const char *s, size_t n, const char *p, size_t m)
{
    return m <= n && !memcmp(s, p, m);
}

static void unstable(rf_chat_out *out, size_t i, const char *why)
{
    out->stable = 0;
    if (!out->unstable++)
        snprintf(out->note, sizeof out->note,
                 "the chat template is not prefix-stable at message %zu: %s", i, why);
}

int rf_chat_render_spans(const rf_chat_template *t, const json_t *messages, const rf_chat_opts *o,
                         rf_chat_out *out, rf_error *err)
{
    rf_chat_opts none = {0};
    if (!o) o = &none;
    memset(out, 0, sizeof *out);
    out->stable = 1;
    int rc = rf_chat_render(t, messages, o, &out->text, &out->len, err);
    if (rc) return rc;
    char *z = NULL, *p = NULL, *f = NULL;
    size_t zn = 0, pn, fn;
    json_t *empty = json_array();
    rf_error ignored;
    if (!empty || render(t, empty, o, 0, &z, &zn, &ignored)) zn = 0;
    json_decref(empty);
    size_t n = json_array_size(messages);
    for (size_t i = 0; i < n && !rc; i++) {
        const char *role = json_string_value(json_object_get(json_array_get(messages, i), "role"));
        if (!role || strcmp(role, "assistant")) continue;
        json_t *hp = head(messages, i), *hf = head(messages, i + 1);
        int bad = !hp || !hf || render(t, hp, o, 1, &p, &pn, &ignored) ||
                  render(t, hf, o, 0, &f, &fn, &ignored);
        json_decref(hp), json_decref(hf);
        if (bad) {
            unstable(out, i,
                     "the conversation up to it does not render; its answer is not trained");
        } else {
            if (zn && fn >= zn && !memcmp(f + fn - zn, z, zn) && fn - zn >= pn) fn -= zn;
            size_t start = pn, end = start;
            if (!starts(out->text, out->len, p, pn)) {
                unstable(out, i,
                         "the prompt before it renders differently inside the whole "
                         "conversation; its answer is not trained");
            } else if (starts(f, fn, p, pn) && starts(out->text, out->len, f, fn)) {
                end = fn;
            } else {
                if (starts(f, fn, p, pn))
                    while (end < fn && end < out->len && f[end] == out->text[end])
                        end++;
                unstable(out, i,
                         "it renders differently once later messages follow; its answer is "
                         "trained only where both renderings agree");
            }
            if (end > start) {
                rf_chat_span *s = realloc(out->spans, (out->n_spans + 1) * sizeof *s);
                if (!s) {
                    rc = rf_errorf(err, RF_ENOMEM, "out of memory rendering a chat");
                } else {
                    out->spans = s;
                    s[out->n_spans++] = (rf_chat_span){start, end};
                }
            }
        }
        free(p), free(f);
        p = f = NULL;
    }
    free(z);
    if (rc) rf_chat_out_free(out);
    return rc;
}

void rf_chat_out_free(rf_chat_out *out)
{
    free(out->text);
    free(out->spans);
    memset(out, 0, sizeof *out);
}

json_t *rf_chat_messages(const rf_chat_msg *m, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("{s:s,s:s}", "role", m[i].role ? m[i].role : "",
                                               "content", m[i].content ? m[i].content : ""))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *rf_chat_prompt_response(const char *prompt, const char *response)
{
    return json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "user", "content", prompt ? prompt : "",
                     "role", "assistant", "content", response ? response : "");
}

void rf_chat_answer_mask(const rf_chat_out *chat, const rf_token_span *spans, size_t n,
                         unsigned char *mask)
{
    /* Both lists are in text order, so one pass over each suffices. */
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        while (a < chat->n_spans && chat->spans[a].end <= spans[i].start)
            a++;
        mask[i] = a < chat->n_spans && spans[i].end > chat->spans[a].start &&
                  spans[i].start < chat->spans[a].end;
    }
}

int rf_chat_fuzz(const char *tpl, size_t n, const char *ctx_json, size_t m, rf_error *err)
{
    rf_chat_template t = {0};
    json_t *ctx = ctx_json ? json_loadb(ctx_json, m, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *msgs = json_object_get(ctx, "messages");
    int rc = rf_jinja_compile(tpl, n, &t.main, err);
    if (!rc) {
        t.tokens = json_is_object(ctx) ? json_incref(ctx) : json_object();
        rf_chat_opts o = {.add_generation_prompt = 1, .tools = json_object_get(ctx, "tools")};
        rf_chat_out out;
        json_t *m2 = json_is_array(msgs) ? json_incref(msgs) : json_array();
        rc = rf_chat_render_spans(&t, m2, &o, &out, err);
        if (!rc) rf_chat_out_free(&out);
        json_decref(m2);
        json_decref(t.tokens);
    }
    rf_jinja_free(t.main);
    json_decref(ctx);
    return rc;
}
