/* Training end to end on a toy task: each answer token is f(previous token)
 * for a fixed permutation f of 32 symbols (the first two positions are the
 * prompt, masked). Checks that
 *  - a LoRA student (Muon, warm-up + cosine, clipping, accumulation 2)
 *    learns it: held-out CE falls below a quarter of its start;
 *  - distillation (α = 1) from a better teacher (the base trained on the
 *    task, full-parameter, saved as an HF checkpoint and loaded back) reaches
 *    a lower held-out KL to that teacher than CE alone, same steps and init;
 *  - a run checkpointed half-way and resumed into fresh objects (other seed,
 *    so the load must overwrite everything) ends with the same adapter as
 *    one that ran straight through, within 1e-6. */
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
#include "engine/train/train_state.h"

#define STUDENT "tests/reference/fixtures/llama_f32_gqa"
#define B 4
#define T 8

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int f(int x) /* a permutation of 10..41 */
{
    return 10 + ((x - 10) * 5 + 3) % 32;
}

static void make_batch(uint64_t *rng, int *ids, int *targets)
{
    for (int b = 0; b < B; b++) {
        int x = 10 + (int)(next(rng) % 32);
        for (int t = 0; t < T; t++, x = f(x))
            ids[b * T + t] = x;
        for (int t = 0; t < T; t++)
            targets[b * T + t] = t >= 1 && t + 1 < T ? ids[b * T + t + 1] : -1;
    }
}

typedef struct run {
    rf_llama_model *m;
    rf_lora lora;
    rf_trainer tr;
    rf_optim opt;
    rf_train_cursor cur;
} run;

static void run_init(run *r, rf_llama_model *m, uint64_t seed, float dropout, rf_optim_kind kind,
                     float lr, int total)
{
    rf_error err = {0};
    memset(r, 0, sizeof *r);
    r->m = m;
    rf_lora_config lc = {
        .r = 8, .alpha = 16, .dropout = dropout, .targets = RF_LORA_ALL, .seed = seed};
    assert_int_equal(rf_lora_init(&r->lora, &m->config, &lc, &err), 0);
    assert_int_equal(rf_trainer_init(&r->tr, m, RF_TRAIN_LORA, &r->lora, B, T, 0, &err), 0);
    rf_optim_config oc;
    rf_optim_config_default(&oc);
    oc.kind = kind, oc.lr = lr, oc.muon_scale = RF_MUON_MATCH_RMS_ADAMW;
    oc.warmup_steps = 3, oc.total_steps = total, oc.clip_norm = 1.0f, oc.weight_decay = 0.01f;
    assert_int_equal(rf_optim_init(&r->opt, &oc, &err), 0);
    assert_int_equal(rf_trainer_add_params(&r->tr, &r->opt, &err), 0);
    assert_int_equal(rf_optim_ready(&r->opt, &err), 0);
    r->cur.rng = 0x1234567;
}

static void run_free(run *r)
{
    rf_optim_free(&r->opt);
    rf_trainer_free(&r->tr);
    rf_lora_free(&r->lora);
}

/* n optimiser steps of 2 accumulated micro-batches each. */
static void train(run *r, rf_trainer *teacher, float alpha, int n)
{
    rf_error err = {0};
    int ids[B * T], tg[B * T];
    rf_loss_config lc = {.alpha = alpha, .temperature = 1.0f};
    for (int s = 0; s < n; s++) {
        for (int micro = 0; micro < 2; micro++) {
            make_batch(&r->cur.rng, ids, tg);
            r->cur.index++;
            rf_train_stats st;
            assert_int_equal(rf_train_forward(&r->tr, ids, &err), 0);
            if (teacher) assert_int_equal(rf_train_forward(teacher, ids, &err), 0);
            assert_int_equal(rf_train_loss(&r->tr, teacher, NULL, tg, &lc, 0.5f, true, &st, &err),
                             0);
            assert_int_equal(rf_train_backward(&r->tr, &err), 0);
            r->cur.tokens += st.n_tokens;
        }
        rf_optim_step(&r->opt, NULL);
    }
}

