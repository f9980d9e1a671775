#include "engine/jobs/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/dataset.h"
#include "engine/core/util.h"
#include "engine/data/dedup.h"
#include "engine/data/parse.h"
#include "engine/data/prompts.h"
#include "engine/jobs/dataset_params.h"

#define SAMPLE_CHARS 300

typedef struct run {
    rf_job_ctx *ctx;
    const json_t *params;
    rf_dataset_opts o;
    const char **blacklist;
    rf_teacher *teacher, *judge;
    rf_dedup *dd;
    json_t *counts;    /* {subtopics: {…}, pairs: {…, filtered: {reason: n}}, judge: {…}} */
    json_t *subtopics; /* [{"seed": i, "text": s}] */
    json_t *kept;      /* the accepted pairs, as in accepted.jsonl */
    long long cursor, requests, retries, ptok, ctok, req_no;
    long resumed_from;
    int samples;
    double t0, seconds_before;
    char acc_path[1200];
    int acc_fd;
    rf_error fail; /* the teacher's failure, when it failed */
} run;

/* ---- counters and events ---------------------------------------------------- */

static void add(run *r, const char *stage, const char *key, long long n)
{
    json_t *s = json_object_get(r->counts, stage);
    if (!s) json_object_set_new(r->counts, stage, s = json_object());
    json_t *v = json_object_get(s, key);
    json_object_set_new(s, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

static void add_filtered(run *r, const char *reason)
{
    json_t *s = json_object_get(r->counts, "pairs");
    if (!s) json_object_set_new(r->counts, "pairs", s = json_object());
    json_t *f = json_object_get(s, "filtered");
    if (!f) json_object_set_new(s, "filtered", f = json_object());
    json_t *v = json_object_get(f, reason);
    json_object_set_new(f, reason, json_integer((v ? json_integer_value(v) : 0) + 1));
}

static long long count_of(run *r, const char *stage, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(r->counts, stage), key));
}

static void event(run *r, const char *kind, json_t *d)
{
    if (r->ctx->event && d) r->ctx->event(r->ctx, kind, d);
    json_decref(d);
}

/* Unreadable and cut outputs are all counted; a sample of the first few of
 * each stage, then of every 25th, goes to the events. */
static void unreadable(run *r, const char *stage, const char *why, const char *text)
{
    add(r, stage, why, 1);
    long long n = count_of(r, stage, why);
    if (n > 3 && n % 25) return;
    char sample[SAMPLE_CHARS + 4];
    snprintf(sample, sizeof sample, "%.*s", SAMPLE_CHARS, text ? text : "");
    /* cut on a whole UTF-8 character: the event is JSON */
    size_t k = strlen(sample);
    if (text && text[k])
        while (k && ((unsigned char)text[k] & 0xC0) == 0x80)
            k--;
    sample[k] = '\0';
    event(r, "unreadable",
          json_pack("{s:s,s:s,s:I,s:s}", "stage", stage, "reason", why, "count", (json_int_t)n,
                    "sample", sample));
}

static json_t *totals(run *r)
{
    return json_pack("{s:O,s:{s:I,s:I},s:I,s:I,s:I,s:I}", "counts", r->counts, "tokens", "prompt",
                     (json_int_t)r->ptok, "completion", (json_int_t)r->ctok, "requests",
                     (json_int_t)r->requests, "retries", (json_int_t)r->retries, "kept",
                     (json_int_t)json_array_size(r->kept), "target_pairs", (json_int_t)r->o.target);
}

/* ---- the teacher ------------------------------------------------------------ */

static bool stop_cb(void *arg)
{
    rf_job_ctx *ctx = arg;
    return ctx->should_stop && ctx->should_stop(ctx);
}

/* n one-message requests. RF_ECANCELED when stopped, RF_EIO when a request
 * failed for good (r->fail says why), else 0. */
