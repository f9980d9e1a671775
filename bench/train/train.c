/* bench/train: training tokens/s of the CPU engine (forward + backward +
 * optimiser step) with LoRA r=16 on every linear layer and α = 1 knowledge
 * distillation from a teacher about twice the student's size, and the
 * process's peak memory. bench/train/run.sh runs the PyTorch peer
 * (train_torch.py) on the same checkpoints, batch and threads in the same
 * run and prints the ratio.
 *
 *   build/bench/train/train [--size small|100m] [--dir DIR] [--steps N]
 *       [--threads N] [--generate]
 *
 * Sizes: small (student ~10M, teacher ~21M parameters, vocabulary 8192)
 * and 100m (student ~100M, the bench/forward shape, teacher ~190M,
 * vocabulary 32000), where the weights, not the runtimes, dominate memory.
 * The models are random f32 Llamas (the weights do not change the speed),
 * written once into DIR/student and DIR/teacher by a --generate run of
 * their own, so that the measured run's peak memory is the training's.
 * Memory is reported twice: the peak resident set, and the peak above the
 * process's resident set at start (the same for the peer, whose baseline
 * is taken after `import torch`). Optimiser: AdamW on both sides (the
 * PyTorch 1.13 peer has no Muon). */
#include <math.h>
#include <omp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/model/llama.h"
#include "engine/backend/blas_core.h"
#include "engine/model/lora.h"
#include "engine/train/train.h"

#define BATCH 4
#define SEQ 128

typedef struct shape {
    int dim, hid, layers, heads, kv, vocab;
} shape;
typedef struct size {
    const char *name;
    shape student, teacher; /* embeddings tied */
} size;
static const size g_sizes[] = {
    {"small", {256, 704, 6, 4, 2, 8192}, {384, 1024, 7, 6, 2, 8192}},
    {"100m", {768, 2048, 12, 12, 4, 32000}, {1024, 2816, 14, 16, 4, 32000}},
};

/* Resident set size in MiB (/proc/self/statm, second field, in pages). */
static double resident_mib(void)
{
    long pages = 0, total = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &total, &pages) != 2) pages = 0;
        fclose(f);
    }
    return (double)pages * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static float urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static int generate(const char *dir, const shape *s)
{
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat sb;
    if (stat(p, &sb) == 0) return 0;
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "bench/train: cannot write %s: %s\n", p, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"model_type\":\"llama\",\"hidden_size\":%d,\"intermediate_size\":%d,"
            "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
            "\"vocab_size\":%d,\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-5,"
            "\"rope_theta\":10000.0,\"tie_word_embeddings\":true,\"hidden_act\":\"silu\"}\n",
            s->dim, s->hid, s->layers, s->heads, s->kv, s->vocab);
    fclose(f);
    const int kvd = s->kv * (s->dim / s->heads);
    const struct {
        const char *suffix;
        int64_t d0, d1;
    } lay[9] = {
        {"input_layernorm.weight", s->dim, 0},       {"post_attention_layernorm.weight", s->dim, 0},
        {"self_attn.q_proj.weight", s->dim, s->dim}, {"self_attn.k_proj.weight", kvd, s->dim},
        {"self_attn.v_proj.weight", kvd, s->dim},    {"self_attn.o_proj.weight", s->dim, s->dim},
        {"mlp.gate_proj.weight", s->hid, s->dim},    {"mlp.up_proj.weight", s->hid, s->dim},
        {"mlp.down_proj.weight", s->dim, s->hid}};
    const int n = 2 + 9 * s->layers;
    rf_st_item *items = calloc((size_t)n, sizeof *items);
    rf_tensor *ts = calloc((size_t)n, sizeof *ts);
    char(*names)[96] = calloc((size_t)n, sizeof *names);
    int k = 0, rc = 0;
    for (int l = -1; l < s->layers && rc == 0; l++)
        for (int j = 0; j < (l < 0 ? 2 : 9) && rc == 0; j++, k++) {
            int64_t sh[2];
            int nd;
            if (l < 0) {
                snprintf(names[k], 96, "%s", j ? "model.norm.weight" : "model.embed_tokens.weight");
                sh[0] = j ? s->dim : s->vocab, sh[1] = s->dim, nd = j ? 1 : 2;
            } else {
                snprintf(names[k], 96, "model.layers.%d.%s", l, lay[j].suffix);
                sh[0] = lay[j].d0, sh[1] = lay[j].d1, nd = lay[j].d1 ? 2 : 1;
            }
            if ((rc = rf_tensor_alloc(&ts[k], RF_DTYPE_F32, nd, sh, NULL)) < 0) break;
            float *v = ts[k].data;
            const float sc = nd == 1 ? 0 : 1.7f / sqrtf((float)sh[1]);
            for (int64_t i = 0; i < rf_tensor_numel(&ts[k]); i++)
                v[i] = nd == 1 ? 1.0f : urand() * sc;
            items[k].name = names[k], items[k].tensor = &ts[k];
        }
    rf_error err = {0};
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (rc == 0 && (rc = rf_st_write(p, items, k, &err)) < 0)
        fprintf(stderr, "bench: %s\n", err.msg);
    for (int i = 0; i < n; i++)
        rf_tensor_free(&ts[i]);
    free(items), free(ts), free(names);
    return rc;
}

