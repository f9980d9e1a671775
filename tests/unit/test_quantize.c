/* Model-level quantization on the tiny fixture (tests/reference/fixtures/
 * llama_f32_gqa): GPTQ and RTN checkpoints are written, loaded back by the
 * engine (W4A16 matmul), and compared with a dense model built from the
 * checkpoint's own dequantized weights (the loaders' formula); GPTQ's
 * perplexity increase over the original is smaller than RTN's; act-order
 * checkpoints (non-monotonic g_idx) load and compute; bad input is refused
 * before anything is written. Calibration and evaluation text is sampled
 * from the original model, so that its perplexity means something. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/quant/gptq_pack.h"
#include "engine/model/llama.h"
#include "engine/quant/quantize.h"
#include "engine/core/safetensors.h"
#include "engine/generate/sampler.h"

#define FIX "tests/reference/fixtures/llama_f32_gqa"
#define NSEQ 8
#define SEQ 64

static char g_dir[64];

static uint64_t g_rng;
static double urand01(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / (double)(1ull << 53);
}

/* n sequences of len tokens sampled at temperature 1 from the model. */
static int32_t *sample_text(const char *dir, int n, int len, uint64_t seed)
{
    rf_llama_model m;
    rf_llama_acts a;
    rf_error err = {0};
    assert_int_equal(rf_llama_load(&m, dir, NULL, &err), 0);
    assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, len, len, &err), 0);
    const int V = m.config.vocab_size;
    int32_t *out = malloc(sizeof(int32_t) * n * len);
    float *p = malloc(sizeof(float) * V);
    g_rng = seed;
    for (int s = 0; s < n; s++) {
        int tok = (int)(urand01() * V);
        for (int t = 0; t < len; t++) {
            out[s * len + t] = tok;
            if (t + 1 == len) break;
            assert_int_equal(rf_llama_forward(&m, &a, 1, 1, &tok, &t, p, false, &err), 0);
            float mx = p[0];
            for (int i = 1; i < V; i++)
                mx = p[i] > mx ? p[i] : mx;
            double sum = 0;
            for (int i = 0; i < V; i++)
                sum += (p[i] = expf(p[i] - mx));
            double u = urand01() * sum;
            tok = V - 1;
            for (int i = 0; i < V; i++)
                if ((u -= p[i]) <= 0) {
                    tok = i;
                    break;
                }
        }
    }
    free(p);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
    return out; /* the caller frees it */
}

static double perplexity(const char *dir, const int32_t *ids, int n, int len)
{
    rf_llama_model m;
    rf_llama_acts a;
    rf_error err = {0};
    assert_int_equal(rf_llama_load(&m, dir, NULL, &err), 0);
    assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, len, len, &err), 0);
    float *scratch = malloc(sizeof(float) * len * m.config.vocab_size);
    double total = 0;
    int *seq = malloc(sizeof(int) * len);
    for (int s = 0; s < n; s++) {
        for (int t = 0; t < len; t++)
            seq[t] = ids[s * len + t];
        double lp;
        assert_int_equal(rf_llama_score(&m, &a, seq, len, 1, scratch, &lp, NULL, &err), 0);
        total += lp;
    }
    free(seq);
    free(scratch);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
    return exp(-total / ((double)n * (len - 1)));
}

/* A dense f32 checkpoint from a GPTQ one: every qweight/qzeros/scales/g_idx
 * group dequantized with the loaders' formula, everything else widened. */