static int ask(run *r, rf_teacher *t, char **prompts, size_t n, const rf_teacher_sampling *sp,
               rf_teacher_reply *out, rf_error *err)
{
    rf_chat_msg *m = calloc(n ? n : 1, sizeof *m);
    rf_teacher_request *q = calloc(n ? n : 1, sizeof *q);
    if (!m || !q) {
        free(m), free(q);
        return rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        m[i] = (rf_chat_msg){"user", prompts[i]};
        q[i] = (rf_teacher_request){&m[i], 1};
    }
    rf_teacher_sampling s = *sp;
    s.seed = r->o.seed * 1000003ull + (unsigned long long)r->req_no;
    r->req_no += (long long)n;
    int rc = t->chat(t, q, n, &s, out, err);
    free(m), free(q);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n; i++) {
        r->requests++;
        r->retries += out[i].retries;
        r->ptok += out[i].prompt_tokens;
        r->ctok += out[i].completion_tokens;
        if (out[i].rc && !r->fail.code) r->fail = out[i].err, r->fail.code = out[i].rc;
    }
    return r->fail.code ? RF_EIO : 0;
}

static void free_replies(rf_teacher_reply *out, size_t n)
{
    for (size_t i = 0; out && i < n; i++)
        rf_teacher_reply_clear(&out[i]);
    free(out);
}

static void free_strs(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* ---- accepted pairs: the file and the checkpoint ----------------------------- */

static json_t *pair_json(const rf_pair *p, const char *subtopic, double score)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:f}", "question", p->question, "answer", p->answer,
                          "subtopic", subtopic ? subtopic : "", "score", score);
    if (o && p->choices) {
        json_object_set(o, "choices", p->choices);
        json_object_set_new(o, "answer_index", json_integer(p->answer_index));
    }
    return o;
}

static int append_kept(run *r, json_t *o, rf_error *err)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (!s) return rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room for its NUL, which becomes the newline */
    ssize_t w = write(r->acc_fd, s, n + 1);
    free(s);
    if (w != (ssize_t)(n + 1))
        return rf_errorf(err, RF_EIO, "dataset: cannot write the accepted pairs: %s",
                         strerror(errno));
    json_array_append(r->kept, o);
    return 0;
}

static int checkpoint(run *r, rf_error *err)
{
    if (fsync(r->acc_fd))
        return rf_errorf(err, RF_EIO, "dataset: cannot sync the accepted pairs: %s",
                         strerror(errno));
    json_t *st = json_pack(
        "{s:i,s:O,s:I,s:O,s:I,s:I,s:I,s:I,s:I,s:f,s:I}", "version", 1, "subtopics", r->subtopics,
        "cursor", (json_int_t)r->cursor, "counts", r->counts, "requests", (json_int_t)r->requests,
        "retries", (json_int_t)r->retries, "prompt_tokens", (json_int_t)r->ptok,
        "completion_tokens", (json_int_t)r->ctok, "request_no", (json_int_t)r->req_no, "seconds",
        r->seconds_before + rf_now_s() - r->t0, "kept", (json_int_t)json_array_size(r->kept));
    if (st && r->ctx->checkpoint) r->ctx->checkpoint(r->ctx, st);
    json_decref(st);
    return 0;
}

/* The accepted pairs of earlier attempts: every whole line (a line cut by
 * a crash is cut off the file), in order; they and the seeds are the
 * comparison set again. */
