#include "engine/jobs/pipeline_plan.h"

#include <stdio.h>
#include <string.h>

static const rf_param dataset_item = {.type = RF_PARAM_STRING, .ref = "dataset"};

static const rf_param evaluate_fields[] = {
    {.name = "datasets",
     .type = RF_PARAM_ARRAY,
     .items = &dataset_item,
     .lo = 0,
     .hi = 16,
     .help = "more datasets every variant is evaluated on (acc/acc_norm on multiple-choice "
             "rows, perplexity on rows with a response), beside the task's own test split"},
    {.name = "chat",
     .type = RF_PARAM_BOOL,
     .help = "score through the chat template, as the student was trained (default: when the "
             "student's tokenizer has a chat template)"},
    {0}};

static const rf_param compare_fields[] = {
    {.name = "adamw",
     .type = RF_PARAM_BOOL,
     .def = "true",
     .help = "also train with AdamW (same params) and quantize that: the paper's Muon-vs-AdamW "
             "drop under quantization"},
    {.name = "gptq_only",
     .type = RF_PARAM_BOOL,
     .def = "true",
     .help = "also quantize the untouched student: the \"GPTQ alone\" baseline"},
    {0}};

const rf_param rf_pipeline_params[] = {
    {.name = "student",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "the model to refine: a registered model's id or name"},
    {.name = "teacher",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "the knowledge teacher the student distils from (same tokenizer)"},
    {.name = "data_teacher",
     .type = RF_PARAM_JSON,
     .ref = "model",
     .help = "who writes the task's data: a registered model, or an OpenAI-compatible endpoint "
             "{base_url, model, api_key_env, …} as the dataset job takes (default: the teacher)"},
    {.name = "task",
     .type = RF_PARAM_OBJECT,
     .help = "{name, description, seed_prompts}: the task the dataset stage writes data for "
             "(give it, or a dataset)"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .ref = "dataset",
     .help = "a dataset id to train on instead of generating one (skips the dataset stage)"},
    {.name = "generate",
     .type = RF_PARAM_OBJECT,
     .help = "the dataset job's other params (target_pairs, format, judge, dedup, filters, "
             "split, sampling, prompts, concurrency, …)"},
    {.name = "hpo",
     .type = RF_PARAM_JSON,
     .help = "false to skip the search, or the hpo job's params without train: {space, "
             "n_trials, parallel, sampler, pruner, objective, seed}; default: the paper's search "
             "over loss.alpha, loss.temperature, optimizer.lr and lora.r, 16 trials"},
    {.name = "train",
     .type = RF_PARAM_OBJECT,
     .help = "train params for every training (lora, loss, optimizer, schedule, epochs, batch, "
             "seq_len, eval_every, …); the search's choices override them"},
    {.name = "quantize",
     .type = RF_PARAM_OBJECT,
     .help = "quantize params for every quantization (group_size, calibration, bits, "
             "desc_act, …); W4A16 GPTQ calibrated on the task's train rows by default"},
    {.name = "evaluate", .type = RF_PARAM_OBJECT, .fields = evaluate_fields},
    {.name = "compare", .type = RF_PARAM_OBJECT, .fields = compare_fields},
    {.name = "seed",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 2147483647,
     .def = "0",
     .help = "seeds the data, the search and the trainings"},
    {0}};

