// The dataset job over HTTP against a scripted OpenAI-compatible teacher
// (teacher_server.mjs): a dataset registered with the job as its source and
// usable by evaluate at once; 429 with Retry-After (the retry waits), 500,
// timeouts, malformed, cut-off and duplicate outputs counted; a 401 fails
// fast with the teacher's message; a teacher that never recovers leaves a
// partial dataset; kill -9 of the worker mid-job resumes without keeping a
// pair twice; refusals at POST (SSRF, no allow-list, missing api_key_env,
// unknown placeholder). Then the real path: refinery's own
// /v1/chat/completions on a small model as the teacher, and the same model
// in-process (the fixture model writes gibberish: the machinery and the
// counts are checked, not the quality), and `refinery run` on a folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { createDb, migrate, createKey, start, api, waitFor, assertProblem, BIN } from './harness.mjs';
import { startTeacher } from './teacher_server.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const KEY_ENV = 'RF_TEST_TEACHER_KEY';
const SECRET = 'sk-test-' + 'x'.repeat(20);
let db, srv, key, teacher, root, modelDir;

const task = {
  name: 'science',
  description: 'Short questions on everyday science.',
  seed_prompts: ['What is photosynthesis?', 'Why is the sky blue?'],
};
const params = (extra = {}) => ({
  teacher: { base_url: teacher.base, model: 'scripted', api_key_env: KEY_ENV, timeout_s: 5, max_retries: 4 },
  task, target_pairs: 10, pairs_per_call: 3, subtopics_per_seed: 3, concurrency: 4, seed: 1, ...extra,
});
const post = (p) => api(srv.base, key, 'POST', '/v1/jobs', { type: 'dataset', params: p });
const finished = (id, base = srv.base, k = key) => waitFor(async () => {
  const j = (await api(base, k, 'GET', `/v1/jobs/${id}`)).json;
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) && j;
}, 120000, 100);
const events = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}/events?limit=1000`)).json.data;
const content = async (id) => (await api(srv.base, key, 'GET', `/v1/datasets/${id}/content`)).text
  .split('\n').filter((l) => l).map((l) => JSON.parse(l));

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'dataset-'));
  // The tiny fixture with the byte-level tokenizer (ChatML template); its
  // context widened, as the Self-Instruct prompts are longer than 128 bytes.
  modelDir = join(root, 'tiny');
  cpSync(join(repo, 'tests/reference/fixtures/llama_f32_gqa'), modelDir, { recursive: true });
  const tokdir = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tokdir)) cpSync(join(tokdir, f), join(modelDir, f));
  const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  cfg.max_position_embeddings = 1024;
  writeFileSync(join(modelDir, 'config.json'), JSON.stringify(cfg));
  teacher = await startTeacher({ key: SECRET });
  db = createDb();
  migrate(db);
  key = createKey(db, 'ds').key;
  srv = await start(db, {
    REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root, REFINERY_TEACHER_URLS: `${teacher.base},http://127.0.0.1:1/v1`,
    [KEY_ENV]: SECRET, REFINERY_TEACHER_BACKOFF_S: '0.05',
  });
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'tiny', path: modelDir })).status, 201);
});
after(async () => {
  await teacher.close();
  assert.equal((await srv.stop()).code, 0, srv.logs);
});

test('refused at POST: SSRF, a missing api_key_env, unknown placeholders, bad shapes', async () => {
  const p = params();
  assertProblem(assert, await post({ ...p, teacher: { ...p.teacher, base_url: 'http://169.254.169.254/v1' } }), 422, 'params.teacher.base_url');
  // a prefix matches only up to a boundary, and user info is refused
  const port = new URL(teacher.base).port;
  assertProblem(assert, await post({ ...p, teacher: { ...p.teacher, base_url: `http://127.0.0.1:${port}0/v1` } }), 422, 'params.teacher.base_url');
  assertProblem(assert, await post({ ...p, teacher: { ...p.teacher, base_url: `http://127.0.0.1:${port}@evil.example/v1` } }), 422, 'params.teacher.base_url');
  const miss = await post({ ...p, teacher: { ...p.teacher, api_key_env: 'RF_TEST_NOT_SET' } });
  assertProblem(assert, miss, 422, 'params.teacher.api_key_env');
  assert.match(miss.json.detail, /RF_TEST_NOT_SET is not set/);
  assertProblem(assert, await post({ ...p, prompts: { pairs: 'Write {n} about {topic}' } }), 422, 'params.prompts.pairs');
  assertProblem(assert, await post({ ...p, teacher: 'no-such-model' }), 422, 'params.teacher');
  assertProblem(assert, await post({ ...p, teacher: 42 }), 422, 'params.teacher');
  assertProblem(assert, await post({ ...p, task: { name: 'x', seed_prompts: [] } }), 422, 'params.task.seed_prompts');
  assertProblem(assert, await post({ ...p, format: 'essay' }), 422, 'params.format');
  assertProblem(assert, await post({ ...p, split: { validation: 0.6, test: 0.5 } }), 422, 'params.split');
  assertProblem(assert, await post({ ...p, judge: { model: { base_url: 'http://10.0.0.1/v1', model: 'm' } } }), 422, 'params.judge.model.base_url');
  assertProblem(assert, await post({ ...p, teacher: { ...p.teacher, extra: 1 } }), 422, 'params.teacher.extra');
});

