// GET /v1/job-types publishes the params tables the validators check; the
// published names are exactly the accepted ones (an unknown param's 422
// lists them), and every reference param of every job type, nested ones
// included, refused at POST with a problem whose detail says what is wrong
// and how to fix it (never an empty detail, never a server path).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, root, ds, model, testArtifact, noopJob, queuedTrain, types;

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'jobtypes-'));
  const dir = join(root, 'tiny');
  cpSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'types').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root });
  model = (await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny', path: dir })).json;
  ds = (await api(srv.base, key, 'POST', '/v1/datasets?name=qa', '{"prompt":"hi","response":"this is"}\n',
    { 'content-type': 'application/x-ndjson' })).json;
  // An artifact of another kind than teacher_cache, and a job that is no train job.
  const a = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.artifact', params: { content: 'x', name: 'x.txt' } })).json;
  noopJob = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop', params: {} })).json.id;
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${a.id}`)).json.status === 'succeeded');
  testArtifact = (await api(srv.base, key, 'GET', `/v1/jobs/${a.id}/artifacts`)).json.data[0].id;
  types = (await api(srv.base, key, 'GET', '/v1/job-types')).json;
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('GET /v1/job-types: every registered type with a description and its params', async () => {
  const ids = types.data.map((t) => t.id);
  for (const t of ['evaluate', 'train', 'teacher-cache', 'quantize', 'test.noop', 'test.sleep', 'test.fail', 'test.artifact', 'test.model'])
    assert.ok(ids.includes(t), `${t} in ${ids}`);
  assert.equal(types.has_more, false);
  for (const t of types.data) {
    assert.ok(t.description.length > 20, `${t.id} has a description`);
    assert.ok(t.params.length > 0, `${t.id} has params`);
  }
  const train = types.data.find((t) => t.id === 'train');
  const p = Object.fromEntries(train.params.map((x) => [x.name, x]));
  assert.deepEqual([p.dataset.required, p.dataset.ref], [true, 'dataset']);
  assert.equal(p.teacher_cache.ref, 'teacher_cache');
  assert.equal(p.seq_len.default, 512);
  assert.equal(p.seq_len.minimum, 2);
  assert.deepEqual(p.method.enum, ['lora', 'full']);
  const lr = p.optimizer.fields.find((f) => f.name === 'lr');
  assert.deepEqual([lr.default, lr.exclusive_minimum], [0.0002, true]);
  const q = Object.fromEntries(types.data.find((t) => t.id === 'quantize').params.map((x) => [x.name, x]));
  assert.equal(q.group_size.default, undefined, 'group_size has no fixed default: the model decides');
  assert.match(q.group_size.description, /-1/);
  assert.equal(q.adapter.ref, 'adapter');
  // one type alone, and an unknown one
  assert.deepEqual((await api(srv.base, key, 'GET', '/v1/job-types/train')).json, train);
  const nope = await api(srv.base, key, 'GET', '/v1/job-types/nope');
  assertProblem(assert, nope, 404);
  assert.match(nope.json.detail, /no job type 'nope'.*evaluate, train/);
  assert.equal((await api(srv.base, null, 'GET', '/v1/job-types')).status, 401);
});

test('the published params are the accepted ones: an unknown param lists exactly them', async () => {
  for (const t of types.data) {
    const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: t.id, params: { no_such_param: 1 } });
    assertProblem(assert, r, 422, 'params.no_such_param');
    const names = t.params.map((x) => x.name).join(', ');
    assert.ok(r.json.detail.endsWith(`known: ${names}`), `${t.id}: ${r.json.detail}`);
  }
});

// Valid params per type, to which one bad reference at a time is applied.
// A type with reference params that is not here fails the test: add it.
const base = () => ({
  evaluate: { model: 'tiny', dataset: ds.id },
  train: { student: 'tiny', dataset: ds.id },
  'teacher-cache': { teacher: 'tiny', dataset: ds.id },
  quantize: { model: 'tiny', dataset: ds.id },
  'test.noop': {},
  dataset: { teacher: 'tiny', task: { name: 'sums', seed_prompts: ['What is one plus two?'] } },
  hpo: { train: { student: 'tiny', dataset: ds.id }, space: { 'optimizer.lr': { type: 'log_float', low: 1e-4, high: 1e-2 } } },
  pipeline: { student: 'tiny', teacher: 'tiny', task: { name: 'sums', seed_prompts: ['What is one plus two?'] }, hpo: false },
});
// Params that apply only beside others (train's tokenizer with config).
const fixtureConfig = JSON.parse(readFileSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa/config.json'), 'utf8'));
const beside = () => ({
  'train.tokenizer': { student: undefined, method: 'full', config: fixtureConfig },
  'hpo.train.tokenizer': { train: { method: 'full', config: fixtureConfig, dataset: ds.id } },
  'pipeline.dataset': { task: undefined },
});

// Every reference in a table, with its dotted path: [path, kind].
function refs(params, prefix = '') {
  const out = [];
  for (const p of params) {
    const path = prefix + p.name;
    if (p.ref) out.push([path, p.ref]);
    if (p.fields) out.push(...refs(p.fields, path + '.'));
    if (p.items?.ref) out.push([path + '[0]', p.items.ref]);
  }
  return out;
}

function set(obj, path, value) {
  const m = /^(.*)\[0\]$/.exec(path);
  const keys = (m ? m[1] : path).split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = m ? [value] : value;
}

const howToFix = /POST \/v1\/|GET \/v1\/|give |register|upload|wait for/;

async function expectRefused(type, params, field, value, re) {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', { type, params });
  assertProblem(assert, r, 422, `params.${field}`);
  const d = r.json.detail;
  assert.ok(d.includes(value), `${type} ${field}: the detail names the value: ${d}`);
  assert.match(d, howToFix, `${type} ${field}: the detail says how to fix it: ${d}`);
  assert.doesNotMatch(d, new RegExp(root.replaceAll('/', '\\/')), 'no server path');
  if (re) assert.match(d, re);
  return d;
}

test('every reference of every job type: a 422 naming the field, with a detail that says how to fix it', async () => {
  let checked = 0;
  const kinds = new Set();
  for (const t of types.data) {
    const list = refs(t.params);
    if (!list.length) continue;
    assert.ok(base()[t.id], `the test knows valid params for ${t.id}`);
    for (const [path, kind] of list) {
      const params = { ...base()[t.id], ...(beside()[`${t.id}.${path}`] ?? {}) };
      for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
      const bogus = `nope_${kind}_${checked}`;
      set(params, path, bogus);
      await expectRefused(t.id, params, path, bogus);
      kinds.add(kind);
      checked++;
    }
  }
  assert.deepEqual([...kinds].sort(), ['adapter', 'dataset', 'model', 'teacher_cache']);
  assert.ok(checked >= 9, `${checked} references checked`);
});

test('a reference to an object of the wrong kind is refused at POST, saying which kind it is', async () => {
  // an artifact that is no teacher cache
  await expectRefused('train', { ...base().train, teacher_cache: testArtifact }, 'teacher_cache', testArtifact,
    /not a teacher cache but the test file 'x\.txt'/);
  // a job that makes no adapter, and a train job that has not succeeded
  await expectRefused('quantize', { ...base().quantize, adapter: noopJob }, 'adapter', noopJob, /test\.noop job/);
  queuedTrain = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { ...base().train, max_steps: 1, batch: 1, seq_len: 16 } })).json.id;
  const r = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { ...base().quantize, adapter: queuedTrain } });
  if (r.status === 422) {
    assert.match(r.json.detail, /has not succeeded|exported no adapter/);
    assert.match(r.json.detail, howToFix);
  } else {
    assert.equal(r.status, 201, r.text); // it finished first: the adapter exists
  }
  // a model given where a dataset goes
  await expectRefused('evaluate', { model: 'tiny', dataset: model.id }, 'dataset', model.id);
});

test('checked at POST: a dataset train cannot learn from (multiple choice only, no train rows)', async () => {
  const mc = (await api(srv.base, key, 'POST', '/v1/datasets?name=mc-only',
    '{"prompt":"2+2?","choices":["3","4"],"answer":1}\n{"prompt":"1+1?","choices":["2","5"],"answer":0}\n',
    { 'content-type': 'application/x-ndjson' })).json;
  const val = (await api(srv.base, key, 'POST', '/v1/datasets?name=val-only',
    '{"prompt":"hi","response":"this","split":"validation"}\n', { 'content-type': 'application/x-ndjson' })).json;
  for (const [type, params] of [['train', { student: 'tiny' }], ['teacher-cache', { teacher: 'tiny' }]]) {
    let d = await expectRefused(type, { ...params, dataset: mc.id }, 'dataset', mc.id, /multiple-choice/);
    assert.match(d, /2 of its 2 train rows/);
    d = await expectRefused(type, { ...params, dataset: 'val-only' }, 'dataset', val.id, /no rows in its train split/);
  }
  // evaluate scores multiple-choice rows: the same dataset is fine there
  assert.equal((await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'tiny', dataset: mc.id } })).status, 201);
});

test('a seq_len too short for every answer fails at once, saying how long the prompts are and what fits', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { student: 'tiny', dataset: ds.id, seq_len: 4, max_steps: 1 } })).json;
  const fin = await waitFor(async () => {
    const x = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).json;
    return ['succeeded', 'failed'].includes(x.status) ? x : null;
  }, 60000, 100);
  assert.equal(fin.status, 'failed');
  assert.equal(fin.attempts, 1, 'bad input is not retried');
  const m = /no training example has an answer within seq_len 4: the prompts of the 1 train rows take (\d+) to (\d+) tokens through the chat template; give seq_len of at least (\d+) .*, or (\d+) to keep every example whole/.exec(fin.error);
  assert.ok(m, fin.error);
  assert.equal(Number(m[3]), Number(m[1]) + 1);
  assert.ok(!fin.error.includes(srv.dataDir) && !fin.error.includes('/'), `no server path: ${fin.error}`);
  // the seq_len it names works
  const ok = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { student: 'tiny', dataset: ds.id, seq_len: Number(m[3]), max_steps: 1, batch: 1 } })).json;
  const fin2 = await waitFor(async () => {
    const x = (await api(srv.base, key, 'GET', `/v1/jobs/${ok.id}`)).json;
    return ['succeeded', 'failed'].includes(x.status) ? x : null;
  }, 60000, 100);
  assert.equal(fin2.status, 'succeeded', fin2.error);
});
