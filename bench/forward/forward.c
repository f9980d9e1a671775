/* bench/forward: prefill and decode tokens/s of the CPU engine on a
 * ~100M-parameter Llama, beside its peers on the same weights and thread
 * count in the same run, and decode's achieved weight bandwidth beside a
 * memory-copy bandwidth measured here.
 *
 *   build/bench/forward/forward [--dtype bf16|f32|w4a16] [--threads N]
 *       [--prompt 128] [--decode 32] [--dir DIR] [--rounds 3] [--no-peer]
 *       [--llama "PEER BACKEND_DIR"]
 *
 * Our figures come from both CPU op tables where they differ: rf_ops_cpu
 * (f32 activations everywhere) and rf_ops_cpu_bf16 (BF16 and W4A16 matmuls
 * on activations rounded to bf16, as a bf16 linear in PyTorch and
 * llama.cpp's BF16 matmul compute). The ratios compare like with like:
 *   - PyTorch (bench/forward/forward_torch.py, f32 and bf16: everything in
 *     that dtype) against cpu for f32 and cpu-bf16 for bf16;
 *   - llama.cpp (bench/forward/llamacpp: the prebuilt libllama.so of
 *     node-llama-cpp 3.21.1, on a GGUF that to_gguf.py writes from the same
 *     checkpoint) against cpu for f32 and cpu-bf16 for bf16 and 4-bit, after
 *     its last-position logits are checked against ours.
 * The 4-bit model is our GPTQ (symmetric, group 128, no act-order) of the
 * bf16 checkpoint, calibrated on 8 sequences of random ids; llama.cpp runs
 * its integers and f16 scales as Q4_0, bit for bit (its activations are
 * int8 Q8_0 blocks there: it computes less precisely than either table).
 *
 * Timings: each engine's best of three prefills and of three 32-token
 * decodes, in each of --rounds rounds (3) that run our tables and the peers
 * back to back, so that on a shared machine every engine samples the same
 * load; each figure reported is its median over the rounds, and each ratio
 * both as the ratio of the medians and as the median of the rounds' ratios.
 *
 * The dense models are random (weights do not change the speed) and are
 * generated once into DIR (default /tmp/refinery-bench-<dtype>).
 * Bandwidths: decode reads every weight byte once per token (the head is
 * tied to the embedding, so that matrix is read too); copy bandwidth counts
 * the bytes read plus the bytes written, the same traffic a streaming read
 * sees. */
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
#include "engine/backend/blas_core.h"
#include "engine/quant/quantize.h"

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

/* The 4-bit model: our GPTQ (rf_quantize_opts_default: 4 bits, group 128,
 * symmetric, no act-order) of the bf16 checkpoint, on NSEQ sequences of
 * random ids. */
static int quantize(const char *src, const char *out)
{
    enum { NSEQ = 8, LEN = 128 };
    int32_t *tok = malloc(sizeof(int32_t) * NSEQ * LEN);
    for (int i = 0; i < NSEQ * LEN; i++)
        tok[i] = (int32_t)(((unsigned)i * 2246822519u + 12345u) % VOCAB);
    rf_quantize_opts o;
    rf_quantize_opts_default(&o);
    rf_quantize_report rep;
    rf_error err = {0};
    int rc = rf_quantize_model(src, out, &o, tok, NULL, NSEQ, LEN, NULL, &rep, &err);
    if (rc < 0)
        fprintf(stderr, "bench: quantize: %s\n", err.msg);
    else
        rf_quantize_report_free(&rep);
    free(tok);
    return rc;
}

typedef struct figures {
    double prefill, decode; /* tok/s, best of three each */
} figures;

/* Prefill best of three, then three greedy decodes from the end of the
 * prompt, best kept; logits (vocab floats) gets the prompt's last-position
 * logits. */
