/* Encode throughput of rf_tokenizer: the corpus (one JSON string per line)
 * joined into one text, repeated to a few MB, encoded whole several times.
 * Prints "MB/s <value>" and the token count so run.sh can set it beside
 * the reference implementation measured on the same text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tokenizer/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer MODEL_DIR CORPUS.jsonl [MB] [ROUNDS]\n");
        return 2;
    }
    double mb = argc > 3 ? atof(argv[3]) : 4.0;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    rf_tokenizer *tok;
    rf_error err;
    if (rf_tokenizer_load(argv[1], &tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    /* The same text the reference script builds: lines joined by "\n". */
    char line[1 << 16];
    size_t cap = 1 << 20, n = 0;
    char *one = malloc(cap);
    while (fgets(line, sizeof line, f)) {
        json_t *v = json_loads(line, JSON_DECODE_ANY, NULL);
        if (!json_is_string(v)) {
            json_decref(v);
            continue;
        }
        size_t l = json_string_length(v);
        if (n + l + 2 > cap) one = realloc(one, cap *= 2);
        memcpy(one + n, json_string_value(v), l);
        n += l;
        one[n++] = '\n';
        json_decref(v);
    }
    fclose(f);
    size_t reps = (size_t)(mb * 1e6 / (double)n) + 1, total = reps * n;
    char *text = malloc(total);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + i * n, one, n);
    double best = 1e30;
    size_t ntok = 0;
    for (int r = 0; r < rounds; r++) {
        int32_t *ids;
        double t0 = now();
        if (rf_tokenizer_encode(tok, text, total, 0, &ids, &ntok, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
        free(ids);
    }
    printf("bytes %zu tokens %zu seconds %.4f MB/s %.3f\n", total, ntok, best,
           (double)total / best / 1e6);
    free(text);
    free(one);
    rf_tokenizer_free(tok);
    return 0;
}
