/* Which OpenBLAS kernels this CPU should run. OpenBLAS built with
 * DYNAMIC_ARCH (Debian's) picks its kernels from the CPU model when it
 * loads, and a model newer than the library knows gets its generic
 * fallback: Debian 12's 0.3.21 runs Prescott (SSE3) kernels on Intel
 * family 6 model 207, an AVX-512 part, its sgemm several times below the
 * AVX-512 one. The environment variable OPENBLAS_CORETYPE, read only at
 * load, overrides the pick, so a process applies it by starting again. */
#ifndef RF_BLAS_CORE_H
#define RF_BLAS_CORE_H

/* The OPENBLAS_CORETYPE this CPU should have ("Cooperlake", "SkylakeX",
 * "Haswell"), or NULL when the loaded library's own pick is one of those
 * or better, or the CPU has nothing better. */
const char *rf_blas_core_wanted(void);

/* The kernel family OpenBLAS runs in this process. */
const char *rf_blas_core(void);

/* For main(): when rf_blas_core_wanted() names a core and the user has not
 * set OPENBLAS_CORETYPE, sets it and executes this program again with the
 * same arguments (returns only if that fails, or when nothing is to do). */
void rf_blas_core_reexec(char **argv);

#endif
