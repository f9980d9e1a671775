#include "engine/jobs/dataset_params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/prompts.h"
#include "engine/data/teacher_http.h"
#include "engine/data/teacher_lm.h"

static char g_urls[4096];
static bool g_check_keys;

void rf_dataset_configure(const char *teacher_urls, bool check_keys)
{
    snprintf(g_urls, sizeof g_urls, "%s", teacher_urls ? teacher_urls : "");
    g_check_keys = check_keys;
}

static const char *const formats[] = {"qa", "multiple_choice", NULL};
static const rf_param string_item = {.type = RF_PARAM_STRING};

static const rf_param task_fields[] = {{.name = "name",
                                        .type = RF_PARAM_STRING,
                                        .flags = RF_PARAM_REQUIRED,
                                        .help = "the task's name"},
                                       {.name = "description",
                                        .type = RF_PARAM_STRING,
                                        .help = "what the task is, in a few sentences"},
                                       {.name = "seed_prompts",
                                        .type = RF_PARAM_ARRAY,
                                        .flags = RF_PARAM_REQUIRED,
                                        .items = &string_item,
                                        .lo = 1,
                                        .hi = 10000,
                                        .help = "example requests of the task (at least one)"},
                                       {0}};

static const rf_param sampling_fields[] = {
    {.name = "temperature", .type = RF_PARAM_NUMBER, .lo = 0, .hi = 2, .def = "0.7"},
    {.name = "top_p",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1,
     .flags = RF_PARAM_LO_OPEN,
     .def = "0.5"},
    {.name = "max_tokens", .type = RF_PARAM_INT, .lo = 1, .hi = 65536, .def = "1024"},
    {0}};

static const rf_param judge_fields[] = {
    {.name = "rubric",
     .type = RF_PARAM_STRING,
     .def = rf_prompt_rubric,
     .help = "what a good answer is"},
    {.name = "min_score",
     .type = RF_PARAM_NUMBER,
     .lo = 1,
     .hi = 10,
     .def = "7",
     .help = "pairs scored below this are dropped"},
    {.name = "model",
     .type = RF_PARAM_JSON,
     .ref = "model",
     .help = "another teacher for judging (a model or an endpoint object); default: the teacher"},
    {0}};

static const rf_param dedup_fields[] = {{.name = "rouge_l",
                                         .type = RF_PARAM_NUMBER,
                                         .lo = 0,
                                         .hi = 1,
                                         .def = "0.7",
                                         .help = "drop a pair whose question has a ROUGE-L F1 "
                                                 "above this with a kept one or a seed"},
                                        {0}};

static const rf_param filter_fields[] = {
    {.name = "min_words",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 100000,
     .def = "4",
     .help = "fewest words a question keeps (Self-Instruct drops 3 or fewer)"},
    {.name = "max_words", .type = RF_PARAM_INT, .lo = 1, .hi = 100000, .def = "150"},
    {.name = "blacklist",
     .type = RF_PARAM_ARRAY,
     .items = &string_item,
     .lo = 0,
     .hi = 10000,
     .help = "whole words (case-insensitive) that drop a question; default Self-Instruct's and "
             "Alpaca's (image, graph, picture, file, map, draw, plot, go to, video, audio, music, "
             "flowchart, diagram and plurals)"},
    {0}};

static const rf_param split_fields[] = {
    {.name = "validation", .type = RF_PARAM_NUMBER, .lo = 0, .hi = 1, .def = "0.1"},
    {.name = "test", .type = RF_PARAM_NUMBER, .lo = 0, .hi = 1, .def = "0.1"},
    {0}};

static const rf_param prompt_fields[] = {
    {.name = "subtopics",
     .type = RF_PARAM_STRING,
     .def = rf_prompt_subtopics,
     .help = "placeholders {task} {description} {seed} {n}"},
    {.name = "pairs",
     .type = RF_PARAM_STRING,
     .help = "placeholders {task} {description} {subtopic} {examples} {n}; the default depends "
             "on format"},
    {.name = "judge",
     .type = RF_PARAM_STRING,
     .def = rf_prompt_judge,
     .help = "placeholders {task} {description} {rubric} {question} {answer}"},
    {0}};

