/* LoRA adapters (engine/lora.h): PEFT export → import round trip (config
 * and every tensor), merge then unmerge restores the weight, and the merged
 * checkpoint in HF layout loads with the engine's own loader and gives the
 * logits of base + adapters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/llama.h"
#include "engine/model/lora.h"
#include "engine/train/train.h"

#define FIX "tests/reference/fixtures/"

static void rm_dir(const char *dir)
{
    const char *files[] = {"adapter_config.json", "adapter_model.safetensors", "config.json",
                           "model.safetensors", "generation_config.json"};
    char p[512];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void test_peft_round_trip(void **state)
{
    rf_error err = {0};
    rf_llama_config c;
    assert_int_equal(rf_llama_config_load(&c, FIX "llama_f32_gqa", &err), 0);
    rf_lora a, b;
    rf_lora_config lc = {.r = 3,
                         .alpha = 6,
                         .dropout = 0.1f,
                         .rslora = true,
                         .targets = 1u << RF_LIN_Q | 1u << RF_LIN_V | 1u << RF_LIN_DOWN,
                         .seed = 9};
    assert_int_equal(rf_lora_init(&a, &c, &lc, &err), 0);
    for (size_t i = 0; i < a.n_params; i++) /* B non-zero too */
        a.params[i] += 0.01f * (float)((i * 7919) % 13);
    char dir[] = "/tmp/rf_lora_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(rf_lora_save_peft(&a, dir, "llama_f32_gqa", &err), 0);
    if (rf_lora_load_peft(&b, &c, dir, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(b.cfg.r, 3);
    assert_true(b.cfg.alpha == 6 && b.cfg.rslora && fabsf(b.cfg.dropout - 0.1f) < 1e-6);
    assert_int_equal(b.cfg.targets, lc.targets);
    assert_true(fabsf(b.scale - 6 / sqrtf(3)) < 1e-6); /* rsLoRA: alpha/√r */
    assert_int_equal(b.n_params, a.n_params);
    assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
    assert_null(rf_lora_at(&b, 0, RF_LIN_K)->A);
    rf_lora_free(&a);
    rf_lora_free(&b);
    rm_dir(dir);
}

static void test_merge_unmerge(void **state)
{
    rf_error err = {0};
    rf_llama_model m;
    assert_int_equal(rf_llama_load(&m, FIX "llama_f32_gqa", NULL, &err), 0);
    rf_lora lo;
    assert_int_equal(rf_lora_load_peft(&lo, &m.config, FIX "train/adapter_init", &err), 0);
    const rf_tensor *w = &m.w.layers[1].lin[RF_LIN_GATE].w;
    rf_tensor t;
    assert_int_equal(rf_tensor_alloc(&t, RF_DTYPE_F32, 2, w->shape, &err), 0);
    memcpy(t.data, w->data, rf_tensor_nbytes(&t));
    assert_int_equal(rf_lora_merge_into(&lo, 1, RF_LIN_GATE, &t, +1, &err), 0);
    /* merged = W + s·B·A, checked in double at a few places */
    const rf_lora_pair *p = rf_lora_at(&lo, 1, RF_LIN_GATE);
    double md = 0;
    for (int o = 0; o < p->out; o += 7)
        for (int i = 0; i < p->in; i += 5) {
            double d = ((const float *)w->data)[o * p->in + i];
            for (int k = 0; k < lo.cfg.r; k++)
                d += lo.scale * (double)p->B[o * lo.cfg.r + k] * p->A[k * p->in + i];
            md = fmax(md, fabs(d - ((float *)t.data)[o * p->in + i]));
        }
    printf("  merge: max |W+sBA − merged| %.2e\n", md);
    assert_true(md < 1e-6);
    assert_int_equal(rf_lora_merge_into(&lo, 1, RF_LIN_GATE, &t, -1, &err), 0);
    double mu = 0;
    for (int i = 0; i < p->out * p->in; i++)
        mu = fmax(mu, fabs(((float *)t.data)[i] - ((const float *)w->data)[i]));
    printf("  unmerge: max |W − unmerged| %.2e\n", mu);
    assert_true(mu < 1e-6);
    rf_tensor_free(&t);
    rf_lora_free(&lo);
    rf_llama_free(&m);
}

static void test_merged_export(void **state)
{
    rf_error err = {0};
    rf_llama_model m, merged;
    assert_int_equal(rf_llama_load(&m, FIX "llama_f32_gqa", NULL, &err), 0);
    rf_lora lo;
    assert_int_equal(rf_lora_load_peft(&lo, &m.config, FIX "train/adapter_init", &err), 0);
    char dir[] = "/tmp/rf_merged_XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (rf_lora_export_merged(&lo, &m, FIX "llama_f32_gqa", dir, &err) < 0) fail_msg("%s", err.msg);
    if (rf_llama_load(&merged, dir, NULL, &err) < 0) fail_msg("%s", err.msg);
    /* logits of base + adapters (trainer) against the merged model's forward */
    const int T = 8, V = m.config.vocab_size, ids[8] = {5, 17, 200, 3, 3, 99, 255, 0};
    rf_trainer tr;
    assert_int_equal(rf_trainer_init(&tr, &m, RF_TRAIN_FROZEN, &lo, 1, T, T, &err), 0);
    assert_int_equal(rf_train_forward(&tr, ids, &err), 0);
    rf_linear_forward(m.ops, &m.w.lm_head, NULL, tr.a.logits, tr.a.xnf, T, tr.a.scratch,
                      tr.a.scratch_n);
    rf_llama_acts a;
    assert_int_equal(rf_llama_acts_init(&a, &merged.config, 1, T, T, &err), 0);
    float *lg = malloc(sizeof(float) * T * V);
    int pos0 = 0;
    assert_int_equal(rf_llama_forward(&merged, &a, 1, T, ids, &pos0, lg, true, &err), 0);
    double mabs = 0, mref = 0;
    for (int i = 0; i < T * V; i++) {
        mabs = fmax(mabs, fabs(lg[i] - tr.a.logits[i]));
        mref = fmax(mref, fabs(tr.a.logits[i]));
    }
    printf("  merged checkpoint vs base+LoRA logits: max abs %.2e rel %.2e\n", mabs, mabs / mref);
    assert_true(mabs / mref < 1e-5);
    free(lg);
    rf_llama_acts_free(&a);
    rf_trainer_free(&tr);
    rf_llama_free(&merged);
    rf_lora_free(&lo);
    rf_llama_free(&m);
    rm_dir(dir);
}

/* A bf16 base with tied embeddings: the merged checkpoint keeps bf16 (the
 * base dtype) and no lm_head, and its logits match base + adapters up to
 * bf16 rounding of the merged weights. */
static void test_merged_export_bf16(void **state)
{
    rf_error err = {0};
    rf_llama_model m, merged;
    assert_int_equal(rf_llama_load(&m, FIX "llama3_bf16_tied", NULL, &err), 0);
    rf_lora lo;
    rf_lora_config lc = {.r = 4, .alpha = 8, .targets = RF_LORA_ALL, .seed = 3};
    assert_int_equal(rf_lora_init(&lo, &m.config, &lc, &err), 0);
    for (size_t i = 0; i < lo.n_params; i++) /* B non-zero so the merge changes W */
        if (lo.params[i] == 0) lo.params[i] = 0.05f * (float)((int)(i % 7) - 3);
    char dir[] = "/tmp/rf_merged16_XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (rf_lora_export_merged(&lo, &m, FIX "llama3_bf16_tied", dir, &err) < 0)
        fail_msg("%s", err.msg);
    if (rf_llama_load(&merged, dir, NULL, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(merged.w.layers[0].lin[RF_LIN_Q].w.dtype, RF_DTYPE_BF16);
    assert_int_equal(merged.w.embed.dtype, RF_DTYPE_BF16);
    assert_true(merged.config.tie_embeddings);
    const int T = 6, V = m.config.vocab_size, ids[6] = {1, 50, 7, 7, 200, 31};
    rf_trainer tr;
    assert_int_equal(rf_trainer_init(&tr, &m, RF_TRAIN_FROZEN, &lo, 1, T, T, &err), 0);
    assert_int_equal(rf_train_forward(&tr, ids, &err), 0);
    rf_linear_forward(m.ops, &m.w.lm_head, NULL, tr.a.logits, tr.a.xnf, T, tr.a.scratch,
                      tr.a.scratch_n);
    rf_llama_acts a;
    assert_int_equal(rf_llama_acts_init(&a, &merged.config, 1, T, T, &err), 0);
    float *lg = malloc(sizeof(float) * T * V);
    int pos0 = 0;
    assert_int_equal(rf_llama_forward(&merged, &a, 1, T, ids, &pos0, lg, true, &err), 0);
    double mabs = 0, mref = 0, mbase = 0;
    int p0 = 0;
    assert_int_equal(rf_llama_forward(&m, &a, 1, T, ids, &p0, NULL, false, &err), 0);
    for (int i = 0; i < T * V; i++) {
        mabs = fmax(mabs, fabs(lg[i] - tr.a.logits[i]));
        mref = fmax(mref, fabs(tr.a.logits[i]));
    }
    for (int i = 0; i < V; i++) /* how far the adapters moved the last position */
        mbase = fmax(mbase, fabs(a.logits[i] - tr.a.logits[(T - 1) * V + i]));
    printf("  bf16 merged vs base+LoRA logits: max abs %.2e rel %.2e (adapters moved them by "
           "%.2e)\n",
           mabs, mabs / mref, mbase);
    assert_true(mabs / mref < 2e-2);
    assert_true(mbase > 5 * mabs);
    free(lg);
    rf_llama_acts_free(&a);
    rf_trainer_free(&tr);
    rf_llama_free(&merged);
    rf_lora_free(&lo);
    rf_llama_free(&m);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peft_round_trip),
        cmocka_unit_test(test_merge_unmerge),
        cmocka_unit_test(test_merged_export),
        cmocka_unit_test(test_merged_export_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
