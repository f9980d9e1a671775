// One rule for names and one for objects in use (README "Names and objects
// in use"): a model's or a dataset's name is unique within its tenant and a
// job may name either by id or by name; neither can be deleted while a job
// that has not finished names it, whichever of the two it used.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, psql } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, other, dir;
const nd = { 'content-type': 'application/x-ndjson' };
const row = '{"prompt":"hi","response":"this is"}\n';

before(async () => {
  const root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'rules-'));
  dir = join(root, 'tiny');
  cpSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'rules').key;
  other = createKey(db, 'rules-other').key;
  // no workers: jobs stay queued, so they stay "in use"
  srv = await start(db, { REFINERY_WORKERS: '0', REFINERY_MODEL_ROOTS: root });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('names are unique within a tenant, for datasets as for models; another tenant may reuse them', async () => {
  const a = await api(srv.base, key, 'POST', '/v1/datasets?name=qa', row, nd);
  assert.equal(a.status, 201, a.text);
  const b = await api(srv.base, key, 'POST', '/v1/datasets?name=qa', row, nd);
  assertProblem(assert, b, 409, 'name');
  assert.match(b.json.detail, new RegExp(`a dataset named 'qa' exists already \\(${a.json.id}\\).*DELETE /v1/datasets/${a.json.id}`));
  assert.equal(psql(db, "SELECT count(*) FROM datasets WHERE name = 'qa'")[0][0], '1');
  assert.equal((await api(srv.base, other, 'POST', '/v1/datasets?name=qa', row, nd)).status, 201);
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny', path: dir })).status, 201);
  const m2 = await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny', path: dir });
  assertProblem(assert, m2, 409, 'name');
  assert.match(m2.json.detail, /names are unique within a tenant/);
});

test('a job may name a dataset by id or by name, as it names a model', async () => {
  const byName = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'tiny', dataset: 'qa' } });
  assert.equal(byName.status, 201, byName.text);
  // another tenant's name does not resolve
  const o = await api(srv.base, other, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'tiny', dataset: 'qa' } });
  assertProblem(assert, o, 422, 'params.model');
  await api(srv.base, key, 'POST', `/v1/jobs/${byName.json.id}/cancel`);
});

test('in use, whether named by id or by name: 409 naming the job, until it finishes', async () => {
  const ds = (await api(srv.base, key, 'POST', '/v1/datasets?name=busy', row, nd)).json;
  const model = (await api(srv.base, key, 'GET', '/v1/models')).json.data.find((m) => m.name === 'tiny');
  // the model by name (the case that used to slip through), the dataset by name
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { student: 'tiny', dataset: 'busy' } })).json;
  for (const [path, id] of [[`/v1/models/${model.id}`, model.id], [`/v1/datasets/${ds.id}`, ds.id]]) {
    const r = await api(srv.base, key, 'DELETE', path);
    assertProblem(assert, r, 409);
    assert.match(r.json.detail, new RegExp(`${id}.* is in use by job ${j.id}, which has not finished: cancel it \\(POST /v1/jobs/${j.id}/cancel\\)`));
  }
  // a job whose other params merely hold the same string does not count
  const ds2 = (await api(srv.base, key, 'POST', '/v1/datasets?name=lora', row, nd)).json;
  (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { student: 'tiny', dataset: 'qa', method: 'lora' } }));
  assert.equal((await api(srv.base, key, 'DELETE', `/v1/datasets/${ds2.id}`)).status, 200);
  // finished: free to go
  await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  assert.equal((await api(srv.base, key, 'DELETE', `/v1/datasets/${ds.id}`)).status, 200);
  for (const q of (await api(srv.base, key, 'GET', '/v1/jobs?status=queued')).json.data)
    await api(srv.base, key, 'POST', `/v1/jobs/${q.id}/cancel`);
  assert.equal((await api(srv.base, key, 'DELETE', `/v1/models/${model.id}`)).status, 200);
});
