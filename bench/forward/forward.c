/* bench/forward: prefill and decode tokens/s of the CPU engine on a
 * ~100M-parameter Llama, beside PyTorch on the same weights, dtype and
 * thread count in the same run (bench/forward/forward_torch.py), and decode's
 * achieved weight bandwidth beside a memory-copy bandwidth measured here.
 *
 *   build/bench/forward/forward [--dtype bf16|f32] [--threads N]
 *       [--prompt 128] [--decode 32] [--dir DIR] [--no-peer]
 *
 * The model is random (weights do not change the speed) and is generated
 * once into DIR (default /tmp/refinery-bench-<dtype>). Bandwidths: decode
 * reads every weight byte once per token (the head is tied to the
 * embedding, so that matrix is read too); copy bandwidth counts the bytes
 * read plus the bytes written, the same traffic a streaming read sees. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/model/llama.h"

/* ~100M parameters: 12 layers of 768 with GQA (12 heads, 4 kv heads), SwiGLU
 * 2048, vocabulary 32000 tied. */
#define DIM 768
#define HID 2048
#define LAYERS 12
#define HEADS 12
#define KV_HEADS 4
#define VOCAB 32000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t g_rng = 88172645463325252ull;
static float urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static int generate(const char *dir, rf_dtype dt)
{
    char p[512];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"model_type\":\"llama\",\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_"
            "layers\":%d,"
            "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,"
            "\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-5,\"rope_theta\":500000.0,"
            "\"tie_word_embeddings\":true,\"hidden_act\":\"silu\"}\n",
            DIM, HID, LAYERS, HEADS, KV_HEADS, VOCAB);
    fclose(f);
    const int hd = DIM / HEADS, kvd = KV_HEADS * hd;
    enum { PER_LAYER = 9 };
    int n = 2 + LAYERS * PER_LAYER, k = 0;
    rf_st_item *items = calloc((size_t)n, sizeof *items);
    rf_tensor *ts = calloc((size_t)n, sizeof *ts);
    char **names = calloc((size_t)n, sizeof *names);
    struct {
        const char *suffix;
        int64_t d0, d1;
    } lay[PER_LAYER] = {
        {"input_layernorm.weight", DIM, 0},    {"post_attention_layernorm.weight", DIM, 0},
        {"self_attn.q_proj.weight", DIM, DIM}, {"self_attn.k_proj.weight", kvd, DIM},
        {"self_attn.v_proj.weight", kvd, DIM}, {"self_attn.o_proj.weight", DIM, DIM},
        {"mlp.gate_proj.weight", HID, DIM},    {"mlp.up_proj.weight", HID, DIM},
        {"mlp.down_proj.weight", DIM, HID}};
    for (int l = -1; l < LAYERS; l++) {
        for (int j = 0; j < (l < 0 ? 2 : PER_LAYER); j++) {
            int64_t shape[2];
            int nd;
            names[k] = malloc(128);
            if (l < 0) {
                snprintf(names[k], 128, "%s",
                         j ? "model.norm.weight" : "model.embed_tokens.weight");
                shape[0] = j ? DIM : VOCAB, shape[1] = DIM, nd = j ? 1 : 2;
            } else {
                snprintf(names[k], 128, "model.layers.%d.%s", l, lay[j].suffix);
                shape[0] = lay[j].d0, shape[1] = lay[j].d1, nd = lay[j].d1 ? 2 : 1;
            }
            if (rf_tensor_alloc(&ts[k], dt, nd, shape, NULL) < 0) return -1;
            size_t cnt = (size_t)rf_tensor_numel(&ts[k]);
            float *tmp = malloc(sizeof(float) * cnt);
            float scale = nd == 1 ? 0.0f : 1.7f / sqrtf((float)shape[1]);
            for (size_t i = 0; i < cnt; i++)
                tmp[i] = nd == 1 ? 1.0f : urand() * scale;
            rf_from_f32(dt, tmp, ts[k].data, cnt);
            free(tmp);
            items[k].name = names[k];
            items[k].tensor = &ts[k];
            k++;
        }
    }
    rf_error err = {0};
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int rc = rf_st_write(p, items, k, &err);
    if (rc < 0) fprintf(stderr, "bench: %s\n", err.msg);
    for (int i = 0; i < k; i++)
        rf_tensor_free(&ts[i]), free(names[i]);
    free(ts), free(items), free(names);
    return rc;
}

/* Copy bandwidth with the same threads: each copies its own slice. */
static double copy_bandwidth(int threads)
{
    const size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
#pragma omp parallel num_threads(threads)
        {
            int id = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t chunk = n / (size_t)nt, off = chunk * (size_t)id;
            memcpy(b + off, a + off, id == nt - 1 ? n - off : chunk);
        }
        double bw = 2.0 * n / (now() - t0);
        best = bw > best ? bw : best;
    }
    free(a);
    free(b);
    return best;
}

