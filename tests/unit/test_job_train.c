/* The `train` job runner (engine/jobs/train.c) through a fake rf_job_ctx:
 * field-level validation errors; a distillation run on a tiny chat dataset
 * (student llama_f32_gqa, teacher llama3_bf16_tied, a byte-level tokenizer
 * written here) with metrics and eval events, checkpoints, adapter and
 * merged artifacts; a teacher whose tokenizer differs refused naming
 * "teacher"; and a run stopped after 3 steps then resumed from its
 * checkpoint ending with the same adapter as one run straight through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/jobs/teacher_cache.h"
#include "engine/jobs/train.h"
#include "engine/model/llama.h"
#include "engine/core/safetensors.h"

#define FIX "tests/reference/fixtures/"

typedef struct fake {
    rf_job_ctx ctx;
    int metrics, evals, artifacts, checkpoints, stop_after;
    double first_loss, last_loss;
    json_t *state;
    char workdir[128];
    char model_dir[256]; /* the folder the job registered as a model */
} fake;

static int f_progress(rf_job_ctx *c, double f, const char *m)
{
    assert_true(f >= 0 && f <= 1);
    return 0;
}
static int f_event(rf_job_ctx *c, const char *kind, const json_t *data)
{
    fake *f = c->self;
    if (!strcmp(kind, "metrics")) {
        f->metrics++;
        const char *keys[] = {"step", "loss", "ce", "kl", "lr", "grad_norm", "tokens_per_s"};
        for (size_t i = 0; i < 7; i++)
            assert_non_null(json_object_get(data, keys[i]));
        assert_true(json_real_value(json_object_get(data, "loss")) > 0);
        f->last_loss = json_real_value(json_object_get(data, "loss"));
        if (f->metrics == 1) f->first_loss = f->last_loss;
    }
    if (!strcmp(kind, "eval")) {
        f->evals++;
        assert_non_null(json_object_get(data, "token_accuracy"));
    }
    return 0;
}
static int f_checkpoint(rf_job_ctx *c, const json_t *state)
{
    fake *f = c->self;
    f->checkpoints++;
    json_decref(f->state);
    f->state = json_deep_copy(state);
    return 0;
}
static int f_artifact(rf_job_ctx *c, const char *kind, const char *path, const char *name)
{
    fake *f = c->self;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    f->artifacts++;
    return 0;
}
/* References are local paths here, as with `refinery run`. */
static int f_resolve(rf_job_ctx *c, const char *kind, const char *ref, char **path, rf_error *err)
{
    *path = strdup(ref);
    return 0;
}
static int f_model(rf_job_ctx *c, const char *dir, const char *name, char *id, size_t cap)
{
    fake *f = c->self;
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    snprintf(f->model_dir, sizeof f->model_dir, "%s", dir);
    snprintf(id, cap, "mdl_test");
    return 0;
}
static bool f_stop(rf_job_ctx *c)
{
    fake *f = c->self;
    return f->stop_after && f->metrics >= f->stop_after;
}

static void fake_init(fake *f, const char *workdir)
{
    memset(f, 0, sizeof *f);
    snprintf(f->workdir, sizeof f->workdir, "%s", workdir);
    f->ctx = (rf_job_ctx){.self = f,
                          .job_id = "job_test",
                          .attempt = 1,
                          .workdir = f->workdir,
                          .progress = f_progress,
                          .event = f_event,
                          .checkpoint = f_checkpoint,
                          .artifact = f_artifact,
                          .model = f_model,
                          .resolve = f_resolve,
                          .should_stop = f_stop};
}

static char g_root[64], g_student[128], g_teacher[128], g_other[128], g_data[128];

/* Byte-level BPE over printable ASCII, space (Ġ) and newline (Ċ), with the
 * ChatML markers as special tokens: ids 0..97, inside the fixtures' 256. */
