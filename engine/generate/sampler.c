#include "engine/generate/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rf_sampler_init(rf_sampler *s, int vocab, const rf_sampler_params *p, rf_error *err)
{
    memset(s, 0, sizeof *s);
    if (vocab < 1) return rf_errorf(err, RF_EINVAL, "sampler: empty vocabulary");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return rf_error_field(err, RF_EINVAL, "temperature", "temperature must be a number >= 0");
    if (p->top_k < 0) return rf_error_field(err, RF_EINVAL, "top_k", "top_k must be >= 0");
    if (!(p->top_p > 0 && p->top_p <= 1))
        return rf_error_field(err, RF_EINVAL, "top_p", "top_p must be in (0, 1]");
    s->p = *p;
    s->vocab = vocab;
    /* splitmix64 of the seed, so that nearby seeds give unrelated streams */
    s->state = p->seed + 0x9e3779b97f4a7c15ull;
    s->probs = malloc(sizeof *s->probs * (size_t)vocab);
    s->order = malloc(sizeof *s->order * (size_t)vocab);
    if (!s->probs || !s->order) {
        rf_sampler_free(s);
        return rf_errorf(err, RF_ENOMEM, "sampler: out of memory");
    }
    return 0;
}

void rf_sampler_free(rf_sampler *s)
{
    if (!s) return;
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

static uint64_t next_u64(rf_sampler *s)
{
    return rf_splitmix64(&s->state);
}

static double next_unit(rf_sampler *s) /* [0, 1) */
{
    return (double)(next_u64(s) >> 11) * 0x1p-53;
}

/* qsort has no context argument; per thread, so samplers run concurrently */
static _Thread_local const float *t_sort_probs;

static int by_prob_desc(const void *a, const void *b)
{
    float x = t_sort_probs[*(const int *)a], y = t_sort_probs[*(const int *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int *)a - *(const int *)b; /* ties: lower id first, deterministic */
}

int rf_sampler_sample(rf_sampler *s, const float *logits)
{
    const int n = s->vocab;
    if (s->p.temperature == 0 || s->p.top_k == 1) return rf_argmax(logits, n);
    /* softmax(logits / T) */
    float mx = logits[rf_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->p.temperature);
        sum += s->probs[i];
        s->order[i] = i;
    }
    int keep = n;
    if (s->p.top_k > 0 || s->p.top_p < 1) {
        t_sort_probs = s->probs;
        qsort(s->order, (size_t)n, sizeof *s->order, by_prob_desc);
        if (s->p.top_k > 0 && s->p.top_k < keep) keep = s->p.top_k;
        if (s->p.top_p < 1) {
            /* smallest prefix whose mass reaches top_p (of the top-k mass) */
            double mass = 0, total = 0;
            for (int i = 0; i < keep; i++)
                total += s->probs[s->order[i]];
            for (int i = 0; i < keep; i++) {
                mass += s->probs[s->order[i]];
                if (mass >= s->p.top_p * total) {
                    keep = i + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (int i = 0; i < keep; i++)
            sum += s->probs[s->order[i]];
    }
    double r = next_unit(s) * sum, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += s->probs[s->order[i]];
        if (r < acc) return s->order[i];
    }
    return s->order[keep - 1]; /* r landed on the rounding edge */
}
