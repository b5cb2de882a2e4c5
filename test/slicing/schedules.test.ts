import t from 'tap';
import * as ms from '../../src/index.js';

const RATES = [1, 0.75, 0.5, 0.25];

function isSortedWidestFirst(rates: number[]): boolean {
  for (let i = 1; i < rates.length; i++) if (!(rates[i - 1] > rates[i])) return false;
  return true;
}

t.test("'random' draws k distinct rates of the set, widest first", async (t) => {
  for (const k of [1, 2, 3, 4]) {
    const s = ms.rateSchedule('random', RATES, { k, seed: 7 });
    t.equal(s.name, 'random');
    t.same(s.rates, RATES);
    for (let i = 0; i < 200; i++) {
      const r = s.next();
      if (r.length !== k || new Set(r).size !== k || !isSortedWidestFirst(r) || r.some((x) => !RATES.includes(x))) {
        t.fail(`k=${k}: bad draw ${JSON.stringify(r)}`);
        break;
      }
    }
    t.pass(`k=${k}: 200 draws of ${k} distinct rates, sorted`);
  }
  // Every rate shows up when drawing one at a time.
  const s = ms.rateSchedule('random', RATES, { seed: 3 });
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(s.next()[0]);
  t.same([...seen].sort((a, b) => b - a), RATES, 'all rates drawn');
});

t.test("'random' honours its probabilities (given in the caller's rate order)", async (t) => {
  // Caller's order is not sorted: the weights follow the rates they were given with.
  const rates = [0.25, 1, 0.5, 0.75];
  const probabilities = [0.1, 0.6, 0.3, 0];
  const s = ms.rateSchedule('random', rates, { probabilities, seed: 11 });
  const counts = new Map<number, number>(rates.map((r) => [r, 0]));
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const [r] = s.next();
    counts.set(r, counts.get(r)! + 1);
  }
  t.equal(counts.get(0.75), 0, 'a zero-weight rate never appears');
  rates.forEach((r, i) => {
    const expected = probabilities[i] * n;
    const sd = Math.sqrt(n * probabilities[i] * (1 - probabilities[i]));
    t.ok(Math.abs(counts.get(r)! - expected) <= 5 * sd + 1, `rate ${r}: ${counts.get(r)} draws, expected about ${expected}`);
  });

  // With k = 2 a zero-weight rate still never appears and both draws are distinct.
  const s2 = ms.rateSchedule('random', RATES, { k: 2, probabilities: [1, 0, 1, 1], seed: 5 });
  let bad = 0;
  for (let i = 0; i < 500; i++) {
    const r = s2.next();
    if (r.includes(0.75) || r.length !== 2 || r[0] === r[1]) bad++;
  }
  t.equal(bad, 0, 'k=2 draws avoid the zero-weight rate');

  // With only two non-zero weights and k = 3, only those two can be drawn.
  const s3 = ms.rateSchedule('random', RATES, { k: 3, probabilities: [0, 1, 0, 1], seed: 5 });
  for (let i = 0; i < 20; i++) t.same(s3.next(), [0.75, 0.25]);
});

t.test("'random_min_max' always has the widest and the narrowest plus k distinct middle rates", async (t) => {
  for (const k of [0, 1, 2]) {
    const s = ms.rateSchedule('random_min_max', [0.25, 0.5, 1, 0.75], { k, seed: 9 });
    const middle = new Set<number>();
    let bad = 0;
    for (let i = 0; i < 300; i++) {
      const r = s.next();
      const inner = r.slice(1, -1);
      if (r[0] !== 1 || r[r.length - 1] !== 0.25 || inner.length !== k || !isSortedWidestFirst(r) || inner.some((x) => x !== 0.75 && x !== 0.5)) bad++;
      inner.forEach((x) => middle.add(x));
    }
    t.equal(bad, 0, `k=${k}: every draw is [1, ${k} of {0.75, 0.5}, 0.25], sorted`);
    if (k > 0) t.same([...middle].sort(), [0.5, 0.75], `k=${k}: both middle rates are drawn`);
  }
  // k larger than the middle: all rates.
  t.same(ms.rateSchedule('random_min_max', RATES, { k: 5, seed: 1 }).next(), RATES);
  t.same(ms.rateSchedule('random_min_max', [0.5, 1], { seed: 1 }).next(), [1, 0.5]);
  t.same(ms.rateSchedule('random_min_max', [0.5], { seed: 1 }).next(), [0.5]);
});

t.test("'round_robin' yields every rate every batch", async (t) => {
  const s = ms.rateSchedule('round_robin', [0.5, 0.25, 1, 0.75], { seed: 1 });
  for (let i = 0; i < 5; i++) t.same(s.next(), RATES);
  const a = s.next();
  a.pop();
  t.same(s.next(), RATES, 'callers cannot corrupt the schedule by mutating a batch');
});

