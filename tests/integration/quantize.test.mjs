// The quantize job over HTTP: GPTQ W4A16 of a registered model calibrated on an
// uploaded dataset; the checkpoint is registered as a model with its
// quantization_config and answers completions; bad input fails clearly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, waitFor, psql } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, ds;

const finished = (id) => waitFor(async () => {
  const x = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
  return ['succeeded', 'failed'].includes(x.status) ? x : null;
}, 120000, 200);

before(async () => {
  const root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'quant-'));
  const dir = join(root, 'base');
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'quant').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'base', path: dir })).status, 201);
  const rows = [];
  for (let i = 0; i < 8; i++) rows.push({ prompt: `tell me about the number ${i}`, response: `it is ${i}, one more than ${i - 1}` });
  for (let i = 0; i < 2; i++) rows.push({ prompt: `and ${i}?`, response: `${i}`, split: 'validation' });
  ds = (await api(srv.base, key, 'POST', '/v1/datasets?name=calib', rows.map((r) => JSON.stringify(r)).join('\n'),
    { 'content-type': 'application/x-ndjson' })).json;
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('GPTQ W4A16: a registered 4-bit model with its quantization_config, smaller, answering completions', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: {
    model: 'base', dataset: ds.id, calibration: { samples: 4, seq_len: 32, seed: 1 }, group_size: 32,
    evaluate: { perplexity: true },
  } })).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  const r = fin.result;
  assert.equal(r.method, 'gptq');
  assert.ok(r.compression > 3, `compression ${r.compression}`);
  assert.ok(r.quantized_bytes < r.source_bytes);
  assert.ok(r.resident_weight_bytes.quantized < r.resident_weight_bytes.source);
  assert.equal(r.layers.length, 14);
  // 4-bit GPTQ of this model moves perplexity by a few percent (44.9 → 45.9 in
  // the unit test's run), never by half: bound the change both ways.
  const ppl = r.evaluation.perplexity;
  assert.ok(ppl.source > 1, `source perplexity ${ppl.source}`);
  assert.ok(ppl.quantized / ppl.source < 1.25 && ppl.quantized / ppl.source > 0.8,
    `perplexity ${ppl.source} → ${ppl.quantized}`);
  // every layer's reconstruction error is small and finite (a wrong packing gives ~1)
  for (const l of r.layers) assert.ok(l.rel_err >= 0 && l.rel_err < 0.2, `${l.layer}: ${l.rel_err}`);
  const m = (await api(srv.base, key, 'GET', `/v1/models/${r.model}`)).json;
  assert.equal(m.source, j.id);
  assert.equal(m.name, `${j.id}-gptq`);
  assert.equal(m.quantization.quant_method, 'gptq');
  assert.equal(m.quantization.bits, 4);
  assert.equal(m.quantization.group_size, 32);
  assert.equal(m.quantization.sym, true);
  const files = (await api(srv.base, key, 'GET', `/v1/models/${m.id}/files`)).json.data.map((f) => f.name);
  for (const f of ['config.json', 'model.safetensors', 'quantize_config.json', 'tokenizer.json']) assert.ok(files.includes(f), f);
  const events = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events?limit=1000`)).json.data;
  assert.equal(events.filter((e) => e.kind === 'metrics').length, 14, 'one metrics event per layer');
  const c = await api(srv.base, key, 'POST', '/v1/completions', { model: m.id, prompt: 'the number', max_tokens: 4, temperature: 0 });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.choices.length, 1);
  assert.equal(c.json.usage.completion_tokens, 4);
});

test("adapter: a train job's PEFT adapter is merged into the base before quantizing", async () => {
  const t = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: {
    student: 'base', dataset: ds.id, lora: { r: 4, alpha: 8 }, optimizer: { name: 'muon', lr: 0.05 },
    batch: 2, seq_len: 128, max_steps: 3, export: ['adapter'], seed: 2,
  } })).json;
  const tf = await finished(t.id);
  assert.equal(tf.status, 'succeeded', tf.error);
  const params = { model: 'base', dataset: ds.id, calibration: { samples: 4, seq_len: 32, seed: 1 }, group_size: 32 };
  const plain = (await finished((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params })).json.id));
  const withA = (await finished((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { ...params, adapter: t.id } })).json.id));
  assert.equal(plain.status, 'succeeded', plain.error);
  assert.equal(withA.status, 'succeeded', withA.error);
  // The adapter moved the weights: the layers' reconstruction errors (not
  // their timings) and the packed integers differ from the plain run's.
  const errs = (r) => r.result.layers.map((l) => [l.layer, l.rel_err]);
  assert.equal(errs(withA).length, errs(plain).length);
  assert.ok(errs(withA).some(([, e], i) => e !== errs(plain)[i][1]), 'some layer error changed');
  const weights = async (r) => (await fetch(`${srv.base}/v1/models/${r.result.model}/files/model.safetensors`,
    { headers: { authorization: `Bearer ${key}` } }).then((x) => x.arrayBuffer()));
  const [wa, wp] = [Buffer.from(await weights(withA)), Buffer.from(await weights(plain))];
  assert.ok(wa.length > 0 && wp.length > 0);
  assert.ok(!wa.equals(wp), 'the merged adapter changed the quantized weights');
  const m = (await api(srv.base, key, 'GET', `/v1/models/${withA.result.model}`)).json;
  assert.equal(m.quantization.bits, 4);
  // A job without an adapter is refused at POST, naming the field.
  const bad = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { ...params, adapter: plain.id } });
  assert.equal(bad.status, 422, bad.text);
  assert.equal(bad.json.field, 'params.adapter');
});

test('bad input fails clearly and registers nothing', async () => {
  const before_ = psql(db, 'SELECT count(*) FROM models')[0][0];
  const quantized = psql(db, "SELECT id FROM models WHERE quantization IS NOT NULL LIMIT 1")[0][0];
  // a quantized model is refused at POST (its config.json says so), naming the field
  const again = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { model: quantized, dataset: ds.id, calibration: { samples: 2, seq_len: 16 } } });
  assert.equal(again.status, 422, again.text);
  assert.equal(again.json.field, 'params.model');
  assert.match(again.json.detail, /already quantized/);
  const cases = [
    [{ model: 'base', dataset: ds.id, calibration: { samples: 2, seq_len: 16 }, group_size: 48 }, /group/i],
    [{ model: 'base', dataset: ds.id, calibration: { samples: 500, seq_len: 16 } }, /samples|rows/i],
  ];
  for (const [params, re] of cases) {
    const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params })).json;
    const fin = await finished(j.id);
    assert.equal(fin.status, 'failed', JSON.stringify(params));
    assert.equal(fin.attempts, 1, 'bad input is not retried');
    assert.match(fin.error, re);
  }
  const at = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { model: 'base', dataset: ds.id, bits: 3 } });
  assert.equal(at.status, 422);
  assert.equal(at.json.field, 'params.bits');
  const nope = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { model: 'nope', dataset: ds.id } });
  assert.equal(nope.status, 422);
  assert.equal(nope.json.field, 'params.model');
  assert.equal(psql(db, 'SELECT count(*) FROM models')[0][0], before_);
});
