/* GPTQ against the torch reference (tests/reference/gptq_reference.py, the
 * published algorithm from FORMATS.md): same weights and Hessian → the same
 * 4-bit integers and scales. A row may part ways with the reference only at
 * a rounding tie (the reference's x/scale within 1e-5 of .5), after which
 * GPTQ's error feedback legitimately changes the rest of that row; such
 * rows are counted and printed. Also: pack/unpack, act-order and GPTQ vs
 * RTN on the outlier layer, the Hessian, dampening, bad options, and an
 * independent unpacker (tests/reference/gptq_unpack.py) when torch exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/quant/gptq.h"
#include "engine/quant/gptq_pack.h"
#include "engine/core/safetensors.h"

#define FIX "tests/reference/fixtures/gptq"

typedef struct {
    rf_st_file layer;
    const float *W, *H;
    int N, K;
} fixture;

static void load_layer(fixture *f)
{
    rf_error err = {0};
    assert_int_equal(rf_st_open(&f->layer, FIX "/layer.safetensors", &err), 0);
    rf_tensor w, h;
    rf_st_view(&f->layer, rf_st_find(&f->layer, "W"), &w);
    rf_st_view(&f->layer, rf_st_find(&f->layer, "H"), &h);
    f->W = w.data;
    f->H = h.data;
    f->N = (int)w.shape[0];
    f->K = (int)w.shape[1];
}

static const void *get(rf_st_file *f, const char *name, int64_t *numel)
{
    const rf_st_entry *e = rf_st_find(f, name);
    assert_non_null(e);
    rf_tensor t;
    rf_st_view(f, e, &t);
    if (numel) *numel = rf_tensor_numel(&t);
    return t.data;
}

/* Processing order: descending diag(H) (dead inputs count as 1), stable. */
static void proc_order(const fixture *f, bool desc_act, int *pos_of)
{
    int K = f->K;
    int *perm = malloc(sizeof(int) * K);
    for (int k = 0; k < K; k++)
        perm[k] = k;
    if (desc_act)
        for (int i = 1; i < K; i++) { /* insertion sort: stable, K is small */
            int p = perm[i], j = i;
            float dp = f->H[(size_t)p * K + p] == 0 ? 1 : f->H[(size_t)p * K + p];
            while (j > 0) {
                int r = perm[j - 1];
                float dr = f->H[(size_t)r * K + r] == 0 ? 1 : f->H[(size_t)r * K + r];
                if (dr >= dp) break;
                perm[j] = r;
                j--;
            }
            perm[j] = p;
        }
    for (int j = 0; j < K; j++)
        pos_of[perm[j]] = j;
    free(perm);
}

static void check_config(const fixture *f, const char *name, int group_size, bool sym,
                         bool desc_act, bool static_groups)
{
    char path[256];
    snprintf(path, sizeof path, FIX "/cfg_%s.safetensors", name);
    rf_st_file ref;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&ref, path, &err), 0);
    int64_t nties;
    const uint8_t *rq = get(&ref, "q", NULL);
    const float *rs = get(&ref, "scales", NULL);
    const int32_t *rz = get(&ref, "zeros", NULL);
    const int32_t *rg = get(&ref, "g_idx", NULL);
    const int32_t *ties = get(&ref, "ties", &nties);
    const float *rloss = get(&ref, "loss", NULL);

    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    o.group_size = group_size;
    o.sym = sym;
    o.desc_act = desc_act;
    o.static_groups = static_groups;
    rf_qlayer l;
    rf_gptq_stats st;
    assert_int_equal(rf_gptq_quantize(f->W, f->N, f->K, f->H, &o, NULL, NULL, &l, &st, &err), 0);
    const int N = f->N, K = f->K, gs = l.group_size;
    assert_memory_equal(l.g_idx, rg, sizeof(int32_t) * K);

    int *pos_of = malloc(sizeof(int) * K);
    proc_order(f, desc_act, pos_of);
    uint8_t *is_tie = calloc((size_t)N * K, 1);
    for (int64_t i = 1; i < nties; i++)
        is_tie[ties[i]] = 1;
    /* first column (in processing order) where each row differs */
    int tie_rows = 0, bad = 0, compared = 0;
    double max_srel = 0;
    for (int n = 0; n < N; n++) {
        int first = K, first_k = -1;
        for (int k = 0; k < K; k++)
            if (l.q[(size_t)n * K + k] != rq[(size_t)n * K + k] && pos_of[k] < first) {
                first = pos_of[k];
                first_k = k;
            }
        if (first_k >= 0) {
            if (is_tie[(size_t)n * K + first_k]) {
                tie_rows++;
                printf("    %s: row %d parts at a rounding tie (input %d, step %d)\n", name, n,
                       first_k, first);
            } else {
                bad++;
                printf("    %s: row %d differs at input %d (step %d): %d vs reference %d\n", name,
                       n, first_k, first, l.q[(size_t)n * K + first_k],
                       rq[(size_t)n * K + first_k]);
            }
        }
        compared += first;
        for (int g = 0; g < l.G; g++) {
            /* a group's parameters are fixed when its first column comes up
             * (static and per-channel ones before any) */
            int start = (static_groups || group_size == -1) ? 0 : g * gs;
            if (start > first) continue;
            size_t i = (size_t)g * N + n;
            double rel = fabs(l.scales[i] - rs[i]) / fabs(rs[i]);
            max_srel = rel > max_srel ? rel : max_srel;
            assert_int_equal(l.zeros[i], rz[i]);
        }
    }
    printf("  %-20s %d of %d integers compared before any tie, %d rows parted at a tie, "
           "%d mismatches; scales max rel %.2e; loss %.4f vs reference %.4f\n",
           name, compared, N * K, tie_rows, bad, max_srel, st.loss, (double)*rloss);
    assert_int_equal(bad, 0);
    assert_true(max_srel <= 1e-6);
    assert_true(tie_rows <= (int)nties - 1);
    free(is_tie);
    free(pos_of);
    rf_qlayer_free(&l);
    rf_st_close(&ref);
}

