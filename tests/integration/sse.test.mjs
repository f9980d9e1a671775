// Server-Sent Events for job events: live delivery, the end of the stream at
// the job's final state, Last-Event-ID resume, keep-alives, the cap with 503,
// slots freed when a client leaves, and a clean end at shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDb, migrate, createKey, start, api, waitFor, sleep } from './harness.mjs';

let db, srv, key, other;

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'sse').key;
  other = createKey(db, 'someone-else').key;
  srv = await start(db, { REFINERY_WORKERS: '2', REFINERY_SSE_MAX_STREAMS: '3', REFINERY_SSE_PING_MS: '300' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

// Open a stream; collects parsed events and comments until it ends or is aborted.
function open(path, headers = {}, k = key) {
  const ctl = new AbortController();
  const s = { events: [], comments: 0, status: 0, headers: null, ended: false, ctl };
  s.done = (async () => {
    const res = await fetch(srv.base + path, {
      headers: { authorization: `Bearer ${k}`, accept: 'text/event-stream', ...headers }, signal: ctl.signal,
    });
    s.status = res.status;
    s.headers = res.headers;
    if (res.status !== 200) {
      s.body = await res.text();
      return;
    }
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(':')) { s.comments++; continue; }
          const f = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
          s.events.push({ id: Number(f.id), event: f.event, data: JSON.parse(f.data) });
        }
      }
      s.ended = true;
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    }
  })();
  return s;
}

const job = async (body) => (await api(srv.base, key, 'POST', '/v1/jobs', body)).json;

test('a stream delivers the job\'s events live and ends at its final state', async () => {
  const j = await job({ type: 'test.sleep', params: { ms: 900, steps: 3 } });
  const s = open(`/v1/jobs/${j.id}/events`);
  await s.done;
  assert.equal(s.status, 200);
  assert.equal(s.headers.get('content-type'), 'text/event-stream');
  assert.equal(s.headers.get('cache-control'), 'no-cache');
  assert.ok(s.ended, 'the server closed the stream');
  const kinds = s.events.map((e) => e.event);
  // the attempt's start, then the test job's record of its execution
  assert.deepEqual(kinds, ['log', 'log', 'progress', 'progress', 'progress', 'status']);
  assert.equal(s.events.at(-1).data.data.status, 'succeeded');
  assert.deepEqual(s.events.map((e) => e.data.object), Array(6).fill('job.event'));
  for (let i = 1; i < s.events.length; i++) assert.ok(s.events[i].id > s.events[i - 1].id);
  // The same events as the JSON list.
  const list = await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events`);
  assert.deepEqual(s.events.map((e) => e.data), list.json.data);
});

test('Last-Event-ID resumes after the given event; ?after too', async () => {
  const j = await job({ type: 'test.sleep', params: { ms: 300, steps: 3 } });
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).json.status === 'succeeded');
  const all = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/events`)).json.data;
  const s = open(`/v1/jobs/${j.id}/events`, { 'last-event-id': String(all[1].id) });
  await s.done;
  assert.deepEqual(s.events.map((e) => e.id), all.slice(2).map((e) => e.id));
  const q = open(`/v1/jobs/${j.id}/events?after=${all[3].id}`);
  await q.done;
  assert.deepEqual(q.events.map((e) => e.id), all.slice(4).map((e) => e.id));
  const bad = open(`/v1/jobs/${j.id}/events`, { 'last-event-id': 'soon' });
  await bad.done;
  assert.equal(bad.status, 422);
});

test('an idle stream gets keep-alive comments; another tenant gets 404', async () => {
  const j = await job({ type: 'test.sleep', params: { ms: 60000, steps: 1 } });
  const s = open(`/v1/jobs/${j.id}/events`);
  await waitFor(() => s.comments >= 2, 5000);
  s.ctl.abort();
  await s.done;
  await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  const o = open(`/v1/jobs/${j.id}/events`, {}, other);
  await o.done;
  assert.equal(o.status, 404);
});

test('streams are capped with 503 + Retry-After; a client that leaves frees its slot', async () => {
  const j = await job({ type: 'test.sleep', params: { ms: 60000, steps: 1 } });
  await waitFor(() => fetch(`${srv.base}/metrics`).then((r) => r.text()).then(() => true));
  const streams = [open(`/v1/jobs/${j.id}/events`), open(`/v1/jobs/${j.id}/events`), open(`/v1/jobs/${j.id}/events`)];
  await waitFor(() => streams.every((s) => s.status === 200));
  const extra = open(`/v1/jobs/${j.id}/events`);
  await extra.done;
  assert.equal(extra.status, 503);
  assert.equal(extra.headers.get('retry-after'), '5');
  streams[0].ctl.abort();
  await streams[0].done;
  const again = await waitFor(async () => {
    const s = open(`/v1/jobs/${j.id}/events`);
    await sleep(200);
    if (s.status === 200) return s;
    await s.done;
    return null;
  }, 5000);
  // Ordinary requests were never starved meanwhile.
  assert.equal((await api(srv.base, key, 'GET', `/v1/jobs/${j.id}`)).status, 200);
  // Cancelling the job ends every stream on it.
  await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
  for (const s of [streams[1], streams[2], again]) {
    await s.done;
    assert.ok(s.ended);
    assert.equal(s.events.at(-1).data.data.status, 'cancelled');
  }
});

test('shutdown ends open streams and exits 0', async () => {
  const s2 = await start(db, { REFINERY_WORKERS: '0' });
  const j = (await api(s2.base, key, 'POST', '/v1/jobs', { type: 'test.noop' })).json;
  const ctl = new AbortController();
  const res = await fetch(`${s2.base}/v1/jobs/${j.id}/events`, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal: ctl.signal });
  assert.equal(res.status, 200);
  const drained = (async () => { for await (const _ of res.body); return true; })();
  await sleep(200);
  const { code } = await s2.stop();
  assert.equal(code, 0, s2.logs);
  assert.equal(await drained, true);
});
