#!/usr/bin/python3
"""Write a GGUF (version 3) that llama.cpp loads from a refinery bench
checkpoint: config.json + model.safetensors, dense (F32, BF16, F16) or GPTQ
W4A16 (FORMATS.md "GPTQ W4A16 checkpoint"). Part of bench/forward's
llama.cpp peer; numpy only.

    to_gguf.py CHECKPOINT_DIR OUT.gguf

What it writes, and why:
  - the layout of ggml/include/gguf.h: magic "GGUF", version, tensor and
    key-value counts, the key-values, the tensor infos (name, dims with the
    contiguous one first, ggml type, offset), then the data, every tensor at
    a multiple of general.alignment (32);
  - the llama hyper-parameters llama.cpp's loader reads (llama.*), and an
    SPM ("llama") vocabulary of vocab_size unique tokens — <unk>, <s>, </s>,
    the 256 byte tokens <0x00>..<0xFF> (its loader looks up <0x0A> for the
    newline), then placeholders. The bench feeds token ids, never text;
  - q_proj and k_proj rows permuted as llama.cpp's convert_hf_to_gguf.py
    does for llama (LlamaModel.permute): within each head, row j·hd/2 + i
    moves to 2i + j, because llama.cpp rotates adjacent pairs where
    Hugging Face rotates halves;
  - dense weights in their stored type (BF16 stays BF16), norms in F32;
  - GPTQ layers as Q4_0 holding the checkpoint's integers bit for bit: a
    Q4_0 block of 32 is an f16 scale d and 16 bytes, byte j holding
    element j in its low nibble and element j + 16 in its high nibble, the
    value (nibble − 8)·d (ggml-quants.c, dequantize_row_q4_0). A symmetric
    GPTQ layer (every zero 8) with groups a multiple of 32 and no act-order
    is exactly that, d = the group's f16 scale, nibble = q. Anything else is
    refused: it would not be the same weights.
"""
import json
import os
import struct
import sys

import numpy as np

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STR, GGUF_ARR = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16, GGML_Q4_0, GGML_BF16 = 0, 1, 2, 30
FTYPE = {GGML_F32: 0, GGML_F16: 1, GGML_Q4_0: 2, GGML_BF16: 32}  # llama_ftype
ALIGN = 32


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    dt = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32}
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        arr = mm[base + b:base + en].view(dt[e["dtype"]]).reshape(e["shape"])
        out[name] = (e["dtype"], arr)
    return out