/* Resident set size in bytes (/proc/self/statm, second field, in pages). */
static double resident_bytes(void)
{
    long pages = 0, size = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &pages) != 2) pages = 0;
        fclose(f);
    }
    return (double)pages * (double)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv)
{
    const char *dtname = "bf16", *dir = NULL;
    int threads = omp_get_max_threads(), prompt = 128, decode = 32, peer = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtname = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else {
            fprintf(stderr, "usage: forward [--dtype bf16|f32] [--threads N] [--prompt N] "
                            "[--decode N] [--dir DIR] "
                            "[--no-peer]\n");
            return 2;
        }
    }
    rf_dtype dt = !strcmp(dtname, "f32") ? RF_DTYPE_F32 : RF_DTYPE_BF16;
    char dbuf[256], p[512];
    if (!dir) snprintf(dbuf, sizeof dbuf, "/tmp/refinery-bench-%s", dtname), dir = dbuf;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (access(p, F_OK) != 0 && generate(dir, dt) < 0) return 1;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);

    rf_llama_model m;
    rf_llama_acts a;
    rf_error err = {0};
    if (rf_llama_load(&m, dir, NULL, &err) < 0 ||
        rf_llama_acts_init(&a, &m.config, 1, prompt + decode, prompt, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int *ids = malloc(sizeof(int) * (size_t)(prompt + decode));
    for (int i = 0; i < prompt + decode; i++)
        ids[i] = (int)(((unsigned)i * 2654435761u) % VOCAB);
    int zero = 0;
    rf_llama_forward(&m, &a, 1, 8, ids, &zero, NULL, false,
                     &err); /* warm up: page in the weights */
    double prefill = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        rf_llama_forward(&m, &a, 1, prompt, ids, &zero, NULL, false, &err);
        double tps = prompt / (now() - t0);
        prefill = tps > prefill ? tps : prefill;
    }
    double dec = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of three, each from the end of the prompt */
        rf_llama_forward(&m, &a, 1, prompt, ids, &zero, NULL, false, &err);
        double t0 = now();
        for (int i = 0; i < decode; i++) {
            int pos = prompt + i, next = rf_argmax(a.logits, m.config.vocab_size);
            rf_llama_forward(&m, &a, 1, 1, &next, &pos, NULL, false, &err);
        }
        double tps = decode / (now() - t0);
        dec = tps > dec ? tps : dec;
    }
    /* resident after the runs and before the copy test: the mapped weights
     * once, the activations, code and libraries */
    double rss = resident_bytes();
    double wbw = dec * (double)m.weight_bytes, cbw = copy_bandwidth(threads);
    double params = (double)m.weight_bytes / rf_dtype_size(dt);

    printf("model: %.1fM parameters, %s, %.0f MiB mapped; activations %.1f MiB; resident %.0f MiB; "
           "%d threads\n",
           params / 1e6, dtname, m.weight_bytes / 1048576.0, a.bytes / 1048576.0, rss / 1048576.0,
           threads);
    printf("refinery: prefill %.1f tok/s (%d tokens), decode %.2f tok/s (%d tokens)\n", prefill,
           prompt, dec, decode);
    printf("decode weight bandwidth %.2f GB/s vs copy bandwidth %.2f GB/s: %.0f%%\n", wbw / 1e9,
           cbw / 1e9, 100 * wbw / cbw);
    if (peer) {
        /* PyTorch twice, as shipped and with OMP_WAIT_POLICY=PASSIVE (its
         * OpenMP threads otherwise fight OpenBLAS's for the cores, which
         * cripples its f32 path), keeping the better figure of each. */
        double tp = 0, td = 0;
        for (int env = 0; env < 2; env++) {
            char cmd[1024], line[512];
            snprintf(cmd, sizeof cmd,
                     "%s/usr/bin/python3 bench/forward/forward_torch.py --model %s --dtype %s "
                     "--threads %d --prompt %d --decode %d",
                     env ? "OMP_WAIT_POLICY=PASSIVE " : "", dir, dtname, threads, prompt, decode);
            FILE *f = popen(cmd, "r");
            double p1 = 0, d1 = 0;
            while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "torch: prefill %lf tok/s, decode %lf tok/s", &p1, &d1) == 2)
                    break;
            if (f) pclose(f);
            tp = p1 > tp ? p1 : tp;
            td = d1 > td ? d1 : td;
        }
        if (tp > 0 && td > 0)
            printf("pytorch:  prefill %.1f tok/s, decode %.2f tok/s (best of default and passive "
                   "OpenMP waits)\nratio vs pytorch: prefill %.2fx, decode %.2fx\n",
                   tp, td, prefill / tp, dec / td);
        else
            printf("pytorch peer unavailable (needs /usr/bin/python3 with torch)\n");
    }
    free(ids);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
    return 0;
}
