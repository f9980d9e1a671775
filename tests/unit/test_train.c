/* One training step of engine/train.c against the torch reference
 * (tests/reference/train_reference.py, fixtures/train/): loss, CE and KL
 * for three (α, T) cases with the prompt and padding masked, the gradient of
 * every LoRA A and B, the adapters after one AdamW and one Muon step (both
 * scales), full-parameter gradients of embeddings, norms and weights, and
 * the sparse top-k teacher loss in both modes, and the GPTQ W4A16 fixture
 * as a LoRA student and as a teacher. Everything within 1e-4 relative
 * (max |got − ref| / max |ref| per tensor, printed).
 *
 * Several steps, where one step cannot tell: after one step AdamW's bias
 * correction cancels β1 and β2 and Muon's normalisation cancels its
 * momentum. Six steps of AdamW (torch.optim.AdamW, with and without
 * clip_grad_norm_) and of Muon (both scales, its AdamW fallback beside it) on
 * gradients drawn afresh at every step, each step's parameters compared; the
 * same run with a wrong constant must miss (so that the comparison can
 * fail), within 2e-6 there; and five real training steps from adapter_init with each
 * optimiser, the loss before every step and the adapters after the last. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/llama.h"
#include "engine/model/lora.h"
#include "engine/core/safetensors.h"
#include "engine/train/train.h"

#define FIX "tests/reference/fixtures/"
#define TOL 1e-4

static rf_st_file g_exp;

static const rf_st_entry *want(const char *name)
{
    const rf_st_entry *e = rf_st_find(&g_exp, name);
    if (!e) fail_msg("expected.safetensors has no %s", name);
    return e;
}

static const void *data_of(const char *name, size_t *n)
{
    rf_tensor t;
    rf_st_view(&g_exp, want(name), &t);
    if (n) *n = (size_t)rf_tensor_numel(&t);
    return t.data;
}

/* The writer packs tensors in order, so an F64 may sit at any offset. */
static double f64(const char *name, int i)
{
    double d;
    memcpy(&d, (const char *)data_of(name, NULL) + sizeof(double) * i, sizeof d);
    return d;
}

static void cmp(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double mabs = 0, mref = 0;
    for (size_t i = 0; i < n; i++) {
        mabs = fmax(mabs, fabs((double)got[i] - ref[i]));
        mref = fmax(mref, fabs((double)ref[i]));
    }
    double rel = mabs / (mref > 0 ? mref : 1);
    printf("  %-72s max abs %.2e rel %.2e %s\n", what, mabs, rel, rel <= tol ? "OK" : "FAIL");
    assert_true(mref > 0);
    assert_true(rel <= tol);
}

static void cmp_scalar(const char *what, double got, double ref)
{
    double rel = fabs(got - ref) / fmax(fabs(ref), 1e-12);
    printf("  %-40s got %.8f ref %.8f rel %.2e %s\n", what, got, ref, rel,
           rel <= TOL ? "OK" : "FAIL");
    assert_true(rel <= TOL);
}

