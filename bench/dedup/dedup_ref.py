#!/usr/bin/env python3
"""The peer of bench/dedup: Self-Instruct's greedy ROUGE-L filter in plain
Python, with the same candidate pruning as refinery (an inverted index
probed with the rarest tokens, the length bound, the token-multiset bound)
and rouge_score's dynamic-programming LCS. The plain all-pairs loop of the
reference implementations (tests/reference/rouge_reference.py greedy) is
timed on a prefix of the corpus only: at 10,000 texts it takes an hour.

usage: dedup_ref.py CORPUS.jsonl DECISIONS_OUT [--naive N]
prints: seconds kept
"""
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
from rouge_reference import tokenize, f1, greedy  # noqa: E402

SLACK = 1e-9


def dedup(items, t=0.7):
    kept, bags, post, out = [], [], defaultdict(list), []
    for text in items:
        toks = tokenize(text)
        m, dup = len(toks), False
        if m and kept:
            bag = Counter(toks)
            alpha = math.floor(t * m / (2 - t) - SLACK) + 1
            if alpha <= m:
                order = sorted(bag, key=lambda w: (len(post[w]), w))
                cand, seen = set(), 0
                for w in order:
                    if seen >= m - alpha + 1:
                        break
                    seen += bag[w]
                    cand.update(post[w])
                for k in sorted(cand):
                    other = kept[k]
                    n = len(other)
                    if 2 * min(m, n) / (m + n) < t - SLACK:
                        continue
                    inter = sum(min(c, bag.get(w, 0)) for w, c in bags[k].items())
                    if 2 * inter / (m + n) < t - SLACK:
                        continue
                    if f1(toks, other) > t:
                        dup = True
                        break
        out.append(not dup)
        if not dup:
            k = len(kept)
            kept.append(toks)
            b = Counter(toks)
            bags.append(b)
            for w in b:
                post[w].append(k)
    return out


def main():
    items = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    t0 = time.perf_counter()
    kept = dedup(items)
    dt = time.perf_counter() - t0
    with open(sys.argv[2], "w") as f:
        f.write("".join("1\n" if k else "0\n" for k in kept))
    line = f"{dt:.3f} {sum(kept)}"
    if len(sys.argv) > 4 and sys.argv[3] == "--naive":
        n = int(sys.argv[4])
        t0 = time.perf_counter()
        naive = greedy([], items[:n], 0.7)
        line += f" {time.perf_counter() - t0:.3f} {n}"
        assert naive == kept[:n], "the pruned loop and the plain loop disagree"
    print(line)


if __name__ == "__main__":
    main()
