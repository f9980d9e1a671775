#!/usr/bin/env python3
"""ROUGE-L and Self-Instruct's greedy near-duplicate filter, written from
their definitions (FORMATS.md "Self-Instruct"), independent of the C code:

  tokens: text.lower(); every run of characters outside [a-z0-9] becomes a
          space; split on whitespace; keep tokens matching ^[a-z0-9]+$ (the
          rouge_score package with use_stemmer=False)
  F1:     precision = LCS / len(prediction), recall = LCS / len(target),
          2 * precision * recall / (precision + recall), 0 when either is empty
  greedy: an instruction is dropped when its F1 with any kept instruction
          or seed is above the threshold; kept ones join the set at once

Run with no argument to regenerate tests/reference/fixtures/rouge/
(pairs.jsonl: texts, their tokens and F1; dedup.json: a corpus with seeds
and the keep/drop decision of every instruction). `corpus N SEED` prints N
generated instructions as JSON lines (bench/dedup uses it); `dedup FILE`
reads such a file and prints the decisions of the plain greedy loop.
"""
import json
import os
import random
import re
import sys

NON_ALNUM = re.compile(r"[^a-z0-9]+")
SPACES = re.compile(r"\s+")
VALID = re.compile(r"^[a-z0-9]+$")


def tokenize(text):
    text = NON_ALNUM.sub(" ", text.lower())
    return [t for t in SPACES.split(text) if VALID.match(t)]


def lcs(a, b):
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            cur[j + 1] = prev[j] + 1 if x == y else max(prev[j + 1], cur[j])
        prev = cur
    return prev[-1]


def f1(target, prediction):
    if not target or not prediction:
        return 0.0
    n = lcs(target, prediction)
    precision = n / len(prediction)
    recall = n / len(target)
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def greedy(seeds, items, threshold):
    """Every comparison made; no index, no bound."""
    kept_tokens = [tokenize(s) for s in seeds]
    out = []
    for text in items:
        toks = tokenize(text)
        dup = any(f1(toks, k) > threshold for k in kept_tokens)
        out.append(not dup)
        if not dup:
            kept_tokens.append(toks)
    return out


# ---- a corpus of instruction-like texts with near duplicates --------------

WORDS = (
    "what is the a an of to in for on with how why which who explain describe list give "
    "write summarize compare difference between name three five examples reasons causes "
    "effects water energy cell plant animal river mountain city country history war "
    "economy market price tax law court vote election computer program network protocol "
    "memory process thread file system planet star orbit gravity light sound wave heat "
    "acid base salt protein gene virus bacteria disease vaccine doctor patient school "
    "student teacher book poem novel author music song painting color shape number prime "
    "sum product fraction percent angle triangle circle area volume speed time distance "
    "mass force 2 3 10 100 1990 2024 first second main best simple short long new old"
).split()
ODD = ["İstanbul", "Kelvin\u212a", "naïve", "café", "東京", "🙂", "—", "x²", "Straße", "ǅemal",
       "C++", "e-mail", "U.S.", "it's", "3.14", "\t", "ÀÉÎ", "\u0130I\u0131i", "A\u212aB"]
TEMPLATES = [
    "What is the {w} of {w}?", "Explain how {w} {w} works.", "List {n} {w} of {w} {w}.",
    "Describe the difference between {w} and {w}.", "Why does {w} {w} the {w}?",
    "Give an example of {w} in {w} {w}.", "Summarize the {w} {w} of {w} in one sentence.",
    "Compare {w} {w} with {w} {w} and {w}.", "Name the {w} that {w} {w} {w}.",
]


def make_text(rng):
    t = rng.choice(TEMPLATES)
    while "{w}" in t or "{n}" in t:
        t = t.replace("{w}", rng.choice(WORDS), 1).replace("{n}", rng.choice(["two", "3", "five"]), 1)
    extra = rng.random()
    if extra < 0.3:
        t += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
    elif extra < 0.35:  # long: more than 64 tokens (several bit-vector words)
        t += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 200)))
    if rng.random() < 0.15:
        t = t.replace(" ", " " + rng.choice(ODD) + " ", 1)
    if rng.random() < 0.1:
        t = t.upper() if rng.random() < 0.5 else t.title()
    return t


def mutate(rng, text):
    words = text.split(" ")
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.3 and len(words) > 1:
            del words[i]
        elif op < 0.6:
            words.insert(i, rng.choice(WORDS + ODD))
        elif op < 0.8:
            words[i] = rng.choice(WORDS)
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    out = " ".join(words)
    if rng.random() < 0.2:
        out = out.lower()
    if rng.random() < 0.1:
        out = out.replace(" ", ",  ", 1) + "!!"
    return out


def corpus(n, seed):
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        r = rng.random()
        if items and r < 0.45:
            items.append(mutate(rng, rng.choice(items[-200:] if rng.random() < 0.7 else items)))
        elif r < 0.47:
            items.append(rng.choice(["", "?!", "…", "🙂🙂", "东京 大阪", "   "]))
        else:
            items.append(make_text(rng))
    return items


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "corpus":
        for t in corpus(int(sys.argv[2]), int(sys.argv[3])):
            print(json.dumps(t, ensure_ascii=False))
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "dedup":
        items = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
        for k in greedy([], items, 0.7):
            print(1 if k else 0)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "fixtures", "rouge")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    texts = corpus(600, 1)
    with open(os.path.join(out, "pairs.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(1500):
            a = rng.choice(texts)
            b = mutate(rng, a) if rng.random() < 0.6 else rng.choice(texts)
            f.write(json.dumps({"a": a, "b": b, "tokens_a": tokenize(a), "tokens_b": tokenize(b),
                                "lcs": lcs(tokenize(a), tokenize(b)),
                                "f1": f1(tokenize(a), tokenize(b))}, ensure_ascii=False) + "\n")
        # scores exactly at a threshold: F1 = 0.7 when 2 LCS = 0.7 (m + n)
        for m, n, l in [(10, 10, 7), (7, 13, 7), (20, 20, 14), (3, 17, 7), (5, 5, 3)]:
            a = [f"w{i}" for i in range(m)]
            b = a[:l] + [f"z{i}" for i in range(n - l)]
            if l > m:
                continue
            f.write(json.dumps({"a": " ".join(a), "b": " ".join(b), "tokens_a": a, "tokens_b": b,
                                "lcs": lcs(a, b), "f1": f1(a, b)}) + "\n")
    seeds = corpus(8, 2)
    items = corpus(2500, 3)
    kept = greedy(seeds, items, 0.7)
    with open(os.path.join(out, "dedup.json"), "w", encoding="utf-8") as f:
        json.dump({"threshold": 0.7, "seeds": seeds, "items": items, "kept": kept}, f,
                  ensure_ascii=False)
    print(f"pairs.jsonl, dedup.json: {sum(kept)} of {len(items)} kept", file=sys.stderr)


if __name__ == "__main__":
    main()
