// `refinery run` without the server, where references are local paths: a
// train job's adapter (a folder) given to quantize as the folder or as a file
// in it, the merged-then-quantized weights differing from quantizing the base
// alone; a bad adapter path is an error that says what it wants.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let root, model, data;

// Run one job file; the events as parsed JSON lines.
function job(name, spec) {
  const file = join(root, `${name}.json`);
  writeFileSync(file, JSON.stringify(spec));
  const r = run(['run', file, '--workdir', join(root, name)]);
  const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { ...r, events, result: events.find((e) => e.event === 'result')?.data };
}

before(() => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'clirun-'));
  model = join(root, 'base');
  cpSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa'), model, { recursive: true });
  const tok = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(model, f));
  data = join(root, 'd.jsonl');
  const rows = [];
  for (let i = 0; i < 6; i++) rows.push({ prompt: `this is ${i}`, response: `the test ${i}` });
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

test('refinery run quantize with an adapter: as its folder and as a file in it', () => {
  const t = job('train', { type: 'train', params: { student: model, dataset: data, lora: { r: 4, alpha: 8 },
    optimizer: { lr: 0.05 }, batch: 2, seq_len: 96, max_steps: 3, seed: 1 } });
  assert.equal(t.code, 0, t.stderr);
  assert.deepEqual([...t.result.adapter].sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const adapter = join(root, 'train', 'adapter');
  const q = { model, dataset: data, calibration: { seq_len: 16 } };
  const plain = job('plain', { type: 'quantize', params: q });
  assert.equal(plain.code, 0, plain.stderr);
  const errs = (r) => r.result.layers.map((l) => l.rel_err);
  const got = {};
  for (const [name, ref] of [['folder', adapter], ['file', join(adapter, 'adapter_model.safetensors')]]) {
    const r = job(name, { type: 'quantize', params: { ...q, adapter: ref } });
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.equal(r.result.layers.length, 14);
    assert.notDeepEqual(errs(r), errs(plain), `${name}: the adapter changed the weights quantized`);
    assert.ok(r.events.some((e) => e.event === 'model'), 'the checkpoint is kept');
    got[name] = errs(r);
  }
  // both spellings merge the same adapter: the same quantized layers
  assert.deepEqual(got.folder, got.file);
  // a folder that holds no adapter
  const bad = job('bad', { type: 'quantize', params: { ...q, adapter: model } });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /is not a PEFT adapter folder \(no adapter_config\.json/);
  const gone = job('gone', { type: 'quantize', params: { ...q, adapter: join(root, 'nope') } });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /does not exist here \(refinery run takes local paths/);
});
