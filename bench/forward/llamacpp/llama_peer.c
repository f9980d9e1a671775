/* bench/forward's llama.cpp peer: loads a GGUF written by to_gguf.py into
 * the libllama.so that node-llama-cpp 3.21.1 ships prebuilt (its CPU
 * backends are loaded from the same folder; ggml picks the best variant
 * for this CPU), and times prefill and decode exactly as forward.c times
 * refinery: the same token ids, a warm-up of 8 tokens, prefill best of 3,
 * then 3 runs of greedy decode from the end of the prompt, best kept.
 * Writes the prompt's last-position logits to LOGITS_OUT (vocab floats)
 * so that forward.c can compare them with its own before trusting the
 * timings. Built by setup.sh against the llama.h of the package's bundled
 * llama.cpp sources; a peer, never linked into refinery.
 *
 *   llama_peer MODEL.gguf BACKEND_DIR THREADS PROMPT DECODE LOGITS_OUT
 *
 * Prints: llamacpp: prefill P tok/s, decode D tok/s */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *user)
{
    (void)progress, (void)user;
    return true; /* keep loading, print nothing */
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Clear the cache and run the prompt; 0 or −1. */
static int prefill(struct llama_context *ctx, llama_token *ids, int n)
{
    llama_memory_clear(llama_get_memory(ctx), true);
    if (llama_decode(ctx, llama_batch_get_one(ids, n)) != 0) return -1;
    llama_synchronize(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr,
                "usage: llama_peer MODEL.gguf BACKEND_DIR THREADS PROMPT DECODE LOGITS_OUT\n");
        return 2;
    }
    const int threads = atoi(argv[3]), prompt = atoi(argv[4]), decode = atoi(argv[5]);
    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[2]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "llama_peer: cannot load %s\n", argv[1]);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(prompt + decode + 16);
    cp.n_batch = cp.n_ubatch = (uint32_t)prompt;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_peer: cannot create a context\n");
        return 1;
    }
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_token *ids = malloc(sizeof(llama_token) * (size_t)(prompt + decode));
    for (int i = 0; i < prompt + decode; i++) /* forward.c's ids */
        ids[i] = (llama_token)(((unsigned)i * 2654435761u) % (unsigned)V);

    if (prefill(ctx, ids, 8) < 0) goto fail; /* warm up: page in the weights */
    double best_p = 0, best_d = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (prefill(ctx, ids, prompt) < 0) goto fail;
        double tps = prompt / (now() - t0);
        best_p = tps > best_p ? tps : best_p;
    }
    FILE *f = fopen(argv[6], "wb");
    if (!f || fwrite(llama_get_logits_ith(ctx, -1), sizeof(float), (size_t)V, f) != (size_t)V) {
        fprintf(stderr, "llama_peer: cannot write %s\n", argv[6]);
        return 1;
    }
    fclose(f);
    for (int rep = 0; rep < 3; rep++) { /* each from the end of the prompt */
        if (prefill(ctx, ids, prompt) < 0) goto fail;
        double t0 = now();
        for (int i = 0; i < decode; i++) {
            llama_token next = argmax(llama_get_logits_ith(ctx, -1), V);
            if (llama_decode(ctx, llama_batch_get_one(&next, 1)) != 0) goto fail;
        }
        llama_synchronize(ctx);
        double tps = decode / (now() - t0);
        best_d = tps > best_d ? tps : best_d;
    }
    printf("llamacpp: prefill %.1f tok/s, decode %.2f tok/s\n", best_p, best_d);
    free(ids);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
fail:
    fprintf(stderr, "llama_peer: llama_decode failed\n");
    return 1;
}
