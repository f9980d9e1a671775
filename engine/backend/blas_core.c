/* See blas_core.h. */
#include "engine/backend/blas_core.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *rf_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *rf_blas_core_wanted(void)
{
    /* the families whose sgemm uses AVX2/FMA or AVX-512: nothing to gain */
    static const char *const good[] = {"haswell",        "zen",    "skylakex", "cooperlake",
                                       "sapphirerapids", "icelake"};
    const char *have = rf_blas_core();
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (strcasestr(have, good[i])) return NULL;
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512cd");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void rf_blas_core_reexec(char **argv)
{
    const char *want = rf_blas_core_wanted();
    if (!want || getenv("OPENBLAS_CORETYPE")) return;
    if (setenv("OPENBLAS_CORETYPE", want, 1)) return;
    /* the same binary as the one running, whatever argv[0] says */
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
}
