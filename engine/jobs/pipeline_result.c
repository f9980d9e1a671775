#include "engine/jobs/pipeline_result.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/jobs/report.h"

int rf_pipeline_split_rows(const char *path, long n[3], rf_error *err)
{
    n[0] = n[1] = n[2] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return rf_errorf(err, RF_EIO, "pipeline: cannot read the task's dataset");
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue; /* blank; the dataset was checked when it was registered */
        const char *s = json_string_value(json_object_get(j, "split"));
        n[s && !strcmp(s, "test") ? 2 : s && !strcmp(s, "validation") ? 1 : 0]++;
        json_decref(j);
    }
    free(line);
    fclose(f);
    return 0;
}

static json_t *pick(const json_t *from, const char *const *keys)
{
    json_t *o = json_object();
    for (; *keys; keys++) {
        json_t *v = json_object_get(from, *keys);
        if (v && !json_is_null(v)) json_object_set(o, *keys, v);
    }
    return o;
}

json_t *rf_pipeline_stage_summary(const char *key, const json_t *r)
{
    if (!json_is_object(r)) return NULL;
    if (!strcmp(key, "dataset")) return pick(r, (const char *[]){"dataset", "kept", NULL});
    if (!strcmp(key, "hpo")) {
        const json_t *b = json_object_get(r, "best");
        return json_pack("{s:O?,s:O?}", "best_value", json_object_get(b, "value"), "best_params",
                         json_object_get(b, "params"));
    }
    if (!strncmp(key, "train", 5)) {
        json_t *o = pick(r, (const char *[]){"steps", "loss", "merged_model", NULL});
        const json_t *ev = json_object_get(r, "eval");
        if (ev)
            json_object_set_new(o, "validation", pick(ev, (const char *[]){"loss", "kl", NULL}));
        return o;
    }
    if (!strncmp(key, "quantize", 8))
        return pick(r, (const char *[]){"model", "compression", NULL});
    return pick(r, (const char *[]){"acc", "acc_norm", "perplexity", "latency_ms_per_token", NULL});
}

/* ---- the table ---- */

static const json_t *kid(const json_t *kids, const char *key)
{
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        const char *kk = json_string_value(json_object_get(k, "key"));
        if (kk && !strcmp(kk, key)) return k;
    }
    return NULL;
}

