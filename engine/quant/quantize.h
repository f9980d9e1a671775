/* Quantize a Llama-family checkpoint with GPTQ (or RTN, the baseline) and
 * export it in the GPTQ layout (FORMATS.md "GPTQ W4A16 checkpoint").
 *
 * Blocks are quantized in model order, each block's calibration inputs being
 * the outputs of the already-quantized blocks before it; inside a block the
 * linear layers go in true-sequential groups (q/k/v, o, gate/up, down), each
 * group's Hessian taken from inputs that already pass through the quantized
 * groups before it. Memory: the mmapped model, the packed result, one
 * block's calibration activations (two [samples, seq_len, dim] buffers) and
 * one Hessian at a time. LoRA merging happens before this, elsewhere. */
#ifndef RF_QUANTIZE_H
#define RF_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/quant/gptq.h"

typedef struct rf_quantize_opts {
    rf_gptq_opts gptq; /* bits 4, group size, sym, desc_act, damp … */
    bool rtn;          /* round-to-nearest instead of GPTQ */
    bool quantize_lm_head;
} rf_quantize_opts;

void rf_quantize_opts_default(rf_quantize_opts *o);

/* One linear layer's outcome. */
typedef struct rf_quantize_layer {
    char name[96]; /* "model.layers.3.mlp.down_proj" */
    int N, K;
    double rel_err;       /* ‖(W − Ŵ)X‖² / ‖W X‖² on its calibration inputs */
    double seconds;       /* quantization alone (Hessian excluded) */
    double percdamp_used; /* > damp_percent when Cholesky needed more */
} rf_quantize_layer;

typedef struct rf_quantize_report {
    int n; /* layers quantized */
    rf_quantize_layer *layers;
    double seconds;     /* the whole run */
    size_t src_bytes;   /* tensor bytes of the source checkpoint */
    size_t out_bytes;   /* bytes of the written model.safetensors */
    size_t calib_bytes; /* the two calibration activation buffers */
    long peak_rss_kib;  /* the process's peak resident set afterwards */
} rf_quantize_report;

void rf_quantize_report_free(rf_quantize_report *r);

/* Callbacks for a job; any may be NULL. */
typedef struct rf_quantize_hooks {
    void *user;
    void (*on_layer)(void *user, const rf_quantize_layer *l, int done, int total);
    void (*on_damp)(void *user, const char *layer, double from, double to);
    bool (*should_stop)(void *user); /* checked between layers → RF_ECANCELED */
} rf_quantize_hooks;

/* Quantize src_dir into out_dir (created if missing): model.safetensors,
 * config.json with quantization_config, quantize_config.json and the
 * tokenizer files copied. tokens: nseq calibration sequences one after the
 * other, sequence s lens[s] ids long (lens NULL: every one seq_len; else
 * each in [1, seq_len]). Errors: an already-quantized source, a group size
 * that does not divide an input dimension, seq_len beyond the model
 * (RF_EINVAL with err->field); nothing is written then. */
int rf_quantize_model(const char *src_dir, const char *out_dir, const rf_quantize_opts *o,
                      const int32_t *tokens, const int *lens, int nseq, int seq_len,
                      const rf_quantize_hooks *hooks, rf_quantize_report *rep, rf_error *err);

#endif
