/* The `dataset` job: Self-Instruct data generation (FORMATS.md
 * "Self-Instruct"). Seed prompts → sub-topics → question/answer pairs →
 * the Self-Instruct filters and ROUGE-L near-duplicates → the judge's score
 * against the rubric → kept, until target_pairs. Kept pairs are appended
 * to <workdir>/accepted.jsonl (fsynced each round) and the counters
 * checkpointed, so a rescued attempt continues from them and never keeps a
 * pair twice (the file is the truth; its questions are the comparison
 * set). The kept pairs become a dataset in the line format of
 * engine/core/dataset.h, split by a seeded shuffle, registered with the
 * job as its source. A teacher that keeps failing fails the job with its
 * last error, after what was kept is registered as a partial dataset.
 *
 * The cheap checks (filters, near-duplicates of what is already kept) run
 * before the judge to save its requests; the kept set is the one of
 * judging first, as a pair is kept only if it passes all three and the
 * duplicate check is repeated, in order, when it is kept. */
#ifndef RF_JOB_DATASET_H
#define RF_JOB_DATASET_H

#include "engine/jobs/job.h"

extern const rf_runner rf_dataset_runner;

#endif
