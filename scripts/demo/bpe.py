"""A byte-level BPE vocabulary trained on the demo corpus, written as a
Hugging Face tokenizer.json (the GPT-2 layout: ByteLevel pre-tokenizer with
GPT-2's split regex, ByteLevel decoder, merges applied by rank).

Training is the textbook algorithm (Sennrich et al. 2016, byte-level as in
GPT-2): split the text into pre-tokens, spell each as its bytes, then
repeatedly merge the most frequent adjacent pair (ties: the pair that sorts
first, so the result is deterministic) until the vocabulary is full. The
encoder here (encode) is the same rank-ordered merge loop tokenizers uses;
the demo scripts use it only to measure lengths, and the test compares
refinery's tokenizer with @huggingface/tokenizers, not with this file.

The pre-tokenizer regex is GPT-2's with \\p{L} and \\p{N} read as ASCII
letters and digits, which is exact for ASCII text; train() refuses anything
else, and the world is ASCII by construction.
"""

import collections
import json
import re

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                 "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
                 "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
_PRETOK = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")
_SPECIAL_RX = re.compile("|".join(re.escape(s) for s in SPECIALS))


def bytes_to_unicode():
    """GPT-2's table: every byte as a printable character (FORMATS.md)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_B2U = bytes_to_unicode()


def pretokens(text):
    """Pre-tokens of text with special tokens cut out first (as tokenizers does)."""
    out = []
    for piece in _SPECIAL_RX.split(text):
        out.extend(_PRETOK.findall(piece))
    return out


def _spell(word):
    return tuple(_B2U[b] for b in word.encode("utf-8"))


def train(texts, vocab_size):
    """Merges [(a, b), …] so that 256 bytes + merges + SPECIALS = vocab_size."""
    n_merges = vocab_size - 256 - len(SPECIALS)
    counts = collections.Counter()
    for t in texts:
        if not t.isascii():
            raise ValueError("the BPE trainer's pre-tokenizer is exact for ASCII text only")
        counts.update(pretokens(t))
    words = [list(_spell(w)) for w in counts]
    freq = list(counts.values())
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    while len(merges) < n_merges and pairs:
        c = max(pairs.values())
        a, b = min(p for p, n in pairs.items() if n == c)
        if c < 2:
            break
        merges.append((a, b))
        for i in list(where[(a, b)]):
            w = words[i]
            for x, y in zip(w, w[1:]):
                pairs[(x, y)] -= freq[i]
                if pairs[(x, y)] <= 0:
                    del pairs[(x, y)]
                where[(x, y)].discard(i)
            j, nw = 0, []
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    nw.append(a + b)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for x, y in zip(nw, nw[1:]):
                pairs[(x, y)] += freq[i]
                where[(x, y)].add(i)
        where.pop((a, b), None)
    return merges


class Encoder:
    """Rank-ordered BPE over pre-tokens; special tokens matched first."""

    def __init__(self, merges):
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.vocab = vocabulary(merges)
        self.cache = {}

    def _word(self, w):
        if w in self.cache:
            return self.cache[w]
        sym = list(_spell(w))
        while len(sym) > 1:
            best = min(((self.ranks.get((x, y), 1 << 30), k) for k, (x, y) in enumerate(zip(sym, sym[1:]))))
            if best[0] == 1 << 30:
                break
            k = best[1]
            sym[k:k + 2] = [sym[k] + sym[k + 1]]
        ids = [self.vocab[s] for s in sym]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        ids = []
        pos = 0
        for m in _SPECIAL_RX.finditer(text):
            for w in _PRETOK.findall(text[pos:m.start()]):
                ids.extend(self._word(w))
            ids.append(self.vocab[m.group(0)])
            pos = m.end()
        for w in _PRETOK.findall(text[pos:]):
            ids.extend(self._word(w))
        return ids


def vocabulary(merges):
    """Token text -> id: the 256 byte characters in byte order, then each
    merge's result, then the special tokens."""
    v = {_B2U[b]: b for b in range(256)}
    for a, b in merges:
        v.setdefault(a + b, len(v))
    for s in SPECIALS:
        v[s] = len(v)
    return v


def tokenizer_json(merges):
    v = vocabulary(merges)
    model_vocab = {k: i for k, i in v.items() if k not in SPECIALS}
    added = [{"id": v[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s in SPECIALS]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": bl,
        "post_processor": dict(bl, trim_offsets=False),
        "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": model_vocab, "merges": [[a, b] for a, b in merges]},
    }


def tokenizer_config(merges, max_len):
    v = vocabulary(merges)
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(v[s]): {"content": s, "lstrip": False, "normalized": False,
                                             "rstrip": False, "single_word": False,
                                             "special": True} for s in SPECIALS},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": max_len,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


def write(dirpath, merges, max_len):
    import os
    os.makedirs(dirpath, exist_ok=True)
    with open(os.path.join(dirpath, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(merges), f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(dirpath, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(merges, max_len), f, indent=2)
        f.write("\n")
