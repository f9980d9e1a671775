/* Training forward and backward through the whole Llama model, in the
 * manner of llm.c: every block runs through rf_block_forward and
 * rf_block_backward (engine/model/block.h), the same block inference runs,
 * with the activations each backward needs kept per layer in one arena
 * sized once per (batch, sequence). Gradients go to the LoRA adapters
 * (engine/model/lora.h) or, in full-parameter mode, to an f32 copy of every
 * weight (embeddings and norms included). The base may be dense or GPTQ
 * W4A16: a 4-bit base is frozen (a teacher, or a LoRA student over it as
 * QLoRA trains), its input gradient computed by the W4A16 backward op
 * without a dense copy of the weight. The loss and the LM head run over
 * chunks of rows, so the logits of a whole batch never exist at once
 * (FORMATS.md "Knowledge distillation loss").
 *
 * A step reads top to bottom: rf_train_forward (student, and teacher
 * without gradients), rf_train_loss (loss; with grad, its gradient through
 * the LM head), rf_train_backward (the final norm, the blocks in reverse,
 * the embedding), then rf_optim_step (engine/train/optim.h). Nothing is
 * allocated inside a step. */
#ifndef RF_TRAIN_H
#define RF_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/block.h"
#include "engine/model/llama.h"
#include "engine/model/lora.h"
#include "engine/train/loss.h"
#include "engine/train/optim.h"

typedef struct rf_train_acts {
    int B, T, R, chunk; /* R = B·T rows; chunk: rows of logits at a time */
    /* n_layers with gradients (every activation kept), 1 without (a teacher:
     * one slot, the residual stream updated in place) */
    int n_slots;
    rf_block_acts *layers;   /* [n_slots]; layer l's x_out is layer l+1's x_in */
    float *xf, *xnf;         /* [R, dim] final residual and its norm */
    rf_block_bufs bw;        /* backward buffers, reused by every layer */
    float *tmp;              /* [R, dim] (the in-place layout's projections) */
    float *lora_x, *lora_y;  /* [R, max(dim, qd, hidden)] adapter work space */
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
    /* rf_train_loss with grad left ∂L/∂xnf in a.bw.dxn for rf_train_backward
     * (over this many answer tokens) */
    bool pending;
    int pending_n;
    rf_train_acts a;
} rf_trainer;

typedef enum rf_train_mode {
    RF_TRAIN_FROZEN = 0, /* forward only (a teacher, or evaluation) */
    RF_TRAIN_LORA = 1,   /* gradients to lora */
    RF_TRAIN_FULL = 2,   /* gradients to every weight (f32 copy made here) */
} rf_train_mode;

/* B sequences of T tokens; chunk rows of logits at a time (0: 32). A GPTQ
 * model trains in LoRA mode only (RF_EUNSUPPORTED for full). */
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
 * the same ids, or a top-k cache, or neither (CE only). With grad, the
 * gradient of grad_scale·loss (grad_scale 1/accumulation for gradient
 * accumulation) goes through the LM head, into its weight in full mode and
 * to ∂L/∂(final norm output), which rf_train_backward then carries down. */
int rf_train_loss(rf_trainer *s, const rf_trainer *teacher, const rf_topk *topk, const int *targets,
                  const rf_loss_config *lc, float grad_scale, bool grad, rf_train_stats *st,
                  rf_error *err);

/* The backward of the last forward, from the gradient rf_train_loss left:
 * the final norm, every block in reverse, the embedding; gradients are
 * added to the trainable parameters. */
int rf_train_backward(rf_trainer *t, rf_error *err);

/* Full-parameter mode: write the f32 weights back as an HF checkpoint
 * (model.safetensors in dtype, config and tokenizer files copied from
 * src_dir). */
int rf_trainer_save_full(const rf_trainer *t, const char *src_dir, const char *out_dir,
                         rf_dtype dtype, rf_error *err);

#endif
