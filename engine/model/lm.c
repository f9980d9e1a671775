#include "engine/model/lm.h"

#include <stdlib.h>
#include <string.h>

static void add_stop(rf_lm *lm, int id)
{
    if (id < 0 || id >= lm->model.config.vocab_size || lm->n_stop == RF_LM_MAX_STOP) return;
    for (int i = 0; i < lm->n_stop; i++)
        if (lm->stop_ids[i] == id) return;
    lm->stop_ids[lm->n_stop++] = id;
}

int rf_lm_load(rf_lm *lm, const char *dir, rf_error *err)
{
    memset(lm, 0, sizeof *lm);
    int rc = rf_llama_load(&lm->model, dir, NULL, err);
    if (rc < 0) return rc;
    if ((rc = rf_tokenizer_load(dir, &lm->tok, err)) < 0) {
        rf_llama_free(&lm->model);
        return rc;
    }
    /* No recognised template is not an error here: plain prompts still work,
     * and a chat request is refused when it arrives. */
    rf_error ignored;
    lm->has_chat = rf_chat_family_detect(lm->tok, &lm->chat_family, &ignored) == 0;
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

int rf_lm_encode_chat(const rf_lm *lm, const rf_chat_msg *msgs, size_t n_msgs, const char *family,
                      int32_t **ids, size_t *n, rf_error *err)
{
    rf_chat_family f = lm->chat_family;
    if (family) {
        int rc = rf_chat_family_parse(family, &f, err);
        if (rc < 0) return rc;
    } else if (!lm->has_chat) {
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "this model's tokenizer_config.json has no chat template this engine "
                         "recognises; use a plain prompt");
    }
    rf_chat_out out = {0};
    int rc = rf_chat_format(lm->tok, f, msgs, n_msgs, 1, &out, err);
    /* The formatted text already holds BOS where the family wants it. */
    if (rc == 0) rc = rf_tokenizer_encode(lm->tok, out.text, out.len, 0, ids, n, err);
    rf_chat_out_free(&out);
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
