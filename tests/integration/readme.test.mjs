// The README's walk-through, as a newcomer types it: `refinery sample` makes
// a model and datasets; they are registered and uploaded by name; evaluate,
// train, quantize (with its defaults, which must fit a small model) and
// completions (on the model, on the train job's adapter, on the 4-bit
// model) all work with the params the README shows, and the tokenizer takes
// any text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDb, migrate, createKey, start, api, run, waitFor } from './harness.mjs';

let srv, key, root;
const nd = { 'content-type': 'application/x-ndjson' };
const done = (id) => waitFor(async () => {
  const x = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
  return ['succeeded', 'failed'].includes(x.status) ? x : null;
}, 180000, 200);

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'readme-'));
  const s = run(['sample', join(root, 'sample')]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /sample\/model +a Llama of 2 layers, hidden 64, vocabulary \d+ \(random weights\)/);
  const db = createDb();
  migrate(db);
  key = createKey(db, 'local').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('refinery sample: a model and datasets that register, upload and run every job type', async () => {
  const m = await api(srv.base, key, 'POST', '/v1/models', { name: 'sample', path: join(root, 'sample', 'model') });
  assert.equal(m.status, 201, m.text);
  assert.deepEqual([m.json.architecture, m.json.dtype], ['llama', 'float32']);
  const qa = await api(srv.base, key, 'POST', '/v1/datasets?name=qa', readFileSync(join(root, 'sample', 'qa.jsonl'), 'utf8'), nd);
  assert.deepEqual(qa.json.rows, { train: 32, validation: 8, test: 0 });
  const mc = await api(srv.base, key, 'POST', '/v1/datasets?name=mc', readFileSync(join(root, 'sample', 'mc.jsonl'), 'utf8'), nd);
  assert.equal(mc.json.multiple_choice, 12);

  // evaluate, by name
  const ev = await done((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'sample', dataset: 'mc' } })).json.id);
  assert.equal(ev.status, 'succeeded', ev.error);
  assert.equal(ev.result.multiple_choice_rows, 12);
  assert.ok(ev.result.acc >= 0 && ev.result.acc <= 1);
  // train: LoRA on the question/answer rows; the loss goes down
  const tr = await done((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: {
    student: 'sample', dataset: 'qa', optimizer: { lr: 0.02 }, batch: 4, seq_len: 32 } })).json.id);
  assert.equal(tr.status, 'succeeded', tr.error);
  const events = (await api(srv.base, key, 'GET', `/v1/jobs/${tr.id}/events?limit=1000`)).json.data;
  const losses = events.filter((e) => e.kind === 'metrics').map((e) => e.data.loss);
  assert.equal(losses.length, 8, 'one epoch of 32 rows, 4 a step');
  assert.ok(losses.at(-1) < losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);
  // quantize with its defaults: group_size and samples chosen from the model and the data
  const q = await done((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { model: 'sample', dataset: 'qa', adapter: tr.id } })).json.id);
  assert.equal(q.status, 'succeeded', q.error);
  assert.equal(q.result.calibration.samples, 32, 'every train row when there are fewer than 128');
  assert.equal(q.result.calibration.seq_len, 256, "capped by the model's max_position_embeddings");
  const qm = (await api(srv.base, key, 'GET', `/v1/models/${q.result.model}`)).json;
  assert.equal(qm.quantization.group_size, 64, '128 does not divide hidden 64: 64 does');
  // completions on the model, on the adapter, on the 4-bit model; any text encodes
  for (const model of ['sample', tr.id, q.result.model]) {
    const c = await api(srv.base, key, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'What is 2 plus 2? Ça va, 東京?' }], max_tokens: 5, temperature: 0 });
    assert.equal(c.status, 200, `${model}: ${c.text}`);
    assert.equal(c.json.model, model);
  }
});
