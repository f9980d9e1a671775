#include "service/studies.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hpo/study.h"
#include "service/db.h"
#include "service/ids.h"

/* A trial object from study_trials row T, with its intermediate values;
 * row_to_json keeps the column order, writes compact JSON and the shortest
 * float8 text that reads back the same. */
#define TRIAL_JSON(T)                                                                              \
    "(SELECT row_to_json(o) FROM (SELECT 'study.trial' AS object, " T ".study_id, " T              \
    ".number, " T ".state, " T ".params, " T ".value,"                                             \
    " (SELECT coalesce(json_agg(row_to_json(r) ORDER BY r.step), '[]'::json) FROM (SELECT"         \
    " r.step, r.value FROM study_reports r WHERE r.study_id = " T ".study_id AND r.number = " T    \
    ".number) r) AS intermediate, " T ".job_id,"                                                   \
    " extract(epoch from " T ".created_at)::bigint AS created_at,"                                 \
    " extract(epoch from " T ".finished_at)::bigint AS finished_at,"                               \
    " round(extract(epoch from " T ".finished_at - " T ".created_at), 3)::float8 AS seconds) o)"

/* A study object from studies row s, with its counts and best trial. */
#define STUDY_JSON                                                                                 \
    "(SELECT row_to_json(o) FROM (SELECT s.id, 'study' AS object, s.name,"                         \
    " s.definition->'direction' AS direction, s.definition->'space' AS space,"                     \
    " s.definition->'sampler' AS sampler, s.definition->'pruner' AS pruner,"                       \
    " s.definition->'max_trials' AS max_trials, s.definition->'job_report' AS job_report,"         \
    " s.job_id,"                                                                                   \
    " (SELECT row_to_json(c) FROM (SELECT count(*) AS total,"                                      \
    "   count(*) FILTER (WHERE x.state = 'running') AS running,"                                   \
    "   count(*) FILTER (WHERE x.state = 'complete') AS complete,"                                 \
    "   count(*) FILTER (WHERE x.state = 'pruned') AS pruned,"                                     \
    "   count(*) FILTER (WHERE x.state = 'failed') AS failed"                                      \
    "   FROM study_trials x WHERE x.study_id = s.id) c) AS trials,"                                \
    " (SELECT " TRIAL_JSON(                                                                        \
        "b") " FROM study_trials b WHERE b.study_id = s.id"                                        \
             "   AND b.state = 'complete' ORDER BY CASE WHEN s.definition->>'direction' = "        \
             "'maximize'"                                                                          \
             "   THEN -b.value ELSE b.value END, b.number LIMIT 1) AS best_trial,"                 \
             " extract(epoch from s.created_at)::bigint AS created_at) o)::text"

static const char *const k_trials_array =
    "SELECT coalesce(json_agg(" TRIAL_JSON("t") " ORDER BY t.number), '[]'::json)::text"
                                                " FROM study_trials t WHERE t.study_id = $1";

static int not_found(rf_error *err, const char *id)
{
    return rf_errorf(err, RF_ENOTFOUND, "no study with id '%s'", id);
}

static int take(PGresult *r, char **json, rf_error *err)
{
    *json = strdup(PQgetvalue(r, 0, 0));
    return *json ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}

/* A seed that a retried request with the same key reproduces. */
static uint64_t key_seed(const char *tenant, const char *key)
{
    unsigned char md[32];
    unsigned int len;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    EVP_DigestUpdate(m, tenant, strlen(tenant));
    EVP_DigestUpdate(m, "/", 1);
    EVP_DigestUpdate(m, key, strlen(key));
    EVP_DigestFinal_ex(m, md, &len);
    EVP_MD_CTX_free(m);
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s = s << 8 | md[i];
    return s;
}