int main(int argc, char **argv)
{
    rf_blas_core_reexec(argv);
    const double base_mib = resident_mib();
    const char *dir = "/tmp/refinery-bench-train", *sz = "small";
    int steps = 4, threads = 0, gen_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--generate"))
            gen_only = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--dir"))
            dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--size"))
            sz = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--steps"))
            steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
    }
    const size *S = !strcmp(sz, "100m") ? &g_sizes[1] : &g_sizes[0];
    const int VOCAB = S->student.vocab;
    if (threads > 0) omp_set_num_threads(threads);
    char sd[512], td[512];
    snprintf(sd, sizeof sd, "%s/student", dir);
    snprintf(td, sizeof td, "%s/teacher", dir);
    mkdir(dir, 0755);
    if (generate(sd, &S->student) < 0 || generate(td, &S->teacher) < 0) return 1;
    if (gen_only) return 0;
    rf_error err = {0};
    rf_llama_model sm, tm;
    rf_lora lo;
    rf_trainer st, tt;
    rf_optim opt;
    rf_optim_config oc;
    rf_optim_config_default(&oc);
    oc.lr = 1e-4f, oc.sched = RF_SCHED_CONSTANT;
    rf_lora_config lc = {.r = 16, .alpha = 32, .targets = RF_LORA_ALL, .seed = 1};
    if (rf_llama_load(&sm, sd, NULL, &err) < 0 || rf_llama_load(&tm, td, NULL, &err) < 0 ||
        rf_lora_init(&lo, &sm.config, &lc, &err) < 0 ||
        rf_trainer_init(&st, &sm, RF_TRAIN_LORA, &lo, BATCH, SEQ, 64, &err) < 0 ||
        rf_trainer_init(&tt, &tm, RF_TRAIN_FROZEN, NULL, BATCH, SEQ, 64, &err) < 0 ||
        rf_optim_init(&opt, &oc, &err) < 0 || rf_trainer_add_params(&st, &opt, &err) < 0 ||
        rf_optim_ready(&opt, &err) < 0) {
        fprintf(stderr, "bench/train: %s\n", err.msg);
        return 1;
    }
    int *ids = malloc(sizeof(int) * BATCH * SEQ), *tg = malloc(sizeof(int) * BATCH * SEQ);
    for (int i = 0; i < BATCH * SEQ; i++)
        ids[i] = (int)((urand() + 1) * 0.5f * (VOCAB - 1));
    for (int i = 0; i < BATCH * SEQ; i++) /* the first quarter of each row is the prompt */
        tg[i] = i % SEQ >= SEQ / 4 && i % SEQ + 1 < SEQ ? ids[i + 1] : -1;
    rf_loss_config lsc = {.alpha = 1.0f, .temperature = 1.0f};
    double t0 = 0, loss0 = 0, loss = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now(); /* step 0 warms up */
        rf_train_stats stt;
        if (rf_train_forward(&tt, ids, &err) < 0 || rf_train_forward(&st, ids, &err) < 0 ||
            rf_train_loss(&st, &tt, NULL, tg, &lsc, 1, true, &stt, &err) < 0 ||
            rf_train_backward(&st, &err) < 0) {
            fprintf(stderr, "bench/train: %s\n", err.msg);
            return 1;
        }
        rf_optim_step(&opt, NULL);
        if (s == 0) loss0 = stt.loss;
        loss = stt.loss;
    }
    const double dt = now() - t0, tps = (double)BATCH * SEQ * steps / dt;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak = ru.ru_maxrss / 1024.0;
    printf("refinery: %s, %d steps of %dx%d tokens, %.1f tokens/s, peak RSS %.1f MiB (%.1f above "
           "its start), loss %.4f -> %.4f, threads %d\n",
           S->name, steps, BATCH, SEQ, tps, peak, peak - base_mib, loss0, loss,
           omp_get_max_threads());
    printf("RESULT tokens_per_s=%.3f peak_mib=%.1f above_mib=%.1f\n", tps, peak, peak - base_mib);
    free(ids), free(tg);
    rf_optim_free(&opt);
    rf_trainer_free(&st), rf_trainer_free(&tt);
    rf_lora_free(&lo);
    rf_llama_free(&sm), rf_llama_free(&tm);
    return 0;
}