/* Held-out CE, and KL(teacher ‖ student) when a teacher is given, over 4 batches. */
static void held_out(rf_trainer *s, rf_trainer *teacher, double *ce, double *kl)
{
    rf_error err = {0};
    uint64_t rng = 0xabcdef99;
    int ids[B * T], tg[B * T];
    rf_loss_config lc = {.alpha = 1.0f, .temperature = 1.0f};
    *ce = *kl = 0;
    for (int i = 0; i < 4; i++) {
        make_batch(&rng, ids, tg);
        rf_train_stats st;
        assert_int_equal(rf_train_forward(s, ids, &err), 0);
        if (teacher) assert_int_equal(rf_train_forward(teacher, ids, &err), 0);
        assert_int_equal(rf_train_loss(s, teacher, NULL, tg, &lc, 1, false, &st, &err), 0);
        *ce += st.ce / 4, *kl += st.kl / 4;
    }
}

static void test_learns(void **state)
{
    rf_error err = {0};
    rf_llama_model m;
    assert_int_equal(rf_llama_load(&m, STUDENT, NULL, &err), 0);
    run r;
    run_init(&r, &m, 1, 0.0f, RF_OPT_MUON, 0.02f, 60);
    double ce0, ce, kl;
    held_out(&r.tr, NULL, &ce0, &kl);
    printf("  LoRA r=8, Muon: held-out CE step 0: %.4f\n", ce0);
    for (int k = 1; k <= 4; k++) {
        train(&r, NULL, 0.0f, 15);
        held_out(&r.tr, NULL, &ce, &kl);
        printf("  LoRA r=8, Muon: held-out CE step %d: %.4f\n", 15 * k, ce);
    }
    assert_true(ce < ce0 / 4); /* from ~ln(256) to well below */
    run_free(&r);
    rf_llama_free(&m);
}

