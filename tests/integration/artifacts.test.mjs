// Artifacts: registered by a job, listed, downloaded from the file with ETag,
// conditional requests and single byte ranges; files past 4 GiB; the sweep.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync, openSync, ftruncateSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDb, migrate, createKey, start, api, waitFor, assertProblem, psql } from './harness.mjs';

let db, srv, key, other, art, content;
const get = (path, headers = {}, k = key) =>
  fetch(srv.base + path, { headers: { authorization: `Bearer ${k}`, ...headers } });

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'a').key;
  other = createKey(db, 'b').key;
  srv = await start(db, { REFINERY_WORKERS: '1' });
  content = 'refinery artifact ✓ ' + 'x'.repeat(1000) + ' end';
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.artifact', params: { content, name: 'report "v1".txt' } })).json;
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).json.status === 'succeeded');
  const list = await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/artifacts`);
  assert.equal(list.status, 200);
  assert.equal(list.json.object, 'list');
  assert.equal(list.json.data.length, 1);
  art = list.json.data[0];
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('the artifact object describes the stored file', async () => {
  const bytes = Buffer.from(content);
  assert.match(art.id, /^art_[0-9a-z]{24}$/);
  assert.equal(art.object, 'artifact');
  assert.equal(art.kind, 'test');
  assert.equal(art.name, 'report "v1".txt');
  assert.equal(art.bytes, bytes.length);
  assert.equal(art.sha256, createHash('sha256').update(bytes).digest('hex'));
  const g = await api(srv.base, key, 'GET', `/v1/artifacts/${art.id}`);
  assert.deepEqual(g.json, art);
});

test('download: whole file, ETag, Content-Length, Content-Disposition, HEAD', async () => {
  const r = await get(`/v1/artifacts/${art.id}/content`);
  assert.equal(r.status, 200);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(body.toString(), content);
  assert.equal(r.headers.get('etag'), `"${art.sha256}"`);
  assert.equal(r.headers.get('content-length'), String(art.bytes));
  assert.equal(r.headers.get('accept-ranges'), 'bytes');
  assert.equal(r.headers.get('content-disposition'),
    `attachment; filename="report _v1_.txt"; filename*=UTF-8''report%20%22v1%22.txt`);
  const h = await fetch(`${srv.base}/v1/artifacts/${art.id}/content`, { method: 'HEAD', headers: { authorization: `Bearer ${key}` } });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get('content-length'), String(art.bytes));
  assert.equal((await h.arrayBuffer()).byteLength, 0);
});

test('If-None-Match → 304; If-Range decides whether Range counts', async () => {
  const etag = `"${art.sha256}"`;
  const n = await get(`/v1/artifacts/${art.id}/content`, { 'if-none-match': etag });
  assert.equal(n.status, 304);
  assert.equal(n.headers.get('etag'), etag);
  assert.equal((await n.arrayBuffer()).byteLength, 0);
  assert.equal((await get(`/v1/artifacts/${art.id}/content`, { 'if-none-match': '"nope", ' + etag })).status, 304);
  assert.equal((await get(`/v1/artifacts/${art.id}/content`, { 'if-none-match': '"nope"' })).status, 200);
  const ok = await get(`/v1/artifacts/${art.id}/content`, { range: 'bytes=0-3', 'if-range': etag });
  assert.equal(ok.status, 206);
  const stale = await get(`/v1/artifacts/${art.id}/content`, { range: 'bytes=0-3', 'if-range': '"old"' });
  assert.equal(stale.status, 200);
  assert.equal(Buffer.from(await stale.arrayBuffer()).length, art.bytes);
});

test('Range edge cases: first byte, last byte, suffix, past the end, malformed', async () => {
  const bytes = Buffer.from(content);
  const size = bytes.length;
  const cases = [
    ['bytes=0-0', 206, 0, 0],
    [`bytes=${size - 1}-${size - 1}`, 206, size - 1, size - 1],
    [`bytes=${size - 1}-`, 206, size - 1, size - 1],
    ['bytes=-5', 206, size - 5, size - 1],
    ['bytes=10-', 206, 10, size - 1],
    [`bytes=5-${size + 100}`, 206, 5, size - 1],
    [`bytes=-${size * 2}`, 206, 0, size - 1],
  ];
  for (const [range, status, a, b] of cases) {
    const r = await get(`/v1/artifacts/${art.id}/content`, { range });
    assert.equal(r.status, status, range);
    assert.equal(r.headers.get('content-range'), `bytes ${a}-${b}/${size}`, range);
    assert.equal(r.headers.get('content-length'), String(b - a + 1), range);
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), bytes.subarray(a, b + 1), range);
  }
  for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
    const r = await get(`/v1/artifacts/${art.id}/content`, { range });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers.get('content-range'), `bytes */${size}`);
    assert.match(r.headers.get('content-type'), /problem\+json/);
  }
  for (const range of ['bytes=5-2', 'bytes=abc', 'bytes=0-1,4-5', 'lines=1-2', 'bytes=-']) {
    const r = await get(`/v1/artifacts/${art.id}/content`, { range });
    assert.equal(r.status, 200, range);
    assert.equal(Buffer.from(await r.arrayBuffer()).length, size);
  }
});

test('another tenant sees none of it', async () => {
  for (const p of [`/v1/artifacts/${art.id}`, `/v1/artifacts/${art.id}/content`, `/v1/jobs/${art.job_id}/artifacts`]) {
    assertProblem(assert, await api(srv.base, other, 'GET', p), 404);
  }
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/artifacts/art_000000000000000000000000'), 404);
  assertProblem(assert, await api(srv.base, key, 'GET', '/v1/artifacts/bogus/content'), 404);
});

test('files larger than 4 GiB are served, ranges past 4 GiB included (sparse file)', async () => {
  const dir = join(srv.dataDir, 'artifacts', 'big');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'sparse.bin');
  const size = 5 * 1024 ** 3;
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  const [[tenant]] = psql(db, `SELECT tenant_id FROM artifacts WHERE id = '${art.id}'`);
  const id = 'art_' + 'b'.repeat(24);
  psql(db, `INSERT INTO artifacts (id, tenant_id, kind, name, bytes, sha256, path)
    VALUES ('${id}', '${tenant}', 'test', 'sparse.bin', ${size}, '${'0'.repeat(64)}', '${path}')`);
  const r = await get(`/v1/artifacts/${id}/content`, { range: 'bytes=5000000000-5000000009' });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get('content-range'), `bytes 5000000000-5000000009/${size}`);
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), Buffer.alloc(10));
  const last = await get(`/v1/artifacts/${id}/content`, { range: 'bytes=-1' });
  assert.equal(last.headers.get('content-range'), `bytes ${size - 1}-${size - 1}/${size}`);
  await last.arrayBuffer();
  const whole = await fetch(`${srv.base}/v1/artifacts/${id}/content`, { method: 'HEAD', headers: { authorization: `Bearer ${key}` } });
  assert.equal(whole.headers.get('content-length'), String(size));
});

test('start-up sweep: temporaries removed, rows without files reported, not deleted', async () => {
  const [[tenant]] = psql(db, `SELECT tenant_id FROM artifacts WHERE id = '${art.id}'`);
  const dataDir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'sweep-'));
  const dir = join(dataDir, 'artifacts', tenant);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '.tmp.half-written'), 'partial');
  writeFileSync(join(dir, 'kept'), 'a finished file stays');
  mkdirSync(join(dataDir, 'datasets', tenant), { recursive: true });
  writeFileSync(join(dataDir, 'datasets', tenant, '.tmp.ds_half'), '{"prompt":');
  const ghost = 'art_' + 'g'.repeat(24);
  psql(db, `INSERT INTO artifacts (id, tenant_id, kind, name, bytes, sha256, path)
    VALUES ('${ghost}', '${tenant}', 'test', 'gone.bin', 1, 'x', '${join(dir, 'gone')}')`);
  const s3 = await start(db, { REFINERY_WORKERS: '0', REFINERY_DATA_DIR: dataDir });
  try {
    assert.ok(!existsSync(join(dir, '.tmp.half-written')));
    assert.ok(existsSync(join(dir, 'kept')));
    assert.ok(!existsSync(join(dataDir, 'datasets', tenant, '.tmp.ds_half')));
    assert.match(s3.logs, new RegExp(`artifact ${ghost} is recorded but its file .* is missing`));
    assert.equal(psql(db, `SELECT count(*) FROM artifacts WHERE id = '${ghost}'`)[0][0], '1');
    const r = await api(s3.base, key, 'GET', `/v1/artifacts/${ghost}/content`);
    assertProblem(assert, r, 500);
  } finally {
    await s3.stop();
  }
});
