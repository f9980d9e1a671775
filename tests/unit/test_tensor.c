/* f16 and bf16 conversions against independent references: the compiler's
 * own _Float16 (libgcc's round-to-nearest-even) for f16, and a
 * nearest-candidate search in double for bf16. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/core/tensor.h"

static uint32_t g_rng = 12345;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t ref_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

/* bf16 by search: truncation and the next value up in magnitude, the nearer
 * wins, ties to the even one. */
static uint16_t ref_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    /* past the largest finite value the next candidate is Inf, which for
     * rounding counts as 2^128 (IEEE 754 rounds as if the exponent were
     * unbounded) */
    double vl = fabs((double)rf_bf16_to_f32(lo));
    double vh = (hi & 0x7fff) == 0x7f80 ? ldexp(1.0, 128) : fabs((double)rf_bf16_to_f32(hi));
    double dl = fabs(fabs((double)f) - vl), dh = fabs(vh - fabs((double)f));
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

static void test_f16_round_trip_all(void **state)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rf_f16_to_f32((uint16_t)h);
        _Float16 r;
        uint16_t hh = (uint16_t)h;
        memcpy(&r, &hh, 2);
        if (isnan(f)) {
            assert_true(isnan((float)r));
            assert_true(isnan(rf_f16_to_f32(rf_f32_to_f16(f))));
            assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
            continue;
        }
        assert_true(f == (float)r); /* exact widening, as the compiler's */
        assert_int_equal(rf_f32_to_f16(f), h);
    }
}

static void test_f16_rounding(void **state)
{
    const float special[] = {65504.0f,    65519.99f,  65520.0f, 1e9f,         0x1p-24f,
                             0x1p-25f,    0x1.8p-25f, 0x1p-26f, 0x1.ff8p-15f, 0x1.0008p0f,
                             0x1.0018p0f, 0.0f,       -0.0f,    INFINITY,     -INFINITY};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        assert_int_equal(rf_f32_to_f16(special[i]), ref_f16(special[i]));
        assert_int_equal(rf_f32_to_f16(-special[i]), ref_f16(-special[i]));
    }
    for (int i = 0; i < 2000000; i++) {
        /* exponents spanning f16 subnormals to overflow, any mantissa */
        uint32_t e = 97 + rnd() % 50, u = (rnd() & 0x807fffffu) | (e << 23);
        float f = bits_f(u);
        assert_int_equal(rf_f32_to_f16(f), ref_f16(f));
    }
    assert_true(isnan(rf_f16_to_f32(rf_f32_to_f16(NAN))));
}

static void test_bf16(void **state)
{
    for (uint32_t b = 0; b < 65536; b++) {
        float f = rf_bf16_to_f32((uint16_t)b);
        if (isnan(f)) {
            assert_true(isnan(rf_bf16_to_f32(rf_f32_to_bf16(f))));
            continue;
        }
        assert_int_equal(rf_f32_to_bf16(f), b);
    }
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rnd();
        float f = bits_f(u);
        if (isnan(f) || isinf(f)) continue;
        assert_int_equal(rf_f32_to_bf16(f), ref_bf16(f));
    }
    assert_int_equal(rf_f32_to_bf16(0x1.fffffep127f), 0x7f80);     /* rounds up to Inf */
    assert_int_equal(rf_f32_to_bf16(bits_f(0x3f808000u)), 0x3f80); /* tie to even, down */
    assert_int_equal(rf_f32_to_bf16(bits_f(0x3f818000u)), 0x3f82); /* tie to even, up */
    uint16_t qn = rf_f32_to_bf16(bits_f(0xff800001u));             /* signalling NaN, low payload */
    assert_true(isnan(rf_bf16_to_f32(qn)) && (qn & 0x8000));
}

static void test_tensor_basics(void **state)
{
    rf_tensor t;
    rf_error err = {0};
    int64_t shape[3] = {2, 3, 4};
    assert_int_equal(rf_tensor_alloc(&t, RF_DTYPE_BF16, 3, shape, &err), 0);
    assert_int_equal(rf_tensor_numel(&t), 24);
    assert_int_equal(rf_tensor_nbytes(&t), 48);
    assert_true(rf_tensor_shape_is(&t, 3, shape));
    char buf[64];
    assert_string_equal(rf_shape_str(3, shape, buf, sizeof buf), "[2, 3, 4]");
    float in[24], out[24];
    for (int i = 0; i < 24; i++)
        in[i] = (float)i - 11.5f;
    assert_int_equal(rf_from_f32(RF_DTYPE_BF16, in, t.data, 24), 0);
    assert_int_equal(rf_to_f32(RF_DTYPE_BF16, t.data, out, 24), 0);
    assert_memory_equal(in, out, sizeof in); /* small halves are exact in bf16 */
    assert_int_equal(rf_to_f32(RF_DTYPE_I32, t.data, out, 24), RF_EINVAL);
    rf_tensor_free(&t);
    assert_int_equal(rf_dtype_parse("BF16"), RF_DTYPE_BF16);
    assert_int_equal(rf_dtype_parse("F7_E9"), -1);
    int64_t bad[1] = {-1};
    assert_int_equal(rf_tensor_alloc(&t, RF_DTYPE_F32, 1, bad, &err), RF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_round_trip_all),
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_tensor_basics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