typedef struct fx {
    rf_llama_model s, t;
    rf_lora lora;
    rf_trainer st, tt;
    const int *ids, *targets;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    rf_error err = {0};
    assert_int_equal(rf_st_open(&g_exp, FIX "train/expected.safetensors", &err), 0);
    assert_int_equal(rf_llama_load(&f->s, FIX "llama_f32_gqa", NULL, &err), 0);
    assert_int_equal(rf_llama_load(&f->t, FIX "llama3_bf16_tied", NULL, &err), 0);
    if (rf_lora_load_peft(&f->lora, &f->s.config, FIX "train/adapter_init", &err) < 0)
        fail_msg("%s", err.msg);
    /* chunk 5: 16 rows of logits in 4 uneven chunks */
    assert_int_equal(rf_trainer_init(&f->st, &f->s, RF_TRAIN_LORA, &f->lora, 2, 8, 5, &err), 0);
    assert_int_equal(rf_trainer_init(&f->tt, &f->t, RF_TRAIN_FROZEN, NULL, 2, 8, 5, &err), 0);
    f->ids = data_of("ids", NULL);
    f->targets = data_of("targets", NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rf_trainer_free(&f->st);
    rf_trainer_free(&f->tt);
    rf_lora_free(&f->lora);
    rf_llama_free(&f->s);
    rf_llama_free(&f->t);
    rf_st_close(&g_exp);
    free(f);
    return 0;
}

/* Forward both, loss of case name (with backward when asked). */
static void run_case(fx *f, const char *name, float alpha, float T, bool teacher, bool backward)
{
    rf_error err = {0};
    rf_train_stats s;
    rf_loss_config lc = {.alpha = alpha, .temperature = T};
    assert_int_equal(rf_train_forward(&f->st, f->ids, &err), 0);
    assert_int_equal(rf_train_forward(&f->tt, f->ids, &err), 0);
    assert_int_equal(rf_train_loss(&f->st, teacher ? &f->tt : NULL, NULL, f->targets, &lc, 1.0f,
                                   backward, &s, &err),
                     0);
    if (backward) assert_int_equal(rf_train_backward(&f->st, &err), 0);
    char k[64];
    snprintf(k, sizeof k, "loss.%s", name);
    const double ref[3] = {f64(k, 0), f64(k, 1), f64(k, 2)};
    char w[80];
    snprintf(w, sizeof w, "%s: loss (α=%.1f T=%.1f)", name, alpha, T);
    cmp_scalar(w, s.loss, ref[0]);
    snprintf(w, sizeof w, "%s: ce", name);
    cmp_scalar(w, s.ce, ref[1]);
    if (teacher) {
        snprintf(w, sizeof w, "%s: kl", name);
        cmp_scalar(w, s.kl, ref[2]);
    }
    assert_int_equal(s.n_tokens, 7); /* 4 + 3 answer tokens */
}

static void peft_name(char *buf, size_t cap, const char *prefix, int l, int t, int ab)
{
    snprintf(buf, cap, "%sbase_model.model.model.layers.%d.%s.lora_%c.weight", prefix, l,
             rf_lin(t)->path, ab ? 'B' : 'A');
}

static void test_losses(void **state)
{
    fx *f = *state;
    run_case(f, "ce", 0.0f, 1.0f, false, false);
    run_case(f, "kl", 1.0f, 1.0f, true, false);
    run_case(f, "kd", 0.5f, 2.0f, true, false);
}

static void test_grads_and_steps(void **state)
{
    fx *f = *state;
    rf_error err = {0};
    memset(f->lora.grads, 0, sizeof(float) * f->lora.n_params);
    run_case(f, "kd", 0.5f, 2.0f, true, true);
    char n[160];
    for (int l = 0; l < f->lora.n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++)
            for (int ab = 0; ab < 2; ab++) {
                rf_lora_pair *p = rf_lora_at(&f->lora, l, t);
                size_t cnt;
                peft_name(n, sizeof n, "grad.", l, t, ab);
                const float *ref = data_of(n, &cnt);
                cmp(n, ab ? p->dB : p->dA, ref, cnt, TOL);
            }
    /* One step of each optimiser from the same adapters and gradients. */
    const size_t np = f->lora.n_params;
    float *p0 = malloc(sizeof(float) * np), *g0 = malloc(sizeof(float) * np);
    memcpy(p0, f->lora.params, sizeof(float) * np);
    memcpy(g0, f->lora.grads, sizeof(float) * np);
    const char *prefixes[] = {"adamw.", "muon.", "muon_rms."};
    for (int o = 0; o < 3; o++) {
        rf_optim_config oc;
        rf_optim_config_default(&oc);
        oc.kind = o ? RF_OPT_MUON : RF_OPT_ADAMW;
        oc.muon_scale = o == 2 ? RF_MUON_MATCH_RMS_ADAMW : RF_MUON_ORIGINAL;
        oc.lr = 1e-2f, oc.weight_decay = 0.1f, oc.sched = RF_SCHED_CONSTANT;
        rf_optim opt;
        assert_int_equal(rf_optim_init(&opt, &oc, &err), 0);
        assert_int_equal(rf_trainer_add_params(&f->st, &opt, &err), 0);
        assert_int_equal(rf_optim_ready(&opt, &err), 0);
        memcpy(f->lora.params, p0, sizeof(float) * np);
        memcpy(f->lora.grads, g0, sizeof(float) * np);
        rf_optim_step(&opt, NULL);
        for (int l = 0; l < f->lora.n_layers; l++)
            for (int t = 0; t < RF_LIN_COUNT; t++)
                for (int ab = 0; ab < 2; ab++) {
                    rf_lora_pair *p = rf_lora_at(&f->lora, l, t);
                    size_t cnt;
                    peft_name(n, sizeof n, prefixes[o], l, t, ab);
                    const float *ref = data_of(n, &cnt);
                    cmp(n, ab ? p->B : p->A, ref, cnt, TOL);
                }
        for (size_t i = 0; i < np; i++) /* the step zeroed the gradients */
            assert_true(f->lora.grads[i] == 0.0f);
        rf_optim_free(&opt);
    }
    memcpy(f->lora.params, p0, sizeof(float) * np);
    free(p0), free(g0);
}

static void test_full_grads(void **state)
{
    fx *f = *state;
    rf_error err = {0};
    rf_trainer ft;
    assert_int_equal(rf_trainer_init(&ft, &f->s, RF_TRAIN_FULL, NULL, 2, 8, 7, &err), 0);
    rf_loss_config lc = {.alpha = 0, .temperature = 1};
    rf_train_stats s;
    assert_int_equal(rf_train_forward(&ft, f->ids, &err), 0);
    assert_int_equal(rf_train_loss(&ft, NULL, NULL, f->targets, &lc, 1.0f, true, &s, &err), 0);
    assert_int_equal(rf_train_backward(&ft, &err), 0);
    const struct {
        const char *name;
        const float *p;
    } ws[] = {
        {"model.embed_tokens.weight", ft.w.embed.data},
        {"lm_head.weight", ft.w.lm_head.w.data},
        {"model.norm.weight", ft.w.norm},
        {"model.layers.0.input_layernorm.weight", ft.w.layers[0].attn_norm},
        {"model.layers.1.post_attention_layernorm.weight", ft.w.layers[1].ffn_norm},
        {"model.layers.0.self_attn.k_proj.weight", ft.w.layers[0].lin[RF_LIN_K].w.data},
        {"model.layers.1.mlp.down_proj.weight", ft.w.layers[1].lin[RF_LIN_DOWN].w.data},
    };
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
        char n[128];
        snprintf(n, sizeof n, "full.%s", ws[i].name);
        size_t cnt;
        const float *ref = data_of(n, &cnt);
        cmp(n, ft.full_grad + (ws[i].p - ft.full), ref, cnt, TOL);
    }
    rf_trainer_free(&ft);
}

