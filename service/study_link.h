/* A job that evaluates a study's trial reports to it as it runs: when a
 * running job's metadata names {"study_id", "trial"} and that study (of the
 * job's tenant) has a job_report {"event", "field", "step"}, each event of
 * that kind is reported to the trial as the intermediate value data[field]
 * at step data[step]; once the study's pruner says so, the trial is told
 * "prune" and the job is asked to stop; with a job_report "result" path,
 * the job's success tells its trial complete. This is how an hpo job's median
 * pruner stops a train job that falls behind, on whichever worker runs it,
 * while the hpo job itself waits without a worker. */
#ifndef RF_STUDY_LINK_H
#define RF_STUDY_LINK_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/core/error.h"
#include "service/ids.h"
#include "service/queue.h"

typedef struct rf_study_link {
    int state; /* 0: not looked up yet, 1: not a trial, 2: a trial */
    char study[RF_ID_MAX];
    int number;
    char event[65], field[65], step[65];
    char result[65]; /* "" or a path into the job's result: its trial's value */
} rf_study_link;

/* For event kind/data of running job j (lookup on the first event, kept in
 * l, which starts zeroed for each run). *stop becomes true when the trial
 * was pruned now; reason (cap bytes) then says why. Errors only warn: a
 * report that could not be made never fails the job. */
int rf_study_link_event(PGconn *c, const rf_claimed_job *j, rf_study_link *l, const char *kind,
                        const json_t *data, bool *stop, char *reason, size_t cap, rf_error *err);

/* Job j succeeded with result: when it is a trial and the study's
 * job_report names a "result" path, the trial is told complete with that
 * value now, before the job's end wakes whoever waits on it, so that the
 * pruner counts it at once. Errors only warn, as above. */
int rf_study_link_finish(PGconn *c, const rf_claimed_job *j, rf_study_link *l, const json_t *result,
                         rf_error *err);

#endif
