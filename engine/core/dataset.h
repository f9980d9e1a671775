/* The dataset line format (JSONL, one object per line), shared by uploads,
 * evaluation and training:
 *   {"prompt": str, "response": str}                        schema prompt_response
 *   {"messages": [{"role": "system"|"user"|"assistant", "content": str}, …]}
 *                                                            schema messages
 * optionally with "choices": [str, str, …] and "answer": index (multiple
 * choice, scored by log-likelihood) and "split": "train"|"validation"|"test"
 * (default train). Other fields are carried along untouched. */
#ifndef RF_DATASET_H
#define RF_DATASET_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef enum { RF_SCHEMA_NONE, RF_SCHEMA_PROMPT_RESPONSE, RF_SCHEMA_MESSAGES } rf_dataset_schema;
typedef enum { RF_SPLIT_TRAIN, RF_SPLIT_VALIDATION, RF_SPLIT_TEST, RF_SPLIT_COUNT } rf_split;

typedef struct rf_dataset_stats {
    rf_dataset_schema schema; /* of the first line; every line must share it */
    uint64_t rows[RF_SPLIT_COUNT];
    uint64_t multiple_choice;
    /* rows with an answer to learn from: a response, or an assistant turn */
    uint64_t answers[RF_SPLIT_COUNT];
} rf_dataset_stats;

const char *rf_dataset_schema_name(rf_dataset_schema s);
const char *rf_split_name(rf_split s);

/* Check one parsed line and count it in stats. On failure err->field names
 * the field ("messages[2].role") and err->msg says what is wrong. */
int rf_dataset_check(const json_t *line, rf_dataset_stats *stats, rf_error *err);

#endif
