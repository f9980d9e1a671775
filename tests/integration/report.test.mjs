// The pipeline report as a user opens it: `refinery report` renders a
// pipeline result (a fixture with every section) and headless Chromium
// loads the page from disk: no console or page errors, no request beyond the
// page itself, every chart drawn at a real size, the table complete, user
// text shown as text. The pipeline suite checks GET /v1/jobs/{id}/report the
// same way on a real run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { inspectPage } from './browser.mjs';

const repo = resolve(import.meta.dirname, '..', '..');

test('the HTML report renders its table and charts in Chromium without errors', async () => {
  const dir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'report-'));
  const html = join(dir, 'report.html'), png = join(dir, 'report.png');
  execFileSync(process.env.REFINERY_BIN, ['report', join(repo, 'tests/integration/fixtures/pipeline_result.json'), '--out', html]);
  const r = await inspectPage(`file://${html}`, png);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.requests, [`file://${html}`], 'no external assets');
  assert.equal(r.scripts, 0, 'the task name containing <script> stayed text');
  assert.match(r.title, /<script>alert\('x'\)<\/script> world facts/);
  assert.equal(r.svgs.length, 5);
  for (const s of r.svgs) {
    assert.ok(s.width >= 400 && s.height >= 200, JSON.stringify(s));
    assert.ok(s.marks >= 5, `chart ${s.title} draws marks`);
  }
  assert.deepEqual(r.svgs.map((s) => s.title), ['Accuracy by variant', 'Training loss', 'Hyper-parameter search', 'Model size', 'Per-token latency']);
  const variants = r.rows.filter((row) => row.length > 3).map((row) => row[0]);
  assert.deepEqual(variants, ['base student', 'student + GPTQ', 'refined (Muon)', 'refined + GPTQ (Muon)',
    'refined (AdamW)', 'refined + GPTQ (AdamW)', 'teacher <the & "big" one>']);
  assert.ok(statSync(png).size > 30000, 'a screenshot with content');
});

test('refinery report refuses a result that is not an object, and a missing file', () => {
  const dir = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'report-'));
  assert.throws(() => execFileSync(process.env.REFINERY_BIN, ['report', join(dir, 'nope.json')], { stdio: 'pipe' }), /nope\.json/);
  assert.throws(() => execFileSync(process.env.REFINERY_BIN, ['report', '-'], { input: '[1]', stdio: 'pipe' }), /must be an object/);
});