test('no allow-list: external teachers refused, with how to allow them', async () => {
  const db2 = createDb();
  migrate(db2);
  const k2 = createKey(db2, 'ds2').key;
  const s2 = await start(db2, { REFINERY_WORKERS: '1' });
  try {
    const r = await api(s2.base, k2, 'POST', '/v1/jobs', { type: 'dataset', params: params() });
    assertProblem(assert, r, 422, 'params.teacher.base_url');
    assert.match(r.json.detail, /REFINERY_TEACHER_URLS/);
  } finally {
    assert.equal((await s2.stop()).code, 0, s2.logs);
  }
});

test('a dataset from the teacher: registered with the job as source, split, usable by evaluate, train and quantize', async () => {
  const logStart = teacher.state.log.length;
  const j = (await post(params({ target_pairs: 10, split: { validation: 0.2, test: 0.1 } }))).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  const r = fin.result;
  assert.equal(r.kept, 10);
  assert.equal(r.partial, false);
  assert.equal(r.stopped, 'target');
  assert.deepEqual(r.rows, { train: 7, validation: 2, test: 1 });
  assert.ok(r.requests >= 2 + 4 + 10, JSON.stringify(r));
  assert.equal(r.tokens.prompt, 11 * r.requests); // the scripted usage, summed
  assert.equal(r.counts.subtopics.generated, 6);
  const ds = (await api(srv.base, key, 'GET', `/v1/datasets/${r.dataset}`)).json;
  assert.equal(ds.source, j.id);
  assert.equal(ds.schema, 'prompt_response');
  assert.deepEqual(ds.rows, r.rows);
  const rows = await content(r.dataset);
  assert.equal(new Set(rows.map((x) => x.prompt)).size, 10);
  for (const x of rows) assert.match(x.prompt, /^Explain /);
  // every request carried the key from the worker's environment, and the
  // prompts are the documented defaults
  const log = teacher.state.log.slice(logStart);
  assert.ok(log.every((e) => e.auth === `Bearer ${SECRET}`));
  const sub = log.find((e) => e.kind === 'subtopics').body;
  assert.equal(sub.messages.length, 1);
  assert.equal(sub.messages[0].role, 'user');
  assert.equal(sub.messages[0].content, 'Task: science\nShort questions on everyday science.\nExample request: What is photosynthesis?\nList 3 distinct sub-topics of this task. Answer with a numbered list, one sub-topic per line.');
  const judge = log.find((e) => e.kind === 'judge').body;
  assert.match(judge.messages[0].content, /^Task: science\n.*\nRubric: The answer is correct, complete and directly answers the question\.\nQuestion: Explain .*\nAnswer: It is .*\nRate the answer from 1 to 10 against the rubric\. Reply with "Score: N\/10" and one sentence of justification\.$/s);
  const pairs = log.find((e) => e.kind === 'pairs').body;
  assert.match(pairs.messages[0].content, /\nExamples:\nQ: What is photosynthesis\?\nQ: Why is the sky blue\?\nWrite 3 new question and answer pairs/);
  // the key is in no event and no log line
  const ev = await events(j.id);
  assert.ok(!JSON.stringify(ev).includes(SECRET) && !srv.logs.includes(SECRET));
  assert.ok(ev.some((e) => e.kind === 'metrics' && e.data.stage === 'pairs'));
  assert.ok(ev.some((e) => e.kind === 'dataset' && e.data.dataset_id === r.dataset));
  // usable at once
  const e = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'evaluate', params: { model: 'tiny', dataset: r.dataset, metrics: ['perplexity'] } })).json;
  const ef = await finished(e.id);
  assert.equal(ef.status, 'succeeded', ef.error);
  assert.equal(ef.result.rows, 10);
  const t = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'train', params: { student: 'tiny', dataset: r.dataset, lora: { r: 2, alpha: 4 }, batch: 2, seq_len: 64, max_steps: 2, export: ['adapter'] } })).json;
  const tf = await finished(t.id);
  assert.equal(tf.status, 'succeeded', tf.error);
  const q = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'quantize', params: { model: 'tiny', dataset: r.dataset, calibration: { samples: 4, seq_len: 32, seed: 1 }, group_size: 32 } })).json;
  const qf = await finished(q.id);
  assert.equal(qf.status, 'succeeded', qf.error);
});

