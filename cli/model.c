#include "cli/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/llama.h"
#include "engine/core/safetensors.h"

static int usage(void)
{
    fprintf(stderr, "usage: refinery forward --model DIR --ids 1,2,3 --out FILE.safetensors\n");
    return 2;
}

/* "1,2,3" into a fresh array; -1 on anything but comma-separated integers. */
static int parse_ids(const char *s, int **out)
{
    int n = 1, *ids;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    if (!(ids = malloc(sizeof *ids * (size_t)n))) return -1;
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end != ',' && *end != '\0')) {
            free(ids);
            return -1;
        }
        ids[i] = (int)v;
        p = end + 1;
    }
    *out = ids;
    return n;
}

int rf_cmd_forward(int argc, char **argv)
{
    const char *model = NULL, *ids_arg = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model"))
            model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--ids"))
            ids_arg = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--out"))
            out = argv[++i];
        else
            return usage();
    }
    if (!model || !ids_arg || !out) return usage();
    int *ids = NULL;
    int T = parse_ids(ids_arg, &ids);
    if (T < 1) {
        fprintf(stderr, "refinery forward: --ids must be comma-separated non-negative integers\n");
        return 2;
    }
    int status = 1;
    float *logits = NULL;
    rf_llama_model m;
    rf_llama_acts a = {0};
    rf_error err = {0};
    if (rf_llama_load(&m, model, NULL, &err) < 0) {
        free(ids);
        fprintf(stderr, "refinery forward: %s\n", err.msg);
        return 1;
    }
    const int V = m.config.vocab_size;
    if (rf_llama_acts_init(&a, &m.config, 1, T, T, &err) < 0) goto fail;
    if (!(logits = malloc(sizeof(float) * (size_t)T * V))) {
        rf_errorf(&err, RF_ENOMEM, "out of memory for %d x %d logits", T, V);
        goto fail;
    }
    int zero = 0;
    if (rf_llama_forward(&m, &a, 1, T, ids, &zero, logits, true, &err) < 0) goto fail;
    rf_tensor t;
    rf_tensor_view(&t, RF_DTYPE_F32, 2, (int64_t[]){T, V}, logits);
    rf_st_item item = {"logits", &t};
    if (rf_st_write(out, &item, 1, &err) < 0) goto fail;
    fprintf(stderr,
            "refinery forward: %d tokens, logits [%d, %d] -> %s (weights %.1f MiB mapped, "
            "activations %.1f MiB)\n",
            T, T, V, out, m.weight_bytes / 1048576.0, a.bytes / 1048576.0);
    status = 0;
fail:
    if (status) fprintf(stderr, "refinery forward: %s\n", err.msg);
    free(logits);
    free(ids);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
    return status;
}
