/* GPTQ calibration sequences (issue 6, DESIGN.md "quantize"): N rows drawn
 * with a seed from a dataset's train split (engine/dataset.h line format),
 * each formatted through the model's chat template and truncated to seq_len
 * tokens; or N windows of seq_len tokens at seeded random offsets of a
 * plain text file, as the GPTQ paper draws them from C4. */
#ifndef RF_CALIBRATION_H
#define RF_CALIBRATION_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

typedef struct rf_calib {
    int n;           /* sequences */
    int32_t *tokens; /* all sequences, one after the other */
    int *lens;       /* [n] */
} rf_calib;

/* RF_EINVAL with field "calibration.samples" when the train split has
 * fewer than n rows; "dataset" when a line is not valid. */
int rf_calib_from_jsonl(const rf_tokenizer *tok, const char *path, int n, int seq_len,
                        uint64_t seed, rf_calib *out, rf_error *err);
/* The same from another split ("train", "validation", "test"); with
 * allow_fewer, a split of fewer than n rows gives them all (at least one). */
int rf_calib_from_jsonl_split(const rf_tokenizer *tok, const char *path, const char *split, int n,
                              int seq_len, uint64_t seed, int allow_fewer, rf_calib *out,
                              rf_error *err);
/* RF_EINVAL with field "calibration.seq_len" when the text has fewer than
 * seq_len tokens. */
int rf_calib_from_text(const rf_tokenizer *tok, const char *path, int n, int seq_len, uint64_t seed,
                       rf_calib *out, rf_error *err);
void rf_calib_free(rf_calib *c);

#endif
