// `make run` (scripts/run.sh) cannot break itself: a second one in the same
// checkout, or one whose port is taken, refuses before touching anything (the
// first keeps its PostgreSQL); the banner names the port really bound with
// REFINERY_LISTEN=…:0; /readyz says "database unreachable" when it is; Ctrl-C
// ends without make reporting an error; the key is shown once, at creation.
// Each run gets its own REFINERY_RUN_DIR, never the checkout's .run. Last,
// the demo make run runs (scripts/demo.sh, as a user gets it): its pipeline
// on the shipped Vessa Isles ends with the refined student ahead of the base
// one and refined + GPTQ ahead of GPTQ alone, its table and download lines
// printed and working; started again it does not run twice.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { waitFor } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const tmp = process.env.REFINERY_TEST_TMP || '/tmp';
const runA = mkdtempSync(join(tmp, 'run-a-'));
const runC = mkdtempSync(join(tmp, 'run-c-'));
const runD = mkdtempSync(join(tmp, 'run-d-'));
const env = (dir, extra = {}) => {
  const e = { ...process.env, REFINERY_RUN_DIR: dir, REFINERY_LISTEN: '127.0.0.1:0', REFINERY_WORKERS: '0', REFINERY_DEMO: '0', ...extra };
  for (const k of ['REFINERY_DATABASE_URL', 'REFINERY_DATA_DIR', 'REFINERY_MODEL_ROOTS', 'MAKEFLAGS', 'MAKELEVEL']) delete e[k];
  return e;
};