static void test_topk(void **state)
{
    const int V = 256;
    float z[256];
    for (int row = 0; row < 3; row++)
        for (int mode = 0; mode < 2; mode++) {
            char n[64];
            size_t k;
            snprintf(n, sizeof n, "topk.%d.zs", row);
            memcpy(z, data_of(n, NULL), sizeof z);
            snprintf(n, sizeof n, "topk.%d.ids", row);
            const int *ids = data_of(n, &k);
            snprintf(n, sizeof n, "topk.%d.logp", row);
            const float *lp = data_of(n, NULL);
            snprintf(n, sizeof n, "topk.%d.target", row);
            const int tg = *(const int *)data_of(n, NULL);
            rf_loss_config lc = {.alpha = 0.7f, .temperature = 2.0f, .topk_mode = mode};
            rf_loss_row r;
            rf_loss_topk(z, V, ids, lp, (int)k, tg, &lc, 1.0f, true, &r);
            const double T = 2.0, loss = 0.7 * T * T * r.kl + 0.3 * r.ce;
            snprintf(n, sizeof n, "topk.%d.loss%d", row, mode);
            char w[64];
            snprintf(w, sizeof w, "top-6 row %d %s: loss", row, mode ? "bucket" : "ignore");
            cmp_scalar(w, loss, f64(n, 0));
            snprintf(n, sizeof n, "topk.%d.grad%d", row, mode);
            snprintf(w, sizeof w, "top-6 row %d %s: dL/dz", row, mode ? "bucket" : "ignore");
            cmp(w, z, data_of(n, NULL), V, TOL);
        }
}

