// POST /v1/completions and /v1/chat/completions through the official `openai`
// npm client: greedy text and log-probabilities against the reference in
// reflm.mjs (the Llama equations in JavaScript), seeded sampling, n, stop
// strings, streaming equal to the whole answer, usage, concurrent requests on
// one model that do not disturb each other, the model cache's LRU eviction,
// tenant scoping, and problem+json errors naming the field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { createDb, migrate, createKey, start, api, assertProblem } from './harness.mjs';
import { loadRef, forward, logSoftmax } from './reflm.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
let db, srv, key, other, root, ref, client, dirA, dirB;

function checkpoint(name, fixture) {
  const dir = join(root, name);
  cpSync(join(repo, 'tests/reference/fixtures', fixture), dir, { recursive: true });
  const tokdir = join(repo, 'tests/reference/tokenizers/bytelevel');
  for (const f of readdirSync(tokdir)) cpSync(join(tokdir, f), join(dir, f));
  return dir;
}

before(async () => {
  root = mkdtempSync(join(process.env.REFINERY_TEST_TMP || '/tmp', 'completions-'));
  dirA = checkpoint('a', 'llama_f32_gqa');
  dirB = checkpoint('b', 'qwen2_f16_bias');
  ref = loadRef(dirA);
  db = createDb();
  migrate(db);
  key = createKey(db, 'c').key;
  other = createKey(db, 'c-other').key;
  // room for one of the two models at a time: the second evicts the first
  srv = await start(db, {
    REFINERY_WORKERS: '0',
    REFINERY_MODEL_ROOTS: root,
    REFINERY_INFER_THREADS: '3',
    REFINERY_MODEL_CACHE_BYTES: '400000',
  });
  for (const [name, path] of [['tiny', dirA], ['tiny-qwen', dirB]]) {
    const r = await api(srv.base, key, 'POST', '/v1/models', { name, path });
    assert.equal(r.status, 201, r.text);
  }
  client = new OpenAI({ apiKey: key, baseURL: `${srv.base}/v1`, maxRetries: 0 });
});
after(async () => assert.equal((await srv.stop()).code, 0, srv.logs));

// Greedy continuation by the reference: ids, the log-probability of each.
function refGreedy(prompt, n) {
  const ids = ref.encode(prompt), out = [], lps = [];
  for (let i = 0; i < n; i++) {
    const lg = forward(ref, [...ids, ...out]).at(-1);
    const ls = logSoftmax(lg);
    let best = 0;
    for (let j = 1; j < ls.length; j++) if (ls[j] > ls[best]) best = j;
    out.push(best);
    lps.push(ls[best]);
  }
  const known = out.filter((id) => id < ref.tok.model.vocab.length + 3); // tokenizer ids: vocab + added
  return { ids: out, lps, text: ref.tok.decode(known, { skip_special_tokens: true }), promptTokens: ids.length };
}

test('completion: greedy text and log-probabilities equal the reference', async () => {
  const want = refGreedy('this is', 8);
  assert.ok(want.text.length > 0, 'the reference continuation has visible text');
  const r = await client.completions.create({ model: 'tiny', prompt: 'this is', max_tokens: 8, temperature: 0, logprobs: 3 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.model, 'tiny');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].text, want.text);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: want.promptTokens, completion_tokens: 8, total_tokens: want.promptTokens + 8 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.token_logprobs.length, 8);
  lp.token_logprobs.forEach((v, i) => assert.ok(Math.abs(v - want.lps[i]) < 1e-4, `token ${i}: ${v} vs ${want.lps[i]}`));
  // greedy: the chosen token is the most likely alternative
  lp.top_logprobs.forEach((top, i) => assert.ok(Math.max(...Object.values(top)) - lp.token_logprobs[i] < 1e-6));
  // the same request through the contract check
  const raw = await api(srv.base, key, 'POST', '/v1/completions', { model: 'tiny', prompt: ['this is'], max_tokens: 8, temperature: 0 });
  assert.equal(raw.status, 200, raw.text);
  assert.equal(raw.json.choices[0].text, want.text);
  assert.equal(raw.json.choices[0].logprobs, null);
});

