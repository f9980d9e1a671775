// The evaluate job over HTTP: a dataset uploaded, a model registered, the job
// run by a worker, its metrics checked against a reference computed here
// (reflm.mjs: the Llama equations in JavaScript, the Hugging Face tokenizer);
// field-level errors at POST; `refinery run` giving the same metrics without
// the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor, run, BIN } from './harness.mjs';
import { loadRef, score, toBf16 } from './reflm.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, other, root, dir, ref;

const rows = [
  { prompt: 'this is', response: 'the test' },
  { prompt: 'hi', response: 'test', split: 'validation' },
  { prompt: 'this', choices: ['is', 'test', 'hi!'], answer: 1 },
  { prompt: 'the', choices: ['test', 'hi'], answer: 0 },
  { prompt: 'test', choices: ['this is', 'hi', 'e'], answer: 2, split: 'validation' },
];
const jsonl = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'evaluate-'));
  dir = join(root, 'tiny');
  cpSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa'), dir, { recursive: true });
  const tokdir = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tokdir)) cpSync(join(tokdir, f), join(dir, f));
  ref = loadRef(dir);
  db = createDb();
  migrate(db);
  key = createKey(db, 'ev').key;
  other = createKey(db, 'ev-other').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

// The F32 checkpoint in dir rewritten as BF16 (each weight rounded to
// nearest even) into out.
function toBf16Checkpoint(from, out) {
  cpSync(from, out, { recursive: true });
  const buf = readFileSync(join(from, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const parts = [], h = {};
  let off = 0;
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = v.data_offsets;
    const src = buf.subarray(8 + n + a, 8 + n + b), dst = Buffer.alloc(src.length / 2);
    for (let i = 0; i < dst.length / 2; i++) {
      const f = new Float32Array([toBf16(src.readFloatLE(4 * i))]);
      dst.writeUInt16LE(new Uint32Array(f.buffer)[0] >>> 16, 2 * i);
    }
    h[name] = { dtype: 'BF16', shape: v.shape, data_offsets: [off, off + dst.length] };
    off += dst.length;
    parts.push(dst);
  }
  let hs = JSON.stringify(h);
  hs += ' '.repeat((8 - (hs.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hs.length));
  writeFileSync(join(out, 'model.safetensors'), Buffer.concat([len, Buffer.from(hs), ...parts]));
}

// The metrics computed here, from scratch, for the rows of a split.
function expected(split, m = ref, opts = {}) {
  const sel = rows.filter((r) => !split || (r.split ?? 'train') === split);
  let nll = 0, tokens = 0, acc = 0, accNorm = 0, mc = 0;
  for (const r of sel) {
    if (r.choices) {
      const ll = r.choices.map((c) => score(m, r.prompt, c, ' ', opts).sum);
      const norm = ll.map((v, i) => v / [...r.choices[i]].length);
      const argmax = (a) => a.indexOf(Math.max(...a));
      mc++;
      acc += argmax(ll) === r.answer;
      accNorm += argmax(norm) === r.answer;
    } else {
      const s = score(m, r.prompt, r.response, ' ', opts);
      nll -= s.sum;
      tokens += s.tokens;
    }
  }
  return { rows: sel.length, perplexity: Math.exp(nll / tokens), tokens, acc: acc / mc, acc_norm: accNorm / mc, mc };
}

async function finished(id) {
  return waitFor(async () => {
    const j = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
    return ['succeeded', 'failed', 'cancelled'].includes(j.status) && j;
  }, 60000, 100);
}

test('evaluate job: metrics equal an independent computation', async () => {
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=ev', jsonl, { 'content-type': 'application/x-ndjson' });
  assert.equal(up.status, 201, up.text);
  const m = await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny', path: dir });
  assert.equal(m.status, 201, m.text);

  for (const [model, split] of [['tiny', undefined], [m.json.id, 'validation']]) {
    const params = { model, dataset: up.json.id, metrics: ['perplexity', 'accuracy'] };
    if (split) params.split = split;
    const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params });
    assert.equal(r.status, 201, r.text);
    const j = await finished(r.json.id);
    assert.equal(j.status, 'succeeded', JSON.stringify(j));
    const want = expected(split);
    const got = j.result;
    assert.equal(got.rows, want.rows);
    assert.equal(got.perplexity_tokens, want.tokens);
    assert.ok(Math.abs(got.perplexity - want.perplexity) <= 1e-4 * want.perplexity, `${got.perplexity} vs ${want.perplexity}`);
    assert.ok(Math.abs(got.loss - Math.log(want.perplexity)) < 1e-4);
    assert.equal(got.multiple_choice_rows, want.mc);
    assert.equal(got.acc, want.acc);
    assert.equal(got.acc_norm, want.acc_norm);
    assert.equal(got.split, split ?? 'all');
    assert.equal(got.model_bytes > 0, true);
    // progress reached 1 and the metrics were an event
    const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${r.json.id}/events?limit=100`)).json.data;
    assert.ok(ev.some((e) => e.kind === 'metrics' && e.data.rows === want.rows));
    assert.equal(j.progress, 1);
  }

  // `refinery run` on local paths: the same numbers without the server
  const ds = join(root, 'ev.jsonl');
  writeFileSync(ds, jsonl);
  const jobFile = join(root, 'job.json');
  writeFileSync(jobFile, JSON.stringify({ type: 'evaluate', params: { model: dir, dataset: ds } }));
  const out = run(['run', jobFile, '--workdir', join(root, 'work')]);
  assert.equal(out.code, 0, out.stderr);
  const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const res = lines.at(-1);
  assert.equal(res.event, 'result');
  const want = expected();
  assert.ok(Math.abs(res.data.perplexity - want.perplexity) <= 1e-4 * want.perplexity);
  assert.equal(res.data.acc, want.acc);
  assert.ok(lines.some((l) => l.event === 'progress' && l.data.progress === 1));
});

test('evaluate job: a BF16 model with bf16 activations (the default) and f32 ones, each equal to its reference', async () => {
  const bdir = join(root, 'tiny-bf16');
  toBf16Checkpoint(dir, bdir);
  const bref = loadRef(bdir);
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=ev-bf16', jsonl, { 'content-type': 'application/x-ndjson' });
  assert.equal(up.status, 201, up.text);
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny-bf16', path: bdir })).status, 201);
  const got = {};
  for (const activations of [undefined, 'f32', 'bf16']) {
    const params = { model: 'tiny-bf16', dataset: up.json.id, metrics: ['perplexity'] };
    if (activations) params.activations = activations;
    const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params });
    assert.equal(r.status, 201, r.text);
    const j = await finished(r.json.id);
    assert.equal(j.status, 'succeeded', JSON.stringify(j));
    assert.equal(j.result.activations, activations ?? 'bf16');
    got[activations ?? 'default'] = j.result.perplexity;
  }
  const want32 = expected(undefined, bref).perplexity, want16 = expected(undefined, bref, { bf16: true }).perplexity;
  // the two references differ by more than the tolerance, so each match means something
  // (4e-4 apart on this fixture; each engine figure lands within 1e-7 of its own)
  assert.ok(Math.abs(want32 - want16) > 1e-4 * want32, `${want32} vs ${want16}`);
  assert.ok(Math.abs(got.f32 - want32) <= 1e-5 * want32, `f32: ${got.f32} vs ${want32}`);
  assert.ok(Math.abs(got.bf16 - want16) <= 1e-5 * want16, `bf16: ${got.bf16} vs ${want16}`);
  assert.equal(got.default, got.bf16);
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'tiny-bf16', dataset: up.json.id, activations: 'f16' } }), 422, 'params.activations');
});

test('evaluate job: bad params are refused at POST, naming the field', async () => {
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=ev2', jsonl, { 'content-type': 'application/x-ndjson' });
  const ds = up.json.id;
  await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny2', path: dir });
  const post = (params, k = key) => api(srv.base, k, 'POST', '/v1/jobs', { type: 'evaluate', params });
  assertProblem(assert, await post({ dataset: ds }), 422, 'params.model');
  assertProblem(assert, await post({ model: 'tiny2' }), 422, 'params.dataset');
  assertProblem(assert, await post({ model: 'nope', dataset: ds }), 422, 'params.model');
  assertProblem(assert, await post({ model: 'tiny2', dataset: 'ds_000000000000000000000000' }), 422, 'params.dataset');
  assertProblem(assert, await post({ model: 'tiny2', dataset: ds, split: 'dev' }), 422, 'params.split');
  assertProblem(assert, await post({ model: 'tiny2', dataset: ds, metrics: ['bleu'] }), 422, 'params.metrics[0]');
  assertProblem(assert, await post({ model: 'tiny2', dataset: ds, limit: 0 }), 422, 'params.limit');
  assertProblem(assert, await post({ model: 'tiny2', dataset: ds, extra: 1 }), 422, 'params.extra');
  // another tenant's model and dataset do not exist for this one
  assertProblem(assert, await post({ model: 'tiny2', dataset: ds }, other), 422, 'params.model');
  // a split with no rows fails the job with a clear error
  const r = await post({ model: 'tiny2', dataset: ds, split: 'test' });
  assert.equal(r.status, 201);
  const j = await finished(r.json.id);
  assert.equal(j.status, 'failed');
  assert.match(j.error, /no rows in split test/);
  assert.equal(j.attempts, 1);
});

test('refinery run: checkpoints in its folder, SIGINT stops, a second run resumes; artifacts', async () => {
  const jobFile = join(root, 'sleep.json');
  const work = join(root, 'sleep-work');
  writeFileSync(jobFile, JSON.stringify({ type: 'test.sleep', params: { ms: 3000, steps: 30 } }));
  const env = { ...process.env, REFINERY_TEST_JOBS: '1' };
  const p = spawn(BIN, ['run', jobFile, '--workdir', work], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  p.stderr.on('data', (d) => (err += d));
  const code = await new Promise((res) => {
    p.stdout.on('data', (d) => {
      out += d;
      if (/"event":"checkpoint"/.test(out) && !p.killed) p.kill('SIGINT');
    });
    p.on('exit', (c) => res(c));
  });
  assert.equal(code, 1, err);
  assert.match(err, /stopped at step/);
  const again = run(['run', jobFile, '--workdir', work], { REFINERY_TEST_JOBS: '1' });
  assert.equal(again.code, 0, again.stderr);
  const result = again.stdout.trim().split('\n').map((l) => JSON.parse(l)).at(-1);
  assert.equal(result.event, 'result');
  assert.equal(result.data.attempt, 2);
  assert.ok(result.data.resumed_from >= 1 && result.data.resumed_from < 30, JSON.stringify(result));

  writeFileSync(jobFile, JSON.stringify({ type: 'test.artifact', params: { content: 'hello', name: 'a.txt' } }));
  const art = run(['run', jobFile, '--workdir', join(root, 'art-work')], { REFINERY_TEST_JOBS: '1' });
  assert.equal(art.code, 0, art.stderr);
  const ev = art.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.event === 'artifact');
  assert.equal(ev.data.name, 'a.txt');
  assert.equal(ev.data.bytes, 5);
  // a model a job makes lands in the run's folder
  writeFileSync(jobFile, JSON.stringify({ type: 'test.model', params: { from: dir, name: 'made' } }));
  const mw = join(root, 'model-work');
  const made = run(['run', jobFile, '--workdir', mw], { REFINERY_TEST_JOBS: '1' });
  assert.equal(made.code, 0, made.stderr);
  const mev = made.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.event === 'model');
  assert.equal(mev.data.path, join(mw, 'models', 'made'));
  assert.ok(readdirSync(mev.data.path).includes('config.json'));
  // usage and params errors
  assert.equal(run(['run']).code, 2);
  writeFileSync(jobFile, JSON.stringify({ type: 'nope' }));
  assert.equal(run(['run', jobFile]).code, 2);
});
