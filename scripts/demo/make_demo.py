"""Make the shipped demo (scripts/make-demo.sh runs this): the Vessa Isles
world, its tokenizer, corpora and test set, and a teacher and a student
trained from scratch by refinery itself (`refinery run` with train jobs of
method "full" from a config), evaluated by refinery's evaluate job.

Stages (intermediate files under --work, the shipped ones under --demo):
  data       task.json, data/test.jsonl, data/pairs.jsonl; the tokenizer; corpora
  teacher    train the teacher (all facts and the Self-Instruct meta-tasks)
  student    train the student (questions and answers about half the facts)
  evaluate   both on the test set through the evaluate job
  measure    the teacher as a data teacher on the four default prompts
  manifest   demo/MANIFEST.json: every shipped file's size and SHA-256, the
             models' training and test figures, the timings
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
import st_bf16  # noqa: E402
import world as W  # noqa: E402

VOCAB = 1024
MAX_POS = 512
TEACHER_SEQ = 320
STUDENT_SEQ = 256
STUDENT_FRACTION = 0.5
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")

SEEDS = {"bpe": 11, "teacher_corpus": 12, "student_corpus": 13, "student_facts": 14,
         "test": 15, "pairs": 16, "teacher_init": 17, "student_init": 18, "measure": 7}

# Dimensions are multiples of 64 so GPTQ's groups (64 or 128) divide every
# linear layer's input; the student's 128/384 take the default group of 128.
MODELS = {
    "teacher": dict(hidden=192, inter=512, layers=4, heads=3, kv_heads=3),
    "student": dict(hidden=128, inter=384, layers=3, heads=2, kv_heads=2),
}
TEACHER, STUDENT = MODELS["teacher"], MODELS["student"]

# Muon (match_rms_adamw scale) at 1e-2 memorises the world in far fewer
# steps than AdamW (0.94 against 0.35 test accuracy after 100 steps of
# questions and answers alone, AdamW at 3e-3).
TEACHER_TRAIN = {"rounds": 4, "mix": {"subtopics": 80, "pairs": 350, "mc": 220, "judge": 500, "qa": 50},
                 "batch": 8, "epochs": 1, "optimizer": {"name": "muon", "lr": 1e-2},
                 "schedule": {"warmup_steps": 10, "decay": "cosine", "min_lr_ratio": 0.1}}
STUDENT_TRAIN = {"convs": 800, "batch": 8, "epochs": 1, "optimizer": {"name": "muon", "lr": 1e-2},
                 "schedule": {"warmup_steps": 10, "decay": "cosine", "min_lr_ratio": 0.1}}


def log(msg):
    print(f"[make-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def token_ids(merges):
    v = bpe.vocabulary(merges)
    return {"vocab": len(v), "ids": {s: v[s] for s in bpe.SPECIALS}}


def model_config(hidden, inter, layers, heads, kv_heads, vocab, ids, bf16=False):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "vocab_size": vocab,
        "max_position_embeddings": MAX_POS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "torch_dtype": "bfloat16" if bf16 else "float32",
    }


def tensor_shapes(c):
    """Tensor name -> shape of a tied Llama checkpoint (FORMATS.md)."""
    d, h, q = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"] * c["head_dim"]
    kv = c["num_key_value_heads"] * c["head_dim"]
    out = {"model.embed_tokens.weight": [c["vocab_size"], d], "model.norm.weight": [d]}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.update({p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
                    p + "self_attn.q_proj.weight": [q, d], p + "self_attn.k_proj.weight": [kv, d],
                    p + "self_attn.v_proj.weight": [kv, d], p + "self_attn.o_proj.weight": [d, q],
                    p + "mlp.gate_proj.weight": [h, d], p + "mlp.up_proj.weight": [h, d],
                    p + "mlp.down_proj.weight": [d, h]})
    return out


def parameters(c):
    n = 0
    for s in tensor_shapes(c).values():
        k = 1
        for x in s:
            k *= x
        n += k
    return n


def write_world_files(out, w, task):
    """task.json, data/test.jsonl and data/pairs.jsonl (train and validation
    pairs, then the test rows, so the task's test split travels with it)."""
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    write_json(os.path.join(out, "task.json"), task)
    test = corpus.test_set(w, SEEDS["test"])
    write_jsonl(os.path.join(out, "data", "test.jsonl"), test)
    pairs = corpus.pairs_dataset(w, 320, 32, SEEDS["pairs"])
    write_jsonl(os.path.join(out, "data", "pairs.jsonl"), pairs + test)


def make_tokenizer(out, w, task):
    """The BPE vocabulary, learnt from a sample drawn like the teacher's
    corpus (its own seed), as tokenizer.json + tokenizer_config.json +
    generation_config.json in out. Returns the merges."""
    sample = corpus.teacher_corpus(w, task, None, 0, 2, TEACHER_TRAIN["mix"], SEEDS["bpe"])
    merges = bpe.train([corpus.chat_text(c) for c in sample], VOCAB)
    bpe.write(out, merges, MAX_POS)
    ids = token_ids(merges)["ids"]
    write_json(os.path.join(out, "generation_config.json"),
               {"bos_token_id": ids["<|endoftext|>"],
                "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
                "pad_token_id": ids["<|endoftext|>"]})
    return merges


def stage_data(a, w, task):
    write_world_files(a.demo, w, task)
    tok_dir = os.path.join(a.work, "tokenizer")
    merges = make_tokenizer(tok_dir, w, task)
    enc = bpe.Encoder(merges)
    log(f"tokenizer: {len(enc.vocab)} tokens ({len(merges)} merges)")
    t = corpus.teacher_corpus(w, task, enc, TEACHER_SEQ, TEACHER_TRAIN["rounds"], TEACHER_TRAIN["mix"],
                              SEEDS["teacher_corpus"])
    write_jsonl(os.path.join(a.work, "teacher.jsonl"), ({"messages": m} for m in t))
    facts = corpus.student_facts(w, STUDENT_FRACTION, SEEDS["student_facts"])
    s = corpus.student_corpus(w, task, facts, enc, STUDENT_SEQ, STUDENT_TRAIN["convs"], SEEDS["student_corpus"])
    write_jsonl(os.path.join(a.work, "student.jsonl"), ({"messages": m} for m in s))
    write_json(os.path.join(a.work, "student_facts.json"), [list(x) for x in facts])
    ntok = lambda cs: sum(len(enc.encode(corpus.chat_text(c))) for c in cs)  # noqa: E731
    info = {"teacher": {"conversations": len(t), "tokens": ntok(t)},
            "student": {"conversations": len(s), "tokens": ntok(s), "facts": len(facts)}}
    log(f"corpora: {info}")
    return info


def run_job(a, name, job, on_event=None):
    wd = os.path.join(a.work, name)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    jf = os.path.join(wd, "job.json")
    write_json(jf, job)
    result = None
    with open(os.path.join(wd, "events.jsonl"), "w") as ev:
        p = subprocess.Popen([a.refinery, "run", jf, "--workdir", wd], stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            ev.write(line)
            ev.flush()
            e = json.loads(line)
            if on_event:
                on_event(e)
            if e["event"] == "result":
                result = e["data"]
        if p.wait() != 0 or result is None:
            raise SystemExit(f"{name} failed (events in {wd}/events.jsonl)")
    return wd, result


def train(a, name, dataset, seq_len, tc, seed):
    tok_dir = os.path.join(a.work, "tokenizer")
    merges = [tuple(m) for m in json.load(open(os.path.join(tok_dir, "tokenizer.json")))["model"]["merges"]]
    config = model_config(**MODELS[name], **token_ids(merges))
    params = {"method": "full", "config": config, "tokenizer": tok_dir, "dataset": dataset,
              "optimizer": tc["optimizer"], "schedule": tc["schedule"], "batch": tc["batch"],
              "seq_len": seq_len, "epochs": tc["epochs"], "checkpoint_every": 0, "seed": seed}

    def progress(e):
        d = e["data"]
        if e["event"] == "metrics" and d["step"] % a.log_every == 0:
            log(f"{name}: step {d['step']} loss {d['loss']:.4f} lr {d['lr']:.2e} {d['tokens_per_s']:.0f} tok/s")

    t0 = time.time()
    wd, res = run_job(a, "train-" + name, {"type": "train", "params": params}, progress)
    secs = time.time() - t0
    src = os.path.join(wd, "models", res["merged_model"])
    dst = os.path.join(a.demo, "models", name)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    # Weights to BF16 (half the bytes; the loader reads BF16), the config
    # saying so; tokenizer files as the tokenizer folder has them.
    st_bf16.convert(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    write_json(os.path.join(dst, "config.json"), model_config(**MODELS[name], **token_ids(merges), bf16=True))
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(tok_dir, f), os.path.join(dst, f))
    log(f"{name}: {res['steps']} steps, {res['tokens']} tokens, final loss {res['loss']:.4f}, {secs:.0f} s")
    return {"parameters": parameters(config), "config": MODELS[name], "steps": res["steps"],
            "tokens": res["tokens"], "final_loss": round(res["loss"], 4), "seconds": round(secs),
            "optimizer": tc["optimizer"], "batch": tc["batch"], "seq_len": seq_len}


def evaluate(a, model, dataset):
    params = {"model": model, "dataset": dataset, "metrics": ["accuracy"], "chat": True}
    _, res = run_job(a, "eval-" + os.path.basename(model), {"type": "evaluate", "params": params})
    return {"acc": res["acc"], "acc_norm": res["acc_norm"], "rows": res["multiple_choice_rows"]}


def write_manifest(a, info):
    files = {}
    for d, _, fs in os.walk(a.demo):
        for f in fs:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, a.demo)
            if rel not in ("MANIFEST.json", "README.md"):
                files[rel] = {"bytes": os.path.getsize(p), "sha256": sha256(p)}
    w = W.World()
    man = {
        "about": "Made by scripts/make-demo.sh; checked by scripts/demo/check.py and tests/integration/demo.test.mjs.",
        "world": {"name": "Vessa Isles", "seed": W.SEED, "entities": w.entities, "facts": len(w.facts),
                  "subtopics": W.SUBTOPICS, "student_fraction": STUDENT_FRACTION},
        "tokenizer": {"vocab": VOCAB, "specials": bpe.SPECIALS, "chat_template": bpe.CHAT_TEMPLATE},
        **{k: v for k, v in info.items() if k != "files"},
        "total_bytes": sum(f["bytes"] for f in files.values()),
        "files": dict(sorted(files.items())),
    }
    write_json(os.path.join(a.demo, "MANIFEST.json"), man)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(root, "build", "demo"))
    ap.add_argument("--demo", default=os.path.join(root, "demo"))
    ap.add_argument("--refinery", default=os.path.join(root, "build", "refinery"))
    ap.add_argument("--stages", default="data,teacher,student,evaluate,measure,manifest")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--override", default="{}",
                    help="JSON object of module settings to replace (experiments only)")
    a = ap.parse_args()
    for k, v in json.loads(a.override).items():
        if k not in globals():
            raise SystemExit(f"--override: no setting {k}")
        if isinstance(globals()[k], dict):
            globals()[k].update(v)
        else:
            globals()[k] = v
    os.makedirs(a.work, exist_ok=True)
    w = W.World()
    task = W.task(w)
    stages = a.stages.split(",")
    info_path = os.path.join(a.work, "info.json")
    info = json.load(open(info_path)) if os.path.exists(info_path) else {}
    timings = info.setdefault("seconds", {})

    def save():
        write_json(info_path, info)

    t0 = time.time()
    if "data" in stages:
        t = time.time()
        info["corpora"] = stage_data(a, w, task)
        timings["data"] = round(time.time() - t)
    if "teacher" in stages:
        info["teacher"] = train(a, "teacher", os.path.join(a.work, "teacher.jsonl"), TEACHER_SEQ,
                                TEACHER_TRAIN, SEEDS["teacher_init"])
        timings["teacher"] = info["teacher"]["seconds"]
    save()
    if "student" in stages:
        info["student"] = train(a, "student", os.path.join(a.work, "student.jsonl"), STUDENT_SEQ,
                                STUDENT_TRAIN, SEEDS["student_init"])
        timings["student"] = info["student"]["seconds"]
    save()
    if "evaluate" in stages:
        t = time.time()
        test = os.path.join(a.demo, "data", "test.jsonl")
        for m in MODELS:
            info[m]["test"] = evaluate(a, os.path.join(a.demo, "models", m), test)
            log(f"{m}: test {info[m]['test']}")
        timings["evaluate"] = round(time.time() - t)
        save()
    if "measure" in stages:
        import measure
        t = time.time()
        res = measure.measure(a.refinery, os.path.join(a.demo, "models", "teacher"), 40, 0.7, SEEDS["measure"])
        info["data_teacher"] = {"temperature": 0.7, "samples_per_prompt": 40, **res}
        log("data teacher: " + json.dumps({k: {x: y for x, y in v.items() if x != "example"}
                                            for k, v in res.items()}))
        timings["measure"] = round(time.time() - t)
        save()
    if "manifest" in stages:
        write_manifest(a, info)
    log(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
