/* The `hpo` job runner: Bayesian optimisation of a train job's
 * hyper-parameters (DESIGN.md "Jobs that run other jobs", "Studies").
 *
 * The job owns a study (visible in /v1/studies) and is one client of it:
 * each trial is asked from the study and run as a child `train` job whose
 * params are `train` with the trial's point written at the space's paths
 * ("optimizer.lr", "lora.r", "loss.alpha", …); the objective is the child's
 * held-out metric. Up to `parallel` children run at once, on any worker; in
 * between, the job waits without a worker (RF_EWAIT). Each run starts from
 * what exists — the study's trials and the job's children — so a rescued
 * job neither re-runs a finished trial nor submits a child twice. With a
 * median pruner, every child reports its "eval" events to its trial and is
 * stopped once it falls behind the median (service/study_link.h); the trial
 * is then pruned. The result: the best trial (params, value, train job,
 * adapter), every trial, and an SVG plot registered as an artifact. */
#ifndef RF_JOBS_HPO_H
#define RF_JOBS_HPO_H

#include "engine/jobs/job.h"

extern const rf_runner rf_hpo_runner;

#endif
