/* Training forward and backward through the whole Llama model, in the
 * manner of llm.c: the activations every backward needs are kept per layer
 * in one arena sized once per (batch, sequence), and each op's explicit
 * *_backward (engine/ops.h) is called in reverse order. Gradients go to the
 * LoRA adapters (engine/lora.h) or, in full-parameter mode, to an f32 copy
 * of every weight (embeddings and norms included). The loss and the LM head
 * run over chunks of rows, so the logits of a whole batch never exist at
 * once (FORMATS.md "Knowledge distillation loss").
 *
 * A step reads top to bottom: rf_train_forward (student, and teacher
 * without gradients), rf_train_loss (loss, and with backward the whole
 * backward pass), then rf_optim_step (engine/optim.h). Nothing is allocated
 * inside a step. */
#ifndef RF_TRAIN_H
#define RF_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/llama.h"
#include "engine/model/lora.h"
#include "engine/train/loss.h"
#include "engine/train/optim.h"

/* What one layer's backward reads, written by its forward. */
typedef struct rf_train_layer_acts {
    float *x_in;                 /* [R, dim] residual stream entering the layer */
    float *xn1, *xn2;            /* [R, dim] attention / MLP RMSNorm outputs */
    float *q, *k, *v;            /* [R, qd|kvd] projections, q and k after RoPE */
    float *att;                  /* [R, qd] attention output (o_proj input) */
    float *x_mid;                /* [R, dim] residual after the attention block */
    float *gate, *up, *h;        /* [R, hidden] pre-activations and silu(gate)·up */
    float *lu[RF_LORA_NTARGETS]; /* [R, r] s·drop(x)·Aᵀ of each adapter */
} rf_train_layer_acts;

typedef struct rf_train_acts {
    int B, T, R, chunk; /* R = B·T rows; chunk: rows of logits at a time */
    int n_slots;        /* n_layers with gradients, 1 without (a teacher) */
    rf_train_layer_acts *layers;
    float *xf, *xnf; /* [R, dim] final residual and its norm */
    /* backward buffers, reused by every layer */
    float *dres, *dxn, *dq, *dk, *dv, *datt, *dh, *dgate, *dup;
    float *tmp_out, *tmp_in, *tmp_din, *tmp_r;
    float *logits, *tlogits; /* [chunk, vocab] */
    float *scratch;
    size_t scratch_n;
    int *pos, *ids; /* [R] */
    float *arena;
    size_t bytes;
} rf_train_acts;

typedef struct rf_trainer {
    const rf_llama_model *m;
    rf_llama_config c;
    const rf_ops *ops;
    rf_llama_weights w; /* what the forward reads: the model's, or views of `full` */
    rf_lora *lora;      /* adapters (NULL: none) */
    /* full-parameter mode: every weight in f32 and its gradient at the same offset */
    float *full, *full_grad;
    size_t full_n;
    bool grads;    /* keeps every layer's activations for a backward */
    uint64_t step; /* forward count: the dropout masks' stream */
    rf_train_acts a;
} rf_trainer;

typedef enum rf_train_mode {
    RF_TRAIN_FROZEN = 0, /* forward only (a teacher, or evaluation) */
    RF_TRAIN_LORA = 1,   /* gradients to lora */
    RF_TRAIN_FULL = 2,   /* gradients to every weight (f32 copy made here) */
} rf_train_mode;

/* B sequences of T tokens; chunk rows of logits at a time (0: 32). */
int rf_trainer_init(rf_trainer *t, const rf_llama_model *m, rf_train_mode mode, rf_lora *lora,
                    int B, int T, int chunk, rf_error *err);
void rf_trainer_free(rf_trainer *t);
/* Register the trainable parameters with an optimiser: LoRA A and B, or in
 * full mode every weight (embedding, LM head, norms and biases on AdamW). */
int rf_trainer_add_params(rf_trainer *t, rf_optim *o, rf_error *err);

/* Forward of ids [B, T] (every sequence from position 0). */
int rf_train_forward(rf_trainer *t, const int *ids, rf_error *err);

/* A teacher cache's rows: k (id, log-probability) pairs per row. */
typedef struct rf_topk {
    int k;
    const int *ids;    /* [R, k] */
    const float *logp; /* [R, k] */
} rf_topk;

typedef struct rf_train_stats {
    double loss, ce, kl; /* means over the answer tokens; kl without T² */
    double correct;      /* answer tokens whose argmax was the target */
    int n_tokens;
} rf_train_stats;

/* Loss of the last forward over the rows whose targets[r] >= 0 (answer
 * tokens; -1 masks prompt and padding), against a teacher trainer run on
 * the same ids, or a top-k cache, or neither (CE only). With backward,
 * gradients of grad_scale·loss are added to the trainable parameters
 * (grad_scale 1/accumulation for gradient accumulation). */
int rf_train_loss(rf_trainer *s, const rf_trainer *teacher, const rf_topk *topk, const int *targets,
                  const rf_loss_config *lc, float grad_scale, bool backward, rf_train_stats *st,
                  rf_error *err);

/* Full-parameter mode: write the f32 weights back as an HF checkpoint
 * (model.safetensors in dtype, config and tokenizer files copied from
 * src_dir). */
int rf_trainer_save_full(const rf_trainer *t, const char *src_dir, const char *out_dir,
                         rf_dtype dtype, rf_error *err);

#endif
