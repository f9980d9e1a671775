// The jobs API: create, idempotency, list and pagination, get, cancel, events,
// and the catalogue of bad input, each leaving the database as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDb, migrate, createKey, start, api, waitFor, assertProblem, psql } from './harness.mjs';

let db, srv, key;
const counts = () => psql(db, 'SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM idempotency_keys), ' +
  "(SELECT count(*) FROM job_events), (SELECT count(*) FROM jobs WHERE status = 'cancelled')")[0].join(',');

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'acme').key;
  srv = await start(db, { REFINERY_WORKERS: '0' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('POST /v1/jobs creates a queued job object', async () => {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', {
    type: 'test.sleep', params: { ms: 10, steps: 2 }, priority: 5, max_attempts: 4, metadata: { run: 'a1' },
  });
  assert.equal(r.status, 201, r.text);
  const j = r.json;
  assert.match(j.id, /^job_[0-9a-z]{24}$/);
  assert.equal(j.object, 'job');
  assert.equal(j.type, 'test.sleep');
  assert.equal(j.status, 'queued');
  assert.deepEqual(j.params, { ms: 10, steps: 2 });
  assert.equal(j.result, null);
  assert.equal(j.error, null);
  assert.equal(j.progress, 0);
  assert.equal(j.attempts, 0);
  assert.equal(j.max_attempts, 4);
  assert.equal(j.priority, 5);
  assert.deepEqual(j.metadata, { run: 'a1' });
  assert.ok(Math.abs(j.created_at - Date.now() / 1000) < 60);
  assert.equal(j.started_at, null);
  assert.equal(j.finished_at, null);
  const g = await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`);
  assert.equal(g.status, 200);
  assert.deepEqual(g.json, j);
});

test('concurrent creations (committed together) each get their own job, as sent', async () => {
  // Requests that arrive together share one INSERT and one commit
  // (service/jobs.c): each must still get its own row, its own values, its
  // own tenant, whatever characters its strings hold.
  const second = createKey(db, 'acme-two').key;
  const weird = ['plain', 'a "quoted" word', 'back\\slash \\" both', '{braces},commas', 'üñí', '', 'NULL'];
  const sent = Array.from({ length: 40 }, (_, i) => ({
    k: i % 3 ? key : second,
    body: {
      type: 'test.sleep',
      params: { ms: 1000 + i, steps: 1 + (i % 5) },
      priority: i - 20,
      max_attempts: 1 + (i % 7),
      ...(i % 4 ? { metadata: { w: weird[i % weird.length], i: String(i) } } : {}),
    },
  }));
  const rs = await Promise.all(sent.map((s) => api(srv.base, s.k, 'POST', '/v1/jobs', s.body)));
  assert.deepEqual(rs.map((r) => r.status), rs.map(() => 201), rs.map((r) => r.text).join('\n'));
  assert.equal(new Set(rs.map((r) => r.json.id)).size, sent.length);
  for (const [i, r] of rs.entries()) {
    const b = sent[i].body;
    assert.deepEqual(r.json.params, b.params);
    assert.equal(r.json.priority, b.priority);
    assert.equal(r.json.max_attempts, b.max_attempts);
    assert.deepEqual(r.json.metadata, b.metadata ?? null);
    // stored as answered, under the tenant that sent it only
    const g = await api(srv.base, sent[i].k, 'GET', `/v1/jobs/${r.json.id}`);
    assert.deepEqual(g.json, r.json);
    const other = sent[i].k === key ? second : key;
    assertProblem(assert, await api(srv.base, other, 'GET', `/v1/jobs/${r.json.id}`), 404);
  }
  psql(db, `DELETE FROM jobs WHERE id IN (${rs.map((r) => `'${r.json.id}'`).join(',')})`);
});

test('Idempotency-Key: same body gives the same job, a different body 422', async () => {
  const body = { type: 'test.noop', params: { echo: 1 } };
  const before_ = counts();
  const a = await api(srv.base, key, 'POST', '/v1/jobs', body, { 'idempotency-key': 'k-1' });
  assert.equal(a.status, 201);
  // Same content, other key order: the same request.
  const b = await api(srv.base, key, 'POST', '/v1/jobs', '{"params":{"echo":1},"type":"test.noop"}', { 'idempotency-key': 'k-1' });
  assert.equal(b.status, 200);
  assert.equal(b.json.id, a.json.id);
  const mid = counts();
  const c = await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop', params: { echo: 2 } }, { 'idempotency-key': 'k-1' });
  assertProblem(assert, c, 422, 'Idempotency-Key');
  assert.equal(counts(), mid, 'the conflict stored nothing');
  assert.notEqual(mid, before_);
  // Concurrent duplicates still make one job.
  const many = await Promise.all(Array.from({ length: 8 }, () =>
    api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop' }, { 'idempotency-key': 'k-race' })));
  assert.equal(new Set(many.map((r) => r.json.id)).size, 1);
  assert.deepEqual(many.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 200, 200, 201]);
  // Keys are kept at least 24 hours, then forgotten.
  psql(db, "UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'k-1'");
  assert.equal((await api(srv.base, key, 'POST', '/v1/jobs', body, { 'idempotency-key': 'k-1' })).json.id, a.json.id);
  psql(db, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'k-1'");
  const fresh = await api(srv.base, key, 'POST', '/v1/jobs', body, { 'idempotency-key': 'k-1' });
  assert.equal(fresh.status, 201);
  assert.notEqual(fresh.json.id, a.json.id);
});

test('bad input: right status, problem+json naming the field, nothing stored', async () => {
  const cases = [
    ['{"type": "test.noop",', 400, undefined],
    ['[1, 2]', 422, undefined],
    ['"text"', 422, undefined],
    ['{"type":"test.noop","type":"test.noop"}', 400, undefined],
    [{}, 422, 'type'],
    [{ type: 42 }, 422, 'type'],
    [{ type: 'no.such.type' }, 422, 'type'],
    [{ type: 'test.noop', params: [] }, 422, 'params'],
    [{ type: 'test.noop', params: { nope: 1 } }, 422, 'params.nope'],
    [{ type: 'test.sleep', params: {} }, 422, 'params.ms'],
    [{ type: 'test.sleep', params: { ms: 'ten' } }, 422, 'params.ms'],
    [{ type: 'test.sleep', params: { ms: -1 } }, 422, 'params.ms'],
    [{ type: 'test.noop', priority: 'high' }, 422, 'priority'],
    [{ type: 'test.noop', priority: 1.5 }, 422, 'priority'],
    [{ type: 'test.noop', max_attempts: 0 }, 422, 'max_attempts'],
    [{ type: 'test.noop', metadata: { a: 1 } }, 422, 'metadata'],
    [{ type: 'test.noop', surprise: true }, 422, 'surprise'],
  ];
  const before_ = counts();
  for (const [body, status, field] of cases) {
    const r = await api(srv.base, key, 'POST', '/v1/jobs', body);
    assertProblem(assert, r, status, field);
  }
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', ''), 400);
  assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', '--x--', { 'content-type': 'multipart/form-data; boundary=x' }), 415);
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?limit=0'), 422, 'limit');
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?limit=abc'), 422, 'limit');
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?status=done'), 422, 'status');
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs?after=bogus'), 422, 'after');
  for (const id of ['bogus', 'job_', 'job_ABC', 'art_000000000000000000000000', "job_'; DROP TABLE jobs; --"]) {
    const p = `/v1/jobs/${encodeURIComponent(id)}`;
    assertProblem(assert, await api(srv.base, key, 'GET', p), 404);
    assertProblem(assert, await api(srv.base, key, 'POST', `${p}/cancel`), 404);
    assertProblem(assert, await api(srv.base, key, 'GET', `${p}/events`), 404);
  }
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/jobs/job_000000000000000000000000/events?after=-1'), 422, 'after');
  assert.equal(counts(), before_);
});

test('list: newest first, filters, cursor pagination stable under inserts', async () => {
  const fresh = createKey(db, 'lister').key;
  const ids = [];
  for (let i = 0; i < 7; i++) {
    const r = await api(srv.base, fresh, 'POST', '/v1/jobs', { type: i % 2 ? 'test.noop' : 'test.fail' });
    ids.push(r.json.id);
  }
  const all = await api(srv.base, fresh, 'GET', '/v1/jobs?limit=100');
  assert.equal(all.json.object, 'list');
  assert.deepEqual(all.json.data.map((j) => j.id), [...ids].reverse());
  assert.equal(all.json.has_more, false);
  // Page through three at a time while new jobs keep arriving.
  const seen = [];
  let after = null;
  for (;;) {
    const q = `/v1/jobs?limit=3${after ? `&after=${after}` : ''}`;
    const page = await api(srv.base, fresh, 'GET', q);
    assert.equal(page.status, 200);
    seen.push(...page.json.data.map((j) => j.id));
    await api(srv.base, fresh, 'POST', '/v1/jobs', { type: 'test.noop' });
    if (!page.json.has_more) break;
    after = page.json.data.at(-1).id;
  }
  assert.deepEqual(seen, [...ids].reverse(), 'every job exactly once, none shifted in');
  const noop = await api(srv.base, fresh, 'GET', '/v1/jobs?type=test.fail&limit=100');
  assert.deepEqual(noop.json.data.map((j) => j.id), ids.filter((_, i) => i % 2 === 0).reverse());
  const queued = await api(srv.base, fresh, 'GET', '/v1/jobs?status=succeeded');
  assert.equal(queued.json.data.length, 0);
});

test('cancel: queued at once, then 409; events record it', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop' })).json;
  const c = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  assert.equal(c.status, 200);
  assert.equal(c.json.status, 'cancelled');
  assert.equal(c.json.cancel_requested, true);
  assert.ok(c.json.finished_at);
  const before_ = counts();
  const again = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  assertProblem(assert, again, 409);
  assert.equal(counts(), before_);
  const ev = await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events`);
  assert.equal(ev.status, 200);
  assert.equal(ev.json.object, 'list');
  assert.equal(ev.json.data.length, 1);
  assert.equal(ev.json.data[0].object, 'job.event');
  assert.equal(ev.json.data[0].kind, 'log');
  assert.match(ev.json.data[0].data.message, /cancel/);
});

