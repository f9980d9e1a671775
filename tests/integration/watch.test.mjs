// refinery jobs watch: a client of the HTTP API that follows a job's event
// stream to its end (progress bar, logs, metrics, the result), with the
// server and key from the environment or flags; its exit status says how
// the job ended.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createDb, migrate, createKey, start, api, BIN, run } from './harness.mjs';

let srv, key;
before(async () => {
  const db = createDb();
  migrate(db);
  key = createKey(db, 'watcher').key;
  srv = await start(db, { REFINERY_WORKERS: '1' });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

function watch(args, env) {
  return new Promise((res) => {
    const p = spawn(BIN, ['jobs', 'watch', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => res({ code, out, err }));
  });
}

test('watch a job from queued to its result: bar, logs, status, result; exit 0', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 1200, steps: 4 } })).json;
  const w = await watch([j.id], { REFINERY_URL: srv.base, REFINERY_API_KEY: key });
  assert.equal(w.code, 0, w.out + w.err);
  assert.match(w.out, new RegExp(`^job ${j.id} \\(test\\.sleep\\) on ${srv.base.replaceAll('.', '\\.')}\\n`));
  for (const pct of ['25', '50', '75', '100'])
    assert.match(w.out, new RegExp(`running \\[#*-*\\] +${pct}%`), `a bar at ${pct}%: ${w.out}`);
  assert.match(w.out, /\[##############################\] 100%/);
  assert.match(w.out, /info: attempt started/);
  assert.match(w.out, /succeeded after [\d.]+ s \(attempts 1\)/);
  const result = JSON.parse(/result: ([\s\S]*)$/.exec(w.out)[1]);
  assert.deepEqual(result, { steps: 4, attempt: 1, resumed_from: 0 });
});

test('a failed job: its error, exit 1; a finished one replays; flags beat the environment', async () => {
  const j = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.fail', params: { final: true } })).json;
  const w = await watch(['--url', srv.base + '/', '--api-key', key, j.id], { REFINERY_URL: 'http://127.0.0.1:1', REFINERY_API_KEY: 'rfk_wrong' });
  assert.equal(w.code, 1, w.out + w.err);
  assert.match(w.out, /failed after [\d.]+ s \(attempts 1\)\nerror: test failure that retrying cannot fix/);
  const again = await watch(['--url', srv.base, '--api-key', key, j.id]);
  assert.equal(again.code, 1);
  assert.match(again.out, /status|failed/);
});

test('cannot watch: a bad key, an unknown job, no server, no key — exit 2 with a sentence', async () => {
  const env = { REFINERY_URL: srv.base, REFINERY_API_KEY: key };
  let w = await watch(['job_000000000000000000000000'], env);
  assert.equal(w.code, 2);
  assert.match(w.err, /HTTP 404: no job with id 'job_000000000000000000000000'/);
  w = await watch(['job_000000000000000000000000'], { ...env, REFINERY_API_KEY: 'rfk_nope' });
  assert.equal(w.code, 2);
  assert.match(w.err, /HTTP 401: a valid API key is required/);
  w = await watch(['job_000000000000000000000000'], { ...env, REFINERY_URL: 'http://127.0.0.1:1' });
  assert.equal(w.code, 2);
  assert.match(w.err, /cannot reach http:\/\/127\.0\.0\.1:1/);
  const r = run(['jobs', 'watch', 'job_x'], { REFINERY_API_KEY: '' }, { cwd: '/' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no API key: give --api-key KEY or set REFINERY_API_KEY/);
  assert.equal(run(['jobs', 'watch']).code, 2);
});
