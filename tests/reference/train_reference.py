#!/usr/bin/python3
"""Writes the training reference under tests/reference/fixtures/train/.

Run with Debian's torch (`apt-get install -y python3-torch`):

    /usr/bin/python3 tests/reference/train_reference.py

An independent implementation in torch autograd, float64, of training steps
of the C trainer (engine/train.c) on the tiny fixtures: student
llama_f32_gqa with LoRA on every linear layer, teacher llama3_bf16_tied (same
vocabulary), batch of 2 sequences of 8 tokens with the prompt and the padding
masked. It writes

  adapter_init/    a PEFT adapter (A and B both random, so every gradient is
                   non-zero) that the C test imports as the starting point
  expected.safetensors:
    ids, targets                    I32 [2, 8] (target -1: masked)
    loss.<case>                     F64 [3] loss, ce, kl for each (alpha, T) case
    grad.<peft name>                gradient of every lora_A / lora_B (case kd)
    adamw.<peft name>               after one AdamW step (lr 1e-2, wd 0.1)
    muon.<peft name>                after one Muon step (original scale)
    muon_rms.<peft name>            after one Muon step (match_rms_adamw scale)
    full.<weight name>              full-parameter gradients (CE only) of a set of weights
    topk.*                          sparse-teacher loss cases on random logits
    steps.<case>.p0.<param>, steps.<case>.g<t>.<param>, steps.<case>.p<t>.<param>
                                    six optimiser steps on a fixed sequence of
                                    gradients (each drawn afresh, of varying size,
                                    so that momentum and bias correction matter):
                                    adamw (torch.optim.AdamW), adamw_clip (with
                                    torch.nn.utils.clip_grad_norm_ 1.0), muon and
                                    muon_rms (FORMATS.md "Muon" on the matrices,
                                    torch.optim.AdamW on a vector and on a matrix
                                    Muon must leave to AdamW); params after each
    train5.<opt>.loss               F64 [5] the kd loss (α 0.5, T 2) before each of
                                    five training steps from adapter_init
    train5.<opt>.<peft name>        the adapters after those five steps, with
                                    AdamW (lr 1e-2) or Muon (lr 2e-2), wd 0.1
    gptq_student.loss, .grad.<peft name>
                                    case kd with the GPTQ fixture gptq_ext as a LoRA
                                    student (adapter_init over its 4-bit base)
    gptq_teacher.loss, .grad.<peft name>
                                    case kd with llama_f32_gqa + adapter_init as the
                                    student and gptq_ext as the teacher

A GPTQ model enters the reference as its dequantized weights,
w[n, k] = scales[g_idx[k], n] · (q[k, n] − (qzeros[g_idx[k], n] + 1)), unpacked
by gptq_unpack.py from the format description (FORMATS.md "GPTQ W4A16
checkpoint"), in float64 from there on.

The forward pass follows the published Llama equations as make_fixtures.py
does (its helpers are reused); the backward is torch autograd; the Muon step
is written from the algorithm in FORMATS.md, without reference to the C code.
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import inv_freq, rmsnorm, rotate_half, write_safetensors  # noqa: E402
from gptq_unpack import dequantize  # noqa: E402

FIX = os.path.join(HERE, "fixtures")
OUT = os.path.join(FIX, "train")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PATHS = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
         "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
         "down_proj": "mlp.down_proj"}
R, ALPHA_LORA = 4, 8.0
ST = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = ST[v["dtype"]]
        raw = bytearray(data[b:e])
        if dt in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dt)
        else:
            t = torch.frombuffer(raw, dtype=dt)
        out[k] = t.reshape(v["shape"]).clone()
    return out


def load(name):
    d = os.path.join(FIX, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    raw = read_safetensors(os.path.join(d, "model.safetensors"))
    W = {}
    for k, v in raw.items():
        if k.endswith(".qweight"):
            p = k[:-len(".qweight")]
            W[p + ".weight"] = dequantize(v, raw[p + ".qzeros"], raw[p + ".scales"],
                                          raw[p + ".g_idx"]).to(torch.float64)
        elif not k.endswith((".qzeros", ".scales", ".g_idx")):
            W[k] = v.to(torch.float64)
    if "lm_head.weight" not in W:
        W["lm_head.weight"] = W["model.embed_tokens.weight"]
    return cfg, W


def forward(cfg, W, ids, lora=None, scale=1.0):
    """Final normed hidden states [B, T, dim] (logits are taken by the caller)."""
    B, T = ids.shape
    H, KV, hd, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][ids.long()]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq(cfg)[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    allowed = torch.arange(T)[None, :] <= torch.arange(T)[:, None]

    def lin(p, mod, h):
        y = h @ W[f"{p}{PATHS[mod]}.weight"].T
        if f"{p}{PATHS[mod]}.bias" in W:
            y = y + W[f"{p}{PATHS[mod]}.bias"]
        if lora is not None:
            A, Bm = lora[f"{p}{PATHS[mod]}.A"], lora[f"{p}{PATHS[mod]}.B"]
            y = y + scale * (h @ A.T) @ Bm.T
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(p, "q_proj", h).view(B, T, H, hd).transpose(1, 2)
        k = lin(p, "k_proj", h).view(B, T, KV, hd).transpose(1, 2)
        v = lin(p, "v_proj", h).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~allowed, float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(p, "o_proj", o)
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = lin(p, "gate_proj", h)
        u = lin(p, "up_proj", h)
        x = x + lin(p, "down_proj", torch.nn.functional.silu(g) * u)
    return rmsnorm(x, W["model.norm.weight"], eps)


def kd_loss(zs, zt, targets, alpha, T):
    """FORMATS.md: α·T²·mean KL(softmax(zt/T) ‖ softmax(zs/T)) + (1−α)·mean CE over answer tokens."""
    m = targets >= 0
    zs, tg = zs[m], targets[m].long()
    ce = torch.nn.functional.cross_entropy(zs, tg, reduction="mean")
    if zt is None:
        return ce, ce, torch.zeros((), dtype=zs.dtype)
    zt = zt[m]
    lq, lp = torch.log_softmax(zt / T, -1), torch.log_softmax(zs / T, -1)
    kl = (lq.exp() * (lq - lp)).sum(-1).mean()
    return alpha * T * T * kl + (1 - alpha) * ce, ce, kl


def ns5(G):
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + 1e-7)
    tr = G.shape[0] > G.shape[1]
    if tr:
        X = X.T
    for _ in range(5):
        A = X @ X.T
        Bm = b * A + c * A @ A
        X = a * X + Bm @ X
    return X.T if tr else X


def muon_step(p, g, lr, wd, scale, beta=0.95, M=None):
    """One Muon step from momentum buffer M (zero when None); returns (p, M)."""
    M = beta * (torch.zeros_like(g) if M is None else M) + (1 - beta) * g
    U = (1 - beta) * g + beta * M
    O = ns5(U)
    rows, cols = p.shape
    s = math.sqrt(max(1.0, rows / cols)) if scale == "original" else 0.2 * math.sqrt(max(rows, cols))
    return p * (1 - lr * wd) - lr * s * O, M


def adamw_step(p, g, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    m, v = (1 - b1) * g, (1 - b2) * g * g
    mh, vh = m / (1 - b1), v / (1 - b2)
    return p * (1 - lr * wd) - lr * mh / (vh.sqrt() + eps)


# Parameters of the multi-step optimiser cases: matrices taller than wide (NS5
# works on the transpose), wider than tall and square, which Muon updates; a
# vector, and a matrix flagged as an embedding, which Muon leaves to AdamW.
STEP_PARAMS = [("tall", (12, 4), True), ("wide", (4, 12), True), ("square", (8, 8), True),
               ("vec", (8,), False), ("emb", (10, 6), False)]
STEP_SIZES = [1.0, 0.3, 2.0, 0.05, 1.5, 0.1]  # gradient scale per step; 0.05 stays under the clip


def optimiser_steps():
    """Six steps of each optimiser on fixed gradients, every state in float64."""
    gen = torch.Generator().manual_seed(1234)
    out = []
    cases = {"adamw": ("adamw", None, 0.0), "adamw_clip": ("adamw", None, 1.0),
             "muon": ("muon", "original", 0.0), "muon_rms": ("muon", "match_rms_adamw", 0.0)}
    for case, (kind, scale, clip) in cases.items():
        p0 = {n: (torch.randn(sh, generator=gen, dtype=torch.float64) * 0.5).float().double()
              for n, sh, _ in STEP_PARAMS}
        grads = [{n: (torch.randn(sh, generator=gen, dtype=torch.float64) * STEP_SIZES[t]).float().double()
                  for n, sh, _ in STEP_PARAMS} for t in range(len(STEP_SIZES))]
        out += [(f"steps.{case}.p0.{n}", p0[n].float()) for n, _, _ in STEP_PARAMS]
        ps = {n: p0[n].clone().requires_grad_(True) for n, _, _ in STEP_PARAMS}
        muon_names = [n for n, _, m in STEP_PARAMS if m and kind == "muon"]
        adam_names = [n for n, _, _ in STEP_PARAMS if n not in muon_names]
        # lr 1e-2 for AdamW; Muon lr 2e-2 with its AdamW fallback at 3e-3.
        adam = torch.optim.AdamW([ps[n] for n in adam_names], lr=1e-2 if kind == "adamw" else 3e-3,
                                 betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
        M = {n: None for n in muon_names}
        for t, g in enumerate(grads, 1):
            out += [(f"steps.{case}.g{t}.{n}", g[n].float()) for n, _, _ in STEP_PARAMS]
            for n, _, _ in STEP_PARAMS:
                ps[n].grad = g[n].clone()
            if clip:
                torch.nn.utils.clip_grad_norm_([ps[n] for n, _, _ in STEP_PARAMS], clip)
            with torch.no_grad():
                for n in muon_names:
                    new, M[n] = muon_step(ps[n].detach(), ps[n].grad, 2e-2, 0.1, scale, M=M[n])
                    ps[n].copy_(new)
            adam.step()
            out += [(f"steps.{case}.p{t}.{n}", ps[n].detach().float()) for n, _, _ in STEP_PARAMS]
    return out


def train_steps(scfg, SW, zt, ids, targets, lora, peft, scale):
    """Five training steps (kd, α 0.5, T 2) from adapter_init with each optimiser."""
    out = []
    for opt in ("adamw", "muon"):
        params = {k: v.clone().requires_grad_(True) for k, v in lora.items()}
        adam = torch.optim.AdamW(list(params.values()), lr=1e-2, weight_decay=0.1) if opt == "adamw" else None
        M = {k: None for k in params}
        losses = []
        for _ in range(5):
            zs = forward(scfg, SW, ids, params, scale) @ SW["lm_head.weight"].T
            loss = kd_loss(zs, zt, targets, 0.5, 2.0)[0]
            losses.append(loss.item())
            for p in params.values():
                p.grad = None
            loss.backward()
            if adam:
                adam.step()
                continue
            with torch.no_grad():  # LoRA A and B are both matrices: all Muon
                for k, p in params.items():
                    new, M[k] = muon_step(p.detach(), p.grad, 2e-2, 0.1, "original", M=M[k])
                    p.copy_(new)
        out.append((f"train5.{opt}.loss", torch.tensor(losses, dtype=torch.float64)))
        out += [(f"train5.{opt}.{n}", params[k].detach().float()) for n, k in peft]
    return out


def topk_loss(zs, ids, logp, target, alpha, T, bucket):
    """Sparse teacher: q over the k tokens (+ the rest as one bucket)."""
    lt = logp / T
    if bucket:
        rest = max(1.0 - float(logp.exp().sum()), 0.0)
        lt = torch.cat([lt, torch.tensor([math.log(rest) / T], dtype=lt.dtype)]) if rest > 0 else lt
    lq = torch.log_softmax(lt, -1)
    lps = torch.log_softmax(zs / T, -1)
    lp = lps[ids]
    if bucket and lq.shape[0] > ids.shape[0]:
        p_rest = 1 - lps.exp()[ids].sum()
        lp = torch.cat([lp, torch.log(p_rest)[None]])
    kl = (lq.exp() * (lq - lp)).sum()
    ce = torch.nn.functional.cross_entropy(zs[None], torch.tensor([target]))
    return alpha * T * T * kl + (1 - alpha) * ce


def main():
    torch.manual_seed(7)
    os.makedirs(OUT, exist_ok=True)
    scfg, SW = load("llama_f32_gqa")
    tcfg, TW = load("llama3_bf16_tied")
    V = scfg["vocab_size"]
    B, T = 2, 8
    ids = torch.randint(0, V, (B, T), dtype=torch.int32)
    targets = torch.full((B, T), -1, dtype=torch.int32)
    targets[0, 3:7] = ids[0, 4:8]  # prompt of 4 tokens; answer predicted from position 3
    targets[1, 2:5] = ids[1, 3:6]  # then 2 padding positions
    # LoRA adapters, A and B both random (PEFT would start B at zero)
    lora, peft = {}, []
    for l in range(scfg["num_hidden_layers"]):
        for mod in TARGETS:
            w = SW[f"model.layers.{l}.{PATHS[mod]}.weight"]
            out_, in_ = w.shape
            A = (torch.rand(R, in_, dtype=torch.float64) * 2 - 1) / math.sqrt(in_)
            Bm = (torch.rand(out_, R, dtype=torch.float64) * 2 - 1) * 0.05
            key = f"model.layers.{l}.{PATHS[mod]}."
            lora[key + "A"], lora[key + "B"] = A.float().double(), Bm.float().double()
            peft.append((f"base_model.model.{key}lora_A.weight", key + "A"))
            peft.append((f"base_model.model.{key}lora_B.weight", key + "B"))
    ad = os.path.join(OUT, "adapter_init")
    os.makedirs(ad, exist_ok=True)
    json.dump({"peft_type": "LORA", "r": R, "lora_alpha": ALPHA_LORA, "target_modules": TARGETS,
               "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": "llama_f32_gqa",
               "use_rslora": False, "task_type": "CAUSAL_LM"}, open(os.path.join(ad, "adapter_config.json"), "w"), indent=2)
    write_safetensors(os.path.join(ad, "adapter_model.safetensors"), [(n, lora[k].float()) for n, k in peft])

    scale = ALPHA_LORA / R
    exp = [("ids", ids), ("targets", targets)]
    with torch.no_grad():
        zt = forward(tcfg, TW, ids) @ TW["lm_head.weight"].T
    cases = {"ce": (0.0, 1.0, False), "kd": (0.5, 2.0, True), "kl": (1.0, 1.0, True)}
    for name, (alpha, temp, teach) in cases.items():
        params = {k: v.clone().requires_grad_(True) for k, v in lora.items()}
        zs = forward(scfg, SW, ids, params, scale) @ SW["lm_head.weight"].T
        loss, ce, kl = kd_loss(zs, zt if teach else None, targets, alpha, temp)
        exp.append((f"loss.{name}", torch.tensor([loss.item(), ce.item(), kl.item()], dtype=torch.float64)))
        if name != "kd":
            continue
        loss.backward()
        for n, k in peft:
            g = params[k].grad
            exp.append((f"grad.{n}", g.float()))
            exp.append((f"adamw.{n}", adamw_step(lora[k], g, 1e-2, 0.1).float()))
            exp.append((f"muon.{n}", muon_step(lora[k], g, 1e-2, 0.1, "original")[0].float()))
            exp.append((f"muon_rms.{n}", muon_step(lora[k], g, 1e-2, 0.1, "match_rms_adamw")[0].float()))
    # full-parameter gradients, CE only, no adapters
    FW = {k: v.clone().requires_grad_(True) for k, v in SW.items() if k != "lm_head.weight"}
    FW["lm_head.weight"] = SW["lm_head.weight"].clone().requires_grad_(True)
    zs = forward(scfg, FW, ids) @ FW["lm_head.weight"].T
    kd_loss(zs, None, targets, 0.0, 1.0)[0].backward()
    for n in ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
              "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
              "model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight"]:
        exp.append((f"full.{n}", FW[n].grad.float()))
    # sparse teacher on random logits: k = 6, three rows
    for row in range(3):
        zs = (torch.randn(V, dtype=torch.float64) * 3).float().double()
        tl = torch.log_softmax(torch.randn(V, dtype=torch.float64) * 3, -1)
        top = torch.topk(tl, 6)
        tgt = int(torch.randint(0, V, (1,)))
        exp += [(f"topk.{row}.zs", zs.float()), (f"topk.{row}.ids", top.indices.int()),
                (f"topk.{row}.logp", top.values.float()), (f"topk.{row}.target", torch.tensor([tgt], dtype=torch.int32))]
        for mode in (0, 1):
            z = zs.clone().requires_grad_(True)
            loss = topk_loss(z, top.indices, top.values.float().double(), tgt, 0.7, 2.0, mode == 1)
            loss.backward()
            exp += [(f"topk.{row}.loss{mode}", torch.tensor([loss.item()], dtype=torch.float64)),
                    (f"topk.{row}.grad{mode}", z.grad.float())]
    # GPTQ W4A16 as a LoRA student and as a frozen teacher, case kd (α 0.5, T 2)
    gcfg, GW = load("gptq_ext")
    with torch.no_grad():
        zg = forward(gcfg, GW, ids) @ GW["lm_head.weight"].T
    for name, (cfg_s, W_s, z_t) in {"gptq_student": (gcfg, GW, zt),
                                    "gptq_teacher": (scfg, SW, zg)}.items():
        params = {k: v.clone().requires_grad_(True) for k, v in lora.items()}
        zs = forward(cfg_s, W_s, ids, params, scale) @ W_s["lm_head.weight"].T
        loss, ce, kl = kd_loss(zs, z_t, targets, 0.5, 2.0)
        exp.append((f"{name}.loss", torch.tensor([loss.item(), ce.item(), kl.item()], dtype=torch.float64)))
        loss.backward()
        for n, k in peft:
            exp.append((f"{name}.grad.{n}", params[k].grad.float()))
    exp += optimiser_steps()
    exp += train_steps(scfg, SW, zt, ids, targets, lora, peft, scale)
    DT = {torch.float64: "F64"}
    import make_fixtures
    make_fixtures.DTYPES.update(DT)
    write_safetensors(os.path.join(OUT, "expected.safetensors"), exp)
    print("wrote", OUT, "loss.kd", [e for e in exp if e[0] == "loss.kd"][0][1].tolist())


if __name__ == "__main__":
    main()
