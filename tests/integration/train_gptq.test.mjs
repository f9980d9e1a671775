// GPTQ W4A16 models in training, as a new user meets them: a model quantized by
// a quantize job, then named as the knowledge teacher of a train job, or as its
// student (LoRA over the frozen 4-bit base, as PEFT trains on GPTQ models).
// Both used to kill the process with SIGFPE (status 136), taking `serve` down
// with them. Now both train and the loss falls; what a GPTQ student cannot do
// (full-parameter training, a merged export) and quantizing a quantized model
// are 422s at POST naming the field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor, run } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, ds, gptq, root, rows;

const finished = (id) => waitFor(async () => {
  const x = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
  return ['succeeded', 'failed', 'cancelled'].includes(x.status) ? x : null;
}, 120000, 200);

// Mean loss of the first and of the last epoch (4 steps each: 8 examples,
// batch 2), so both means are over the same examples.
async function lossByEpoch(id) {
  const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${id}/events?limit=1000`)).json.data;
  const loss = ev.filter((e) => e.kind === 'metrics').map((e) => e.data.loss);
  const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
  return { first: mean(loss.slice(0, 4)), last: mean(loss.slice(-4)), n: loss.length };
}

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'train-gptq-'));
  const dir = join(root, 'base');
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'gptq-train').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'base', path: dir })).status, 201);
  rows = [];
  for (let i = 0; i < 8; i++) rows.push({ prompt: `add ${i} and 1`, response: `${i + 1}` });
  for (let i = 0; i < 2; i++) rows.push({ prompt: `add ${i} and 2`, response: `${i + 2}`, split: 'validation' });
  ds = (await api(srv.base, key, 'POST', '/v1/datasets?name=sums', rows.map((r) => JSON.stringify(r)).join('\n'),
    { 'content-type': 'application/x-ndjson' })).json;
  const q = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: {
    model: 'base', dataset: ds.id, calibration: { samples: 4, seq_len: 32, seed: 1 }, group_size: 32,
  } })).json;
  const fin = await finished(q.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  gptq = fin.result.model;
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

const trainParams = (extra) => ({
  dataset: ds.id, lora: { r: 4, alpha: 16 }, optimizer: { name: 'adamw', lr: 0.02 },
  batch: 2, seq_len: 48, epochs: 3, seed: 4, ...extra,
});

test('a GPTQ model as the knowledge teacher: trains, and the loss falls', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: trainParams({
    student: 'base', teacher: gptq, loss: { alpha: 0.5, temperature: 2 },
  }) })).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  assert.equal(fin.attempts, 1);
  const l = await lossByEpoch(j.id);
  assert.equal(l.n, 12);
  assert.ok(l.last < l.first, `mean loss of the last epoch ${l.last} vs the first ${l.first}`);
  assert.ok(fin.result.kl > 0, 'a teacher term was computed');
});

test('a GPTQ model as the LoRA student over its frozen 4-bit base: trains, the loss falls, the adapter exports', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: trainParams({
    student: gptq, teacher: 'base', loss: { alpha: 0.5, temperature: 2 },
  }) })).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  const l = await lossByEpoch(j.id);
  assert.ok(l.last < l.first, `mean loss of the last epoch ${l.last} vs the first ${l.first}`);
  assert.deepEqual([...fin.result.adapter].sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const arts = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/artifacts`)).json.data;
  const cfgArt = arts.find((a) => a.name === 'adapter_config.json');
  const cfg = await (await fetch(`${srv.base}/v1/artifacts/${cfgArt.id}/content`, { headers: { authorization: `Bearer ${key}` } })).json();
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.target_modules.length, 7);
});

test('what a GPTQ model cannot do is a 422 at POST naming the field', async () => {
  const base = { student: gptq, dataset: ds.id, max_steps: 1 };
  const post = (type, params) => api(srv.base, key, 'POST', '/v1/jobs', { type, params });
  let r = await post('train', { ...base, export: ['adapter', 'merged'] });
  assertProblem(assert, r, 422, 'params.export');
  assert.match(r.json.detail, /GPTQ/);
  assert.ok(!r.json.detail.includes(root), 'no server path in the message');
  r = await post('train', { ...base, method: 'full' });
  assertProblem(assert, r, 422, 'params.method');
  assert.match(r.json.detail, /GPTQ/);
  r = await post('quantize', { model: gptq, dataset: ds.id, calibration: { samples: 2, seq_len: 16 } });
  assertProblem(assert, r, 422, 'params.model');
  assert.match(r.json.detail, /already quantized/);
  // nothing was queued for any of them
  const jobs = (await api(srv.base, key, 'GET', '/v1/jobs?limit=100')).json.data;
  assert.equal(jobs.filter((x) => x.status === 'queued').length, 0);
});

test('refinery run: quantize, then train with the 4-bit model as teacher and as student (was SIGFPE, status 136)', () => {
  const w = mkdtempSync(join(root, 'run-'));
  const data = join(w, 'ds.jsonl');
  writeFileSync(data, rows.map((x) => JSON.stringify(x)).join('\n') + '\n');
  const job = (name, type, params) => {
    const f = join(w, `${name}.json`);
    writeFileSync(f, JSON.stringify({ type, params }));
    return run(['run', f, '--workdir', join(w, name)]);
  };
  const q = job('q', 'quantize', { model: join(root, 'base'), dataset: data, calibration: { samples: 4, seq_len: 32, seed: 1 }, group_size: 32 });
  assert.equal(q.code, 0, q.stderr);
  const model = join(w, 'q', 'models', 'local-gptq');
  const small = { dataset: data, lora: { r: 4, alpha: 8 }, batch: 2, seq_len: 48, max_steps: 2 };
  for (const [name, p] of [['teacher', { student: join(root, 'base'), teacher: model }], ['student', { student: model }]]) {
    const t = job(name, 'train', { ...small, ...p });
    assert.equal(t.code, 0, `GPTQ ${name}: exit ${t.code}\n${t.stderr}`);
    assert.match(t.stdout, /"event":"result"/);
  }
  const m = job('merged', 'train', { ...small, student: model, export: ['merged'] });
  assert.equal(m.code, 2);
  assert.match(m.stderr, /params\.export: .*GPTQ/);
});
