// The API process's cache of job objects (service/job_cache.h) over the real
// server: a change made anywhere is seen, a client's own acknowledged write
// and the events it saw are never followed by an older job, another tenant
// never gets a cached job, and a change made while the process could not
// listen (PostgreSQL restarted, the process kept out meanwhile) is read from
// the database afterwards, not served stale from memory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { createDb, migrate, createKey, start, api, waitFor, psql, assertProblem } from './harness.mjs';

const root = resolve(import.meta.dirname, '..', '..');

let db, srv, key, other;
before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'cache-a').key;
  other = createKey(db, 'cache-b').key;
  srv = await start(db, { REFINERY_WORKERS: '2' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

const get = async (k, id) => api(srv.base, k, 'GET', `/v1/jobs/${id}`);

test('a change by another writer is seen, and never undone by a later read', async () => {
  // runnable only in an hour: no worker claims it, so only this test changes it
  const id = 'job_' + [...randomBytes(24)].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
  psql(db, `INSERT INTO jobs (id, tenant_id, type, params, priority, run_after) SELECT '${id}', id, 'test.noop',
    '{}', -5, now() + interval '1 hour' FROM tenants WHERE name = 'cache-a'`);
  const j = { id };
  for (let i = 0; i < 5; i++) assert.equal((await get(key, j.id)).json.priority, -5);
  psql(db, `UPDATE jobs SET priority = 7, metadata = '{"by":"psql"}' WHERE id = '${j.id}'`);
  await waitFor(async () => (await get(key, j.id)).json.priority === 7, 10000, 10);
  for (let i = 0; i < 20; i++) {
    const g = (await get(key, j.id)).json;
    assert.equal(g.priority, 7);
    assert.deepEqual(g.metadata, { by: 'psql' });
  }
  // another tenant: not found, cached or not; the owner still gets it
  assertProblem(assert, await get(other, j.id), 404);
  assert.equal((await get(key, j.id)).status, 200);
  const list = (await api(srv.base, other, 'GET', '/v1/jobs')).json;
  assert.equal(list.data.length, 0);
});

test('own write acknowledged: the next GET shows it', async () => {
  for (let i = 0; i < 5; i++) {
    const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 60000, steps: 600 } })).json;
    await waitFor(async () => (await get(key, j.id)).json.status === 'running', 10000, 20);
    for (let k = 0; k < 3; k++) assert.equal((await get(key, j.id)).json.cancel_requested, false);
    const c = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.cancel_requested, true);
    const g = (await get(key, j.id)).json;
    assert.equal(g.cancel_requested, true, 'the GET right after the cancel');
    await waitFor(async () => (await get(key, j.id)).json.status === 'cancelled', 15000, 20);
  }
});

test('an event seen is never followed by an older job', async () => {
  const jobs = await Promise.all(Array.from({ length: 6 }, async () =>
    (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 300, steps: 3 } })).json));
  for (const j of jobs) {
    let seen = 0;
    for (;;) {
      const g = (await get(key, j.id)).json; // polls keep the cache warm
      const evs = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events?limit=1000`)).json.data;
      const progress = evs.filter((e) => e.kind === 'progress').map((e) => e.data.progress);
      const status = evs.find((e) => e.kind === 'status');
      const after = (await get(key, j.id)).json;
      // (the row keeps 6 decimals, the event more)
      assert.ok(after.progress + 1e-6 >= (progress.at(-1) ?? 0), `${j.id}: progress ${after.progress} after an event said ${progress.at(-1)}`);
      assert.ok(after.progress >= g.progress);
      if (status) {
        assert.equal(after.status, status.data.status, `${j.id}: GET after the status event`);
        break;
      }
      assert.ok(++seen < 2000, 'the job ends');
    }
  }
});

test('a change made while PostgreSQL restarted without us is not served stale', async () => {
  // A cluster of this test's own, restarted for real; the server logs in as
  // a role of its own that is kept out across the restart, so that the
  // change below is made while the server cannot listen.
  const pgdir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'pg-cache-'));
  const pgsh = (cmd) => execFileSync(join(root, 'scripts', 'pg.sh'), [cmd, pgdir], { encoding: 'utf8' }).trim();
  const url = pgsh('start');
  try {
    migrate(url);
    const k = createKey(url, 'cache-r').key;
    psql(url, 'CREATE ROLE cache_srv LOGIN SUPERUSER');
    const s = await start(`${url} user=cache_srv`, { REFINERY_WORKERS: '0' });
    try {
      const j = (await api(s.base, k, 'POST', '/v1/jobs', { type: 'test.noop' })).json;
      for (let i = 0; i < 5; i++) assert.equal((await api(s.base, k, 'GET', `/v1/jobs/${j.id}`)).json.priority, 0);
      psql(url, 'ALTER ROLE cache_srv NOLOGIN');
      pgsh('stop');
      pgsh('start');
      psql(url, `UPDATE jobs SET priority = 9, metadata = '{"while":"away"}' WHERE id = '${j.id}'`);
      assertProblem(assert, await api(s.base, k, 'GET', `/v1/jobs/${j.id}`), 503);
      psql(url, 'ALTER ROLE cache_srv LOGIN');
      // once the listener is back (the cache serves again), the new state
      await waitFor(() => /listener: database reached again/.test(s.logs), 20000, 50);
      for (let i = 0; i < 10; i++) {
        const g = await api(s.base, k, 'GET', `/v1/jobs/${j.id}`);
        assert.equal(g.status, 200, g.text);
        assert.equal(g.json.priority, 9);
        assert.deepEqual(g.json.metadata, { while: 'away' });
      }
    } finally {
      assert.equal((await s.stop()).code, 0, s.logs);
    }
  } finally {
    pgsh('stop');
  }
});
