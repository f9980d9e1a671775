// Jobs that run other jobs, without any model: test.parent submits test.noop
// or test.sleep children and waits for them. One worker is enough (the parent
// never holds it while children run); a parent killed right after submitting
// a child, before any checkpoint, does not submit it twice once rescued; a
// cancel of a waiting parent cancels its children and completes after them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDb, migrate, createKey, start, api, waitFor, assertProblem, psql } from './harness.mjs';

let db, srv, key, other;
const FAST = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '100', REFINERY_POLL_MS: '100' };
const get = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
const post = async (body) => {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', body);
  assert.equal(r.status, 201, r.text);
  return r.json;
};
const final = (id, ms = 60000) => waitFor(async () => {
  const j = await get(id);
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
}, ms, 50);
const children = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs?parent_id=${id}&limit=100`)).json.data;
const events = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}/events?limit=1000`)).json.data;

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'parents').key;
  other = createKey(db, 'someone-else').key;
  srv = await start(db, { ...FAST, REFINERY_WORKERS: '1' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('one worker: a parent of 4 children, 2 at a time, waits between them and finishes', async () => {
  const p = await post({ type: 'test.parent', params: { children: 4, parallel: 2, ms: 200 } });
  const fin = await final(p.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  assert.equal(fin.result.children.length, 4);
  assert.deepEqual(fin.result.children.map((c) => c.key), ['c0', 'c1', 'c2', 'c3']);
  for (const c of fin.result.children) assert.equal(c.status, 'succeeded');
  assert.ok(fin.result.runs >= 3, `parked and resumed (${fin.result.runs} runs)`);
  assert.equal(fin.attempts, 1, 'a park is not an attempt');
  const ev = await events(p.id);
  assert.ok(ev.some((e) => e.data.message === 'waiting for child jobs'), 'it waited in the queue');
  const kids = await children(p.id);
  assert.equal(kids.length, 4);
  for (const k of kids) {
    assert.equal(k.parent_id, p.id);
    assert.equal(k.type, 'test.sleep');
    assert.equal(k.status, 'succeeded');
    assert.equal(k.attempts, 1);
  }
  // Another tenant sees neither the parent nor its children.
  assert.equal((await api(srv.base, other, 'GET', `/v1/jobs?parent_id=${p.id}`)).json.data.length, 0);
  assert.equal((await api(srv.base, other, 'GET', `/v1/jobs/${p.id}`)).status, 404);
});

test('children that end while their parent still runs: it is queued again at once, not left waiting', async () => {
  const w = await start(db, { ...FAST, REFINERY_WORKERS: '1' }, 'worker');
  try {
    const p = await post({ type: 'test.parent', params: { children: 2, parallel: 1, linger_ms: 700 } });
    const fin = await final(p.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    const ev = await events(p.id);
    assert.ok(ev.some((e) => e.data.message === 'a child job ended meanwhile; queued again'),
      JSON.stringify(ev.map((e) => e.data.message ?? e.kind)));
  } finally {
    assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('children listed by parent_id and status=waiting; a bad parent_id is a 422', async () => {
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?parent_id=nope'), 422, 'parent_id');
  const r = await api(srv.base, key, 'GET', '/v1/jobs?status=waiting');
  assert.equal(r.status, 200);
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?status=parked'), 422, 'status');
});

test('kill -9 right after submitting a child, before any checkpoint: rescued, the child is not submitted twice', async () => {
  // The API server's own worker is kept busy, so the worker processes below run the parent.
  const busy = await post({ type: 'test.sleep', params: { ms: 600000, steps: 1 } });
  await waitFor(async () => (await get(busy.id)).status === 'running');
  try {
    const p = await post({ type: 'test.parent', params: { children: 3, parallel: 3, crash_after_submit: true } });
    const a = await start(db, { ...FAST, REFINERY_WORKERS: '1' }, 'worker');
    const gone = await a.exitedPromise;
    assert.equal(gone.signal, 'SIGKILL', 'the parent killed its own process');
    assert.equal((await children(p.id)).length, 1, 'one child was committed before the crash');
    const b = await start(db, { ...FAST, REFINERY_WORKERS: '1' }, 'worker');
    try {
      const fin = await final(p.id);
      assert.equal(fin.status, 'succeeded', fin.error);
      assert.equal(fin.attempts, 2, 'rescued once');
      const kids = await children(p.id);
      assert.equal(kids.length, 3);
      const keys = psql(db, `SELECT child_key, count(*) FROM jobs WHERE parent_id = '${p.id}' GROUP BY 1 ORDER BY 1`);
      assert.deepEqual(keys, [['c0', '1'], ['c1', '1'], ['c2', '1']]);
      for (const k of kids) assert.equal(k.status, 'succeeded');
    } finally {
      assert.equal((await b.stop()).code, 0, b.logs);
    }
  } finally {
    await api(srv.base, key, 'POST', `/v1/jobs/${busy.id}/cancel`);
    await final(busy.id);
  }
});

test('cancel of a waiting parent cancels its children and completes once they have stopped', async () => {
  const p = await post({ type: 'test.parent', params: { children: 3, parallel: 3, ms: 600000 } });
  await waitFor(async () => (await get(p.id)).status === 'waiting' && (await children(p.id)).some((k) => k.status === 'running'));
  const c = await api(srv.base, key, 'POST', `/v1/jobs/${p.id}/cancel`);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.cancel_requested, true);
  const fin = await final(p.id, 20000);
  assert.equal(fin.status, 'cancelled');
  const kids = await children(p.id);
  assert.equal(kids.length, 3);
  for (const k of kids) {
    assert.equal(k.status, 'cancelled', JSON.stringify(k));
    assert.equal(k.cancel_requested, true);
  }
  // Event ids are one sequence: the parent's final status comes after every child's.
  const last = (ev) => Math.max(...ev.filter((e) => e.kind === 'status' || /cancel/.test(e.data.message ?? '')).map((e) => e.id));
  const parentEnd = (await events(p.id)).filter((e) => e.kind === 'status' && e.data.status === 'cancelled');
  assert.equal(parentEnd.length, 1);
  for (const k of kids) assert.ok(last(await events(k.id)) < parentEnd[0].id, `${k.id} stopped before its parent ended`);
  assertProblem(assert, await api(srv.base, key, 'POST', `/v1/jobs/${p.id}/cancel`), 409);
});
