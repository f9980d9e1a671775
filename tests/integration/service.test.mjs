// HTTP server basics and auth over a real socket against a real PostgreSQL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createDb, migrate, createKey, start, api, run, waitFor, assertProblem, psql } from './harness.mjs';

let db, srv, alice, bob;

before(async () => {
  db = createDb();
  migrate(db);
  alice = createKey(db, 'alice');
  bob = createKey(db, 'bob');
  srv = await start(db, { REFINERY_MAX_BODY_BYTES: '4096', REFINERY_WORKERS: '0' });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, srv.logs);
});

test('healthz and readyz answer without a key', async () => {
  const h = await api(srv.base, null, 'GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  const r = await api(srv.base, null, 'GET', '/readyz');
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ready');
});

test('readyz is 503 while the schema is behind the binary', async () => {
  const [[name]] = psql(db, "SELECT name FROM schema_migrations ORDER BY version DESC LIMIT 1");
  psql(db, "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)");
  try {
    assertProblem(assert, await api(srv.base, null, 'GET', '/readyz'), 503);
  } finally {
    psql(db, `INSERT INTO schema_migrations (version, name) VALUES ('${name.split('_')[0]}', '${name}')`);
  }
  assert.equal((await api(srv.base, null, 'GET', '/readyz')).status, 200);
});

test('X-Request-Id is echoed when given and generated otherwise, and logged', async () => {
  const a = await api(srv.base, null, 'GET', '/healthz', undefined, { 'x-request-id': 'trace-abc.123' });
  assert.equal(a.headers.get('x-request-id'), 'trace-abc.123');
  const b = await api(srv.base, null, 'GET', '/healthz');
  assert.match(b.headers.get('x-request-id'), /^req_[0-9a-z]{24}$/);
  // A hostile id is replaced, not echoed.
  const c = await api(srv.base, null, 'GET', '/healthz', undefined, { 'x-request-id': 'a b<script>' });
  assert.match(c.headers.get('x-request-id'), /^req_/);
  await waitFor(() => srv.logs.includes('request_id=trace-abc.123'));
  assert.match(srv.logs, /request_id=trace-abc\.123 method=GET path=\/healthz status=200/);
});

test('unknown routes are 404 and wrong methods 405 with Allow', async () => {
  assertProblem(assert, await api(srv.base, alice.key, 'GET', '/v1/nothing'), 404);
  assertProblem(assert, await api(srv.base, alice.key, 'GET', '/v1/jobs/'), 404);
  const r = await api(srv.base, alice.key, 'DELETE', '/v1/jobs');
  assertProblem(assert, r, 405);
  assert.equal(r.headers.get('allow'), 'POST, GET');
  const c = await api(srv.base, alice.key, 'GET', '/v1/jobs/job_x/cancel');
  assertProblem(assert, c, 405);
  assert.equal(c.headers.get('allow'), 'POST');
});

test('every /v1 route needs a valid key, and failures say nothing about why', async () => {
  const routes = [['GET', '/v1/jobs'], ['POST', '/v1/jobs'], ['GET', '/v1/jobs/job_000000000000000000000000'],
    ['POST', '/v1/jobs/job_000000000000000000000000/cancel'], ['GET', '/v1/jobs/job_000000000000000000000000/events']];
  // the last one differs from alice's key in its last character (a key that
  // already ended in 'z' once made this 'bad' key the real one: a 1-in-36 flake)
  const bad = [null, 'rfk_' + 'a'.repeat(40), 'nonsense', alice.key.slice(0, -1) + (alice.key.endsWith('z') ? 'y' : 'z')];
  const details = new Set();
  for (const [m, p] of routes) {
    for (const k of bad) {
      const r = await api(srv.base, k, m, p, m === 'POST' ? { type: 'test.noop' } : undefined);
      assertProblem(assert, r, 401);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      details.add(r.json.detail);
    }
    // A scheme other than Bearer.
    const basic = await api(srv.base, null, m, p, undefined, { authorization: 'Basic Zm9vOmJhcg==' });
    assertProblem(assert, basic, 401);
    details.add(basic.json.detail);
  }
  assert.equal(details.size, 1, 'all 401s read alike');
  assert.equal(Number(psql(db, 'SELECT count(*) FROM jobs')[0][0]), 0);
});

test('a revoked key stops working, in this process and others', async () => {
  const k = createKey(db, 'carol');
  assert.equal((await api(srv.base, k.key, 'GET', '/v1/jobs')).status, 200);
  const r = run(['keys', 'revoke', k.id], { REFINERY_DATABASE_URL: db });
  assert.equal(r.code, 0, r.stderr);
  // The server learns of it through NOTIFY; give the listener a moment.
  await waitFor(async () => (await api(srv.base, k.key, 'GET', '/v1/jobs')).status === 401, 3000);
  const again = run(['keys', 'revoke', k.id], { REFINERY_DATABASE_URL: db });
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /already revoked/);
  const none = run(['keys', 'revoke', 'key_000000000000000000000000'], { REFINERY_DATABASE_URL: db });
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no key/);
});

