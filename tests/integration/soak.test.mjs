// Soak under kill -9: an API process and three `refinery worker` processes
// sharing one data folder; jobs of every test type submitted continuously;
// worker processes killed -9 at random moments and restarted, as a
// supervisor would (test.crash jobs take theirs down too). At the end every
// job is in a final state, the one its type calls for; each ran to success
// once in effect (one execution per attempt — test jobs record theirs —, the
// result of the last attempt, one artifact or model per job); no job stayed
// running past its lease at any moment; the data folder holds nothing that
// no row names. SOAK_SECONDS sets the length (60 here; `make bench` runs it
// longer). The figures go to stdout (and to $SOAK_REPORT as JSON).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { createDb, migrate, createKey, start, api, waitFor, sleep, psql } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const SECONDS = Number(process.env.SOAK_SECONDS || 60);
const ENV = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '200', REFINERY_RETRY_MAX_MS: '2000', REFINERY_POLL_MS: '100' };
const FINAL = ['succeeded', 'failed', 'cancelled'];

let db, key, srv, data, src;
before(async () => {
  db = createDb();
  migrate(db);
  key = createKey(db, 'soak').key;
  data = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'soak-data-'));
  src = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'soak-model-'));
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'qwen2_f16_bias'), src, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(src, f));
  srv = await start(db, { ...ENV, REFINERY_WORKERS: '0', REFINERY_DATA_DIR: data });
});
after(async () => {
  if (srv) assert.equal((await srv.stop()).code, 0, srv.logs);
  rmSync(data, { recursive: true, force: true });
  rmSync(src, { recursive: true, force: true });
});

// Three worker slots, each restarted as soon as its process ends.
function supervisor() {
  const sup = { slots: [null, null, null], stopping: false, starts: 0, kills: 0, crashes: 0, failedStarts: 0 };
  const run = async (i) => {
    while (!sup.stopping) {
      let w;
      try {
        w = await start(db, { ...ENV, REFINERY_WORKERS: '2', REFINERY_DATA_DIR: data }, 'worker');
      } catch { // killed, or taken down by a crash job, before it said it had started
        sup.failedStarts++;
        continue;
      }
      sup.starts++;
      sup.slots[i] = w;
      const end = await w.exitedPromise;
      sup.slots[i] = null;
      if (!w.killedByUs && !sup.stopping) sup.crashes++;
      if (!w.killedByUs && sup.stopping && end.code !== 0) sup.badExit = `${end.code ?? end.signal}: ${w.logs.slice(-2000)}`;
    }
  };
  sup.done = Promise.all(sup.slots.map((_, i) => run(i)));
  sup.kill = () => {
    const alive = sup.slots.filter(Boolean);
    if (!alive.length) return;
    const w = alive[Math.floor(Math.random() * alive.length)];
    w.killedByUs = true;
    w.proc.kill('SIGKILL');
    sup.kills++;
  };
  sup.stop = async () => {
    sup.stopping = true;
    await Promise.all(sup.slots.filter(Boolean).map((w) => w.stop()));
    await sup.done;
  };
  return sup;
}

// One job of each kind, in turn; what each must end as.
const KINDS = [
  (n) => ({ body: { type: 'test.noop', params: { echo: n } }, want: 'succeeded' }),
  (n) => ({ body: { type: 'test.sleep', params: { ms: 200 + (n % 7) * 150, steps: 2 + (n % 5) } }, want: 'succeeded' }),
  (n) => ({ body: { type: 'test.fail', params: { fail_attempts: 1 } }, want: 'succeeded' }),
  (n) => ({ body: { type: 'test.fail', params: { final: true } }, want: 'failed' }),
  (n) => ({ body: { type: 'test.artifact', params: { content: `soak ${n} `, repeat: 1 + (n % 4000), name: `a-${n}.txt` } }, want: 'succeeded' }),
  (n) => ({ body: { type: 'test.model', params: { from: src, name: `m-${n}` } }, want: 'succeeded' }),
  (n) => ({ body: { type: 'test.crash', params: { signal: ['segv', 'fpe', 'abort'][n % 3] }, max_attempts: 2 }, want: 'failed', crash: true }),
];

function filesUnder(dir, rel = '') {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? [join(rel, e.name) + '/', ...filesUnder(join(dir, e.name), join(rel, e.name))] : [join(rel, e.name)]);
}

