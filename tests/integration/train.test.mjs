// The train job over HTTP: a registered student and teacher, an uploaded
// dataset, LoRA with Muon and distillation; the adapter comes back as PEFT
// artifacts and the merged checkpoint as a model of its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, ds;

before(async () => {
  const root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'train-'));
  const dir = join(root, 'student');
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'trainer').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'student', path: dir })).status, 201);
  // The knowledge teacher is another model of the same vocabulary (bf16, tied
  // embeddings), so distillation has something to distil.
  const tdir = join(root, 'teacher');
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama3_bf16_tied'), tdir, { recursive: true });
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(tdir, f));
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'teacher', path: tdir })).status, 201);
  const rows = [];
  for (let i = 0; i < 12; i++) rows.push({ prompt: `add ${i} and 1`, response: `${i + 1}` });
  for (let i = 0; i < 3; i++) rows.push({ prompt: `add ${i} and 2`, response: `${i + 2}`, split: 'validation' });
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=sums', rows.map((r) => JSON.stringify(r)).join('\n'),
    { 'content-type': 'application/x-ndjson' });
  assert.equal(up.status, 201, up.text);
  ds = up.json;
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('train: LoRA + Muon + KD; adapter artifacts in PEFT layout, merged model registered', async () => {
  const params = {
    student: 'student', teacher: 'teacher', dataset: ds.id,
    lora: { r: 4, alpha: 8 }, loss: { alpha: 0.5, temperature: 2 },
    optimizer: { name: 'muon', lr: 0.02 }, batch: 2, seq_len: 48, max_steps: 4, eval_every: 2,
    export: ['adapter', 'merged'], seed: 3,
  };
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params })).json;
  const fin = await waitFor(async () => {
    const x = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).json;
    return ['succeeded', 'failed'].includes(x.status) ? x : null;
  }, 120000, 200);
  assert.equal(fin.status, 'succeeded', fin.error);
  assert.equal(fin.result.steps, 4);
  assert.deepEqual([...fin.result.adapter].sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const events = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events?limit=1000`)).json.data;
  const metrics = events.filter((e) => e.kind === 'metrics').map((e) => e.data);
  assert.equal(metrics.length, 4);
  for (const m of metrics) for (const k of ['loss', 'ce', 'kl', 'lr', 'grad_norm', 'tokens_per_s']) assert.equal(typeof m[k], 'number', k);
  // a teacher that is not the student: the divergence is there from the first step
  assert.ok(metrics[0].kl > 1e-3, `first-step KL ${metrics[0].kl}`);
  // the loss is the paper's mix: α·T²·KL + (1−α)·CE with α 0.5, T 2
  for (const m of metrics) assert.ok(Math.abs(m.loss - (0.5 * 4 * m.kl + 0.5 * m.ce)) < 1e-3 * Math.max(1, m.loss), JSON.stringify(m));
  assert.ok(events.some((e) => e.kind === 'eval'));
  const arts = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/artifacts`)).json.data;
  assert.deepEqual(arts.map((a) => a.name).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const cfgArt = arts.find((a) => a.name === 'adapter_config.json');
  const cfg = await (await fetch(`${srv.base}/v1/artifacts/${cfgArt.id}/content`, { headers: { authorization: `Bearer ${key}` } })).json();
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 8);
  const m = (await api(srv.base, key, 'GET', `/v1/models/${fin.result.merged_model}`)).json;
  assert.equal(m.source, j.id);
  assert.equal(m.name, `${j.id}-merged`);
  assert.equal(m.architecture, 'llama');
  assert.equal(m.dtype, 'float32');
});

test('train params: references that do not resolve are 422s naming the field', async () => {
  const base = { student: 'student', dataset: ds.id, max_steps: 1 };
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { ...base, student: 'nope' } }), 422, 'params.student');
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { ...base, dataset: 'ds_000000000000000000000000' } }), 422, 'params.dataset');
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { ...base, teacher: 'missing', loss: { alpha: 1 } } }), 422, 'params.teacher');
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { ...base, optimizer: { name: 'sgd' } } }), 422, 'params.optimizer.name');
});

test('kill -9 mid-training: rescued, resumed from the checkpoint, the same adapter as a run straight through', async () => {
  const params = {
    student: 'student', dataset: ds.id, lora: { r: 4, alpha: 8 }, optimizer: { name: 'muon', lr: 0.02 },
    batch: 2, seq_len: 48, epochs: 10, max_steps: 40, checkpoint_every: 4, export: ['adapter'], seed: 5,
  };
  const FAST = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '100', REFINERY_DATA_DIR: srv.dataDir };
  const adapterSha = async (jobId) => {
    const arts = (await api(srv.base, key, 'GET', `/v1/jobs/${jobId}/artifacts`)).json.data;
    return arts.find((a) => a.name === 'adapter_model.safetensors').sha256;
  };
  const done = (id) => waitFor(async () => {
    const x = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
    return ['succeeded', 'failed'].includes(x.status) ? x : null;
  }, 120000, 100);
  // Straight through, on the server's own worker.
  const a = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params })).json;
  assert.equal((await done(a.id)).status, 'succeeded');
  // Interrupted: the server's worker is kept busy, so that a separate worker
  // process runs the job; that process is killed after a checkpoint.
  const busy = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 600000, steps: 1 } })).json;
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${busy.id}`)).json.status === 'running');
  const b = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params })).json;
  const w1 = await start(db, FAST, 'worker');
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${b.id}`)).json.progress >= 0.3, 60000, 20);
  w1.proc.kill('SIGKILL');
  await w1.exitedPromise;
  const w2 = await start(db, FAST, 'worker');
  try {
    const fin = await done(b.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    assert.equal(fin.attempts, 2);
    const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${b.id}/events?limit=1000`)).json.data;
    assert.ok(ev.some((e) => e.data.message === 'resumed from checkpoint'), 'it resumed rather than restarted: ' + JSON.stringify(ev.filter((e) => e.kind === 'log').map((e) => e.data)));
    assert.equal(await adapterSha(b.id), await adapterSha(a.id), 'bit-identical adapter');
  } finally {
    await w2.stop();
    await api(srv.base, key, 'POST', `/v1/jobs/${busy.id}/cancel`);
  }
});