int rf_pipeline_opts_parse(const json_t *p, rf_pipeline_opts *o, rf_error *err)
{
    memset(o, 0, sizeof *o);
    o->p = p;
    o->student = rf_param_str(p, rf_pipeline_params, "student", NULL);
    o->teacher = rf_param_str(p, rf_pipeline_params, "teacher", NULL);
    o->task = json_object_get(p, "task");
    o->dataset = rf_param_str(p, rf_pipeline_params, "dataset", NULL);
    o->data_teacher = json_object_get(p, "data_teacher");
    if (!o->task == !o->dataset)
        return rf_error_field(err, RF_EINVAL, o->task ? "dataset" : "task",
                              "give either 'task' (the dataset stage writes the data) or "
                              "'dataset' (an existing one), not %s",
                              o->task ? "both" : "neither");
    if (o->dataset && json_object_get(p, "generate"))
        return rf_error_field(err, RF_EINVAL, "generate",
                              "'generate' configures the dataset stage, which a given 'dataset' "
                              "skips");
    if (o->dataset && o->data_teacher)
        return rf_error_field(err, RF_EINVAL, "data_teacher",
                              "'data_teacher' writes the data of a 'task'; a given 'dataset' "
                              "needs none");
    const json_t *h = json_object_get(p, "hpo");
    if (h && !json_is_false(h) && !json_is_object(h))
        return rf_error_field(err, RF_EINVAL, "hpo",
                              "'hpo' must be false or an object of the hpo job's params");
    if (json_is_object(h) && json_object_get(h, "train"))
        return rf_error_field(err, RF_EINVAL, "hpo.train",
                              "the search trains with the pipeline's own 'train' params: give "
                              "them there");
    o->hpo = !json_is_false(h);
    const json_t *c = json_object_get(p, "compare");
    o->adamw =
        rf_param_bool(c, rf_param_find(rf_pipeline_params, "compare")->fields, "adamw", true);
    o->gptq_only =
        rf_param_bool(c, rf_param_find(rf_pipeline_params, "compare")->fields, "gptq_only", true);
    o->eval_datasets = json_object_get(json_object_get(p, "evaluate"), "datasets");
    o->seed = rf_param_int(p, rf_pipeline_params, "seed", 0);
    return 0;
}

static const char *const variant_keys[RF_PV_COUNT] = {"base",  "base-gptq",  "muon",   "muon-gptq",
                                                      "adamw", "adamw-gptq", "teacher"};
static const char *const variant_labels[RF_PV_COUNT] = {
    "base student",    "student + GPTQ",         "refined (Muon)", "refined + GPTQ (Muon)",
    "refined (AdamW)", "refined + GPTQ (AdamW)", "teacher"};

bool rf_pipeline_variant_on(const rf_pipeline_opts *o, int v)
{
    if (v == RF_PV_BASE_GPTQ) return o->gptq_only;
    if (v == RF_PV_ADAMW || v == RF_PV_ADAMW_GPTQ) return o->adamw;
    return v >= 0 && v < RF_PV_COUNT;
}

const char *rf_pipeline_variant_key(int v)
{
    return variant_keys[v];
}

const char *rf_pipeline_variant_label(int v)
{
    return variant_labels[v];
}

/* ---- the stages' params ---- */

json_t *rf_pipeline_dataset_params(const rf_pipeline_opts *o, const char *job_id)
{
    const json_t *gen = json_object_get(o->p, "generate");
    json_t *d = gen ? json_deep_copy(gen) : json_object();
    if (!d) return NULL;
    json_object_set_new(
        d, "teacher", o->data_teacher ? json_deep_copy(o->data_teacher) : json_string(o->teacher));
    json_object_set_new(d, "task", json_deep_copy(o->task));
    if (!json_object_get(d, "seed")) json_object_set_new(d, "seed", json_integer(o->seed));
    if (!json_object_get(d, "name")) {
        /* a name of its own: dataset names are unique within a tenant */
        char name[200];
        const char *task = json_string_value(json_object_get(o->task, "name"));
        snprintf(name, sizeof name, "%.120s-%s", task ? task : "task", job_id);
        json_object_set_new(d, "name", json_string(name));
    }
    return d;
}

json_t *rf_pipeline_base_train(const rf_pipeline_opts *o, const char *ds)
{
    const json_t *tr = json_object_get(o->p, "train");
    json_t *t = tr ? json_deep_copy(tr) : json_object();
    if (!t) return NULL;
    json_object_set_new(t, "student", json_string(o->student));
    json_object_set_new(t, "teacher", json_string(o->teacher));
    json_object_set_new(t, "dataset", json_string(ds));
    if (!json_object_get(t, "seed")) json_object_set_new(t, "seed", json_integer(o->seed));
    /* held-out figures along the way: the report's validation curve and
     * what the search's pruner reads */
    if (!json_object_get(t, "eval_every")) json_object_set_new(t, "eval_every", json_integer(10));
    return t;
}

/* The paper's search: α, T, the learning rate and the LoRA rank. */
static json_t *default_space(void)
{
    return json_pack("{s:{s:s,s:f,s:f},s:{s:s,s:f,s:f},s:{s:s,s:f,s:f},s:{s:s,s:i,s:i,s:i}}",
                     "loss.alpha", "type", "float", "low", 0.0, "high", 1.0, "loss.temperature",
                     "type", "float", "low", 1.0, "high", 4.0, "optimizer.lr", "type", "log_float",
                     "low", 1e-5, "high", 1e-2, "lora.r", "type", "int", "low", 4, "high", 64,
                     "step", 4);
}