test('keys are stored only as their SHA-256', async () => {
  const rows = psql(db, "SELECT encode(key_hash, 'hex'), prefix FROM api_keys");
  const { createHash } = await import('node:crypto');
  const hashes = rows.map((r) => r[0]);
  assert.ok(hashes.includes(createHash('sha256').update(alice.key).digest('hex')));
  const dump = psql(db, 'SELECT row_to_json(k)::text FROM api_keys k').flat().join('\n');
  assert.ok(!dump.includes(alice.key), 'the key itself is nowhere in the table');
});

test('keys create needs a tenant and a sane name', () => {
  const a = run(['keys', 'create'], { REFINERY_DATABASE_URL: db });
  assert.notEqual(a.code, 0);
  assert.match(a.stderr, /--tenant/);
  const b = run(['keys', 'create', '--tenant', 'bad name!'], { REFINERY_DATABASE_URL: db });
  assert.notEqual(b.code, 0);
  assert.match(b.stderr, /tenant name/);
});

test('another tenant\'s job is a 404, never a 403', async () => {
  const mine = await api(srv.base, alice.key, 'POST', '/v1/jobs', { type: 'test.noop' });
  assert.equal(mine.status, 201);
  const id = mine.json.id;
  for (const [m, p] of [['GET', `/v1/jobs/${id}`], ['POST', `/v1/jobs/${id}/cancel`], ['GET', `/v1/jobs/${id}/events`]]) {
    const r = await api(srv.base, bob.key, m, p);
    assertProblem(assert, r, 404);
    const missing = await api(srv.base, bob.key, m, p.replace(id, 'job_000000000000000000000000'));
    assert.equal(r.json.detail.replace(id, 'X'), missing.json.detail.replace('job_000000000000000000000000', 'X'));
  }
  const list = await api(srv.base, bob.key, 'GET', '/v1/jobs');
  assert.equal(list.json.data.length, 0);
  assert.equal((await api(srv.base, alice.key, 'GET', `/v1/jobs/${id}`)).json.status, 'queued');
});

test('an oversize body is refused with 413, before it is read when Content-Length says so', async () => {
  const big = JSON.stringify({ type: 'test.noop', params: { echo: 'x'.repeat(5000) } });
  assertProblem(assert, await api(srv.base, alice.key, 'POST', '/v1/jobs', big), 413);
  // Headers announce 10 MB and no body follows: the answer must come anyway.
  const answer = await new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write(`POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.key}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n');
    });
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n\r\n') && buf.includes('}')) { s.destroy(); resolve(buf); }
    });
    s.on('error', reject);
    setTimeout(() => { s.destroy(); reject(new Error('no answer before the body: ' + buf)); }, 5000);
  });
  assert.match(answer, /^HTTP\/1\.1 413/);
  assert.match(answer, /application\/problem\+json/);
  // A chunked body that grows past the cap is refused too.
  const chunked = await new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write(`POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.key}\r\n` +
        'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
      for (let i = 0; i < 3; i++) s.write(`800\r\n${'a'.repeat(0x800)}\r\n`);
      s.write('0\r\n\r\n');
    });
    let buf = '';
    s.on('data', (d) => (buf += d));
    s.on('end', () => resolve(buf));
    s.on('error', reject);
  });
  assert.match(chunked, /^HTTP\/1\.1 413/);
  assert.equal(Number(psql(db, "SELECT count(*) FROM jobs WHERE params ? 'echo'")[0][0]), 0);
});

test('REFINERY_LOG_FORMAT=json writes one JSON object per line, access lines included', async () => {
  const s = await start(db, { REFINERY_LOG_FORMAT: 'json', REFINERY_WORKERS: '0' });
  try {
    await api(s.base, alice.key, 'GET', '/v1/jobs', undefined, { 'x-request-id': 'json-log-1' });
    await waitFor(() => s.logs.includes('json-log-1'));
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
  const lines = s.logs.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.every((l) => typeof l.ts === 'string' && typeof l.level === 'string'));
  const access = lines.find((l) => l.request_id === 'json-log-1');
  assert.equal(access.method, 'GET');
  assert.equal(access.path, '/v1/jobs');
  assert.equal(access.status, 200);
  assert.equal(typeof access.ms, 'number');
  assert.match(access.tenant, /^ten_/);
});

test('a port already in use is a clear error, not a silently shared socket', () => {
  const r = run(['serve'], { REFINERY_DATABASE_URL: db, REFINERY_LISTEN: `127.0.0.1:${srv.port}`, REFINERY_WORKERS: '0' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port}`));
});
