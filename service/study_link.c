#include "service/study_link.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hpo/study.h"
#include "service/db.h"
#include "service/studies.h"

static int lookup(PGconn *c, const rf_claimed_job *j, rf_study_link *l, rf_error *err)
{
    PGresult *r;
    l->state = 1;
    int rc = rf_db_execp(
        c,
        "SELECT s.id, t.number, s.definition->'job_report'->>'event',"
        "  s.definition->'job_report'->>'field', s.definition->'job_report'->>'step',"
        "  coalesce(s.definition->'job_report'->>'result', '')"
        " FROM jobs j JOIN studies s ON s.id = j.metadata->>'study_id'"
        "  AND s.tenant_id = j.tenant_id"
        " JOIN study_trials t ON t.study_id = s.id AND t.number::text = j.metadata->>'trial'"
        " WHERE j.id = $1 AND s.definition->'job_report' IS NOT NULL",
        1, (const char *[]){j->id}, &r, err);
    if (!rc && PQntuples(r) == 1) {
        l->state = 2;
        snprintf(l->study, sizeof l->study, "%s", PQgetvalue(r, 0, 0));
        l->number = atoi(PQgetvalue(r, 0, 1));
        snprintf(l->event, sizeof l->event, "%s", PQgetvalue(r, 0, 2));
        snprintf(l->field, sizeof l->field, "%s", PQgetvalue(r, 0, 3));
        snprintf(l->step, sizeof l->step, "%s", PQgetvalue(r, 0, 4));
        snprintf(l->result, sizeof l->result, "%s", PQgetvalue(r, 0, 5));
    }
    PQclear(r);
    return rc;
}

int rf_study_link_event(PGconn *c, const rf_claimed_job *j, rf_study_link *l, const char *kind,
                        const json_t *data, bool *stop, char *reason, size_t cap, rf_error *err)
{
    *stop = false;
    int rc = 0;
    if (l->state == 0 && (rc = lookup(c, j, l, err))) return rc;
    if (l->state != 2 || strcmp(kind, l->event)) return 0;
    json_t *v = json_object_get(data, l->field), *s = json_object_get(data, l->step);
    if (!json_is_number(v) || !json_is_integer(s)) return 0;
    char *json = NULL;
    json_t *body = json_pack("{s:O,s:O}", "step", s, "value", v);
    if (!isfinite(json_number_value(v))) {
        /* a diverged run: nothing to compare, and nothing to continue */
        rc = rf_studies_tell(c, j->tenant, l->study, l->number, "prune", NULL, j->id, &json, err);
        *stop = rc == 0;
        snprintf(reason, cap, "pruned: %s is not finite at step %lld (trial %d of %s)", l->field,
                 (long long)json_integer_value(s), l->number, l->study);
        goto out;
    }
    if ((rc = rf_studies_report(c, j->tenant, l->study, l->number, body, &json, err))) {
        if (rc == RF_ECONFLICT) { /* told already (pruned or failed): stop reporting */
            l->state = 1;
            rc = 0;
        }
        goto out;
    }
    json_t *o = json_loads(json, 0, NULL);
    bool prune = json_is_true(json_object_get(o, "should_prune"));
    json_decref(o);
    free(json);
    json = NULL;
    if (!prune) goto out;
    json_t *pv = json_pack("{s:O}", "value", v);
    rc = rf_studies_tell(c, j->tenant, l->study, l->number, "prune", pv, j->id, &json, err);
    json_decref(pv);
    if (rc == RF_ECONFLICT) rc = 0; /* someone told it first */
    *stop = true;
    l->state = 1;
    /* Recorded, so that a rescue after a crash cancels the job rather than
     * resuming a pruned trial. */
    if (!rc)
        rc = rf_db_execp(c, "UPDATE jobs SET cancel_requested = true WHERE id = $1", 1,
                         (const char *[]){j->id}, NULL, err);
    snprintf(reason, cap,
             "pruned: %s %.6g at step %lld is behind the median of the completed trials "
             "(trial %d of %s)",
             l->field, json_number_value(v), (long long)json_integer_value(s), l->number, l->study);
out:
    json_decref(body);
    free(json);
    return rc;
}

int rf_study_link_finish(PGconn *c, const rf_claimed_job *j, rf_study_link *l, const json_t *result,
                         rf_error *err)
{
    int rc = 0;
    if (l->state == 0 && (rc = lookup(c, j, l, err))) return rc;
    if (l->state != 2 || !l->result[0]) return 0;
    const json_t *v = rf_study_json_path(result, l->result);
    if (!json_is_number(v) || !isfinite(json_number_value(v))) return 0; /* its parent decides */
    json_t *body = json_pack("{s:O}", "value", v);
    char *json = NULL;
    rc = rf_studies_tell(c, j->tenant, l->study, l->number, "complete", body, j->id, &json, err);
    json_decref(body);
    free(json);
    return rc == RF_ECONFLICT ? 0 : rc;
}
