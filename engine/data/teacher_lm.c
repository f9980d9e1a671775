#include "engine/data/teacher_lm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate/sampler.h"
#include "engine/model/lm.h"

typedef struct lm_teacher {
    rf_teacher base;
    rf_lm lm;
    int batch;
} lm_teacher;

static bool is_stop(const rf_lm *lm, int id)
{
    const rf_llama_config *c = &lm->model.config;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return true;
    for (int i = 0; i < lm->n_stop; i++)
        if (lm->stop_ids[i] == id) return true;
    return false;
}

/* Requests [0, B) of one batch; their replies already hold errors for
 * prompts that could not be encoded (ids[b] NULL then). */
static int run_batch(lm_teacher *t, int32_t **ids, size_t *np, int B, const rf_teacher_sampling *sp,
                     uint64_t seed0, rf_teacher_reply *out, rf_error *err)
{
    const rf_lm *lm = &t->lm;
    const rf_llama_config *cfg = &lm->model.config;
    const int V = cfg->vocab_size;
    int live_slots = 0, max_seq = 1, chunk = 1, rc = 0;
    int *maxt = calloc((size_t)B, sizeof *maxt), *len = calloc((size_t)B, sizeof *len);
    int *next = calloc((size_t)B, sizeof *next), *pos = calloc((size_t)B, sizeof *pos);
    int **gen = calloc((size_t)B, sizeof *gen);
    bool *done = calloc((size_t)B, sizeof *done);
    float *logits = malloc(sizeof(float) * (size_t)B * (size_t)V);
    rf_sampler *smp = calloc((size_t)B, sizeof *smp);
    rf_llama_acts a = {0};
    if (!maxt || !len || !next || !pos || !gen || !done || !logits || !smp) {
        rc = rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
        goto out;
    }
    for (int b = 0; b < B; b++) {
        if (!ids[b]) {
            done[b] = true;
            continue;
        }
        int room = cfg->max_pos - (int)np[b];
        maxt[b] = sp->max_tokens < room ? sp->max_tokens : room;
        if (maxt[b] < 1) {
            out[b].rc = rf_errorf(&out[b].err, RF_EINVAL,
                                  "teacher: the prompt is %zu tokens; the model's context is %d",
                                  np[b], cfg->max_pos);
            done[b] = true;
            continue;
        }
        if ((int)np[b] + maxt[b] > max_seq) max_seq = (int)np[b] + maxt[b];
        if ((int)np[b] > chunk) chunk = (int)np[b];
        rf_sampler_params p = {.temperature = (float)sp->temperature,
                               .top_p = (float)sp->top_p,
                               .seed = seed0 + (uint64_t)b};
        if (!(gen[b] = malloc(sizeof **gen * (size_t)maxt[b])) ||
            (rc = rf_sampler_init(&smp[b], V, &p, err)) < 0) {
            if (!rc) rc = rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
            goto out;
        }
        live_slots++;
    }
    if (!live_slots) goto out;
    if (chunk > 256) chunk = 256;
    if ((rc = rf_llama_acts_init(&a, cfg, B, max_seq, chunk, err)) < 0) goto out;
    /* Each prompt is prefilled in slot 0 and its cache copied to its own
     * slot; prompt 0 last, so that slot 0 ends holding its own. */
    for (int b = B - 1; b >= 0; b--) {
        if (done[b]) continue;
        for (int q = 0; q < (int)np[b]; q += chunk) {
            int k = (int)np[b] - q < chunk ? (int)np[b] - q : chunk;
            if ((rc = rf_llama_forward(&lm->model, &a, 1, k, ids[b] + q, &q, NULL, false, err)) < 0)
                goto out;
        }
        if (b) rf_llama_copy_slot(&lm->model, &a, 0, b, (int)np[b]);
        memcpy(logits + (size_t)b * V, a.logits, sizeof(float) * (size_t)V);
        out[b].prompt_tokens = (long)np[b];
    }
    for (;;) {
        if (t->base.should_stop && t->base.should_stop(t->base.stop_arg)) {
            rc = rf_errorf(err, RF_ECANCELED, "teacher: stopped");
            goto out;
        }
        int live = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) {
                next[b] = 0; /* a finished row rides along at its last position, unread */
                continue;
            }
            int tok = rf_sampler_sample(&smp[b], logits + (size_t)b * V);
            if (is_stop(lm, tok)) {
                done[b] = true;
                snprintf(out[b].finish, sizeof out[b].finish, "stop");
                continue;
            }
            gen[b][len[b]++] = tok;
            if (len[b] == maxt[b]) {
                done[b] = true;
                snprintf(out[b].finish, sizeof out[b].finish, "length");
                continue;
            }
            next[b] = tok;
            pos[b] = (int)np[b] + len[b] - 1;
            live++;
        }
        if (!live) break;
        if ((rc = rf_llama_forward(&lm->model, &a, B, 1, next, pos, NULL, false, err)) < 0)
            goto out;
        memcpy(logits, a.logits, sizeof(float) * (size_t)B * (size_t)V);
    }
    for (int b = 0; b < B; b++) {
        if (!gen[b]) continue;
        size_t n;
        if ((rc = rf_lm_decode(lm, gen[b], (size_t)len[b], &out[b].text, &n, err)) < 0) goto out;
        out[b].completion_tokens = len[b];
    }
