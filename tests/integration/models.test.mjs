// Models: registering checkpoint folders under the configured roots, with the
// folder inspected first; every way out of the roots refused; files listed and
// served with download semantics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, symlinkSync, statSync, truncateSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, psql, waitFor } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const fixtures = join(repo, 'tests', 'reference', 'fixtures');
const tokenizer = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
let db, srv, key, other, root, outside;

// A checkpoint folder made from a fixture plus a tokenizer.
function folder(name, fixture, { tok = true } = {}) {
  const dir = join(root, name);
  cpSync(join(fixtures, fixture), dir, { recursive: true });
  if (tok) for (const f of readdirSync(tokenizer)) cpSync(join(tokenizer, f), join(dir, f));
  return dir;
}

// Parameter count and tensor bytes from safetensors headers, read here on our own.
function countTensors(dir) {
  let params = 0, bytes = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors') && x !== 'expected.safetensors')) {
    const buf = readFileSync(join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    for (const [k, v] of Object.entries(header)) if (k !== '__metadata__') params += v.shape.reduce((a, b) => a * b, 1);
    bytes += buf.length;
  }
  return { params, bytes };
}

before(async () => {
  const base = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'models-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  db = createDb();
  migrate(db);
  key = createKey(db, 'm').key;
  other = createKey(db, 'm-other').key;
  srv = await start(db, { REFINERY_WORKERS: '0', REFINERY_MODEL_ROOTS: `/nonexistent:${root}` });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

const register = (name, path, k = key) => api(srv.base, k, 'POST', '/v1/models', { name, path });

test('register a checkpoint: architecture, parameters, dtype, bytes, quantization', async () => {
  // The fixture's expected.safetensors is test data, not part of a checkpoint.
  const dir = folder('gqa', 'llama_f32_gqa');
  const r = await register('tiny-llama', dir);
  assert.equal(r.status, 201, r.text);
  const m = r.json;
  assert.match(m.id, /^mdl_[0-9a-z]{24}$/);
  assert.equal(m.object, 'model');
  assert.equal(m.name, 'tiny-llama');
  assert.equal(m.architecture, 'llama');
  assert.equal(m.dtype, 'float32');
  assert.equal(m.quantization, null);
  assert.equal(m.source, 'registered');
  const want = countTensors(dir);
  assert.equal(m.parameters, want.params);
  assert.equal(m.bytes, statSync(join(dir, 'model.safetensors')).size);
  assert.deepEqual((await api(srv.base, key, 'GET', `/v1/models/${m.id}`)).json, m);

  const sharded = folder('sharded', 'mistral_f32_sharded');
  const s = await register('tiny-mistral', sharded);
  assert.equal(s.status, 201, s.text);
  assert.equal(s.json.architecture, 'mistral');
  assert.equal(s.json.parameters, countTensors(sharded).params);
  assert.equal(s.json.bytes, statSync(join(sharded, 'model-00001-of-00002.safetensors')).size +
    statSync(join(sharded, 'model-00002-of-00002.safetensors')).size);
  const bf = await register('tiny-bf16', folder('bf16', 'llama3_bf16_tied'));
  assert.equal(bf.json.dtype, 'bfloat16');
  const q = folder('quant', 'qwen2_f16_bias');
  const cfg = JSON.parse(readFileSync(join(q, 'config.json')));
  cfg.quantization_config = { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: false, sym: true };
  writeFileSync(join(q, 'config.json'), JSON.stringify(cfg));
  const qr = await register('tiny-quant', q);
  assert.equal(qr.status, 201, qr.text);
  assert.deepEqual(qr.json.quantization, cfg.quantization_config);
  assert.equal(qr.json.dtype, 'float16');
});

test('refused, naming the problem, with nothing registered', async () => {
  const before_ = psql(db, 'SELECT count(*) FROM models')[0][0];
  // Outside the roots, directly, by "..", and by a symlink.
  cpSync(join(fixtures, 'llama_f32_gqa'), join(outside, 'escape'), { recursive: true });
  for (const f of readdirSync(tokenizer)) cpSync(join(tokenizer, f), join(outside, 'escape', f));
  symlinkSync(join(outside, 'escape'), join(root, 'link-out'));
  const linkedFile = folder('file-link', 'llama_f32_gqa');
  writeFileSync(join(outside, 'secret.txt'), 'not yours');
  symlinkSync(join(outside, 'secret.txt'), join(linkedFile, 'notes.txt'));
  const noTok = folder('no-tokenizer', 'llama_f32_gqa', { tok: false });
  const noCfg = folder('no-config', 'llama_f32_gqa');
  writeFileSync(join(noCfg, 'config.json'), '{"hidden_size": 8}');
  const trunc = folder('truncated', 'llama_f32_gqa');
  truncateSync(join(trunc, 'model.safetensors'), statSync(join(trunc, 'model.safetensors')).size - 100);
  const badHdr = folder('bad-header', 'llama_f32_gqa');
  const buf = readFileSync(join(badHdr, 'model.safetensors'));
  buf.write('[[[', 8); // the header is no longer a JSON object
  writeFileSync(join(badHdr, 'model.safetensors'), buf);
  const noWeights = join(root, 'no-weights');
  mkdirSync(noWeights);
  cpSync(join(fixtures, 'llama_f32_gqa', 'config.json'), join(noWeights, 'config.json'));
  const cases = [
    [join(outside, 'escape'), /not inside any of the model roots/],
    [`${root}/../outside/escape`, /may not contain '\.\.'/],
    [join(root, 'link-out'), /not inside any of the model roots/],
    [linkedFile, /notes\.txt' points outside the model roots/],
    ['relative/path', /must be absolute/],
    [join(root, 'does-not-exist'), /does not exist/],
    [join(root, 'gqa', 'config.json'), /is not a folder/],
    [noTok, /tokenizer/],
    [noCfg, /model_type/],
    [trunc, /truncat|exceed|beyond|past the end|size/i],
    [badHdr, /header|JSON/i],
    [noWeights, /safetensors/],
  ];
  for (const [path, re] of cases) {
    const r = await register(`bad-${Math.random()}`, path);
    assert.equal(r.status, 422, `${path}: ${r.text}`);
    assertProblem(assert, r, 422);
    assert.match(r.json.field, /^path/, r.text);
    assert.match(r.json.detail, re, `${path}: ${r.json.detail}`);
  }
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/models', { name: 'x' }), 422, 'path');
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/models', { path: join(root, 'gqa') }), 422, 'name');
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/models', { name: 'x', path: join(root, 'gqa'), extra: 1 }), 422, 'extra');
  assertProblem(assert, await register('tiny-llama', join(root, 'gqa')), 409, 'name');
  assert.equal(psql(db, 'SELECT count(*) FROM models')[0][0], before_);
  // No roots configured: registration by path is off.
  const s2 = await start(db, { REFINERY_WORKERS: '0', REFINERY_MODEL_ROOTS: '' });
  try {
    const r = await api(s2.base, key, 'POST', '/v1/models', { name: 'n', path: join(root, 'gqa') });
    assertProblem(assert, r, 422, 'path');
    assert.match(r.json.detail, /no model roots/);
  } finally {
    await s2.stop();
  }
});

test('files: listed by name, downloaded with ranges and ETags; nothing outside the folder', async () => {
  const m = (await api(srv.base, key, 'GET', '/v1/models?limit=100')).json.data.find((x) => x.name === 'tiny-llama');
  const files = await api(srv.base, key, 'GET', `/v1/models/${m.id}/files`);
  assert.equal(files.status, 200);
  const names = files.json.data.map((f) => f.name);
  assert.deepEqual(names, [...names].sort());
  for (const n of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(names.includes(n), n);
  const dir = join(root, 'gqa');
  assert.equal(files.json.data.find((f) => f.name === 'model.safetensors').bytes, statSync(join(dir, 'model.safetensors')).size);
  const h = { authorization: `Bearer ${key}` };
  const cfg = await fetch(`${srv.base}/v1/models/${m.id}/files/config.json`, { headers: h });
  assert.equal(cfg.status, 200);
  assert.equal(await cfg.text(), readFileSync(join(dir, 'config.json'), 'utf8'));
  const etag = cfg.headers.get('etag');
  assert.ok(etag);
  assert.equal((await fetch(`${srv.base}/v1/models/${m.id}/files/config.json`, { headers: { ...h, 'if-none-match': etag } })).status, 304);
  const part = await fetch(`${srv.base}/v1/models/${m.id}/files/model.safetensors`, { headers: { ...h, range: 'bytes=0-7' } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), readFileSync(join(dir, 'model.safetensors')).subarray(0, 8));
  for (const bad of ['..%2F..%2Fetc%2Fpasswd', '.hidden', 'nope.bin', '%2Fetc%2Fpasswd'])
    assertProblem(assert, await api(srv.base, key, 'GET', `/v1/models/${m.id}/files/${bad}`), 404);
  // Another tenant sees nothing.
  for (const p of [`/v1/models/${m.id}`, `/v1/models/${m.id}/files`, `/v1/models/${m.id}/files/config.json`])
    assertProblem(assert, await api(srv.base, other, 'GET', p), 404);
  assert.equal((await api(srv.base, other, 'GET', '/v1/models')).json.data.length, 0);
});

test('delete: 409 while a job uses it, then the registration goes and the files stay', async () => {
  const m = (await api(srv.base, key, 'GET', '/v1/models?limit=100')).json.data.find((x) => x.name === 'tiny-bf16');
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop', params: { model: m.id } })).json;
  assertProblem(assert, await api(srv.base, key, 'DELETE', `/v1/models/${m.id}`), 409);
  await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  const d = await api(srv.base, key, 'DELETE', `/v1/models/${m.id}`);
  assert.equal(d.status, 200);
  assert.deepEqual(d.json, { id: m.id, object: 'model.deleted', deleted: true });
  assertProblem(assert, await api(srv.base, key, 'GET', `/v1/models/${m.id}`), 404);
  assert.ok(statSync(join(root, 'bf16', 'model.safetensors')).size > 0);
});

test('a model a job makes is registered with the job as its source, and served', async () => {
  const src = folder('made-by-job', 'qwen2_f16_bias');
  const w = await start(db, { REFINERY_WORKERS: '1', REFINERY_DATA_DIR: srv.dataDir }, 'worker');
  try {
    const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.model', params: { from: src, name: 'job-made' } })).json;
    const done = await waitFor(async () => {
      const x = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).json;
      return ['succeeded', 'failed'].includes(x.status) ? x : null;
    });
    assert.equal(done.status, 'succeeded', done.error);
    const m = (await api(srv.base, key, 'GET', `/v1/models/${done.result.model_id}`)).json;
    assert.equal(m.source, j.id);
    assert.equal(m.name, 'job-made');
    assert.equal(m.architecture, 'qwen2');
    const f = await fetch(`${srv.base}/v1/models/${m.id}/files/config.json`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(f.status, 200);
    assert.equal(await f.text(), readFileSync(join(src, 'config.json'), 'utf8'));
    const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events`)).json.data;
    assert.ok(ev.some((e) => e.kind === 'model' && e.data.model_id === m.id));
    // The same name again: the job fails, nothing new is registered.
    const j2 = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.model', params: { from: src, name: 'job-made' } })).json;
    const d2 = await waitFor(async () => {
      const x = (await api(srv.base, key, 'GET', `/v1/jobs/${j2.id}`)).json;
      return ['succeeded', 'failed'].includes(x.status) ? x : null;
    });
    assert.equal(d2.status, 'failed');
    assert.equal(psql(db, "SELECT count(*) FROM models WHERE name = 'job-made'")[0][0], '1');
  } finally {
    await w.stop();
  }
});
