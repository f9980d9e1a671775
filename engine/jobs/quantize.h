/* The `quantize` job type: GPTQ (or RTN) W4A16 of a checkpoint folder,
 * calibrated on a dataset (JSONL through the chat template, or plain text),
 * exported in the GPTQ layout under the job's workdir (engine/quantize.h).
 *
 * params: {"model": folder, "dataset": file (.jsonl: rows; else text),
 *          "calibration": {"samples": 128, "seq_len": 2048 (capped by the
 *          model), "seed": 0}, "bits": 4, "group_size": 128, "sym": true,
 *          "desc_act": false, "static_groups": false, "damp_percent": 0.01,
 *          "method": "gptq"|"rtn", "quantize_lm_head": false,
 *          "evaluate": {"perplexity": true, "samples": 32}}
 * result: source and quantized bytes and their ratio, resident weight bytes
 *         of each when loaded, seconds, peak RSS,
 *         per-layer relative reconstruction error and time, the folder; with
 *         evaluate, perplexity before and after on the validation split. */
#ifndef RF_JOBS_QUANTIZE_H
#define RF_JOBS_QUANTIZE_H

#include "engine/jobs/job.h"

extern const rf_runner rf_quantize_runner;

#endif