static void write_tokenizer(const char *dir)
{
    json_t *vocab = json_object();
    int id = 0;
    for (int c = 33; c <= 126; c++) {
        char k[2] = {(char)c, 0};
        json_object_set_new(vocab, k, json_integer(id++));
    }
    json_object_set_new(vocab, "\xC4\xA0", json_integer(id++));
    json_object_set_new(vocab, "\xC4\x8A", json_integer(id++));
    json_t *bl = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                           "trim_offsets", 1, "use_regex", 1);
    json_t *tok = json_pack(
        "{s:s,s:[{s:i,s:s,s:b,s:b,s:b,s:b,s:b},{s:i,s:s,s:b,s:b,s:b,s:b,s:b}],s:n,s:O,s:n,s:O,"
        "s:{s:s,s:o,s:[]}}",
        "version", "1.0", "added_tokens", "id", 96, "content", "<|im_start|>", "single_word", 0,
        "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "id", 97, "content", "<|im_end|>",
        "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "normalizer",
        "pre_tokenizer", bl, "post_processor", "decoder", bl, "model", "type", "BPE", "vocab",
        vocab, "merges");
    char p[256];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(tok, p, 0), 0);
    json_t *cfg =
        json_pack("{s:s,s:s,s:b}", "eos_token", "<|im_end|>", "chat_template",
                  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                  "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
                  "clean_up_tokenization_spaces", 0);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    assert_int_equal(json_dump_file(cfg, p, 0), 0);
    json_decref(tok), json_decref(cfg), json_decref(bl);
}

static void model_dir(const char *dir, const char *fixture, bool our_tokenizer)
{
    char a[512], b[512];
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/" FIX "%s/%s", getcwd(b, sizeof b), fixture, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        assert_int_equal(symlink(a, b), 0);
    }
    if (our_tokenizer) return write_tokenizer(dir);
    const char *tf[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/tests/reference/tokenizers/bytelevel/%s", getcwd(b, sizeof b),
                 tf[i]);
        snprintf(b, sizeof b, "%s/%s", dir, tf[i]);
        assert_int_equal(symlink(a, b), 0);
    }
}

static int setup(void **state)
{
    snprintf(g_root, sizeof g_root, "/tmp/rf_jobtrain_XXXXXX");
    assert_non_null(mkdtemp(g_root));
    snprintf(g_student, sizeof g_student, "%s/student", g_root);
    snprintf(g_teacher, sizeof g_teacher, "%s/teacher", g_root);
    snprintf(g_other, sizeof g_other, "%s/other", g_root);
    snprintf(g_data, sizeof g_data, "%s/data.jsonl", g_root);
    model_dir(g_student, "llama_f32_gqa", true);
    model_dir(g_teacher, "llama3_bf16_tied", true);
    model_dir(g_other, "llama3_bf16_tied", false);
    FILE *f = fopen(g_data, "w");
    for (int i = 0; i < 12; i++)
        fprintf(f, "{\"prompt\": \"next of %d?\", \"response\": \"%d\"%s}\n", i, i + 1,
                i % 4 == 3 ? ", \"split\": \"validation\"" : "");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void expect_field(const char *json, const char *field)
{
    json_t *p = json_loads(json, 0, NULL);
    assert_non_null(p);
    rf_error err = {0};
    int rc = rf_train_runner()->validate(p, &err);
    printf("  %-70.70s → %s: %s\n", json, err.field, err.msg);
    assert_true(rc < 0);
    assert_string_equal(err.field, field);
    json_decref(p);
}

static void test_validation(void **state)
{
    expect_field("{\"dataset\": \"d\"}", "student");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"optimizer\": {\"lr\": -1}}",
                 "optimizer.lr");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"optimizer\": {\"name\": \"sgd\"}}",
                 "optimizer.name");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"lora\": {\"target_modules\": "
                 "[\"q_proj\", \"qq\"]}}",
                 "lora.target_modules[1]");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"lora\": {\"r\": 0}}", "lora.r");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"loss\": {\"alpha\": 0.5}}",
                 "loss.alpha");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"teacher\": \"t\", \"loss\": "
                 "{\"temperature\": 0}}",
                 "loss.temperature");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"schedule\": {\"decay\": \"step\"}}",
                 "schedule.decay");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"batch\": 0}", "batch");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"export\": [\"gguf\"]}", "export[0]");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"bogus\": 1}", "bogus");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"teacher\": \"t\", "
                 "\"teacher_cache\": \"c\"}",
                 "teacher_cache");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"teacher_cache\": \"c\", \"loss\": "
                 "{\"topk_mode\": \"all\"}}",
                 "loss.topk_mode");
    expect_field("{\"dataset\": \"d\", \"config\": {\"hidden_size\": 8}, \"tokenizer\": \"t\"}",
                 "method");
    expect_field("{\"dataset\": \"d\", \"method\": \"full\", \"config\": {\"hidden_size\": 8}}",
                 "tokenizer");
    expect_field("{\"dataset\": \"d\", \"method\": \"full\", \"tokenizer\": \"t\", \"config\": "
                 "{\"model_type\": \"llama\", \"hidden_size\": 8}}",
                 "config.intermediate_size");
    expect_field("{\"student\": \"s\", \"dataset\": \"d\", \"tokenizer\": \"t\"}", "tokenizer");
    json_t *ok =
        json_pack("{s:s,s:s,s:s,s:{s:i},s:{s:s,s:f}}", "student", "s", "dataset", "d", "teacher",
                  "t", "lora", "r", 8, "optimizer", "name", "adamw", "lr", 1e-3);
    rf_error err = {0};
    assert_int_equal(rf_train_runner()->validate(ok, &err), 0);
    json_decref(ok);
}

