#!/usr/bin/python3
"""Writes the Llama-family reference fixtures under tests/reference/fixtures/.

Run with Debian's torch (`apt-get install -y python3-torch`):

    /usr/bin/python3 tests/reference/make_fixtures.py

Each fixture folder is a tiny random checkpoint in Hugging Face layout
(config.json, model.safetensors or shards + model.safetensors.index.json)
and expected.safetensors with
    input_ids  I32 [T]          the prompt
    logits     F32 [T, vocab]   logits of every prompt position
    greedy     I32 [16]         greedy continuation of the prompt

The expected values come from the forward pass below: the published Llama
equations (RMSNorm, rotate-half RoPE with optional llama3 frequency scaling,
grouped-query causal attention, SwiGLU) in plain torch, in float64 from the
stored weights, written without reference to the C engine and without
transformers. The safetensors files are written by hand here too (header
JSON padded to 8 bytes, then the raw little-endian bytes), so the C reader is
checked against an independent writer.

The script refuses a seed whose greedy steps have a top-2 logit gap below
MIN_GAP, so that a token-identical comparison is not decided by rounding.
"""
import json
import math
import os
import shutil
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
PROMPT_LEN = 12
GREEDY_LEN = 16
MIN_GAP = 2e-3
MIN_DISTINCT = 5

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32"}


