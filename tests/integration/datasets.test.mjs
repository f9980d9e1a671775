// Datasets: JSONL uploads streamed to disk and validated line by line; a bad
// line anywhere stores nothing; listing, download, delete; a 1 GB upload with
// flat memory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createDb, migrate, createKey, start, api, assertProblem, psql, waitFor } from './harness.mjs';

let db, srv, key, other;
const upload = (name, body, headers = {}, k = key) =>
  api(srv.base, k, 'POST', `/v1/datasets${name === null ? '' : `?name=${encodeURIComponent(name)}`}`, body,
    { 'content-type': 'application/x-ndjson', ...headers });
const jsonl = (rows) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const files = () => {
  try {
    return readdirSync(join(srv.dataDir, 'datasets'), { recursive: true }).filter((f) => /\.jsonl$|\.tmp\./.test(f));
  } catch { return []; }
};

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'ds').key;
  other = createKey(db, 'ds-other').key;
  srv = await start(db, { REFINERY_WORKERS: '0', REFINERY_MAX_DATASET_BYTES: String(2 * 1024 ** 3) });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('upload: counts rows per split, multiple choice, bytes, sha256; download is byte-identical', async () => {
  const rows = [
    { prompt: 'What is 2+2?', response: '4' },
    { prompt: 'Capital of France?', response: 'Paris', split: 'validation' },
    { prompt: 'Pick one', choices: ['a', 'b', 'c'], answer: 2, split: 'test' },
    '',
    { prompt: 'Spaces  and\ttabs', response: 'ünïcødé ✓', id: 'extra fields are kept' },
  ];
  const body = jsonl(rows).slice(0, -1); // no final newline: the last line still counts
  const r = await upload('arith', body);
  assert.equal(r.status, 201, r.text);
  const d = r.json;
  assert.match(d.id, /^ds_[0-9a-z]{24}$/);
  assert.equal(d.object, 'dataset');
  assert.equal(d.name, 'arith');
  assert.equal(d.schema, 'prompt_response');
  assert.deepEqual(d.rows, { train: 2, validation: 1, test: 1 });
  assert.equal(d.multiple_choice, 1);
  assert.equal(d.bytes, Buffer.byteLength(body));
  assert.equal(d.sha256, createHash('sha256').update(body).digest('hex'));
  assert.equal(d.source, 'upload');
  assert.deepEqual((await api(srv.base, key, 'GET', `/v1/datasets/${d.id}`)).json, d);
  const dl = await fetch(`${srv.base}/v1/datasets/${d.id}/content`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(dl.status, 200);
  assert.equal(await dl.text(), body);
  assert.equal(dl.headers.get('etag'), `"${d.sha256}"`);
  assert.match(dl.headers.get('content-disposition'), /filename="arith\.jsonl"/);
  const part = await fetch(`${srv.base}/v1/datasets/${d.id}/content`, { headers: { authorization: `Bearer ${key}`, range: 'bytes=2-7' } });
  assert.equal(part.status, 206);
  assert.equal(await part.text(), body.slice(2, 8));
  const msgs = await upload('chat', jsonl([{ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }] }]));
  assert.equal(msgs.status, 201, msgs.text);
  assert.equal(msgs.json.schema, 'messages');
});

test('a bad line anywhere: 422 naming the line and the field, nothing stored', async () => {
  const good = { prompt: 'p', response: 'r' };
  const cases = [
    [[good, good, '{"prompt": "p", "response": 1}', good], 3, 'response'],
    [[good, '{not json', good], 2, undefined],
    [[good, '[1,2]'], 2, undefined],
    [[good, { prompt: 'p' }], 2, 'response'],
    [[{ messages: [{ role: 'robot', content: 'x' }] }], 1, 'messages[0].role'],
    [[{ messages: [{ role: 'user', content: 5 }] }], 1, 'messages[0].content'],
    [[{ messages: [] }], 1, 'messages'],
    [[good, { messages: [{ role: 'user', content: 'x' }] }], 2, 'messages'],
    [[good, { prompt: 'p', response: 'r', split: 'dev' }], 2, 'split'],
    [[{ prompt: 'p', choices: ['only one'], answer: 0 }], 1, 'choices'],
    [[{ prompt: 'p', choices: ['a', 'b'], answer: 2 }], 1, 'answer'],
    [[{ prompt: 'p', choices: ['a', 7], answer: 0 }], 1, 'choices[1]'],
    [[{ prompt: 'p', response: 'r', prompt2: 1 }, '{"prompt":"p","prompt":"q","response":"r"}'], 2, undefined],
  ];
  const before_ = psql(db, 'SELECT count(*) FROM datasets')[0][0];
  for (const [rows, line, field] of cases) {
    const r = await upload('bad', jsonl(rows));
    assertProblem(assert, r, 422, field);
    assert.equal(r.json.line, line, r.text);
    assert.match(r.json.detail, new RegExp(`^line ${line}: `));
  }
  // The bad line in the middle of a large upload, arriving in many pieces.
  const big = Array.from({ length: 20000 }, (_, i) => (i === 12345 ? { prompt: 'p', response: null } : { prompt: `q${i}`, response: 'x'.repeat(50) }));
  const r = await upload('big-bad', jsonl(big));
  assertProblem(assert, r, 422, 'response');
  assert.equal(r.json.line, 12346);
  for (const [name, body, status] of [[null, jsonl([good]), 422], ['', jsonl([good]), 422], ['x', '', 422], ['x', '\n\n', 422]])
    assertProblem(assert, await upload(name, body), status);
  assertProblem(assert, await upload('x', '--b--', { 'content-type': 'multipart/form-data; boundary=b' }), 415);
  assert.equal(psql(db, 'SELECT count(*) FROM datasets')[0][0], before_);
  await waitFor(() => files().every((f) => !f.includes('.tmp.')), 2000);
  assert.equal(files().length, Number(before_), 'no file beyond the recorded ones');
});