static void dequantized_copy(const char *qdir, const char *out)
{
    char path[512];
    rf_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", qdir);
    rf_st_file f;
    assert_int_equal(rf_st_open(&f, path, &err), 0);
    rf_tensor *ts = calloc(f.n, sizeof *ts);
    rf_st_item *items = calloc(f.n, sizeof *items);
    char(*names)[128] = calloc(f.n, 128);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        const char *nm = f.entries[i].name;
        size_t L = strlen(nm);
        rf_tensor t;
        rf_st_view(&f, &f.entries[i], &t);
        if (L > 8 && !strcmp(nm + L - 8, ".qweight")) {
            char pre[128];
            snprintf(pre, sizeof pre, "%.*s", (int)(L - 8), nm);
            rf_gptq_packed p;
            const char *parts[4] = {"qweight", "qzeros", "scales", "g_idx"};
            rf_tensor *dst[4] = {&p.qweight, &p.qzeros, &p.scales, &p.g_idx};
            for (int j = 0; j < 4; j++) {
                char full[160];
                snprintf(full, sizeof full, "%s.%s", pre, parts[j]);
                rf_st_view(&f, rf_st_find(&f, full), dst[j]);
            }
            rf_gptq_weight w;
            assert_int_equal(rf_gptq_weight_view(&w, &p, pre, &err), 0);
            int64_t shape[2] = {w.N, w.K};
            assert_int_equal(rf_tensor_alloc(&ts[n], RF_DTYPE_F32, 2, shape, &err), 0);
            rf_gptq_dequant(&w, ts[n].data);
            snprintf(names[n], 128, "%s.weight", pre);
        } else if (t.dtype == RF_DTYPE_F16) {
            assert_int_equal(rf_tensor_alloc(&ts[n], RF_DTYPE_F32, t.ndim, t.shape, &err), 0);
            rf_to_f32(RF_DTYPE_F16, t.data, ts[n].data, (size_t)rf_tensor_numel(&t));
            snprintf(names[n], 128, "%s", nm);
        } else {
            continue; /* the other three GPTQ tensors */
        }
        items[n].name = names[n];
        items[n].tensor = &ts[n];
        n++;
    }
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    assert_int_equal(rf_st_write(path, items, n, &err), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp " FIX "/config.json %s/config.json", out);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < n; i++)
        rf_tensor_free(&ts[i]);
    free(ts), free(items), free(names);
    rf_st_close(&f);
}

