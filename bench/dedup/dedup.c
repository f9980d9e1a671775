/* bench/dedup: rf_dedup over a corpus of instructions (one JSON string per
 * line), the greedy Self-Instruct filter at ROUGE-L 0.7. Prints the seconds
 * of the best of RUNS runs, the kept count and the index's counters, and
 * writes the decisions (1 kept, 0 dropped, one per line). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/data/dedup.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dedup CORPUS.jsonl DECISIONS_OUT [RUNS]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    FILE *f = fopen(argv[1], "r");
    if (!f) return 1;
    char *line = NULL, **texts = NULL;
    size_t cap = 0, n = 0, tcap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
        if (!json_is_string(j)) return 1;
        if (n == tcap) texts = realloc(texts, (tcap = tcap ? tcap * 2 : 1024) * sizeof *texts);
        texts[n++] = strdup(json_string_value(j));
        json_decref(j);
    }
    fclose(f);
    free(line);
    char *kept = malloc(n);
    double best = 1e30;
    size_t n_kept = 0;
    rf_dedup_stats st = {0};
    for (int r = 0; r < runs; r++) {
        rf_dedup *d;
        rf_error err;
        if (rf_dedup_new(0.7, &d, &err)) return 1;
        double t0 = rf_now_s();
        n_kept = 0;
        for (size_t i = 0; i < n; i++) {
            bool k;
            if (rf_dedup_offer(d, texts[i], &k, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            kept[i] = k;
            n_kept += k;
        }
        double dt = rf_now_s() - t0;
        if (dt < best) best = dt;
        rf_dedup_get_stats(d, &st);
        rf_dedup_free(d);
    }
    FILE *o = fopen(argv[2], "w");
    for (size_t i = 0; i < n; i++)
        fputs(kept[i] ? "1\n" : "0\n", o);
    fclose(o);
    printf("%.4f %zu %llu/%llu/%llu/%llu/%llu\n", best, n_kept, (unsigned long long)st.length_cut,
           (unsigned long long)st.candidates, (unsigned long long)st.prefix_cut,
           (unsigned long long)st.bag_cut, (unsigned long long)st.lcs);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(kept);
    return 0;
}
