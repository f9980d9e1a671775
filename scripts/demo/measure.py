"""The teacher as a data teacher: `refinery generate --chat` on the dataset
job's four default prompts, filled as that job fills them, sampled many
times at temperature 0.7; each output parsed and checked against the world.

  subtopics  a numbered list; items that are sub-topics of the world
  qa, mc     a JSON array of {question, answer} / {question, choices, answer};
             pairs whose question parses and whose answer is the world's
  judge      "Score: N/10"; right answers scored >= 6, wrong ones <= 4

Prints one JSON object (also written to --out): per kind, the samples,
parseable fraction, and the truth and variety figures.
"""

import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import world as W  # noqa: E402

MAX_TOKENS = {"subtopics": 64, "qa": 200, "mc": 260, "judge": 48}


def generate(refinery, model, prompt, max_tokens, temperature, seed):
    r = subprocess.run([refinery, "generate", "--model", model, "--chat", "--prompt", prompt,
                        "--max-tokens", str(max_tokens), "--temperature", str(temperature),
                        "--seed", str(seed), "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["text"]


def parse_list(text):
    """Items of a numbered list ("1. x" or "1) x" lines), or None."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    items = []
    for ln in lines:
        m = re.match(r"^(\d+)[.)]\s*(.+)$", ln)
        if not m:
            return None
        items.append(m.group(2).strip())
    return items or None


def parse_json_array(text):
    """The JSON array in text (from its first '[' to its last ']'), or None."""
    s, e = text.find("["), text.rfind("]")
    if s < 0 or e < s:
        return None
    try:
        v = json.loads(text[s:e + 1])
    except ValueError:
        return None
    return v if isinstance(v, list) else None


def parse_pairs(text, mc):
    arr = parse_json_array(text)
    if arr is None:
        return None
    out = []
    for o in arr:
        if not isinstance(o, dict) or not isinstance(o.get("question"), str):
            continue
        if mc:
            ch, a = o.get("choices"), o.get("answer")
            if (isinstance(ch, list) and len(ch) == 4 and all(isinstance(c, str) for c in ch)
                    and isinstance(a, int) and 0 <= a < 4):
                out.append((o["question"], ch[a]))
        elif isinstance(o.get("answer"), str):
            out.append((o["question"], o["answer"]))
    return out or None


def parse_score(text):
    m = re.search(r"Score:\s*(\d+)\s*/\s*10", text)
    return int(m.group(1)) if m and 1 <= int(m.group(1)) <= 10 else None


def measure(refinery, model, count, temperature, seed, log=None):
    w = W.World()
    task = W.task(w)
    stats = {}
    examples = {}
    prompts = corpus.sample_prompts(w, task, seed, count)
    for i, (kind, prompt, extra) in enumerate(prompts):
        text = generate(refinery, model, prompt, MAX_TOKENS[kind], temperature, seed * 1000 + i)
        s = stats.setdefault(kind, {"samples": 0, "parsed": 0})
        s["samples"] += 1
        examples.setdefault(kind, text)
        if kind == "subtopics":
            items = parse_list(text)
            if items:
                s["parsed"] += 1
                s["items"] = s.get("items", 0) + len(items)
                s["known"] = s.get("known", 0) + sum(x in W.SUBTOPICS for x in items)
                s["five"] = s.get("five", 0) + (len(set(items)) == 5)
                s.setdefault("distinct", set()).update(items)
        elif kind in ("qa", "mc"):
            pairs = parse_pairs(text, kind == "mc")
            if kind == "mc":
                arr = parse_json_array(text) or []
                for o in arr:
                    fact = w.parse_question(o.get("question", "")) if isinstance(o, dict) else None
                    if fact and isinstance(o.get("choices"), list):
                        s["with_truth"] = s.get("with_truth", 0) + (w.answer(fact) in o["choices"])
                        s["checked"] = s.get("checked", 0) + 1
            if pairs:
                s["parsed"] += 1
                for q, a in pairs:
                    verdict = w.check_pair(q, a)
                    s[verdict] = s.get(verdict, 0) + 1
                    fact = w.parse_question(q)
                    s["on_topic"] = s.get("on_topic", 0) + bool(fact and W.KINDS[fact[0]][0] == extra)
                    s.setdefault("distinct", set()).add(q)
                    if fact:
                        s.setdefault("facts", set()).add(fact)
        else:
            score = parse_score(text)
            if score is not None:
                s["parsed"] += 1
                good = score >= 6 if extra["right"] else score <= 4
                s["honest"] = s.get("honest", 0) + good
        if log:
            log(kind, text)
    out = {}
    for kind, s in stats.items():
        o = {"samples": s["samples"], "parseable": s["parsed"] / s["samples"]}
        if kind == "subtopics":
            o["items"] = s.get("items", 0)
            o["known_subtopics"] = s.get("known", 0) / max(1, s.get("items", 0))
            o["exactly_five_distinct"] = s.get("five", 0) / s["samples"]
            o["distinct_items"] = len(s.get("distinct", ()))
        elif kind in ("qa", "mc"):
            n = s.get("true", 0) + s.get("false", 0) + s.get("unknown", 0)
            o.update({"pairs": n, "true": s.get("true", 0) / max(1, n), "false": s.get("false", 0) / max(1, n),
                      "unparsed_question": s.get("unknown", 0) / max(1, n),
                      "on_topic": s.get("on_topic", 0) / max(1, n),
                      "distinct_questions": len(s.get("distinct", ())),
                      "distinct_facts": len(s.get("facts", ()))})
            if kind == "mc":
                o["choices_hold_truth"] = s.get("with_truth", 0) / max(1, s.get("checked", 0))
        else:
            o["honest"] = s.get("honest", 0) / max(1, s["parsed"])
        o["example"] = examples[kind]
        out[kind] = o
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "demo", "models", "teacher"))
    ap.add_argument("--refinery", default=os.path.join(root, "build", "refinery"))
    ap.add_argument("--count", type=int, default=40, help="samples of each prompt kind")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out")
    ap.add_argument("-v", action="store_true", help="print every output")
    a = ap.parse_args()
    log = (lambda k, t: print(f"--- {k}\n{t}", file=sys.stderr)) if a.v else None
    res = measure(a.refinery, a.model, a.count, a.temperature, a.seed, log)
    s = json.dumps(res, indent=2)
    print(s)
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
