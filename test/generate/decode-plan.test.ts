// Decode steps replayed as plans: the same logits and the same cache as the ops run one by one,
// at every rate, for one sequence and for several of different lengths, up to a full context;
// parameters changed in place are read at the next step; long steps and bad ids still behave.
import t, { type Test } from 'tap';
import * as ms from '../../src/index.js';
import { DecodePlan, PLANNED_TOKENS } from '../../src/generate/decode.js';
import { Generator } from '../../src/random.js';

function model(seed = 7): ms.models.Transformer {
  ms.manualSeed(seed);
  const m = ms.models.transformer({ vocab: 13, dModel: 16, heads: 4, layers: 2, ffn: 32, ffnGroups: 4, context: 12 });
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] *= 6;
  return m.eval();
}

function sameCache(t: Test, a: ms.KVCache, b: ms.KVCache, what: string): void {
  t.same(a.lengths, b.lengths, `${what}: lengths`);
  let differ = 0;
  for (const part of ['keys', 'values'] as const) {
    a[part].forEach((layer, l) =>
      layer.forEach((buf, r) => {
        const held = a.lengths[r] * a.width;
        for (let i = 0; i < held; i++) if (buf[i] !== b[part][l][r][i]) differ++;
      }),
    );
  }
  t.equal(differ, 0, `${what}: the caches hold the same keys and values`);
}

t.test('a planned step gives the eager step\'s logits and cache, at every rate, up to a full context', async (t) => {
  const m = model();
  const gen = new Generator(5);
  for (const rate of [1, 0.75, 0.5, 0.25]) {
    for (const sequences of [1, 3]) {
      const planned = new ms.KVCache(m, { rate, sequences });
      const eager = new ms.KVCache(m, { rate, sequences });
      // Token counts per step, the last ones filling the context (12) exactly.
      const steps = [2, 1, 1, 3, 1, 4];
      let worst = 0;
      steps.forEach((n, s) => {
        // Sequences of different lengths: after the second step the later ones drop a position.
        if (s === 2) {
          for (let r = 1; r < sequences; r++) {
            planned.truncate(r, planned.lengths[r] - r);
            eager.truncate(r, eager.lengths[r] - r);
          }
        }
        const ids = Int32Array.from({ length: sequences * n }, () => Math.floor(gen.uniform() * 13));
        const a = ms.decode(m, planned, ids, n);
        const b = ms.decode(m, eager, ids, n, { plan: false });
        t.same(a.shape, [sequences, n, 13]);
        t.same(a.shape, b.shape);
        for (let i = 0; i < a.size; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
      });
      t.equal(worst, 0, `rate ${rate}, ${sequences} sequence(s): identical logits at every step`);
      sameCache(t, planned, eager, `rate ${rate}, ${sequences} sequence(s)`);
      t.equal(planned.lengths[0], 12, 'the first sequence filled the context');
      for (const n of steps) t.type(planned.planFor(m, n), DecodePlan, `steps of ${n} token(s) were replayed`);
      t.throws(() => ms.decode(m, planned, new Int32Array(sequences), 1), /exceed the context 12/, 'a full cache refuses another token');
    }
  }
});

t.test('a plan reads parameters changed in place, and a step longer than a plan takes goes eager', async (t) => {
  const m = model(8);
  const planned = new ms.KVCache(m, { rate: 0.5 });
  const eager = new ms.KVCache(m, { rate: 0.5 });
  const first = Int32Array.from([1, 2, 3]);
  ms.decode(m, planned, first, 3);
  ms.decode(m, eager, first, 3, { plan: false });
  // Training (or a load) writes into the same arrays: the next replay must see it.
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] *= 0.9;
  const a = ms.decode(m, planned, Int32Array.from([4, 5, 6]), 3);
  const b = ms.decode(m, eager, Int32Array.from([4, 5, 6]), 3, { plan: false });
  t.same(Array.from(a.data), Array.from(b.data), 'the replay reads the new weights');
  const loaded = model(9);
  m.loadStateDict(loaded.stateDict());
  const c = ms.decode(m, planned, Int32Array.from([7]), 1);
  const d = ms.decode(m, eager, Int32Array.from([7]), 1, { plan: false });
  t.same(Array.from(c.data), Array.from(d.data), 'and the weights of a loaded state');
  // A prompt longer than a plan takes runs eager; the steps after it replay.
  ms.manualSeed(10);
  const wide = ms.models.transformer({ vocab: 13, dModel: 16, heads: 4, layers: 2, ffn: 32, ffnGroups: 4, context: PLANNED_TOKENS + 4 }).eval();
  const long = Int32Array.from({ length: PLANNED_TOKENS + 1 }, (_, i) => (i * 5) % 13);
  const wa = new ms.KVCache(wide, { rate: 0.75 });
  const wb = new ms.KVCache(wide, { rate: 0.75 });
  const e = [ms.decode(wide, wa, long, long.length), ms.decode(wide, wa, Int32Array.from([3, 4]), 2)];
  const f = [ms.decode(wide, wb, long, long.length, { plan: false }), ms.decode(wide, wb, Int32Array.from([3, 4]), 2, { plan: false })];
  t.same(e.map((x) => Array.from(x.data)), f.map((x) => Array.from(x.data)), 'a long step then a planned one');
  sameCache(t, wa, wb, 'after a long step');
});