/* Logits of both models on the same sequence; returns max |diff| / max |ref|. */
static double logits_rel_diff(const char *a_dir, const char *b_dir, const int32_t *ids, int len,
                              int expect_gptq)
{
    rf_llama_model a, b;
    rf_llama_acts aa, ab;
    rf_error err = {0};
    if (rf_llama_load(&a, a_dir, NULL, &err) || rf_llama_load(&b, b_dir, NULL, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a.n_gptq, expect_gptq);
    assert_int_equal(b.n_gptq, 0);
    assert_int_equal(rf_llama_acts_init(&aa, &a.config, 1, len, len, &err), 0);
    assert_int_equal(rf_llama_acts_init(&ab, &b.config, 1, len, len, &err), 0);
    const int V = a.config.vocab_size;
    float *la = malloc(sizeof(float) * len * V), *lb = malloc(sizeof(float) * len * V);
    int *seq = malloc(sizeof(int) * len), pos0 = 0;
    for (int t = 0; t < len; t++)
        seq[t] = ids[t];
    assert_int_equal(rf_llama_forward(&a, &aa, 1, len, seq, &pos0, la, true, &err), 0);
    assert_int_equal(rf_llama_forward(&b, &ab, 1, len, seq, &pos0, lb, true, &err), 0);
    /* and one decode step (the few-rows W4A16 path) */
    double md = 0, mr = 0;
    for (int i = 0; i < len * V; i++) {
        md = fmax(md, fabs(la[i] - lb[i]));
        mr = fmax(mr, fabs(lb[i]));
    }
    int p1 = len - 1;
    assert_int_equal(rf_llama_forward(&a, &aa, 1, 1, seq + len - 1, &p1, la, false, &err), 0);
    assert_int_equal(rf_llama_forward(&b, &ab, 1, 1, seq + len - 1, &p1, lb, false, &err), 0);
    for (int i = 0; i < V; i++)
        md = fmax(md, fabs(la[i] - lb[i]));
    free(la), free(lb), free(seq);
    rf_llama_acts_free(&aa), rf_llama_acts_free(&ab);
    rf_llama_free(&a), rf_llama_free(&b);
    return md / mr;
}

static void run_quantize(const char *out, bool rtn, bool desc_act, const int32_t *calib,
                         rf_quantize_report *rep)
{
    rf_quantize_opts o;
    rf_quantize_opts_default(&o);
    o.gptq.group_size = 32; /* divides 64 and 96 */
    o.gptq.desc_act = desc_act;
    o.rtn = rtn;
    rf_error err = {0};
    int rc = rf_quantize_model(FIX, out, &o, calib, NULL, NSEQ, SEQ, NULL, rep, &err);
    if (rc) printf("  %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void test_quantize_model(void **state)
{
    int32_t *calib = sample_text(FIX, NSEQ, SEQ, 1), *eval = sample_text(FIX, 6, SEQ, 2);
    char gq[128], rt[128], act[128], deq[128];
    snprintf(gq, sizeof gq, "%s/gptq", g_dir);
    snprintf(rt, sizeof rt, "%s/rtn", g_dir);
    snprintf(act, sizeof act, "%s/gptq_act", g_dir);
    snprintf(deq, sizeof deq, "%s/deq", g_dir);
    rf_quantize_report rg, rr, ra;
    run_quantize(gq, false, false, calib, &rg);
    run_quantize(rt, true, false, calib, &rr);
    run_quantize(act, false, true, calib, &ra);
    assert_int_equal(rg.n, 14);
    double sum_g = 0, sum_r = 0, sum_a = 0;
    for (int i = 0; i < rg.n; i++) {
        printf("  %-32s [%3d x %3d]  rel err GPTQ %.5f  act-order %.5f  RTN %.5f  (%.3f s)\n",
               rg.layers[i].name, rg.layers[i].N, rg.layers[i].K, rg.layers[i].rel_err,
               ra.layers[i].rel_err, rr.layers[i].rel_err, rg.layers[i].seconds);
        sum_g += rg.layers[i].rel_err;
        sum_r += rr.layers[i].rel_err;
        sum_a += ra.layers[i].rel_err;
    }
    printf("  bytes: source %zu, quantized %zu (%.2fx); calibration buffers %zu; peak RSS %ld KiB; "
           "%.2f s\n",
           rg.src_bytes, rg.out_bytes, (double)rg.src_bytes / rg.out_bytes, rg.calib_bytes,
           rg.peak_rss_kib, rg.seconds);
    assert_true(sum_g < sum_r);
    assert_true(rg.out_bytes > 0 && rg.out_bytes < rg.src_bytes);

    /* quantized model vs the dense model of its own dequantized weights */
    const char *dirs[2] = {gq, act};
    for (int d = 0; d < 2; d++) {
        dequantized_copy(dirs[d], deq);
        double rel = logits_rel_diff(dirs[d], deq, eval, SEQ, 14);
        printf("  %s: logits vs dequantized-reference forward: max rel diff %.2e\n",
               d ? "act-order" : "GPTQ", rel);
        assert_true(rel < 1e-4);
    }
    double p0 = perplexity(FIX, eval, 6, SEQ), pg = perplexity(gq, eval, 6, SEQ),
           pr = perplexity(rt, eval, 6, SEQ), pa = perplexity(act, eval, 6, SEQ);
    printf("  perplexity on sampled text: original %.4f, GPTQ %.4f (+%.4f), GPTQ act-order %.4f "
           "(+%.4f), RTN %.4f (+%.4f)\n",
           p0, pg, pg - p0, pa, pa - p0, pr, pr - p0);
    assert_true(fabs(pg - p0) < fabs(pr - p0));

    /* the checkpoint's config */
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", act);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *qc = json_object_get(cfg, "quantization_config");
    assert_string_equal(json_string_value(json_object_get(qc, "quant_method")), "gptq");
    assert_int_equal(json_integer_value(json_object_get(qc, "bits")), 4);
    assert_int_equal(json_integer_value(json_object_get(qc, "group_size")), 32);
    assert_true(json_is_true(json_object_get(qc, "desc_act")));
    assert_true(json_is_true(json_object_get(qc, "sym")));
    assert_string_equal(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq");
    json_decref(cfg);
    snprintf(path, sizeof path, "%s/quantize_config.json", act);
    assert_int_equal(access(path, R_OK), 0);
    (void)sum_a;
    rf_quantize_report_free(&rg), rf_quantize_report_free(&rr), rf_quantize_report_free(&ra);
    free(calib), free(eval);
}

/* quantize_lm_head: the head is a GPTQ layer too, calibrated on the final
 * norm of the last block's outputs, loaded and run through W4A16. */
static void test_lm_head(void **state)
{
    int32_t *calib = sample_text(FIX, 4, 32, 3);
    rf_quantize_opts o;
    rf_quantize_opts_default(&o);
    o.gptq.group_size = 32;
    o.quantize_lm_head = true;
    rf_quantize_report rep;
    rf_error err = {0};
    char out[128], deq[128];
    snprintf(out, sizeof out, "%s/head", g_dir);
    snprintf(deq, sizeof deq, "%s/head_deq", g_dir);
    assert_int_equal(rf_quantize_model(FIX, out, &o, calib, NULL, 4, 32, NULL, &rep, &err), 0);
    assert_int_equal(rep.n, 15);
    assert_string_equal(rep.layers[14].name, "lm_head");
    printf("  lm_head [%d x %d] rel err %.5f\n", rep.layers[14].N, rep.layers[14].K,
           rep.layers[14].rel_err);
    rf_quantize_report_free(&rep);
    rf_llama_model m;
    assert_int_equal(rf_llama_load(&m, out, NULL, &err), 0);
    assert_non_null(m.w.lm_head.q.qweight);
    rf_llama_free(&m);
    dequantized_copy(out, deq);
    double rel = logits_rel_diff(out, deq, calib, 32, 15);
    printf("  quantized lm_head: logits vs dequantized-reference forward: max rel diff %.2e\n",
           rel);
    assert_true(rel < 1e-4);
    free(calib);
}

/* A checkpoint packed by another writer (tests/reference/make_gptq_model.py:
 * asymmetric, group 32, act-order g_idx) against the float64 torch forward
 * of its dequantized weights. */
static void test_external_checkpoint(void **state)
{
    const char *dir = "tests/reference/fixtures/gptq_ext";
    rf_error err = {0};
    rf_llama_model m;
    rf_llama_acts a;
    if (rf_llama_load(&m, dir, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m.n_gptq, 14);
    for (int i = 0; i < RF_LIN_COUNT; i++)
        assert_false(m.w.layers[0].lin[i].q.monotonic);
    char path[256];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    rf_st_file ex;
    assert_int_equal(rf_st_open(&ex, path, &err), 0);
    rf_tensor ids_t, lg_t;
    rf_st_view(&ex, rf_st_find(&ex, "input_ids"), &ids_t);
    rf_st_view(&ex, rf_st_find(&ex, "logits"), &lg_t);
    const int T = (int)ids_t.shape[0], V = m.config.vocab_size, pos0 = 0;
    assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, T, T, &err), 0);
    int ids[64];
    for (int t = 0; t < T; t++)
        ids[t] = ((const int32_t *)ids_t.data)[t];
    float *lg = malloc(sizeof(float) * T * V);
    assert_int_equal(rf_llama_forward(&m, &a, 1, T, ids, &pos0, lg, true, &err), 0);
    const float *ref = lg_t.data;
    double md = 0, mr = 0;
    for (int i = 0; i < T * V; i++) {
        md = fmax(md, fabs(lg[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    printf("  external act-order checkpoint vs torch float64 forward: max abs %.2e, rel %.2e\n", md,
           md / mr);
    assert_true(md / mr < 1e-4);
    free(lg);
    rf_st_close(&ex);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
}

static void test_bad_input(void **state)
{
    int32_t calib[2 * 16] = {0};
    rf_quantize_opts o;
    rf_quantize_report rep;
    rf_error err = {0};
    char out[128], path[160];
    snprintf(out, sizeof out, "%s/bad", g_dir);
    snprintf(path, sizeof path, "%s/model.safetensors", out);

    rf_quantize_opts_default(&o); /* group 128 does not divide 64 */
    assert_int_equal(rf_quantize_model(FIX, out, &o, calib, NULL, 2, 16, NULL, &rep, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "group_size");
    printf("  %s\n", err.msg);
    o.gptq.group_size = 32;
    assert_int_equal(rf_quantize_model(FIX, out, &o, calib, NULL, 2, 4096, NULL, &rep, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "calibration.seq_len");
    assert_int_equal(rf_quantize_model(FIX, out, &o, calib, NULL, 0, 16, NULL, &rep, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "calibration.samples");
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
    /* already quantized */
    char gq[128];
    snprintf(gq, sizeof gq, "%s/once", g_dir);
    assert_int_equal(rf_quantize_model(FIX, gq, &o, calib, NULL, 2, 16, NULL, &rep, &err), 0);
    rf_quantize_report_free(&rep);
    assert_int_equal(rf_quantize_model(gq, out, &o, calib, NULL, 2, 16, NULL, &rep, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "model");
    printf("  %s\n", err.msg);
    assert_int_equal(access(path, F_OK), -1);
    /* calibration sequences of different lengths (dataset rows) */
    int lens[2] = {16, 9};
    snprintf(gq, sizeof gq, "%s/varlen", g_dir);
    assert_int_equal(rf_quantize_model(FIX, gq, &o, calib, lens, 2, 16, NULL, &rep, &err), 0);
    assert_int_equal(rep.n, 14);
    rf_quantize_report_free(&rep);
    lens[1] = 17; /* longer than seq_len */
    assert_int_equal(rf_quantize_model(FIX, out, &o, calib, lens, 2, 16, NULL, &rep, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "calibration");
}

static int setup(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/rf_quant_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_model),
        cmocka_unit_test(test_lm_head),
        cmocka_unit_test(test_external_checkpoint),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