const rf_param rf_dataset_params[] = {
    {.name = "teacher",
     .type = RF_PARAM_JSON,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "a registered model's id or name (run in-process), or an OpenAI-compatible endpoint "
             "{base_url, model, api_key_env?, timeout_s?, max_retries?, concurrency?, "
             "extra_body?} whose base_url starts with a prefix in REFINERY_TEACHER_URLS"},
    {.name = "task",
     .type = RF_PARAM_OBJECT,
     .flags = RF_PARAM_REQUIRED,
     .fields = task_fields,
     .help = "{name, description, seed_prompts}"},
    {.name = "target_pairs", .type = RF_PARAM_INT, .lo = 1, .hi = 1000000, .def = "600"},
    {.name = "subtopics_per_seed", .type = RF_PARAM_INT, .lo = 1, .hi = 100, .def = "5"},
    {.name = "pairs_per_call", .type = RF_PARAM_INT, .lo = 1, .hi = 100, .def = "5"},
    {.name = "format", .type = RF_PARAM_ENUM, .choices = formats, .def = "qa"},
    {.name = "concurrency",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 256,
     .def = "8",
     .help = "teacher requests at once: HTTP requests in flight, or sequences decoded together"},
    {.name = "sampling", .type = RF_PARAM_OBJECT, .fields = sampling_fields},
    {.name = "judge", .type = RF_PARAM_OBJECT, .fields = judge_fields},
    {.name = "dedup", .type = RF_PARAM_OBJECT, .fields = dedup_fields},
    {.name = "filters", .type = RF_PARAM_OBJECT, .fields = filter_fields},
    {.name = "split",
     .type = RF_PARAM_OBJECT,
     .fields = split_fields,
     .help = "fractions of the kept pairs assigned to validation and test (seeded)"},
    {.name = "prompts", .type = RF_PARAM_OBJECT, .fields = prompt_fields},
    {.name = "seed", .type = RF_PARAM_INT, .lo = 0, .hi = 9007199254740991.0, .def = "0"},
    {.name = "name", .type = RF_PARAM_STRING, .help = "the dataset's name (default: the task's)"},
    {.name = "max_requests",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1e9,
     .help = "teacher requests at most (default 20 per target pair); the job then ends with what "
             "it kept"},
    {0}};

static const rf_param endpoint_fields[] = {
    {.name = "base_url", .type = RF_PARAM_STRING, .flags = RF_PARAM_REQUIRED},
    {.name = "model", .type = RF_PARAM_STRING, .flags = RF_PARAM_REQUIRED},
    {.name = "api_key_env", .type = RF_PARAM_STRING},
    {.name = "timeout_s",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 3600,
     .flags = RF_PARAM_LO_OPEN,
     .def = "60"},
    {.name = "max_retries", .type = RF_PARAM_INT, .lo = 0, .hi = 30, .def = "6"},
    {.name = "concurrency", .type = RF_PARAM_INT, .lo = 1, .hi = 256},
    {.name = "extra_body", .type = RF_PARAM_OBJECT},
    {0}};