t.test("'uniform' yields widest, narrowest and k continuous rates in between", async (t) => {
  for (const k of [0, 1, 3]) {
    const s = ms.rateSchedule('uniform', [0.2, 0.9], { k, seed: 4 });
    const inner: number[] = [];
    let bad = 0;
    for (let i = 0; i < 300; i++) {
      const r = s.next();
      if (r.length !== k + 2 || r[0] !== 0.9 || r[r.length - 1] !== 0.2 || !isSortedWidestFirst([...new Set(r)]) || r.some((x, j) => j > 0 && x > r[j - 1])) bad++;
      inner.push(...r.slice(1, -1));
    }
    t.equal(bad, 0, `k=${k}: [0.9, ${k} values, 0.2], widest first`);
    t.ok(inner.every((x) => x >= 0.2 && x <= 0.9), 'values in [narrowest, widest]');
    if (k > 0) {
      const distinct = new Set(inner).size;
      t.ok(distinct > inner.length * 0.95, `continuous: ${distinct} distinct of ${inner.length}`);
      const mean = inner.reduce((a, b) => a + b, 0) / inner.length;
      t.ok(Math.abs(mean - 0.55) < 0.05, `roughly uniform: mean ${mean.toFixed(3)}`);
      t.ok(inner.some((x) => x < 0.3) && inner.some((x) => x > 0.8), 'covers the range');
    }
  }
  t.same(ms.rateSchedule('uniform', [0.5], { seed: 1 }).next(), [0.5], 'a single rate');
});

t.test('same seed, same sequence; different seeds differ', async (t) => {
  for (const name of ['random', 'random_min_max', 'uniform'] as const) {
    const a = ms.rateSchedule(name, RATES, { k: 1, seed: 42 });
    const b = ms.rateSchedule(name, RATES, { k: 1, seed: 42 });
    const c = ms.rateSchedule(name, RATES, { k: 1, seed: 43 });
    const sa = Array.from({ length: 50 }, () => a.next());
    const sb = Array.from({ length: 50 }, () => b.next());
    const sc = Array.from({ length: 50 }, () => c.next());
    t.same(sa, sb, `${name}: same seed`);
    t.notSame(sa, sc, `${name}: another seed`);
  }
  // A shared generator is used as given.
  const g1 = new ms.Generator(5);
  const g2 = new ms.Generator(5);
  const a = ms.rateSchedule('random', RATES, { generator: g1 });
  const b = ms.rateSchedule('random', RATES, { generator: g2 });
  t.same(Array.from({ length: 20 }, () => a.next()), Array.from({ length: 20 }, () => b.next()));
});

t.test('stateDict / loadStateDict resume the sequence exactly', async (t) => {
  for (const name of ['random', 'random_min_max', 'round_robin', 'uniform'] as const) {
    const a = ms.rateSchedule(name, RATES, { k: 2, seed: 8 });
    for (let i = 0; i < 13; i++) a.next();
    const state = JSON.parse(JSON.stringify(a.stateDict())) as ReturnType<typeof a.stateDict>;
    const rest = Array.from({ length: 30 }, () => a.next());
    const b = ms.rateSchedule(name, RATES, { k: 2, seed: 999 });
    b.next();
    b.loadStateDict(state);
    t.same(Array.from({ length: 30 }, () => b.next()), rest, `${name} resumes`);
  }
  // The state is a snapshot, not a live view.
  const s = ms.rateSchedule('random', RATES, { seed: 1 });
  const st = s.stateDict();
  const copy = JSON.stringify(st);
  s.next();
  t.equal(JSON.stringify(st), copy, 'stateDict is a copy');
});

t.test('bad arguments are refused with errors beginning "rateSchedule:"', async (t) => {
  const bad = /^rateSchedule: /;
  for (const r of [0, -0.5, NaN, 1.5, Infinity]) {
    t.throws(() => ms.rateSchedule('random', [1, r]), { name: 'RangeError', message: bad }, `rate ${r}`);
  }
  t.throws(() => ms.rateSchedule('random', [1, '0.5' as never]), { message: bad }, 'a string rate');
  t.throws(() => ms.rateSchedule('random', []), { message: bad }, 'empty rates');
  t.throws(() => ms.rateSchedule('random', null as never), { message: bad }, 'null rates');
  t.throws(() => ms.rateSchedule('random', 0.5 as never), { message: bad }, 'not an array');
  t.throws(() => ms.rateSchedule('nope' as never, RATES), { message: /^rateSchedule: unknown schedule nope/ }, 'unknown name');
  for (const k of [-1, 1.5, NaN, Infinity, '2' as never]) {
    t.throws(() => ms.rateSchedule('random_min_max', RATES, { k }), { message: /^rateSchedule: k must be/ }, `k ${String(k)}`);
  }
  for (const probabilities of [[1, 1], [1, 1, 1, -1], [0, 0, 0, 0], [1, NaN, 1, 1], [1, Infinity, 1, 1]]) {
    t.throws(() => ms.rateSchedule('random', RATES, { probabilities }), { message: /^rateSchedule: probabilities/ }, JSON.stringify(probabilities));
  }
});
