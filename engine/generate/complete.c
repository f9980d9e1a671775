#include "engine/generate/complete.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    const rf_lm *lm;
    const rf_complete_params *p;
    rf_complete_result *r;
    rf_complete_fn on_text;
    void *ctx;
    int cap; /* ids per choice */
    bool aborted;
    int rc;
    rf_error *err;
} run;

void rf_top_logprobs(const float *logits, int n, int k, rf_token_logprob *out)
{
    if (k > n) k = n;
    int have = 0;
    /* insertion into a sorted list of k: k is at most 20 */
    for (int i = 0; i < n; i++) {
        if (have == k && logits[i] <= logits[out[have - 1].id]) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && logits[out[j - 1].id] < logits[i]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j].id = i;
    }
    if (!have) return;
    double mx = logits[out[0].id], sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < have; i++)
        out[i].logprob = (float)((double)logits[out[i].id] - lse);
}

/* Bytes at the end of text that must wait: a proper prefix of a stop string,
 * or a U+FFFD that may be half a character still being decoded. */
static size_t held_back(const char *text, size_t len, const rf_complete_params *p)
{
    size_t hold = 0;
    for (int s = 0; s < p->n_stop; s++) {
        size_t sl = strlen(p->stop[s]);
        for (size_t k = sl - 1; k > hold && k >= 1; k--)
            if (k <= len && !memcmp(text + len - k, p->stop[s], k)) {
                hold = k;
                break;
            }
    }
    if (len >= 3 && hold < 3 && !memcmp(text + len - 3, "\xEF\xBF\xBD", 3)) hold = 3;
    return hold;
}

/* Re-decode choice c, cut it at a stop string, hand out what is certain.
 * Returns false when the choice is finished by a stop string. */
static bool update(run *u, int seq, bool final)
{
    rf_complete_choice *c = &u->r->choices[seq];
    char *text;
    size_t len;
    rf_error e;
    if (rf_lm_decode(u->lm, c->ids, (size_t)c->n_tokens, &text, &len, &e) < 0) {
        if (!u->rc) {
            *u->err = e;
            u->rc = e.code;
        }
        u->aborted = true;
        return false;
    }
    bool stopped = false;
    size_t cut = len;
    for (int s = 0; s < u->p->n_stop; s++) {
        const char *hit = strstr(text, u->p->stop[s]);
        if (hit && (size_t)(hit - text) < cut) {
            cut = (size_t)(hit - text);
            stopped = true;
        }
    }
    text[cut] = '\0';
    free(c->text);
    c->text = text;
    c->len = cut;
    if (stopped) {
        c->finish = RF_FINISH_STOP;
        final = true;
    }
    size_t ready = final ? cut : cut - held_back(text, cut, u->p);
    /* Decoding more tokens can in rare cases rewrite the tail (cleanup of
     * spaces); what was handed out stays, and the rest waits until ready. */
    /* Called after every token, also with nothing new: the caller's chance
     * to notice that its client went away. */
    if (u->on_text && !u->aborted) {
        size_t from = c->emitted < ready ? c->emitted : ready;
        bool piece = ready > from || final;
        int first = c->tokens_emitted, n = piece ? c->n_tokens - first : 0;
        if (!u->on_text(u->ctx, seq, text + from, ready - from, first, n, c, final)) {
            u->aborted = true;
            if (!u->rc) u->rc = rf_errorf(u->err, RF_ECANCELED, "completion: the client went away");
        }
        if (piece) {
            c->emitted = ready > c->emitted ? ready : c->emitted;
            c->tokens_emitted = c->n_tokens;
        }
    }
    if (final) c->done = true;
    return !stopped;
}

static bool on_token(void *ctx, int seq, int token, const float *logits)
{
    run *u = ctx;
    rf_complete_choice *c = &u->r->choices[seq];
    if (u->aborted) return false;
    if (c->n_tokens < u->cap) {
        if (c->lp) {
            rf_complete_token *t = &c->lp[c->n_tokens];
            t->id = token;
            t->logprob = (float)rf_logprob(logits, u->lm->model.config.vocab_size, token);
            t->n_top = u->p->top_logprobs;
            rf_top_logprobs(logits, u->lm->model.config.vocab_size, t->n_top, t->top);
        }
        c->ids[c->n_tokens++] = token;
    }
    return update(u, seq, false) && !u->aborted;
}

void rf_complete_result_free(rf_complete_result *r)
{
    if (!r || !r->choices) return;
    for (int i = 0; i < r->n; i++) {
        free(r->choices[i].text);
        free(r->choices[i].ids);
        free(r->choices[i].lp);
    }
    free(r->choices);
    memset(r, 0, sizeof *r);
}

