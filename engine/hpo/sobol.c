#include "engine/hpo/sobol.h"

#include <string.h>

#include "engine/core/util.h"

/* Joe & Kuo, "Constructing Sobol sequences with better two-dimensional
 * projections" (SIAM J. Sci. Comput. 2008), file new-joe-kuo-6.21201,
 * dimensions 2..32; dimension 1 is van der Corput (every m_k = 1). */
static const struct {
    int s, a, m[7];
} joe_kuo[RF_HP_MAX_DIMS - 1] = {
    {1, 0, {1}},
    {2, 1, {1, 3}},
    {3, 1, {1, 3, 1}},
    {3, 2, {1, 1, 1}},
    {4, 1, {1, 1, 3, 3}},
    {4, 4, {1, 3, 5, 13}},
    {5, 2, {1, 1, 5, 5, 17}},
    {5, 4, {1, 1, 5, 5, 5}},
    {5, 7, {1, 1, 7, 11, 19}},
    {5, 11, {1, 1, 5, 1, 1}},
    {5, 13, {1, 1, 1, 3, 11}},
    {5, 14, {1, 3, 5, 5, 31}},
    {6, 1, {1, 3, 3, 9, 7, 49}},
    {6, 13, {1, 1, 1, 15, 21, 21}},
    {6, 16, {1, 3, 1, 13, 27, 49}},
    {6, 19, {1, 1, 1, 15, 7, 5}},
    {6, 22, {1, 3, 1, 15, 13, 25}},
    {6, 25, {1, 1, 5, 5, 19, 61}},
    {7, 1, {1, 3, 7, 11, 23, 15, 103}},
    {7, 4, {1, 3, 7, 13, 13, 15, 69}},
    {7, 7, {1, 1, 3, 13, 7, 35, 63}},
    {7, 8, {1, 3, 5, 9, 1, 25, 53}},
    {7, 14, {1, 3, 1, 13, 9, 35, 107}},
    {7, 19, {1, 3, 1, 5, 27, 61, 31}},
    {7, 21, {1, 1, 5, 11, 19, 41, 61}},
    {7, 28, {1, 3, 5, 3, 3, 13, 69}},
    {7, 31, {1, 1, 7, 13, 1, 19, 1}},
    {7, 32, {1, 3, 7, 5, 13, 19, 59}},
    {7, 37, {1, 1, 3, 9, 25, 29, 41}},
    {7, 41, {1, 3, 5, 13, 23, 1, 55}},
    {7, 42, {1, 3, 7, 3, 13, 59, 17}},
};

/* m_k for k = 1..30 by the recurrence of Bratley & Fox (1988):
 * m_k = 2 a_1 m_{k-1} ⊕ 4 a_2 m_{k-2} ⊕ … ⊕ 2^{s-1} a_{s-1} m_{k-s+1} ⊕ 2^s m_{k-s} ⊕ m_{k-s},
 * a_1 the most significant of the s-1 bits of a. */
static void direction_m(int dim, uint64_t m[RF_SOBOL_BITS])
{
    if (dim == 0) {
        for (int k = 0; k < RF_SOBOL_BITS; k++)
            m[k] = 1;
        return;
    }
    int s = joe_kuo[dim - 1].s, a = joe_kuo[dim - 1].a;
    for (int k = 0; k < s; k++)
        m[k] = (uint64_t)joe_kuo[dim - 1].m[k];
    for (int k = s; k < RF_SOBOL_BITS; k++) {
        uint64_t v = m[k - s] ^ (m[k - s] << s);
        for (int i = 1; i < s; i++)
            if ((a >> (s - 1 - i)) & 1) v ^= m[k - i] << i;
        m[k] = v;
    }
}

static int parity64(uint64_t x)
{
    return __builtin_parityll(x);
}

void rf_sobol_init(rf_sobol *s, int d, bool scramble, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    uint64_t rng = rf_mix64(seed ^ 0x50b01ull);
    for (int j = 0; j < d; j++) {
        uint64_t m[RF_SOBOL_BITS];
        direction_m(j, m);
        /* v_k = m_k / 2^k as a 52-digit binary fraction (digit 0 is 2^-1). */
        for (int k = 0; k < RF_SOBOL_BITS; k++)
            s->v[j][k] = m[k] << (RF_SOBOL_DIGITS - 1 - k);
        if (!scramble) continue;
        /* Row r of the lower-triangular matrix: digit r of the output is
         * digit r of the input plus a random combination of digits above it. */
        uint64_t rows[RF_SOBOL_DIGITS];
        for (int r = 0; r < RF_SOBOL_DIGITS; r++) {
            uint64_t above = r ? rf_splitmix64(&rng) & ~((~0ull) >> r) : 0;
            above >>= 64 - RF_SOBOL_DIGITS; /* digit c sits at bit 51 - c */
            rows[r] = above | (1ull << (RF_SOBOL_DIGITS - 1 - r));
        }
        for (int k = 0; k < RF_SOBOL_BITS; k++) {
            uint64_t in = s->v[j][k], out = 0;
            for (int r = 0; r < RF_SOBOL_DIGITS; r++)
                out |= (uint64_t)parity64(in & rows[r]) << (RF_SOBOL_DIGITS - 1 - r);
            s->v[j][k] = out;
        }
        s->shift[j] = rf_splitmix64(&rng) >> (64 - RF_SOBOL_DIGITS);
    }
}

void rf_sobol_point(const rf_sobol *s, uint64_t index, double *u)
{
    uint64_t g = index ^ (index >> 1); /* Gray code: consecutive points differ in one v_k */
    for (int j = 0; j < s->d; j++) {
        uint64_t x = s->shift[j];
        for (int k = 0; k < RF_SOBOL_BITS && (g >> k); k++)
            if ((g >> k) & 1) x ^= s->v[j][k];
        u[j] = (double)x * 0x1p-52;
    }
}
