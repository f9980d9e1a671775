#include "cli/generate.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate/complete.h"
#include "engine/eval/eval_dataset.h"
#include "engine/model/lm.h"

static int gen_usage(void)
{
    fprintf(stderr,
            "usage: refinery generate --model DIR (--prompt TEXT | --ids 1,2,3) [--chat]\n"
            "         [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
            "         [--stop STR]... [--activations bf16|f32] [--json]\n");
    return 2;
}

static int eval_usage(void)
{
    fprintf(stderr, "usage: refinery eval --model DIR --dataset FILE.jsonl [--split S]\n"
                    "         [--metrics perplexity,accuracy,exact_match] [--limit N] [--chat]\n"
                    "         [--max-new-tokens N] [--activations bf16|f32]\n");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* "1,2,3" into a malloc'd array; 0 on anything but comma-separated ids. */
static size_t parse_ids(const char *s, int32_t **out)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    int32_t *ids = malloc(sizeof *ids * n);
    if (!ids) return 0;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 0x7fffffff || (*end != ',' && *end)) {
            free(ids);
            return 0;
        }
        ids[i] = (int32_t)v;
        s = end + 1;
    }
    *out = ids;
    return n;
}

static bool print_piece(void *ctx, int seq, const char *text, size_t len, int first, int n,
                        const rf_complete_choice *c, bool final)
{
    fwrite(text, 1, len, stdout);
    if (final) putchar('\n');
    fflush(stdout);
    return true;
}

int rf_cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *ids_arg = NULL, *stops[RF_MAX_STOP_STRINGS];
    const char *act_s = NULL;
    bool chat = false, as_json = false;
    long max_tokens = 64, top_k = 0, seed = 0;
    double temperature = 0, top_p = 1;
    int n_stop = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chat"))
            chat = true;
        else if (!strcmp(a, "--json"))
            as_json = true;
        else if (!v)
            return gen_usage();
        else if (!strcmp(a, "--model"))
            model = argv[++i];
        else if (!strcmp(a, "--prompt"))
            prompt = argv[++i];
        else if (!strcmp(a, "--ids"))
            ids_arg = argv[++i];
        else if (!strcmp(a, "--max-tokens") && parse_long(v, 1, 1 << 20, &max_tokens))
            i++;
        else if (!strcmp(a, "--top-k") && parse_long(v, 0, 1 << 30, &top_k))
            i++;
        else if (!strcmp(a, "--seed") && parse_long(v, 0, 0x7fffffffffffffffL, &seed))
            i++;
        else if (!strcmp(a, "--temperature") && parse_double(v, &temperature))
            i++;
        else if (!strcmp(a, "--top-p") && parse_double(v, &top_p))
            i++;
        else if (!strcmp(a, "--stop") && n_stop < RF_MAX_STOP_STRINGS)
            stops[n_stop++] = argv[++i];
        else if (!strcmp(a, "--activations"))
            act_s = argv[++i];
        else
            return gen_usage();
    }
    if (!model || !!prompt == !!ids_arg || (chat && !prompt)) return gen_usage();
    rf_lm lm;
    rf_error err = {0};
    rf_activations act;
    if (rf_activations_parse(act_s, &act, &err) < 0) {
        fprintf(stderr, "refinery generate: --activations: %s\n", err.msg);
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int status = 1;
    rf_complete_result res = {0};
    if (rf_lm_load(&lm, model, act, &err) < 0) {
        fprintf(stderr, "refinery generate: %s\n", err.msg);
        return 1;
    }
    if (ids_arg) {
        if (!(n = parse_ids(ids_arg, &ids))) {
            fprintf(stderr, "refinery generate: --ids must be comma-separated token ids\n");
            status = 2;
            goto out;
        }
    } else if (chat) {
        rf_chat_msg msg = {"user", prompt};
        if (rf_lm_encode_chat(&lm, &msg, 1, NULL, &ids, &n, &err) < 0) goto fail;
    } else if (rf_lm_encode_prompt(&lm, prompt, &ids, &n, &err) < 0) {
        goto fail;
    }
    rf_complete_params p = {.max_tokens = (int)max_tokens,
                            .n = 1,
                            .sampling = {.temperature = (float)temperature,
                                         .top_k = (int)top_k,
                                         .top_p = (float)top_p,
                                         .seed = (uint64_t)seed},
                            .stop = stops,
                            .n_stop = n_stop,
                            .top_logprobs = -1};
    if (rf_complete(&lm, ids, (int)n, &p, as_json ? NULL : print_piece, NULL, &res, &err) < 0)
        goto fail;
    if (as_json) {
        const rf_complete_choice *c = &res.choices[0];
        json_t *toks = json_array();
        for (int i = 0; i < c->n_tokens; i++)
            json_array_append_new(toks, json_integer(c->ids[i]));
        json_t *o = json_pack("{s:s%,s:o,s:s,s:i,s:i}", "text", c->text, c->len, "tokens", toks,
                              "finish_reason", c->finish == RF_FINISH_STOP ? "stop" : "length",
                              "prompt_tokens", res.prompt_tokens, "completion_tokens",
                              res.completion_tokens);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (s) puts(s);
        free(s);
        json_decref(o);
    }
    status = 0;
    goto out;
fail:
    fprintf(stderr, "refinery generate: %s%s%s\n", err.field[0] ? err.field : "",
            err.field[0] ? ": " : "", err.msg);
out:
    rf_complete_result_free(&res);
    free(ids);
    rf_lm_free(&lm);
    return status;
}

int rf_cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *dataset = NULL, *split = NULL, *metrics = "perplexity,accuracy";
    const char *act_s = NULL;
    long limit = 0, max_new = 64;
    bool chat = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chat"))
            chat = true;
        else if (!v)
            return eval_usage();
        else if (!strcmp(a, "--model"))
            model = argv[++i];
        else if (!strcmp(a, "--dataset"))
            dataset = argv[++i];
        else if (!strcmp(a, "--split"))
            split = argv[++i];
        else if (!strcmp(a, "--metrics"))
            metrics = argv[++i];
        else if (!strcmp(a, "--activations"))
            act_s = argv[++i];
        else if (!strcmp(a, "--limit") && parse_long(v, 0, 1L << 40, &limit))
            i++;
        else if (!strcmp(a, "--max-new-tokens") && parse_long(v, 1, 1 << 16, &max_new))
            i++;
        else
            return eval_usage();
    }
    if (!model || !dataset) return eval_usage();
    rf_error err = {0};
    rf_eval_opts o = {.limit = limit, .chat = chat, .max_new_tokens = (int)max_new};
    if (rf_eval_parse_metrics(metrics, &o.metrics, &err) < 0 ||
        rf_eval_parse_split(split, &o.split, &err) < 0) {
        fprintf(stderr, "refinery eval: --%s: %s\n", err.field, err.msg);
        return 2;
    }
    rf_activations act;
    if (rf_activations_parse(act_s, &act, &err) < 0) {
        fprintf(stderr, "refinery eval: --activations: %s\n", err.msg);
        return 2;
    }
    rf_lm lm;
    if (rf_lm_load(&lm, model, act, &err) < 0) {
        fprintf(stderr, "refinery eval: %s\n", err.msg);
        return 1;
    }
    json_t *result = NULL;
    int rc = rf_eval_dataset(&lm, dataset, &o, &result, &err);
    rf_lm_free(&lm);
    if (rc < 0) {
        fprintf(stderr, "refinery eval: %s\n", err.msg);
        return 1;
    }
    char *s = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS);
    if (s) puts(s);
    free(s);
    json_decref(result);
    return s ? 0 : 1;
}