int rf_studies_create(PGconn *c, const char *tenant, const json_t *body, const char *key,
                      const char *job_id, char **json, bool *created, rf_error *err)
{
    *json = NULL;
    *created = false;
    if (key && (!*key || strlen(key) > 255))
        return rf_error_field(err, RF_EINVAL, "Idempotency-Key",
                              "Idempotency-Key must be 1 to 255 characters");
    uint64_t seed = 0;
    if (key)
        seed = key_seed(tenant, key);
    else if (rf_random_bytes(&seed, sizeof seed))
        return rf_errorf(err, RF_EIO, "the system's random source failed");
    rf_study_def d;
    int rc = rf_study_def_parse(body, seed, &d, err);
    if (rc) return rc;
    char id[RF_ID_MAX];
    /* 15 digits: bounds come back as the user wrote them (1e-05, not
     * 1.0000000000000001e-05), and every ask reads them from here alike. */
    char *def = json_dumps(d.json, JSON_COMPACT | JSON_REAL_PRECISION(15));
    const char *name = json_string_value(json_object_get(d.json, "name"));
    PGresult *r = NULL;
    if (!def) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    if (rf_id_new("study", id)) {
        rc = rf_errorf(err, RF_EIO, "the system's random source failed");
        goto out;
    }
    const char *p[6] = {id, tenant, name, def, job_id, key};
    if ((rc = rf_db_execp(c,
                          "WITH s AS (INSERT INTO studies (id, tenant_id, name, definition, job_id,"
                          "  create_key) VALUES ($1, $2, $3, $4::json, $5, $6)"
                          "  ON CONFLICT (tenant_id, create_key) WHERE create_key IS NOT NULL"
                          "  DO NOTHING RETURNING *)"
                          " SELECT " STUDY_JSON " FROM s",
                          6, p, &r, err)))
        goto out;
    if (PQntuples(r) == 1) {
        *created = true;
        rc = take(r, json, err);
        goto out;
    }
    /* The key was used before: the same study, or a mistake. */
    PQclear(r);
    r = NULL;
    if ((rc = rf_db_execp(c,
                          "SELECT " STUDY_JSON ", s.definition::jsonb = $3::jsonb FROM studies s"
                          " WHERE s.tenant_id = $1 AND s.create_key = $2",
                          3, (const char *[]){tenant, key, def}, &r, err)))
        goto out;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_EINTERNAL, "study key '%s' conflicted but is not there", key);
    else if (PQgetvalue(r, 0, 1)[0] != 't')
        rc = rf_error_field(err, RF_EINVAL, "Idempotency-Key",
                            "this Idempotency-Key was already used with a different study");
    else
        rc = take(r, json, err);
out:
    PQclear(r);
    free(def);
    rf_study_def_free(&d);
    return rc;
}

int rf_studies_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("study", id)) return not_found(err, id);
    PGresult *r;
    int rc =
        rf_db_execp(c, "SELECT " STUDY_JSON " FROM studies s WHERE s.id = $1 AND s.tenant_id = $2",
                    2, (const char *[]){id, tenant}, &r, err);
    if (!rc) rc = PQntuples(r) ? take(r, json, err) : not_found(err, id);
    PQclear(r);
    return rc;
}

int rf_studies_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                    rf_error *err)
{
    if (after && !rf_id_valid("study", after))
        return rf_error_field(err, RF_EINVAL, "after", "'after' must be a study id");
    char l[16];
    snprintf(l, sizeof l, "%d", limit + 1);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT " STUDY_JSON " FROM studies s WHERE s.tenant_id = $1"
                         " AND ($2::text IS NULL OR s.seq < (SELECT seq FROM studies"
                         "      WHERE id = $2 AND tenant_id = $1))"
                         " ORDER BY s.seq DESC LIMIT $3::int",
                         3, (const char *[]){tenant, after, l}, &r, err);
    if (!rc) rc = rf_db_list_json(r, limit, json, err);
    PQclear(r);
    return rc;
}

static int load_def(const char *text, rf_study_def *d, rf_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc = j ? rf_study_def_parse(j, 0, d, err)
               : rf_errorf(err, RF_EINTERNAL, "a stored study definition does not parse");
    json_decref(j);
    if (rc && rc != RF_EINTERNAL)
        rc = rf_errorf(err, RF_EINTERNAL, "a stored study definition is invalid: %s", err->msg);
    return rc;
}

static int trials_json(PGconn *c, const char *id, json_t **out, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c, k_trials_array, 1, &id, &r, err);
    if (rc) return rc;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return *out ? 0 : rf_errorf(err, RF_EINTERNAL, "the trials of %s do not parse", id);
}