/* PEFT initialisation: B = 0, so A's first gradient is zero and Muon's
 * NS5 of it must stay zero (FORMATS.md "Muon"): A moves only by weight decay. */
static void test_peft_init_muon(void **state)
{
    fx *f = *state;
    rf_error err = {0};
    rf_lora lo;
    rf_lora_config lc = {.r = 4, .alpha = 8, .targets = RF_LORA_ALL, .seed = 42};
    assert_int_equal(rf_lora_init(&lo, &f->s.config, &lc, &err), 0);
    rf_lora_pair *p = rf_lora_at(&lo, 1, RF_LIN_UP);
    double bound = 1 / sqrt(p->in), mx = 0;
    for (int i = 0; i < lc.r * p->in; i++)
        mx = fmax(mx, fabs(p->A[i]));
    assert_true(mx <= bound && mx > 0.8 * bound); /* U(−1/√in, 1/√in) */
    rf_trainer tr;
    assert_int_equal(rf_trainer_init(&tr, &f->s, RF_TRAIN_LORA, &lo, 2, 8, 0, &err), 0);
    rf_optim_config oc;
    rf_optim_config_default(&oc);
    oc.kind = RF_OPT_MUON, oc.lr = 0.02f, oc.sched = RF_SCHED_CONSTANT;
    rf_optim opt;
    assert_int_equal(rf_optim_init(&opt, &oc, &err), 0);
    assert_int_equal(rf_trainer_add_params(&tr, &opt, &err), 0);
    assert_int_equal(rf_optim_ready(&opt, &err), 0);
    float *a0 = malloc(sizeof(float) * lc.r * p->in);
    memcpy(a0, p->A, sizeof(float) * lc.r * p->in);
    rf_loss_config lsc = {.alpha = 0, .temperature = 1};
    rf_train_stats s;
    assert_int_equal(rf_train_forward(&tr, f->ids, &err), 0);
    assert_int_equal(rf_train_loss(&tr, NULL, NULL, f->targets, &lsc, 1, true, &s, &err), 0);
    assert_int_equal(rf_train_backward(&tr, &err), 0);
    double gA = 0, gB = 0;
    for (int i = 0; i < lc.r * p->in; i++)
        gA = fmax(gA, fabs(p->dA[i]));
    for (int i = 0; i < lc.r * p->out; i++)
        gB = fmax(gB, fabs(p->dB[i]));
    printf("  PEFT init: max |dA| %.3g, max |dB| %.3g\n", gA, gB);
    assert_true(gA == 0 && gB > 0);
    rf_optim_step(&opt, NULL);
    assert_memory_equal(a0, p->A, sizeof(float) * lc.r * p->in);
    float nb = 0;
    for (int i = 0; i < lc.r * p->out; i++)
        nb = fmaxf(nb, fabsf(p->B[i]));
    assert_true(nb > 0);
    free(a0);
    rf_optim_free(&opt);
    rf_trainer_free(&tr);
    rf_lora_free(&lo);
}

/* One step's loss and every adapter gradient with a GPTQ W4A16 model (the
 * fixture gptq_ext: act-order groups, asymmetric) as the LoRA student over
 * its frozen 4-bit base, or as the frozen teacher, against torch over the
 * dequantized weights (train_reference.py, cases gptq_student and
 * gptq_teacher: α 0.5, T 2). */
