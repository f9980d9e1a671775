#include "engine/model/lm.h"

#include "engine/backend/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_stop(rf_lm *lm, int id)
{
    if (id < 0 || id >= lm->model.config.vocab_size || lm->n_stop == RF_LM_MAX_STOP) return;
    for (int i = 0; i < lm->n_stop; i++)
        if (lm->stop_ids[i] == id) return;
    lm->stop_ids[lm->n_stop++] = id;
}

int rf_activations_parse(const char *s, rf_activations *a, rf_error *err)
{
    if (!s || !strcmp(s, "bf16")) {
        *a = RF_ACT_BF16;
        return 0;
    }
    if (!strcmp(s, "f32")) {
        *a = RF_ACT_F32;
        return 0;
    }
    return rf_errorf(err, RF_EINVAL, "activations must be \"bf16\" or \"f32\", not \"%s\"", s);
}

const char *rf_activations_name(rf_activations a)
{
    return a == RF_ACT_F32 ? "f32" : "bf16";
}

int rf_lm_load(rf_lm *lm, const char *dir, rf_activations act, rf_error *err)
{
    memset(lm, 0, sizeof *lm);
    int rc =
        rf_llama_load(&lm->model, dir, act == RF_ACT_F32 ? rf_ops_cpu() : rf_ops_cpu_bf16(), err);
    if (rc < 0) return rc;
    if ((rc = rf_tokenizer_load(dir, &lm->tok, err)) < 0) {
        rf_llama_free(&lm->model);
        return rc;
    }
    /* No usable template is not an error here: plain prompts still work,
     * and a chat request is refused with the reason when it arrives. */
    rf_error cerr = {0};
    if (rf_chat_template_load(lm->tok, NULL, &lm->chat, &cerr) < 0)
        snprintf(lm->chat_error, sizeof lm->chat_error, "%s", cerr.msg);
    for (int i = 0; i < lm->model.config.n_eos; i++)
        add_stop(lm, lm->model.config.eos_ids[i]);
    add_stop(lm, rf_tokenizer_eos_id(lm->tok));
    static const char *const turn_ends[] = {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>"};
    for (size_t i = 0; i < sizeof turn_ends / sizeof *turn_ends; i++)
        add_stop(lm, rf_tokenizer_token_to_id(lm->tok, turn_ends[i]));
    return 0;
}

void rf_lm_free(rf_lm *lm)
{
    if (!lm) return;
    rf_chat_template_free(lm->chat);
    lm->chat = NULL;
    rf_tokenizer_free(lm->tok);
    lm->tok = NULL;
    rf_llama_free(&lm->model);
}

size_t rf_lm_bytes(const rf_lm *lm)
{
    return lm->model.weight_bytes;
}

int rf_lm_encode_prompt(const rf_lm *lm, const char *text, int32_t **ids, size_t *n, rf_error *err)
{
    return rf_tokenizer_encode(lm->tok, text, strlen(text), 1, ids, n, err);
}

int rf_lm_encode_chat(const rf_lm *lm, const rf_chat_msg *msgs, size_t n_msgs, const char *spec,
                      int32_t **ids, size_t *n, rf_error *err)
{
    rf_chat_template *own = NULL;
    const rf_chat_template *t = lm->chat;
    int rc;
    if (spec) {
        if ((rc = rf_chat_template_load(lm->tok, spec, &own, err)) < 0) return rc;
        t = own;
    } else if (!t) {
        return rf_errorf(err, RF_EUNSUPPORTED, "this model cannot chat: %s; use a plain prompt",
                         lm->chat_error);
    }
    json_t *m = rf_chat_messages(msgs, n_msgs);
    rf_chat_opts o = {.add_generation_prompt = 1};
    char *text = NULL;
    size_t len = 0;
    rc =
        m ? rf_chat_render(t, m, &o, &text, &len, err) : rf_errorf(err, RF_ENOMEM, "out of memory");
    /* The rendering holds BOS where the template puts it (add_special_tokens=False). */
    if (rc == 0) rc = rf_tokenizer_encode(lm->tok, text, len, 0, ids, n, err);
    free(text);
    json_decref(m);
    rf_chat_template_free(own);
    return rc;
}

int rf_lm_decode(const rf_lm *lm, const int *ids, size_t n, char **text, size_t *len, rf_error *err)
{
    int32_t *known = malloc(sizeof *known * (n ? n : 1));
    if (!known) return rf_errorf(err, RF_ENOMEM, "decode: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (rf_tokenizer_id_to_token(lm->tok, ids[i])) known[k++] = ids[i];
    int rc = rf_tokenizer_decode(lm->tok, known, k, RF_DECODE_SKIP_SPECIAL, text, len, err);
    free(known);
    return rc;
}
