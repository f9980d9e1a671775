// Artifacts: registered by a job, listed, downloaded from the file with ETag,
// conditional requests and single byte ranges; files past 4 GiB; the sweep of
// the data folder (service/sweep.h).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync, openSync, ftruncateSync, closeSync, existsSync, readFileSync, utimesSync } from 'node:fs';
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

test('start-up sweep: interrupted moves finished, leftovers of ended jobs removed, what may be in flight kept, rows without files reported', async () => {
  const [[tenant, jobId]] = psql(db, `SELECT tenant_id, job_id FROM artifacts WHERE id = '${art.id}'`);
  const dataDir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'sweep-'));
  const dir = join(dataDir, 'artifacts', tenant);
  mkdirSync(dir, { recursive: true });
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  const aged = (p, text) => { writeFileSync(p, text); utimesSync(p, old, old); };
  // temporaries that name no job: by their age
  aged(join(dir, '.tmp.half-written'), 'partial');
  writeFileSync(join(dir, '.tmp.fresh'), 'maybe still being written');
  writeFileSync(join(dir, 'kept'), 'a file that is not an artifact stays');
  mkdirSync(join(dataDir, 'datasets', tenant), { recursive: true });
  aged(join(dataDir, 'datasets', tenant, '.tmp.ds_half'), '{"prompt":');
  writeFileSync(join(dataDir, 'datasets', tenant, '.tmp.ds_live'), '{"prompt":'); // an upload under way
  // a job's temporaries (the job has ended): recorded → moved into place; not → removed
  const moved = 'art_' + 'm'.repeat(24), never = 'art_' + 'n'.repeat(24), stray = 'art_' + 's'.repeat(24);
  writeFileSync(join(dir, `.tmp.${jobId}.${moved}`), 'recorded, not moved');
  psql(db, `INSERT INTO artifacts (id, tenant_id, job_id, kind, name, bytes, sha256, path)
    VALUES ('${moved}', '${tenant}', '${jobId}', 'test', 'moved.txt', 19, 'x', '${join(dir, moved)}')`);
  writeFileSync(join(dir, `.tmp.${jobId}.${never}`), 'never recorded');
  writeFileSync(join(dir, stray), 'a file no row names');
  // a running job's temporary may be in flight: kept; so are its folder and a queued job's
  const [[running]] = psql(db, `INSERT INTO jobs (id, tenant_id, type, params, status, lease_owner, lease_expires_at)
    VALUES ('job_${'r'.repeat(24)}', '${tenant}', 'test.noop', '{}', 'running', 'elsewhere:1:x', now() + interval '1 hour')
    RETURNING id`);
  const [[queued]] = psql(db, `INSERT INTO jobs (id, tenant_id, type, params, run_after)
    VALUES ('job_${'q'.repeat(24)}', '${tenant}', 'test.noop', '{}', now() + interval '1 hour') RETURNING id`);
  writeFileSync(join(dir, `.tmp.${running}.${'art_' + 'p'.repeat(24)}`), 'in flight');
  for (const j of [running, queued, jobId]) {
    mkdirSync(join(dataDir, 'jobs', j), { recursive: true });
    writeFileSync(join(dataDir, 'jobs', j, 'checkpoint'), 'state');
  }
  const ghost = 'art_' + 'g'.repeat(24);
  psql(db, `INSERT INTO artifacts (id, tenant_id, kind, name, bytes, sha256, path)
    VALUES ('${ghost}', '${tenant}', 'test', 'gone.bin', 1, 'x', '${join(dir, 'gone')}')`);
  const s3 = await start(db, { REFINERY_WORKERS: '0', REFINERY_DATA_DIR: dataDir });
  try {
    assert.ok(!existsSync(join(dir, '.tmp.half-written')));
    assert.ok(existsSync(join(dir, '.tmp.fresh')));
    assert.ok(existsSync(join(dir, 'kept')));
    assert.ok(!existsSync(join(dataDir, 'datasets', tenant, '.tmp.ds_half')));
    assert.ok(existsSync(join(dataDir, 'datasets', tenant, '.tmp.ds_live')));
    assert.ok(!existsSync(join(dir, `.tmp.${jobId}.${moved}`)));
    assert.equal(readFileSync(join(dir, moved), 'utf8'), 'recorded, not moved');
    assert.ok(!existsSync(join(dir, `.tmp.${jobId}.${never}`)));
    assert.ok(!existsSync(join(dir, stray)));
    assert.ok(existsSync(join(dir, `.tmp.${running}.${'art_' + 'p'.repeat(24)}`)));
    assert.ok(existsSync(join(dataDir, 'jobs', running, 'checkpoint')));
    assert.ok(existsSync(join(dataDir, 'jobs', queued, 'checkpoint')));
    assert.ok(!existsSync(join(dataDir, 'jobs', jobId)), 'the ended job\'s folder went');
    assert.match(s3.logs, new RegExp(`artifact ${ghost} is recorded but its file .* is missing`));
    assert.equal(psql(db, `SELECT count(*) FROM artifacts WHERE id = '${ghost}'`)[0][0], '1');
    const r = await api(s3.base, key, 'GET', `/v1/artifacts/${ghost}/content`);
    assertProblem(assert, r, 500);
  } finally {
    await s3.stop();
    psql(db, `DELETE FROM jobs WHERE id IN ('${running}', '${queued}')`);
    psql(db, `DELETE FROM artifacts WHERE id IN ('${moved}', '${ghost}')`);
  }
});
