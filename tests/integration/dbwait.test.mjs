// REFINERY_DB_WAIT_S: a starting process retries its first database connection,
// so that it comes up beside a database that is still starting (the compose
// stack under a tool that does not wait for health). The database "appears"
// here as a TCP relay to the suite's real PostgreSQL, opened on a port the
// process has already failed to reach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { createDb, psql, run, BIN, waitFor } from './harness.mjs';

const pg = process.env.REFINERY_TEST_PG_URL;
const pgHost = /host=(\S+)/.exec(pg)[1];
const pgPort = Number(/port=(\d+)/.exec(pg)[1]);

// A port nothing listens on (taken from the kernel, then released).
async function freePort() {
  const s = createServer();
  await new Promise((res) => s.listen(0, '127.0.0.1', res));
  const { port } = s.address();
  await new Promise((res) => s.close(res));
  return port;
}

function spawnRefinery(args, env) {
  const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { proc: p, err: '' };
  p.stderr.on('data', (d) => (s.err += d));
  p.stdout.on('data', () => {});
  s.exited = new Promise((res) => p.on('exit', (code, signal) => res({ code, signal })));
  return s;
}

test('REFINERY_DB_WAIT_S unset: one attempt, no retry', () => {
  const r = run(['migrate'], { REFINERY_DATABASE_URL: 'host=127.0.0.1 port=1 dbname=x', REFINERY_DB_WAIT_S: '' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot connect to the database/);
  assert.doesNotMatch(r.stderr, /retrying/);
});

test('a database that appears after start: migrate retries, logs each failure, then succeeds', async () => {
  const db = createDb();
  const port = await freePort();
  const m = spawnRefinery(['migrate'], { REFINERY_DATABASE_URL: `${db} host=127.0.0.1 port=${port}`, REFINERY_DB_WAIT_S: '60' });
  await waitFor(() => /attempt 2; retrying/.test(m.err), 30000);
  // Now the database comes up on that port.
  const relay = createServer((c) => {
    const up = connect(pgPort, pgHost);
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise((res) => relay.listen(port, '127.0.0.1', res));
  try {
    const r = await m.exited;
    assert.equal(r.code, 0, m.err);
    assert.match(m.err, /cannot connect to the database: .*Connection refused/);
    assert.match(m.err, /database reached at attempt \d+/);
    assert.ok(Number(psql(db, 'SELECT count(*) FROM schema_migrations')[0][0]) > 0, 'the schema was applied');
  } finally {
    relay.close();
  }
});

test('retries end at the deadline with the last error; a conninfo that does not parse is not retried', () => {
  const r = run(['migrate'], { REFINERY_DATABASE_URL: 'host=127.0.0.1 port=1 dbname=x', REFINERY_DB_WAIT_S: '1' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /attempt 1; retrying/);
  assert.match(r.stderr, /\nrefinery: cannot connect to the database: /);
  const bad = run(['migrate'], { REFINERY_DATABASE_URL: 'postgresql://u@[::1', REFINERY_DB_WAIT_S: '60' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /REFINERY_DATABASE_URL does not parse/);
  assert.doesNotMatch(bad.stderr, /retrying/);
  const neg = run(['migrate'], { REFINERY_DATABASE_URL: 'x', REFINERY_DB_WAIT_S: '-1' });
  assert.equal(neg.code, 1);
  assert.match(neg.stderr, /REFINERY_DB_WAIT_S must be an integer/);
});

test('SIGTERM while serve waits for the database stops it', async () => {
  const port = await freePort();
  const s = spawnRefinery(['serve'], {
    REFINERY_DATABASE_URL: `host=127.0.0.1 port=${port} dbname=x`, REFINERY_DB_WAIT_S: '600', REFINERY_LISTEN: '127.0.0.1:0',
  });
  await waitFor(() => /attempt 1; retrying/.test(s.err), 30000);
  s.proc.kill('SIGTERM');
  const r = await s.exited;
  assert.equal(r.code, 1, s.err);
  assert.match(s.err, /stopped while waiting for the database/);
});