test('chat completion: text, logprobs, streaming equal to the whole answer, usage', async () => {
  const req = { model: 'tiny', messages: [{ role: 'system', content: 'hi' }, { role: 'user', content: 'this is the test' }], max_tokens: 12, temperature: 0 };
  const whole = await client.chat.completions.create({ ...req, logprobs: true, top_logprobs: 2 });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.equal(typeof whole.choices[0].message.content, 'string');
  // The tiny fixture's chat_template has no generation prompt, so the prompt ends with
  // <|im_end|> as transformers renders it and the answer may stop before max_tokens.
  assert.ok(whole.usage.completion_tokens >= 1 && whole.usage.completion_tokens <= 12);
  assert.equal(whole.choices[0].logprobs.content.length, whole.usage.completion_tokens);
  for (const t of whole.choices[0].logprobs.content) {
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.logprob <= 0 && Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
  }
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '', role = null, finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3);
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
  // the raw stream ends with [DONE]
  const res = await fetch(`${srv.base}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...req, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const body = await res.text();
  assert.match(body, /data: \[DONE\]\n\n$/);
});

test('sampling: n choices, seeds reproducible, stop strings cut the text', async () => {
  const req = { model: 'tiny', prompt: 'this is the test', max_tokens: 40, temperature: 1.5, seed: 1, n: 2 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  assert.equal(a.choices.length, 2);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.equal(a.usage.completion_tokens, 80);
  // choice 1 used seed + 1: a request with seed 2 gives it as choice 0
  const c = await client.completions.create({ ...req, n: 1, seed: 2 });
  assert.equal(c.choices[0].text, a.choices[1].text);
  // a stop string taken from the text ends it there, the stop left out
  const text = a.choices[0].text;
  assert.ok(text.length >= 2, text);
  const stop = text[1];
  const s = await client.completions.create({ ...req, n: 1, stop: [stop] });
  assert.equal(s.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(s.choices[0].finish_reason, 'stop');
  // and streamed, the same
  const st = await client.completions.create({ ...req, n: 1, stop, stream: true });
  let streamed = '';
  for await (const chunk of st) for (const ch of chunk.choices) streamed += ch.text;
  assert.equal(streamed, s.choices[0].text);
});

test('concurrent requests on one model do not disturb each other', async () => {
  const reqs = [...Array(8)].map((_, i) => ({ model: 'tiny', prompt: i % 2 ? 'this is' : 'hi test', max_tokens: 24, temperature: i % 3 ? 1 : 0, seed: i, n: 1 + (i % 2) }));
  const alone = [];
  for (const r of reqs) alone.push(await client.completions.create(r));
  const together = await Promise.all(reqs.map((r) => client.completions.create(r)));
  together.forEach((t, i) => assert.deepEqual(t.choices.map((c) => c.text), alone[i].choices.map((c) => c.text), `request ${i}`));
  const chats = await Promise.all([...Array(4)].map(() => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'this' }], max_tokens: 10, temperature: 0 })));
  for (const c of chats) assert.equal(c.choices[0].message.content, chats[0].choices[0].message.content);
});

test('the model cache evicts the least recently used model past its budget', async () => {
  const q = await client.completions.create({ model: 'tiny-qwen', prompt: 'hi', max_tokens: 2 });
  assert.equal(q.choices.length, 1);
  const t = await client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 2, temperature: 0 });
  assert.equal(t.choices.length, 1);
  assert.match(srv.logs, new RegExp(`model cache: unloaded ${dirA.replace(/[/.]/g, '\\$&')}\\b`));
  assert.match(srv.logs, new RegExp(`model cache: unloaded ${dirB.replace(/[/.]/g, '\\$&')}\\b`));
  const metrics = await (await fetch(`${srv.base}/metrics`)).text();
  const value = (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)[1]);
  assert.equal(value('refinery_model_cache_models'), 1);
  assert.ok(value('refinery_model_cache_evictions_total') >= 2);
  assert.ok(value('refinery_model_cache_loads_total') >= 3);
});

test('errors: problem+json naming the field; other tenants cannot see the model', async () => {
  const post = (path, body, k = key) => api(srv.base, k, 'POST', path, body);
  assertProblem(assert, await post('/v1/completions', { model: 'nope', prompt: 'hi' }), 404, 'model');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi' }, other), 404, 'model');
  assertProblem(assert, await post('/v1/completions', { prompt: 'hi' }), 422, 'model');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny' }), 422, 'prompt');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', temperature: 3 }), 422, 'temperature');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: '', stream: true }), 422, 'prompt');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', n: 0 }), 422, 'n');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', stop: ['a', 'b', 'c', 'd', 'e'] }), 422, 'stop');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', logprobs: 9 }), 422, 'logprobs');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', max_tokens: 1000 }), 422, 'max_tokens');
  assertProblem(assert, await post('/v1/completions', { model: 'tiny', prompt: 'hi', bogus: 1 }), 422, 'bogus');
  assertProblem(assert, await post('/v1/chat/completions', { model: 'tiny', messages: [] }), 422, 'messages');
  assertProblem(assert, await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'tool', content: 'x' }] }), 422, 'messages[0].role');
  assertProblem(assert, await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }), 422, 'top_logprobs');
  assertProblem(assert, await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 1000 }), 422, 'max_completion_tokens');
  // the client sees the status as an APIError
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'hi', temperature: 5 }), (e) => e.status === 422);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 404);
});

test('clients that go away mid-request or mid-stream leave the server sound', async () => {
  const body = JSON.stringify({ model: 'tiny', prompt: 'this is the test', max_tokens: 100, temperature: 1, n: 4 });
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  // streams dropped after their first chunk
  for (let i = 0; i < 4; i++) {
    const ac = new AbortController();
    const res = await fetch(`${srv.base}/v1/completions`, { method: 'POST', headers, body: body.replace('}', ',"stream":true}'), signal: ac.signal });
    const reader = res.body.getReader();
    await reader.read();
    ac.abort();
  }
  // requests dropped before their answer
  await Promise.all([...Array(6)].map(async () => {
    const ac = new AbortController();
    const p = fetch(`${srv.base}/v1/completions`, { method: 'POST', headers, body, signal: ac.signal }).catch((e) => e);
    setTimeout(() => ac.abort(), 1);
    await p;
  }));
  const r = await client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 4, temperature: 0 });
  assert.equal(r.choices[0].finish_reason, 'length');
});
