"""Check that demo/ is what scripts/make-demo.sh makes.

  - task.json, data/test.jsonl, data/pairs.jsonl and every model's
    tokenizer files are regenerated from the world's seed (the BPE
    vocabulary retrained) and must be byte-identical to the shipped ones;
  - MANIFEST.json lists every shipped file with its size and SHA-256, and
    nothing else is shipped; the total stays under the size budget;
  - each model's config.json has the architecture make_demo.py trains, and
    its safetensors header the matching tensor shapes, in BF16.

Training itself is not repeated here (it takes minutes); the test suite
checks the claims about the trained models directly (tests/integration/
demo.test.mjs). With --corpus-out FILE, also writes chat-formatted texts
drawn like the teacher's corpus (one JSON string per line) for the
tokenizer comparison; with --chat-out FILE, conversations and the text
Jinja2 renders from the shipped chat_template (as transformers renders it:
a sandboxed environment with trim_blocks and lstrip_blocks), for the
comparison with refinery's chat formatting. Exit status 1 and one line per problem when
anything differs."""

import argparse
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import make_demo as M  # noqa: E402
import world as W  # noqa: E402

MAX_BYTES = 20 * 1000 * 1000


def check_template(a, w, task):
    """The shipped chat_template rendered by Jinja2 equals the text the
    corpora were formatted with (corpus.chat_text)."""
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return ["jinja2 is missing: install python3-jinja2 (make deps)"]
    cfg = json.load(open(os.path.join(a.demo, "models", "teacher", "tokenizer_config.json")))
    tpl = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(cfg["chat_template"])
    import random
    rng = random.Random(5)
    b = corpus.Builder(w, task, w.fact_list, rng)
    convs = []
    for _ in range(20):
        turns = [b.subtopics(), b.pairs(), b.judge(), b.qa(rng.choice(w.fact_list))]
        msgs = []
        for u, r in rng.sample(turns, rng.randint(1, 4)):
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": r}]
        convs.append((msgs, False))
        convs.append((msgs[:-1], True))
    out, problems = [], []
    for msgs, gen in convs:
        text = tpl.render(messages=msgs, add_generation_prompt=gen)
        if text != corpus.chat_text(msgs, gen):
            problems.append("the chat_template as Jinja2 renders it differs from corpus.chat_text")
            break
        out.append({"messages": msgs, "add_generation_prompt": gen, "text": text})
    if a.chat_out:
        with open(a.chat_out, "w") as f:
            for o in out:
                f.write(json.dumps(o) + "\n")
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default=os.path.join(root, "demo"))
    ap.add_argument("--corpus-out")
    ap.add_argument("--chat-out")
    a = ap.parse_args()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        w = W.World()
        task = W.task(w)
        M.write_world_files(tmp, w, task)
        tok = os.path.join(tmp, "tokenizer")
        merges = M.make_tokenizer(tok, w, task)
        expect = {p: os.path.join(tmp, p) for p in ("task.json", "data/test.jsonl", "data/pairs.jsonl")}
        for m in M.MODELS:
            for f in M.TOKENIZER_FILES:
                expect[f"models/{m}/{f}"] = os.path.join(tok, f)
        for rel, src in sorted(expect.items()):
            shipped = os.path.join(a.demo, rel)
            if not os.path.exists(shipped):
                problems.append(f"{rel}: missing")
            elif open(shipped, "rb").read() != open(src, "rb").read():
                problems.append(f"{rel}: differs from what make-demo.sh generates")
        if a.corpus_out:
            import bpe
            enc = bpe.Encoder(merges)
            convs = corpus.teacher_corpus(w, task, enc, M.TEACHER_SEQ, 1,
                                          {k: max(1, v // 8) for k, v in M.TEACHER_TRAIN["mix"].items()}, 99)
            with open(a.corpus_out, "w") as f:
                for c in convs:
                    f.write(json.dumps(corpus.chat_text(c)) + "\n")
                for r in corpus.test_set(w, M.SEEDS["test"]):
                    for ch in r["choices"]:
                        f.write(json.dumps(corpus.chat_text([{"role": "user", "content": r["prompt"]}], True) + ch)
                                + "\n")
        problems += check_template(a, w, task)
    man_path = os.path.join(a.demo, "MANIFEST.json")
    if not os.path.exists(man_path):
        problems.append("MANIFEST.json: missing")
        man = {"files": {}}
    else:
        man = json.load(open(man_path))
    listed = set(man["files"])
    present = set()
    total = 0
    for d, _, files in os.walk(a.demo):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), a.demo)
            if rel in ("MANIFEST.json", "README.md"):
                continue
            present.add(rel)
            total += os.path.getsize(os.path.join(d, f))
    for rel in sorted(present - listed):
        problems.append(f"{rel}: shipped but not in MANIFEST.json")
    for rel in sorted(listed - present):
        problems.append(f"{rel}: in MANIFEST.json but missing")
    for rel in sorted(listed & present):
        p = os.path.join(a.demo, rel)
        want = man["files"][rel]
        if os.path.getsize(p) != want["bytes"] or M.sha256(p) != want["sha256"]:
            problems.append(f"{rel}: size or SHA-256 differs from MANIFEST.json")
    if total > MAX_BYTES:
        problems.append(f"demo/ holds {total} bytes, over the budget of {MAX_BYTES}")
    for m, arch in M.MODELS.items():
        cfg_path = os.path.join(a.demo, "models", m, "config.json")
        st_path = os.path.join(a.demo, "models", m, "model.safetensors")
        if not (os.path.exists(cfg_path) and os.path.exists(st_path)):
            problems.append(f"models/{m}: config.json or model.safetensors missing")
            continue
        cfg = json.load(open(cfg_path))
        want = M.model_config(**arch, **M.token_ids(merges), bf16=True)
        for k, v in want.items():
            if cfg.get(k) != v:
                problems.append(f"models/{m}/config.json: {k} is {cfg.get(k)!r}, make_demo.py trains {v!r}")
        with open(st_path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        shapes = {k: v["shape"] for k, v in header.items()}
        if shapes != M.tensor_shapes(want):
            problems.append(f"models/{m}/model.safetensors: tensors differ from the config's")
        if {v["dtype"] for v in header.values()} != {"BF16"}:
            problems.append(f"models/{m}/model.safetensors: not all BF16")
    for p in problems:
        print(p)
    if not problems:
        print(f"demo/ is what make-demo.sh makes ({len(present)} files, {total} bytes)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