test('the upload cap is its own, separate from the JSON body cap', async () => {
  const s2 = await start(db, { REFINERY_WORKERS: '0', REFINERY_MAX_DATASET_BYTES: '1000', REFINERY_MAX_BODY_BYTES: '1024' });
  try {
    const rows = jsonl(Array.from({ length: 40 }, () => ({ prompt: 'p', response: 'r' })));
    const r = await api(s2.base, key, 'POST', '/v1/datasets?name=capped', rows);
    assertProblem(assert, r, 413);
    const small = await api(s2.base, key, 'POST', '/v1/datasets?name=ok', jsonl([{ prompt: 'p', response: 'r' }]));
    assert.equal(small.status, 201);
  } finally {
    await s2.stop();
  }
});

test('list, cross-tenant 404, delete, 409 while a job uses it', async () => {
  const a = (await upload('one', jsonl([{ prompt: 'p', response: 'r' }]))).json;
  const b = (await upload('two', jsonl([{ prompt: 'p', response: 'r' }]))).json;
  const list = await api(srv.base, key, 'GET', '/v1/datasets?limit=1');
  assert.equal(list.json.data[0].id, b.id);
  assert.equal(list.json.has_more, true);
  const next = await api(srv.base, key, 'GET', `/v1/datasets?limit=1&after=${b.id}`);
  assert.equal(next.json.data[0].id, a.id);
  for (const [m, p] of [['GET', `/v1/datasets/${a.id}`], ['GET', `/v1/datasets/${a.id}/content`], ['DELETE', `/v1/datasets/${a.id}`]])
    assertProblem(assert, await api(srv.base, other, m, p), 404);
  assert.equal((await api(srv.base, other, 'GET', '/v1/datasets')).json.data.length, 0);
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.noop', params: { dataset: a.id } })).json;
  assertProblem(assert, await api(srv.base, key, 'DELETE', `/v1/datasets/${a.id}`), 409);
  await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  const del = await api(srv.base, key, 'DELETE', `/v1/datasets/${a.id}`);
  assert.equal(del.status, 200);
  assert.deepEqual(del.json, { id: a.id, object: 'dataset.deleted', deleted: true });
  assertProblem(assert, await api(srv.base, key, 'GET', `/v1/datasets/${a.id}`), 404);
  assertProblem(assert, await api(srv.base, key, 'DELETE', `/v1/datasets/${a.id}`), 404);
  assert.ok(!files().some((f) => f.includes(a.id)), 'the file went with the row');
});

test('a 1 GB upload streams to disk with flat memory', async () => {
  // AddressSanitizer keeps freed memory in a quarantine (256 MB by default);
  // shrink it so that what is measured is ours.
  const asan = `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=4:thread_local_quarantine_size_kb=64`;
  const srv = await start(db, { REFINERY_WORKERS: '0', REFINERY_MAX_DATASET_BYTES: String(2 * 1024 ** 3), ASAN_OPTIONS: asan });
  try {
    await bigUpload(srv);
  } finally {
    await srv.stop();
  }
});

async function bigUpload(srv) {
  const line = JSON.stringify({ prompt: 'p'.repeat(100), response: 'r'.repeat(65000) }) + '\n';
  const total = 1024 ** 3;
  const n = Math.ceil(total / line.length);
  const chunk = Buffer.from(line.repeat(16));
  let sent = 0;
  const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
  const before_ = hwm();
  const body = Readable.from((async function* () {
    while (sent < n) {
      const k = Math.min(16, n - sent);
      sent += k;
      yield k === 16 ? chunk : Buffer.from(line.repeat(k));
    }
  })());
  const res = await fetch(`${srv.base}/v1/datasets?name=huge`, {
    method: 'POST', body, duplex: 'half',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
  });
  const d = await res.json();
  assert.equal(res.status, 201, JSON.stringify(d));
  assert.equal(d.rows.train, n);
  assert.equal(d.bytes, n * line.length);
  const grew = (hwm() - before_) / 1024;
  assert.ok(grew < 64, `peak RSS grew by ${grew.toFixed(1)} MiB for a ${(d.bytes / 1024 ** 3).toFixed(2)} GiB upload`);
  console.log(`# 1 GiB upload: peak RSS grew by ${grew.toFixed(1)} MiB`);
  await api(srv.base, key, 'DELETE', `/v1/datasets/${d.id}`);
}

test('a write that fails (as on a full disk) fails the upload clearly and keeps nothing', async () => {
  const s2 = await start(db, { REFINERY_WORKERS: '0' }, 'serve', { fileSizeKiB: 64 });
  try {
    const before_ = psql(db, 'SELECT count(*) FROM datasets')[0][0];
    const rows = jsonl(Array.from({ length: 3000 }, (_, i) => ({ prompt: `p${i}`, response: 'r'.repeat(100) })));
    const r = await api(s2.base, key, 'POST', '/v1/datasets?name=too-big-for-disk', rows);
    assertProblem(assert, r, 507);
    assert.match(r.json.detail, /writing the dataset failed: File too large/);
    assert.equal(psql(db, 'SELECT count(*) FROM datasets')[0][0], before_);
    const left = readdirSync(join(s2.dataDir, 'datasets'), { recursive: true }).filter((f) => /\.tmp\.|\.jsonl$/.test(f));
    assert.deepEqual(left, []);
    // A small one still fits.
    const ok = await api(s2.base, key, 'POST', '/v1/datasets?name=fits', jsonl([{ prompt: 'p', response: 'r' }]));
    assert.equal(ok.status, 201);
  } finally {
    await s2.stop();
  }
});