def write_safetensors(path, tensors):
    """tensors: list of (name, tensor). Data contiguous in list order."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        t = t.contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.float16, torch.bfloat16) else t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    return off


# ---- the reference forward pass -------------------------------------------------


def inv_freq(cfg):
    d = cfg["head_dim"]
    f = torch.tensor([1.0 / cfg["rope_theta"] ** (2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        # Llama 3.1 frequency bands: wavelength above old_ctx/low_freq_factor
        # is divided by factor, below old_ctx/high_freq_factor kept, between
        # them interpolated by smooth = (old_ctx/wavelength - low)/(high - low).
        old, lo, hi, fac = (rs["original_max_position_embeddings"], rs["low_freq_factor"],
                            rs["high_freq_factor"], rs["factor"])
        out = []
        for v in f.tolist():
            wl = 2 * math.pi / v
            if wl > old / lo:
                out.append(v / fac)
            elif wl < old / hi:
                out.append(v)
            else:
                s = (old / wl - lo) / (hi - lo)
                out.append((1 - s) * v / fac + s * v)
        f = torch.tensor(out, dtype=torch.float64)
    return f


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def forward(cfg, W, ids):
    """logits [T, vocab] in float64 for the token list ids."""
    g = lambda n: W[n].to(torch.float64)  # noqa: E731
    T, H, KV, hd = len(ids), cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    x = g("model.embed_tokens.weight")[torch.tensor(ids)]
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * inv_freq(cfg)[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if cfg.get("sliding_window"):
        allowed &= (i - j) < cfg["sliding_window"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, g(p + "input_layernorm.weight"), eps)
        proj = {}
        for n in "qkv":
            y = h @ g(p + f"self_attn.{n}_proj.weight").T
            if p + f"self_attn.{n}_proj.bias" in W:
                y = y + g(p + f"self_attn.{n}_proj.bias")
            proj[n] = y
        q = proj["q"].view(T, H, hd).transpose(0, 1)
        k = proj["k"].view(T, KV, hd).transpose(0, 1)
        v = proj["v"].view(T, KV, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # grouped-query attention: query head h reads kv head h // (H/KV)
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
        s = s.masked_fill(~allowed, float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, H * hd)
        o = o @ g(p + "self_attn.o_proj.weight").T
        if p + "self_attn.o_proj.bias" in W:
            o = o + g(p + "self_attn.o_proj.bias")
        x = x + o
        h = rmsnorm(x, g(p + "post_attention_layernorm.weight"), eps)
        gate = h @ g(p + "mlp.gate_proj.weight").T
        up = h @ g(p + "mlp.up_proj.weight").T
        x = x + (gate * torch.sigmoid(gate) * up) @ g(p + "mlp.down_proj.weight").T
    x = rmsnorm(x, g("model.norm.weight"), eps)
    head = g("model.embed_tokens.weight") if cfg.get("tie_word_embeddings") else g("lm_head.weight")
    return x @ head.T


def greedy(cfg, W, ids, n):
    """Greedy continuation by full recomputation (no cache); min top-2 gap."""
    seq, out, gap = list(ids), [], float("inf")
    for _ in range(n):
        last = forward(cfg, W, seq)[-1]
        top = torch.topk(last, 2).values
        gap = min(gap, (top[0] - top[1]).item())
        nxt = int(torch.argmax(last))
        out.append(nxt)
        seq.append(nxt)
    return out, gap


# ---- random checkpoints ------------------------------------------------------------


def make_weights(cfg, dtype, gen):
    D, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    bias = cfg["model_type"] == "qwen2"

    def lin(o, i):
        return torch.randn(o, i, generator=gen) / math.sqrt(i)

    def norm(n):
        return 1.0 + 0.2 * torch.randn(n, generator=gen)

    # A tied head reads the embedding: keep its logits O(1) rather than O(D),
    # or greedy decoding just repeats the last token.
    W = {"model.embed_tokens.weight": torch.randn(V, D, generator=gen) * (0.3 if cfg.get("tie_word_embeddings") else 1.0)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = norm(D)
        W[p + "self_attn.q_proj.weight"] = lin(H * hd, D)
        W[p + "self_attn.k_proj.weight"] = lin(KV * hd, D)
        W[p + "self_attn.v_proj.weight"] = lin(KV * hd, D)
        if bias:
            W[p + "self_attn.q_proj.bias"] = 0.2 * torch.randn(H * hd, generator=gen)
            W[p + "self_attn.k_proj.bias"] = 0.2 * torch.randn(KV * hd, generator=gen)
            W[p + "self_attn.v_proj.bias"] = 0.2 * torch.randn(KV * hd, generator=gen)
        W[p + "self_attn.o_proj.weight"] = lin(D, H * hd)
        W[p + "post_attention_layernorm.weight"] = norm(D)
        W[p + "mlp.gate_proj.weight"] = lin(I, D)
        W[p + "mlp.up_proj.weight"] = lin(I, D)
        W[p + "mlp.down_proj.weight"] = lin(D, I)
    W["model.norm.weight"] = norm(D)
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = lin(V, D) * 2.0
    return {k: v.to(dtype) for k, v in W.items()}


BASE = {
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1,
    "eos_token_id": 2,
}

FIXTURES = [
    # name, config overrides, dtype, shards
    ("llama_f32_gqa", {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, torch.float32, 1),
    ("llama3_bf16_tied", {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_key_value_heads": 1,
                          "head_dim": 32, "rope_theta": 500000.0, "tie_word_embeddings": True,
                          "eos_token_id": [2, 3],
                          # as Llama 3: more EOS ids in generation_config.json
                          "generation_config": {"bos_token_id": 1, "eos_token_id": [2, 3, 7]},
                          "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
     torch.bfloat16, 1),
    ("qwen2_f16_bias", {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "rope_theta": 1000000.0,
                        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": False},
     torch.float16, 1),
    ("mistral_f32_sharded", {"model_type": "mistral", "architectures": ["MistralForCausalLM"],
                             "sliding_window": 8}, torch.float32, 2),
]


def build(name, over, dtype, shards, seed):
    cfg = {k: v for k, v in dict(BASE, **over).items() if k != "generation_config"}
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    gen = torch.Generator().manual_seed(seed)
    W = make_weights(cfg, dtype, gen)
    ids = torch.randint(3, cfg["vocab_size"], (PROMPT_LEN,), generator=gen).tolist()
    logits = forward(cfg, W, ids)
    cont, gap = greedy(cfg, W, ids, GREEDY_LEN)
    return cfg, W, ids, logits, cont, gap


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for name, over, dtype, shards in FIXTURES:
        for seed in range(1000, 1100):
            cfg, W, ids, logits, cont, gap = build(name, over, dtype, shards, seed)
            # also ask for a continuation that is not one token repeated
            if gap >= MIN_GAP and len(set(cont)) >= MIN_DISTINCT:
                break
        else:
            sys.exit(f"{name}: no seed gives greedy top-2 gaps >= {MIN_GAP} and {MIN_DISTINCT} distinct tokens")
        d = os.path.join(OUT, name)
        os.makedirs(d)
        out_cfg = dict(cfg)  # generation_config was left out of cfg
        out_cfg["torch_dtype"] = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(out_cfg, f, indent=2)
        if "generation_config" in over:
            with open(os.path.join(d, "generation_config.json"), "w") as f:
                json.dump(over["generation_config"], f, indent=2)
        names = list(W)
        if shards == 1:
            write_safetensors(os.path.join(d, "model.safetensors"), [(n, W[n]) for n in names])
        else:
            per = (len(names) + shards - 1) // shards
            wmap, total = {}, 0
            for s in range(shards):
                fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
                part = names[s * per:(s + 1) * per]
                total += write_safetensors(os.path.join(d, fn), [(n, W[n]) for n in part])
                wmap.update({n: fn for n in part})
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
        write_safetensors(os.path.join(d, "expected.safetensors"), [
            ("input_ids", torch.tensor(ids, dtype=torch.int32)),
            ("logits", logits.to(torch.float32)),
            ("greedy", torch.tensor(cont, dtype=torch.int32)),
        ])
        print(f"{name}: seed {seed}, min greedy gap {gap:.4f}, greedy {cont}")


if __name__ == "__main__":
    main()
