// Migrations: from an empty database, two processes at once, and a failing
// migration that must leave the schema as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, copyFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, psql, run, BIN, start } from './harness.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const shipped = readdirSync(join(root, 'migrations')).filter((f) => f.endsWith('.sql')).sort();
const tables = (db) => psql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").map((r) => r[0]);

test('an empty database is migrated to the current schema, once', () => {
  const db = createDb();
  const r = run(['migrate'], { REFINERY_DATABASE_URL: db });
  assert.equal(r.code, 0, r.stderr);
  for (const f of shipped) assert.match(r.stderr, new RegExp(`applied migration ${f}`));
  assert.deepEqual(psql(db, 'SELECT version, name FROM schema_migrations ORDER BY version'),
    shipped.map((f) => [f.split('_')[0], f]));
  for (const t of ['jobs', 'job_events', 'api_keys', 'tenants', 'idempotency_keys', 'artifacts'])
    assert.ok(tables(db).includes(t), t);
  const again = run(['migrate'], { REFINERY_DATABASE_URL: db });
  assert.equal(again.code, 0);
  assert.match(again.stderr, /0 migration\(s\) applied now/);
});

test('two processes migrating at once: both succeed, each migration applied once', async () => {
  const db = createDb();
  const one = () => new Promise((res) => {
    const p = spawn(BIN, ['migrate'], { env: { ...process.env, REFINERY_DATABASE_URL: db } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => res({ code, err }));
  });
  const rs = await Promise.all([one(), one(), one()]);
  for (const r of rs) assert.equal(r.code, 0, r.err);
  const applied = rs.map((r) => (r.err.match(/applied migration/g) || []).length);
  assert.equal(applied.reduce((a, b) => a + b, 0), shipped.length, `applied counts ${applied}`);
  assert.equal(Number(psql(db, 'SELECT count(*) FROM schema_migrations')[0][0]), shipped.length);
});

test('serve migrates at start, and servers starting together do not race', async () => {
  const db = createDb();
  const [a, b] = await Promise.all([start(db, { REFINERY_WORKERS: '0' }), start(db, { REFINERY_WORKERS: '0' })]);
  assert.equal(Number(psql(db, 'SELECT count(*) FROM schema_migrations')[0][0]), shipped.length);
  for (const s of [a, b]) assert.equal((await fetch(`${s.base}/readyz`)).status, 200);
  assert.equal((await a.stop()).code, 0);
  assert.equal((await b.stop()).code, 0);
});

test('a failing migration is rolled back whole and the process exits non-zero with the SQL error', () => {
  const db = createDb();
  const dir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'mig-'));
  for (const f of shipped) copyFileSync(join(root, 'migrations', f), join(dir, f));
  assert.equal(run(['migrate'], { REFINERY_DATABASE_URL: db, REFINERY_MIGRATIONS_DIR: dir }).code, 0);
  const before = tables(db);
  writeFileSync(join(dir, '9000_broken.sql'),
    'CREATE TABLE will_vanish (x int);\nALTER TABLE jobs ADD COLUMN will_vanish_too int;\nSELECT no_such_function();\n');
  const r = run(['migrate'], { REFINERY_DATABASE_URL: db, REFINERY_MIGRATIONS_DIR: dir });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /9000_broken\.sql/);
  assert.match(r.stderr, /no_such_function/);
  assert.deepEqual(tables(db), before);
  assert.equal(psql(db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'will_vanish_too'")[0][0], '0');
  assert.equal(Number(psql(db, 'SELECT count(*) FROM schema_migrations')[0][0]), shipped.length);
  // serve refuses to start on it, saying the same.
  const s = run(['serve'], { REFINERY_DATABASE_URL: db, REFINERY_MIGRATIONS_DIR: dir, REFINERY_LISTEN: '127.0.0.1:0' });
  assert.notEqual(s.code, 0);
  assert.match(s.stderr, /9000_broken\.sql/);
  // A badly named file is refused before anything runs.
  writeFileSync(join(dir, '9000_broken.sql'), 'SELECT 1;');
  writeFileSync(join(dir, 'oops.sql'), 'SELECT 1;');
  const n = run(['migrate'], { REFINERY_DATABASE_URL: db, REFINERY_MIGRATIONS_DIR: dir });
  assert.notEqual(n.code, 0);
  assert.match(n.stderr, /oops\.sql.*NNNN_name\.sql/);
});

test('an unreachable database is a clear error and a non-zero exit', () => {
  const r = run(['migrate'], { REFINERY_DATABASE_URL: 'host=127.0.0.1 port=1 dbname=x connect_timeout=2' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot connect to the database/);
  const u = run(['migrate'], { REFINERY_DATABASE_URL: '' });
  assert.notEqual(u.code, 0);
  assert.match(u.stderr, /REFINERY_DATABASE_URL is not set/);
  const bad = run(['serve'], { REFINERY_DATABASE_URL: 'x', REFINERY_WORKERS: 'many' });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /REFINERY_WORKERS must be an integer/);
});
