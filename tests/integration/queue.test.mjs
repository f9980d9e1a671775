// The queue under real processes: exactly-once delivery across several worker
// processes, rescue after kill -9 with resume from the checkpoint, cancel of a
// running job, priorities, retry backoff, max_attempts, graceful shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createDb, migrate, createKey, start, api, waitFor, sleep, psql } from './harness.mjs';

let db, srv, key;
const get = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
const post = async (body) => {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', body);
  assert.equal(r.status, 201, r.text);
  return r.json;
};
const done = (id, status = 'succeeded') => waitFor(async () => {
  const j = await get(id);
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? (assert.equal(j.status, status, JSON.stringify(j)), j) : null;
}, 30000);
// Milliseconds at which each attempt of a job started, from its events.
const starts = (id) => psql(db, `SELECT (extract(epoch from created_at) * 1000)::bigint, data->>'worker' FROM job_events
  WHERE job_id = '${id}' AND data->>'message' = 'attempt started' ORDER BY id`).map((r) => ({ ms: Number(r[0]), worker: r[1] }));

const FAST = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '200', REFINERY_POLL_MS: '100' };

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'q').key;
  // The API server runs no workers: workers are separate processes below.
  srv = await start(db, { ...FAST, REFINERY_WORKERS: '0' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('many jobs, several worker processes: each job runs exactly once', async () => {
  const jobs = await Promise.all(Array.from({ length: 60 }, (_, i) => post({ type: i % 3 ? 'test.noop' : 'test.sleep', params: i % 3 ? { echo: i } : { ms: 20, steps: 2 } })));
  const workers = await Promise.all([1, 2, 3].map(() => start(db, { ...FAST, REFINERY_WORKERS: '2' }, 'worker')));
  try {
    for (const j of jobs) await done(j.id);
    const rows = psql(db, `SELECT j.id, j.attempts, count(e.id) FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id
      AND e.data->>'message' = 'attempt started' WHERE j.id IN (${jobs.map((j) => `'${j.id}'`).join(',')}) GROUP BY j.id, j.attempts`);
    assert.equal(rows.length, 60);
    for (const [id, attempts, started] of rows) {
      assert.equal(attempts, '1', id);
      assert.equal(started, '1', `${id} started ${started} times`);
    }
    const byWorker = new Set(jobs.flatMap((j) => starts(j.id).map((s) => s.worker.split(':')[1])));
    assert.ok(byWorker.size >= 2, `work spread over processes (${[...byWorker]})`);
    const echo = await get(jobs[1].id);
    assert.deepEqual(echo.result, { echo: 1, attempt: 1 });
  } finally {
    for (const w of workers) assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('kill -9 of a worker mid-job: rescued, finished elsewhere from its checkpoint, attempts = 2', async () => {
  const j = await post({ type: 'test.sleep', params: { ms: 3000, steps: 30 } });
  const a = await start(db, FAST, 'worker');
  await waitFor(async () => (await get(j.id)).progress >= 0.2);
  a.proc.kill('SIGKILL');
  await a.exitedPromise;
  assert.equal((await get(j.id)).status, 'running', 'nobody knows yet');
  const b = await start(db, FAST, 'worker');
  try {
    const fin = await done(j.id);
    assert.equal(fin.attempts, 2);
    assert.ok(fin.result.resumed_from >= 6, `resumed from step ${fin.result.resumed_from}`);
    assert.equal(fin.result.attempt, 2);
    const s = starts(j.id);
    assert.equal(s.length, 2);
    assert.notEqual(s[0].worker, s[1].worker);
    const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events?limit=1000`)).json.data;
    assert.ok(ev.some((e) => /lease expired/.test(e.data.message ?? '')), 'the rescue is in the events');
  } finally {
    assert.equal((await b.stop()).code, 0, b.logs);
  }
});

test('cancel of a running job: the runner stops within a second', async () => {
  const w = await start(db, FAST, 'worker');
  try {
    const j = await post({ type: 'test.sleep', params: { ms: 20000, steps: 200 } });
    await waitFor(async () => (await get(j.id)).status === 'running');
    const t0 = Date.now();
    const c = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
    assert.equal(c.status, 200);
    assert.equal(c.json.cancel_requested, true);
    const second = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
    assert.equal(second.status, 409, 'a cancel already under way');
    const fin = await done(j.id, 'cancelled');
    assert.ok(Date.now() - t0 < 1500, `stopped after ${Date.now() - t0} ms`);
    assert.equal(fin.error, 'cancelled by request');
    assert.ok(fin.progress < 0.5);
  } finally {
    assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('priorities: higher first, then oldest first', async () => {
  const low = await post({ type: 'test.noop', priority: -5 });
  const mid1 = await post({ type: 'test.noop' });
  const high = await post({ type: 'test.noop', priority: 10 });
  const mid2 = await post({ type: 'test.noop' });
  const w = await start(db, { ...FAST, REFINERY_WORKERS: '1' }, 'worker');
  try {
    for (const j of [low, mid1, high, mid2]) await done(j.id);
  } finally {
    await w.stop();
  }
  const order = psql(db, `SELECT job_id FROM job_events WHERE data->>'message' = 'attempt started'
    AND job_id IN ('${low.id}','${mid1.id}','${high.id}','${mid2.id}') ORDER BY id`).map((r) => r[0]);
  assert.deepEqual(order, [high.id, mid1.id, mid2.id, low.id]);
});

test('retries back off exponentially with jitter, then succeed', async () => {
  const j = await post({ type: 'test.fail', params: { fail_attempts: 2 }, max_attempts: 3 });
  const w = await start(db, { ...FAST, REFINERY_RETRY_BASE_MS: '400' }, 'worker');
  try {
    const fin = await done(j.id);
    assert.equal(fin.attempts, 3);
    assert.equal(fin.error, null);
    const s = starts(j.id).map((x) => x.ms);
    assert.equal(s.length, 3);
    // base·2^(n−1)·[0.5, 1): ≥ 200 ms after the first failure, ≥ 400 ms after the second.
    assert.ok(s[1] - s[0] >= 200, `first gap ${s[1] - s[0]} ms`);
    assert.ok(s[2] - s[1] >= 400, `second gap ${s[2] - s[1]} ms`);
  } finally {
    await w.stop();
  }
});

test('max_attempts reached: failed with the reason; bad input fails at once', async () => {
  const j = await post({ type: 'test.fail', params: { fail_attempts: 10 }, max_attempts: 2 });
  const f = await post({ type: 'test.fail', params: { final: true }, max_attempts: 5 });
  const w = await start(db, FAST, 'worker');
  try {
    const fin = await done(j.id, 'failed');
    assert.equal(fin.attempts, 2);
    assert.match(fin.error, /test failure on attempt 2.*giving up/);
    assert.ok(fin.finished_at);
    const ff = await done(f.id, 'failed');
    assert.equal(ff.attempts, 1, 'not retried');
    assert.match(ff.error, /retrying cannot fix/);
  } finally {
    await w.stop();
  }
});

test('a job that loses its worker on its last attempt fails with the reason', async () => {
  const j = await post({ type: 'test.sleep', params: { ms: 5000, steps: 50 }, max_attempts: 1 });
  const a = await start(db, FAST, 'worker');
  await waitFor(async () => (await get(j.id)).status === 'running');
  a.proc.kill('SIGKILL');
  await a.exitedPromise;
  // The API server's own listener runs the rescuer too.
  const fin = await done(j.id, 'failed');
  assert.match(fin.error, /worker lost \(lease expired\) on attempt 1 of 1; giving up/);
});

// Runs `refinery worker` processes one after another, as a supervisor that
// restarts a dead worker would, until done() says stop; returns how each
// one ended.
async function supervise(done) {
  const ends = [];
  while (!(await done())) {
    let w;
    try {
      w = await start(db, FAST, 'worker');
    } catch (e) { // it crashed before it said it had started
      ends.push({ early: String(e.message).split('\n')[0] });
      continue;
    }
    const end = await Promise.race([w.exitedPromise, waitFor(done, 30000, 100).then(() => null)]);
    if (end) ends.push({ ...end, logs: w.logs });
    else assert.equal((await w.stop()).code, 0, w.logs);
    if (ends.length > 10) throw new Error(`workers keep dying: ${JSON.stringify(ends.map((x) => x.code ?? x.signal))}`);
  }
  return ends;
}

test('a job that crashes its worker process counts an attempt per crash and fails after max_attempts, saying so', async () => {
  const seg = await post({ type: 'test.crash', params: { signal: 'segv' }, max_attempts: 2 });
  const ends = await supervise(async () => (await get(seg.id)).status === 'failed');
  assert.equal(ends.length, 2, 'one dead worker per attempt, none after');
  for (const e of ends) assert.ok(e.early || e.code !== 0 || e.signal, `worker ended ${JSON.stringify(e)}`);
  const fin = await get(seg.id);
  assert.equal(fin.attempts, 2);
  assert.match(fin.error, /worker lost \(lease expired\) on attempt 2 of 2; giving up: the process running it died \(a crash counts as an attempt\)/);
  assert.equal(starts(seg.id).length, 2);
  // The rescuer that failed it recorded its end as an event, as a worker does.
  const segEv = (await api(srv.base, key, 'GET', `/v1/jobs/${seg.id}/events?limit=100`)).json.data;
  assert.deepEqual(segEv.filter((e) => e.kind === 'status').map((e) => e.data.status), ['failed']);
  // a division by zero and an abort: the same, one attempt each
  const fpe = await post({ type: 'test.crash', params: { signal: 'fpe' }, max_attempts: 1 });
  const abrt = await post({ type: 'test.crash', params: { signal: 'abort' }, max_attempts: 1 });
  const more = await supervise(async () => (await get(fpe.id)).status === 'failed' && (await get(abrt.id)).status === 'failed');
  assert.equal(more.length, 2);
  for (const id of [fpe.id, abrt.id]) {
    const j = await get(id);
    assert.equal(j.attempts, 1);
    assert.match(j.error, /attempt 1 of 1; giving up/);
  }
  // the API, in a process of its own, never went down
  assert.equal((await api(srv.base, null, 'GET', '/healthz')).status, 200);
  assert.equal(srv.exited, null);
});

test('SIGTERM: in-flight requests finish, the running job goes back to the queue, exit 0', async () => {
  const s = await start(db, { ...FAST, REFINERY_WORKERS: '1' });
  const j = (await api(s.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 6000, steps: 60 } })).json;
  await waitFor(async () => (await get(j.id)).progress >= 0.1);
  // A request whose body is still arriving when the signal comes.
  const body = JSON.stringify({ type: 'test.noop', params: { echo: 'late' } });
  const sock = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.write(`POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`);
  await sleep(200);
  s.proc.kill('SIGTERM');
  await sleep(300);
  let reply = '';
  sock.on('data', (d) => (reply += d));
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(body.slice(10));
  await closed;
  assert.match(reply, /^HTTP\/1\.1 201/, reply + s.logs);
  const { code } = await s.stop();
  assert.equal(code, 0, s.logs);
  const back = await get(j.id);
  assert.equal(back.status, 'queued', 'released, not failed');
  assert.equal(back.attempts, 0, 'a shutdown does not count as an attempt');
  // Refused while stopping: the listening socket is closed.
  await assert.rejects(fetch(`${s.base}/healthz`));
  const w = await start(db, FAST, 'worker');
  try {
    const fin = await done(j.id);
    assert.equal(fin.attempts, 1);
    assert.ok(fin.result.resumed_from >= 6, `resumed from ${fin.result.resumed_from}`);
  } finally {
    await w.stop();
  }
});

test('claims in batches, outcomes in batches: every job once, with its status and events; never more running than workers; cancel still works', async () => {
  // Jobs waiting before the workers start, so that idle workers are claimed for together.
  const kinds = (i) => (i % 10 === 3 ? { type: 'test.fail', params: { final: true } } : { type: 'test.noop', params: { echo: i } });
  const jobs = await Promise.all(Array.from({ length: 240 }, (_, i) => post(kinds(i))));
  const long = await post({ type: 'test.sleep', params: { ms: 600000, steps: 6000 }, priority: 5 });
  const w = await start(db, { ...FAST, REFINERY_WORKERS: '6' }, 'worker');
  try {
    let most = 0;
    await waitFor(async () => {
      // A claimed job is one a worker runs: never more running than the process has workers.
      const running = Number(psql(db, `SELECT count(*) FROM jobs WHERE status = 'running'`)[0][0]);
      most = Math.max(most, running);
      assert.ok(running <= 6, `${running} jobs running with 6 workers`);
      const open = psql(db, `SELECT count(*) FROM jobs WHERE id IN (${jobs.map((j) => `'${j.id}'`).join(',')})
        AND status NOT IN ('succeeded', 'failed')`)[0][0];
      return open === '0';
    }, 60000);
    assert.ok(most >= 1);
    const rows = psql(db, `SELECT j.id, j.status, j.attempts,
        count(*) FILTER (WHERE e.data->>'message' = 'attempt started'),
        count(*) FILTER (WHERE e.kind = 'status'),
        string_agg(e.data->>'status', ',') FILTER (WHERE e.kind = 'status'),
        count(*) FILTER (WHERE e.data->>'message' = 'test execution')
      FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id
      WHERE j.id IN (${jobs.map((j) => `'${j.id}'`).join(',')}) GROUP BY j.id, j.status, j.attempts`);
    assert.equal(rows.length, jobs.length);
    const want = new Map(jobs.map((j, i) => [j.id, i % 10 === 3 ? 'failed' : 'succeeded']));
    for (const [id, status, attempts, started, statusEvents, finalStatus, executions] of rows) {
      assert.equal(status, want.get(id), id);
      assert.equal(attempts, '1', id);
      assert.equal(started, '1', `${id} started ${started} times`);
      assert.equal(statusEvents, '1', `${id} has ${statusEvents} status events`);
      assert.equal(finalStatus, status, id);
      assert.equal(executions, '1', `${id} ran ${executions} times`);
    }
    const failed = await get(jobs[3].id);
    assert.equal(failed.error, 'test failure that retrying cannot fix');
    assert.deepEqual((await get(jobs[1].id)).result, { echo: 1, attempt: 1 });
    // The long job ran beside them all along, and is cancelled as ever.
    assert.equal((await get(long.id)).status, 'running');
    assert.equal((await api(srv.base, key, 'POST', `/v1/jobs/${long.id}/cancel`)).status, 200);
    const fin = await done(long.id, 'cancelled');
    assert.equal(fin.error, 'cancelled by request');
  } finally {
    assert.equal((await w.stop()).code, 0, w.logs);
  }
});
