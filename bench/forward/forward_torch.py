#!/usr/bin/python3
"""PyTorch peer of bench/forward/forward.c: the same checkpoint, dtype and
thread count, a plain-torch Llama forward with a KV cache (no transformers),
prefill and decode timed the same way. Prints one line:

    torch: prefill P tok/s, decode D tok/s
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch

DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = np.frombuffer(data, dtype=np.uint8, count=en - b, offset=b)
        if e["dtype"] in ("BF16", "F16"):
            t = torch.from_numpy(raw.view(np.int16).copy()).view(DT[e["dtype"]])
        else:
            t = torch.from_numpy(raw.view(np.float32).copy())
        out[name] = t.reshape(e["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = load_safetensors(os.path.join(a.model, "model.safetensors"))
    dt = next(iter(W.values())).dtype
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, L, eps = D // H, cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    inv = 1.0 / cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    S = a.prompt + a.decode
    ang = torch.arange(S, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos().to(dt), torch.cat([ang, ang], -1).sin().to(dt)
    kc = [torch.zeros(KV, S, hd, dtype=dt) for _ in range(L)]
    vc = [torch.zeros(KV, S, hd, dtype=dt) for _ in range(L)]
    emb = W["model.embed_tokens.weight"]
    head = W.get("lm_head.weight", emb)

    def norm(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(dt) * w

    def rot(x, p0, T):
        h = x.shape[-1] // 2
        r = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * cos[p0:p0 + T] + r * sin[p0:p0 + T]

    def forward(ids, p0):
        T = len(ids)
        x = emb[torch.tensor(ids)]
        mask = torch.full((T, p0 + T), float("-inf")).triu(p0 + 1)
        for l in range(L):
            p = f"model.layers.{l}."
            h = norm(x, W[p + "input_layernorm.weight"])
            q = torch.nn.functional.linear(h, W[p + "self_attn.q_proj.weight"]).view(T, H, hd).transpose(0, 1)
            k = torch.nn.functional.linear(h, W[p + "self_attn.k_proj.weight"]).view(T, KV, hd).transpose(0, 1)
            v = torch.nn.functional.linear(h, W[p + "self_attn.v_proj.weight"]).view(T, KV, hd).transpose(0, 1)
            q, k = rot(q, p0, T), rot(k, p0, T)
            kc[l][:, p0:p0 + T] = k
            vc[l][:, p0:p0 + T] = v
            kk = kc[l][:, :p0 + T].repeat_interleave(H // KV, 0)
            vv = vc[l][:, :p0 + T].repeat_interleave(H // KV, 0)
            s = (q @ kk.transpose(1, 2)).float() / math.sqrt(hd) + mask
            o = (torch.softmax(s, -1).to(dt) @ vv).transpose(0, 1).reshape(T, H * hd)
            x = x + torch.nn.functional.linear(o, W[p + "self_attn.o_proj.weight"])
            h = norm(x, W[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.linear(h, W[p + "mlp.gate_proj.weight"])
            u = torch.nn.functional.linear(h, W[p + "mlp.up_proj.weight"])
            x = x + torch.nn.functional.linear(torch.nn.functional.silu(g) * u, W[p + "mlp.down_proj.weight"])
        return torch.nn.functional.linear(norm(x[-1:], W["model.norm.weight"]), head)

    ids = [(i * 2654435761) % cfg["vocab_size"] for i in range(S)]
    with torch.inference_mode():
        forward(ids[:8], 0)
        prefill = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            logits = forward(ids[:a.prompt], 0)
            prefill = max(prefill, a.prompt / (time.perf_counter() - t0))
        dec = 0.0
        for _ in range(3):  # best of three, each from the end of the prompt
            logits = forward(ids[:a.prompt], 0)
            t0 = time.perf_counter()
            for i in range(a.decode):
                nxt = int(torch.argmax(logits))
                logits = forward([nxt], a.prompt + i)
            dec = max(dec, a.decode / (time.perf_counter() - t0))
    print(f"torch: prefill {prefill:.1f} tok/s, decode {dec:.2f} tok/s", flush=True)


if __name__ == "__main__":
    main()
