#include "engine/eval/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "engine/generate/sampler.h"

int rf_eval_choices(const rf_llama_model *m, rf_llama_acts *a, const int *ctx, int n_ctx,
                    const int *const *choices, const int *choice_len, int n_choices, double *loglik,
                    bool *greedy, rf_error *err)
{
    const int V = m->config.vocab_size, S = a->max_tokens;
    if (n_ctx < 1 || n_choices < 1)
        return rf_errorf(err, RF_EINVAL, "eval: need a context and at least one choice");
    for (int c = 0; c < n_choices; c++)
        if (choice_len[c] < 1 || n_ctx + choice_len[c] > a->max_seq)
            return rf_errorf(err, RF_EINVAL,
                             "eval: choice %d has %d tokens; with the %d-token context the "
                             "limit is %d positions",
                             c, choice_len[c], n_ctx, a->max_seq);
    int rc = 0;
    float *first = malloc(sizeof(float) * (size_t)V), *lg = malloc(sizeof(float) * (size_t)S * V);
    if (!first || !lg) {
        rc = rf_errorf(err, RF_ENOMEM, "eval: out of memory");
        goto out;
    }
    for (int p = 0; p < n_ctx; p += S) {
        int n = n_ctx - p < S ? n_ctx - p : S;
        if ((rc = rf_llama_forward(m, a, 1, n, ctx + p, &p, NULL, false, err)) < 0) goto out;
    }
    /* the context's last logits predict every choice's first token */
    memcpy(first, a->logits, sizeof(float) * (size_t)V);
    for (int c = 0; c < n_choices; c++) {
        const int *t = choices[c], n = choice_len[c];
        double sum = rf_logprob(first, V, t[0]);
        bool g = rf_argmax(first, V) == t[0];
        /* Feed tokens 0..n-2 at positions n_ctx..; row i predicts token i+1.
         * The context's cache (positions < n_ctx) is never overwritten. */
        for (int p = 0; p < n - 1; p += S) {
            int len = n - 1 - p < S ? n - 1 - p : S, pos = n_ctx + p;
            if ((rc = rf_llama_forward(m, a, 1, len, t + p, &pos, lg, true, err)) < 0) goto out;
            for (int i = 0; i < len; i++) {
                sum += rf_logprob(lg + (size_t)i * V, V, t[p + i + 1]);
                g = g && rf_argmax(lg + (size_t)i * V, V) == t[p + i + 1];
            }
        }
        loglik[c] = sum;
        if (greedy) greedy[c] = g;
    }
out:
    free(first);
    free(lg);
    return rc;
}

void rf_eval_pick(const double *loglik, const int *chars, int n, int *pred, int *pred_norm)
{
    int b = 0, bn = 0;
    for (int i = 1; i < n; i++) {
        if (loglik[i] > loglik[b]) b = i;
        double x = loglik[i] / (chars[i] > 0 ? chars[i] : 1),
               y = loglik[bn] / (chars[bn] > 0 ? chars[bn] : 1);
        if (x > y) bn = i;
    }
    *pred = b;
    *pred_norm = bn;
}