int rf_studies_ask(PGconn *c, const char *tenant, const char *id, const json_t *body, char **json,
                   rf_error *err)
{
    *json = NULL;
    if (!rf_id_valid("study", id)) return not_found(err, id);
    const json_t *given = NULL;
    if (body && !json_is_null(body)) {
        if (!json_is_object(body))
            return rf_error_field(err, RF_EINVAL, "", "the request body must be a JSON object");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)body, k, v)
        {
            if (strcmp(k, "params"))
                return rf_error_field(err, RF_EINVAL, k,
                                      "unknown field '%s' (expected params: a point to try)", k);
        }
        given = json_object_get(body, "params");
    }
    rf_study_def d = {0};
    json_t *trials = NULL, *params = NULL;
    char *params_s = NULL;
    PGresult *r = NULL;
    int rc = rf_db_begin(c, err);
    if (rc) return rc;
    /* The study's row lock: asks of one study take their numbers one after
     * the other, each after the trials of the asks before it are visible. */
    if ((rc = rf_db_execp(c,
                          "UPDATE studies SET next_number = next_number + 1"
                          " WHERE id = $1 AND tenant_id = $2"
                          " RETURNING next_number - 1, definition::text",
                          2, (const char *[]){id, tenant}, &r, err)))
        goto out;
    if (PQntuples(r) == 0) {
        rc = not_found(err, id);
        goto out;
    }
    int number = atoi(PQgetvalue(r, 0, 0));
    if ((rc = load_def(PQgetvalue(r, 0, 1), &d, err))) goto out;
    if (d.max_trials && number >= d.max_trials) {
        rc = rf_errorf(err, RF_ECONFLICT, "study %s has reached its max_trials (%d)", id,
                       d.max_trials);
        goto out;
    }
    if (given) {
        if ((rc = rf_study_check_point(&d, given, err))) goto out;
        params = json_incref((json_t *)given);
    } else if ((rc = trials_json(c, id, &trials, err)) ||
               (rc = rf_study_ask(&d, trials, number, &params, err))) {
        goto out;
    }
    params_s = json_dumps(params, JSON_COMPACT | JSON_REAL_PRECISION(17));
    char num[16];
    snprintf(num, sizeof num, "%d", number);
    PQclear(r);
    r = NULL;
    if (!params_s) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = rf_db_execp(c,
                          "INSERT INTO study_trials AS t (study_id, number, params)"
                          " VALUES ($1, $2::int, $3::json) RETURNING " TRIAL_JSON("t") "::text",
                          3, (const char *[]){id, num, params_s}, &r, err)) ||
        (rc = take(r, json, err)) || (rc = rf_db_commit(c, err)))
        goto out;
out:
    if (rc) {
        rf_db_rollback(c);
        free(*json);
        *json = NULL;
    }
    PQclear(r);
    free(params_s);
    json_decref(params);
    json_decref(trials);
    rf_study_def_free(&d);
    return rc;
}

/* Why a write on a trial touched nothing: no study, no such trial, or it
 * has finished already. */
static int trial_refused(PGconn *c, const char *tenant, const char *id, int number,
                         const char *verb, rf_error *err)
{
    char num[16];
    snprintf(num, sizeof num, "%d", number);
    PGresult *r;
    int rc =
        rf_db_execp(c,
                    "SELECT (SELECT state FROM study_trials t WHERE t.study_id = s.id"
                    " AND t.number = $3::int) FROM studies s WHERE s.id = $1 AND s.tenant_id = $2",
                    3, (const char *[]){id, tenant, num}, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = not_found(err, id);
    else if (PQgetisnull(r, 0, 0))
        rc = rf_errorf(err, RF_ENOTFOUND, "study %s has no trial %d", id, number);
    else
        rc = rf_errorf(err, RF_ECONFLICT,
                       "trial %d of study %s is already %s; only a running trial can be %s", number,
                       id, PQgetvalue(r, 0, 0), verb);
    PQclear(r);
    return rc;
}

int rf_studies_tell(PGconn *c, const char *tenant, const char *id, int number, const char *state,
                    const json_t *body, const char *job_id, char **json, rf_error *err)
{
    *json = NULL;
    if (!rf_id_valid("study", id)) return not_found(err, id);
    const char *st = !strcmp(state, "complete") ? "complete"
                     : !strcmp(state, "fail")   ? "failed"
                     : !strcmp(state, "prune")  ? "pruned"
                                                : NULL;
    if (!st) return rf_errorf(err, RF_EINTERNAL, "unknown tell '%s'", state);
    json_t *value = NULL;
    if (body && !json_is_null(body)) {
        if (!json_is_object(body))
            return rf_error_field(err, RF_EINVAL, "", "the request body must be a JSON object");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)body, k, v)
        {
            if (strcmp(k, "value"))
                return rf_error_field(err, RF_EINVAL, k, "unknown field '%s' (expected value)", k);
        }
        value = json_object_get(body, "value");
    }
    if (!strcmp(st, "complete") && !value)
        return rf_error_field(err, RF_EINVAL, "value", "'value' is required to complete a trial");
    if (!strcmp(st, "failed") && value && !json_is_null(value))
        return rf_error_field(err, RF_EINVAL, "value", "a failed trial has no value");
    if (value && !json_is_null(value)) {
        int rc = rf_study_check_value(value, "value", err);
        if (rc) return rc;
    }
    char num[16], v[40];
    snprintf(num, sizeof num, "%d", number);
    if (value && !json_is_null(value)) snprintf(v, sizeof v, "%.17g", json_number_value(value));
    const char *p[6] = {id, tenant, num, st, value && !json_is_null(value) ? v : NULL, job_id};
    PGresult *r;
    int rc = rf_db_execp(
        c,
        "UPDATE study_trials t SET state = $4,"
        " value = CASE WHEN $4 = 'pruned' THEN coalesce($5::float8, (SELECT r.value FROM"
        "  study_reports r WHERE r.study_id = t.study_id AND r.number = t.number"
        "  ORDER BY r.step DESC LIMIT 1)) ELSE $5::float8 END,"
        " finished_at = clock_timestamp(), job_id = coalesce($6, t.job_id)"
        " FROM studies s WHERE s.id = t.study_id AND s.id = $1 AND s.tenant_id = $2"
        " AND t.number = $3::int AND t.state = 'running'"
        " RETURNING " TRIAL_JSON("t") "::text",
        6, p, &r, err);
    if (rc) return rc;
    rc = PQntuples(r) ? take(r, json, err) : trial_refused(c, tenant, id, number, "told", err);
    PQclear(r);
    return rc;
}

