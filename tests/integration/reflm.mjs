// An independent reference for the suites that check model outputs over HTTP:
// the published Llama equations (RMSNorm, RoPE in the rotate-half convention,
// grouped-query causal attention, SwiGLU) in plain JavaScript doubles, on an
// F32 or BF16 safetensors checkpoint (BF16 widened exactly), and the tokenizer
// from @huggingface/tokenizers. With { bf16: true } every product with a
// weight takes its input rounded to bf16 first (round to nearest even), as a
// bf16 linear in PyTorch does. Small and slow on purpose; only for the tiny
// fixtures.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

function loadTensors(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const t = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (v.dtype !== 'F32' && v.dtype !== 'BF16') throw new Error(`reflm: ${name} is ${v.dtype}; only F32 and BF16 checkpoints`);
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    let data;
    if (v.dtype === 'F32') {
      data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    } else {
      const u = new Uint32Array(bytes.length / 2);
      for (let i = 0; i < u.length; i++) u[i] = bytes.readUInt16LE(2 * i) << 16;
      data = new Float32Array(u.buffer);
    }
    t[name] = { shape: v.shape, data };
  }
  return t;
}

export function loadRef(dir) {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const w = loadTensors(join(dir, 'model.safetensors'));
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const tok = new Tokenizer(tj, tc);
  return { cfg, w, tok, encode: (s) => tok.encode(s).ids };
}

// x (a double) as f32, then rounded to bf16, nearest even.
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
export function toBf16(x) {
  f32[0] = x;
  u32[0] = ((u32[0] + 0x7fff + ((u32[0] >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

const matvec = (W, x, rows, cols) => {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += W[r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
};

const rmsnorm = (x, w, eps) => {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * k * w[i]);
};

// Logits [T][vocab] for ids, every position.
export function forward(m, ids, opts = {}) {
  // every product with a weight, its input rounded first when asked
  const mv = opts.bf16 ? (W, x, rows, cols) => matvec(W, Array.from(x, toBf16), rows, cols) : matvec;
  const c = m.cfg, D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads;
  const hd = c.head_dim ?? D / H, F = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  const eps = c.rms_norm_eps, theta = c.rope_theta ?? 10000;
  const g = (n) => m.w[n].data;
  const rope = (v, pos) => {
    const out = Float64Array.from(v), half = hd / 2;
    for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / hd), cs = Math.cos(a), sn = Math.sin(a);
      out[i] = v[i] * cs - v[i + half] * sn;
      out[i + half] = v[i + half] * cs + v[i] * sn;
    }
    return out;
  };
  let xs = ids.map((id) => Float64Array.from(g('model.embed_tokens.weight').subarray(id * D, (id + 1) * D)));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const qs = [], ks = [], vs = [];
    xs.forEach((x, t) => {
      const h = rmsnorm(x, g(p + 'input_layernorm.weight'), eps);
      const q = mv(g(p + 'self_attn.q_proj.weight'), h, H * hd, D);
      const k = mv(g(p + 'self_attn.k_proj.weight'), h, KV * hd, D);
      qs.push([...Array(H)].map((_, i) => rope(q.subarray(i * hd, (i + 1) * hd), t)));
      ks.push([...Array(KV)].map((_, i) => rope(k.subarray(i * hd, (i + 1) * hd), t)));
      const v = mv(g(p + 'self_attn.v_proj.weight'), h, KV * hd, D);
      vs.push([...Array(KV)].map((_, i) => v.subarray(i * hd, (i + 1) * hd)));
    });
    xs = xs.map((x, t) => {
      const att = new Float64Array(H * hd);
      for (let i = 0; i < H; i++) {
        const kv = Math.floor(i / (H / KV));
        const sc = [];
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let j = 0; j < hd; j++) d += qs[t][i][j] * ks[s][kv][j];
          sc.push(d / Math.sqrt(hd));
        }
        const mx = Math.max(...sc), e = sc.map((v) => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let j = 0; j < hd; j++) att[i * hd + j] += (e[s] / z) * vs[s][kv][j];
      }
      const o = mv(g(p + 'self_attn.o_proj.weight'), att, D, H * hd);
      const x1 = x.map((v, i) => v + o[i]);
      const h = rmsnorm(x1, g(p + 'post_attention_layernorm.weight'), eps);
      const gt = mv(g(p + 'mlp.gate_proj.weight'), h, F, D), up = mv(g(p + 'mlp.up_proj.weight'), h, F, D);
      const a = gt.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]);
      const dn = mv(g(p + 'mlp.down_proj.weight'), a, D, F);
      return x1.map((v, i) => v + dn[i]);
    });
  }
  const head = m.w['lm_head.weight'] ? g('lm_head.weight') : g('model.embed_tokens.weight');
  return xs.map((x) => mv(head, rmsnorm(x, g('model.norm.weight'), eps), V, D));
}

export function logSoftmax(row) {
  const mx = Math.max(...row);
  let z = 0;
  for (const v of row) z += Math.exp(v - mx);
  const lse = mx + Math.log(z);
  return Array.from(row, (v) => v - lse);
}

// Σ log p(target tokens | context) as lm-evaluation-harness splits them:
// the tokens of context+delim+target past the context's.
export function score(m, context, target, delim = ' ', opts = {}) {
  const ctx = m.encode(context), whole = m.encode(context + delim + target);
  const lg = forward(m, whole, opts);
  let sum = 0;
  for (let i = ctx.length; i < whole.length; i++) sum += logSoftmax(lg[i - 1])[whole[i]];
  return { sum, tokens: whole.length - ctx.length };
}
