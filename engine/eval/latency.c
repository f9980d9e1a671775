#include "engine/eval/latency.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int rf_eval_latency(const rf_llama_model *m, const int *prompt, int n_prompt, int prompt_tokens,
                    int new_tokens, int repeats, rf_latency *out, rf_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_prompt < 1 || prompt_tokens < 1 || new_tokens < 2 || repeats < 1)
        return rf_errorf(err, RF_EINVAL, "latency: need a prompt and at least 2 new tokens");
    if (prompt_tokens + new_tokens > m->config.max_pos)
        return rf_errorf(err, RF_EINVAL,
                         "latency: %d prompt + %d new tokens exceed the model's %d positions",
                         prompt_tokens, new_tokens, m->config.max_pos);
    rf_llama_acts a;
    int rc = rf_llama_acts_init(&a, &m->config, 1, prompt_tokens + new_tokens, prompt_tokens, err);
    if (rc) return rc;
    int *ids = malloc(sizeof(int) * (size_t)prompt_tokens);
    double *prefill = malloc(sizeof(double) * (size_t)repeats),
           *decode = malloc(sizeof(double) * (size_t)repeats),
           *first = malloc(sizeof(double) * (size_t)repeats);
    if (!ids || !prefill || !decode || !first) {
        rc = rf_errorf(err, RF_ENOMEM, "latency: out of memory");
        goto out;
    }
    for (int i = 0; i < prompt_tokens; i++)
        ids[i] = prompt[i % n_prompt];
    /* one run untimed first: the first forward calls of a process pay for
     * starting the thread pool and faulting the weights in */
    for (int r = -1; r < repeats && rc == 0; r++) {
        const int pos0 = 0;
        double t0 = rf_now_s();
        if ((rc = rf_llama_forward(m, &a, 1, prompt_tokens, ids, &pos0, NULL, false, err))) break;
        double t1 = rf_now_s();
        int next = rf_argmax(a.logits, m->config.vocab_size), pos = prompt_tokens;
        double t2 = 0;
        for (int i = 0; i < new_tokens && rc == 0; i++, pos++) {
            rc = rf_llama_forward(m, &a, 1, 1, &next, &pos, NULL, false, err);
            next = rf_argmax(a.logits, m->config.vocab_size);
            if (i == 0) t2 = rf_now_s();
        }
        double t3 = rf_now_s();
        if (r >= 0) prefill[r] = t1 - t0, first[r] = t2 - t0, decode[r] = t3 - t2;
    }
    if (rc) goto out;
    qsort(prefill, (size_t)repeats, sizeof *prefill, cmp_double);
    qsort(decode, (size_t)repeats, sizeof *decode, cmp_double);
    qsort(first, (size_t)repeats, sizeof *first, cmp_double);
    const int mid = repeats / 2;
    out->prompt_tokens = prompt_tokens, out->new_tokens = new_tokens, out->repeats = repeats;
    out->prefill_tokens_per_s = prompt_tokens / prefill[mid];
    out->decode_tokens_per_s = (new_tokens - 1) / decode[mid];
    out->ms_per_token = 1000.0 / out->decode_tokens_per_s;
    out->first_token_ms = 1000.0 * first[mid];
out:
    free(ids), free(prefill), free(decode), free(first);
    rf_llama_acts_free(&a);
    return rc;
}