test('multiple choice: rows with choices and answer (and the right choice as response)', async () => {
  const n0 = teacher.state.log.length;
  const j = (await post(params({
    format: 'multiple_choice', target_pairs: 4, split: { validation: 0, test: 0 },
    teacher: { ...params().teacher, extra_body: { response_format: { type: 'json_object' }, top_k: 5 } },
  }))).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  const ds = (await api(srv.base, key, 'GET', `/v1/datasets/${fin.result.dataset}`)).json;
  assert.equal(ds.multiple_choice, 4);
  for (const x of await content(fin.result.dataset)) {
    assert.deepEqual(x.choices, ['alpha', 'beta', 'gamma', 'delta']);
    assert.equal(x.answer, 2);
    assert.equal(x.response, 'gamma');
  }
  // extra_body goes into every request as it is
  const sent = teacher.state.log.slice(n0).map((e) => e.body);
  assert.ok(sent.length > 0 && sent.every((b) => b.response_format?.type === 'json_object' && b.top_k === 5));
  assert.match(sent.find((b) => /multiple-choice/.test(b.messages[0].content)).messages[0].content, /keys "question", "choices" \(a list of 4 strings\) and "answer" \(the index of the correct choice\)\.$/);
});

test('faults: 429 with Retry-After waits, 500 and a timeout are retried, malformed, cut-off and duplicate outputs are counted', async () => {
  const logStart = teacher.state.log.length;
  teacher.script([
    { status: 429, retryAfter: '1' }, {}, // sub-topics: 429, then the retry
    {}, // the second seed's sub-topics
    { status: 500 }, { delayMs: 2500 }, { malformed: true }, { truncated: true }, // the first pair round
    {}, {}, {}, {}, // the 500 and timeout retried, the others' judges …
  ]);
  const j = (await post(params({ target_pairs: 8, concurrency: 1, teacher: { ...params().teacher, timeout_s: 1 } }))).json;
  const fin = await finished(j.id);
  assert.equal(fin.status, 'succeeded', fin.error);
  const r = fin.result;
  assert.ok(r.retries >= 3, `retries ${r.retries}`);
  const log = teacher.state.log.slice(logStart);
  assert.ok(r.counts.pairs.unreadable >= 1 && r.counts.pairs.truncated >= 1, JSON.stringify(r.counts) + JSON.stringify(log.map((e) => [e.kind, e.t, e.fault])));
  // the retry after the 429 (the same request again) came no sooner than Retry-After said
  const again = log.slice(1).find((e) => e.body.messages[0].content === log[0].body.messages[0].content);
  assert.ok(again.t - log[0].t >= 950, `retried after ${again.t - log[0].t} ms`);
  const ev = await events(j.id);
  const samples = ev.filter((e) => e.kind === 'unreadable');
  assert.ok(samples.some((e) => e.data.reason === 'unreadable' && /neither JSON/.test(e.data.sample)));
  assert.ok(samples.some((e) => e.data.reason === 'truncated'));
  // Retry-After as an HTTP date
  const n1 = teacher.state.log.length;
  teacher.script([{ status: 503, retryAfter: new Date(Date.now() + 2500).toUTCString() }]);
  const h = await finished((await post(params({ target_pairs: 1, concurrency: 1 }))).json.id);
  assert.equal(h.status, 'succeeded', h.error);
  const hl = teacher.state.log.slice(n1);
  const retry = hl.slice(1).find((e) => e.body.messages[0].content === hl[0].body.messages[0].content);
  assert.ok(retry.t - hl[0].t >= 400, `retried after ${retry.t - hl[0].t} ms (backoff alone: 50 ms)`);
  // duplicates: a teacher that repeats itself
  teacher.state.repeatPairs = 3;
  const d = await finished((await post(params({ target_pairs: 4, concurrency: 2 }))).json.id);
  assert.equal(d.status, 'succeeded', d.error);
  assert.ok(d.result.counts.pairs.duplicates >= 3, JSON.stringify(d.result.counts));
});

