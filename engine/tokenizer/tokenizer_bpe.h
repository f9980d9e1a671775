/* rf_bpe: the BPE model of a tokenizer.json (`model.type = "BPE"`) — the
 * vocabulary both ways, the merge table, and the per-word merge loop.
 * Internal to the tokenizer; engine/tokenizer.h is the public face. */
#ifndef RF_TOKENIZER_BPE_H
#define RF_TOKENIZER_BPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* A growable list of ids; the pipeline's output. */
typedef struct rf_idvec {
    int32_t *v;
    size_t n, cap;
} rf_idvec;

int rf_idvec_push(rf_idvec *v, int32_t id);

typedef struct rf_bpe {
    int32_t n_ids; /* id space: one more than the largest id */
    uint32_t *off; /* id → offset of its text in `text`; UINT32_MAX = hole */
    uint32_t *len; /* id → byte length of its text */
    char *text;    /* every token's text, NUL-terminated, back to back */
    size_t text_len, text_cap;
    int32_t *slot; /* open-addressing table of ids hashed by their text */
    uint32_t slot_mask;
    int32_t n_vocab; /* ids that came from model.vocab (lookups by text) */

    uint64_t *mkey; /* merges: (left id << 32 | right id) → rank, result */
    int32_t *mrank, *mres;
    uint32_t mmask;
    int32_t n_merges;

    int byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id;       /* -1 when model.unk_token is null */
    int32_t byte_id[256]; /* `<0xNN>` tokens, -1 where missing */
} rf_bpe;

/* Scratch space for rf_bpe_word, reused across words of one encode call. */
typedef struct rf_bpe_scratch {
    int32_t *sym, *prev, *next, *beg;
    struct rf_bpe_cand *heap;
    size_t cap, heap_cap;
    /* After RF_EINVAL from rf_bpe_word: where in the word the character
     * without a token is, and its length in bytes. */
    size_t unknown, unknown_len;
} rf_bpe_scratch;

/* Build from the `model` object of tokenizer.json. extra_ids: the highest id
 * among added tokens, so that the id table covers them too. */
int rf_bpe_load(rf_bpe *m, json_t *model, int32_t max_added_id, rf_error *err);
void rf_bpe_free(rf_bpe *m);
/* Give an id its text if the vocabulary left it a hole (added tokens). */
int rf_bpe_set_text(rf_bpe *m, int32_t id, const char *s, size_t n);
/* Id of a vocabulary entry's exact text, or -1. */
int32_t rf_bpe_lookup(const rf_bpe *m, const char *s, size_t n);
static inline const char *rf_bpe_text(const rf_bpe *m, int32_t id)
{
    if (id < 0 || id >= m->n_ids || m->off[id] == UINT32_MAX) return NULL;
    return m->text + m->off[id];
}
/* Tokenize one pre-tokenized word (text in the model's alphabet: `Ġ`-mapped
 * bytes or `▁`-spaced text) and append its ids to out. Merges are applied
 * lowest rank first, leftmost first among equals, with a binary heap, so a
 * word of n symbols costs O(n log n). spans, when not NULL, gets each
 * token's [start, end) byte range in w, as two entries. */
int rf_bpe_word(const rf_bpe *m, const char *w, size_t n, rf_bpe_scratch *s, rf_idvec *out,
                rf_idvec *spans);
void rf_bpe_scratch_free(rf_bpe_scratch *s);

#endif
