// A scripted OpenAI-compatible chat server for the dataset job's tests: it
// answers the three Self-Instruct prompts (sub-topics, pairs, judge) the way
// a well-behaved teacher would, with questions that are far apart in
// ROUGE-L, and injects the faults a test asks for (per request, in order):
//   {status: 429|500|401|302, retryAfter?: "1" | HTTP date, body?: string}
//   {delayMs}                   answer late (past the client's timeout)
//   {malformed: true}           a 200 whose content is not readable
//   {truncated: true}           finish_reason "length"
// `repeatPairs: N` makes the next N pair requests repeat the first reply;
// `failAfter: {pairs: N, status}` makes every request after the N-th pair
// request fail for good (a teacher that never recovers). Every request is
// logged with its time, kind and Authorization header.
import { createServer } from 'node:http';

export async function startTeacher(opts = {}) {
  const state = { faults: [], log: [], pairCalls: 0, questionNo: 0, failAfter: null, delayMs: 0, firstPairs: null, key: null };
  Object.assign(state, opts);
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => handle(state, req, res, body));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}/v1`;
  return {
    base,
    state,
    script(faults) {
      state.faults.push(...faults);
    },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

// Words from a number: distinct numbers share no word.
function words(n, k) {
  const out = [];
  for (let i = 0; i < k; i++) {
    let x = n * 7 + i, w = '';
    do {
      w += String.fromCharCode(97 + (x % 26));
      x = Math.floor(x / 26);
    } while (x > 0);
    out.push(w + 'q' + (n * 7 + i).toString(36));
  }
  return out;
}

function kind(prompt) {
  if (/Rate the answer/.test(prompt)) return 'judge';
  if (/sub-topics/.test(prompt)) return 'subtopics';
  return 'pairs';
}

function completion(content, finish = 'stop', model = 'scripted') {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }],
    usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
  };
}

function answer(state, k, prompt, fault) {
  if (k === 'subtopics') {
    const n = Number(/List (\d+) distinct/.exec(prompt)?.[1] || 3);
    return Array.from({ length: n }, (_, i) => `${i + 1}. Sub-topic ${words(1000 + i, 1)[0]}`).join('\n');
  }
  if (k === 'judge') return 'Score: 8/10. Correct and complete.';
  const n = Number(/Write (\d+) new/.exec(prompt)?.[1] || 3);
  const mc = /multiple-choice/.test(prompt);
  if (state.repeatPairs > 0 && state.firstPairs) {
    state.repeatPairs--;
    return state.firstPairs;
  }
  const items = [];
  for (let i = 0; i < n; i++) {
    const q = `Explain ${words(state.questionNo++, 5).join(' ')} in simple terms?`;
    items.push(mc ? { question: q, choices: ['alpha', 'beta', 'gamma', 'delta'], answer: 2 } : { question: q, answer: `It is ${words(state.questionNo, 2).join(' ')}.` });
  }
  const text = '```json\n' + JSON.stringify(items, null, 1) + '\n```';
  state.firstPairs ??= text;
  return text;
}

function handle(state, req, res, body) {
  let json = null;
  try {
    json = JSON.parse(body);
  } catch {}
  const prompt = json?.messages?.[0]?.content || '';
  const k = kind(prompt);
  state.log.push({ t: Date.now(), kind: k, auth: req.headers.authorization || null, url: req.url, body: json });
  if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
    res.writeHead(404, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ error: { message: 'no such route' } }));
  }
  if (state.key && req.headers.authorization !== `Bearer ${state.key}`) {
    res.writeHead(401, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }));
  }
  if (k === 'pairs') state.pairCalls++;
  if (state.failAfter && state.pairCalls > state.failAfter.pairs) {
    res.writeHead(state.failAfter.status || 500, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ error: { message: 'the teacher is down for good' } }));
  }
  const fault = state.faults.shift();
  state.log.at(-1).fault = fault;
  const send = () => {
    if (fault?.status) {
      const h = { 'content-type': 'application/json' };
      if (fault.retryAfter) h['retry-after'] = fault.retryAfter;
      if (fault.status >= 300 && fault.status < 400) h.location = 'http://169.254.169.254/v1/chat/completions';
      res.writeHead(fault.status, h);
      return res.end(fault.body ?? JSON.stringify({ error: { message: `scripted ${fault.status}` } }));
    }
    if (fault?.badBody) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"choices": [ this is not json');
    }
    const content = fault?.malformed ? 'Sorry, here is something that is neither JSON nor a list.' : answer(state, k, prompt, fault);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(completion(content, fault?.truncated ? 'length' : 'stop', json?.model)));
  };
  const delay = fault?.delayMs ?? state.delayMs;
  if (delay) setTimeout(send, delay);
  else send();
}

// Run as a script: a teacher on a port, printed (for trying the job by hand).
if (import.meta.url === `file://${process.argv[1]}`) {
  const t = await startTeacher();
  console.log(t.base);
}