int rf_studies_report(PGconn *c, const char *tenant, const char *id, int number, const json_t *body,
                      char **json, rf_error *err)
{
    *json = NULL;
    if (!rf_id_valid("study", id)) return not_found(err, id);
    if (!json_is_object(body))
        return rf_error_field(err, RF_EINVAL, "", "the request body must be {\"step\", \"value\"}");
    const char *k;
    json_t *jv;
    json_object_foreach((json_t *)body, k, jv)
    {
        if (strcmp(k, "step") && strcmp(k, "value"))
            return rf_error_field(err, RF_EINVAL, k, "unknown field '%s' (expected step, value)",
                                  k);
    }
    json_t *step = json_object_get(body, "step"), *value = json_object_get(body, "value");
    if (!json_is_integer(step) || json_integer_value(step) < 0 ||
        json_integer_value(step) > 2147483647)
        return rf_error_field(err, RF_EINVAL, "step",
                              "'step' must be an integer in [0, 2147483647]");
    int rc = rf_study_check_value(value, "value", err);
    if (rc) return rc;
    char num[16], s[24], v[40];
    snprintf(num, sizeof num, "%d", number);
    snprintf(s, sizeof s, "%lld", (long long)json_integer_value(step));
    snprintf(v, sizeof v, "%.17g", json_number_value(value));
    PGresult *r = NULL;
    json_t *trials = NULL;
    rf_study_def d = {0};
    /* A second report of a step keeps the first (as Optuna does). */
    if ((rc = rf_db_execp(c,
                          "WITH t AS (SELECT t.study_id, t.number, s.definition::text AS def"
                          "  FROM study_trials t JOIN studies s ON s.id = t.study_id"
                          "  WHERE s.id = $1 AND s.tenant_id = $2 AND t.number = $3::int"
                          "  AND t.state = 'running'),"
                          " i AS (INSERT INTO study_reports (study_id, number, step, value)"
                          "  SELECT study_id, number, $4::bigint, $5::float8 FROM t"
                          "  ON CONFLICT DO NOTHING)"
                          " SELECT def FROM t",
                          5, (const char *[]){id, tenant, num, s, v}, &r, err)))
        return rc;
    if (PQntuples(r) == 0) {
        rc = trial_refused(c, tenant, id, number, "reported on", err);
        goto out;
    }
    if ((rc = load_def(PQgetvalue(r, 0, 0), &d, err)) || (rc = trials_json(c, id, &trials, err)))
        goto out;
    bool prune = rf_study_should_prune(&d, trials, number);
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:I,s:b}", "object", "study.report", "study_id", id, "number",
                  number, "step", json_integer_value(step), "should_prune", prune);
    *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!*json) rc = rf_errorf(err, RF_ENOMEM, "out of memory");
out:
    PQclear(r);
    json_decref(trials);
    rf_study_def_free(&d);
    return rc;
}

