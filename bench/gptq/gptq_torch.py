#!/usr/bin/python3
"""bench/gptq peer: the torch reference (tests/reference/gptq_reference.py)
on the layer bench/gptq/gptq.c wrote (same W and H), and its Hessian
accumulation timed on random activations of the same size. Prints seconds,
the ratio torch/refinery, and how many integers agree.
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
    # Hessian: the reference's running-mean accumulation, one sequence a batch
    Hs = torch.zeros(K, K)
    th, n = 0.0, 0
    g = torch.Generator().manual_seed(0)
    for _ in range(seqs):
        x = torch.randn(seqlen, K, generator=g)
        t0 = time.time()
        Hs *= n / (n + 1)
        n += 1
        x = (2 / n) ** 0.5 * x
        Hs += x.t().matmul(x)
        th += time.time() - t0
    t0 = time.time()
    r = ref.gptq(W, H)
    tq = time.time() - t0
    same = (r["q"] == q_ours).float().mean().item()
    print(f"torch     hessian {th:.2f} s  gptq {tq:.2f} s  total {th + tq:.2f} s")
    print(f"ratio torch/refinery: hessian {th / c_h:.2f}x  gptq {tq / c_q:.2f}x  "
          f"total {(th + tq) / (c_h + c_q):.2f}x (target >= 1.0)")
    print(f"integers equal to the torch reference on the same W, H: {100 * same:.4f}%")


if __name__ == "__main__":
    main()
