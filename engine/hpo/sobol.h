/* Sobol' low-discrepancy points in [0, 1)^d, d ≤ RF_HP_MAX_DIMS, with the
 * Joe–Kuo direction numbers (new-joe-kuo-6.21201: primitive polynomial
 * degree s, coefficients a, initial m_1..m_s per dimension) and points in
 * Gray-code order (Antonov–Saleev), so unscrambled points equal torch's
 * SobolEngine(scramble=False).
 *
 * Scrambled points use Matoušek's affine scramble: a random lower-triangular
 * binary matrix per dimension applied to the direction numbers (a linear
 * matrix scramble) plus a random digital shift, both drawn from the seed.
 * The result is still a (t, s)-sequence; each point is uniform in the cube. */
#ifndef RF_HPO_SOBOL_H
#define RF_HPO_SOBOL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/hpo/space.h"

#define RF_SOBOL_BITS 30 /* index < 2^30 */
#define RF_SOBOL_DIGITS 52

typedef struct rf_sobol {
    int d;
    uint64_t v[RF_HP_MAX_DIMS][RF_SOBOL_BITS]; /* direction numbers, 52-bit fixed point */
    uint64_t shift[RF_HP_MAX_DIMS];
} rf_sobol;

/* d in [1, RF_HP_MAX_DIMS]. */
void rf_sobol_init(rf_sobol *s, int d, bool scramble, uint64_t seed);
/* Point number `index` (< 2^30) into u[d]. */
void rf_sobol_point(const rf_sobol *s, uint64_t index, double *u);

#endif
