// Generation from a sliced transformer: the key/value cache gives the logits of a full pass
// (a narrow rate's cache holds only its heads), greedy decoding equals argmax over full
// passes of the same windows, speculative decoding gives the full model's greedy tokens at
// temperature 0 and its distribution at temperature 1 (chi-square over fixed seeds), and bad
// options are refused by name.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose } from '../helpers/reference.js';
import { chiSquarePValue } from '../helpers/stats.js';

function model(options: { vocab?: number; context?: number; seed?: number } = {}): ms.models.Transformer {
  ms.manualSeed(options.seed ?? 31);
  const m = ms.models.transformer({ vocab: options.vocab ?? 11, dModel: 16, heads: 4, layers: 2, ffn: 32, ffnGroups: 4, context: options.context ?? 12 });
  // Larger weights than the initialisation's, so the distributions are far from uniform.
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] *= 8;
  return m.eval();
}

/** Logits of a full pass over ids at a rate: [T, vocab]. */
function fullPass(m: ms.models.Transformer, ids: number[], rate: number): Float32Array {
  m.setSliceRate(rate);
  try {
    return ms.noGrad(() => m.forward(ms.tensor(ids, [1, ids.length]))).data;
  } finally {
    m.setSliceRate(1);
  }
}

t.test('decode with a cache gives a full pass\'s logits, token by token and in chunks, at every rate', async (t) => {
  const m = model();
  const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
  for (const rate of [1, 0.5, 0.25]) {
    const want = fullPass(m, ids, rate);
    const cache = new ms.KVCache(m, { rate });
    t.equal(cache.width, 16 * rate, `rate ${rate}: the cache holds ${cache.heads} heads`);
    const got = [ms.decode(m, cache, Int32Array.from(ids.slice(0, 4)), 4), ms.decode(m, cache, Int32Array.from([ids[4]]), 1), ms.decode(m, cache, Int32Array.from(ids.slice(5)), 5)];
    const joined = new Float32Array(want.length);
    let at = 0;
    for (const g of got) {
      joined.set(g.data, at);
      at += g.size;
    }
    assertClose(t, joined, want, `rate ${rate}`, { atol: 1e-4 });
  }
  // Two sequences of different lengths in one cache: each as on its own.
  const cache = new ms.KVCache(m, { sequences: 2 });
  ms.decode(m, cache, Int32Array.from([3, 1, 4, 1]), 2);
  ms.decode(m, cache, Int32Array.from([5, 7]), 1);
  t.same(cache.lengths, [3, 3]);
  const two = ms.decode(m, cache, Int32Array.from([2, 6]), 1);
  assertClose(t, two.data.subarray(0, 11), fullPass(m, [3, 1, 5, 2], 1).subarray(33), 'sequence 0', { atol: 1e-4 });
  assertClose(t, two.data.subarray(11), fullPass(m, [4, 1, 7, 6], 1).subarray(33), 'sequence 1', { atol: 1e-4 });
  t.throws(() => ms.decode(m, cache, Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8]), 9), /sequence 0 holds 4 positions; 9 more exceed the context 12/);
});

/** Greedy decoding by full passes over the window generate() uses (the last context tokens, restarted every half context). */
function greedyReference(m: ms.models.Transformer, prompt: number[], n: number, rate: number): number[] {
  const c = m.config.context;
  const text = [...prompt];
  for (let k = 0; k < n; k++) {
    const i = text.length - 1;
    const start = i < c ? 0 : (Math.floor(i / (c / 2)) - 1) * (c / 2);
    const logits = fullPass(m, text.slice(start), rate);
    const last = logits.subarray(logits.length - m.config.vocab);
    let best = 0;
    for (let j = 1; j < last.length; j++) if (last[j] > last[best]) best = j;
    text.push(best);
  }
  return text.slice(prompt.length);
}

