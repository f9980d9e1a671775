"""Rewrite a safetensors file's F32 tensors as BF16 (round to nearest, ties
to even: the top 16 bits of the float after adding 0x7FFF plus the kept
part's lowest bit, as torch's float -> bfloat16 does). The safetensors
layout is FORMATS.md's: u64 little-endian header length, JSON header,
row-major little-endian data. Standard library only."""

import array
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def to_bf16(raw):
    u = array.array("I")
    u.frombytes(raw)
    if sys.byteorder != "little":
        u.byteswap()
    out = array.array("H", bytes(2 * len(u)))
    for i, x in enumerate(u):
        if (x & 0x7F800000) == 0x7F800000 and (x & 0x7FFFFF):  # NaN stays a (quiet) NaN
            out[i] = (x >> 16) | 0x40
        else:
            out[i] = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def convert(src, dst):
    header, data = read(src)
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    blobs, new = [], {}
    off = 0
    for k in names:
        h = header[k]
        b, e = h["data_offsets"]
        raw = data[b:e]
        dtype = h["dtype"]
        if dtype == "F32":
            raw, dtype = to_bf16(raw), "BF16"
        new[k] = {"dtype": dtype, "shape": h["shape"], "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if meta is not None:
        new["__metadata__"] = meta
    hj = json.dumps(new, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)  # the data section starts 8-aligned
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
