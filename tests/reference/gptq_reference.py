#!/usr/bin/python3
"""GPTQ reference in torch, written from ../shared/FORMATS.md "GPTQ algorithm"
(the GPTQ paper's published algorithm, fasterquant), independent of the C code.

Writes tests/reference/fixtures/gptq/:
  layer.safetensors       W [256, 512] f32, H [512, 512] f32 (from random
                          activations with a few outlier channels and one dead
                          input channel)
  cfg_<name>.safetensors  for each configuration: q u8 [N, K], scales f32
                          [G, N], zeros i32 [G, N] (true zero points), g_idx
                          i32 [K], ties i32 [T + 1] (−1, then the flat n·K + k
                          indices whose pre-rounding value x/scale lay within
                          1e-5 of a .5 boundary), loss f32 [1]

Run with /usr/bin/python3 (Debian's python3-torch). Also importable: the
benchmark calls gptq() on a large layer.
"""
import json
import os
import struct
import sys
import time

import torch

TIE_EPS = 1e-5


def find_params(x, bits, sym):
    """Min/max quantizer over the last dimension of x [N, len] (FORMATS.md step 7).
    As the reference: xmin = −xmax only where xmin < 0."""
    maxq = 2 ** bits - 1
    zero_t = torch.zeros(x.shape[0], dtype=x.dtype)
    xmin = torch.minimum(x.min(1).values, zero_t)
    xmax = torch.maximum(x.max(1).values, zero_t)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    both = (xmin == 0) & (xmax == 0)
    xmin[both] = -1
    xmax[both] = +1
    scale = (xmax - xmin) / maxq
    if sym:
        zero = torch.full_like(scale, (maxq + 1) / 2)
    else:
        zero = torch.round(-xmin / scale)
    return scale, zero


def quantize(x, scale, zero, maxq, ties=None):
    pre = x / scale
    if ties is not None:
        ties.append(torch.abs(pre - torch.floor(pre) - 0.5) < TIE_EPS)
    return torch.clamp(torch.round(pre) + zero, 0, maxq)


def hessian(batches):
    """H = (2/n) Σ x xᵀ with n the number of sequences, accumulated as a
    running mean batch by batch. batches: list of [B, T, K]."""
    K = batches[0].shape[-1]
    H = torch.zeros(K, K)
    n = 0
    for inp in batches:
        tmp = inp.shape[0]
        inp = inp.reshape(-1, K).t().float()
        H *= n / (n + tmp)
        n += tmp
        inp = (2 / n) ** 0.5 * inp
        H += inp.matmul(inp.t())
    return H


def gptq(W, H, bits=4, group_size=128, sym=True, desc_act=False, static_groups=False,
         percdamp=0.01, blocksize=128, record_ties=False):
    W = W.clone().float()
    H = H.clone().float()
    N, K = W.shape
    maxq = 2 ** bits - 1
    per_channel = group_size == -1
    gs = K if per_channel else group_size
    if per_channel:
        scale, zero = find_params(W, bits, sym)        # before dead columns
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    groups = []
    if static_groups and not per_channel:
        for c in range(0, K, gs):
            groups.append(find_params(W[:, c:c + gs], bits, sym))
    perm = torch.arange(K)
    if desc_act:
        perm = torch.sort(torch.diag(H), descending=True, stable=True).indices
        W = W[:, perm]
        H = H[perm][:, perm]
    invperm = torch.argsort(perm)
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(K)
    H[idx, idx] += damp
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    Q = torch.zeros_like(W)
    loss = torch.zeros(N)
    scales, zeros = [], []
    ties_all = torch.zeros(N, K, dtype=torch.bool)
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        cnt = i2 - i1
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(cnt):
            col = i1 + i
            w = W1[:, i]
            d = Hinv1[i, i]
            if not per_channel:
                if static_groups:
                    scale, zero = groups[int(perm[col]) // gs]
                elif col % gs == 0:
                    # the layer's W (previous blocks' updates only), as the reference
                    scale, zero = find_params(W[:, col:col + gs], bits, sym)
                    scales.append(scale)
                    zeros.append(zero)
            t = [] if record_ties else None
            q = quantize(w, scale, zero, maxq, t)
            if record_ties:
                ties_all[:, col] = t[0]
            qv = scale * (q - zero)
            Q[:, col] = q
            loss += (w - qv) ** 2 / d ** 2
            err1 = (w - qv) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if per_channel:
        scales, zeros = [scale], [zero]
    elif static_groups:
        scales = [g[0] for g in groups]
        zeros = [g[1] for g in groups]
    if static_groups or per_channel:
        g_idx = torch.tensor([0 if per_channel else int(perm[j]) // gs for j in range(K)])
    else:
        g_idx = torch.tensor([j // gs for j in range(K)])
    Q = Q[:, invperm]
    g_idx = g_idx[invperm]
    ties_all = ties_all[:, invperm]
    return dict(q=Q.to(torch.uint8), scales=torch.stack(scales).float(),
                zeros=torch.stack(zeros).to(torch.int32), g_idx=g_idx.to(torch.int32),
                ties=ties_all, loss=float(loss.sum() / 2))


def st_write(path, tensors):
    """safetensors by hand (FORMATS.md "safetensors"): no extra packages."""
    names = {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


CONFIGS = {
    "sym_g128": dict(group_size=128, sym=True),
    "sym_g128_act": dict(group_size=128, sym=True, desc_act=True),
    "asym_g64_act": dict(group_size=64, sym=False, desc_act=True),
    "sym_perchannel": dict(group_size=-1, sym=True),
    "sym_g128_act_static": dict(group_size=128, sym=True, desc_act=True, static_groups=True),
}


def make_layer(N=256, K=512, seqs=16, seqlen=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(N, K, generator=g) * 0.05
    X = torch.randn(seqs, seqlen, K, generator=g)
    X[:, :, 17] *= 20.0      # outlier input channels, as in real activations
    X[:, :, 200] *= 12.0
    X[:, :, 333] *= 30.0
    X[:, :, 5] = 0.0         # a dead input
    H = hessian([X[i:i + 4] for i in range(0, seqs, 4)])
    return W, H


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "gptq")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    W, H = make_layer()
    st_write(os.path.join(out, "layer.safetensors"), {"W": W, "H": H})
    for name, cfg in CONFIGS.items():
        t0 = time.time()
        r = gptq(W, H, record_ties=True, **cfg)
        ties = torch.nonzero(r["ties"].reshape(-1)).reshape(-1).to(torch.int32)
        ties = torch.cat([torch.tensor([-1], dtype=torch.int32), ties])
        st_write(os.path.join(out, f"cfg_{name}.safetensors"),
                 {"q": r["q"], "scales": r["scales"], "zeros": r["zeros"],
                  "g_idx": r["g_idx"], "ties": ties,
                  "loss": torch.tensor([r["loss"]], dtype=torch.float32)})
        print(f"{name}: loss {r['loss']:.4f}, ties {len(ties) - 1}, {time.time() - t0:.2f}s")


if __name__ == "__main__":
    main()
