/* Calibration sequences for GPTQ: see calibration.h. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant/calibration.h"
#include "engine/core/util.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/core/dataset.h"

void rf_calib_free(rf_calib *c)
{
    free(c->tokens);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

static int calib_alloc(rf_calib *c, int n, int seq_len, rf_error *err)
{
    memset(c, 0, sizeof *c);
    c->tokens = malloc(sizeof(int32_t) * (size_t)n * seq_len);
    c->lens = malloc(sizeof(int) * (size_t)n);
    if (!c->tokens || !c->lens) {
        rf_calib_free(c);
        return rf_errorf(err, RF_ENOMEM, "out of memory for %d calibration sequences", n);
    }
    return 0;
}

static int check_sizes(int n, int seq_len, rf_error *err)
{
    if (n < 1)
        return rf_error_field(err, RF_EINVAL, "calibration.samples",
                              "calibration.samples must be at least 1");
    if (seq_len < 1)
        return rf_error_field(err, RF_EINVAL, "calibration.seq_len",
                              "calibration.seq_len must be at least 1");
    return 0;
}

/* One dataset row as chat messages (prompt/response or messages). */
static int row_messages(const json_t *row, rf_chat_msg *msgs, size_t cap, size_t *n)
{
    const json_t *m = json_object_get(row, "messages");
    *n = 0;
    if (json_is_array(m)) {
        size_t i;
        const json_t *v;
        json_array_foreach(m, i, v)
        {
            if (*n == cap) break;
            msgs[*n].role = json_string_value(json_object_get(v, "role"));
            msgs[(*n)++].content = json_string_value(json_object_get(v, "content"));
        }
        return 0;
    }
    msgs[0] = (rf_chat_msg){"user", json_string_value(json_object_get(row, "prompt"))};
    msgs[1] = (rf_chat_msg){"assistant", json_string_value(json_object_get(row, "response"))};
    *n = 2;
    return 0;
}

int rf_calib_from_jsonl(const rf_tokenizer *tok, const char *path, int n, int seq_len,
                        uint64_t seed, rf_calib *out, rf_error *err)
{
    return rf_calib_from_jsonl_split(tok, path, "train", n, seq_len, seed, 0, out, err);
}

