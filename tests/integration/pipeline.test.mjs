// The pipeline job over HTTP on the tiny fixture models (a student and a
// different teacher of one tokenizer): every stage is a child job the API
// shows; the result has the paper's rows; the final 4-bit model answers chat
// completions; the report opens in headless Chromium; bad params are 422s
// naming the field; cancel cancels the stages; kill -9 of the worker running
// a stage, then a fresh worker: the pipeline ends with no stage run twice.
// The API server runs no workers itself: each test starts its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor, psql } from './harness.mjs';
import { inspectPage } from './browser.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const FAST = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '100', REFINERY_POLL_MS: '100' };
let db, srv, key, ds, extra, env, root;

const small = () => ({
  student: 'student', teacher: 'teacher', dataset: ds.id, hpo: false,
  train: { lora: { r: 4, alpha: 8 }, batch: 2, seq_len: 48, max_steps: 4, eval_every: 2 },
  quantize: { calibration: { samples: 4, seq_len: 32 }, group_size: 32 },
  evaluate: { datasets: [extra.id] },
});
const post = async (params) => {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'pipeline', params });
  assert.equal(r.status, 201, r.text);
  return r.json;
};
const job = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
const final = (id, ms = 300000) => waitFor(async () => {
  const j = await job(id);
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
}, ms, 250);
const children = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs?parent_id=${id}&limit=100`)).json.data;

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'pipeline-'));
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const [name, fx] of [['student', 'llama_f32_gqa'], ['teacher', 'llama3_bf16_tied']]) {
    cpSync(join(repo, 'tests', 'reference', 'fixtures', fx), join(root, name), { recursive: true });
    for (const f of readdirSync(tok)) cpSync(join(tok, f), join(root, name, f));
  }
  db = createDb();
  migrate(db);
  key = createKey(db, 'refiner').key;
  srv = await start(db, { ...FAST, REFINERY_WORKERS: '0', REFINERY_MODEL_ROOTS: root });
  env = { ...FAST, REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root, REFINERY_DATA_DIR: srv.dataDir };
  for (const name of ['student', 'teacher'])
    assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name, path: join(root, name) })).status, 201);
  const rows = [];
  for (let i = 0; i < 16; i++) rows.push({ prompt: `add ${i} and 1`, response: `${i + 1}` });
  for (let i = 0; i < 3; i++) rows.push({ prompt: `add ${i} and 2`, response: `${i + 2}`, split: 'validation' });
  for (let i = 0; i < 3; i++) rows.push({ prompt: `add ${i} and 3`, response: `${i + 3}`, split: 'test' });
  for (let i = 0; i < 4; i++) rows.push({ prompt: `pick ${i}`, choices: ['a', 'b', 'c', 'd'], answer: i % 4, response: ['a', 'b', 'c', 'd'][i % 4], split: 'test' });
  const up = async (name, text) => {
    const r = await api(srv.base, key, 'POST', `/v1/datasets?name=${name}`, text, { 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  ds = await up('sums', rows.map((r) => JSON.stringify(r)).join('\n'));
  const mc = [];
  for (let i = 0; i < 5; i++) mc.push({ prompt: `which is ${i % 3}?`, choices: ['0', '1', '2'], answer: i % 3 });
  extra = await up('world-test', mc.map((r) => JSON.stringify(r)).join('\n'));
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('pipeline with a dataset and hpo false: the paper\'s rows, a registered 4-bit model, the report', async () => {
  const w = await start(db, env, 'worker');
  let j, fin;
  try {
    j = await post(small());
    fin = await final(j.id);
  } finally {
    await w.stop();
  }
  assert.equal(fin.status, 'succeeded', fin.error);
  const r = fin.result;
  assert.deepEqual(r.rows.map((x) => x.variant), ['base', 'base-gptq', 'muon', 'muon-gptq', 'adamw', 'adamw-gptq', 'teacher']);
  assert.deepEqual(r.evaluation_datasets.map((d) => d.dataset), [ds.id, extra.id]);
  assert.equal(r.dataset.split, 'test');
  for (const row of r.rows) {
    for (const d of r.evaluation_datasets) {
      const a = row.accuracy[d.id];
      assert.ok(a.acc >= 0 && a.acc <= 1, `${row.variant} ${d.id}: ${JSON.stringify(a)}`);
    }
    assert.ok(row.perplexity > 1, `${row.variant} perplexity ${row.perplexity}`);
    assert.ok(row.model_bytes > 0 && row.resident_bytes >= row.model_bytes, JSON.stringify(row));
    assert.ok(row.decode_tokens_per_s > 0 && row.latency_ms_per_token > 0);
  }
  // the quantized rows: smaller, with their accuracy drop against their source
  const by = Object.fromEntries(r.rows.map((x) => [x.variant, x]));
  for (const [q, s] of [['base-gptq', 'base'], ['muon-gptq', 'muon'], ['adamw-gptq', 'adamw']]) {
    assert.ok(by[q].model_bytes < by[s].model_bytes / 2, `${q} ${by[q].model_bytes} vs ${by[s].model_bytes}`);
    for (const d of r.evaluation_datasets)
      assert.ok(Math.abs(by[q].accuracy_drop[d.id] - (by[s].accuracy[d.id].acc - by[q].accuracy[d.id].acc)) < 1e-9);
  }
  // the two trainings' loss curves, and a note that no search ran
  assert.deepEqual(r.training.map((t) => t.label), ['Muon', 'AdamW']);
  for (const t of r.training) assert.equal(t.steps.length, t.loss.length);
  assert.ok(r.notes.some((n) => /no hyper-parameter search/.test(n)));
  // stages are child jobs with parent_id, each ran once
  const kids = await children(j.id);
  assert.equal(kids.length, 2 + 3 + 7 * 2, kids.map((k) => k.type).join(','));
  for (const k of kids) {
    assert.equal(k.parent_id, j.id);
    assert.equal(k.status, 'succeeded');
    assert.equal(k.attempts, 1);
  }
  // the final model is registered and answers chat completions
  const m = (await api(srv.base, key, 'GET', `/v1/models/${r.final_model}`)).json;
  assert.equal(m.quantization.bits, 4);
  const c = await api(srv.base, key, 'POST', '/v1/chat/completions', { model: r.final_model, messages: [{ role: 'user', content: 'add 2 and 1' }], max_tokens: 4 });
  assert.equal(c.status, 200, c.text);
  // the report: an artifact and a page that renders
  const arts = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/artifacts`)).json.data;
  assert.ok(arts.some((a) => a.name === 'report.html' && a.kind === 'report'));
  const page = await fetch(`${srv.base}/v1/jobs/${j.id}/report`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-disposition'), /^inline/);
  const html = await page.text();
  const file = join(root, 'report.html');
  writeFileSync(file, html);
  const seen = await inspectPage(`file://${file}`, join(root, 'report.png'));
  assert.deepEqual(seen.problems, []);
  assert.equal(seen.svgs.length, 4); // accuracy, loss, size, latency (no search ran)
  for (const s of seen.svgs) assert.ok(s.width >= 400 && s.marks >= 5, JSON.stringify(s));
  assert.equal(seen.rows.filter((x) => x.length > 3).length, 7);
  // a job that is not a pipeline has no report: 404 naming it
  assertProblem(assert, await api(srv.base, key, 'GET', `/v1/jobs/${kids[0].id}/report`), 404);
});