static const json_t *res(const json_t *kids, const char *key)
{
    return json_object_get(kid(kids, key), "result");
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* The unquantized variant a quantized one came from; -1 for none. */
static int source_of(int v)
{
    return v == RF_PV_BASE_GPTQ    ? RF_PV_BASE
           : v == RF_PV_MUON_GPTQ  ? RF_PV_MUON
           : v == RF_PV_ADAMW_GPTQ ? RF_PV_ADAMW
                                   : -1;
}

/* eval-<variant>-<i>'s result. */
static const json_t *eval_of(const json_t *kids, int v, int i)
{
    char key[64];
    snprintf(key, sizeof key, "eval-%s-%d", rf_pipeline_variant_key(v), i);
    return res(kids, key);
}

static const char *model_of(const rf_pipeline_opts *o, const json_t *kids, int v)
{
    const char *k[RF_PV_COUNT][2] = {{NULL, NULL},
                                     {"quantize-base", "model"},
                                     {"train-muon", "merged_model"},
                                     {"quantize-muon", "model"},
                                     {"train-adamw", "merged_model"},
                                     {"quantize-adamw", "model"},
                                     {NULL, NULL}};
    if (v == RF_PV_BASE) return o->student;
    if (v == RF_PV_TEACHER) return o->teacher;
    return json_string_value(json_object_get(res(kids, k[v][0]), k[v][1]));
}

static json_t *rows(const rf_pipeline_opts *o, const json_t *kids, const json_t *dsets)
{
    json_t *out = json_array();
    const int nd = (int)json_array_size(dsets);
    for (int v = 0; v < RF_PV_COUNT; v++) {
        if (!rf_pipeline_variant_on(o, v)) continue;
        const json_t *e0 = eval_of(kids, v, 0);
        json_t *acc = json_object(), *drop = json_object();
        for (int i = 0; i < nd; i++) {
            const char *key = json_string_value(json_object_get(json_array_get(dsets, i), "id"));
            const json_t *e = eval_of(kids, v, i);
            json_object_set_new(acc, key,
                                json_pack("{s:o,s:o}", "acc", real_or_null(num(e, "acc")),
                                          "acc_norm", real_or_null(num(e, "acc_norm"))));
            int src = source_of(v);
            double d = src >= 0 ? num(eval_of(kids, src, i), "acc") - num(e, "acc") : NAN;
            if (isfinite(d)) json_object_set_new(drop, key, json_real(d));
        }
        json_t *row = json_pack(
            "{s:s,s:s,s:s?,s:b,s:o,s:o,s:o,s:o,s:o,s:o}", "variant", rf_pipeline_variant_key(v),
            "label", rf_pipeline_variant_label(v), "model", model_of(o, kids, v), "quantized",
            source_of(v) >= 0, "accuracy", acc, "perplexity", real_or_null(num(e0, "perplexity")),
            "model_bytes", real_or_null(num(e0, "model_bytes")), "resident_bytes",
            real_or_null(num(e0, "resident_bytes")), "decode_tokens_per_s",
            real_or_null(num(e0, "decode_tokens_per_s")), "latency_ms_per_token",
            real_or_null(num(e0, "latency_ms_per_token")));
        if (source_of(v) >= 0)
            json_object_set_new(row, "accuracy_drop", drop);
        else
            json_decref(drop);
        json_array_append_new(out, row);
    }
    return out;
}

static json_t *training(const json_t *kids)
{
    json_t *out = json_array();
    const char *keys[2] = {"train-muon", "train-adamw"}, *labels[2] = {"Muon", "AdamW"};
    for (int i = 0; i < 2; i++) {
        const json_t *r = res(kids, keys[i]), *h = json_object_get(r, "history");
        if (!h) continue;
        const json_t *ev = json_object_get(h, "eval");
        json_t *t = json_pack("{s:s,s:O?,s:O?,s:O?}", "label", labels[i], "job",
                              json_object_get(kid(kids, keys[i]), "id"), "steps",
                              json_object_get(h, "steps"), "loss", json_object_get(h, "loss"));
        if (ev)
            json_object_set_new(t, "validation",
                                json_pack("{s:O?,s:O?,s:O?}", "steps", json_object_get(ev, "steps"),
                                          "loss", json_object_get(ev, "loss"), "kl",
                                          json_object_get(ev, "kl")));
        json_array_append_new(out, t);
    }
    return out;
}

static json_t *stages(const json_t *kids)
{
    json_t *out = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        double a = num(k, "started_at"), b = num(k, "finished_at");
        json_array_append_new(
            out, json_pack("{s:O,s:O,s:O,s:o}", "stage", json_object_get(k, "key"), "job",
                           json_object_get(k, "id"), "status", json_object_get(k, "status"),
                           "seconds", real_or_null(b - a)));
    }
    return out;
}

/* Which of the paper's claims hold here, per evaluation dataset: the refined
 * student beats the base one; refined + GPTQ beats GPTQ alone; and which
 * optimizer lost less accuracy under quantization. Stated as measured. */
static json_t *comparisons(const rf_pipeline_opts *o, const json_t *kids, const json_t *dsets,
                           json_t *notes)
{
    json_t *out = json_object();
    for (size_t i = 0; i < json_array_size(dsets); i++) {
        const json_t *d = json_array_get(dsets, i);
        const char *key = json_string_value(json_object_get(d, "id"));
        double base = num(eval_of(kids, RF_PV_BASE, (int)i), "acc"),
               muon = num(eval_of(kids, RF_PV_MUON, (int)i), "acc"),
               mq = num(eval_of(kids, RF_PV_MUON_GPTQ, (int)i), "acc"),
               bq = o->gptq_only ? num(eval_of(kids, RF_PV_BASE_GPTQ, (int)i), "acc") : NAN,
               ad = o->adamw ? num(eval_of(kids, RF_PV_ADAMW, (int)i), "acc") : NAN,
               aq = o->adamw ? num(eval_of(kids, RF_PV_ADAMW_GPTQ, (int)i), "acc") : NAN;
        if (!isfinite(base) || !isfinite(muon)) continue; /* no multiple-choice rows */
        const char *name = json_string_value(json_object_get(d, "name"));
        json_t *c = json_object();
        json_object_set_new(c, "refined_beats_base", json_boolean(muon > base));
        char note[400];
        int n =
            snprintf(note, sizeof note, "%s: refined (Muon) %.3f against the base student's %.3f",
                     name, muon, base);
        if (isfinite(bq) && isfinite(mq)) {
            json_object_set_new(c, "refined_gptq_beats_gptq_only", json_boolean(mq > bq));
            snprintf(note + n, sizeof note - n, "; refined + GPTQ %.3f against GPTQ alone %.3f", mq,
                     bq);
        }
        json_array_append_new(notes, json_string(note));
        if (isfinite(ad) && isfinite(aq) && isfinite(mq)) {
            double dm = muon - mq, da = ad - aq;
            json_object_set_new(c, "muon_drop", json_real(dm));
            json_object_set_new(c, "adamw_drop", json_real(da));
            /* a drop can be negative at this size: say "changed by", signed */
            snprintf(note, sizeof note,
                     "%s: GPTQ changed the Muon-trained student's accuracy by %+.3f, the "
                     "AdamW-trained one's by %+.3f (%s)",
                     name, mq - muon, aq - ad, /* not -dm: no "-0.000" */
                     dm < da   ? "Muon's held better, as in the paper"
                     : dm > da ? "AdamW's held better here, unlike the paper"
                               : "the same");
            json_array_append_new(notes, json_string(note));
        }
        json_object_set_new(out, key, c);
    }
    return out;
}

