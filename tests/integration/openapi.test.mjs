// The contract itself: a valid OpenAPI 3.1 document (checked by an independent
// validator), served as built, with every routed path in it and every path in
// it routed. (Every response the other suites see is checked against it by
// harness.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { spec, specText } from './contract.mjs';
import { createDb, migrate, start } from './harness.mjs';

const root = resolve(import.meta.dirname, '..', '..');
let srv;
before(async () => {
  const db = createDb();
  migrate(db);
  srv = await start(db, { REFINERY_WORKERS: '0' });
});
after(async () => assert.equal((await srv.stop()).code, 0));

test('openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const api = await SwaggerParser.validate(join(root, 'openapi', 'openapi.yaml'));
  assert.equal(api.openapi, '3.1.0');
});

test('GET /openapi.yaml serves the same document', async () => {
  const r = await fetch(`${srv.base}/openapi.yaml`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/yaml');
  assert.equal(await r.text(), specText);
});

test('every route in the router is in the spec, and every path in the spec is routed', () => {
  const src = readFileSync(join(root, 'handlers', 'routes.c'), 'utf8');
  const routed = [...src.matchAll(/\{"(GET|POST|DELETE|PUT|PATCH)", "([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`).sort();
  const documented = Object.entries(spec.paths).flatMap(([p, item]) =>
    Object.keys(item).filter((k) => ['get', 'post', 'delete', 'put', 'patch'].includes(k)).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  assert.ok(routed.length > 10);
  assert.deepEqual(routed, documented);
});
