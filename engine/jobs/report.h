/* The pipeline job's report: its result (JSON) as one self-contained HTML
 * page — the paper's table for the user's task, and inline SVG charts of the
 * training loss curves, the HPO trials, accuracy by variant, model bytes and
 * per-token latency. No scripts and no external assets: the page opens from
 * a file, an artifact download or GET /v1/jobs/{id}/report alike.
 *
 * What it reads of the result (members may be absent; a missing number is
 * shown as "–"):
 *   task {name, description}; student, teacher, final_model (ids);
 *   evaluation_datasets [{id, name}];
 *   rows [{variant, label, model, quantized, accuracy {<dataset id>:
 *         {acc, acc_norm}}, accuracy_drop {<dataset id>: number},
 *         perplexity, model_bytes, resident_bytes, decode_tokens_per_s,
 *         latency_ms_per_token}];
 *   training [{label, steps [..], loss [..], validation {steps, loss}}];
 *   hpo {objective, direction, trials [{number, value, state}], best {number, value, params}};
 *   stages [{stage, job, seconds}]; notes [str]. */
#ifndef RF_JOBS_REPORT_H
#define RF_JOBS_REPORT_H

#include <jansson.h>

#include "engine/core/error.h"

/* *html is malloc'd. */
int rf_pipeline_report_html(const json_t *result, char **html, rf_error *err);
/* The same table as plain text for a terminal (make run's last screen):
 * one line a variant, then the notes. *text is malloc'd. */
int rf_pipeline_report_text(const json_t *result, char **text, rf_error *err);

#endif