static void gptq_case(fx *f, const char *name, bool gptq_student)
{
    rf_error err = {0};
    rf_llama_model g;
    rf_lora lo;
    rf_trainer st, tt;
    assert_int_equal(rf_llama_load(&g, FIX "gptq_ext", NULL, &err), 0);
    assert_int_equal(g.n_gptq, 14);
    if (rf_lora_load_peft(&lo, &f->s.config, FIX "train/adapter_init", &err) < 0)
        fail_msg("%s", err.msg);
    const rf_llama_model *sm = gptq_student ? &g : &f->s, *tm = gptq_student ? &f->t : &g;
    assert_int_equal(rf_trainer_init(&st, sm, RF_TRAIN_LORA, &lo, 2, 8, 5, &err), 0);
    assert_int_equal(rf_trainer_init(&tt, tm, RF_TRAIN_FROZEN, NULL, 2, 8, 5, &err), 0);
    rf_loss_config lc = {.alpha = 0.5f, .temperature = 2.0f};
    rf_train_stats s;
    assert_int_equal(rf_train_forward(&st, f->ids, &err), 0);
    assert_int_equal(rf_train_forward(&tt, f->ids, &err), 0);
    assert_int_equal(rf_train_loss(&st, &tt, NULL, f->targets, &lc, 1.0f, true, &s, &err), 0);
    assert_int_equal(rf_train_backward(&st, &err), 0);
    char k[160], w[80];
    snprintf(k, sizeof k, "%s.loss", name);
    snprintf(w, sizeof w, "%s: loss", name);
    cmp_scalar(w, s.loss, f64(k, 0));
    snprintf(w, sizeof w, "%s: ce", name);
    cmp_scalar(w, s.ce, f64(k, 1));
    snprintf(w, sizeof w, "%s: kl", name);
    cmp_scalar(w, s.kl, f64(k, 2));
    for (int l = 0; l < lo.n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++)
            for (int ab = 0; ab < 2; ab++) {
                const rf_lora_pair *p = rf_lora_at(&lo, l, t);
                char prefix[48];
                size_t cnt;
                snprintf(prefix, sizeof prefix, "%s.grad.", name);
                peft_name(k, sizeof k, prefix, l, t, ab);
                const float *ref = data_of(k, &cnt);
                cmp(k, ab ? p->dB : p->dA, ref, cnt, TOL);
            }
    rf_trainer_free(&st);
    rf_trainer_free(&tt);
    rf_lora_free(&lo);
    rf_llama_free(&g);
}

static void test_gptq_student(void **state)
{
    gptq_case(*state, "gptq_student", true);
}

static void test_gptq_teacher(void **state)
{
    gptq_case(*state, "gptq_teacher", false);
}

