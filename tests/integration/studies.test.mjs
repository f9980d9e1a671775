// Studies over HTTP: ask/tell, report → should_prune, concurrent asks (distinct
// numbers and points), every bad input a problem+json naming the field,
// tenants isolated, lists as the other resources page them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDb, migrate, createKey, start, api, assertProblem } from './harness.mjs';

let srv, key, other;
const SPACE = {
  lr: { type: 'log_float', low: 1e-5, high: 1e-1 },
  r: { type: 'int', low: 4, high: 64, step: 4 },
  alpha: { type: 'float', low: 0, high: 1 },
  opt: { type: 'categorical', choices: ['muon', 'adamw'] },
};
const post = (path, body, k = key, headers) => api(srv.base, k, 'POST', path, body, headers);
const get = (path, k = key) => api(srv.base, k, 'GET', path);
const create = async (extra = {}) => {
  const r = await post('/v1/studies', { name: 'demo', direction: 'minimize', space: SPACE, ...extra });
  assert.equal(r.status, 201, r.text);
  return r.json;
};

before(async () => {
  const db = createDb();
  migrate(db);
  key = createKey(db, 'optimisers').key;
  other = createKey(db, 'rivals').key;
  srv = await start(db, { REFINERY_WORKERS: '0' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('create: the definition normalised, defaults filled, the space in its order', async () => {
  const s = await create({ sampler: { name: 'random', seed: 11 } });
  assert.match(s.id, /^study_[0-9a-z]{24}$/);
  assert.equal(s.object, 'study');
  assert.deepEqual(Object.keys(s.space), ['lr', 'r', 'alpha', 'opt']);
  assert.equal(s.space.lr.low, 1e-5);
  assert.deepEqual(s.sampler, { name: 'random', n_startup: null, seed: 11 });
  assert.deepEqual(s.pruner, { name: 'median', n_startup_trials: 5, warmup_steps: 0 });
  assert.equal(s.best_trial, null);
  assert.deepEqual(s.trials, { total: 0, running: 0, complete: 0, pruned: 0, failed: 0 });
  const g = await get(`/v1/studies/${s.id}`);
  assert.deepEqual(g.json, s);
  // Without a seed, one is chosen and shown, so that the asks can be replayed.
  const t = await create();
  assert.equal(t.sampler.name, 'gp');
  assert.equal(typeof t.sampler.seed, 'number');
});

test('Idempotency-Key: the same study again is the same one (200); another is a 422', async () => {
  const body = { name: 'keyed', space: { x: { type: 'float', low: 0, high: 1 } } };
  const a = await post('/v1/studies', body, key, { 'Idempotency-Key': 'k1' });
  const b = await post('/v1/studies', body, key, { 'Idempotency-Key': 'k1' });
  assert.equal(a.status, 201);
  assert.equal(b.status, 200);
  assert.equal(a.json.id, b.json.id);
  assert.equal(a.json.sampler.seed, b.json.sampler.seed, 'the key fixes the seed');
  assertProblem(assert, await post('/v1/studies', { ...body, direction: 'maximize' }, key, { 'Idempotency-Key': 'k1' }), 422, 'Idempotency-Key');
  // Keys are per tenant.
  assert.equal((await post('/v1/studies', body, other, { 'Idempotency-Key': 'k1' })).status, 201);
});

test('bad studies: problem+json naming the field', async () => {
  const s = (body) => post('/v1/studies', body);
  assertProblem(assert, await s({ name: 'x' }), 422, 'space');
  assertProblem(assert, await s({ space: SPACE }), 422, 'name');
  assertProblem(assert, await s({ name: 'x', space: SPACE, direction: 'up' }), 422, 'direction');
  assertProblem(assert, await s({ name: 'x', space: SPACE, sampler: { name: 'cmaes' } }), 422, 'sampler.name');
  assertProblem(assert, await s({ name: 'x', space: SPACE, sampler: { seed: -1 } }), 422, 'sampler.seed');
  assertProblem(assert, await s({ name: 'x', space: SPACE, pruner: { name: 'hyperband' } }), 422, 'pruner.name');
  assertProblem(assert, await s({ name: 'x', space: SPACE, colour: 'red' }), 422, 'colour');
  assertProblem(assert, await s({ name: 'x', space: {} }), 422, 'space');
  const bad = await s({ name: 'x', space: { lr: { type: 'log_float', low: 0, high: 1 } } });
  assertProblem(assert, bad, 422);
  assert.match(bad.json.field, /^space\.lr/);
  assertProblem(assert, await s('{"name": '), 400);
  assertProblem(assert, await s([1, 2]), 422);
});

test('ask and tell: a trial runs until told; a finished trial cannot be told again', async () => {
  const s = await create({ sampler: { name: 'random', seed: 3 } });
  const a = await post(`/v1/studies/${s.id}/trials`);
  assert.equal(a.status, 201, a.text);
  assert.equal(a.json.number, 0);
  assert.equal(a.json.state, 'running');
  const p = a.json.params;
  assert.deepEqual(Object.keys(p), ['lr', 'r', 'alpha', 'opt']);
  assert.ok(p.lr >= 1e-5 && p.lr <= 1e-1);
  assert.ok(Number.isInteger(p.r) && p.r >= 4 && p.r <= 64 && p.r % 4 === 0);
  assert.ok(p.alpha >= 0 && p.alpha <= 1);
  assert.ok(['muon', 'adamw'].includes(p.opt));
  const t0 = `/v1/studies/${s.id}/trials/0`;
  assertProblem(assert, await post(`${t0}/complete`, {}), 422, 'value');
  assertProblem(assert, await post(`${t0}/complete`, { value: 'low' }), 422, 'value');
  assertProblem(assert, await post(`${t0}/complete`, { value: 1, extra: 2 }), 422, 'extra');
  assertProblem(assert, await post(`${t0}/fail`, { value: 1 }), 422, 'value');
  const c = await post(`${t0}/complete`, { value: 0.25 });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.state, 'complete');
  assert.equal(c.json.value, 0.25);
  assert.equal(typeof c.json.seconds, 'number');
  assertProblem(assert, await post(`${t0}/complete`, { value: 0.1 }), 409);
  assertProblem(assert, await post(`${t0}/fail`), 409);
  assertProblem(assert, await post(`${t0}/report`, { step: 1, value: 1 }), 409);
  assertProblem(assert, await post(`/v1/studies/${s.id}/trials/7/complete`, { value: 1 }), 404);
  assertProblem(assert, await post(`/v1/studies/${s.id}/trials/x/complete`, { value: 1 }), 404);
  assertProblem(assert, await post('/v1/studies/study_000000000000000000000000/trials'), 404);
  assertProblem(assert, await post('/v1/studies/nope/trials/0/complete', { value: 1 }), 404);
  // fail and prune
  const b = (await post(`/v1/studies/${s.id}/trials`)).json;
  const f = await post(`/v1/studies/${s.id}/trials/${b.number}/fail`);
  assert.equal(f.json.state, 'failed');
  assert.equal(f.json.value, null);
  const d = (await post(`/v1/studies/${s.id}/trials`)).json;
  await post(`/v1/studies/${s.id}/trials/${d.number}/report`, { step: 1, value: 3 });
  await post(`/v1/studies/${s.id}/trials/${d.number}/report`, { step: 2, value: 2 });
  const pr = await post(`/v1/studies/${s.id}/trials/${d.number}/prune`);
  assert.equal(pr.json.state, 'pruned');
  assert.equal(pr.json.value, 2, 'a pruned trial keeps its last intermediate value');
  assert.deepEqual(pr.json.intermediate, [{ step: 1, value: 3 }, { step: 2, value: 2 }]);
  const st = (await get(`/v1/studies/${s.id}`)).json;
  assert.deepEqual(st.trials, { total: 3, running: 0, complete: 1, pruned: 1, failed: 1 });
  assert.equal(st.best_trial.number, 0);
  assert.equal(st.best_trial.value, 0.25);
});

test('a point of the client\'s own: checked against the space', async () => {
  const s = await create();
  const ok = await post(`/v1/studies/${s.id}/trials`, { params: { lr: 0.001, r: 8, alpha: 0.5, opt: 'adamw' } });
  assert.equal(ok.status, 201, ok.text);
  assert.deepEqual(ok.json.params, { lr: 0.001, r: 8, alpha: 0.5, opt: 'adamw' });
  const bad = (params) => post(`/v1/studies/${s.id}/trials`, { params });
  assertProblem(assert, await bad({ lr: 0.5, r: 8, alpha: 0.5, opt: 'adamw' }), 422, 'params.lr');
  assertProblem(assert, await bad({ lr: 0.001, r: 6, alpha: 0.5, opt: 'adamw' }), 422, 'params.r');
  assertProblem(assert, await bad({ lr: 0.001, r: 8, alpha: 0.5, opt: 'sgd' }), 422, 'params.opt');
  assertProblem(assert, await bad({ lr: 0.001, r: 8, alpha: 0.5 }), 422, 'params.opt');
  assertProblem(assert, await bad({ lr: 0.001, r: 8, alpha: 0.5, opt: 'adamw', beta: 1 }), 422, 'params.beta');
  assertProblem(assert, await post(`/v1/studies/${s.id}/trials`, { point: {} }), 422, 'point');
  const after = (await get(`/v1/studies/${s.id}`)).json;
  assert.equal(after.trials.total, 1, 'refused asks leave no trial');
});

for (const sampler of ['random', 'tpe', 'gp']) {
  test(`concurrent asks (${sampler}): distinct numbers, distinct points`, async () => {
    const s = await create({ sampler: { name: sampler, seed: 5, n_startup: 2 } });
    // two told trials first, so that gp has something to model after its start-up
    for (let i = 0; i < 3; i++) {
      const a = await post(`/v1/studies/${s.id}/trials`);
      assert.equal(a.status, 201, a.text);
      await post(`/v1/studies/${s.id}/trials/${a.json.number}/complete`, { value: (a.json.params.lr * 100 - 1) ** 2 + a.json.params.alpha });
    }
    const asks = await Promise.all(Array.from({ length: 12 }, () => post(`/v1/studies/${s.id}/trials`)));
    for (const a of asks) assert.equal(a.status, 201, a.text);
    const numbers = asks.map((a) => a.json.number).sort((x, y) => x - y);
    assert.deepEqual(numbers, Array.from({ length: 12 }, (_, i) => i + 3));
    const points = new Set(asks.map((a) => JSON.stringify(a.json.params)));
    assert.equal(points.size, 12, 'parallel asks get different points');
    const trials = (await get(`/v1/studies/${s.id}/trials?limit=100`)).json;
    assert.equal(trials.data.length, 15);
    assert.equal(trials.data.filter((x) => x.state === 'running').length, 12);
  });
}

test('report: the median pruner stops a trial behind the completed ones', async () => {
  const s = await create({ sampler: { name: 'random', seed: 1 }, pruner: { n_startup_trials: 1, warmup_steps: 2 } });
  const ask = async () => (await post(`/v1/studies/${s.id}/trials`)).json.number;
  const rep = async (n, step, value) => {
    const r = await post(`/v1/studies/${s.id}/trials/${n}/report`, { step, value });
    assert.equal(r.status, 200, r.text);
    return r.json.should_prune;
  };
  const a = await ask();
  for (const [step, v] of [[1, 3], [2, 2], [3, 1]]) assert.equal(await rep(a, step, v), false, 'no completed trial yet');
  await post(`/v1/studies/${s.id}/trials/${a}/complete`, { value: 1 });
  const b = await ask();
  assert.equal(await rep(b, 1, 9), false, 'within warmup_steps');
  assert.equal(await rep(b, 2, 1.5), false, 'better than the median at step 2');
  assert.equal(await rep(b, 3, 1.5), true, 'behind the median at step 3 (best 1.5 > 1)');
  assert.equal(await rep(b, 3, 0.1), true, 'a repeated step keeps its first value');
  const bad = (body) => post(`/v1/studies/${s.id}/trials/${b}/report`, body);
  assertProblem(assert, await bad({ step: -1, value: 1 }), 422, 'step');
  assertProblem(assert, await bad({ step: 1.5, value: 1 }), 422, 'step');
  assertProblem(assert, await bad({ step: 4 }), 422, 'value');
  assertProblem(assert, await bad({ step: 4, value: 1, x: 1 }), 422, 'x');
  assertProblem(assert, await post(`/v1/studies/${s.id}/trials/${b}/report`), 400);
});

test('maximize: the best trial is the largest; max_trials caps the asks', async () => {
  const s = await create({ direction: 'maximize', sampler: { name: 'random' }, max_trials: 3 });
  for (const v of [0.2, 0.9, 0.5]) {
    const a = (await post(`/v1/studies/${s.id}/trials`)).json;
    await post(`/v1/studies/${s.id}/trials/${a.number}/complete`, { value: v });
  }
  assertProblem(assert, await post(`/v1/studies/${s.id}/trials`), 409);
  const g = (await get(`/v1/studies/${s.id}`)).json;
  assert.equal(g.best_trial.value, 0.9);
  assert.equal(g.best_trial.number, 1);
  assert.equal((await get(`/v1/studies/${s.id}/trials/1`)).json.value, 0.9);
  assertProblem(assert, await get(`/v1/studies/${s.id}/trials/3`), 404);
});

test('lists: newest first, limit/after pages; trials by number; tenants isolated', async () => {
  const mine = [];
  for (let i = 0; i < 3; i++) mine.push((await create({ name: `page-${i}` })).id);
  const p1 = (await get('/v1/studies?limit=2')).json;
  assert.equal(p1.object, 'list');
  assert.equal(p1.has_more, true);
  assert.deepEqual(p1.data.map((x) => x.id), [mine[2], mine[1]]);
  const p2 = (await get(`/v1/studies?limit=2&after=${mine[1]}`)).json;
  assert.equal(p2.data[0].id, mine[0]);
  assertProblem(assert, await get('/v1/studies?after=nope'), 422, 'after');
  assertProblem(assert, await get('/v1/studies?limit=0'), 422, 'limit');
  for (let i = 0; i < 3; i++) await post(`/v1/studies/${mine[0]}/trials`, { params: { lr: 0.001, r: 4 * (i + 1), alpha: 0, opt: 'muon' } });
  const tp = (await get(`/v1/studies/${mine[0]}/trials?limit=2&after=0`)).json;
  assert.deepEqual(tp.data.map((t) => t.number), [1, 2]);
  assert.equal(tp.has_more, false);
  // another tenant sees none of it
  assertProblem(assert, await get(`/v1/studies/${mine[0]}`, other), 404);
  assertProblem(assert, await get(`/v1/studies/${mine[0]}/trials`, other), 404);
  assertProblem(assert, await post(`/v1/studies/${mine[0]}/trials`, undefined, other), 404);
  assertProblem(assert, await post(`/v1/studies/${mine[0]}/trials/0/complete`, { value: 1 }, other), 404);
  assertProblem(assert, await post(`/v1/studies/${mine[0]}/trials/0/report`, { step: 0, value: 1 }, other), 404);
  assert.ok(!(await get('/v1/studies?limit=100', other)).json.data.some((x) => mine.includes(x.id)));
  assertProblem(assert, await get('/v1/studies', null), 401);
});