int rf_pipeline_result(const rf_pipeline_opts *o, const json_t *kids, const char *ds,
                       const char *split, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    json_t *dsets = json_array(), *notes = json_array();
    char name[160];
    snprintf(name, sizeof name, "task (%s split)", split);
    json_array_append_new(dsets,
                          json_pack("{s:s,s:s,s:s}", "id", "task", "dataset", ds, "name", name));
    for (size_t i = 0; i < json_array_size(o->eval_datasets); i++) {
        const char *d = json_string_value(json_array_get(o->eval_datasets, i));
        char key[96];
        snprintf(key, sizeof key, "%s#%zu", d, i + 1);
        json_array_append_new(dsets,
                              json_pack("{s:s,s:s,s:s}", "id", key, "dataset", d, "name", d));
    }
    if (strcmp(split, "test"))
        json_array_append_new(notes, json_string("the task's dataset has no test rows: the "
                                                 "variants were scored on its validation split"));
    const json_t *h = res(kids, "hpo");
    json_t *hpo = NULL;
    if (h) {
        hpo = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "study", json_object_get(h, "study_id"),
                        "objective", json_object_get(json_object_get(h, "objective"), "metric"),
                        "direction", json_object_get(json_object_get(h, "objective"), "direction"),
                        "trials", json_object_get(h, "trials"), "best", json_object_get(h, "best"));
        long n = (long)json_array_size(json_object_get(h, "trials"));
        if (n != 16) {
            char note[160];
            snprintf(note, sizeof note, "the search ran %ld trials (the paper used 16)", n);
            json_array_append_new(notes, json_string(note));
        }
    } else {
        json_array_append_new(notes, json_string("no hyper-parameter search: the train params "
                                                 "were used as given"));
    }
    json_t *task = o->task ? json_deep_copy(o->task) : json_pack("{s:s}", "name", ds);
    json_object_del(task, "seed_prompts");
    const json_t *gen = res(kids, "dataset");
    json_t *r = json_pack("{s:o,s:s,s:s,s:s?,s:{s:s,s:s,s:O?},s:o,s:o,s:o,s:o,s:o?}", "task", task,
                          "student", o->student, "teacher", o->teacher, "final_model",
                          model_of(o, kids, RF_PV_MUON_GPTQ), "dataset", "id", ds, "split", split,
                          "generated", gen, "evaluation_datasets", json_incref(dsets), "rows",
                          rows(o, kids, dsets), "training", training(kids), "stages", stages(kids),
                          "hpo", hpo);
    json_object_set_new(r, "comparisons", comparisons(o, kids, dsets, notes));
    json_object_set_new(r, "notes", notes);
    json_decref(dsets);
    char *html = NULL, path[4096];
    int rc = rf_pipeline_report_html(r, &html, err);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/report.html", ctx->workdir);
        FILE *f = fopen(path, "w");
        bool ok = f && fputs(html, f) >= 0;
        if (f) ok &= fflush(f) == 0 && fsync(fileno(f)) == 0, ok &= fclose(f) == 0;
        rc = ok ? ctx->artifact(ctx, "report", path, "report.html")
                : rf_errorf(err, RF_EIO, "pipeline: writing the report failed");
        if (rc > 0) rc = -rc;
        if (rc < 0 && !err->msg[0]) rf_errorf(err, rc, "pipeline: the report was not registered");
    }
    free(html);
    if (rc < 0) {
        json_decref(r);
        return rc;
    }
    json_object_set_new(r, "report", json_string("report.html"));
    *result = r;
    return 0;
}
