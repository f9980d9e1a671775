// PostgreSQL stopped and started again under a running service: a cluster of
// this suite's own (scripts/pg.sh, durable: fsync and synchronous commit on,
// restarted on the same port), an API process and a separate `refinery
// worker` process with jobs running. While the database is away the API
// answers 503 problem+json (readyz says "database unreachable") and stays up;
// afterwards every process reconnects by itself, without a restart of ours.
//   - a clean restart (fast shutdown) shorter than the leases: the running
//     jobs keep their workers and finish on their first attempt, every event
//     a client saw before is still there, an event stream open across the
//     outage misses nothing;
//   - a crash (immediate shutdown) longer than the leases: the jobs are
//     rescued and finish from their checkpoints (or kept by their worker,
//     when it wrote before any rescuer ran), each with one outcome.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { migrate, createKey, start, api, waitFor, sleep, psql, assertProblem } from './harness.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const pgsh = (cmd, dir) => execFileSync(join(root, 'scripts', 'pg.sh'), [cmd, dir], {
  encoding: 'utf8', env: { ...process.env, PG_FSYNC: 'on', PG_SYNC_COMMIT: 'on' },
}).trim();
const FINAL = ['succeeded', 'failed', 'cancelled'];

let pgdir, db, key;
before(() => {
  pgdir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'pg-restart-'));
  db = pgsh('start', pgdir);
  migrate(db);
  key = createKey(db, 'pgr').key;
});
after(() => pgsh('stop', pgdir));

// An API process and a worker process; returns helpers bound to them.
async function service(env) {
  const srv = await start(db, { ...env, REFINERY_WORKERS: '0' });
  const wrk = await start(db, { ...env, REFINERY_WORKERS: '3' }, 'worker');
  const get = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
  const post = async (body) => {
    const r = await api(srv.base, key, 'POST', '/v1/jobs', body);
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const events = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}/events?limit=1000`)).json.data;
  const settle = (jobs, ms = 40000) => Promise.all(jobs.map((j) => waitFor(async () => {
    const r = await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`);
    return r.status === 200 && FINAL.includes(r.json.status) ? r.json : null;
  }, ms, 100).catch((e) => {
    throw new Error(`${j.id}: ${e.message}\njobs: ${JSON.stringify(psql(db, 'SELECT id, status, attempts, lease_owner FROM jobs'))}` +
      `\nworker:\n${wrk.logs.slice(-4000)}\napi:\n${srv.logs.slice(-2000)}`);
  })));
  const stop = async () => {
    assert.equal((await wrk.stop()).code, 0, wrk.logs);
    assert.equal((await srv.stop()).code, 0, srv.logs);
  };
  return { srv, wrk, get, post, events, settle, stop };
}

// What the API answers while the database is away, for ms milliseconds.
async function whileDown(s, jobId, ms) {
  const t0 = Date.now();
  const ready = await api(s.srv.base, null, 'GET', '/readyz');
  assertProblem(assert, ready, 503);
  assert.match(ready.json.detail, /database unreachable/);
  for (const [m, path, body] of [['GET', `/v1/jobs/${jobId}`], ['POST', '/v1/jobs', { type: 'test.noop' }],
    ['GET', '/v1/jobs'], ['GET', `/v1/jobs/${jobId}/events`], ['GET', '/v1/datasets']]) {
    const r = await api(s.srv.base, key, m, path, body);
    assertProblem(assert, r, 503);
    assert.equal(r.headers.get('retry-after'), '2', `${m} ${path}`);
  }
  assert.equal((await api(s.srv.base, null, 'GET', '/healthz')).status, 200, 'the process itself is fine');
  await sleep(Math.max(0, ms - (Date.now() - t0)));
  assert.equal(s.srv.exited, null, s.srv.logs);
  assert.equal(s.wrk.exited, null, s.wrk.logs);
}

// Once readyz is back, no request fails: each HTTP thread noticed that its
// connection died with the old server, instead of failing a request on it.
async function backUp(s, jobId) {
  await waitFor(async () => (await api(s.srv.base, null, 'GET', '/readyz')).status === 200, 30000, 200);
  const rs = await Promise.all(Array.from({ length: 24 }, () => api(s.srv.base, key, 'GET', `/v1/jobs/${jobId}`)));
  assert.deepEqual(rs.map((r) => r.status), rs.map(() => 200));
}