int rf_studies_trials(PGconn *c, const char *tenant, const char *id, long long after, int limit,
                      char **json, rf_error *err)
{
    if (!rf_id_valid("study", id)) return not_found(err, id);
    char a[24], l[16];
    snprintf(a, sizeof a, "%lld", after);
    snprintf(l, sizeof l, "%d", limit + 1);
    PGresult *r;
    int rc = rf_db_execp(c, "SELECT 1 FROM studies WHERE id = $1 AND tenant_id = $2", 2,
                         (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = not_found(err, id);
    PQclear(r);
    if (rc) return rc;
    rc = rf_db_execp(
        c,
        "SELECT " TRIAL_JSON("t") "::text FROM study_trials t WHERE t.study_id = $1"
                                  " AND t.number > $2::int ORDER BY t.number LIMIT $3::int",
        3, (const char *[]){id, a, l}, &r, err);
    if (!rc) rc = rf_db_list_json(r, limit, json, err);
    PQclear(r);
    return rc;
}

int rf_studies_attach(PGconn *c, const char *tenant, const char *id, int number, const char *job_id,
                      char **json, rf_error *err)
{
    if (!rf_id_valid("study", id)) return not_found(err, id);
    char num[16];
    snprintf(num, sizeof num, "%d", number);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "UPDATE study_trials t SET job_id = $4 FROM studies s"
                         " WHERE s.id = t.study_id AND s.id = $1 AND s.tenant_id = $2"
                         " AND t.number = $3::int RETURNING " TRIAL_JSON("t") "::text",
                         4, (const char *[]){id, tenant, num, job_id}, &r, err);
    if (rc) return rc;
    rc = PQntuples(r) ? take(r, json, err)
                      : rf_errorf(err, RF_ENOTFOUND, "study %s has no trial %d", id, number);
    PQclear(r);
    return rc;
}

/* ---- the job context's study operations --------------------------------- */

static int arg_str(const json_t *args, const char *key, const char **out, rf_error *err)
{
    *out = json_string_value(json_object_get(args, key));
    return *out ? 0 : rf_errorf(err, RF_EINVAL, "study operation: '%s' must be a string", key);
}

static int arg_int(const json_t *args, const char *key, int *out, rf_error *err)
{
    json_t *v = json_object_get(args, key);
    if (!json_is_integer(v))
        return rf_errorf(err, RF_EINVAL, "study operation: '%s' must be an integer", key);
    *out = (int)json_integer_value(v);
    return 0;
}

int rf_studies_op(PGconn *c, const char *tenant, const char *job_id, const char *op,
                  const json_t *args, json_t **out, rf_error *err)
{
    char *json = NULL;
    const char *study = NULL, *s = NULL;
    int number = 0, rc;
    bool created;
    *out = NULL;
    if (!strcmp(op, "create")) {
        json_t *body = json_deep_copy(args);
        json_object_del(body, "key");
        rc = arg_str(args, "key", &s, err);
        if (!rc) rc = rf_studies_create(c, tenant, body, s, job_id, &json, &created, err);
        json_decref(body);
    } else if ((rc = arg_str(args, "study", &study, err))) {
        return rc;
    } else if (!strcmp(op, "get")) {
        rc = rf_studies_get(c, tenant, study, &json, err);
    } else if (!strcmp(op, "ask")) {
        json_t *body = json_object_get(args, "params")
                           ? json_pack("{s:O}", "params", json_object_get(args, "params"))
                           : NULL;
        rc = rf_studies_ask(c, tenant, study, body, &json, err);
        json_decref(body);
    } else if (!strcmp(op, "trials")) {
        json_t *arr = NULL;
        rc = trials_json(c, study, &arr, err);
        *out = arr;
        return rc;
    } else if ((rc = arg_int(args, "number", &number, err))) {
        return rc;
    } else if (!strcmp(op, "tell")) {
        json_t *v = json_object_get(args, "value");
        json_t *body = v ? json_pack("{s:O}", "value", v) : NULL;
        const char *jid = json_string_value(json_object_get(args, "job_id"));
        if (!(rc = arg_str(args, "state", &s, err)))
            rc = strcmp(s, "complete") && strcmp(s, "fail") && strcmp(s, "prune")
                     ? rf_errorf(err, RF_EINVAL,
                                 "study tell: state '%s' is not complete, fail "
                                 "or prune",
                                 s)
                     : rf_studies_tell(c, tenant, study, number, s, body, jid, &json, err);
        json_decref(body);
    } else if (!strcmp(op, "attach")) {
        if (!(rc = arg_str(args, "job_id", &s, err)))
            rc = rf_studies_attach(c, tenant, study, number, s, &json, err);
    } else if (!strcmp(op, "report")) {
        json_t *body = json_pack("{s:O?,s:O?}", "step", json_object_get(args, "step"), "value",
                                 json_object_get(args, "value"));
        rc = rf_studies_report(c, tenant, study, number, body, &json, err);
        json_decref(body);
    } else {
        return rf_errorf(err, RF_EINTERNAL, "unknown study operation '%s'", op);
    }
    if (!rc && json && !(*out = json_loads(json, 0, NULL)))
        rc = rf_errorf(err, RF_EINTERNAL, "study operation %s answered unreadable JSON", op);
    free(json);
    return rc;
}