def permute_rows(n_rows, n_head):
    """Row order of LlamaModel.permute: new row h·hd + 2i + j <- old h·hd + j·hd/2 + i."""
    hd = n_rows // n_head
    idx = np.arange(n_rows).reshape(n_head, 2, hd // 2).swapaxes(1, 2).reshape(-1)
    return idx


def q4_0_from_gptq(qweight, qzeros, scales, g_idx, name):
    K8, N = qweight.shape
    K = K8 * 8
    G = scales.shape[0]
    gs = K // G
    if K % G or gs % 32 or not np.array_equal(g_idx, np.arange(K) // gs):
        sys.exit(f"to_gguf: {name}: groups must be contiguous runs of a multiple of 32 for Q4_0")
    if not np.all(qzeros.view(np.uint32) == 0x77777777):
        sys.exit(f"to_gguf: {name}: not symmetric (Q4_0 needs every zero point 8)")
    shifts = (4 * np.arange(8, dtype=np.uint32))[None, :, None]
    q = ((qweight.view(np.uint32)[:, None, :] >> shifts) & 0xF).reshape(K, N).T  # [N, K]
    return q.astype(np.uint8), scales.view(np.uint16)  # scales [G, N] f16 bits


def pack_q4_0(q, d_bits, gs):
    """q [N, K] integers 0..15, d_bits [G, N] f16 bits -> Q4_0 rows [N, K/32·18] bytes."""
    N, K = q.shape
    nb = K // 32
    blocks = q.reshape(N, nb, 32)
    qs = (blocks[:, :, :16] | (blocks[:, :, 16:] << 4)).astype(np.uint8)
    d = np.repeat(d_bits.T, gs // 32, axis=1)  # block j of row n has its group's scale
    out = np.empty((N, nb, 18), dtype=np.uint8)
    out[:, :, 0:2] = d.astype("<u2").view(np.uint8).reshape(N, nb, 2)
    out[:, :, 2:] = qs
    return out.reshape(N, nb * 18)


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []  # (name, dims (contiguous first), ggml type, bytes)

    @staticmethod
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def add(self, key, typ, val):
        enc = {GGUF_U32: lambda v: struct.pack("<I", v), GGUF_I32: lambda v: struct.pack("<i", v),
               GGUF_F32: lambda v: struct.pack("<f", v), GGUF_BOOL: lambda v: struct.pack("<b", v),
               GGUF_STR: self.s}
        self.kv.append(self.s(key) + struct.pack("<I", typ) + enc[typ](val))

    def add_array(self, key, typ, vals):
        if typ == GGUF_STR:
            body = b"".join(self.s(v) for v in vals)
        else:
            body = np.asarray(vals, dtype={GGUF_F32: "<f4", GGUF_I32: "<i4"}[typ]).tobytes()
        self.kv.append(self.s(key) + struct.pack("<IIQ", GGUF_ARR, typ, len(vals)) + body)

    def tensor(self, name, dims, typ, data):
        self.tensors.append((name, dims, typ, np.ascontiguousarray(data).tobytes()))

    def write(self, path):
        infos, off = [], 0
        for name, dims, typ, data in self.tensors:
            infos.append(self.s(name) + struct.pack("<I", len(dims)) +
                         b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", typ, off))
            off += (len(data) + ALIGN - 1) // ALIGN * ALIGN
        head = b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        head += b"".join(self.kv) + b"".join(infos)
        head += b"\0" * (-len(head) % ALIGN)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(head)
            for _, _, _, data in self.tensors:
                f.write(data)
                f.write(b"\0" * (-len(data) % ALIGN))
        os.replace(tmp, path)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: to_gguf.py CHECKPOINT_DIR OUT.gguf")
    src, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(src, "config.json")))
    T = read_safetensors(os.path.join(src, "model.safetensors"))
    D, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KV, V = cfg.get("num_key_value_heads", H), cfg["vocab_size"]
    hd = cfg.get("head_dim", D // H)
    dense = {"F32": GGML_F32, "F16": GGML_F16, "BF16": GGML_BF16}
    w = Writer()
    main_type = None

    def norm(name, out_name):
        dt, a = T[name]
        f = (a.astype(np.uint32) << 16).view(np.float32) if dt == "BF16" else a.astype(np.float32)
        w.tensor(out_name, [a.shape[0]], GGML_F32, f)

    def linear(prefix, out_name, perm_heads=None):
        nonlocal main_type
        if prefix + ".qweight" in T:
            q, d = q4_0_from_gptq(T[prefix + ".qweight"][1], T[prefix + ".qzeros"][1],
                                  T[prefix + ".scales"][1], T[prefix + ".g_idx"][1], prefix)
            if perm_heads:
                p = permute_rows(q.shape[0], perm_heads)
                q, d = q[p], d[:, p]
            N, K = q.shape
            w.tensor(out_name, [K, N], GGML_Q4_0, pack_q4_0(q, d, K // d.shape[0]))
            main_type = GGML_Q4_0
        else:
            dt, a = T[prefix + ".weight"]
            if perm_heads:
                a = a[permute_rows(a.shape[0], perm_heads)]
            w.tensor(out_name, [a.shape[1], a.shape[0]], dense[dt], a)
            main_type = main_type or dense[dt]

    dt, emb = T["model.embed_tokens.weight"]
    w.tensor("token_embd.weight", [D, V], dense[dt], emb)
    norm("model.norm.weight", "output_norm.weight")
    if "lm_head.weight" in T or "lm_head.qweight" in T:
        linear("lm_head", "output.weight")
    for l in range(L):
        p = f"model.layers.{l}."
        norm(p + "input_layernorm.weight", f"blk.{l}.attn_norm.weight")
        norm(p + "post_attention_layernorm.weight", f"blk.{l}.ffn_norm.weight")
        linear(p + "self_attn.q_proj", f"blk.{l}.attn_q.weight", H)
        linear(p + "self_attn.k_proj", f"blk.{l}.attn_k.weight", KV)
        linear(p + "self_attn.v_proj", f"blk.{l}.attn_v.weight")
        linear(p + "self_attn.o_proj", f"blk.{l}.attn_output.weight")
        linear(p + "mlp.gate_proj", f"blk.{l}.ffn_gate.weight")
        linear(p + "mlp.up_proj", f"blk.{l}.ffn_up.weight")
        linear(p + "mlp.down_proj", f"blk.{l}.ffn_down.weight")
        if any(k.startswith(p) and k.endswith(".bias") for k in T):
            sys.exit("to_gguf: biases are not written (llama has none)")

    w.add("general.architecture", GGUF_STR, "llama")
    w.add("general.name", GGUF_STR, "refinery-bench")
    w.add("general.file_type", GGUF_U32, FTYPE[main_type])
    w.add("general.alignment", GGUF_U32, ALIGN)
    w.add("llama.context_length", GGUF_U32, cfg.get("max_position_embeddings", 2048))
    w.add("llama.embedding_length", GGUF_U32, D)
    w.add("llama.block_count", GGUF_U32, L)
    w.add("llama.feed_forward_length", GGUF_U32, cfg["intermediate_size"])
    w.add("llama.attention.head_count", GGUF_U32, H)
    w.add("llama.attention.head_count_kv", GGUF_U32, KV)
    w.add("llama.rope.dimension_count", GGUF_U32, hd)
    w.add("llama.rope.freq_base", GGUF_F32, float(cfg.get("rope_theta", 10000.0)))
    w.add("llama.attention.layer_norm_rms_epsilon", GGUF_F32, float(cfg.get("rms_norm_eps", 1e-5)))
    w.add("llama.vocab_size", GGUF_U32, V)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # LLAMA_TOKEN_TYPE_UNKNOWN, CONTROL, BYTE
    toks += [f"\u2581t{i}" for i in range(len(toks), V)]
    types += [1] * (V - len(types))  # NORMAL
    w.add("tokenizer.ggml.model", GGUF_STR, "llama")
    w.add_array("tokenizer.ggml.tokens", GGUF_STR, toks[:V])
    w.add_array("tokenizer.ggml.scores", GGUF_F32, [0.0] * V)
    w.add_array("tokenizer.ggml.token_type", GGUF_I32, types[:V])
    w.add("tokenizer.ggml.bos_token_id", GGUF_U32, 1)
    w.add("tokenizer.ggml.eos_token_id", GGUF_U32, 2)
    w.add("tokenizer.ggml.unknown_token_id", GGUF_U32, 0)
    w.add("tokenizer.ggml.add_bos_token", GGUF_BOOL, 0)
    w.write(out)


if __name__ == "__main__":
    main()
