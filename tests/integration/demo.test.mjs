// The shipped demo (demo/, made by scripts/make-demo.sh): its files are what
// the script makes (scripts/demo/check.py regenerates the deterministic ones
// and checks the manifest), its tokenizer gives the ids
// @huggingface/tokenizers gives on the world's corpus, the teacher beats the
// student on the world's multiple-choice test set through the evaluate job
// over HTTP, and the teacher's answers to the dataset job's four default
// prompts (sampled at temperature 0.7) parse in most samples and are mostly
// true.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { createDb, migrate, createKey, start, api, waitFor, run } from './harness.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const demo = join(repo, 'demo');
// Debian's python3 (jinja2 for the chat template check), as test_gptq uses.
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const manifest = JSON.parse(readFileSync(join(demo, 'MANIFEST.json'), 'utf8'));
const task = JSON.parse(readFileSync(join(demo, 'task.json'), 'utf8'));
const readJsonl = (p) => readFileSync(p, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const testRows = readJsonl(join(demo, 'data', 'test.jsonl'));

let tmp, check, corpusFile, chatFile, db, srv, key;

before(async () => {
  tmp = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'demo-'));
  corpusFile = join(tmp, 'corpus.jsonl');
  chatFile = join(tmp, 'chat.jsonl');
  check = spawnSync(PY, ['scripts/demo/check.py', '--corpus-out', corpusFile, '--chat-out', chatFile], { cwd: repo, encoding: 'utf8' });
  db = createDb();
  migrate(db);
  key = createKey(db, 'demo').key;
  srv = await start(db, { REFINERY_WORKERS: '1', REFINERY_MODEL_ROOTS: join(demo, 'models') });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

test('demo: the shipped files are what make-demo.sh makes', () => {
  assert.equal(check.status, 0, `scripts/demo/check.py:\n${check.stdout}${check.stderr}`);
  assert.ok(manifest.total_bytes < 20e6, `${manifest.total_bytes} bytes`);
});

test('demo: tokenizer ids equal @huggingface/tokenizers on the corpus', () => {
  const texts = readJsonl(corpusFile);
  assert.ok(texts.length > 500, `${texts.length} texts`);
  const dir = join(demo, 'models', 'teacher');
  const ref = new Tokenizer(
    JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
  );
  const r = run(['tokenize', '--model', dir, '--jsonl', '--no-special'], {}, {
    input: texts.map((t) => JSON.stringify(t)).join('\n') + '\n',
    maxBuffer: 1 << 28,
  });
  assert.equal(r.code, 0, r.stderr);
  const ours = r.stdout.split('\n').filter((l) => l).map((l) => JSON.parse(l));
  assert.equal(ours.length, texts.length);
  let tokens = 0;
  texts.forEach((t, i) => {
    const want = ref.encode(t, { add_special_tokens: false }).ids;
    assert.deepEqual(ours[i], want, `text ${i}: ${JSON.stringify(t).slice(0, 80)}`);
    tokens += want.length;
  });
  // the chat markers are single special tokens, and the vocabulary is the small one
  const special = ref.encode('<|im_start|>user\nhi<|im_end|>\n', { add_special_tokens: false }).ids;
  assert.equal(special[0], manifest.tokenizer.vocab - 2);
  assert.ok(tokens > 50000, `${tokens} tokens compared`);
});

test("demo: refinery's chat formatting is the chat_template as Jinja2 renders it", () => {
  const convs = readJsonl(chatFile);
  assert.ok(convs.length >= 20);
  for (const c of convs) {
    const args = ['tokenize', '--model', join(demo, 'models', 'student'), '--chat'];
    if (!c.add_generation_prompt) args.push('--no-generation-prompt');
    const r = run(args, {}, { input: JSON.stringify(c.messages) });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.text, c.text);
  }
});

async function finished(id) {
  return waitFor(async () => {
    const j = (await api(srv.base, key, 'GET', `/v1/jobs/${id}`)).json;
    return ['succeeded', 'failed', 'cancelled'].includes(j.status) && j;
  }, 120000, 200);
}

test('demo: the teacher beats the student on the test set (evaluate job over HTTP)', async () => {
  const body = readFileSync(join(demo, 'data', 'test.jsonl'), 'utf8');
  const ds = await api(srv.base, key, 'POST', '/v1/datasets?name=vessa-test', body, { 'content-type': 'application/x-ndjson' });
  assert.equal(ds.status, 201, ds.text);
  assert.equal(ds.json.rows.test, testRows.length);
  assert.equal(ds.json.multiple_choice, testRows.length);
  const acc = {};
  for (const m of ['teacher', 'student']) {
    const reg = await api(srv.base, key, 'POST', '/v1/models', { name: `demo-${m}`, path: join(demo, 'models', m) });
    assert.equal(reg.status, 201, reg.text);
    assert.equal(reg.json.dtype, 'bfloat16');
    const r = await api(srv.base, key, 'POST', '/v1/jobs', {
      type: 'evaluate',
      params: { model: `demo-${m}`, dataset: ds.json.id, split: 'test', metrics: ['accuracy'], chat: true },
    });
    assert.equal(r.status, 201, r.text);
    const j = await finished(r.json.id);
    assert.equal(j.status, 'succeeded', JSON.stringify(j));
    assert.equal(j.result.multiple_choice_rows, testRows.length);
    acc[m] = j.result;
    // what the manifest records is what the job measures (a row or two may
    // flip between the optimised build that made it and this one)
    assert.ok(Math.abs(j.result.acc - manifest[m].test.acc) <= 2 / testRows.length, `${m}: ${j.result.acc} vs ${manifest[m].test.acc}`);
  }
  assert.ok(acc.teacher.acc >= acc.student.acc + 0.15, `teacher ${acc.teacher.acc} student ${acc.student.acc}`);
  assert.ok(acc.teacher.acc_norm >= acc.student.acc_norm + 0.15, `teacher ${acc.teacher.acc_norm} student ${acc.student.acc_norm}`);
  assert.ok(acc.teacher.acc >= 0.8, `teacher ${acc.teacher.acc}`);
});