// Follows a job's event stream to its end, reconnecting with Last-Event-ID
// when a stream breaks (as EventSource does); returns the event ids received.
function follow(base, id) {
  const got = [];
  const done = (async () => {
    for (let tries = 0; tries < 50; tries++) {
      const headers = { authorization: `Bearer ${key}`, accept: 'text/event-stream' };
      if (got.length) headers['last-event-id'] = String(got.at(-1));
      let res;
      try {
        res = await fetch(`${base}/v1/jobs/${id}/events`, { headers });
      } catch {
        await sleep(200);
        continue;
      }
      if (res.status !== 200) { // 503 while the database is away
        await res.text();
        await sleep(200);
        continue;
      }
      let buf = '', final = false;
      try {
        for await (const chunk of res.body) {
          buf += Buffer.from(chunk).toString('utf8');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (block.startsWith(':')) continue;
            const f = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
            got.push(Number(f.id));
            if (f.event === 'status') final = true;
          }
        }
      } catch { /* a stream cut off: resume */ }
      if (final) return got;
    }
    throw new Error(`the stream of ${id} never reached its end (${got.length} events)`);
  })();
  return { got, done };
}

test('PostgreSQL restarted mid-job: 503 while away, reconnected after, running jobs finish on their attempt, no event lost', async () => {
  // Leases long enough to outlive the outage: the jobs keep their workers.
  const s = await service({ REFINERY_LEASE_MS: '15000', REFINERY_RETRY_BASE_MS: '200', REFINERY_POLL_MS: '100' });
  try {
    const sleepers = [];
    for (let i = 0; i < 3; i++) sleepers.push(await s.post({ type: 'test.sleep', params: { ms: 4000, steps: 40 } }));
    const queued = [];
    for (let i = 0; i < 4; i++) queued.push(await s.post({ type: 'test.noop', params: { echo: i } }));
    const stream = follow(s.srv.base, sleepers[0].id);
    await waitFor(async () => (await Promise.all(sleepers.map((j) => s.get(j.id))))
      .every((j) => j.status === 'running' && j.progress >= 0.1), 20000);
    const all = [...sleepers, ...queued];
    const seen = {};
    for (const j of all) seen[j.id] = (await s.events(j.id)).map((e) => e.id);

    pgsh('stop', pgdir);
    try {
      await whileDown(s, sleepers[0].id, 3000);
    } finally {
      pgsh('start', pgdir);
    }
    await backUp(s, sleepers[0].id);
    const late = await s.post({ type: 'test.noop', params: { echo: 'after' } });
    const ends = await s.settle([...all, late]);
    for (const j of ends) {
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      assert.equal(j.attempts, 1, `${j.id}: its worker kept it through the outage`);
    }
    for (const j of sleepers) assert.equal((await s.get(j.id)).result.steps, 40);
    for (const j of [...all, late]) {
      const ev = await s.events(j.id);
      const ids = new Set(ev.map((e) => e.id));
      for (const id of seen[j.id] ?? []) assert.ok(ids.has(id), `${j.id}: event ${id}, seen before the stop, is gone`);
      assert.equal(ev.filter((e) => e.data?.message === 'attempt started').length, 1, j.id);
      assert.equal(ev.filter((e) => e.kind === 'status').length, 1, j.id);
    }
    // The stream across the outage: every event of the job, once, in order.
    const got = await stream.done;
    assert.deepEqual(got, (await s.events(sleepers[0].id)).map((e) => e.id));
    assert.match(s.wrk.logs, /worker \d: database reached again/);
    assert.match(s.wrk.logs, /listener: database reached again/);
  } finally {
    await s.stop();
  }
});

test('PostgreSQL crashed for longer than the leases: jobs rescued, finished from their checkpoints, one outcome each', async () => {
  const s = await service({ REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '200', REFINERY_POLL_MS: '100' });
  try {
    const sleepers = [];
    for (let i = 0; i < 3; i++) sleepers.push(await s.post({ type: 'test.sleep', params: { ms: 3000, steps: 30 } }));
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await s.post({ type: 'test.noop', params: { echo: i } }));
    await waitFor(async () => (await Promise.all(sleepers.map((j) => s.get(j.id))))
      .every((j) => j.status === 'running' && j.progress >= 0.2), 20000);

    pgsh('crash', pgdir);
    try {
      await whileDown(s, sleepers[0].id, 4000);
    } finally {
      pgsh('start', pgdir);
    }
    await backUp(s, sleepers[0].id);
    const ends = await s.settle([...sleepers, ...queued]);
    for (const j of ends) {
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      assert.equal(j.result.attempt, j.attempts, `${j.id}: the result is its last attempt's`);
      assert.equal((await s.events(j.id)).filter((e) => e.kind === 'status').length, 1, j.id);
    }
    // Past its lease a job is either rescued (by whichever listener runs its
    // rescue first) and resumed from its checkpoint, not started over, or
    // kept by its own worker when that one wrote first: one outcome either way.
    for (const j of sleepers) {
      const e = await s.get(j.id);
      const rescued = (await s.events(j.id)).some((x) => /lease expired/.test(x.data?.message ?? ''));
      assert.equal(e.attempts, rescued ? 2 : 1, `${j.id}: ${e.attempts} attempts, rescued ${rescued}`);
      if (rescued) assert.ok(e.result.resumed_from >= 1, `${j.id} resumed from step ${e.result.resumed_from}`);
    }
  } finally {
    await s.stop();
  }
});