int rf_calib_from_jsonl_split(const rf_tokenizer *tok, const char *path, const char *want, int n,
                              int seq_len, uint64_t seed, int allow_fewer, rf_calib *out,
                              rf_error *err)
{
    int rc = check_sizes(n, seq_len, err);
    if (rc < 0) return rc;
    memset(out, 0, sizeof *out);
    rf_chat_template *chat = NULL;
    int have_chat = rf_chat_template_load(tok, NULL, &chat, NULL) == 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        rf_chat_template_free(chat);
        return rf_error_field(err, RF_EINVAL, "dataset", "cannot open dataset %s", path);
    }
    json_t **rows = NULL;
    size_t nrows = 0, cap = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    rf_dataset_stats stats = {0};
    while (getline(&line, &lcap, f) > 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        rf_error lerr = {0};
        if (!j || rf_dataset_check(j, &stats, &lerr) < 0) {
            json_decref(j);
            rc = rf_error_field(err, RF_EINVAL, "dataset", "dataset line %zu: %s", lineno,
                                j ? lerr.msg : je.text);
            goto fail;
        }
        const char *split = json_string_value(json_object_get(j, "split"));
        if (strcmp(split ? split : "train", want) != 0) {
            json_decref(j);
            continue;
        }
        if (nrows == cap) {
            cap = cap ? 2 * cap : 256;
            json_t **r = realloc(rows, cap * sizeof *rows);
            if (!r) {
                json_decref(j);
                rc = rf_errorf(err, RF_ENOMEM, "out of memory reading %s", path);
                goto fail;
            }
            rows = r;
        }
        rows[nrows++] = j;
    }
    if (allow_fewer && nrows > 0 && nrows < (size_t)n) n = (int)nrows;
    if (nrows < (size_t)n) {
        rc = rf_error_field(err, RF_EINVAL, "calibration.samples",
                            "the dataset's %s split has %zu rows, fewer than the %d "
                            "samples asked for",
                            want, nrows, n);
        goto fail;
    }
    /* a seeded Fisher-Yates prefix: the first n of a random permutation */
    for (size_t i = 0; i < (size_t)n; i++) {
        size_t j = i + (size_t)(rf_splitmix64(&seed) % (nrows - i));
        json_t *t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
    }
    if ((rc = calib_alloc(out, n, seq_len, err)) < 0) goto fail;
    size_t used = 0;
    for (int s = 0; s < n; s++) {
        rf_chat_msg msgs[64];
        size_t nm;
        row_messages(rows[s], msgs, 64, &nm);
        char *co = NULL;
        char *plain = NULL;
        const char *text;
        size_t tlen;
        int add_special = 0;
        if (have_chat) {
            json_t *jm = rf_chat_messages(msgs, nm);
            rc = jm ? rf_chat_render(chat, jm, NULL, &co, &tlen, err)
                    : rf_errorf(err, RF_ENOMEM, "out of memory");
            json_decref(jm);
            if (rc < 0) goto fail;
            text = co;
        } else { /* no chat template: the turns as plain text, BOS as configured */
            size_t total = 1;
            for (size_t i = 0; i < nm; i++)
                total += strlen(msgs[i].content ? msgs[i].content : "") + 1;
            if (!(plain = calloc(total, 1))) {
                rc = rf_errorf(err, RF_ENOMEM, "out of memory");
                goto fail;
            }
            for (size_t i = 0; i < nm; i++) {
                strcat(plain, msgs[i].content ? msgs[i].content : "");
                if (i + 1 < nm) strcat(plain, "\n");
            }
            text = plain;
            tlen = strlen(plain);
            add_special = 1;
        }
        int32_t *ids = NULL;
        size_t nids = 0;
        rc = rf_tokenizer_encode(tok, text, tlen, add_special, &ids, &nids, err);
        free(co);
        free(plain);
        if (rc < 0) {
            free(ids);
            goto fail;
        }
        int len = nids < (size_t)seq_len ? (int)nids : seq_len;
        if (len < 1) {
            free(ids);
            rc =
                rf_error_field(err, RF_EINVAL, "dataset", "a calibration row encodes to no tokens");
            goto fail;
        }
        memcpy(out->tokens + used, ids, sizeof(int32_t) * len);
        free(ids);
        out->lens[s] = len;
        used += (size_t)len;
    }
    out->n = n;
    rc = 0;
fail:
    if (rc < 0) rf_calib_free(out);
    rf_chat_template_free(chat);
    for (size_t i = 0; i < nrows; i++)
        json_decref(rows[i]);
    free(rows);
    free(line);
    fclose(f);
    return rc;
}

int rf_calib_from_text(const rf_tokenizer *tok, const char *path, int n, int seq_len, uint64_t seed,
                       rf_calib *out, rf_error *err)
{
    int rc = check_sizes(n, seq_len, err);
    if (rc < 0) return rc;
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return rf_error_field(err, RF_EINVAL, "dataset", "cannot open text %s", path);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[65536];
    size_t r;
    while (mem && (r = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, r, mem);
    fclose(f);
    if (!mem || fclose(mem) != 0) {
        free(text);
        return rf_errorf(err, RF_ENOMEM, "out of memory reading %s", path);
    }
    int32_t *ids = NULL;
    size_t nids = 0;
    rc = rf_tokenizer_encode(tok, text, len, 1, &ids, &nids, err);
    free(text);
    if (rc < 0) return rc;
    if (nids < (size_t)seq_len) {
        free(ids);
        return rf_error_field(err, RF_EINVAL, "calibration.seq_len",
                              "the text has %zu tokens, fewer than seq_len %d", nids, seq_len);
    }
    if ((rc = calib_alloc(out, n, seq_len, err)) < 0) {
        free(ids);
        return rc;
    }
    for (int s = 0; s < n; s++) {
        size_t start = (size_t)(rf_splitmix64(&seed) % (nids - (size_t)seq_len + 1));
        memcpy(out->tokens + (size_t)s * seq_len, ids + start, sizeof(int32_t) * seq_len);
        out->lens[s] = seq_len;
    }
    out->n = n;
    free(ids);
    return 0;
}
