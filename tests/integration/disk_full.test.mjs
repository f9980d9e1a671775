// The disk fills up while jobs write. The data folder is a small tmpfs of its
// own when the suite may mount one (as root), filled to the last byte at the
// moment chosen (ENOSPC); otherwise the worker's file-size limit is lowered
// then (prlimit, EFBIG): the same moment, the same checks.
//   - a train job writing a checkpoint: the attempt fails saying why, the
//     previous checkpoint stays whole and the retry resumes from it, to the
//     same adapter as a run that never met a full disk;
//   - a job writing an artifact: it fails after its attempts saying why,
//     nothing is registered and no partial file stays;
//   - the API keeps serving throughout (an upload that cannot be stored is a
//     507 problem).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, openSync, writeSync, closeSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { createDb, migrate, createKey, start, api, waitFor, sleep, psql, assertProblem } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let root, mnt, mode, data, db, key, srv, wrk, ds;

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'disk-full-'));
  mnt = join(root, 'mnt');
  mkdirSync(mnt);
  // REFINERY_TEST_DISK_FULL=prlimit takes the other way where a mount would work.
  const m = process.env.REFINERY_TEST_DISK_FULL === 'prlimit' ? { status: 1 }
    : spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
  mode = m.status === 0 ? 'tmpfs' : 'prlimit';
  data = join(mnt, 'data');
  const models = join(root, 'models');
  const dir = join(models, 'student');
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'full').key;
  const env = { REFINERY_DATA_DIR: data, REFINERY_MODEL_ROOTS: models, REFINERY_RETRY_BASE_MS: '3000' };
  srv = await start(db, { ...env, REFINERY_WORKERS: '0' });
  wrk = await start(db, { ...env, REFINERY_WORKERS: '1' }, 'worker');
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'student', path: dir })).status, 201);
  const rows = [];
  for (let i = 0; i < 12; i++) rows.push({ prompt: `add ${i} and 1`, response: `${i + 1}` });
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=sums', rows.map((r) => JSON.stringify(r)).join('\n'),
    { 'content-type': 'application/x-ndjson' });
  assert.equal(up.status, 201, up.text);
  ds = up.json;
});
after(async () => {
  try {
    if (wrk) assert.equal((await wrk.stop()).code, 0, wrk.logs);
    if (srv) assert.equal((await srv.stop()).code, 0, srv.logs);
  } finally {
    if (mode === 'tmpfs') spawnSync('umount', [mnt]);
    rmSync(root, { recursive: true, force: true });
  }
});

// The disk is full from now on (tmpfs: a filler takes every free byte; else
// the worker may write no file past 1 KiB), until room() gives it back.
const FILLER = () => join(mnt, 'filler');
function fill() {
  if (mode === 'prlimit') {
    execFileSync('prlimit', ['--pid', String(wrk.proc.pid), '--fsize=1024:unlimited']);
    return;
  }
  const fd = openSync(FILLER(), 'w');
  const chunk = Buffer.alloc(1 << 20, 0x55);
  try {
    for (let size = chunk.length; size >= 1;) {
      try {
        writeSync(fd, chunk, 0, size);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
        size >>= 1; // the last few pages, down to the byte
      }
    }
  } finally {
    closeSync(fd);
  }
}
function room() {
  if (mode === 'prlimit') execFileSync('prlimit', ['--pid', String(wrk.proc.pid), '--fsize=unlimited:unlimited']);
  else rmSync(FILLER(), { force: true });
}
const NOSPACE = /No space left on device|File too large/;