test('/metrics: Prometheus text with requests, latency, jobs, queue depth, workers', async () => {
  const before_ = await (await fetch(`${srv.base}/metrics`)).text();
  const count = (text, re) => text.split('\n').filter((l) => re.test(l)).map((l) => Number(l.split(' ').at(-1))).reduce((a, b) => a + b, 0);
  const listRe = /^refinery_http_requests_total\{route="\/v1\/jobs",method="GET",status="200"\}/;
  for (let i = 0; i < 3; i++) await api(srv.base, key, 'GET', '/v1/jobs');
  await api(srv.base, key, 'GET', '/v1/nowhere');
  const res = await fetch(`${srv.base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#')))
    assert.match(line, /^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$/, line);
  for (const name of ['refinery_http_requests_total', 'refinery_http_request_duration_seconds', 'refinery_jobs',
    'refinery_queue_depth', 'refinery_workers_busy', 'refinery_artifact_bytes_written_total', 'refinery_db_errors_total'])
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  assert.equal(count(text, listRe) - count(before_, listRe), 3);
  assert.match(text, /refinery_http_requests_total\{route="unmatched",method="",status="404"\} [1-9]/);
  assert.match(text, /refinery_http_request_duration_seconds_bucket\{route="\/v1\/jobs",method="GET",le="\+Inf"\} [1-9]/);
  const queued = Number(psql(db, "SELECT count(*) FROM jobs WHERE status = 'queued'")[0][0]);
  assert.equal(count(text, /^refinery_queue_depth /), queued);
  assert.equal(count(text, /^refinery_jobs\{type="test.noop",status="queued"\}/),
    Number(psql(db, "SELECT count(*) FROM jobs WHERE status = 'queued' AND type = 'test.noop'")[0][0]));
  assert.equal(count(text, /^refinery_workers /), 0, 'this server runs no workers');
});
