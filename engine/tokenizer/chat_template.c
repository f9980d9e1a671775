#include "engine/tokenizer/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer_text.h"

static const struct {
    const char *name;
    rf_chat_family f;
} families[] = {
    {"llama3", RF_CHAT_LLAMA3}, {"llama3.1", RF_CHAT_LLAMA31}, {"llama2", RF_CHAT_LLAMA2},
    {"chatml", RF_CHAT_CHATML}, {"qwen", RF_CHAT_CHATML},      {"mistral", RF_CHAT_MISTRAL},
};

int rf_chat_family_parse(const char *name, rf_chat_family *out, rf_error *err)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(name, families[i].name)) {
            *out = families[i].f;
            return 0;
        }
    return rf_error_field(
        err, RF_EINVAL, "template",
        "unknown chat template family \"%s\" (llama3, llama3.1, llama2, chatml, mistral)", name);
}

const char *rf_chat_family_name(rf_chat_family f)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i].f == f) return families[i].name;
    return "?";
}

int rf_chat_family_detect(const rf_tokenizer *tok, rf_chat_family *out, rf_error *err)
{
    const char *t = rf_tokenizer_chat_template(tok);
    if (!t)
        return rf_errorf(
            err, RF_EUNSUPPORTED,
            "tokenizer_config.json has no chat_template; name the template family explicitly");
    /* Markers each family's official template writes and no other does. */
    if (strstr(t, "<|start_header_id|>"))
        *out = strstr(t, "Cutting Knowledge Date") ? RF_CHAT_LLAMA31 : RF_CHAT_LLAMA3;
    else if (strstr(t, "<|im_start|>"))
        *out = RF_CHAT_CHATML;
    else if (strstr(t, "[INST]") && strstr(t, "<<SYS>>"))
        *out = RF_CHAT_LLAMA2;
    else if (strstr(t, "[INST]"))
        *out = RF_CHAT_MISTRAL;
    else
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "the chat_template is not one this engine recognises (no Llama 3, Llama "
                         "2, ChatML or Mistral "
                         "markers); name the template family explicitly");
    return 0;
}

void rf_chat_out_free(rf_chat_out *out)
{
    free(out->text);
    free(out->spans);
    memset(out, 0, sizeof *out);
}

typedef struct fmt {
    rf_strbuf b;
    rf_chat_span *spans;
    size_t n_spans;
    int oom;
} fmt;

static void put(fmt *f, const char *s)
{
    f->oom |= rf_strbuf_add(&f->b, s, strlen(s)) != 0;
}
static void putn(fmt *f, const char *s, size_t n)
{
    f->oom |= rf_strbuf_add(&f->b, s, n) != 0;
}

/* Jinja's trim / Python's strip(): leading (when left) and trailing whitespace. */
static void put_stripped(fmt *f, const char *s, int left)
{
    const char *e = s + strlen(s);
    size_t l;
    while (left && s < e && (l = rf_text_space_at(s, e)))
        s += l;
    while (e > s) {
        const char *p = e - 1;
        while (p > s && ((unsigned char)*p & 0xC0) == 0x80)
            p--;
        if (!rf_text_space_at(p, e)) break;
        e = p;
    }
    putn(f, s, (size_t)(e - s));
}

static void put_trimmed(fmt *f, const char *s)
{
    put_stripped(f, s, 1);
}

static void span_open(fmt *f, size_t *start)
{
    *start = f->b.n;
}

static void span_close(fmt *f, size_t start)
{
    rf_chat_span *p = realloc(f->spans, (f->n_spans + 1) * sizeof *p);
    if (!p) {
        f->oom = 1;
        return;
    }
    f->spans = p;
    p[f->n_spans++] = (rf_chat_span){start, f->b.n};
}

/* Qwen's template writes a default system turn when none is given; take
 * its text from the template itself rather than hard-coding one model's. */
static char *chatml_default_system(const char *tpl)
{
    static const char open[] = "<|im_start|>system\\n";
    const char *p = tpl ? strstr(tpl, open) : NULL;
    while (p) {
        const char *s = p + sizeof open - 1, *e = strstr(s, "<|im_end|>");
        if (e && !memchr(s, '{', (size_t)(e - s)) && !memchr(s, '\'', (size_t)(e - s)))
            return strndup(s, (size_t)(e - s));
        p = strstr(s, open);
    }
    return NULL;
}

static int check_roles(const rf_chat_msg *m, size_t n, int alternate, rf_error *err)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content)
            return rf_error_field(err, RF_EINVAL, "messages",
                                  "message %zu needs a role and a content", i);
        int sys = !strcmp(m[i].role, "system"), user = !strcmp(m[i].role, "user");
        int asst = !strcmp(m[i].role, "assistant");
        if (!sys && !user && !asst)
            return rf_error_field(err, RF_EINVAL, "messages", "message %zu has unknown role \"%s\"",
                                  i, m[i].role);
        if (!alternate) continue;
        if (sys) {
            if (i)
                return rf_error_field(err, RF_EINVAL, "messages",
                                      "only the first message may be a system message");
            continue;
        }
        /* Llama 2 and Mistral templates raise on anything but u/a/u/a… */
        if (user != (k % 2 == 0))
            return rf_error_field(
                err, RF_EINVAL, "messages",
                "conversation roles must alternate user/assistant/user/assistant/…");
        k++;
    }
    return 0;
}