test('bad params are 422s naming the field, before any stage exists', async () => {
  const cases = [
    [{ ...small(), task: { name: 't', seed_prompts: ['x'] } }, 'params.dataset'],
    [{ ...small(), dataset: undefined }, 'params.task'],
    [{ ...small(), student: 'nope' }, 'params.student'],
    [{ ...small(), train: { lora: { r: 0 } } }, 'params.train.lora.r'],
    [{ ...small(), train: { nonsense: 1 } }, 'params.train.nonsense'],
    [{ ...small(), quantize: { group_size: 48 } }, 'params.quantize.group_size'],
    [{ ...small(), hpo: 'yes' }, 'params.hpo'],
    [{ ...small(), hpo: { n_trials: 0 } }, 'params.hpo.n_trials'],
    [{ ...small(), evaluate: { datasets: ['ds_000000000000000000000000'] } }, 'params.evaluate.datasets[0]'],
    [{ ...small(), compare: { adamw: 'yes' } }, 'params.compare.adamw'],
  ];
  for (const [params, field] of cases) {
    for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
    const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'pipeline', params });
    assertProblem(assert, r, 422, field);
    assert.ok(r.json.detail.length > 10, r.json.detail);
  }
  assert.equal(psql(db, "SELECT count(*) FROM jobs WHERE type = 'pipeline' AND status = 'queued'")[0][0], '0');
});

test('cancel: the running stages are cancelled, then the pipeline', async () => {
  const w = await start(db, env, 'worker');
  try {
    const j = await post({ ...small(), train: { ...small().train, epochs: 1000, max_steps: 8000 } }); // long enough to be caught running (40 steps take 0.2 s)
    await waitFor(async () => (await children(j.id)).some((k) => k.type === 'train' && k.status === 'running'), 120000, 50);
    const c = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
    assert.equal(c.status, 200, c.text);
    const fin = await final(j.id, 120000);
    assert.equal(fin.status, 'cancelled');
    for (const k of await children(j.id)) assert.ok(['succeeded', 'cancelled'].includes(k.status), `${k.type} ${k.status}`);
  } finally {
    await w.stop();
  }
});

test('kill -9 of the worker running a stage: a new worker finishes the pipeline, no stage twice', async () => {
  let w = await start(db, env, 'worker');
  const j = await post({ ...small(), compare: { adamw: false }, train: { ...small().train, epochs: 100, max_steps: 800, checkpoint_every: 50 } }); // seconds: caught running
  try {
    await waitFor(async () => (await children(j.id)).some((k) => k.type === 'train' && k.status === 'running'), 120000, 50);
    await w.stop('SIGKILL');
    w = await start(db, env, 'worker');
    const fin = await final(j.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    const kids = await children(j.id);
    const keys = psql(db, `SELECT child_key FROM jobs WHERE parent_id = '${j.id}'`).map((x) => x[0]);
    assert.equal(new Set(keys).size, keys.length, 'each stage once');
    assert.equal(kids.length, 1 + 2 + 5 * 2);
    assert.ok(kids.some((k) => k.type === 'train' && k.attempts === 2), 'the killed stage was rescued');
    assert.deepEqual(fin.result.rows.map((x) => x.variant), ['base', 'base-gptq', 'muon', 'muon-gptq', 'teacher']);
  } finally {
    await w.stop();
  }
});
