// POST /generate: a served language model continues a prompt at the rate pinned or the
// server's, as one JSON answer or streamed as NDJSON token by token; the greedy text is what
// ms.generate makes in-process; bad requests are refused by name; an image model has no
// /generate; the generated tokens are counted per rate in /metrics.
import t from 'tap';
import * as ms from '../../src/index.js';
import { call, postJson } from './http.js';

const VOCAB = [...' abcdefghijklmnopqrstuvwxyz.,\n'];

function lm(): ms.models.Transformer {
  ms.manualSeed(17);
  const model = ms.models.transformer({ vocab: VOCAB.length, vocabulary: VOCAB, dModel: 16, heads: 4, layers: 1, ffn: 32, ffnGroups: 4, context: 16 });
  for (const p of model.parameters()) for (let i = 0; i < p.size; i++) p.data[i] *= 6;
  ms.setTrainedRates(model, [1, 0.5, 0.25]);
  return model;
}

function local(model: ms.models.Transformer, prompt: string, maxTokens: number, rate: number): string {
  const ids = [...prompt].map((c) => VOCAB.indexOf(c));
  return ms.generate(model, ids, { maxTokens, temperature: 0, rate }).tokens.map((i) => VOCAB[i]).join('');
}

t.test('POST /generate answers the greedy continuation, whole or streamed, at the rate asked', async (t) => {
  const model = lm();
  const server = await ms.serve(model, { workers: 1, sloMs: 1000, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => server.close());
  const whole = await postJson(`${server.url}/generate`, { prompt: 'the cat', maxTokens: 40, temperature: 0, rate: 1 });
  t.equal(whole.status, 200, whole.text);
  const a = whole.json() as { text: string; tokens: number; rate: number };
  t.equal(a.text, local(model, 'the cat', 40, 1), 'the text ms.generate makes (40 tokens, past the context of 16)');
  t.equal(a.tokens, 40);
  t.equal(a.rate, 1);

  const streamed = await call(`${server.url}/generate`, { method: 'POST', body: JSON.stringify({ prompt: 'the cat', maxTokens: 20, temperature: 0, stream: true }), headers: { 'X-Slice-Rate': '0.5' } });
  t.equal(streamed.status, 200);
  t.match(String(streamed.headers['content-type']), /application\/x-ndjson/);
  const lines = streamed.text.trim().split('\n').map((l) => JSON.parse(l) as { token?: string; done?: boolean; text?: string; rate?: number });
  const last = lines.pop()!;
  t.ok(last.done, 'the last line says done');
  t.equal(last.rate, 0.5, 'at the pinned rate');
  t.equal(lines.map((l) => l.token).join(''), last.text, 'the streamed tokens make the text');
  t.equal(last.text, local(model, 'the cat', 20, 0.5), 'the rate-0.5 continuation');

  const stopped = (await postJson(`${server.url}/generate`, { prompt: 'the cat', maxTokens: 40, temperature: 0, stop: [a.text.slice(3, 5)] })).json() as { text: string };
  t.ok(a.text.startsWith(stopped.text) && stopped.text.endsWith(a.text.slice(3, 5)) && stopped.text.length < 40, `stops at the stop string: ${JSON.stringify(stopped.text)}`);
  const sampled = await postJson(`${server.url}/generate`, { prompt: 'a', maxTokens: 10, temperature: 1, topK: 3, seed: 5 });
  t.equal((sampled.json() as { tokens: number }).tokens, 10, 'sampling with top-k');

  const bad: [unknown, number, RegExp][] = [
    [{ prompt: 'THE' }, 400, /"prompt": character "T" at position 0 is not in the vocabulary of 30 tokens/],
    [{ prompt: '' }, 400, /"prompt" must be a non-empty string/],
    [{ prompt: 'a', maxTokens: 100000 }, 400, /"maxTokens" must be an integer in \[0, 4096\]/],
    [{ prompt: 'a', temperature: -1 }, 400, /"temperature" must be a number/],
    [{ prompt: 'a', rate: 2 }, 400, /"rate" must be a slice rate in \(0, 1\]/],
    [{ prompt: 'a', max_tokens: 3 }, 400, /unknown field "max_tokens"/],
    [{ prompt: 'a', stop: [''] }, 400, /"stop" must be a non-empty string/],
  ];
  for (const [body, status, message] of bad) {
    const r = await postJson(`${server.url}/generate`, body);
    t.equal(r.status, status, JSON.stringify(body));
    t.match((r.json() as { error: string }).error, message);
  }
  // curl -d's default form type with a JSON body is read as JSON; another type is refused.
  const form = await call(`${server.url}/generate`, { method: 'POST', body: JSON.stringify({ prompt: 'a', maxTokens: 2 }), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  t.equal(form.status, 200, form.text);
  const xml = await call(`${server.url}/generate`, { method: 'POST', body: '<prompt/>', headers: { 'Content-Type': 'text/xml' } });
  t.equal(xml.status, 415);
  const get = await call(`${server.url}/generate`);
  t.equal(get.status, 405);
  const metrics = await call(`${server.url}/metrics`);
  t.match(metrics.text, /modelslice_generated_tokens_total\{rate="1"\} \d+/);
  t.match(metrics.text, /modelslice_generated_tokens_total\{rate="0.5"\} 20/);
  t.match(metrics.text, /modelslice_requests_total\{route="generate",code="400"\} 7/);
});

t.test('a language model has no POST /predict: its answers are text', async (t) => {
  const server = await ms.serve(lm(), { workers: 1, sloMs: 1000, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => server.close());
  const r = await postJson(`${server.url}/predict`, { inputs: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]] });
  t.equal(r.status, 404);
  t.match((r.json() as { error: string }).error, /a language model .*POST \/generate/);
  const other = await call(`${server.url}/nowhere`);
  t.match(other.text, /try POST \/generate, GET \/healthz/, 'an unknown route points to /generate, not /predict');
});

t.test('an image model has no POST /generate', async (t) => {
  ms.manualSeed(1);
  const server = await ms.serve(ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 }), { sloMs: 1000, maxBatch: 2, profileRepeats: 1 });
  t.teardown(() => server.close());
  const r = await postJson(`${server.url}/generate`, { prompt: 'a' });
  t.equal(r.status, 404);
  t.match((r.json() as { error: string }).error, /not a language model/);
});