static int time_model(rf_llama_model *m, rf_llama_acts *a, const int *ids, int prompt, int decode,
                      float *logits, figures *f)
{
    rf_error err = {0};
    int zero = 0;
    const int V = m->config.vocab_size;
    /* warm up: page in the weights */
    if (rf_llama_forward(m, a, 1, 8, ids, &zero, NULL, false, &err) < 0) goto fail;
    f->prefill = f->decode = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (rf_llama_forward(m, a, 1, prompt, ids, &zero, NULL, false, &err) < 0) goto fail;
        double tps = prompt / (now() - t0);
        f->prefill = tps > f->prefill ? tps : f->prefill;
    }
    memcpy(logits, a->logits, sizeof(float) * V);
    for (int rep = 0; rep < 3; rep++) {
        if (rf_llama_forward(m, a, 1, prompt, ids, &zero, NULL, false, &err) < 0) goto fail;
        double t0 = now();
        for (int i = 0; i < decode; i++) {
            int pos = prompt + i, next = rf_argmax(a->logits, V);
            if (rf_llama_forward(m, a, 1, 1, &next, &pos, NULL, false, &err) < 0) goto fail;
        }
        double tps = decode / (now() - t0);
        f->decode = tps > f->decode ? tps : f->decode;
    }
    return 0;
fail:
    fprintf(stderr, "bench: %s\n", err.msg);
    return -1;
}

/* PyTorch twice, as shipped and with OMP_WAIT_POLICY=PASSIVE (its OpenMP
 * threads otherwise fight OpenBLAS's for the cores, which cripples its f32
 * path), keeping the better figure of each. */
static int run_torch(const char *dir, const char *dtname, int threads, int prompt, int decode,
                     figures *f)
{
    f->prefill = f->decode = 0;
    for (int env = 0; env < 2; env++) {
        char cmd[1024], line[512];
        snprintf(cmd, sizeof cmd,
                 "%s/usr/bin/python3 bench/forward/forward_torch.py --model %s --dtype %s "
                 "--threads %d --prompt %d --decode %d",
                 env ? "OMP_WAIT_POLICY=PASSIVE " : "", dir, dtname, threads, prompt, decode);
        FILE *p = popen(cmd, "r");
        double p1 = 0, d1 = 0;
        while (p && fgets(line, sizeof line, p))
            if (sscanf(line, "torch: prefill %lf tok/s, decode %lf tok/s", &p1, &d1) == 2) break;
        if (p) pclose(p);
        f->prefill = p1 > f->prefill ? p1 : f->prefill;
        f->decode = d1 > f->decode ? d1 : f->decode;
    }
    return f->prefill > 0 && f->decode > 0 ? 0 : -1;
}

/* The llama.cpp peer on DIR/model.gguf (written by to_gguf.py when missing
 * or older than the checkpoint); its last-position logits into logits. */
static int run_llama(const char *peer, const char *dir, int threads, int prompt, int decode,
                     float *logits, int V, figures *f)
{
    char bin[512], backends[512], gguf[600], st[600], lg[600], cmd[4096], line[512];
    if (sscanf(peer, "%511s %511s", bin, backends) != 2) return -1;
    snprintf(gguf, sizeof gguf, "%s/model.gguf", dir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    snprintf(lg, sizeof lg, "%s/llamacpp-logits.bin", dir);
    struct stat sg, ss;
    if (stat(gguf, &sg) != 0 || stat(st, &ss) != 0 || sg.st_mtime < ss.st_mtime) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 bench/forward/llamacpp/to_gguf.py %s %s", dir,
                 gguf);
        if (system(cmd) != 0) return -1;
    }
    snprintf(cmd, sizeof cmd, "%s %s %s %d %d %d %s", bin, gguf, backends, threads, prompt, decode,
             lg);
    FILE *p = popen(cmd, "r");
    f->prefill = f->decode = 0;
    while (p && fgets(line, sizeof line, p))
        if (sscanf(line, "llamacpp: prefill %lf tok/s, decode %lf tok/s", &f->prefill,
                   &f->decode) == 2)
            break;
    if (!p || pclose(p) != 0 || f->prefill <= 0) return -1;
    FILE *l = fopen(lg, "rb");
    size_t got = l ? fread(logits, sizeof(float), (size_t)V, l) : 0;
    if (l) fclose(l);
    return got == (size_t)V ? 0 : -1;
}