// Start a command in its own process group (as a terminal would), collecting its output.
function launch(cmd, args, e) {
  const p = spawn(cmd, args, { cwd: repo, env: e, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { p, out: '', exit: null };
  p.stdout.on('data', (d) => (s.out += d));
  p.stderr.on('data', (d) => (s.out += d));
  s.done = new Promise((res) => p.on('exit', (code, signal) => res((s.exit = { code, signal }))));
  s.ctrlC = () => process.kill(-p.pid, 'SIGINT');
  return s;
}

const live = [];
after(() => {
  for (const s of live) if (!s.exit) try { process.kill(-s.p.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of [runA, runC, runD]) spawnSync('scripts/pg.sh', ['stop', join(d, 'pg')], { cwd: repo });
});

async function serving(s) {
  const m = await waitFor(() => /refinery is serving on (http:\/\/127\.0\.0\.1:(\d+))/.exec(s.out) || (s.exit && 'exited'), 120000, 100);
  assert.notEqual(m, 'exited', `make run ended early:\n${s.out}`);
  return { url: m[1], port: Number(m[2]) };
}

test('two make run at once, a taken port, readyz without its database, Ctrl-C, the key shown once', async () => {
  const a = launch('make', ['--no-print-directory', 'run'], env(runA));
  live.push(a);
  const { url, port } = await serving(a);
  assert.ok(port > 0, 'the banner names the port picked, not 0');
  assert.equal(readFileSync(join(runA, 'url'), 'utf8').trim(), url);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  const key = readFileSync(join(runA, 'local-key'), 'utf8').trim();
  assert.match(a.out, new RegExp(`created now, shown this once.*\\n\\s+${key}`), a.out);
  assert.doesNotMatch(a.out, /shown only this once/, 'no note that the key was shown when it was not');
  const jobs = await fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(jobs.status, 200);
  const pgPid = readFileSync(join(runA, 'pg', 'data', 'postmaster.pid'), 'utf8').split('\n')[0];

  // A second one in the same checkout refuses at once and touches nothing.
  const b = spawnSync('scripts/run.sh', [], { cwd: repo, env: env(runA), encoding: 'utf8', timeout: 30000 });
  assert.equal(b.status, 1, b.stderr);
  assert.match(b.stderr, /already running from this checkout \(pid \d+\), serving on http:\/\/127\.0\.0\.1:\d+; nothing was started or stopped/);
  assert.equal(readFileSync(join(runA, 'pg', 'data', 'postmaster.pid'), 'utf8').split('\n')[0], pgPid);
  assert.equal((await fetch(`${url}/readyz`)).status, 200, 'the first still serves, its database up');

  // Another checkout on the same port: refused before it starts a database.
  const c = spawnSync('scripts/run.sh', [], { cwd: repo, env: env(runC, { REFINERY_LISTEN: `127.0.0.1:${port}` }), encoding: 'utf8', timeout: 30000 });
  assert.equal(c.status, 1, c.stderr);
  assert.match(c.stderr, new RegExp(`127\\.0\\.0\\.1:${port} is in use by another program; nothing was started.*REFINERY_LISTEN=`));
  assert.ok(!existsSync(join(runC, 'pg')), 'no PostgreSQL was started for it');
  assert.equal((await fetch(`${url}/readyz`)).status, 200);

  // Its database gone: readyz says so (not that the schema is wrong).
  spawnSync('scripts/pg.sh', ['stop', join(runA, 'pg')], { cwd: repo });
  const r = await fetch(`${url}/readyz`);
  assert.equal(r.status, 503);
  assert.match((await r.json()).detail, /^database unreachable/);

  // Ctrl-C: a clean end, no "make: *** … Error".
  a.ctrlC();
  await a.done;
  assert.doesNotMatch(a.out, /make: \*\*\*|Error \d+/, a.out);
  assert.match(a.out, /SIGINT received: shutting down[\s\S]*stopped/);
  assert.ok(!existsSync(join(runA, 'run.pid')));

  // Started again: the key is where it was, and is not printed again.
  const a2 = launch('scripts/run.sh', [], env(runA));
  live.push(a2);
  const again = await serving(a2);
  assert.match(a2.out, /API key for tenant "local": kept in .*local-key \(mode 600\)/);
  assert.ok(!a2.out.includes(key), 'the key is not re-printed');
  assert.equal((await fetch(`${again.url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } })).status, 200);
  process.kill(-a2.p.pid, 'SIGTERM');
  assert.equal((await a2.done).code, 0, a2.out);
  assert.ok(!existsSync(join(runA, 'pg', 'data', 'postmaster.pid')), 'its PostgreSQL stopped with it');
});

test('the demo: make run refines the shipped student end to end, once', { timeout: 20 * 60000 }, async () => {
  const d = launch('make', ['--no-print-directory', 'run'], env(runD, { REFINERY_DEMO: '1', REFINERY_WORKERS: '1' }));
  live.push(d);
  const { url } = await serving(d);
  const done = await waitFor(() => /the 4-bit model \((mdl_\w+)\)/.exec(d.out) || /the demo did not finish/.test(d.out) || (d.exit && 'exited'), 18 * 60000, 500);
  assert.ok(Array.isArray(done), `the demo did not end well:\n${d.out}`);
  const r = JSON.parse(readFileSync(join(runD, 'demo', 'result.json'), 'utf8'));
  assert.equal(r.final_model, done[1]);
  // the world's test set is the one with multiple-choice rows
  const world = r.evaluation_datasets.find((x) => x.name === 'vessa-isles-test');
  assert.ok(world, JSON.stringify(r.evaluation_datasets));
  const acc = Object.fromEntries(r.rows.map((x) => [x.variant, x.accuracy[world.id].acc]));
  assert.ok(acc.muon > acc.base, `refined ${acc.muon} vs base ${acc.base}`);
  assert.ok(acc['muon-gptq'] > acc['base-gptq'], `refined + GPTQ ${acc['muon-gptq']} vs GPTQ alone ${acc['base-gptq']}`);
  assert.ok(acc.teacher > acc.muon, `teacher ${acc.teacher}`);
  assert.deepEqual(r.comparisons[world.id].refined_beats_base, true);
  // the table as `refinery report --text` prints it, then the download lines, which work
  assert.match(d.out, /variant\s+acc@1\s+drop@1[\s\S]*refined \+ GPTQ \(Muon\)/);
  const line = /curl -s -H "Authorization: Bearer \$\(cat (\S+)\)" -o model\.safetensors (\S+)/.exec(d.out);
  assert.ok(line, d.out);
  const key = readFileSync(line[1].startsWith('/') ? line[1] : join(repo, line[1]), 'utf8').trim();
  const st = await fetch(line[2], { headers: { authorization: `Bearer ${key}` } });
  assert.equal(st.status, 200);
  const buf = Buffer.from(await st.arrayBuffer());
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString());
  assert.ok(Object.keys(header).some((k) => k.endsWith('.qweight')), 'a GPTQ checkpoint');
  const rep = await fetch(`${url}/v1/jobs/${readFileSync(join(runD, 'demo', 'job'), 'utf8').trim()}/report`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(rep.status, 200);
  d.ctrlC();
  await d.done;
  assert.doesNotMatch(d.out, /make: \*\*\*|Error \d+/);
  // started again: it says where the first run's report is and submits nothing
  const d2 = launch('scripts/run.sh', [], env(runD, { REFINERY_DEMO: '1', REFINERY_WORKERS: '1' }));
  live.push(d2);
  await serving(d2);
  await waitFor(() => /the demo pipeline ran on an earlier start/.test(d2.out) || (d2.exit && 'exited'), 60000, 100);
  assert.match(d2.out, /the demo pipeline ran on an earlier start: job job_\w+/);
  process.kill(-d2.p.pid, 'SIGTERM');
  assert.equal((await d2.done).code, 0, d2.out);
});
