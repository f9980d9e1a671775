// A short mixed read/write load (wrk with bench/soak/mixed.lua: job reads,
// lists, events, artifact downloads, job creation, health) against one
// server, its resident memory and open file descriptors sampled every
// second: memory stays flat once warm, the descriptors come back to where
// they were, and every answer is a success. The latency figures are printed,
// not asserted; `make bench` (bench/soak) runs the same load for ten minutes
// against the release build. LOAD_SECONDS sets the length here (20).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, waitFor, sleep } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const SECONDS = Number(process.env.LOAD_SECONDS || 20);
let db, key, srv, live;

before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'load').key;
  // AddressSanitizer keeps freed memory in a quarantine (256 MB by default):
  // shrink it, so that what is measured is the server's own.
  const asan = `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=4:thread_local_quarantine_size_kb=64`;
  srv = await start(db, { REFINERY_WORKERS: '3', REFINERY_ACCESS_LOG: '0', REFINERY_HTTP_THREADS: '4', ASAN_OPTIONS: asan });
});
after(async () => {
  if (live) await api(srv.base, key, 'POST', `/v1/jobs/${live}/cancel`);
  assert.equal((await srv.stop()).code, 0, srv.logs);
});

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]) / 1024;
const fds = () => readdirSync(`/proc/${srv.proc.pid}/fd`).length;

function wrk(seconds, env) {
  return new Promise((res, rej) => {
    const p = spawn('wrk', ['-t2', '-c16', `-d${seconds}s`, '--latency', '-s', join(repo, 'bench', 'soak', 'mixed.lua'), srv.base],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`wrk exited ${code}: ${out}`))));
  });
}

test(`mixed load for ${SECONDS} s: memory flat, descriptors back where they were, no failed request`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  const post = async (body) => (await api(srv.base, key, 'POST', '/v1/jobs', body)).json.id;
  const done = await post({ type: 'test.noop', params: { echo: 'read me' } });
  live = await post({ type: 'test.sleep', params: { ms: 3600000, steps: 3600 } });
  const a = await post({ type: 'test.artifact', params: { content: 'x'.repeat(4096), repeat: 16 } });
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${a}`)).json.status === 'succeeded');
  const art = (await api(srv.base, key, 'GET', `/v1/jobs/${a}/artifacts`)).json.data[0].id;
  const env = { BENCH_KEY: key, SOAK_JOB: done, SOAK_LIVE: live, SOAK_ART: art };
  // Warm: every pool thread has its connection and its caches.
  await wrk(3, env);
  await sleep(1000);
  const fd0 = fds();
  const samples = [];
  const sampler = setInterval(() => samples.push({ rss: rss(), fds: fds() }), 1000);
  let out;
  try {
    out = await wrk(SECONDS, env);
  } finally {
    clearInterval(sampler);
  }
  await sleep(1500); // connections closed, jobs claimed
  const fd1 = fds();
  const reqs = Number(/(\d+) requests in/.exec(out)[1]);
  const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1];
  const p99 = /\n\s+99%\s+(\S+)/.exec(out)[1];
  const half = Math.floor(samples.length / 2);
  const firstHalf = Math.max(...samples.slice(1, half).map((s) => s.rss));
  const lastHalf = Math.max(...samples.slice(half).map((s) => s.rss));
  console.log(`# load: ${reqs} requests in ${SECONDS} s (${(reqs / SECONDS).toFixed(0)}/s), p99 ${p99}, non-2xx ${bad}; ` +
    `RSS max ${firstHalf.toFixed(1)} MiB in the first half, ${lastHalf.toFixed(1)} MiB in the second; fds ${fd0} before, ` +
    `${Math.max(...samples.map((s) => s.fds))} at most, ${fd1} after`);
  assert.equal(bad, 0, out);
  assert.equal(errors, undefined, out);
  assert.ok(reqs > 0);
  // Flat: the second half needs no more memory than the first did (at the
  // rate measured, a leak of half a kilobyte a request would pass 6 MiB).
  assert.ok(lastHalf - firstHalf < 6, `RSS grew from ${firstHalf.toFixed(1)} to ${lastHalf.toFixed(1)} MiB`);
  assert.ok(fd1 <= fd0 + 2, `open descriptors: ${fd0} before, ${fd1} after`);
});