out:
    for (int b = 0; gen && smp && b < B; b++) {
        free(gen[b]);
        if (smp[b].probs) rf_sampler_free(&smp[b]);
    }
    rf_llama_acts_free(&a);
    free(maxt), free(len), free(next), free(pos), free(gen), free(done), free(logits), free(smp);
    return rc;
}

static int lm_chat(rf_teacher *base, const rf_teacher_request *reqs, size_t n,
                   const rf_teacher_sampling *sp, rf_teacher_reply *out, rf_error *err)
{
    lm_teacher *t = (lm_teacher *)base;
    memset(out, 0, n * sizeof *out);
    int rc = 0;
    for (size_t at = 0; at < n && !rc; at += (size_t)t->batch) {
        int B = n - at < (size_t)t->batch ? (int)(n - at) : t->batch;
        int32_t *ids[256] = {0};
        size_t np[256] = {0};
        for (int b = 0; b < B; b++) {
            rf_teacher_reply *r = &out[at + (size_t)b];
            if (rf_lm_encode_chat(&t->lm, reqs[at + (size_t)b].messages,
                                  reqs[at + (size_t)b].n_messages, NULL, &ids[b], &np[b],
                                  &r->err) < 0 ||
                np[b] == 0) {
                /* a model without a chat template will not get one on a retry */
                r->rc = RF_EINVAL;
                if (!r->err.msg[0]) rf_errorf(&r->err, RF_EINVAL, "teacher: empty prompt");
                free(ids[b]);
                ids[b] = NULL;
            }
        }
        rc = run_batch(t, ids, np, B, sp, sp->seed + at, out + at, err);
        for (int b = 0; b < B; b++)
            free(ids[b]);
    }
    return rc;
}

static void lm_destroy(rf_teacher *base)
{
    lm_teacher *t = (lm_teacher *)base;
    rf_lm_free(&t->lm);
    free(t);
}

int rf_teacher_lm_new(const char *model_dir, const char *name, int batch, rf_teacher **out,
                      rf_error *err)
{
    lm_teacher *t = calloc(1, sizeof *t);
    if (!t) return rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
    /* a teacher generates: bf16 activations, as it would be served */
    int rc = rf_lm_load(&t->lm, model_dir, RF_ACT_BF16, err);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->batch = batch < 1 ? 1 : batch > 256 ? 256 : batch;
    snprintf(t->base.name, sizeof t->base.name, "%s", name);
    t->base.chat = lm_chat;
    t->base.destroy = lm_destroy;
    *out = &t->base;
    return 0;
}