test('a 4xx fails fast with the teacher\'s message; a redirect is not followed', async () => {
  const n0 = teacher.state.log.length;
  const bad = await finished((await post(params({ teacher: { ...params().teacher, api_key_env: 'HOME' } }))).json.id);
  assert.equal(bad.status, 'failed');
  assert.match(bad.error, /refused the request \(HTTP 401\): Incorrect API key provided/);
  assert.ok(teacher.state.log.length - n0 <= 2, 'no retries of a 401');
  assert.equal(bad.attempts, 1);
  teacher.script([{ status: 302 }]);
  const red = await finished((await post(params())).json.id);
  assert.equal(red.status, 'failed');
  assert.match(red.error, /redirect \(HTTP 302 to http:\/\/169\.254\.169\.254/);
});

test('a teacher that never recovers: the job fails with its last error after registering a partial dataset', async () => {
  teacher.state.failAfter = { pairs: teacher.state.pairCalls + 2, status: 503 };
  try {
    const fin = await finished((await post(params({ target_pairs: 50, concurrency: 1, teacher: { ...params().teacher, max_retries: 2 } }))).json.id);
    assert.equal(fin.status, 'failed');
    assert.match(fin.error, /the teacher failed: .*HTTP 503: the teacher is down for good.*registered as dataset ds_\w+ \(partial\)/);
    assert.equal(fin.attempts, 1);
    const r = fin.result;
    assert.equal(r.partial, true);
    assert.equal(r.stopped, 'teacher_failed');
    assert.equal(r.kept, 6); // two pair requests of three
    const ds = (await api(srv.base, key, 'GET', `/v1/datasets/${r.dataset}`)).json;
    assert.equal(ds.rows.train + ds.rows.validation + ds.rows.test, 6);
  } finally {
    teacher.state.failAfter = null;
  }
});

test('kill -9 mid-job: rescued, resumed from the accepted pairs, no pair kept twice', async () => {
  const FAST = {
    REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '100', REFINERY_DATA_DIR: srv.dataDir,
    REFINERY_TEACHER_URLS: teacher.base, [KEY_ENV]: SECRET,
  };
  // the server's own worker is kept busy, so that a worker process runs the job
  const busy = (await api(srv.base, key, 'POST', '/v1/jobs', { type: 'test.sleep', params: { ms: 600000, steps: 1 } })).json;
  await waitFor(async () => (await api(srv.base, key, 'GET', `/v1/jobs/${busy.id}`)).json.status === 'running');
  teacher.state.delayMs = 150;
  const startNo = teacher.state.questionNo;
  const j = (await post(params({ target_pairs: 24, pairs_per_call: 2, concurrency: 2 }))).json;
  const w1 = await start(db, FAST, 'worker');
  const accepted = join(srv.dataDir, 'jobs', j.id, 'accepted.jsonl');
  await waitFor(() => existsSync(accepted) && readFileSync(accepted, 'utf8').split('\n').length > 6, 60000, 20);
  w1.proc.kill('SIGKILL');
  await w1.exitedPromise;
  const before = readFileSync(accepted, 'utf8').split('\n').filter((l) => l).length;
  // the teacher starts over: the questions it gave before come again first
  teacher.state.questionNo = startNo;
  const w2 = await start(db, FAST, 'worker');
  try {
    const fin = await finished(j.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    assert.equal(fin.attempts, 2);
    assert.ok(fin.result.resumed_from >= before - 2 && fin.result.resumed_from > 0, JSON.stringify(fin.result));
    assert.ok(fin.result.counts.pairs.duplicates >= 2, 'the repeated questions were duplicates');
    const rows = await content(fin.result.dataset);
    assert.equal(rows.length, 24);
    assert.equal(new Set(rows.map((x) => x.prompt)).size, 24, 'no pair twice');
  } finally {
    teacher.state.delayMs = 0;
    await w2.stop();
    await api(srv.base, key, 'POST', `/v1/jobs/${busy.id}/cancel`);
  }
});

// The real path: refinery's own chat completions endpoint as the teacher.
test('refinery itself as the teacher over HTTP, and the same model in-process', async () => {
  const db3 = createDb();
  migrate(db3);
  const k3 = createKey(db3, 'self').key;
  const s3 = await start(db3, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root, SELF_KEY: k3, REFINERY_TEACHER_URLS: 'http://127.0.0.1:' });
  try {
    assert.equal((await api(s3.base, k3, 'POST', '/v1/models', { name: 'tiny', path: modelDir })).status, 201);
    const common = { task, target_pairs: 2, pairs_per_call: 2, subtopics_per_seed: 2, concurrency: 2, max_requests: 6, sampling: { max_tokens: 12, temperature: 0 } };
    for (const teacherParam of [{ base_url: `${s3.base}/v1`, model: 'tiny', api_key_env: 'SELF_KEY' }, 'tiny']) {
      const j = (await api(s3.base, k3, 'POST', '/v1/jobs', { type: 'dataset', params: { ...common, teacher: teacherParam } })).json;
      assert.ok(j.id, JSON.stringify(j));
      const fin = await finished(j.id, s3.base, k3);
      // gibberish: nothing readable is kept, and the job says so
      assert.equal(fin.status, 'failed');
      assert.match(fin.error, /no pair was kept in 6 teacher requests/);
      const ev = (await api(s3.base, k3, 'GET', `/v1/jobs/${j.id}/events?limit=1000`)).json.data;
      const m = ev.filter((e) => e.kind === 'metrics' && e.data.stage === 'pairs').at(-1).data;
      assert.equal(m.requests, 6);
      assert.equal(m.counts.subtopics.requests, 2);
      assert.equal(m.counts.pairs.requests, 4);
      // each output either ran to max_tokens (cut off) or ended and was unreadable
      const sub = m.counts.subtopics, pairs = m.counts.pairs;
      assert.equal((sub.truncated ?? 0) + (sub.unreadable ?? 0) + (sub.generated ? 2 : 0) >= 2, true);
      assert.equal((pairs.truncated ?? 0) + (pairs.unreadable ?? 0) + (pairs.generated ?? 0) >= 4, true);
      assert.ok(m.tokens.prompt > 6 * 50 && m.tokens.completion > 0 && m.tokens.completion <= 6 * 12, JSON.stringify(m.tokens));
      assert.ok(ev.some((e) => e.kind === 'unreadable'));
      const log = ev.find((e) => e.kind === 'log' && e.data.message === 'dataset job started').data;
      assert.equal(log.teacher, typeof teacherParam === 'string' ? 'tiny' : `tiny at ${s3.base}/v1`);
    }
  } finally {
    assert.equal((await s3.stop()).code, 0, s3.logs);
  }
});

// `refinery run` without blocking this process (the scripted teacher lives in it).
function run(args, env = {}) {
  return new Promise((res) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

test('refinery run: the same job against a local folder', async () => {
  const dir = mkdtempSync(join(root, 'run-'));
  const file = join(dir, 'job.json');
  const p = params({ target_pairs: 5 });
  writeFileSync(file, JSON.stringify({ type: 'dataset', params: p }));
  const r = await run(['run', file, '--workdir', join(dir, 'w')], { REFINERY_TEACHER_URLS: teacher.base, [KEY_ENV]: SECRET });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const res = lines.find((l) => l.event === 'result').data;
  assert.equal(res.kept, 5);
  assert.ok(existsSync(res.dataset));
  assert.equal(readFileSync(res.dataset, 'utf8').trim().split('\n').length, 5);
  // without the allow-list: refused before anything runs
  const no = await run(['run', file, '--workdir', join(dir, 'w2')], { REFINERY_TEACHER_URLS: '', [KEY_ENV]: SECRET });
  assert.equal(no.code, 2);
  assert.match(no.stderr, /params\.teacher\.base_url: external teachers are not allowed/);
  // in-process with a local model folder (gibberish: it fails, saying why)
  writeFileSync(file, JSON.stringify({ type: 'dataset', params: { task, teacher: modelDir, target_pairs: 1, max_requests: 3, sampling: { max_tokens: 8 } } }));
  const lm = await run(['run', file, '--workdir', join(dir, 'w3')]);
  assert.equal(lm.code, 1);
  assert.match(lm.stderr, /no pair was kept in 3 teacher requests/);
});