#define MAX_ROUNDS 9

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n figures, prefill and decode each. */
static figures median(const figures *f, int n)
{
    double p[MAX_ROUNDS], d[MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        p[i] = f[i].prefill, d[i] = f[i].decode;
    qsort(p, (size_t)n, sizeof(double), cmpd);
    qsort(d, (size_t)n, sizeof(double), cmpd);
    figures m = {n % 2 ? p[n / 2] : (p[n / 2 - 1] + p[n / 2]) / 2,
                 n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2};
    return m;
}

/* Median over the rounds of our figure over the peer's in the same round:
 * the paired comparison, less swayed than the ratio of medians when the
 * machine's load changes between rounds. */
static figures paired(const figures *a, const figures *b, int n)
{
    figures r[MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        r[i].prefill = a[i].prefill / b[i].prefill, r[i].decode = a[i].decode / b[i].decode;
    return median(r, n);
}

static void logit_diff(const float *a, const float *b, int V, double *mabs, double *mref)
{
    *mabs = *mref = 0;
    for (int i = 0; i < V; i++) {
        *mabs = fmax(*mabs, fabs((double)a[i] - b[i]));
        *mref = fmax(*mref, fabs((double)b[i]));
    }
}

int main(int argc, char **argv)
{
    rf_blas_core_reexec(argv);
    const char *dtname = "bf16", *dir = NULL, *llama = NULL;
    int threads = omp_get_max_threads(), prompt = 128, decode = 32, peer = 1, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--blas-core")) {
            printf("%s\n", rf_blas_core());
            return 0;
        } else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtname = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--llama") && i + 1 < argc)
            llama = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else {
            fprintf(stderr,
                    "usage: forward [--dtype bf16|f32|w4a16] [--threads N] [--prompt N] "
                    "[--decode N] [--dir DIR] [--rounds N] [--no-peer] [--llama \"PEER BACKENDS\"] "
                    "[--blas-core]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) rounds = rounds < 1 ? 1 : MAX_ROUNDS;
    const int w4 = !strcmp(dtname, "w4a16");
    rf_dtype dt = !strcmp(dtname, "f32") ? RF_DTYPE_F32 : RF_DTYPE_BF16;
    char dbuf[256], p[512];
    if (!dir) snprintf(dbuf, sizeof dbuf, "/tmp/refinery-bench-%s", dtname), dir = dbuf;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (access(p, F_OK) != 0) {
        if (w4) {
            const char *src = "/tmp/refinery-bench-bf16";
            snprintf(p, sizeof p, "%s/model.safetensors", src);
            if ((access(p, F_OK) != 0 && generate(src, RF_DTYPE_BF16) < 0) ||
                quantize(src, dir) < 0)
                return 1;
        } else if (generate(dir, dt) < 0) {
            return 1;
        }
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);

    /* Rounds: each runs our tables, then the peers, back to back, so that
     * on a shared machine every engine samples the same load; the figures
     * reported are each engine's median over the rounds (each round's own
     * figure is its best of three, see time_model). */
    const rf_ops *tables[2] = {rf_ops_cpu(), rf_ops_cpu_bf16()};
    const int ntables = dt == RF_DTYPE_F32 && !w4 ? 1 : 2; /* f32 weights: the same in both */
    const int best = ntables - 1;                          /* the table compared with peers */
    figures ours[2][MAX_ROUNDS], torch[MAX_ROUNDS], lcpp[MAX_ROUNDS];
    int have_torch = peer && !w4, have_llama = peer && llama;
    float *logits[2] = {malloc(sizeof(float) * VOCAB), malloc(sizeof(float) * VOCAB)};
    float *ll = malloc(sizeof(float) * VOCAB);
    rf_llama_model m;
    rf_llama_acts a;
    rf_error err = {0};
    double rss = 0, act_mib = 0, wbytes = 0;
    int *ids = malloc(sizeof(int) * (size_t)(prompt + decode));
    for (int i = 0; i < prompt + decode; i++)
        ids[i] = (int)(((unsigned)i * 2654435761u) % VOCAB);
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < ntables; t++) {
            if (rf_llama_load(&m, dir, tables[t], &err) < 0 ||
                rf_llama_acts_init(&a, &m.config, 1, prompt + decode, prompt, &err) < 0) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            if (time_model(&m, &a, ids, prompt, decode, logits[t], &ours[t][r]) < 0) return 1;
            /* resident after the runs: the mapped weights once, the
             * activations, code and libraries */
            rss = resident_bytes(), act_mib = a.bytes / 1048576.0, wbytes = (double)m.weight_bytes;
            rf_llama_acts_free(&a);
            rf_llama_free(&m);
        }
        if (have_torch && run_torch(dir, dtname, threads, prompt, decode, &torch[r]) < 0) {
            printf("pytorch peer unavailable (needs /usr/bin/python3 with torch)\n");
            have_torch = 0;
        }
        if (have_llama && run_llama(llama, dir, threads, prompt, decode, ll, VOCAB, &lcpp[r]) < 0) {
            printf("llama.cpp peer failed (bench/forward/llamacpp)\n");
            have_llama = 0;
        }
        printf("round %d:", r + 1);
        for (int t = 0; t < ntables; t++)
            printf(" %s %.1f/%.2f", tables[t]->name, ours[t][r].prefill, ours[t][r].decode);
        if (have_torch) printf(", pytorch %.1f/%.2f", torch[r].prefill, torch[r].decode);
        if (have_llama) printf(", llama.cpp %.1f/%.2f", lcpp[r].prefill, lcpp[r].decode);
        printf(" (prefill/decode tok/s)\n");
        fflush(stdout);
    }
    figures med[2], tp = {0, 0}, lf = {0, 0};
    for (int t = 0; t < ntables; t++)
        med[t] = median(ours[t], rounds);
    if (have_torch) tp = median(torch, rounds);
    if (have_llama) lf = median(lcpp, rounds);
    const double cbw = copy_bandwidth(threads), wbw = med[best].decode * wbytes;
    printf("model: %s, %.0f MiB mapped (%s); activations %.1f MiB; resident %.0f MiB; %d "
           "threads; medians of %d rounds; OpenBLAS %s kernels\n",
           dtname, wbytes / 1048576.0,
           w4 ? "GPTQ 4-bit g128 layers, f16 tied embedding" : "100.1M parameters", act_mib,
           rss / 1048576.0, threads, rounds, rf_blas_core());
    for (int t = 0; t < ntables; t++)
        printf("refinery (%s%s): prefill %.1f tok/s (%d tokens), decode %.2f tok/s (%d tokens)\n",
               tables[t]->name, t ? ", bf16 activations" : ", f32 activations", med[t].prefill,
               prompt, med[t].decode, decode);
    if (ntables == 2) {
        double mabs, mref;
        logit_diff(logits[1], logits[0], VOCAB, &mabs, &mref);
        printf("logits, bf16 vs f32 activations: max |diff| %.3g (max |logit| %.3g)\n", mabs, mref);
    }
    printf("decode weight bandwidth %.2f GB/s vs copy bandwidth %.2f GB/s: %.0f%%\n", wbw / 1e9,
           cbw / 1e9, 100 * wbw / cbw);
    if (have_torch)
        printf("pytorch:  prefill %.1f tok/s, decode %.2f tok/s (best of default and passive "
               "OpenMP waits in each round)\nratio vs pytorch (%s): prefill %.2fx, decode %.2fx "
               "(per-round ratios' median: %.2fx, %.2fx)\n",
               tp.prefill, tp.decode, tables[best]->name, med[best].prefill / tp.prefill,
               med[best].decode / tp.decode, paired(ours[best], torch, rounds).prefill,
               paired(ours[best], torch, rounds).decode);
    if (have_llama) {
        double mabs, mref;
        logit_diff(ll, logits[best], VOCAB, &mabs, &mref);
        printf("llama.cpp (%s): prefill %.1f tok/s, decode %.2f tok/s; its logits vs ours (%s): "
               "max |diff| %.3g (max |logit| %.3g)\n",
               w4 ? "Q4_0" : dtname, lf.prefill, lf.decode, tables[best]->name, mabs, mref);
        for (int t = best; t >= 0; t--) {
            const figures pr = paired(ours[t], lcpp, rounds);
            printf("ratio vs llama.cpp (%s): prefill %.2fx, decode %.2fx (per-round ratios' "
                   "median: %.2fx, %.2fx)\n",
                   tables[t]->name, med[t].prefill / lf.prefill, med[t].decode / lf.decode,
                   pr.prefill, pr.decode);
        }
    } else if (peer && !llama) {
        printf("llama.cpp peer unavailable (bench/forward/llamacpp/setup.sh did not run)\n");
    }
    free(ids), free(ll);
    free(logits[0]), free(logits[1]);
    return 0;
}
