// The hpo job over HTTP on the tiny fixture model: trials are child train jobs
// of a study the API shows; one worker is enough; two worker processes share
// the trials; kill -9 of the process running the study, then resume without
// re-running a finished trial; cancel of the parent cancels its trials; bad
// params are 422s naming the field. The API server runs no workers itself:
// each test starts the `refinery worker` processes it needs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDb, migrate, createKey, start, api, assertProblem, waitFor, psql, run } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const FAST = { REFINERY_LEASE_MS: '1500', REFINERY_RETRY_BASE_MS: '100', REFINERY_POLL_MS: '100' };
let db, srv, key, ds, env, root, studentDir, rowsText;

const TRAIN = () => ({
  student: 'student', teacher: 'student', dataset: ds.id,
  lora: { r: 4, alpha: 8 }, loss: { alpha: 0.5, temperature: 2 }, optimizer: { name: 'muon', lr: 0.02 },
  batch: 2, seq_len: 48, max_steps: 4, eval_every: 2, seed: 3,
});
const SPACE = {
  'optimizer.lr': { type: 'log_float', low: 1e-3, high: 1e-1 },
  'lora.r': { type: 'int', low: 2, high: 8, step: 2 },
  'loss.alpha': { type: 'float', low: 0, high: 1 },
};
const hpo = (extra = {}) => ({
  type: 'hpo',
  params: { train: TRAIN(), space: SPACE, n_trials: 4, parallel: 2, sampler: { name: 'random' }, seed: 7, ...extra },
});
const post = async (body) => {
  const r = await api(srv.base, key, 'POST', '/v1/jobs', body);
  assert.equal(r.status, 201, r.text);
  return r.json;
};
const job = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
const final = (id, ms = 240000) => waitFor(async () => {
  const j = await job(id);
  return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
}, ms, 200);
const children = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs?parent_id=${id}&limit=100`)).json.data.reverse();
const events = async (id) => (await api(srv.base, key, 'GET', `/v1/jobs/${id}/events?limit=1000`)).json.data;
const starts = (id) => psql(db, `SELECT data->>'worker' FROM job_events WHERE job_id = '${id}'
  AND data->>'message' = 'attempt started' ORDER BY id`).map((r) => r[0]);

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'hpo-'));
  const dir = (studentDir = join(root, 'student'));
  cpSync(join(repo, 'tests', 'reference', 'fixtures', 'llama_f32_gqa'), dir, { recursive: true });
  const tok = join(repo, 'tests', 'reference', 'tokenizers', 'bytelevel');
  for (const f of readdirSync(tok)) cpSync(join(tok, f), join(dir, f));
  db = createDb();
  migrate(db);
  key = createKey(db, 'tuner').key;
  srv = await start(db, { ...FAST, REFINERY_WORKERS: '0', REFINERY_MODEL_ROOTS: root });
  env = { ...FAST, REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: root, REFINERY_DATA_DIR: srv.dataDir };
  assert.equal((await api(srv.base, key, 'POST', '/v1/models', { name: 'student', path: dir })).status, 201);
  const rows = [];
  for (let i = 0; i < 12; i++) rows.push({ prompt: `add ${i} and 1`, response: `${i + 1}` });
  for (let i = 0; i < 3; i++) rows.push({ prompt: `add ${i} and 2`, response: `${i + 2}`, split: 'validation' });
  rowsText = rows.map((r) => JSON.stringify(r)).join('\n');
  const up = await api(srv.base, key, 'POST', '/v1/datasets?name=sums', rowsText,
    { 'content-type': 'application/x-ndjson' });
  assert.equal(up.status, 201, up.text);
  ds = up.json;
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('hpo, one worker: 4 trials as child train jobs of a study; best params, plot, pruning recorded', async () => {
  const w = await start(db, env, 'worker');
  try {
    // gp after two start-up trials: the last two are asked from the model, with
    // the running trial pending
    const j = await post(hpo({ sampler: { name: 'gp', n_startup: 2 }, pruner: { name: 'median', n_startup_trials: 1 } }));
    const fin = await final(j.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    const r = fin.result;
    assert.equal(r.objective.metric, 'validation_ce');
    assert.equal(r.objective.direction, 'minimize');
    assert.equal(r.n_trials, 4);
    assert.equal(r.trials.length, 4);
    assert.equal(r.complete + r.pruned + r.failed, 4);
    assert.ok(r.complete >= 1);
    const kids = await children(j.id);
    assert.equal(kids.length, 4);
    // each trial: a train job of its own, with the trial's point in its params
    for (const t of r.trials) {
      const kid = kids.find((k) => k.id === t.job_id);
      assert.ok(kid, `trial ${t.number} has its train job`);
      assert.equal(kid.type, 'train');
      assert.equal(kid.parent_id, j.id);
      assert.deepEqual(kid.metadata, { study_id: r.study_id, trial: String(t.number) });
      assert.equal(kid.params.optimizer.lr, t.params['optimizer.lr']);
      assert.equal(kid.params.lora.r, t.params['lora.r']);
      assert.equal(kid.params.loss.alpha, t.params['loss.alpha']);
      assert.equal(kid.params.dataset, ds.id, 'the rest of train as given');
      assert.equal(typeof t.seconds, 'number');
      if (t.state === 'complete') {
        assert.equal(kid.status, 'succeeded');
        assert.equal(t.value, kid.result.eval.ce, 'the objective is the train job\'s held-out CE');
      } else if (t.state === 'pruned') {
        assert.equal(kid.status, 'cancelled');
        assert.match(kid.error, /^pruned: ce /);
        assert.ok(kid.result === null);
      }
      assert.ok(t.intermediate.length >= 1, 'eval events reported as intermediate values');
    }
    const complete = r.trials.filter((t) => t.state === 'complete');
    const bestValue = Math.min(...complete.map((t) => t.value));
    assert.equal(r.best.value, bestValue);
    const bt = r.trials.find((t) => t.number === r.best.number);
    assert.equal(r.best.job_id, bt.job_id);
    assert.deepEqual(r.best.params, bt.params);
    assert.deepEqual([...r.best.adapter].sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.equal(r.best.train.optimizer.lr, bt.params['optimizer.lr']);
    // the study is a real one: visible, owned by the job, agreeing with the result
    const s = (await api(srv.base, key, 'GET', `/v1/studies/${r.study_id}`)).json;
    assert.equal(s.job_id, j.id);
    assert.equal(s.trials.total, 4);
    assert.equal(s.trials.running, 0);
    assert.equal(s.best_trial.number, r.best.number);
    assert.deepEqual(s.job_report, { event: 'eval', field: 'ce', step: 'step', result: 'eval.ce' });
    // it waited in the queue rather than holding the one worker
    const ev = await events(j.id);
    assert.ok(ev.some((e) => e.data.message === 'waiting for child jobs'));
    const told = ev.filter((e) => e.kind === 'trial').map((e) => e.data.number).sort();
    assert.deepEqual(told, [0, 1, 2, 3], 'a trial event per trial, once');
    // the plot
    const arts = (await api(srv.base, key, 'GET', `/v1/jobs/${j.id}/artifacts`)).json.data;
    const plot = arts.find((a) => a.name === 'hpo.svg');
    assert.equal(plot.kind, 'plot');
    assert.equal(plot.content_type, 'image/svg+xml', 'a browser shows it');
    const svg = (await api(srv.base, key, 'GET', `/v1/artifacts/${plot.id}/content`)).text;
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /validation_ce by trial/);
    for (const k of Object.keys(SPACE)) assert.ok(svg.includes(`>${k}</text>`), `a panel for ${k}`);
    assert.equal((svg.match(/<title>trial /g) || []).length, 4 * (1 + Object.keys(SPACE).length));
    assert.ok(!/https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(svg), 'no external assets');
  } finally {
    assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('hpo params: 422s naming the field, checked at POST', async () => {
  const bad = async (params, field) => assertProblem(assert, await api(srv.base, key, 'POST', '/v1/jobs', { type: 'hpo', params }), 422, field);
  const p = hpo().params;
  await bad({ ...p, train: { ...TRAIN(), student: 'nobody' } }, 'params.train.student');
  await bad({ ...p, space: { ...SPACE, 'optimizer.lr': { type: 'log_float', low: 1e-3, high: 20 } } }, 'params.space.optimizer.lr');
  await bad({ ...p, space: { 'lora.r': { type: 'int', low: 0, high: 8 } } }, 'params.space.lora.r');
  await bad({ ...p, space: { 'optimizer.momentum': { type: 'float', low: 0.5, high: 1.5 } } }, 'params.space.optimizer.momentum');
  await bad({ ...p, space: { 'optimizer.colour': { type: 'float', low: 0, high: 1 } } }, 'params.space.optimizer.colour');
  await bad({ ...p, space: { student: { type: 'categorical', choices: ['a'] } } }, 'params.space.student');
  await bad({ ...p, space: { 'Bad Path': { type: 'float', low: 0, high: 1 } } }, 'params.space.Bad Path');
  await bad({ ...p, space: { 'loss.alpha': { type: 'float', low: 1, high: 0 } } }, undefined);
  await bad({ ...p, space: {} }, 'params.space');
  await bad({ ...p, train: { ...TRAIN(), eval_every: 0 }, pruner: { name: 'median' } }, 'params.train.eval_every');
  await bad({ ...p, objective: { metric: 'accuracy_of_vibes' } }, 'params.objective.metric');
  await bad({ ...p, n_trials: 0 }, 'params.n_trials');
  await bad({ ...p, parallel: 100 }, 'params.parallel');
  await bad({ ...p, sampler: { name: 'cmaes' } }, 'params.sampler.name');
  const { space, ...noSpace } = p;
  await bad(noSpace, 'params.space');
});

test('two worker processes: the trials run on both', async () => {
  const ws = [await start(db, env, 'worker'), await start(db, env, 'worker')];
  try {
    const j = await post(hpo({ n_trials: 2, parallel: 2 }));
    const fin = await final(j.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    const kids = await children(j.id);
    assert.equal(kids.length, 2);
    const workers = new Set(kids.map((k) => starts(k.id)[0].split(':')[1]));
    assert.equal(workers.size, 2, `each worker process ran a trial (${[...workers]})`);
  } finally {
    for (const w of ws) assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('kill -9 of the process running the study: rescued, no finished trial re-run, no child twice', async () => {
  const params = hpo({ n_trials: 2, parallel: 1, pruner: { name: 'none' }, train: { ...TRAIN(), epochs: 10, max_steps: 10, eval_every: 5, checkpoint_every: 2 } });
  const j = await post(params);
  const a = await start(db, env, 'worker');
  // one trial finished and the next one under way
  await waitFor(async () => {
    const kids = await children(j.id);
    return kids.length === 2 && kids[0].status === 'succeeded' && kids[1].status === 'running' && kids[1].progress >= 0.3;
  }, 240000, 50);
  a.proc.kill('SIGKILL');
  await a.exitedPromise;
  const b = await start(db, env, 'worker');
  try {
    const fin = await final(j.id);
    assert.equal(fin.status, 'succeeded', fin.error);
    assert.equal(fin.result.complete, 2);
    const keys = psql(db, `SELECT child_key, count(*) FROM jobs WHERE parent_id = '${j.id}' GROUP BY 1 ORDER BY 1`);
    assert.deepEqual(keys, [['trial-0', '1'], ['trial-1', '1']], 'each trial submitted once');
    const kids = await children(j.id);
    assert.equal(starts(kids[0].id).length, 1, 'the finished trial did not run again');
    assert.equal(kids[0].attempts, 1);
    assert.equal(kids[1].attempts, 2, 'the interrupted trial was rescued');
    const ev = await events(kids[1].id);
    assert.ok(ev.some((e) => e.data.message === 'resumed from checkpoint'), 'and resumed from its checkpoint');
    const s = (await api(srv.base, key, 'GET', `/v1/studies/${fin.result.study_id}`)).json;
    assert.deepEqual(s.trials, { total: 2, running: 0, complete: 2, pruned: 0, failed: 0 });
  } finally {
    assert.equal((await b.stop()).code, 0, b.logs);
  }
});

test('cancel of the hpo job cancels its trials; it ends once they have stopped', async () => {
  const w = await start(db, env, 'worker');
  try {
    const j = await post(hpo({ parallel: 2, pruner: { name: 'none' }, train: { ...TRAIN(), max_steps: 100000, epochs: 1000 } }));
    await waitFor(async () => (await children(j.id)).some((k) => k.status === 'running'), 60000, 50);
    const c = await api(srv.base, key, 'POST', `/v1/jobs/${j.id}/cancel`);
    assert.equal(c.status, 200, c.text);
    const fin = await final(j.id, 60000);
    assert.equal(fin.status, 'cancelled');
    const kids = await children(j.id);
    assert.equal(kids.length, 2);
    for (const k of kids) assert.equal(k.status, 'cancelled', JSON.stringify(k));
    // its trials are not left running in the study
    const sid = kids[0].metadata.study_id;
    const st = (await api(srv.base, key, 'GET', `/v1/studies/${sid}`)).json;
    assert.deepEqual(st.trials, { total: 2, running: 0, complete: 0, pruned: 0, failed: 2 });
    const parentEnd = (await events(j.id)).find((e) => e.kind === 'status' && e.data.status === 'cancelled');
    for (const k of kids) {
      const end = (await events(k.id)).filter((e) => e.kind === 'status' || /cancel/.test(e.data.message ?? ''));
      assert.ok(end.every((e) => e.id < parentEnd.id), `${k.id} stopped before the hpo job ended`);
    }
  } finally {
    assert.equal((await w.stop()).code, 0, w.logs);
  }
});

test('refinery run: trials run inline under children/KEY; run again, none runs twice', () => {
  const data = join(root, 'sums.jsonl');
  writeFileSync(data, rowsText + '\n');
  const train = { ...TRAIN(), student: studentDir, teacher: studentDir, dataset: data, max_steps: 2 };
  const file = join(root, 'hpo-job.json');
  writeFileSync(file, JSON.stringify({ type: 'hpo', params: { ...hpo().params, train, n_trials: 2, pruner: { name: 'none' } } }));
  const wd = join(root, 'run');
  const lines = (out) => out.split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const first = run(['run', file, '--workdir', wd]);
  assert.equal(first.code, 0, first.stderr);
  const ev = lines(first.stdout);
  assert.deepEqual(readdirSync(join(wd, 'children')).sort(), ['trial-0', 'trial-1']);
  assert.ok(ev.some((e) => e.job === 'trial-1' && e.event === 'eval'), 'the children\'s events, tagged');
  const res = ev.at(-1);
  assert.equal(res.event, 'result');
  assert.equal(res.data.complete, 2);
  assert.ok(['trial-0', 'trial-1'].includes(res.data.best.job_id));
  assert.ok(readdirSync(wd).includes('hpo.svg'));
  const again = run(['run', file, '--workdir', wd]);
  assert.equal(again.code, 0, again.stderr);
  const ev2 = lines(again.stdout);
  assert.ok(!ev2.some((e) => e.job), 'no trial ran again');
  assert.deepEqual(ev2.at(-1).data.best, res.data.best);
});