const job = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
const ended = (id, ms = 120000) => waitFor(async () => {
  const j = await job(id);
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
}, ms, 50);
const artifacts = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}/artifacts`)).json.data;
// Every file under the data folder, relative to it.
function files(dir = data, rel = '') {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), join(rel, e.name)) : [join(rel, e.name)]);
}

async function stillServing() {
  assert.equal((await api(srv.base, null, 'GET', '/readyz')).status, 200);
  assert.equal((await api(srv.base, key, 'GET', '/v1/jobs?limit=5')).status, 200);
  const up = await api(srv.base, key, 'POST', `/v1/datasets?name=full-${Date.now()}`,
    `${JSON.stringify({ prompt: 'p', response: 'x'.repeat(1 << 20) })}\n`, { 'content-type': 'application/x-ndjson' });
  if (mode === 'tmpfs') {
    assertProblem(assert, up, 507);
    assert.match(up.json.detail, NOSPACE);
  } else {
    assert.equal(up.status, 201, up.text); // only the worker is limited
  }
}

test('disk full while a checkpoint is written: the attempt fails saying why, the retry resumes from the previous checkpoint, the same adapter', async () => {
  const params = {
    student: 'student', dataset: ds.id, lora: { r: 4, alpha: 8 }, optimizer: { name: 'muon', lr: 0.02 },
    batch: 2, seq_len: 48, epochs: 10, max_steps: 8, checkpoint_every: 2, export: ['adapter'], seed: 5,
  };
  const sha = async (id) => (await artifacts(id)).find((a) => a.name === 'adapter_model.safetensors').sha256;
  const a = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params })).json;
  assert.equal((await ended(a.id)).status, 'succeeded');
  const b = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params, max_attempts: 5 })).json;
  const step = () => Number(psql(db, `SELECT coalesce(checkpoint->>'step', '0') FROM jobs WHERE id = '${b.id}'`)[0][0]);
  await waitFor(() => step() >= 2, 120000, 10);
  // Held still while the disk fills, so that the next checkpoint meets it.
  process.kill(wrk.proc.pid, 'SIGSTOP');
  let before;
  try {
    fill();
    before = step();
  } finally {
    process.kill(wrk.proc.pid, 'SIGCONT');
  }
  assert.ok(before < 8, `the job had not finished (${before})`);
  let failed;
  try {
    failed = await waitFor(async () => {
      const j = await job(b.id);
      return j.status === 'queued' && j.attempts === 1 && j.error ? j : null;
    }, 60000, 20);
    assert.match(failed.error, NOSPACE);
    assert.match(failed.error, /train_state\.safetensors: write failed: .*attempt 1 of 5; will retry/);
    assert.doesNotMatch(failed.error, new RegExp(mnt), 'no server path in what the user sees');
    // The previous checkpoint is whole, and nothing half-written stays beside it.
    const folder = join(data, 'jobs', b.id);
    assert.deepEqual(readdirSync(folder).filter((f) => f.includes('.tmp')), []);
    const ck = readFileSync(join(folder, 'train_state.safetensors'));
    const header = JSON.parse(ck.subarray(8, 8 + Number(ck.readBigUInt64LE(0))).toString());
    assert.deepEqual(Object.keys(header).sort(), ['__metadata__', 'meta', 'optimizer', 'params']);
    assert.equal(ck.length, 8 + Number(ck.readBigUInt64LE(0)) + header.params.data_offsets[1] - header.params.data_offsets[0] +
      header.optimizer.data_offsets[1] - header.optimizer.data_offsets[0] + header.meta.data_offsets[1] - header.meta.data_offsets[0]);
    await stillServing();
  } finally {
    room();
  }
  const fin = await ended(b.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  assert.ok(fin.attempts >= 2, `${fin.attempts} attempts`);
  const ev = (await api(srv.base, key, 'GET', `/v1/jobs/${b.id}/events?limit=1000`)).json.data;
  const resumed = ev.filter((e) => e.data.message === 'resumed from checkpoint').map((e) => e.data.step);
  assert.ok(resumed.length >= 1 && resumed.every((s) => s >= before), `resumed at ${resumed}, checkpoint ${before} before the disk filled`);
  assert.equal(await sha(b.id), await sha(a.id), 'bit-identical adapter');
  assert.deepEqual((await artifacts(b.id)).map((x) => x.name).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.ok(!existsSync(join(data, 'jobs', b.id)), 'the ended job\'s folder went');
});

test('disk full while an artifact is written: failed after its attempts saying why, nothing registered, no partial file', async () => {
  fill();
  let j;
  try {
    j = (await api(srv.base, key, 'POST', '/v1/jobs',
      { type: 'test.artifact', params: { content: 'x'.repeat(1000), repeat: 2000, name: 'big.bin' }, max_attempts: 2 })).json;
    const fin = await ended(j.id, 60000);
    assert.equal(fin.status, 'failed');
    assert.equal(fin.attempts, 2);
    assert.match(fin.error, /writing big\.bin failed: (No space left on device|File too large) \(attempt 2 of 2; giving up\)/);
    assert.deepEqual(await artifacts(j.id), []);
    assert.equal(psql(db, `SELECT count(*) FROM artifacts WHERE job_id = '${j.id}'`)[0][0], '0');
    assert.deepEqual(files().filter((f) => f.includes(j.id) || f.endsWith('big.bin')), []);
    await stillServing();
  } finally {
    room();
  }
  // With room again, the same job is fine, and the disk is whole.
  const ok = (await api(srv.base, key, 'POST', '/v1/jobs',
    { type: 'test.artifact', params: { content: 'x'.repeat(1000), repeat: 2000, name: 'big.bin' } })).json;
  const fin = await ended(ok.id, 60000);
  assert.equal(fin.status, 'succeeded', fin.error);
  const arts = await artifacts(ok.id);
  assert.equal(arts.length, 1);
  assert.equal(arts[0].bytes, 2000000);
  // Every file in the stores is one a row names.
  const recorded = new Set(psql(db, 'SELECT path FROM artifacts UNION ALL SELECT path FROM datasets').map((r) => r[0]));
  for (const f of files().filter((x) => /^(artifacts|datasets)\//.test(x))) assert.ok(recorded.has(join(data, f)), `${f} is not recorded`);
});
