#!/usr/bin/python3
"""A GPTQ checkpoint written by a packer other than ours, for the engine's
loader: tests/reference/fixtures/gptq_ext/ holds the llama_f32_gqa fixture
with every linear layer quantized here in torch (round-to-nearest,
asymmetric, group size 32, act-order style g_idx: channels assigned to groups
through a random permutation, so g_idx is not monotonic) and packed from the
format description (../shared/FORMATS.md "GPTQ W4A16 checkpoint"): qweight
int32 [K/8, N] packed along K, qzeros int32 [G, N/8] storing zero − 1,
scales float16 [G, N], g_idx int32 [K]; embeddings, norms and lm_head
float16; config.json with quantization_config.

expected.safetensors: input_ids I32 [T] and logits F32 [T, vocab] from the
float64 reference forward (make_fixtures.forward) on the dequantized weights
w = scales[g_idx[k], n] · (q − (stored_zero + 1)).

Run with /usr/bin/python3 (python3-torch)."""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402
from gptq_unpack import st_read  # noqa: E402

SRC = os.path.join(HERE, "fixtures", "llama_f32_gqa")
OUT = os.path.join(HERE, "fixtures", "gptq_ext")
GS = 32
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def to_i32(words):
    """uint32 values held in int64 → int32 with the same bits."""
    return torch.where(words >= 2 ** 31, words - 2 ** 32, words).to(torch.int32)


def quantize_pack(W, gen):
    N, K = W.shape
    G = K // GS
    perm = torch.randperm(K, generator=gen)
    g_idx = torch.empty(K, dtype=torch.int64)
    g_idx[perm] = torch.arange(K) // GS
    scales = torch.empty(G, N)
    zeros = torch.empty(G, N, dtype=torch.int64)
    q = torch.empty(N, K, dtype=torch.int64)
    for g in range(G):
        cols = (g_idx == g).nonzero().reshape(-1)
        x = W[:, cols]
        xmin = torch.minimum(x.min(1).values, torch.zeros(N))
        xmax = torch.maximum(x.max(1).values, torch.zeros(N))
        s = (xmax - xmin) / 15
        s[s == 0] = 1
        s = s.half().float()  # what the checkpoint stores
        z = torch.clamp(torch.round(-xmin / s), 1, 15).long()
        scales[g], zeros[g] = s, z
        q[:, cols] = torch.clamp(torch.round(x / s[:, None]) + z[:, None], 0, 15).long()
    shifts = torch.arange(8) * 4
    qweight = (q.t().reshape(K // 8, 8, N) << shifts[None, :, None]).sum(1)          # [K/8, N]
    qzeros = (((zeros - 1) & 0xF).reshape(G, N // 8, 8) << shifts[None, None, :]).sum(2)  # [G, N/8]
    deq = scales[g_idx] * (q.t() - zeros[g_idx]).float()                                 # [K, N]
    return (to_i32(qweight), to_i32(qzeros), scales.half(), g_idx.to(torch.int32)), deq.t()


def main():
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    W = st_read(os.path.join(SRC, "model.safetensors"))
    gen = torch.Generator().manual_seed(6)
    out, ref = [], {}
    for name in sorted(W):
        prefix = name[:-len(".weight")]
        if any(prefix.endswith(l) for l in LINEARS):
            (qw, qz, sc, gi), deq = quantize_pack(W[name].float(), gen)
            out += [(prefix + ".qweight", qw), (prefix + ".qzeros", qz), (prefix + ".scales", sc),
                    (prefix + ".g_idx", gi)]
            ref[name] = deq
        else:
            h = W[name].half()
            out.append((name, h))
            ref[name] = h.float()
    ids = torch.randint(3, cfg["vocab_size"], (12,), generator=gen).tolist()
    logits = mf.forward(cfg, ref, ids)
    os.makedirs(OUT, exist_ok=True)
    qcfg = dict(cfg)
    qcfg["torch_dtype"] = "float16"
    qcfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": GS,
                                   "desc_act": True, "sym": False, "damp_percent": 0.01,
                                   "true_sequential": True, "static_groups": False,
                                   "checkpoint_format": "gptq"}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(qcfg, f, indent=2)
    mf.write_safetensors(os.path.join(OUT, "model.safetensors"), out)
    mf.write_safetensors(os.path.join(OUT, "expected.safetensors"), [
        ("input_ids", torch.tensor(ids, dtype=torch.int32)), ("logits", logits.to(torch.float32))])
    print(f"gptq_ext: {len(out)} tensors, logits {list(logits.shape)}")


if __name__ == "__main__":
    main()