static void test_distillation_beats_ce(void **state)
{
    rf_error err = {0};
    rf_llama_model m, tm;
    assert_int_equal(rf_llama_load(&m, STUDENT, NULL, &err), 0);
    /* The teacher: the base trained on the task with every weight (AdamW). */
    rf_trainer full;
    assert_int_equal(rf_trainer_init(&full, &m, RF_TRAIN_FULL, NULL, B, T, 0, &err), 0);
    rf_optim_config oc;
    rf_optim_config_default(&oc);
    oc.lr = 3e-3f, oc.sched = RF_SCHED_CONSTANT;
    rf_optim opt;
    assert_int_equal(rf_optim_init(&opt, &oc, &err), 0);
    assert_int_equal(rf_trainer_add_params(&full, &opt, &err), 0);
    assert_int_equal(rf_optim_ready(&opt, &err), 0);
    uint64_t rng = 77;
    int ids[B * T], tg[B * T];
    rf_loss_config lc = {.alpha = 0, .temperature = 1};
    for (int s = 0; s < 12; s++) {
        rf_train_stats st;
        make_batch(&rng, ids, tg);
        assert_int_equal(rf_train_forward(&full, ids, &err), 0);
        assert_int_equal(rf_train_loss(&full, NULL, NULL, tg, &lc, 1, true, &st, &err), 0);
        assert_int_equal(rf_train_backward(&full, &err), 0);
        rf_optim_step(&opt, NULL);
    }
    char dir[] = "/tmp/rf_teacher_XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (rf_trainer_save_full(&full, STUDENT, dir, RF_DTYPE_F32, &err) < 0) fail_msg("%s", err.msg);
    rf_optim_free(&opt);
    rf_trainer_free(&full);
    if (rf_llama_load(&tm, dir, NULL, &err) < 0) fail_msg("%s", err.msg);
    rf_trainer teacher;
    assert_int_equal(rf_trainer_init(&teacher, &tm, RF_TRAIN_FROZEN, NULL, B, T, 0, &err), 0);
    double tce, tkl;
    held_out(&teacher, NULL, &tce, &tkl);
    printf("  teacher (full-parameter, 12 steps, reloaded from its checkpoint): held-out CE %.4f\n",
           tce);

    double ce_kl[2], ce_ce[2];
    for (int kd = 0; kd < 2; kd++) {
        run r;
        run_init(&r, &m, 5, 0.0f, RF_OPT_MUON, 0.02f, 20);
        train(&r, kd ? &teacher : NULL, kd ? 1.0f : 0.0f, 20);
        held_out(&r.tr, &teacher, &ce_ce[kd], &ce_kl[kd]);
        printf("  student %-12s 20 steps: held-out KL to teacher %.4f, CE %.4f\n",
               kd ? "KD (α=1)" : "CE only", ce_kl[kd], ce_ce[kd]);
        run_free(&r);
    }
    assert_true(ce_kl[1] < ce_kl[0]);
    rf_trainer_free(&teacher);
    rf_llama_free(&tm);
    rf_llama_free(&m);
    char p[512];
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void test_resume_matches(void **state)
{
    rf_error err = {0};
    rf_llama_model m;
    assert_int_equal(rf_llama_load(&m, STUDENT, NULL, &err), 0);
    const int N = 6;
    /* straight through, dropout on so that the trainer's stream matters */
    run a;
    run_init(&a, &m, 3, 0.1f, RF_OPT_MUON, 0.02f, 2 * N);
    train(&a, NULL, 0.0f, 2 * N);
    /* half, checkpoint, then fresh objects (another seed) resumed */
    char path[] = "/tmp/rf_state_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    run b;
    run_init(&b, &m, 3, 0.1f, RF_OPT_MUON, 0.02f, 2 * N);
    train(&b, NULL, 0.0f, N);
    if (rf_train_state_save(path, &b.tr, &b.opt, &b.cur, &err) < 0) fail_msg("%s", err.msg);
    run_free(&b);
    run c;
    run_init(&c, &m, 999, 0.1f, RF_OPT_MUON, 0.02f, 2 * N);
    c.cur.rng = 1;
    if (rf_train_state_load(path, &c.tr, &c.opt, &c.cur, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(c.opt.step, N);
    train(&c, NULL, 0.0f, N);
    double md = 0, mx = 0;
    for (size_t i = 0; i < a.lora.n_params; i++) {
        md = fmax(md, fabs(a.lora.params[i] - c.lora.params[i]));
        mx = fmax(mx, fabs(a.lora.params[i]));
    }
    printf("  resumed vs straight-through adapter: max abs diff %.3g (max |param| %.3g), "
           "data index %lld vs %lld\n",
           md, mx, (long long)c.cur.index, (long long)a.cur.index);
    assert_true(md <= 1e-6);
    assert_int_equal(c.cur.index, a.cur.index);
    assert_int_equal(c.cur.tokens, a.cur.tokens);
    /* and a checkpoint of the wrong shape is refused with a reason */
    run d;
    rf_lora_config lc = {.r = 2, .alpha = 4, .targets = RF_LORA_ALL, .seed = 1};
    memset(&d, 0, sizeof d);
    assert_int_equal(rf_lora_init(&d.lora, &m.config, &lc, &err), 0);
    assert_int_equal(rf_trainer_init(&d.tr, &m, RF_TRAIN_LORA, &d.lora, B, T, 0, &err), 0);
    rf_optim_config oc;
    rf_optim_config_default(&oc);
    assert_int_equal(rf_optim_init(&d.opt, &oc, &err), 0);
    assert_int_equal(rf_trainer_add_params(&d.tr, &d.opt, &err), 0);
    assert_int_equal(rf_optim_ready(&d.opt, &err), 0);
    assert_int_equal(rf_train_state_load(path, &d.tr, &d.opt, &d.cur, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "params"));
    run_free(&d);
    unlink(path);
    run_free(&a);
    run_free(&c);
    rf_llama_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_distillation_beats_ce),
        cmocka_unit_test(test_resume_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