// The dataset job's default prompts, verbatim.
const PROMPTS = {
  subtopics: 'Task: {task}\n{description}\nExample request: {seed}\nList {n} distinct sub-topics of this task. Answer with a numbered list, one sub-topic per line.',
  qa: 'Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\nWrite {n} new question and answer pairs on this sub-topic. Answer with a JSON array of objects with the keys "question" and "answer".',
  mc: 'Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\nWrite {n} new multiple-choice questions on this sub-topic. Answer with a JSON array of objects with the keys "question", "choices" (a list of 4 strings) and "answer" (the index of the correct choice).',
  judge: 'Task: {task}\n{description}\nRubric: {rubric}\nQuestion: {question}\nAnswer: {answer}\nRate the answer from 1 to 10 against the rubric. Reply with "Score: N/10" and one sentence of justification.',
};
const fill = (t, v) => t.replace(/\{(\w+)\}/g, (_, k) => String(v[k]));
const RUBRIC = 'The answer is correct, complete and directly answers the question.';

function generate(prompt, maxTokens, seed) {
  const r = run(['generate', '--model', join(demo, 'models', 'teacher'), '--chat', '--prompt', prompt,
    '--max-tokens', String(maxTokens), '--temperature', '0.7', '--seed', String(seed), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).text;
}

// Parsers of the four answers: a numbered list; a JSON array of pairs; the
// same with choices and an answer index; a "Score: N/10".
function parseList(text) {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter((l) => l);
  const items = lines.map((l) => /^\d+[.)]\s*(.+)$/.exec(l)?.[1]);
  return lines.length && items.every((x) => x) ? items : null;
}
function parseArray(text, mc) {
  let v;
  try {
    v = JSON.parse(text.slice(text.indexOf('['), text.lastIndexOf(']') + 1));
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  const ok = v.filter((o) => o && typeof o.question === 'string' && (mc
    ? Array.isArray(o.choices) && o.choices.length === 4 && o.choices.every((c) => typeof c === 'string') && Number.isInteger(o.answer) && o.answer >= 0 && o.answer < 4
    : typeof o.answer === 'string'));
  return ok.length ? ok.map((o) => [o.question, mc ? o.choices[o.answer] : o.answer]) : null;
}
const parseScore = (text) => {
  const m = /Score:\s*(\d+)\s*\/\s*10/.exec(text);
  return m && +m[1] >= 1 && +m[1] <= 10 ? +m[1] : null;
};

test("demo: the teacher's answers to the four default prompts parse and are mostly true", () => {
  // The world's answers to the questions of its test set and fallback pairs.
  const truth = new Map();
  for (const r of testRows) truth.set(r.prompt, r.choices[r.answer]);
  for (const r of readJsonl(join(demo, 'data', 'pairs.jsonl'))) if (r.response) truth.set(r.prompt, r.response);
  const N = 6, seeds = task.seed_prompts;
  const base = { task: task.name, description: task.description, n: 5 };
  const got = { subtopics: 0, qa: 0, mc: 0, judge: 0 };
  let known = 0, right = 0, honest = 0;
  for (let i = 0; i < N; i++) {
    // the dataset job's chain: sub-topics from a seed prompt, pairs on one of them
    const items = parseList(generate(fill(PROMPTS.subtopics, { ...base, seed: seeds[i % seeds.length] }), 64, 100 + i));
    if (items) got.subtopics++;
    const subtopic = items ? items[i % items.length] : manifest.world.subtopics[i];
    const examples = [0, 1, 2].map((k) => `Q: ${seeds[(i + k) % seeds.length]}`).join('\n');
    for (const kind of ['qa', 'mc']) {
      const pairs = parseArray(generate(fill(PROMPTS[kind], { ...base, subtopic, examples }), kind === 'mc' ? 260 : 200, 200 + i), kind === 'mc');
      if (!pairs) continue;
      got[kind]++;
      for (const [q, a] of pairs) {
        if (!truth.has(q)) continue;
        known++;
        right += truth.get(q) === a;
      }
    }
    // the judge on a right answer, then a wrong one
    const row = testRows[(i * 37) % testRows.length];
    const isRight = i % 2 === 0;
    const answer = row.choices[isRight ? row.answer : (row.answer + 1) % 4];
    const score = parseScore(generate(fill(PROMPTS.judge, { ...base, rubric: RUBRIC, question: row.prompt, answer }), 48, 300 + i));
    if (score !== null) {
      got.judge++;
      honest += isRight ? score >= 6 : score <= 4;
    }
  }
  for (const [kind, n] of Object.entries(got)) assert.ok(n >= Math.ceil(0.66 * N), `${kind}: ${n} of ${N} parseable`);
  assert.ok(known >= 10 && right / known >= 0.6, `${right} of ${known} generated pairs true`);
  assert.ok(honest >= Math.ceil(0.66 * got.judge), `${honest} of ${got.judge} judge scores honest`);
});