/* A GPTQ base cannot take full-parameter gradients: refused, not run. */
static void test_gptq_full_refused(void **state)
{
    rf_error err = {0};
    rf_llama_model g;
    rf_trainer ft;
    assert_int_equal(rf_llama_load(&g, FIX "gptq_ext", NULL, &err), 0);
    assert_int_equal(rf_trainer_init(&ft, &g, RF_TRAIN_FULL, NULL, 2, 8, 0, &err), RF_EUNSUPPORTED);
    printf("  full on GPTQ: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "GPTQ"));
    rf_llama_free(&g);
}

/* ---- several optimiser steps ------------------------------------------- */

static const struct {
    const char *name;
    int rows, cols; /* cols 0: a vector */
    bool muon_ok;
} k_step_params[] = {
    {"tall", 12, 4, true}, {"wide", 4, 12, true}, {"square", 8, 8, true},
    {"vec", 8, 0, false},  {"emb", 10, 6, false},
};
#define N_STEP_PARAMS 5
#define N_STEPS 6
/* Tighter than TOL: no forward pass in between, only f32 rounding of the
 * update (observed ~2e-7), so that a constant slightly off still shows. */
#define STEP_TOL 2e-6

/* Runs the six steps of case (train_reference.py optimiser_steps) under oc
 * and returns the worst relative difference from the reference over every
 * step and parameter; prints each step's worst when verbose. */
static double optim_case(const char *c, const rf_optim_config *oc, bool verbose)
{
    rf_error err = {0};
    rf_optim opt;
    assert_int_equal(rf_optim_init(&opt, oc, &err), 0);
    float *data[N_STEP_PARAMS], *grad[N_STEP_PARAMS];
    size_t n[N_STEP_PARAMS];
    char k[96];
    for (int i = 0; i < N_STEP_PARAMS; i++) {
        const int rows = k_step_params[i].rows, cols = k_step_params[i].cols;
        n[i] = (size_t)rows * (size_t)(cols ? cols : 1);
        data[i] = malloc(sizeof(float) * n[i]);
        grad[i] = calloc(n[i], sizeof(float));
        snprintf(k, sizeof k, "steps.%s.p0.%s", c, k_step_params[i].name);
        size_t cnt;
        memcpy(data[i], data_of(k, &cnt), sizeof(float) * n[i]);
        assert_int_equal(cnt, n[i]);
        assert_int_equal(
            rf_optim_add(&opt, data[i], grad[i], rows, cols, k_step_params[i].muon_ok, &err), 0);
    }
    assert_int_equal(rf_optim_ready(&opt, &err), 0);
    double worst = 0;
    for (int t = 1; t <= N_STEPS; t++) {
        for (int i = 0; i < N_STEP_PARAMS; i++) {
            snprintf(k, sizeof k, "steps.%s.g%d.%s", c, t, k_step_params[i].name);
            memcpy(grad[i], data_of(k, NULL), sizeof(float) * n[i]);
        }
        rf_optim_step(&opt, NULL);
        double step_worst = 0;
        for (int i = 0; i < N_STEP_PARAMS; i++) {
            snprintf(k, sizeof k, "steps.%s.p%d.%s", c, t, k_step_params[i].name);
            const float *ref = data_of(k, NULL);
            double mabs = 0, mref = 0;
            for (size_t j = 0; j < n[i]; j++) {
                mabs = fmax(mabs, fabs((double)data[i][j] - ref[j]));
                mref = fmax(mref, fabs((double)ref[j]));
            }
            step_worst = fmax(step_worst, mabs / mref);
        }
        if (verbose)
            printf("  %-12s step %d: worst rel %.2e over tall, wide, square, vec, emb %s\n", c, t,
                   step_worst, step_worst <= STEP_TOL ? "OK" : "FAIL");
        worst = fmax(worst, step_worst);
    }
    for (int i = 0; i < N_STEP_PARAMS; i++)
        free(data[i]), free(grad[i]);
    rf_optim_free(&opt);
    return worst;
}

static void test_optim_steps(void **state)
{
    (void)state;
    const char *cases[] = {"adamw", "adamw_clip", "muon", "muon_rms"};
    for (int c = 0; c < 4; c++) {
        rf_optim_config oc;
        rf_optim_config_default(&oc);
        oc.kind = c < 2 ? RF_OPT_ADAMW : RF_OPT_MUON;
        oc.muon_scale = c == 3 ? RF_MUON_MATCH_RMS_ADAMW : RF_MUON_ORIGINAL;
        oc.lr = c < 2 ? 1e-2f : 2e-2f;
        oc.adamw_lr = c < 2 ? 0 : 3e-3f;
        oc.weight_decay = 0.1f, oc.sched = RF_SCHED_CONSTANT;
        oc.clip_norm = c == 1 ? 1.0f : 0;
        assert_true(optim_case(cases[c], &oc, true) <= STEP_TOL);
        /* The constants one step hides, each made wrong: the comparison must miss. */
        rf_optim_config bad = oc;
        if (c == 0) bad.beta1 = 0.8f;
        if (c == 1) bad.clip_norm = 0;
        if (c >= 2) bad.momentum = 0.9f;
        double miss = optim_case(cases[c], &bad, false);
        printf("  %-12s with %s: worst rel %.2e (must miss)\n", cases[c],
               c == 0   ? "beta1 0.8"
               : c == 1 ? "no clipping"
                        : "momentum 0.9",
               miss);
        assert_true(miss > 10 * STEP_TOL);
        if (c == 0) {
            bad = oc, bad.beta2 = 0.99f;
            miss = optim_case(cases[c], &bad, false);
            printf("  %-12s with beta2 0.99: worst rel %.2e (must miss)\n", cases[c], miss);
            assert_true(miss > 10 * STEP_TOL);
        }
    }
}

/* Five real steps from adapter_init (train_reference.py train_steps). */
static void test_train_five_steps(void **state)
{
    fx *f = *state;
    for (int o = 0; o < 2; o++) {
        const char *name = o ? "muon" : "adamw";
        rf_error err = {0};
        rf_lora lo;
        rf_trainer st;
        if (rf_lora_load_peft(&lo, &f->s.config, FIX "train/adapter_init", &err) < 0)
            fail_msg("%s", err.msg);
        assert_int_equal(rf_trainer_init(&st, &f->s, RF_TRAIN_LORA, &lo, 2, 8, 5, &err), 0);
        rf_optim_config oc;
        rf_optim_config_default(&oc);
        oc.kind = o ? RF_OPT_MUON : RF_OPT_ADAMW;
        oc.lr = o ? 2e-2f : 1e-2f, oc.weight_decay = 0.1f, oc.sched = RF_SCHED_CONSTANT;
        rf_optim opt;
        assert_int_equal(rf_optim_init(&opt, &oc, &err), 0);
        assert_int_equal(rf_trainer_add_params(&st, &opt, &err), 0);
        assert_int_equal(rf_optim_ready(&opt, &err), 0);
        rf_loss_config lc = {.alpha = 0.5f, .temperature = 2.0f};
        char k[160], w[80];
        snprintf(k, sizeof k, "train5.%s.loss", name);
        for (int s = 0; s < 5; s++) {
            rf_train_stats ts;
            assert_int_equal(rf_train_forward(&st, f->ids, &err), 0);
            assert_int_equal(rf_train_forward(&f->tt, f->ids, &err), 0);
            assert_int_equal(
                rf_train_loss(&st, &f->tt, NULL, f->targets, &lc, 1.0f, true, &ts, &err), 0);
            assert_int_equal(rf_train_backward(&st, &err), 0);
            snprintf(w, sizeof w, "%s: loss before step %d", name, s + 1);
            cmp_scalar(w, ts.loss, f64(k, s));
            rf_optim_step(&opt, NULL);
        }
        assert_true(f64(k, 4) < f64(k, 0)); /* it learns */
        for (int l = 0; l < lo.n_layers; l++)
            for (int t = 0; t < RF_LIN_COUNT; t++)
                for (int ab = 0; ab < 2; ab++) {
                    const rf_lora_pair *p = rf_lora_at(&lo, l, t);
                    char prefix[32];
                    size_t cnt;
                    snprintf(prefix, sizeof prefix, "train5.%s.", name);
                    peft_name(k, sizeof k, prefix, l, t, ab);
                    const float *ref = data_of(k, &cnt);
                    cmp(k, ab ? p->B : p->A, ref, cnt, TOL);
                }
        rf_optim_free(&opt);
        rf_trainer_free(&st);
        rf_lora_free(&lo);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses),         cmocka_unit_test(test_grads_and_steps),
        cmocka_unit_test(test_full_grads),     cmocka_unit_test(test_topk),
        cmocka_unit_test(test_peft_init_muon), cmocka_unit_test(test_gptq_student),
        cmocka_unit_test(test_gptq_teacher),   cmocka_unit_test(test_gptq_full_refused),
        cmocka_unit_test(test_optim_steps),    cmocka_unit_test(test_train_five_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