static int load_kept(run *r, rf_error *err)
{
    r->acc_fd = open(r->acc_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (r->acc_fd < 0)
        return rf_errorf(err, RF_EIO, "dataset: cannot open %s: %s", r->acc_path, strerror(errno));
    FILE *f = fdopen(dup(r->acc_fd), "r");
    if (!f) return rf_errorf(err, RF_EIO, "dataset: cannot read %s", r->acc_path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t whole = 0, at = 0;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        at += len;
        if (line[len - 1] != '\n') break;
        whole = at;
        json_t *o = json_loads(line, 0, NULL);
        const char *q = json_string_value(json_object_get(o, "question"));
        if (q) {
            json_array_append(r->kept, o);
            rc = rf_dedup_add(r->dd, q, err);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (!rc && (ftruncate(r->acc_fd, whole) || lseek(r->acc_fd, 0, SEEK_END) < 0))
        rc = rf_errorf(err, RF_EIO, "dataset: cannot repair %s", r->acc_path);
    return rc;
}

static void restore(run *r)
{
    const json_t *st = r->ctx->resume;
    if (!json_is_object(st) || json_integer_value(json_object_get(st, "version")) != 1) return;
    json_t *s = json_object_get(st, "subtopics");
    if (json_is_array(s) && json_array_size(s)) {
        json_decref(r->subtopics);
        r->subtopics = json_deep_copy(s);
    }
    json_t *c = json_object_get(st, "counts");
    if (json_is_object(c)) {
        json_decref(r->counts);
        r->counts = json_deep_copy(c);
    }
    r->cursor = json_integer_value(json_object_get(st, "cursor"));
    r->requests = json_integer_value(json_object_get(st, "requests"));
    r->retries = json_integer_value(json_object_get(st, "retries"));
    r->ptok = json_integer_value(json_object_get(st, "prompt_tokens"));
    r->ctok = json_integer_value(json_object_get(st, "completion_tokens"));
    r->req_no = json_integer_value(json_object_get(st, "request_no"));
    r->seconds_before = json_number_value(json_object_get(st, "seconds"));
}

/* ---- stage 1: sub-topics ---------------------------------------------------- */

static int subtopics(run *r, rf_error *err)
{
    size_t ns = json_array_size(r->o.seeds);
    char **prompts = calloc(ns, sizeof *prompts);
    rf_teacher_reply *out = calloc(ns, sizeof *out);
    int rc = 0;
    if (!prompts || !out) {
        rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
        goto done;
    }
    for (size_t i = 0; i < ns; i++) {
        rf_prompt_vars v = {.task = r->o.task,
                            .description = r->o.description,
                            .seed = json_string_value(json_array_get(r->o.seeds, i)),
                            .n = r->o.subtopics_per_seed};
        if (!(prompts[i] = rf_prompt_render(r->o.t_subtopics, &v))) {
            rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
            goto done;
        }
    }
    add(r, "subtopics", "requests", (long long)ns);
    if ((rc = ask(r, r->teacher, prompts, ns, &r->o.sampling, out, err)) < 0) goto done;
    for (size_t i = 0; i < ns; i++) {
        char **items = NULL;
        size_t n = 0;
        if (!strcmp(out[i].finish, "length"))
            unreadable(r, "subtopics", "truncated", out[i].text);
        else if (!(n = rf_parse_list(out[i].text, (size_t)r->o.subtopics_per_seed, &items)))
            unreadable(r, "subtopics", "unreadable", out[i].text);
        for (size_t k = 0; k < n; k++)
            json_array_append_new(r->subtopics,
                                  json_pack("{s:I,s:s}", "seed", (json_int_t)i, "text", items[k]));
        add(r, "subtopics", "generated", (long long)n);
        if (!n) /* the seed itself stands in for its sub-topics */
            json_array_append_new(r->subtopics,
                                  json_pack("{s:I,s:s,s:b}", "seed", (json_int_t)i, "text",
                                            json_string_value(json_array_get(r->o.seeds, i)),
                                            "fallback", 1));
        rf_parse_list_free(items, n);
    }
    event(r, "metrics",
          json_pack("{s:s,s:O,s:I}", "stage", "subtopics", "counts",
                    json_object_get(r->counts, "subtopics"), "subtopics",
                    (json_int_t)json_array_size(r->subtopics)));
done:
    free_strs(prompts, ns);
    free_replies(out, ns);
    return rc;
}

/* ---- stage 2: pairs, filters, near-duplicates, judge -------------------------- */

static char *pair_prompt(run *r, const json_t *st)
{
    size_t ns = json_array_size(r->o.seeds), nk = json_array_size(r->kept);
    size_t seed = (size_t)json_integer_value(json_object_get(st, "seed"));
    rf_prompt_example ex[3];
    size_t n = 0;
    ex[n++] = (rf_prompt_example){.question = json_string_value(json_array_get(r->o.seeds, seed))};
    uint64_t h = rf_mix64(r->o.seed ^ (uint64_t)r->cursor * 0x9E3779B97F4A7C15ull);
    for (int k = 0; k < 2 && n < 3; k++) {
        if (nk > (size_t)k) { /* a kept pair, drawn at random */
            const json_t *p = json_array_get(r->kept, (size_t)(rf_mix64(h + (uint64_t)k) % nk));
            ex[n++] = (rf_prompt_example){
                .question = json_string_value(json_object_get(p, "question")),
                .answer = json_string_value(json_object_get(p, "answer")),
                .choices = json_object_get(p, "choices"),
                .answer_index = (int)json_integer_value(json_object_get(p, "answer_index"))};
        } else if (ns > 1 + (size_t)k) { /* else the next seeds */
            ex[n++] = (rf_prompt_example){
                .question = json_string_value(json_array_get(r->o.seeds, (seed + 1 + k) % ns))};
        }
    }
    char *examples = rf_prompt_examples(ex, n);
    rf_prompt_vars v = {.task = r->o.task,
                        .description = r->o.description,
                        .subtopic = json_string_value(json_object_get(st, "text")),
                        .seed = ex[0].question,
                        .examples = examples,
                        .n = r->o.pairs_per_call};
    char *s = examples ? rf_prompt_render(r->o.t_pairs, &v) : NULL;
    free(examples);
    return s;
}

/* The question as the judge sees it (choices shown for multiple choice). */
static char *judge_prompt(run *r, const rf_pair *p)
{
    char *q = NULL;
    if (p->choices) {
        rf_prompt_example e = {.question = p->question, .choices = p->choices};
        char *ex = rf_prompt_examples(&e, 1); /* "Q: …\nChoices: …\nAnswer: i" */
        char *cut = ex ? strstr(ex, "\nAnswer: ") : NULL;
        if (cut) *cut = '\0';
        q = ex ? strdup(ex + 3) : NULL;
        free(ex);
    }
    rf_prompt_vars v = {.task = r->o.task,
                        .description = r->o.description,
                        .rubric = r->o.rubric,
                        .question = q ? q : p->question,
                        .answer = p->answer};
    char *s = rf_prompt_render(r->o.t_judge, &v);
    free(q);
    return s;
}

static int round_once(run *r, rf_error *err)
{
    size_t nst = json_array_size(r->subtopics);
    /* No more pair requests than the pairs still needed call for: the end of
     * a job does not pay for a full round the target no longer needs. */
    long long room = r->o.max_requests - r->requests;
    long long need = r->o.target - (long long)json_array_size(r->kept);
    long long calls = (need + r->o.pairs_per_call - 1) / r->o.pairs_per_call;
    if (calls < room) room = calls;
    size_t n = (size_t)(room < r->o.concurrency ? room : r->o.concurrency);
    char **prompts = calloc(n, sizeof *prompts), **jp = NULL;
    const char **from = calloc(n, sizeof *from), **cand_st = NULL;
    rf_teacher_reply *out = calloc(n, sizeof *out), *jout = NULL;
    rf_pairs all = {0}, cand = {0};
    size_t *origin = NULL;
    int rc = 0;
    if (!prompts || !from || !out) {
        rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++, r->cursor++) {
        const json_t *st = json_array_get(r->subtopics, (size_t)(r->cursor % (long long)nst));
        from[i] = json_string_value(json_object_get(st, "text"));
        if (!(prompts[i] = pair_prompt(r, st))) {
            rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
            goto done;
        }
    }
    add(r, "pairs", "requests", (long long)n);
    if ((rc = ask(r, r->teacher, prompts, n, &r->o.sampling, out, err)) < 0) goto done;
    /* every pair read, then the cheap checks; survivors go to the judge */
    if (!(origin = calloc(1, sizeof *origin))) goto oom;
    size_t ncand = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(out[i].finish, "length")) { /* cut off: dropped whole, as Self-Instruct */
            unreadable(r, "pairs", "truncated", out[i].text);
            continue;
        }
        size_t before = all.n, got = rf_parse_pairs(out[i].text, r->o.mc, &all);
        if (!got) unreadable(r, "pairs", "unreadable", out[i].text);
        add(r, "pairs", "generated", (long long)got);
        for (size_t k = before; k < all.n; k++) {
            rf_pair *p = &all.v[k];
            const char *why = rf_filter_pair(&r->o.filters, p->question, p->answer);
            if (why) {
                add_filtered(r, why);
                continue;
            }
            bool dup;
            if ((rc = rf_dedup_check(r->dd, p->question, &dup, NULL, NULL, err)) < 0) goto done;
            if (dup) {
                add(r, "pairs", "duplicates", 1);
                continue;
            }
            size_t *no = realloc(origin, (ncand + 1) * sizeof *no);
            const char **ns = realloc(cand_st, (ncand + 1) * sizeof *ns);
            if (no) origin = no;
            if (ns) cand_st = ns;
            if (!no || !ns || !rf_pairs_push(&cand, p)) goto oom;
            cand_st[ncand] = from[i];
            origin[ncand++] = i;
        }
    }
    if (!ncand) goto done;
    jp = calloc(ncand, sizeof *jp);
    jout = calloc(ncand, sizeof *jout);
    if (!jp || !jout) goto oom;
    for (size_t c = 0; c < ncand; c++)
        if (!(jp[c] = judge_prompt(r, &cand.v[c]))) goto oom;
    rf_teacher_sampling js = r->o.sampling;
    js.temperature = 0; /* a score, not a creation: greedy */
    js.top_p = 1;
    add(r, "judge", "requests", (long long)ncand);
    if ((rc = ask(r, r->judge, jp, ncand, &js, jout, err)) < 0) goto done;
    for (size_t c = 0; c < ncand; c++) {
        double score;
        if (!strcmp(jout[c].finish, "length")) {
            unreadable(r, "judge", "truncated", jout[c].text);
            continue;
        }
        if (!rf_parse_score(jout[c].text, &score)) {
            unreadable(r, "judge", "unreadable", jout[c].text);
            continue;
        }
        add(r, "judge", "judged", 1);
        if (score < r->o.min_score) {
            add(r, "judge", "low", 1);
            continue;
        }
        if ((long long)json_array_size(r->kept) >= r->o.target) { /* judged good, not needed */
            add(r, "judge", "surplus", 1);
            continue;
        }
        bool kept;
        if ((rc = rf_dedup_offer(r->dd, cand.v[c].question, &kept, err)) < 0) goto done;
        if (!kept) { /* a duplicate of one kept earlier in this round */
            add(r, "pairs", "duplicates", 1);
            continue;
        }
        json_t *o = pair_json(&cand.v[c], cand_st[c], score);
        rc = o ? append_kept(r, o, err) : rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
        json_decref(o);
        if (rc < 0) goto done;
    }
    goto done;
oom:
    rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
done:
    free_strs(prompts, n);
    free_strs(jp, cand.n);
    free(from);
    free(cand_st);
    free(origin);
    free_replies(out, n);
    free_replies(jout, cand.n);
    rf_pairs_free(&all);
    rf_pairs_free(&cand);
    return rc;
}

/* ---- the dataset ------------------------------------------------------------ */

/* Rows in the line format, split by a seeded shuffle; registered. */
static int finish(run *r, bool partial, char *id, size_t cap, json_t **rows_out, rf_error *err)
{
    size_t n = json_array_size(r->kept);
    size_t *ord = malloc((n ? n : 1) * sizeof *ord);
    char *split = calloc(n ? n : 1, 1);
    if (!ord || !split) {
        free(ord), free(split);
        return rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    }
    uint64_t s = r->o.seed ^ 0x5eedull;
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    for (size_t i = n; i > 1; i--) { /* Fisher–Yates */
        size_t j = (size_t)(rf_splitmix64(&s) % i), t = ord[i - 1];
        ord[i - 1] = ord[j], ord[j] = t;
    }
    size_t nv = (size_t)((double)n * r->o.val_frac + 0.5),
           nt = (size_t)((double)n * r->o.test_frac + 0.5);
    if (nv + nt > n) nt = n - nv;
    for (size_t i = 0; i < n; i++)
        split[ord[i]] = i < nv ? RF_SPLIT_VALIDATION : i < nv + nt ? RF_SPLIT_TEST : RF_SPLIT_TRAIN;
    free(ord);
    char tmp[1300], path[1300];
    snprintf(tmp, sizeof tmp, "%s/dataset.jsonl.tmp", r->ctx->workdir);
    snprintf(path, sizeof path, "%s/dataset.jsonl", r->ctx->workdir);
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    rf_dataset_stats st = {0};
    if (!f) rc = rf_errorf(err, RF_EIO, "dataset: cannot write %s: %s", tmp, strerror(errno));
    for (size_t i = 0; !rc && i < n; i++) {
        const json_t *k = json_array_get(r->kept, i);
        json_t *row = json_pack("{s:O}", "prompt", json_object_get(k, "question"));
        json_t *ch = json_object_get(k, "choices");
        if (ch) { /* the right choice's text as the response too: train and quantize read it */
            json_object_set(row, "choices", ch);
            json_object_set(row, "answer", json_object_get(k, "answer_index"));
        }
        json_object_set(row, "response", json_object_get(k, "answer"));
        json_object_set_new(row, "split", json_string(rf_split_name((rf_split)split[i])));
        if ((rc = rf_dataset_check(row, &st, err)) == 0) {
            char *line = json_dumps(row, JSON_COMPACT);
            if (!line || fprintf(f, "%s\n", line) < 0)
                rc = rf_errorf(err, RF_EIO, "dataset: cannot write %s", tmp);
            free(line);
        }
        json_decref(row);
    }
    free(split);
    if (f && (fflush(f) || fsync(fileno(f))) && !rc)
        rc = rf_errorf(err, RF_EIO, "dataset: cannot write %s: %s", tmp, strerror(errno));
    if (f) fclose(f);
    if (!rc && rename(tmp, path))
        rc = rf_errorf(err, RF_EIO, "dataset: cannot write %s: %s", path, strerror(errno));
    if (!rc && !r->ctx->dataset)
        rc = rf_errorf(err, RF_EINTERNAL, "dataset: this context cannot register datasets");
    if (!rc && (rc = r->ctx->dataset(r->ctx, path, r->o.name, id, cap)) < 0)
        rf_errorf(err, rc, "dataset: the %zu kept pairs could not be registered as a dataset", n);
    if (!rc) {
        *rows_out = json_pack("{s:I,s:I,s:I}", "train", (json_int_t)st.rows[RF_SPLIT_TRAIN],
                              "validation", (json_int_t)st.rows[RF_SPLIT_VALIDATION], "test",
                              (json_int_t)st.rows[RF_SPLIT_TEST]);
        event(r, "dataset",
              json_pack("{s:s,s:s,s:I,s:b}", "dataset_id", id, "name", r->o.name, "rows",
                        (json_int_t)n, "partial", partial));
    }
    return rc;
}

static json_t *result_json(run *r, const char *id, json_t *rows, bool partial, const char *why)
{
    json_t *res = totals(r);
    json_object_set_new(res, "dataset", id ? json_string(id) : json_null());
    json_object_set_new(res, "name", json_string(r->o.name));
    json_object_set_new(res, "format", json_string(r->o.mc ? "multiple_choice" : "qa"));
    json_object_set_new(res, "rows", rows ? rows : json_null());
    json_object_set_new(res, "partial", json_boolean(partial));
    json_object_set_new(res, "stopped", json_string(why));
    json_object_set_new(res, "resumed_from", json_integer(r->resumed_from));
    json_object_set_new(res, "teacher", json_string(r->teacher ? r->teacher->name : ""));
    json_object_set_new(res, "seconds", json_real(r->seconds_before + rf_now_s() - r->t0));
    return res;
}

/* ---- the runner ------------------------------------------------------------- */

static int open_teacher(run *r, const json_t *v, const char *field, rf_teacher **out, rf_error *err)
{
    char *dir = NULL;
    int rc = 0;
    if (json_is_string(v)) {
        if (!r->ctx->resolve)
            return rf_errorf(err, RF_EINTERNAL, "dataset: this context cannot resolve references");
        if ((rc = r->ctx->resolve(r->ctx, "model", json_string_value(v), &dir, err)) < 0) return rc;
    }
    rc = rf_dataset_teacher(v, dir, r->o.concurrency, field, out, err);
    free(dir);
    if (rc < 0) {
        rf_error_wrap(err, "%s", field);
        if (rc == RF_EIO || rc == RF_EUNSUPPORTED) rc = err->code = RF_EINVAL;
        return rc;
    }
    (*out)->should_stop = stop_cb;
    (*out)->stop_arg = r->ctx;
    return 0;
}

static int validate(const json_t *p, rf_error *err)
{
    return rf_dataset_validate(p, err);
}

static int run_job(const json_t *p, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    int rc = rf_runner_validate(&rf_dataset_runner, p, err);
    if (rc < 0) return rc;
    run r = {.ctx = ctx, .params = p, .acc_fd = -1, .t0 = rf_now_s()};
    rf_dataset_options(p, &r.o, &r.blacklist);
    r.counts = json_object();
    r.subtopics = json_array();
    r.kept = json_array();
    char id[1024] = ""; /* refinery run answers a path */
    json_t *rows = NULL;
    rf_teacher *judge_own = NULL;
    snprintf(r.acc_path, sizeof r.acc_path, "%s/accepted.jsonl", ctx->workdir);
    if ((rc = rf_dedup_new(r.o.rouge_l, &r.dd, err)) < 0) goto out;
    for (size_t i = 0; i < json_array_size(r.o.seeds); i++)
        if ((rc = rf_dedup_add(r.dd, json_string_value(json_array_get(r.o.seeds, i)), err)) < 0)
            goto out;
    restore(&r);
    if ((rc = load_kept(&r, err)) < 0) goto out;
    r.resumed_from = (long)json_array_size(r.kept);
    if ((rc = open_teacher(&r, json_object_get(p, "teacher"), "teacher", &r.teacher, err)) < 0)
        goto out;
    const json_t *jm = json_object_get(json_object_get(p, "judge"), "model");
    if (jm && !json_is_null(jm)) {
        if ((rc = open_teacher(&r, jm, "judge.model", &r.judge, err)) < 0) goto out;
    }
    event(&r, "log",
          json_pack("{s:s,s:s,s:s,s:s,s:I}", "level", "info", "message", "dataset job started",
                    "teacher", r.teacher->name, "judge", r.judge ? r.judge->name : r.teacher->name,
                    "resumed_from", (json_int_t)r.resumed_from));
    judge_own = r.judge;
    if (!r.judge) r.judge = r.teacher;

    const char *why = "target";
    if (!json_array_size(r.subtopics)) {
        rc = subtopics(&r, err);
        if (rc >= 0) rc = checkpoint(&r, err);
    }
    while (rc >= 0 && (long long)json_array_size(r.kept) < r.o.target) {
        if (r.requests >= r.o.max_requests) {
            why = "max_requests";
            break;
        }
        rc = round_once(&r, err);
        int crc = checkpoint(&r, err); /* also after a failure: what was kept stays kept */
        if (rc >= 0) rc = crc;
        size_t k = json_array_size(r.kept);
        if (ctx->progress) {
            char msg[96];
            snprintf(msg, sizeof msg, "%zu of %d pairs kept", k, r.o.target);
            ctx->progress(ctx, (double)k / r.o.target > 1 ? 1 : (double)k / r.o.target, msg);
        }
        json_t *m = totals(&r);
        json_object_set_new(m, "stage", json_string("pairs"));
        event(&r, "metrics", m);
    }
    size_t kept = json_array_size(r.kept);
    if (rc == RF_EIO && r.fail.code) {
        /* The teacher kept failing: what was kept becomes a partial dataset,
         * and the job fails with the teacher's last error. */
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", r.fail.msg);
        if (kept) {
            rf_error ferr;
            if (finish(&r, true, id, sizeof id, &rows, &ferr) == 0) {
                *result = result_json(&r, id, rows, true, "teacher_failed");
                rows = NULL;
                rc = rf_errorf(err, RF_EINVAL,
                               "the teacher failed: %s; the %zu pairs kept so far were "
                               "registered as dataset %s (partial)",
                               msg, kept, id);
            } else {
                rc = rf_errorf(err, RF_EINVAL,
                               "the teacher failed: %s (the %zu kept pairs "
                               "could not be registered: %s)",
                               msg, kept, ferr.msg);
            }
        } else {
            rc = rf_errorf(err, RF_EINVAL,
                           "the teacher failed: %s; no pair had been kept, so no dataset "
                           "was registered",
                           msg);
        }
        goto out;
    }
    if (rc < 0) goto out;
    if (!kept) {
        rc = rf_errorf(err, RF_EINVAL,
                       "no pair was kept in %lld teacher requests (%lld unreadable, %lld cut off, "
                       "%lld duplicates, %lld judged low): see the job's events for samples",
                       r.requests, count_of(&r, "pairs", "unreadable"),
                       count_of(&r, "pairs", "truncated"), count_of(&r, "pairs", "duplicates"),
                       count_of(&r, "judge", "low"));
        goto out;
    }
    if ((rc = finish(&r, false, id, sizeof id, &rows, err)) < 0) goto out;
    *result = result_json(&r, id, rows, false, why);
    rows = NULL;
out:
    rf_teacher_free(judge_own);
    rf_teacher_free(r.teacher);
    rf_dedup_free(r.dd);
    if (r.acc_fd >= 0) close(r.acc_fd);
    json_decref(r.counts);
    json_decref(r.subtopics);
    json_decref(r.kept);
    json_decref(rows);
    free(r.blacklist);
    return rc;
}

const rf_runner rf_dataset_runner = {
    .type = "dataset",
    .validate = validate,
    .run = run_job,
    .description = "Self-Instruct data generation: a data teacher (a registered model in-process, "
                   "or an OpenAI-compatible endpoint) expands seed prompts into sub-topics and "
                   "question/answer pairs and judges them; filtered, near-duplicates (ROUGE-L) "
                   "dropped, registered as a dataset. Resumable.",
    .params = rf_dataset_params};