t.test('greedy generation equals argmax of full passes, past the context; speculative gives the same tokens', async (t) => {
  const m = model();
  const prompt = [1, 2, 3];
  for (const rate of [1, 0.5]) {
    const { tokens } = ms.generate(m, prompt, { maxTokens: 30, temperature: 0, rate });
    t.same(tokens, greedyReference(m, prompt, 30, rate), `rate ${rate}: 30 tokens, the context of 12 outgrown`);
  }
  const plain = ms.generate(m, prompt, { maxTokens: 30, temperature: 0 });
  for (const draftTokens of [1, 3, 5]) {
    for (const draftMinProbability of [0, 0.3, 0.9]) {
      const spec = ms.speculativeGenerate(m, prompt, { maxTokens: 30, temperature: 0, draftTokens, draftMinProbability });
      const what = `draftTokens ${draftTokens}, draftMinProbability ${draftMinProbability}`;
      t.same(spec.tokens, plain.tokens, `${what}: the full model's tokens`);
      t.ok(spec.stats.passes < 30 || spec.stats.accepted === 0, `${what}: ${spec.stats.passes} full passes, ${spec.stats.accepted} of ${spec.stats.drafted} drafts kept`);
    }
  }
  // The draft stops at its first unsure token: with every token unsure (a probability of 1
  // asked), one proposal per full pass at most; with none (0), up to draftTokens of them.
  const unsure = ms.speculativeGenerate(m, prompt, { maxTokens: 30, temperature: 0, draftTokens: 4, draftMinProbability: 1 });
  // (none in a pass at a window's end or before the last token)
  t.ok(unsure.stats.drafted <= unsure.stats.passes && unsure.stats.drafted >= unsure.stats.passes / 2, `draftMinProbability 1: at most one proposal a pass (${unsure.stats.drafted} in ${unsure.stats.passes})`);
  t.same(unsure.tokens, plain.tokens, 'and the same tokens');
  const eager = ms.speculativeGenerate(m, prompt, { maxTokens: 30, temperature: 0, draftTokens: 4, draftMinProbability: 0 });
  t.ok(eager.stats.drafted > 2 * eager.stats.passes, `draftMinProbability 0: ${eager.stats.drafted} proposals in ${eager.stats.passes} passes`);
  // A draft that is the full model itself is always right.
  const self = ms.speculativeGenerate(m, prompt, { maxTokens: 20, temperature: 0, draftRate: 1, draftTokens: 4 });
  t.equal(self.stats.accepted, self.stats.drafted, 'a full-rate draft: every proposal kept');
  t.ok(self.stats.passes <= 6, `${self.stats.passes} passes for 20 tokens`);
});

t.test('a compact slice generates what the full model does at that rate', async (t) => {
  const m = model();
  const half = m.slice(0.5);
  t.same(ms.generate(half, [1, 2, 3], { maxTokens: 20, temperature: 0 }).tokens, ms.generate(m, [1, 2, 3], { maxTokens: 20, temperature: 0, rate: 0.5 }).tokens);
  t.same(ms.generate(half, [1, 2, 3], { maxTokens: 20, temperature: 0, rate: 0.5 }).tokens, ms.generate(m, [1, 2, 3], { maxTokens: 20, temperature: 0, rate: 0.25 }).tokens);
});

t.test('stop sequences and streaming', async (t) => {
  const m = model();
  const all = ms.generate(m, [1], { maxTokens: 20, temperature: 0 }).tokens;
  const stop = all.slice(5, 7);
  const first = all.findIndex((_, i) => i >= 1 && all[i - 1] === stop[0] && all[i] === stop[1]);
  const seen: number[] = [];
  const out = ms.generate(m, [1], { maxTokens: 20, temperature: 0, stop: [stop], onToken: (id) => seen.push(id) }).tokens;
  t.same(out, all.slice(0, first + 1), 'ends with the stop sequence');
  t.same(seen, out, 'each token streamed once, in order');
  t.same(ms.speculativeGenerate(m, [1], { maxTokens: 20, temperature: 0, stop: [stop] }).tokens, out, 'speculative stops at the same place');
});

