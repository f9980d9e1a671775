#include "engine/jobs/job.h"

#include <string.h>

#include "engine/jobs/dataset.h"
#include "engine/jobs/evaluate.h"
#include "engine/jobs/hpo.h"
#include "engine/jobs/pipeline.h"
#include "engine/jobs/quantize.h"
#include "engine/jobs/teacher_cache.h"
#include "engine/jobs/train.h"

#define RF_MAX_RUNNERS 64

static const rf_runner *g_runners[RF_MAX_RUNNERS];
static int g_nrunners;

int rf_runner_register(const rf_runner *runner)
{
    if (!runner || !runner->type || !runner->run) return RF_EINVAL;
    for (int i = 0; i < g_nrunners; i++)
        if (strcmp(g_runners[i]->type, runner->type) == 0) return RF_ECONFLICT;
    if (g_nrunners == RF_MAX_RUNNERS) return RF_ENOMEM;
    g_runners[g_nrunners++] = runner;
    return 0;
}

const rf_runner *rf_runner_find(const char *type)
{
    if (!type) return NULL;
    for (int i = 0; i < g_nrunners; i++)
        if (strcmp(g_runners[i]->type, type) == 0) return g_runners[i];
    return NULL;
}

int rf_runner_types(const char **names, int cap)
{
    for (int i = 0; i < g_nrunners && i < cap; i++)
        names[i] = g_runners[i]->type;
    return g_nrunners;
}

int rf_runner_validate(const rf_runner *runner, const json_t *params, rf_error *err)
{
    int rc;
    if (runner->params && (rc = rf_params_check(params, runner->params, "", err)) < 0) return rc;
    return runner->validate ? runner->validate(params, err) : 0;
}

void rf_runners_register_builtin(void)
{
    /* Engine job types; each describes its params in a table (their refs
     * are the params that name registered objects). */
    rf_runner_register(&rf_evaluate_runner);
    rf_runner_register(rf_train_runner());
    rf_runner_register(rf_teacher_cache_runner());
    rf_runner_register(&rf_quantize_runner);
    rf_runner_register(&rf_hpo_runner);
    rf_runner_register(&rf_pipeline_runner);
    rf_runner_register(&rf_dataset_runner);
}