test(`soak: ${SECONDS} s of jobs of every test type, worker processes killed -9 and restarted; every job done once in effect, nothing left behind`, { timeout: (SECONDS + 300) * 1000 }, async () => {
  const sup = supervisor();
  const jobs = [];
  const t0 = Date.now();
  let stuck = 0, samples = 0, n = 0;
  const until = t0 + SECONDS * 1000;
  // The submitter: about five jobs a second, every kind in turn; crash jobs
  // one in 20, so that the workers are mostly up.
  const submit = (async () => {
    while (Date.now() < until) {
      const kind = n % 20 === 19 ? KINDS[6] : KINDS[n % 6];
      const j = kind(n++);
      const max = j.body.max_attempts ?? 10;
      const r = await api(srv.base, key, 'POST', '/v1/jobs', { ...j.body, max_attempts: max });
      assert.equal(r.status, 201, r.text);
      jobs.push({ id: r.json.id, ...j, max });
      await sleep(150 + Math.random() * 100);
    }
  })();
  // The killer: every 1.5 to 4 s, one worker process at random.
  const killer = (async () => {
    while (Date.now() < until) {
      await sleep(1500 + Math.random() * 2500);
      if (Date.now() < until) sup.kill();
    }
  })();
  // The watcher: no job may stay running long past its lease (the rescuer
  // runs every lease/2 in the API process at least).
  const watcher = (async () => {
    while (Date.now() < until + 5000) {
      samples++;
      stuck = Math.max(stuck, Number(psql(db, `SELECT count(*) FROM jobs WHERE status = 'running'
        AND lease_expires_at < now() - interval '5 seconds'`)[0][0]));
      await sleep(1000);
    }
  })();
  await Promise.all([submit, killer, watcher]);
  // Drain: every job reaches its end with the workers left alone.
  const left = () => Number(psql(db, "SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')")[0][0]);
  try {
    await waitFor(async () => left() === 0, 180000, 250);
  } finally {
    await sup.stop();
  }
  const elapsed = (Date.now() - t0) / 1000;
  assert.equal(stuck, 0, 'a job stayed running past its lease');
  assert.equal(sup.badExit, undefined, `a worker did not stop cleanly: ${sup.badExit}`);
  assert.equal(srv.exited, null, 'the API process stayed up');
  assert.ok(sup.kills >= Math.floor(SECONDS / 5), `${sup.kills} kills`);

  // Every job: the end its type calls for, once.
  const rows = new Map(psql(db, `SELECT id, status, attempts, max_attempts, coalesce(result::text, 'null'), coalesce(error, '')
    FROM jobs`).map(([id, status, attempts, max, result, error]) => [id, { status, attempts: +attempts, max: +max, result: JSON.parse(result), error }]));
  const execs = new Map();
  for (const [id, attempt, count] of psql(db, `SELECT job_id, data->>'attempt', count(*) FROM job_events
    WHERE data->>'message' = 'test execution' GROUP BY 1, 2`)) execs.set(`${id}/${attempt}`, +count);
  const statuses = new Map(psql(db, "SELECT job_id, count(*) FROM job_events WHERE kind = 'status' GROUP BY 1").map(([id, c]) => [id, +c]));
  const arts = new Map(psql(db, 'SELECT job_id, count(*), min(bytes), min(sha256) FROM artifacts GROUP BY 1').map(([id, c, b, h]) => [id, { c: +c, b: +b, h }]));
  const models = new Map(psql(db, 'SELECT source_job_id, count(*), min(id) FROM models GROUP BY 1').map(([id, c, m]) => [id, { c: +c, m }]));
  const tally = { succeeded: 0, failed: 0, rescued: 0, reruns: 0 };
  for (const j of jobs) {
    const r = rows.get(j.id);
    assert.equal(r.status, j.want, `${j.id} (${j.body.type}) ended ${r.status}: ${r.error}`);
    tally[r.status]++;
    assert.equal(statuses.get(j.id), 1, `${j.id}: one final status event`);
    for (const [k, c] of execs) if (k.startsWith(`${j.id}/`)) assert.equal(c, 1, `${k} executed ${c} times`);
    if (r.attempts > 1) tally.reruns++;
    if (j.crash) {
      assert.equal(r.attempts, j.max, `${j.id}: every crash counted`);
      assert.match(r.error, /giving up: the process running it died/);
      continue;
    }
    if (r.status !== 'succeeded') {
      assert.equal(r.attempts, 1, `${j.id}: bad input is not retried`);
      continue;
    }
    assert.equal(execs.get(`${j.id}/${r.attempts}`), 1, `${j.id}: its last attempt ran`);
    assert.equal(r.result.attempt, r.attempts, `${j.id}: the result is the last attempt's`);
    if (j.body.type === 'test.artifact') {
      const bytes = Buffer.from(j.body.params.content.repeat(j.body.params.repeat));
      assert.deepEqual(arts.get(j.id), { c: 1, b: bytes.length, h: createHash('sha256').update(bytes).digest('hex') }, `${j.id}: one artifact`);
    } else {
      assert.equal(arts.get(j.id), undefined, `${j.id}: no artifact`);
    }
    if (j.body.type === 'test.model') assert.deepEqual(models.get(j.id), { c: 1, m: r.result.model_id }, `${j.id}: one model`);
  }
  tally.rescued = Number(psql(db, "SELECT count(DISTINCT job_id) FROM job_events WHERE data->>'message' LIKE 'worker lost%'")[0][0]);

  // The data folder: what the rows name, and nothing else.
  const recorded = new Set(psql(db, 'SELECT path FROM artifacts UNION ALL SELECT path FROM models UNION ALL SELECT path FROM datasets').map((r) => r[0]));
  const all = filesUnder(data);
  const stray = all.filter((f) => {
    if (f.endsWith('/')) return false; // folders are checked through their files
    if (f.startsWith('models/')) return !recorded.has(join(data, f.split('/').slice(0, 3).join('/')));
    return !recorded.has(join(data, f));
  });
  assert.deepEqual(stray, [], 'files no row names');
  assert.deepEqual(all.filter((f) => f.includes('.tmp.')), [], 'temporaries');
  assert.deepEqual(filesUnder(join(data, 'jobs')), [], 'job folders of ended jobs');
  for (const p of recorded) assert.ok(existsSync(p), `${p} is recorded but missing`);

  const report = {
    seconds: SECONDS, elapsed_s: elapsed, jobs: jobs.length, ...tally, kills: sup.kills, crashes: sup.crashes,
    worker_starts: sup.starts, max_stuck_running: stuck, samples,
  };
  console.log(`soak: ${JSON.stringify(report)}`);
  if (process.env.SOAK_REPORT) writeFileSync(process.env.SOAK_REPORT, JSON.stringify(report, null, 2));
});
