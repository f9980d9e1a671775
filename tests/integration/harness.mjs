// Shared helpers for the integration suites: a fresh database per suite on the
// throwaway PostgreSQL that scripts/test.sh started, the real server binary on
// a real socket, API keys made by the real CLI.
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { checkResponse } from './contract.mjs';

const root = resolve(import.meta.dirname, '..', '..');
export const BIN = process.env.REFINERY_BIN || join(root, 'build', 'asan', 'refinery');
const PG = process.env.REFINERY_TEST_PG_URL;
if (!PG) throw new Error('REFINERY_TEST_PG_URL is not set: run the suites through scripts/test.sh');

export function psql(url, sql) {
  const out = execFileSync('psql', [url, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-F', '\t', '-c', sql], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((l) => l.length).map((l) => l.split('\t'));
}

// A new empty database; returns its conninfo (later keywords win in libpq).
export function createDb() {
  const name = 't_' + randomBytes(6).toString('hex');
  psql(`${PG} dbname=postgres`, `CREATE DATABASE ${name}`);
  return `${PG} dbname=${name}`;
}

export function run(args, env = {}, opts = {}) {
  const r = spawnSync(BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8', ...opts });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function createKey(db, tenant) {
  const r = run(['keys', 'create', '--tenant', tenant], { REFINERY_DATABASE_URL: db });
  if (r.code !== 0) throw new Error(`keys create failed: ${r.stderr}`);
  const key = r.stdout.trim();
  const id = /created key (key_[0-9a-z]+)/.exec(r.stderr)[1];
  return { key, id };
}

export function migrate(db) {
  const r = run(['migrate'], { REFINERY_DATABASE_URL: db });
  if (r.code !== 0) throw new Error(`migrate failed: ${r.stderr}`);
}

// Start `refinery serve` (or `worker`) and wait until it listens (or started).
// opts.fileSizeKiB caps the size of any file the server writes (ulimit -f),
// which is how the suites make writes fail as on a full disk.
export async function start(db, env = {}, cmd = 'serve', opts = {}) {
  const dataDir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || tmpdir(), 'data-'));
  const argv = opts.fileSizeKiB
    ? ['bash', ['-c', `ulimit -f ${opts.fileSizeKiB * 2}; exec "$0" "$1"`, BIN, cmd]]
    : [BIN, [cmd]];
  const proc = spawn(argv[0], argv[1], {
    env: {
      ...process.env,
      REFINERY_DATABASE_URL: db,
      REFINERY_LISTEN: '127.0.0.1:0',
      REFINERY_DATA_DIR: dataDir,
      REFINERY_TEST_JOBS: '1',
      REFINERY_HTTP_THREADS: '4',
      REFINERY_POLL_MS: '200',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const s = { proc, logs: '', dataDir, port: 0, exited: null };
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res((s.exited = { code, signal }))));
  s.exitedPromise = exited;
  const ready = new Promise((res, rej) => {
    const onData = (d) => {
      s.logs += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.logs);
      if (m && !s.port) {
        s.port = Number(m[1]);
        res();
      }
      if (cmd === 'worker' && /worker\(s\) started/.test(s.logs)) res();
    };
    proc.stderr.on('data', onData);
    proc.stdout.on('data', (d) => (s.logs += d));
    exited.then(({ code, signal }) => rej(new Error(`refinery ${cmd} exited (${code ?? signal}):\n${s.logs}`)));
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
  try {
    await ready;
  } finally {
    clearTimeout(timer);
  }
  s.base = `http://127.0.0.1:${s.port}`;
  s.stop = async (signal = 'SIGTERM') => {
    if (!s.exited) proc.kill(signal);
    const r = await exited;
    rmSync(dataDir, { recursive: true, force: true });
    return r;
  };
  return s;
}

// fetch, returning status, headers and the parsed body.
export async function api(base, key, method, path, body, headers = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  const type = res.headers.get('content-type') || '';
  if (/json/.test(type)) checkResponse(method, path, res.status, type, json);
  else checkResponse(method, path, res.status, type, null);
  return { status: res.status, headers: res.headers, json, text };
}

export async function waitFor(fn, timeoutMs = 15000, stepMs = 50) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A problem+json body per RFC 9457, with the status it says.
export function assertProblem(assert, res, status, field) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.match(res.headers.get('content-type') || '', /^application\/problem\+json/);
  assert.equal(res.json.status, status);
  assert.equal(typeof res.json.type, 'string');
  assert.equal(typeof res.json.title, 'string');
  assert.equal(typeof res.json.detail, 'string');
  if (field !== undefined) assert.equal(res.json.field, field, `field in ${res.text}`);
}