static json_t *params(const char *teacher, int steps)
{
    return json_pack("{s:s,s:s,s:s,s:{s:i,s:f,s:f},s:{s:f,s:f},s:{s:s,s:f},s:i,s:i,s:i,s:i,s:i,"
                     "s:i,s:i,s:[ss]}",
                     "student", g_student, "teacher", teacher, "dataset", g_data, "lora", "r", 4,
                     "alpha", 8.0, "dropout", 0.1, "loss", "alpha", 0.5, "temperature", 2.0,
                     "optimizer", "name", "muon", "lr", 0.02, "batch", 2, "seq_len", 48, "epochs",
                     2, "max_steps", steps, "eval_every", 3, "checkpoint_every", 2, "seed", 11,
                     "export", "adapter", "merged");
}

static void read_adapter(const char *workdir, float **out, size_t *n)
{
    char p[256];
    snprintf(p, sizeof p, "%s/adapter/adapter_model.safetensors", workdir);
    rf_st_file f;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&f, p, &err), 0);
    size_t total = 0;
    for (int i = 0; i < f.n; i++)
        total += f.entries[i].end - f.entries[i].begin;
    *out = malloc(total);
    *n = total / 4;
    size_t off = 0;
    for (int i = 0; i < f.n; i++) {
        rf_tensor t;
        rf_st_view(&f, &f.entries[i], &t);
        memcpy((char *)*out + off, t.data, rf_tensor_nbytes(&t));
        off += rf_tensor_nbytes(&t);
    }
    rf_st_close(&f);
}