static void test_matches_reference(void **state)
{
    fixture f;
    load_layer(&f);
    check_config(&f, "sym_g128", 128, true, false, false);
    check_config(&f, "sym_g128_act", 128, true, true, false);
    check_config(&f, "asym_g64_act", 64, false, true, false);
    check_config(&f, "sym_perchannel", -1, true, false, false);
    check_config(&f, "sym_g128_act_static", 128, true, true, true);
    /* once more with the block GEMM tiled over OpenMP threads, as inside a
     * job whose forward passes left OpenBLAS at one thread */
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    omp_set_num_threads(2);
    check_config(&f, "sym_g128_act", 128, true, true, false);
    openblas_set_num_threads(saved);
    rf_st_close(&f.layer);
}

static double recon(const fixture *f, const rf_qlayer *l)
{
    rf_error err = {0};
    float *What = malloc(sizeof(float) * (size_t)f->N * f->K);
    rf_qlayer_dequant(l, What);
    double e, rel;
    assert_int_equal(rf_gptq_recon_error(f->W, What, f->N, f->K, f->H, &e, &rel, &err), 0);
    free(What);
    return rel;
}

static void test_actorder_and_rtn(void **state)
{
    fixture f;
    load_layer(&f);
    rf_error err = {0};
    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    rf_qlayer plain, act, rtn;
    assert_int_equal(rf_gptq_quantize(f.W, f.N, f.K, f.H, &o, NULL, NULL, &plain, NULL, &err), 0);
    o.desc_act = true;
    assert_int_equal(rf_gptq_quantize(f.W, f.N, f.K, f.H, &o, NULL, NULL, &act, NULL, &err), 0);
    o.desc_act = false;
    assert_int_equal(rf_rtn_quantize(f.W, f.N, f.K, &o, &rtn, &err), 0);
    double e_plain = recon(&f, &plain), e_act = recon(&f, &act), e_rtn = recon(&f, &rtn);
    printf("  relative ||(W - Wq) X||^2 on the outlier layer: RTN %.5f, GPTQ %.5f, "
           "GPTQ act-order %.5f\n",
           e_rtn, e_plain, e_act);
    assert_true(e_act < e_plain);
    assert_true(e_plain < e_rtn);
    /* act-order's g_idx is not monotonic (FORMATS.md) */
    int mono = 1;
    for (int k = 1; k < f.K; k++)
        mono &= act.g_idx[k] >= act.g_idx[k - 1];
    assert_false(mono);
    rf_qlayer_free(&plain);
    rf_qlayer_free(&act);
    rf_qlayer_free(&rtn);
    rf_st_close(&f.layer);
}

