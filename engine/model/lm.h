/* rf_lm: a language model ready for text in, text out — the Llama weights,
 * the tokenizer of the same folder, and the chat template its
 * tokenizer_config.json holds (when it holds one). What generation,
 * evaluation and the completions endpoints load. A loaded rf_lm is
 * read-only: any number of threads may use it at once, each with its own
 * rf_llama_acts. */
#ifndef RF_LM_H
#define RF_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/chat_template.h"
#include "engine/core/error.h"
#include "engine/model/llama.h"
#include "engine/tokenizer/tokenizer.h"

#define RF_LM_MAX_STOP 16

typedef struct rf_lm {
    rf_llama_model model;
    rf_tokenizer *tok;
    rf_chat_template *chat; /* the tokenizer's chat_template, or NULL */
    char chat_error[512];   /* why chat is NULL */
    /* Tokens that end a turn: the config's EOS ids, the tokenizer's EOS and
     * the families' end-of-turn tokens (<|eot_id|>, <|im_end|>) it knows. */
    int stop_ids[RF_LM_MAX_STOP];
    int n_stop;
} rf_lm;

/* Activations of the BF16 and 4-bit matmuls at inference. BF16 is what
 * W4A16 means and what a bf16 linear computes in PyTorch (rf_ops_cpu_bf16:
 * activations rounded to bf16, the exact products summed in f32), and on
 * CPUs with AVX-512 BF16 it runs the vdpbf16ps kernels at twice the f32
 * rate; F32 keeps every activation f32 (rf_ops_cpu), exact against an f32
 * reference. F32 and F16 weights compute in f32 either way. */
typedef enum { RF_ACT_BF16, RF_ACT_F32 } rf_activations;

/* "bf16" or "f32" (NULL: bf16) → *a; −RF_EINVAL for another word. */
int rf_activations_parse(const char *s, rf_activations *a, rf_error *err);
const char *rf_activations_name(rf_activations a);

int rf_lm_load(rf_lm *lm, const char *dir, rf_activations act, rf_error *err);
void rf_lm_free(rf_lm *lm);
/* Resident bytes the loaded model stands for (mapped weights). */
size_t rf_lm_bytes(const rf_lm *lm);

/* Tokens of a plain prompt (the post-processor's BOS added), or of a chat
 * rendered with the model's chat template (or the template `spec` names
 * when not NULL, see rf_chat_template_load) and its generation prompt.
 * *ids malloc'd. */
int rf_lm_encode_prompt(const rf_lm *lm, const char *text, int32_t **ids, size_t *n, rf_error *err);
int rf_lm_encode_chat(const rf_lm *lm, const rf_chat_msg *msgs, size_t n_msgs, const char *spec,
                      int32_t **ids, size_t *n, rf_error *err);

/* Decode generated ids to malloc'd text, special tokens left out. Ids the
 * tokenizer has no entry for (a model's vocabulary is often padded past
 * the tokenizer's) decode to nothing. */
int rf_lm_decode(const rf_lm *lm, const int *ids, size_t n, char **text, size_t *len,
                 rf_error *err);

#endif