int rf_chat_format(const rf_tokenizer *tok, rf_chat_family fam, const rf_chat_msg *m, size_t n,
                   int add_generation_prompt, rf_chat_out *out, rf_error *err)
{
    fmt f = {0};
    const char *bos = rf_tokenizer_bos_token(tok), *eos = rf_tokenizer_eos_token(tok);
    size_t st;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = check_roles(m, n, fam == RF_CHAT_LLAMA2 || fam == RF_CHAT_MISTRAL, err))) return rc;
    if (!bos) bos = "";
    if (!eos) eos = "";
    switch (fam) {
    case RF_CHAT_LLAMA3:
    case RF_CHAT_LLAMA31: {
        put(&f, bos);
        size_t i = 0;
        if (fam == RF_CHAT_LLAMA31) {
            /* 3.1/3.2 always open with a system turn carrying the knowledge
             * cut-off and a date (the template's default date string). */
            put(&f, "<|start_header_id|>system<|end_header_id|>\n\n"
                    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
            if (n && !strcmp(m[0].role, "system")) put_trimmed(&f, m[i++].content);
            put(&f, "<|eot_id|>");
        }
        for (; i < n; i++) {
            put(&f, "<|start_header_id|>");
            put(&f, m[i].role);
            put(&f, "<|end_header_id|>\n\n");
            int asst = !strcmp(m[i].role, "assistant");
            if (asst) span_open(&f, &st);
            put_trimmed(&f, m[i].content);
            put(&f, "<|eot_id|>");
            if (asst) span_close(&f, st);
        }
        if (add_generation_prompt) put(&f, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    }
    case RF_CHAT_CHATML: {
        char *def = n && !strcmp(m[0].role, "system")
                        ? NULL
                        : chatml_default_system(rf_tokenizer_chat_template(tok));
        if (def) {
            put(&f, "<|im_start|>system\n");
            put(&f, def);
            put(&f, "<|im_end|>\n");
            free(def);
        }
        for (size_t i = 0; i < n; i++) {
            put(&f, "<|im_start|>");
            put(&f, m[i].role);
            put(&f, "\n");
            int asst = !strcmp(m[i].role, "assistant");
            if (asst) span_open(&f, &st);
            put(&f, m[i].content);
            put(&f, "<|im_end|>");
            if (asst) span_close(&f, st);
            put(&f, "\n");
        }
        if (add_generation_prompt) put(&f, "<|im_start|>assistant\n");
        break;
    }
    case RF_CHAT_LLAMA2:
    case RF_CHAT_MISTRAL: {
        const char *sys = n && !strcmp(m[0].role, "system") ? m[0].content : NULL;
        size_t first = sys ? 1 : 0;
        if (fam == RF_CHAT_MISTRAL) put(&f, bos);
        for (size_t i = first; i < n; i++) {
            if (!strcmp(m[i].role, "user")) {
                if (fam == RF_CHAT_LLAMA2) put(&f, bos);
                put(&f, "[INST] ");
                if (sys && i == first) {
                    if (fam == RF_CHAT_LLAMA2) {
                        put(&f, "<<SYS>>\n");
                        put(&f, sys);
                        put(&f, "\n<</SYS>>\n\n");
                    } else {
                        put(&f, sys);
                        put(&f, "\n\n");
                    }
                }
                /* Llama 2 strips the whole content, system block included,
                 * so after a system block only the user text's end is. */
                if (fam == RF_CHAT_LLAMA2)
                    put_stripped(&f, m[i].content, !(sys && i == first));
                else
                    put(&f, m[i].content);
                put(&f, " [/INST]");
            } else {
                if (fam == RF_CHAT_LLAMA2) put(&f, " ");
                span_open(&f, &st);
                if (fam == RF_CHAT_LLAMA2) {
                    put_trimmed(&f, m[i].content);
                    put(&f, " ");
                } else {
                    put(&f, m[i].content);
                }
                put(&f, eos);
                span_close(&f, st);
            }
        }
        break;
    }
    default:
        return rf_errorf(err, RF_EINVAL, "unknown chat template family %d", (int)fam);
    }
    if (!f.oom) f.oom = rf_strbuf_add(&f.b, "", 0) != 0;
    if (f.oom) {
        free(f.b.s);
        free(f.spans);
        return rf_errorf(err, RF_ENOMEM, "out of memory formatting a chat");
    }
    out->text = f.b.s;
    out->len = f.b.n;
    out->spans = f.spans;
    out->n_spans = f.n_spans;
    return 0;
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