static void test_pack_roundtrip(void **state)
{
    fixture f;
    load_layer(&f);
    rf_error err = {0};
    for (int sym = 0; sym < 2; sym++) {
        rf_gptq_opts o;
        rf_gptq_opts_default(&o);
        o.sym = sym;
        o.group_size = 64;
        o.desc_act = true;
        rf_qlayer l, u;
        assert_int_equal(rf_gptq_quantize(f.W, f.N, f.K, f.H, &o, NULL, NULL, &l, NULL, &err), 0);
        rf_gptq_packed p;
        assert_int_equal(rf_gptq_pack(&l, &p, &err), 0);
        assert_int_equal(p.qweight.shape[0], f.K / 8);
        assert_int_equal(p.qweight.shape[1], f.N);
        assert_int_equal(p.qzeros.shape[0], f.K / 64);
        assert_int_equal(p.qzeros.shape[1], f.N / 8);
        rf_gptq_weight w;
        assert_int_equal(rf_gptq_weight_view(&w, &p, "layer", &err), 0);
        assert_false(w.monotonic);
        if (sym) /* zero 8 stored as 7 in every nibble */
            for (int i = 0; i < w.G * f.N / 8; i++)
                assert_int_equal((uint32_t)w.qzeros[i], 0x77777777u);
        assert_int_equal(rf_gptq_unpack(&w, &u, &err), 0);
        assert_memory_equal(u.q, l.q, (size_t)f.N * f.K);
        assert_memory_equal(u.g_idx, l.g_idx, sizeof(int32_t) * f.K);
        int zero0 = 0;
        for (int i = 0; i < l.G * f.N; i++) {
            if (l.zeros[i] == 0) { /* the v1 format cannot hold a zero of 0 */
                assert_int_equal(u.zeros[i], 16);
                zero0++;
            } else {
                assert_int_equal(u.zeros[i], l.zeros[i]);
            }
            assert_true(u.scales[i] == rf_f16_to_f32(rf_f32_to_f16(l.scales[i])));
        }
        /* dequantization agrees with unpack + fp32 dequant */
        float *a = malloc(sizeof(float) * (size_t)f.N * f.K);
        float *b = malloc(sizeof(float) * (size_t)f.N * f.K);
        rf_gptq_dequant(&w, a);
        rf_qlayer_dequant(&u, b);
        assert_memory_equal(a, b, sizeof(float) * (size_t)f.N * f.K);
        printf("  %s: pack/unpack round trip exact (%d zero points of 0)\n", sym ? "sym" : "asym",
               zero0);
        free(a);
        free(b);
        rf_gptq_packed_free(&p);
        rf_qlayer_free(&l);
        rf_qlayer_free(&u);
    }
    rf_st_close(&f.layer);
}

static void test_hessian(void **state)
{
    rf_error err = {0};
    const int K = 300, rows = 50; /* two 256-row bands when tiled */
    float *x = malloc(sizeof(float) * rows * K);
    unsigned s = 7;
    for (int i = 0; i < rows * K; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    int saved = openblas_get_num_threads();
    for (int tiled = 0; tiled < 2; tiled++) {
        /* tiled: OpenBLAS at one thread, the Hessian in GEMM bands over OpenMP */
        openblas_set_num_threads(tiled ? 1 : saved);
        omp_set_num_threads(2);
        rf_hessian h;
        assert_int_equal(rf_hessian_init(&h, K, &err), 0);
        rf_hessian_add(&h, x, 30, 3); /* two calls, 5 sequences of 10 rows */
        rf_hessian_add(&h, x + 30 * K, 20, 2);
        rf_hessian_finish(&h);
        double maxd = 0;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                double r = 0;
                for (int t = 0; t < rows; t++)
                    r += (double)x[t * K + i] * x[t * K + j];
                r *= 2.0 / 5;
                maxd = fmax(maxd, fabs(r - h.H[i * K + j]));
            }
        printf("  Hessian (2/n) sum x x^T%s: max |diff| %.2e\n", tiled ? " (tiled)" : "", maxd);
        assert_true(maxd < 1e-5);
        rf_hessian_free(&h);
    }
    openblas_set_num_threads(saved);
    free(x);
}

static int g_raises;
static void on_damp(void *user, double from, double to)
{
    printf("  dampening raised %.3f -> %.3f\n", from, to);
    g_raises++;
}

static void test_damp_raise(void **state)
{
    /* H = I − 1.02/K · 11ᵀ is indefinite (eigenvalue −0.02 along 1); its
     * diagonal is 0.8725, so percdamp must exceed 0.023: 0.01 and 0.02
     * fail, 0.04 succeeds */
    enum { N = 8, K = 8 };
    float H[K * K], W[N * K];
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            H[i * K + j] = (i == j) - 1.02f / K;
    for (int i = 0; i < N * K; i++)
        W[i] = (float)((i * 37) % 11) - 5.0f;
    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    o.group_size = -1;
    rf_qlayer l;
    rf_gptq_stats st;
    rf_error err = {0};
    g_raises = 0;
    assert_int_equal(rf_gptq_quantize(W, N, K, H, &o, on_damp, NULL, &l, &st, &err), 0);
    assert_int_equal(g_raises, 2);
    assert_int_equal(st.damp_raises, 2);
    assert_true(fabs(st.percdamp_used - 0.04) < 1e-12);
    rf_qlayer_free(&l);
    /* far from definite: fails with a sentence, nothing leaks */
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            H[i * K + j] = (i == j) - 3.0f / K;
    assert_int_equal(rf_gptq_quantize(W, N, K, H, &o, NULL, NULL, &l, &st, &err), RF_EINTERNAL);
    assert_non_null(strstr(err.msg, "not positive definite"));
}

