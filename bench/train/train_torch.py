#!/usr/bin/python3
"""PyTorch peer of bench/train/train.c: the same checkpoints (read from the
safetensors files the C bench wrote), batch, tokens, LoRA r=16 on every
linear layer, α = 1 KD (T = 1) from the frozen teacher, AdamW on the
adapters, same thread count. Eager PyTorch in f32, the way a LoRA training
loop is usually written (full logits, autograd). Prints tokens/s, peak RSS,
and the peak above the resident set right after `import torch` (the
baseline: ~230 MiB of runtime before any weight). run.sh runs it under both
OpenMP wait policies, as bench/forward does for Debian's torch.

    /usr/bin/python3 bench/train/train_torch.py DIR STEPS THREADS
"""
import json
import math
import os
import resource
import struct
import sys
import time

import torch

BATCH, SEQ = 4, 128


def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = bytearray(f.read())
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.frombuffer(data[b:e], dtype=torch.float32).reshape(v["shape"]).clone()
    return out


class Llama(torch.nn.Module):
    def __init__(self, d, lora_r=0, lora_alpha=0):
        super().__init__()
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.W = read_st(os.path.join(d, "model.safetensors"))
        c = self.cfg
        self.hd = c["hidden_size"] // c["num_attention_heads"]
        self.scale = lora_alpha / lora_r if lora_r else 0
        self.lora = torch.nn.ParameterDict()
        if lora_r:
            g = torch.Generator().manual_seed(1)
            for k, w in self.W.items():
                if w.dim() == 2 and ".layers." in k:
                    key = k.replace(".", "_")
                    self.lora[key + "_A"] = torch.nn.Parameter((torch.rand(lora_r, w.shape[1], generator=g) * 2 - 1) / math.sqrt(w.shape[1]))
                    self.lora[key + "_B"] = torch.nn.Parameter(torch.zeros(w.shape[0], lora_r))
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        ang = torch.arange(SEQ, dtype=torch.float32)[:, None] * inv[None, :]
        self.cos, self.sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def lin(self, name, x):
        y = x @ self.W[name].T
        key = name.replace(".", "_")
        if key + "_A" in self.lora:
            y = y + self.scale * (x @ self.lora[key + "_A"].T) @ self.lora[key + "_B"].T
        return y

    @staticmethod
    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, ids):
        c, W = self.cfg, self.W
        B, T = ids.shape
        H, KV, hd = c["num_attention_heads"], c["num_key_value_heads"], self.hd
        x = W["model.embed_tokens.weight"][ids]
        rot = lambda t: torch.cat([-t[..., hd // 2:], t[..., : hd // 2]], -1)  # noqa: E731
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.norm(x, W[p + "input_layernorm.weight"])
            q = self.lin(p + "self_attn.q_proj.weight", h).view(B, T, H, hd).transpose(1, 2)
            k = self.lin(p + "self_attn.k_proj.weight", h).view(B, T, KV, hd).transpose(1, 2)
            v = self.lin(p + "self_attn.v_proj.weight", h).view(B, T, KV, hd).transpose(1, 2)
            q, k = q * self.cos + rot(q) * self.sin, k * self.cos + rot(k) * self.sin
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * hd)
            x = x + self.lin(p + "self_attn.o_proj.weight", o)
            h = self.norm(x, W[p + "post_attention_layernorm.weight"])
            g = self.lin(p + "mlp.gate_proj.weight", h)
            u = self.lin(p + "mlp.up_proj.weight", h)
            x = x + self.lin(p + "mlp.down_proj.weight", torch.nn.functional.silu(g) * u)
        return self.norm(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T


def main():
    d, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    base = resident_mib()
    student = Llama(os.path.join(d, "student"), 16, 32)
    teacher = Llama(os.path.join(d, "teacher"))
    V = student.cfg["vocab_size"]
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, V, (BATCH, SEQ), generator=g)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.bool)
    mask[:, SEQ // 4: SEQ - 1] = True
    opt = torch.optim.AdamW(student.lora.parameters(), lr=1e-4, weight_decay=0.0)
    t0 = 0
    for s in range(steps + 1):
        if s == 1:
            t0 = time.perf_counter()
        with torch.no_grad():
            zt = teacher(ids)[mask]
        zs = student(ids)[mask]
        lq, lp = torch.log_softmax(zt, -1), torch.log_softmax(zs, -1)
        loss = (lq.exp() * (lq - lp)).sum(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    tps = BATCH * SEQ * steps / dt
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"pytorch {torch.__version__} (OpenMP wait {wait}): {steps} steps of {BATCH}x{SEQ} tokens, "
          f"{tps:.1f} tokens/s, peak RSS {peak:.1f} MiB ({peak - base:.1f} above import torch), "
          f"loss {loss.item():.4f}, threads {threads}")
    print(f"RESULT tokens_per_s={tps:.3f} peak_mib={peak:.1f} above_mib={peak - base:.1f}")


if __name__ == "__main__":
    main()