static bool env_name_ok(const char *s)
{
    if (!*s || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* A teacher value: a string (the table's ref checks it names a model) or
 * an endpoint object. */
static int check_teacher(const json_t *v, const char *field, rf_error *err)
{
    if (json_is_string(v)) {
        if (!json_string_length(v))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must not be empty", field);
        return 0;
    }
    if (!json_is_object(v))
        return rf_error_field(err, RF_EINVAL, field,
                              "'%s' must be a model's id or name, or an endpoint object {base_url, "
                              "model, api_key_env?, timeout_s?, max_retries?, concurrency?, "
                              "extra_body?}",
                              field);
    int rc = rf_params_check(v, endpoint_fields, field, err);
    if (rc < 0) return rc;
    char sub[160];
    const char *url = json_string_value(json_object_get(v, "base_url"));
    snprintf(sub, sizeof sub, "%s.base_url", field);
    if (!g_urls[0])
        return rf_error_field(
            err, RF_EINVAL, sub,
            "external teachers are not allowed on this server: set REFINERY_TEACHER_URLS to a "
            "comma-separated list of URL prefixes teachers may use (for example "
            "http://127.0.0.1:8000/v1), or name a registered model as the teacher");
    if (!rf_teacher_url_allowed(url, g_urls))
        return rf_error_field(err, RF_EINVAL, sub,
                              "'%s' is not under any prefix of REFINERY_TEACHER_URLS (%s)", url,
                              g_urls);
    const char *env = json_string_value(json_object_get(v, "api_key_env"));
    snprintf(sub, sizeof sub, "%s.api_key_env", field);
    if (env && !env_name_ok(env))
        return rf_error_field(err, RF_EINVAL, sub,
                              "'%s' must be the name of an environment variable", sub);
    if (env && g_check_keys && !getenv(env))
        return rf_error_field(err, RF_EINVAL, sub,
                              "the environment variable %s is not set for this server's workers: "
                              "set it where the workers run (the key is read from there and "
                              "never stored)",
                              env);
    return 0;
}

int rf_dataset_validate(const json_t *p, rf_error *err)
{
    int rc = check_teacher(json_object_get(p, "teacher"), "teacher", err);
    if (rc < 0) return rc;
    const json_t *judge = json_object_get(p, "judge");
    const json_t *jm = json_object_get(judge, "model");
    if (jm && !json_is_null(jm) && (rc = check_teacher(jm, "judge.model", err)) < 0) return rc;
    const json_t *split = json_object_get(p, "split");
    double val = rf_param_num(split, split_fields, "validation", 0.1),
           test = rf_param_num(split, split_fields, "test", 0.1);
    if (val + test >= 1)
        return rf_error_field(err, RF_EINVAL, "split",
                              "split.validation + split.test must leave rows for train (< 1)");
    const json_t *f = json_object_get(p, "filters");
    if (rf_param_int(f, filter_fields, "min_words", 4) >
        rf_param_int(f, filter_fields, "max_words", 150))
        return rf_error_field(err, RF_EINVAL, "filters.min_words",
                              "filters.min_words must not exceed filters.max_words");
    const json_t *pr = json_object_get(p, "prompts");
    static const char *const keys[] = {"subtopics", "pairs", "judge"};
    for (int i = 0; i < 3; i++) {
        const char *t = json_string_value(json_object_get(pr, keys[i]));
        char field[64];
        snprintf(field, sizeof field, "prompts.%s", keys[i]);
        if (t && (rc = rf_prompt_check(t, field, err)) < 0) return rc;
    }
    return 0;
}

int rf_dataset_teacher(const json_t *v, const char *model_dir, int concurrency, const char *field,
                       rf_teacher **out, rf_error *err)
{
    if (json_is_string(v))
        return rf_teacher_lm_new(model_dir, json_string_value(v), concurrency, out, err);
    int rc = check_teacher(v, field, err); /* the allow-list may have changed since the POST */
    if (rc < 0) return rc;
    const char *env = json_string_value(json_object_get(v, "api_key_env"));
    const char *key = env ? getenv(env) : NULL;
    if (env && !key)
        return rf_error_field(err, RF_EINVAL, field,
                              "the environment variable %s (%s.api_key_env) is not set for this "
                              "worker",
                              env, field);
    rf_teacher_http_opts o = {
        .base_url = json_string_value(json_object_get(v, "base_url")),
        .model = json_string_value(json_object_get(v, "model")),
        .api_key = key,
        .timeout_s = rf_param_num(v, endpoint_fields, "timeout_s", 60),
        .max_retries = (int)rf_param_int(v, endpoint_fields, "max_retries", 6),
        .concurrency = (int)rf_param_int(v, endpoint_fields, "concurrency", concurrency),
        .extra_body = json_object_get(v, "extra_body"),
    };
    /* REFINERY_TEACHER_BACKOFF_S scales the retry delays (tests use it) */
    const char *bs = getenv("REFINERY_TEACHER_BACKOFF_S");
    if (bs) o.backoff_base_s = atof(bs);
    return rf_teacher_http_new(&o, out, err);
}

void rf_dataset_options(const json_t *p, rf_dataset_opts *o, const char ***bl)
{
    memset(o, 0, sizeof *o);
    const json_t *task = json_object_get(p, "task");
    o->task = json_string_value(json_object_get(task, "name"));
    o->description = rf_param_str(task, task_fields, "description", "");
    o->seeds = json_object_get(task, "seed_prompts");
    o->name = rf_param_str(p, rf_dataset_params, "name", o->task);
    o->target = (int)rf_param_int(p, rf_dataset_params, "target_pairs", 600);
    o->subtopics_per_seed = (int)rf_param_int(p, rf_dataset_params, "subtopics_per_seed", 5);
    o->pairs_per_call = (int)rf_param_int(p, rf_dataset_params, "pairs_per_call", 5);
    o->concurrency = (int)rf_param_int(p, rf_dataset_params, "concurrency", 8);
    o->max_requests = rf_param_int(p, rf_dataset_params, "max_requests",
                                   20LL * o->target + (long long)json_array_size(o->seeds));
    o->mc = rf_param_enum(p, rf_dataset_params, "format", 0) == 1;
    const json_t *s = json_object_get(p, "sampling");
    o->sampling.temperature = rf_param_num(s, sampling_fields, "temperature", 0.7);
    o->sampling.top_p = rf_param_num(s, sampling_fields, "top_p", 0.5);
    o->sampling.max_tokens = (int)rf_param_int(s, sampling_fields, "max_tokens", 1024);
    const json_t *j = json_object_get(p, "judge");
    o->rubric = rf_param_str(j, judge_fields, "rubric", rf_prompt_rubric);
    o->min_score = rf_param_num(j, judge_fields, "min_score", 7);
    o->rouge_l = rf_param_num(json_object_get(p, "dedup"), dedup_fields, "rouge_l", 0.7);
    const json_t *sp = json_object_get(p, "split");
    o->val_frac = rf_param_num(sp, split_fields, "validation", 0.1);
    o->test_frac = rf_param_num(sp, split_fields, "test", 0.1);
    const json_t *f = json_object_get(p, "filters");
    o->filters.min_words = (int)rf_param_int(f, filter_fields, "min_words", 4);
    o->filters.max_words = (int)rf_param_int(f, filter_fields, "max_words", 150);
    *bl = NULL;
    const json_t *b = json_object_get(f, "blacklist");
    if (json_is_array(b) && (*bl = calloc(json_array_size(b) + 1, sizeof **bl))) {
        for (size_t i = 0; i < json_array_size(b); i++)
            (*bl)[i] = json_string_value(json_array_get(b, i));
        o->filters.blacklist = *bl;
        o->filters.n_blacklist = json_array_size(b);
    }
    const json_t *pr = json_object_get(p, "prompts");
    o->t_subtopics = rf_param_str(pr, prompt_fields, "subtopics", rf_prompt_subtopics);
    o->t_pairs =
        rf_param_str(pr, prompt_fields, "pairs", o->mc ? rf_prompt_pairs_mc : rf_prompt_pairs_qa);
    o->t_judge = rf_param_str(pr, prompt_fields, "judge", rf_prompt_judge);
    o->seed = (unsigned long long)rf_param_int(p, rf_dataset_params, "seed", 0);
}