json_t *rf_pipeline_hpo_params(const rf_pipeline_opts *o, const char *ds)
{
    const json_t *h = json_object_get(o->p, "hpo");
    json_t *p = json_is_object(h) ? json_deep_copy(h) : json_object();
    if (!p) return NULL;
    json_object_set_new(p, "train", rf_pipeline_base_train(o, ds));
    if (!json_object_get(p, "space")) json_object_set_new(p, "space", default_space());
    if (!json_object_get(p, "n_trials")) json_object_set_new(p, "n_trials", json_integer(16));
    if (!json_object_get(p, "seed")) json_object_set_new(p, "seed", json_integer(o->seed));
    return p;
}

json_t *rf_pipeline_final_train(const json_t *train, const char *optimizer)
{
    json_t *t = json_deep_copy(train);
    if (!t) return NULL;
    json_t *op = json_object_get(t, "optimizer");
    if (!json_is_object(op)) json_object_set_new(t, "optimizer", op = json_object());
    json_object_set_new(op, "name", json_string(optimizer));
    json_object_set_new(t, "export", json_pack("[s,s]", "adapter", "merged"));
    return t;
}

json_t *rf_pipeline_quantize_params(const rf_pipeline_opts *o, const char *ds,
                                    const char *adapter_job)
{
    const json_t *q = json_object_get(o->p, "quantize");
    json_t *p = q ? json_deep_copy(q) : json_object();
    if (!p) return NULL;
    json_object_set_new(p, "model", json_string(o->student));
    json_object_set_new(p, "dataset", json_string(ds));
    if (adapter_job) json_object_set_new(p, "adapter", json_string(adapter_job));
    return p;
}

json_t *rf_pipeline_eval_params(const char *model, const char *dataset, const char *split,
                                bool task, bool chat)
{
    return task ? json_pack("{s:s,s:s,s:s,s:b,s:[s,s,s]}", "model", model, "dataset", dataset,
                            "split", split, "chat", chat, "metrics", "perplexity", "accuracy",
                            "latency")
                : json_pack("{s:s,s:s,s:s,s:b,s:[s,s]}", "model", model, "dataset", dataset,
                            "split", split, "chat", chat, "metrics", "perplexity", "accuracy");
}

/* ---- errors of a stage, in the pipeline's own words ---- */

static bool starts(const char *s, const char *p)
{
    size_t n = strlen(p);
    return !strncmp(s, p, n) && (s[n] == '\0' || s[n] == '.' || s[n] == '[');
}

void rf_pipeline_map_field(const char *stage, rf_error *err)
{
    const char *f = err->field;
    /* a child's submit names its params as POST does: params.<field> */
    if (!strncmp(f, "params.", 7))
        f += 7;
    else if (!strcmp(f, "params"))
        f += 6;
    char out[sizeof err->field];
    if (!strcmp(stage, "dataset")) {
        if (starts(f, "teacher"))
            snprintf(out, sizeof out, "data_teacher%s", f + strlen("teacher"));
        else if (starts(f, "task"))
            snprintf(out, sizeof out, "%s", f);
        else
            snprintf(out, sizeof out, "generate%s%s", *f ? "." : "", f);
    } else if (!strcmp(stage, "hpo")) {
        if (starts(f, "train"))
            snprintf(out, sizeof out, "%s", f);
        else
            snprintf(out, sizeof out, "hpo%s%s", *f ? "." : "", f);
    } else if (!strncmp(stage, "train", 5)) {
        if (starts(f, "student") || starts(f, "teacher") || starts(f, "dataset"))
            snprintf(out, sizeof out, "%s", f);
        else
            snprintf(out, sizeof out, "train%s%s", *f ? "." : "", f);
    } else if (!strncmp(stage, "quantize", 8)) {
        if (starts(f, "model"))
            snprintf(out, sizeof out, "student%s", f + strlen("model"));
        else if (starts(f, "dataset"))
            snprintf(out, sizeof out, "%s", f);
        else
            snprintf(out, sizeof out, "quantize%s%s", *f ? "." : "", f);
    } else {
        snprintf(out, sizeof out, "evaluate%s%s", *f ? "." : "", f);
    }
    memcpy(err->field, out, sizeof out);
}
