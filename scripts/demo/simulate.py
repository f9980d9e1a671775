"""The demo pipeline's refinement, simulated with the jobs that exist today
(`refinery run`), to check that the demo's table comes out true:

  1. data: the teacher drives Self-Instruct through the dataset job's
     default prompts (sub-topics per seed prompt, then question/answer pairs
     per sub-topic, optionally judged and filtered), or --truth: true pairs
     from the world (a dry run without the teacher)
  2. train: LoRA on the student with the teacher as knowledge teacher (KD)
  3. quantize: GPTQ W4A16 of the base student and of the refined one
  4. evaluate: student, refined, GPTQ alone, refined + GPTQ, teacher on the
     world's multiple-choice test set (chat formatting)

Prints the table as JSON (also to --out).
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import measure  # noqa: E402
import world as W  # noqa: E402

TRAIN = {"method": "lora", "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
         "loss": {"alpha": 0.5, "temperature": 2.0},
         "optimizer": {"name": "muon", "lr": 2e-3}, "schedule": {"warmup_steps": 10},
         "batch": 8, "epochs": 6, "seq_len": 64, "checkpoint_every": 0,
         "export": ["adapter", "merged"]}
QUANT = {"bits": 4, "group_size": 128, "sym": True, "calibration": {"samples": 128, "seq_len": 64},
         "evaluate": {"perplexity": False}}


def log(msg):
    print(f"[simulate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_job(refinery, work, name, job):
    wd = os.path.join(work, name)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    jf = os.path.join(wd, "job.json")
    with open(jf, "w") as f:
        json.dump(job, f, indent=2)
    t0 = time.time()
    r = subprocess.run([refinery, "run", jf, "--workdir", wd], capture_output=True, text=True)
    with open(os.path.join(wd, "events.jsonl"), "w") as f:
        f.write(r.stdout)
    result = None
    for line in r.stdout.splitlines():
        e = json.loads(line)
        if e["event"] == "result":
            result = e["data"]
    if r.returncode != 0 or result is None:
        raise SystemExit(f"{name} failed: {r.stderr[-2000:]}")
    result["_seconds"] = time.time() - t0
    result["_dir"] = wd
    return result


def teacher_pairs(a, w, task, rng):
    """Self-Instruct with the teacher: sub-topics from each seed prompt, then
    rounds of pairs per sub-topic (examples: that sub-topic's seed prompts
    as Q lines) until a.pairs distinct questions; each judged when a.judge."""
    subtopics = []
    for i, seed in enumerate(task["seed_prompts"]):
        text = measure.generate(a.refinery, a.teacher, corpus.subtopics_prompt(task, seed, 5),
                                64, 0.7, rng.randrange(1 << 30))
        for s in measure.parse_list(text) or []:
            if s not in subtopics:
                subtopics.append(s)
    log(f"sub-topics: {subtopics}")
    rows, seen, calls, judged_out = [], set(), 0, 0
    while len(rows) < a.pairs and calls < 4 * a.pairs:
        st = subtopics[calls % len(subtopics)]
        calls += 1
        kind = W.KIND_OF_SUBTOPIC.get(st)
        seeds = [s for s in task["seed_prompts"] if kind and w.parse_question(s)[0] == kind]
        ex = "\n".join("Q: " + s for s in seeds[:3])
        text = measure.generate(a.refinery, a.teacher, corpus.pairs_prompt(task, st, ex, 5), 200, 0.7,
                                rng.randrange(1 << 30))
        for q, ans in measure.parse_pairs(text, False) or []:
            if q in seen:
                continue
            seen.add(q)
            if a.judge:
                jt = measure.generate(a.refinery, a.teacher, corpus.judge_prompt(task, q, ans), 48, 0.0, 0)
                score = measure.parse_score(jt)
                if score is None or score < 7:
                    judged_out += 1
                    continue
            rows.append({"prompt": q, "response": ans, "_verdict": w.check_pair(q, ans)})
    return rows, {"calls": calls, "judged_out": judged_out, "subtopics": subtopics}


def truth_pairs(a, w, rng):
    cands = [(f, t) for f in w.fact_list for t in range(2)]
    rows = []
    for f, t in rng.sample(cands, a.pairs):
        rows.append({"prompt": w.question(f, t), "response": w.answer(f), "_verdict": "true"})
    return rows, {}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default=os.path.join(root, "demo"))
    ap.add_argument("--refinery", default=os.path.join(root, "build", "refinery"))
    ap.add_argument("--work", default=os.path.join(root, "build", "demo-sim"))
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--truth", action="store_true", help="true pairs from the world instead of the teacher")
    ap.add_argument("--judge", action="store_true", help="keep only pairs the teacher scores >= 7/10")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", default="{}", help="JSON overrides of the train job's params")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.teacher = os.path.join(a.demo, "models", "teacher")
    student = os.path.join(a.demo, "models", "student")
    test = os.path.join(a.demo, "data", "test.jsonl")
    os.makedirs(a.work, exist_ok=True)
    w = W.World()
    task = W.task(w)
    rng = random.Random(a.seed)
    t0 = time.time()
    rows, gen = truth_pairs(a, w, rng) if a.truth else teacher_pairs(a, w, task, rng)
    n_val = max(1, len(rows) // 10)
    data = os.path.join(a.work, "pairs.jsonl")
    with open(data, "w") as f:
        for i, r in enumerate(rows):
            r = {k: v for k, v in r.items() if not k.startswith("_")}
            if i >= len(rows) - n_val:
                r["split"] = "validation"
            f.write(json.dumps(r) + "\n")
    verdicts = [r["_verdict"] for r in rows]
    gen.update({"rows": len(rows), "true": verdicts.count("true") / max(1, len(rows)),
                "distinct_facts": len({w.parse_question(r["prompt"]) for r in rows} - {None}),
                "seconds": round(time.time() - t0)})
    log(f"data: {gen}")
    tp = dict(TRAIN, student=student, teacher=a.teacher, dataset=data, seed=a.seed)
    tp.update(json.loads(a.train))
    tr = run_job(a.refinery, a.work, "train", {"type": "train", "params": tp})
    refined = os.path.join(tr["_dir"], "models", tr["merged_model"])
    log(f"train: {tr['steps']} steps, loss {tr['loss']:.3f}, {tr['_seconds']:.0f} s")
    qs = {}
    for name, model in (("student", student), ("refined", refined)):
        q = run_job(a.refinery, a.work, "quantize-" + name,
                    {"type": "quantize", "params": dict(QUANT, model=model, dataset=data)})
        qs[name] = os.path.join(q["_dir"], "models", q["model"])
        log(f"quantize {name}: {q['_seconds']:.0f} s")
    table = {}
    for name, model in (("student", student), ("student+gptq", qs["student"]), ("refined", refined),
                        ("refined+gptq", qs["refined"]), ("teacher", a.teacher)):
        e = run_job(a.refinery, a.work, "eval-" + name.replace("+", "-"),
                    {"type": "evaluate", "params": {"model": model, "dataset": test,
                                                    "metrics": ["accuracy"], "chat": True}})
        table[name] = {"acc": e["acc"], "acc_norm": e["acc_norm"]}
        log(f"{name}: acc {e['acc']:.3f} acc_norm {e['acc_norm']:.3f}")
    out = {"data": gen, "train": {k: tr[k] for k in ("steps", "loss")}, "table": table,
           "seconds": round(time.time() - t0)}
    s = json.dumps(out, indent=2)
    print(s)
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
