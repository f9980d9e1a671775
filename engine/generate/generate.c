#include "engine/generate/generate.h"

#include <stdlib.h>
#include <string.h>

static bool is_stop(const rf_llama_config *c, const rf_gen_params *p, int id)
{
    for (int i = 0; p->stop_at_eos && i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return true;
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop_ids[i] == id) return true;
    return false;
}

int rf_generate(const rf_llama_model *m, rf_llama_acts *a, const int *prompt, int n_prompt,
                int n_seq, rf_sampler *samplers, const rf_gen_params *p, rf_gen_token_fn on_token,
                void *ctx, int **out, int *lens, int *finish, rf_error *err)
{
    const int V = m->config.vocab_size;
    if (n_seq < 1 || n_seq > a->max_batch)
        return rf_error_field(err, RF_EINVAL, "n",
                              "generate: %d sequences, the activations hold %d", n_seq,
                              a->max_batch);
    if (n_prompt < 1 || p->max_tokens < 0 || n_prompt + p->max_tokens > a->max_seq)
        return rf_error_field(err, RF_EINVAL, "max_tokens",
                              "generate: %d prompt + %d new tokens do not fit %d positions",
                              n_prompt, p->max_tokens, a->max_seq);
    int rc = 0, *next = calloc((size_t)n_seq, sizeof *next),
        *pos = calloc((size_t)n_seq, sizeof *pos);
    bool *done = calloc((size_t)n_seq, sizeof *done);
    if (!next || !pos || !done) {
        rc = rf_errorf(err, RF_ENOMEM, "generate: out of memory");
        goto out;
    }
    for (int q = 0; q < n_prompt; q += a->max_tokens) {
        int n = n_prompt - q < a->max_tokens ? n_prompt - q : a->max_tokens;
        if ((rc = rf_llama_forward(m, a, 1, n, prompt + q, &q, NULL, false, err)) < 0) goto out;
    }
    /* The other sequences start from the same prompt: copy its cache and
     * its last logits instead of recomputing them. */
    for (int s = 1; s < n_seq; s++) {
        rf_llama_copy_slot(m, a, 0, s, n_prompt);
        memcpy(a->logits + (size_t)s * V, a->logits, sizeof(float) * (size_t)V);
    }
    for (int s = 0; s < n_seq; s++) {
        lens[s] = 0;
        finish[s] = RF_FINISH_LENGTH;
    }
    for (int step = 0; step < p->max_tokens; step++) {
        int live = 0;
        for (int s = 0; s < n_seq; s++) {
            if (done[s]) continue;
            const float *lg = a->logits + (size_t)s * V;
            int tok = rf_sampler_sample(&samplers[s], lg);
            if (is_stop(&m->config, p, tok)) {
                done[s] = true;
                finish[s] = RF_FINISH_STOP;
                continue;
            }
            out[s][lens[s]++] = tok;
            next[s] = tok;
            if (on_token && !on_token(ctx, s, tok, lg)) {
                done[s] = true;
                finish[s] = RF_FINISH_STOP;
                continue;
            }
            live++;
        }
        if (!live || step + 1 == p->max_tokens) break;
        for (int s = 0; s < n_seq; s++)
            pos[s] = n_prompt + step; /* finished rows replay their last token, unread */
        if ((rc = rf_llama_forward(m, a, n_seq, 1, next, pos, NULL, false, err)) < 0) goto out;
    }
out:
    free(next);
    free(pos);
    free(done);
    return rc;
}