static void test_bad_options(void **state)
{
    float W[16 * 96] = {0}, H[96 * 96] = {0};
    for (int i = 0; i < 96; i++)
        H[i * 96 + i] = 1;
    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    o.group_size = 64; /* 96 is not a multiple */
    rf_qlayer l;
    rf_error err = {0};
    assert_int_equal(rf_gptq_quantize(W, 16, 96, H, &o, NULL, NULL, &l, NULL, &err), RF_EINVAL);
    assert_string_equal(err.field, "group_size");
    assert_non_null(strstr(err.msg, "does not divide the input dimension 96"));
    assert_int_equal(rf_rtn_quantize(W, 16, 96, &o, &l, &err), RF_EINVAL);
    o.group_size = 32;
    o.percdamp = 0;
    assert_int_equal(rf_gptq_quantize(W, 16, 96, H, &o, NULL, NULL, &l, NULL, &err), RF_EINVAL);
    assert_string_equal(err.field, "damp_percent");
    /* an all-zero layer: every column dead, still quantizes (to zero) */
    o.percdamp = 0.01;
    memset(H, 0, sizeof H);
    rf_gptq_stats st;
    assert_int_equal(rf_gptq_quantize(W, 16, 96, H, &o, NULL, NULL, &l, &st, &err), 0);
    assert_int_equal(st.dead_columns, 96);
    for (int i = 0; i < 16 * 96; i++)
        assert_int_equal(l.q[i], 8);
    rf_qlayer_free(&l);
}

/* The checkpoint tensors and our dequantized weights go to files; the
 * independent unpacker must reproduce them bit for bit. */
static void test_python_unpack(void **state)
{
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        /* a reference that cannot run is installed (scripts/deps.sh), never skipped */
        fail_msg("/usr/bin/python3 has no torch: install python3-torch (make deps)");
    }
    fixture f;
    load_layer(&f);
    rf_error err = {0};
    char dir[] = "/tmp/rf_gptq_XXXXXX";
    assert_non_null(mkdtemp(dir));
    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    rf_qlayer l[2];
    rf_gptq_packed p[2];
    rf_tensor deq[2];
    for (int i = 0; i < 2; i++) { /* layer 0 plain sym, layer 1 asym act-order */
        o.sym = i == 0;
        o.desc_act = i == 1;
        o.group_size = i == 0 ? 128 : 64;
        assert_int_equal(rf_gptq_quantize(f.W, f.N, f.K, f.H, &o, NULL, NULL, &l[i], NULL, &err),
                         0);
        assert_int_equal(rf_gptq_pack(&l[i], &p[i], &err), 0);
        rf_gptq_weight w;
        assert_int_equal(rf_gptq_weight_view(&w, &p[i], "layer", &err), 0);
        int64_t shape[2] = {f.N, f.K};
        assert_int_equal(rf_tensor_alloc(&deq[i], RF_DTYPE_F32, 2, shape, &err), 0);
        rf_gptq_dequant(&w, deq[i].data);
    }
    rf_st_item items[8] = {
        {"model.layers.0.mlp.up_proj.qweight", &p[0].qweight},
        {"model.layers.0.mlp.up_proj.qzeros", &p[0].qzeros},
        {"model.layers.0.mlp.up_proj.scales", &p[0].scales},
        {"model.layers.0.mlp.up_proj.g_idx", &p[0].g_idx},
        {"model.layers.1.self_attn.q_proj.qweight", &p[1].qweight},
        {"model.layers.1.self_attn.q_proj.qzeros", &p[1].qzeros},
        {"model.layers.1.self_attn.q_proj.scales", &p[1].scales},
        {"model.layers.1.self_attn.q_proj.g_idx", &p[1].g_idx},
    };
    rf_st_item dump[2] = {{"model.layers.0.mlp.up_proj.weight", &deq[0]},
                          {"model.layers.1.self_attn.q_proj.weight", &deq[1]}};
    char ck[256], dp[256], cmd[700];
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    snprintf(dp, sizeof dp, "%s/dequant.safetensors", dir);
    assert_int_equal(rf_st_write(ck, items, 8, &err), 0);
    assert_int_equal(rf_st_write(dp, dump, 2, &err), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/gptq_unpack.py %s %s", ck, dp);
    int rc = system(cmd);
    unlink(ck);
    unlink(dp);
    rmdir(dir);
    assert_int_equal(rc, 0);
    for (int i = 0; i < 2; i++) {
        rf_qlayer_free(&l[i]);
        rf_gptq_packed_free(&p[i]);
        rf_tensor_free(&deq[i]);
    }
    rf_st_close(&f.layer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference), cmocka_unit_test(test_actorder_and_rtn),
        cmocka_unit_test(test_pack_roundtrip),    cmocka_unit_test(test_hessian),
        cmocka_unit_test(test_damp_raise),        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_python_unpack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