t.test('speculative decoding at temperature 1 follows the full model\'s distribution (chi-square)', async (t) => {
  const m = model({ vocab: 4, seed: 5 });
  const prompt = [0, 1];
  // The exact distribution of the next two tokens from full passes.
  const p1 = ms.samplingDistribution(fullPass(m, prompt, 1).subarray(4));
  const expected: number[] = [];
  for (let a = 0; a < 4; a++) {
    const p2 = ms.samplingDistribution(fullPass(m, [...prompt, a], 1).subarray(8));
    for (let b = 0; b < 4; b++) expected.push(p1[a] * p2[b]);
  }
  const runs = 3000;
  for (const [name, gen] of [
    ['speculative (draft 0.25, 2 tokens)', (seed: number) => ms.speculativeGenerate(m, prompt, { maxTokens: 2, draftTokens: 2, draftMinProbability: 0, seed })],
    // The draft stops after an unlikely first token (about half the time here): either way the pair follows the full model.
    ['speculative, stopping when unsure', (seed: number) => ms.speculativeGenerate(m, prompt, { maxTokens: 2, draftTokens: 2, draftMinProbability: 0.3, seed })],
    ['plain sampling', (seed: number) => ms.generate(m, prompt, { maxTokens: 2, seed })],
  ] as const) {
    const counts = new Array<number>(16).fill(0);
    for (let s = 0; s < runs; s++) {
      const [a, b] = gen(1000 + s).tokens;
      counts[a * 4 + b]++;
    }
    const p = chiSquarePValue(counts, expected.map((e) => e * runs));
    t.ok(p >= 0.001, `${name}: chi-square p = ${p.toFixed(4)} over ${runs} seeds`);
  }
  // The test can fail: the draft's own distribution is not the full model's.
  const counts = new Array<number>(16).fill(0);
  for (let s = 0; s < runs; s++) {
    const [a, b] = ms.generate(m, prompt, { maxTokens: 2, seed: 1000 + s, rate: 0.25 }).tokens;
    counts[a * 4 + b]++;
  }
  t.ok(chiSquarePValue(counts, expected.map((e) => e * runs)) < 0.001, 'the rate-0.25 slice alone is told apart');
});

t.test('bad options are refused by name', async (t) => {
  const m = model();
  t.throws(() => ms.generate(m, [], { maxTokens: 3 }), /generate: the prompt must hold at least one token/);
  t.throws(() => ms.generate(m, [11], { maxTokens: 3 }), /prompt\[0\] = 11 is not a token id in \[0, 11\)/);
  t.throws(() => ms.generate(m, [1], { maxTokens: -1 }), /maxTokens must be a non-negative integer/);
  t.throws(() => ms.generate(m, [1], { maxTokens: 1, temperature: -1 }), /temperature must be a finite number >= 0/);
  t.throws(() => ms.generate(m, [1], { maxTokens: 1, topK: 0 }), /topK must be a positive integer/);
  t.throws(() => ms.generate(m, [1], { maxTokens: 1, rate: 2 }), /rate/);
  t.throws(() => ms.speculativeGenerate(m, [1], { maxTokens: 1, draftTokens: 0 }), /draftTokens must be a positive integer/);
  t.throws(() => ms.speculativeGenerate(m, [1], { maxTokens: 1, draftMinProbability: 1.5 }), /speculativeGenerate: draftMinProbability must be a number in \[0, 1\], got 1.5/);
  t.throws(() => ms.speculativeGenerate(m, [1], { maxTokens: 1, draftMinProbability: Number.NaN }), /draftMinProbability must be a number in \[0, 1\], got NaN/);
  t.same(ms.generate(m, [1], { maxTokens: 0 }).tokens, [], 'no tokens asked, none made');
  // Top-k keeps the k most likely tokens only.
  const logits = fullPass(m, [1, 2], 1).subarray(11);
  const top2 = ms.samplingDistribution(logits, { topK: 2 });
  t.equal([...top2].filter((x) => x > 0).length, 2);
  for (let s = 0; s < 20; s++) t.ok(top2[ms.generate(m, [1, 2], { maxTokens: 1, topK: 2, seed: s }).tokens[0]] > 0, `seed ${s}: a top-2 token`);
});
