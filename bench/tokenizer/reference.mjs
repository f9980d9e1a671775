// The reference's encode throughput on the same text bench_tokenizer.c
// builds (corpus lines joined by "\n", repeated to MB megabytes).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [dir, corpusPath, mbArg, roundsArg] = process.argv.slice(2);
const require = createRequire(path.resolve("tests/integration/package.json"));
const mod = await import(require.resolve("@huggingface/tokenizers"));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer; // the CommonJS build under require.resolve
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
);
const one = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length)
  .map((l) => JSON.parse(l) + "\n").join("");
const n = Buffer.byteLength(one);
const mb = Number(mbArg || 4), rounds = Number(roundsArg || 3);
const text = one.repeat(Math.floor((mb * 1e6) / n) + 1);
const bytes = Buffer.byteLength(text);
let best = Infinity, ntok = 0;
for (let r = 0; r < rounds; r++) {
  const t0 = process.hrtime.bigint();
  ntok = tok.encode(text, { add_special_tokens: false }).ids.length;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (dt < best) best = dt;
}
console.log(`bytes ${bytes} tokens ${ntok} seconds ${best.toFixed(4)} MB/s ${(bytes / best / 1e6).toFixed(3)}`);