int rf_complete(const rf_lm *lm, const int *prompt, int n_prompt, const rf_complete_params *p,
                rf_complete_fn on_text, void *ctx, rf_complete_result *out, rf_error *err)
{
    memset(out, 0, sizeof *out);
    const rf_llama_config *cfg = &lm->model.config;
    if (p->n < 1 || p->n > 16)
        return rf_error_field(err, RF_EINVAL, "n", "'n' must be an integer in [1, 16]");
    if (p->max_tokens < 1)
        return rf_error_field(err, RF_EINVAL, "max_tokens", "'max_tokens' must be at least 1");
    if (n_prompt < 1)
        return rf_error_field(err, RF_EINVAL, "prompt", "the prompt encodes to no tokens");
    if (n_prompt + p->max_tokens > cfg->max_pos)
        return rf_error_field(err, RF_EINVAL, "max_tokens",
                              "the prompt (%d tokens) plus max_tokens (%d) exceed the model's "
                              "context of %d tokens",
                              n_prompt, p->max_tokens, cfg->max_pos);
    if (p->n_stop > RF_MAX_STOP_STRINGS)
        return rf_error_field(err, RF_EINVAL, "stop", "at most %d stop strings",
                              RF_MAX_STOP_STRINGS);
    for (int s = 0; s < p->n_stop; s++)
        if (!p->stop[s][0])
            return rf_error_field(err, RF_EINVAL, "stop", "a stop string must not be empty");
    if (p->top_logprobs > RF_MAX_TOP_LOGPROBS)
        return rf_error_field(err, RF_EINVAL, "top_logprobs", "'top_logprobs' is at most %d",
                              RF_MAX_TOP_LOGPROBS);

    int rc = 0, n = p->n, chunk = n_prompt < 256 ? n_prompt : 256;
    rf_llama_acts a = {0};
    rf_sampler *samplers = calloc((size_t)n, sizeof *samplers);
    int **outs = calloc((size_t)n, sizeof *outs), *lens = calloc((size_t)n, sizeof *lens),
        *finish = calloc((size_t)n, sizeof *finish);
    out->choices = calloc((size_t)n, sizeof *out->choices);
    out->n = n;
    run u = {.lm = lm,
             .p = p,
             .r = out,
             .on_text = on_text,
             .ctx = ctx,
             .cap = p->max_tokens,
             .err = err};
    if (!samplers || !outs || !lens || !finish || !out->choices) {
        rc = rf_errorf(err, RF_ENOMEM, "completion: out of memory");
        goto fail;
    }
    for (int s = 0; s < n; s++) {
        rf_complete_choice *c = &out->choices[s];
        c->ids = malloc(sizeof *c->ids * (size_t)p->max_tokens);
        outs[s] = malloc(sizeof **outs * (size_t)p->max_tokens);
        if (p->top_logprobs >= 0) c->lp = calloc((size_t)p->max_tokens, sizeof *c->lp);
        if (!c->ids || !outs[s] || (p->top_logprobs >= 0 && !c->lp)) {
            rc = rf_errorf(err, RF_ENOMEM, "completion: out of memory");
            goto fail;
        }
        rf_sampler_params sp = p->sampling;
        sp.seed += (uint64_t)s; /* distinct continuations, each reproducible */
        if ((rc = rf_sampler_init(&samplers[s], cfg->vocab_size, &sp, err)) < 0) goto fail;
    }
    if ((rc = rf_llama_acts_init(&a, cfg, n, n_prompt + p->max_tokens, chunk, err)) < 0) goto fail;
    rf_gen_params gp = {.max_tokens = p->max_tokens,
                        .stop_at_eos = true,
                        .stop_ids = lm->stop_ids,
                        .n_stop = lm->n_stop};
    rc = rf_generate(&lm->model, &a, prompt, n_prompt, n, samplers, &gp, on_token, &u, outs, lens,
                     finish, err);
    if (rc < 0) goto fail;
    if (u.rc) {
        rc = u.rc;
        goto fail;
    }
    out->prompt_tokens = n_prompt;
    for (int s = 0; s < n; s++) {
        rf_complete_choice *c = &out->choices[s];
        /* A stop string already set STOP; otherwise rf_generate knows. */
        if (!c->done) {
            c->finish = finish[s];
            update(&u, s, true);
        }
        if (!c->text && !(c->text = calloc(1, 1))) {
            rc = rf_errorf(err, RF_ENOMEM, "completion: out of memory");
            goto fail;
        }
        out->completion_tokens += c->n_tokens;
    }
    if (u.rc) rc = u.rc;
fail:
    if (rc < 0) rf_complete_result_free(out);
    for (int s = 0; samplers && outs && s < n; s++) {
        rf_sampler_free(&samplers[s]);
        free(outs[s]);
    }
    free(samplers);
    free(outs);
    free(lens);
    free(finish);
    rf_llama_acts_free(&a);
    return rc;
}
