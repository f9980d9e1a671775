#!/usr/bin/python3
"""Unpack a GPTQ checkpoint written by refinery, from the format description
alone (../shared/FORMATS.md "GPTQ W4A16 checkpoint"), and check that it
reproduces the engine's dequantized weights bit for bit.

usage: gptq_unpack.py CHECKPOINT.safetensors DUMP.safetensors
DUMP holds, for each layer prefix P in the checkpoint, "P.weight" f32 [N, K]:
what the engine computed. Exit 0 when every layer matches exactly.
"""
import json
import struct
import sys

import torch

DT = {"F32": torch.float32, "F16": torch.float16, "I32": torch.int32}


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DT[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out


def unpack_rows(words):
    """int32 words → their 8 nibbles, least significant first, along a new
    last axis; masked with & 0xF after the (arithmetic) shift."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    return (words.unsqueeze(-1) >> shifts) & 0xF


def dequantize(qweight, qzeros, scales, g_idx):
    K8, N = qweight.shape
    K = K8 * 8
    # qweight [K/8, N]: nibble b of row r is input channel 8r + b
    q = unpack_rows(qweight).permute(0, 2, 1).reshape(K, N)
    # qzeros [G, N/8] packed along N; stored value is zero − 1
    z = unpack_rows(qzeros).reshape(qzeros.shape[0], N) + 1
    g = g_idx.long()
    w = scales.float()[g] * (q - z[g]).float()    # [K, N]
    return w.t().contiguous()                      # [N, K]


def main():
    ckpt, dump = st_read(sys.argv[1]), st_read(sys.argv[2])
    prefixes = sorted(k[:-len(".qweight")] for k in ckpt if k.endswith(".qweight"))
    if not prefixes:
        print("no quantized layers found")
        return 1
    bad = 0
    for p in prefixes:
        w = dequantize(ckpt[p + ".qweight"], ckpt[p + ".qzeros"], ckpt[p + ".scales"],
                       ckpt[p + ".g_idx"])
        ref = dump[p + ".weight"]
        same = torch.equal(w.view(torch.int32), ref.view(torch.int32))
        diff = (w - ref).abs().max().item()
        print(f"{p}: {list(w.shape)} bit-identical={same} max|diff|={diff:.3e}")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