static void test_run_and_resume(void **state)
{
    rf_error err = {0};
    char w1[160], w2[160];
    snprintf(w1, sizeof w1, "%s/w1", g_root);
    snprintf(w2, sizeof w2, "%s/w2", g_root);
    mkdir(w1, 0755), mkdir(w2, 0755);
    json_t *p = params(g_teacher, 6), *res = NULL;
    fake f;
    fake_init(&f, w1);
    if (rf_train_runner()->run(p, &f.ctx, &res, &err) < 0) fail_msg("%s: %s", err.field, err.msg);
    char *s = json_dumps(res, JSON_COMPACT);
    printf("  straight: %d metrics, %d eval, %d checkpoints, %d artifacts\n  result %s\n",
           f.metrics, f.evals, f.checkpoints, f.artifacts, s);
    free(s);
    assert_int_equal(f.metrics, 6);
    assert_int_equal(f.evals, 2);
    assert_int_equal(f.checkpoints, 2); /* steps 2 and 4; 6 is the end */
    assert_int_equal(f.artifacts, 2);
    assert_int_equal(json_integer_value(json_object_get(res, "steps")), 6);
    assert_non_null(json_object_get(res, "eval"));
    rf_llama_model merged;
    if (rf_llama_load(&merged, f.model_dir, NULL, &err) < 0) fail_msg("%s", err.msg);
    rf_llama_free(&merged);
    json_decref(res), res = NULL;

    /* stopped after 3 steps, then a second attempt resumes */
    fake g;
    fake_init(&g, w2);
    g.stop_after = 3;
    assert_int_equal(rf_train_runner()->run(p, &g.ctx, &res, &err), RF_ECANCELED);
    s = json_dumps(g.state, JSON_COMPACT);
    printf("  stopped: %s; checkpoint %s\n", err.msg, s);
    free(s);
    assert_int_equal(json_integer_value(json_object_get(g.state, "step")), 3);
    json_t *saved = g.state;
    g.state = NULL;
    fake_init(&g, w2);
    g.ctx.attempt = 2, g.ctx.resume = saved;
    if (rf_train_runner()->run(p, &g.ctx, &res, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(g.metrics, 3);
    float *a, *b;
    size_t na, nb;
    read_adapter(w1, &a, &na);
    read_adapter(w2, &b, &nb);
    assert_int_equal(na, nb);
    double md = 0;
    for (size_t i = 0; i < na; i++)
        md = fmax(md, fabs(a[i] - b[i]));
    printf("  resumed vs straight adapter: max abs diff %.3g over %zu values\n", md, na);
    assert_true(md <= 1e-6);
    free(a), free(b);
    json_decref(saved), json_decref(res), json_decref(p);
    json_decref(f.state), json_decref(g.state);
}

static void test_teacher_tokenizer_mismatch(void **state)
{
    rf_error err = {0};
    char w[160];
    snprintf(w, sizeof w, "%s/w3", g_root);
    mkdir(w, 0755);
    json_t *p = params(g_other, 2), *res = NULL;
    fake f;
    fake_init(&f, w);
    assert_int_equal(rf_train_runner()->run(p, &f.ctx, &res, &err), RF_EINVAL);
    printf("  %s: %s\n", err.field, err.msg);
    assert_string_equal(err.field, "teacher");
    assert_int_equal(f.metrics, 0);
    json_decref(p);
}

/* method full with a config: a small Llama trained from random weights. */
static void test_from_scratch(void **state)
{
    rf_error err = {0};
    char w[160];
    snprintf(w, sizeof w, "%s/w4", g_root);
    mkdir(w, 0755);
    json_t *p = json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b},s:{s:s,s:f},s:i,s:i,s:i,s:i,s:i}",
        "method", "full", "dataset", g_data, "tokenizer", g_student, "config", "model_type",
        "llama", "hidden_size", 32, "intermediate_size", 64, "num_hidden_layers", 2,
        "num_attention_heads", 2, "num_key_value_heads", 1, "vocab_size", 98,
        "max_position_embeddings", 64, "tie_word_embeddings", 1, "optimizer", "name", "muon", "lr",
        0.02, "batch", 3, "seq_len", 48, "epochs", 20, "max_steps", 30, "checkpoint_every", 0);
    json_t *res = NULL;
    fake f;
    fake_init(&f, w);
    if (rf_train_runner()->run(p, &f.ctx, &res, &err) < 0) fail_msg("%s: %s", err.field, err.msg);
    printf("  from scratch (dim 32, 2 layers, Muon + AdamW for embeddings/norms): loss %.4f at "
           "step 1 → %.4f at step %d\n",
           f.first_loss, f.last_loss, f.metrics);
    assert_int_equal(f.metrics, 30);
    assert_true(f.last_loss < f.first_loss / 2);
    rf_llama_model m;
    if (rf_llama_load(&m, f.model_dir, NULL, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(m.config.dim, 32);
    rf_llama_free(&m);
    json_decref(res), json_decref(p);
}

/* The teacher-cache job, then training from the cache: with k = the whole
 * vocabulary the sparse loss is the dense one, so the adapter matches a run
 * with the teacher itself; the bucket mode with k = 8 trains too. */
static void test_teacher_cache(void **state)
{
    rf_error err = {0};
    char w[4][160];
    for (int i = 0; i < 4; i++) {
        snprintf(w[i], sizeof w[i], "%s/tc%d", g_root, i);
        mkdir(w[i], 0755);
    }
    json_t *res = NULL;
    fake f;
    f.state = NULL;
    fake_init(&f, w[0]);
    json_t *cp = json_pack("{s:s,s:s,s:i,s:i,s:i}", "teacher", g_teacher, "dataset", g_data, "k",
                           256, "seq_len", 48, "batch", 2);
    if (rf_teacher_cache_runner()->run(cp, &f.ctx, &res, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(f.artifacts, 1);
    /* The fake registers artifacts where they lie: the file stays in the workdir. */
    char cache[256];
    snprintf(cache, sizeof cache, "%s/teacher_cache.safetensors", w[0]);
    assert_int_equal(json_integer_value(json_object_get(res, "k")), 256);
    rf_teacher_cache c;
    assert_int_equal(rf_teacher_cache_open(&c, cache, &err), 0);
    assert_int_equal(c.k, 256);
    assert_int_equal(c.n, 9);
    double mass = 0; /* the first row's probabilities sum to one, most likely first */
    for (int j = 0; j < c.k; j++)
        mass += exp(c.logp[j]);
    assert_true(fabs(mass - 1) < 1e-5 && c.logp[0] >= c.logp[1]);
    rf_teacher_cache_close(&c);

    json_t *pt = params(g_teacher, 4), *pc = params(g_teacher, 4);
    json_object_del(pc, "teacher");
    json_object_set_new(pc, "teacher_cache", json_string(cache));
    json_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
    json_decref(f.state);
    fake_init(&f, w[1]);
    if (rf_train_runner()->run(pt, &f.ctx, &r1, &err) < 0) fail_msg("%s", err.msg);
    const double loss_teacher = f.last_loss;
    json_decref(f.state);
    fake_init(&f, w[2]);
    if (rf_train_runner()->run(pc, &f.ctx, &r2, &err) < 0) fail_msg("%s", err.msg);
    printf("  last step loss: teacher %.6f, cache (k = vocabulary) %.6f\n", loss_teacher,
           f.last_loss);
    assert_true(fabs(loss_teacher - f.last_loss) < 1e-4 * loss_teacher);
    float *a, *b;
    size_t na, nb;
    read_adapter(w[1], &a, &na);
    read_adapter(w[2], &b, &nb);
    double md = 0, mx = 0;
    for (size_t i = 0; i < na; i++)
        md = fmax(md, fabs(a[i] - b[i])), mx = fmax(mx, fabs(a[i]));
    printf("  adapter from cache vs from teacher: max abs diff %.3g (max |param| %.3g)\n", md, mx);
    assert_true(md <= 1e-4 * mx);
    free(a), free(b);

    /* k = 8 with the rest as one bucket */
    json_t *cp8 = json_pack("{s:s,s:s,s:i,s:i,s:i}", "teacher", g_teacher, "dataset", g_data, "k",
                            8, "seq_len", 48, "batch", 2);
    json_t *res8 = NULL;
    json_decref(f.state);
    fake_init(&f, w[3]);
    if (rf_teacher_cache_runner()->run(cp8, &f.ctx, &res8, &err) < 0) fail_msg("%s", err.msg);
    json_object_set(pc, "teacher_cache", json_object_get(res8, "teacher_cache"));
    json_object_set_new(json_object_get(pc, "loss"), "topk_mode", json_string("bucket"));
    json_object_set_new(pc, "export", json_pack("[s]", "adapter"));
    json_decref(f.state);
    fake_init(&f, w[3]);
    if (rf_train_runner()->run(pc, &f.ctx, &r3, &err) < 0) fail_msg("%s", err.msg);
    printf("  k = 8, bucket: loss %.4f → %.4f over %d steps\n", f.first_loss, f.last_loss,
           f.metrics);
    assert_int_equal(f.metrics, 4);
    assert_true(isfinite(f.last_loss));
    /* a cache for other examples is refused naming it */
    json_object_set_new(pc, "seq_len", json_integer(40));
    json_decref(f.state);
    fake_init(&f, w[3]);
    json_t *r4 = NULL;
    assert_int_equal(rf_train_runner()->run(pc, &f.ctx, &r4, &err), RF_EINVAL);
    assert_string_equal(err.field, "teacher_cache");
    json_decref(f.state);
    json_decref(cp), json_decref(cp8), json_decref(res), json_decref(res8);
    json_decref(pt), json_decref(pc), json_decref(r1), json_decref(r2), json_decref(r3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_run_and_resume),
        cmocka_unit_test(test_teacher_tokenizer_mismatch),
        cmocka_unit_test(test_from_scratch),
        cmocka_unit_test(test_teacher_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
