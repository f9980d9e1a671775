#!/usr/bin/python3
"""bench/gptq peer: the torch reference (tests/reference/gptq_reference.py)
on the layer bench/gptq/gptq.c wrote (same W and H), and the Hessian
accumulation timed on random activations of the same size. Prints seconds,
the ratio torch/refinery, and how many integers agree.

What the Hessian timing compares, plainly: refinery computes the upper
triangle of Σ x xᵀ (cblas_ssyrk, or banded sgemm: about K²·rows multiply-adds
per sequence); torch has no symmetric rank-k update, so its best is the full
product, fused into one in-place GEMM per sequence that also does the
reference's running-mean rescale: H.addmm_(xᵀ, x, beta=n/(n+1),
alpha=2/(n+1)) (2·K²·rows). That is what is timed over every sequence.
The reference as written (H *= …, a scaled copy of x, then H += xᵀ·x:
three passes) is timed on the first few sequences and reported per
sequence beside it. Threads: torch.set_num_threads(THREADS); run.sh also
sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS and runs this under both
OpenMP wait policies (bench/forward explains why), keeping the faster.
usage: gptq_torch.py LAYER.safetensors SEQS SEQLEN THREADS"""
import json
import os
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "reference"))
import gptq_reference as ref  # noqa: E402

DT = {"F32": torch.float32, "U8": torch.uint8}


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, e in hdr.items():
        if k == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[k] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + end]),
                                  dtype=DT[e["dtype"]]).reshape(e["shape"])
    return out


def main():
    path, seqs, seqlen, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    t = st_read(path)
    W, H, q_ours = t["W"], t["H"], t["q"]
    c_h, c_q = float(t["seconds"][0]), float(t["seconds"][1])
    K = W.shape[1]
    # Hessian, the best torch formulation: one fused in-place GEMM per sequence
    Hs = torch.zeros(K, K)
    th, n = 0.0, 0
    g = torch.Generator().manual_seed(0)
    for _ in range(seqs):
        x = torch.randn(seqlen, K, generator=g)
        t0 = time.time()
        Hs.addmm_(x.t(), x, beta=n / (n + 1), alpha=2 / (n + 1))
        n += 1
        th += time.time() - t0
    # the reference as written, on a few sequences: per-sequence seconds
    few = min(seqs, 4)
    Hr, tw, n = torch.zeros(K, K), 0.0, 0
    for _ in range(few):
        x = torch.randn(seqlen, K, generator=g).t()
        t0 = time.time()
        Hr *= n / (n + 1)
        n += 1
        x = (2 / n) ** 0.5 * x
        Hr += x.matmul(x.t())
        tw += time.time() - t0
    t0 = time.time()
    r = ref.gptq(W, H)
    tq = time.time() - t0
    same = (r["q"] == q_ours).float().mean().item()
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"torch     hessian {th:.2f} s  gptq {tq:.2f} s  total {th + tq:.2f} s  (OpenMP wait "
          f"{wait}; hessian as addmm_, {th / seqs:.3f} s a sequence; as the reference writes it "
          f"{tw / few:.3f} s a sequence)")
    print(f"ratio torch/refinery: hessian {th / c_h:.2f}x  gptq {tq / c_q:.2f}x  "
          f"total {(th + tq) / (c_h + c_q):.2f}x (target >= 1.0)")
    print(f"integers equal to the torch reference on the same W, H: {100 * same:.4f}%")


if __name__ == "__main__":
    main()