t.test('bad ids are refused by name before the cache changes', async (t) => {
  const m = model();
  const cache = new ms.KVCache(m, { rate: 0.25 });
  ms.decode(m, cache, Int32Array.from([1]), 1);
  t.throws(() => ms.decode(m, cache, Int32Array.from([13]), 1), /decode: ids\[0\] = 13 is not a token id in \[0, 13\)/);
  t.throws(() => ms.decode(m, cache, Int32Array.from([-1, 2]), 2), /ids\[0\] = -1/);
  t.same(cache.lengths, [1], 'the cache still holds one position');
  t.throws(() => ms.decode(m, cache, Int32Array.from([1, 2]), 1), /2 ids for 1 sequences of 1 new tokens/);
});

t.test('greedy generation is the same with and without plans', async (t) => {
  const m = model(11);
  const planned = ms.generate(m, [1, 2, 3], { maxTokens: 9, temperature: 0, rate: 0.5 });
  // Within the first window of positions generation is decode token by token.
  const cache = new ms.KVCache(m, { rate: 0.5 });
  let logits = ms.decode(m, cache, Int32Array.from([1, 2, 3]), 3, { plan: false });
  const eager: number[] = [];
  while (eager.length < 9) {
    const row = logits.data.subarray(logits.size - 13);
    let best = 0;
    for (let j = 1; j < 13; j++) if (row[j] > row[best]) best = j;
    eager.push(best);
    if (eager.length < 9) logits = ms.decode(m, cache, Int32Array.from([best]), 1, { plan: false });
  }
  t.same(planned.tokens, eager);
});

t.test('a model\'s next generation reuses the cache and plans of its last, and leaks nothing from it', async (t) => {
  const m = model(12);
  const builds = { count: 0 };
  const build = DecodePlan.build;
  DecodePlan.build = (...args: Parameters<typeof build>) => {
    builds.count++;
    return build(...args);
  };
  t.teardown(() => {
    DecodePlan.build = build;
  });
  // 30 tokens after a prompt of 3 cross the context of 12: the windows restart every 6.
  const first = ms.generate(m, [1, 2, 3], { maxTokens: 30, temperature: 0, rate: 0.5 });
  const built = builds.count;
  t.ok(built >= 1, 'the first generation built its plans');
  const second = ms.generate(m, [1, 2, 3], { maxTokens: 30, temperature: 0, rate: 0.5 });
  t.same(second.tokens, first.tokens, 'the same tokens');
  t.equal(builds.count, built, 'and no plan built again');
  const other = ms.generate(m, [4, 4], { maxTokens: 10, temperature: 0, rate: 0.5 });
  const alone = ms.generate(model(12), [4, 4], { maxTokens: 10, temperature: 0, rate: 0.5 });
  t.same(other.tokens, alone.tokens, 'another prompt on the reused cache gives what a fresh model gives');
  const spec = ms.speculativeGenerate(m, [1, 2, 3], { maxTokens: 30, temperature: 0, draftRate: 0.5 });
  const full = ms.generate(m, [1, 2, 3], { maxTokens: 30, temperature: 0, rate: 1 });
  t.same(spec.tokens, full.tokens, 'speculative decoding on reused caches gives rate 1\'s tokens');
  // A generation inside another's onToken makes its own cache.
  const inner: number[][] = [];
  const outer = ms.generate(m, [1, 2, 3], {
    maxTokens: 5,
    temperature: 0,
    rate: 0.5,
    onToken: () => inner.push(ms.generate(m, [4, 4], { maxTokens: 10, temperature: 0, rate: 0.5 }).tokens),
  });
  t.same(outer.tokens, first.tokens.slice(0, 5), 'the outer generation is undisturbed');
  t.ok(inner.every((x) => x.join() === alone.tokens.join()), 'and each inner one gives its own tokens');
});
