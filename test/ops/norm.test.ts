// groupNorm and batchNorm with the prefix rule (gamma, beta and running buffers
// may be longer than C; the first C entries are used and only they receive
// gradients or updates): values against float64 references, PyTorch's running
// statistics update, gradients by finite differences in both batchNorm modes,
// bad input and raw addon calls.
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';
import {
  assertAll,
  assertClose,
  assertOpError,
  checkGradients,
  randInt,
  randn32,
  rng,
  uniform32,
} from '../helpers/reference.js';
import { quiet, range, refBatchNorm, refChannelMoments, refGroupNorm, thrown } from '../helpers/conv-reference.js';

const VALUE_TOL = { rtol: 1e-5, atol: 2e-5 };

function size(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** A random x shape of rank 2..4 with C channels. */
function randomShape(gen: ms.Generator, c: number, minCount = 1): number[] {
  for (;;) {
    const rank = randInt(gen, 2, 4);
    const shape = [randInt(gen, 1, 3), c];
    for (let d = 2; d < rank; d++) shape.push(randInt(gen, 1, rank === 3 ? 7 : 4));
    if (size(shape) / c >= minCount) return shape;
  }
}

function divisors(n: number): number[] {
  return range(1, n + 1).filter((d) => n % d === 0);
}

/** Optional per-channel vector of length >= c (null at random). */
function channelVector(gen: ms.Generator, c: number, extra: number, requiresGrad: boolean, allowNull: boolean): ms.Tensor | null {
  if (allowNull && gen.uniform() < 0.25) return null;
  return ms.tensor(randn32(gen, c + extra), [c + extra], { requiresGrad });
}

// ------------------------------------------------------------------ groupNorm

interface GnCase {
  shape: number[];
  groups: number;
  gamma: ms.Tensor | null;
  beta: ms.Tensor | null;
  eps: number | undefined;
}

function gnLabel(c: GnCase): string {
  return `x [${c.shape}] groups ${c.groups} gamma ${c.gamma === null ? 'null' : `[${c.gamma.shape}]`} beta ${
    c.beta === null ? 'null' : `[${c.beta.shape}]`
  } eps ${c.eps ?? 'default'}`;
}

function gnCases(gen: ms.Generator, requiresGrad: boolean, random: number): GnCase[] {
  const cases: GnCase[] = [];
  const add = (shape: number[], groups: number, extra: number, nulls: [boolean, boolean] = [false, false], eps?: number): void => {
    const c = shape[1];
    cases.push({
      shape,
      groups,
      gamma: nulls[0] ? null : ms.tensor(randn32(gen, c + extra), [c + extra], { requiresGrad }),
      beta: nulls[1] ? null : ms.tensor(randn32(gen, c + extra), [c + extra], { requiresGrad }),
      eps,
    });
  };
  add([2, 6, 3, 3], 3, 2); // longer gamma/beta
  add([2, 6, 3, 3], 6, 0); // one channel per group
  add([2, 6, 3, 3], 1, 3); // one group
  add([3, 8], 2, 4); // rank 2
  add([3, 8], 8, 0); // rank 2, one channel per group: a single value per group
  add([2, 4, 5], 2, 1); // rank 3
  add([1, 4, 2, 3], 2, 0, [true, true]); // no affine
  add([2, 4, 2, 3], 4, 2, [true, false]);
  add([2, 4, 2, 3], 2, 2, [false, true], 1e-3);
  add([1, 1, 1, 1], 1, 5); // one value
  add([2, 3, 1, 1], 1, 0, [false, false], 0.1);
  add([1, 2, 2, 2, 2], 2, 1); // rank 5
  for (let i = 0; i < random; i++) {
    const c = randInt(gen, 1, 9);
    const groups = divisors(c)[gen.int(divisors(c).length)];
    const extra = randInt(gen, 0, 3);
    const eps = gen.uniform() < 0.3 ? [0.1, 1e-3, 1e-5][gen.int(3)] : undefined;
    cases.push({
      shape: randomShape(gen, c),
      groups,
      gamma: channelVector(gen, c, extra, requiresGrad, true),
      beta: channelVector(gen, c, extra, requiresGrad, true),
      eps,
    });
  }
  return cases;
}

function gnForward(x: ms.Tensor, c: GnCase, g: ms.Tensor | null, b: ms.Tensor | null): ms.Tensor {
  return ms.groupNorm(x, c.groups, g, b, c.eps === undefined ? undefined : { eps: c.eps });
}

t.test('groupNorm forward: random shapes of rank 2-4, group counts, longer or null gamma/beta', async (t) => {
  const gen = rng(301);
  const q = quiet(t);
  const cases = gnCases(gen, false, 120);
  for (const c of cases) {
    const x = ms.tensor(randn32(gen, size(c.shape), 2), c.shape);
    for (let i = 0; i < x.size; i++) x.data[i] += 0.5; // an offset
    const y = gnForward(x, c, c.gamma, c.beta);
    q.sink.ok(y.shape.length === c.shape.length && y.shape.every((d, i) => d === c.shape[i]), `${gnLabel(c)}: shape`);
    const ref = refGroupNorm(x.data, c.shape, c.groups, c.gamma?.data ?? null, c.beta?.data ?? null, c.eps ?? 1e-5);
    assertClose(q.sink, y.data, ref, `${gnLabel(c)}: values`, VALUE_TOL);
  }
  t.equal(q.flush(), 0, `${cases.length} cases match`);
});

t.test('groupNorm: a large offset and a large group stay accurate; eps default is 1e-5', async (t) => {
  const gen = rng(302);
  const shape = [2, 4, 32, 32];
  const x = ms.tensor(randn32(gen, size(shape)).map((v) => 100 + 0.01 * v), shape);
  assertClose(t, ms.groupNorm(x, 2, null, null).data, refGroupNorm(x.data, shape, 2, null, null, 1e-5), 'offset 100, spread 0.01', {
    rtol: 1e-5,
    atol: 1e-5,
  });
  // Groups over several of the reduction's 4096-value blocks (6400 values: one whole block and
  // a part), whose means differ block to block (a ramp under the offset): the blocks' moments
  // merge without losing the spread.
  const long = [2, 4, 64, 50];
  const ramp = ms.tensor(randn32(gen, size(long)).map((v, i) => -300 + 0.02 * v + 0.05 * ((i % 6400) / 6400)), long);
  assertClose(t, ms.groupNorm(ramp, 2, null, null).data, refGroupNorm(ramp.data, long, 2, null, null, 1e-5), 'offset -300, ramp across blocks', {
    rtol: 1e-4,
    atol: 1e-4,
  });
  // One value per group (rank 2, numGroups = C): exactly beta.
  const one = ms.groupNorm(ms.tensor([3, -7, 1e3, 0.25], [2, 2]), 2, ms.tensor([5, 6]), ms.tensor([0.5, -0.75]));
  t.same(Array.from(one.data), [0.5, -0.75, 0.5, -0.75], 'one value per group gives beta exactly');
  // A constant group normalizes to beta exactly (variance 0, eps keeps it finite).
  const c = ms.full([1, 2, 2, 2], 3);
  const y = ms.groupNorm(c, 1, ms.tensor([2, 2, 9]), ms.tensor([0.5, -1, 9]));
  t.same(Array.from(y.data), [0.5, 0.5, 0.5, 0.5, -1, -1, -1, -1], 'constant input gives beta');
  // eps matters at variance 1: default 1e-5.
  const two = ms.tensor([-1, 1], [1, 1, 2]);
  assertClose(t, ms.groupNorm(two, 1, null, null).data, [-1 / Math.sqrt(1 + 1e-5), 1 / Math.sqrt(1 + 1e-5)], 'default eps', { rtol: 1e-7, atol: 0 });
  assertClose(t, ms.groupNorm(two, 1, null, null, { eps: 3 }).data, [-0.5, 0.5], 'eps 3', { rtol: 1e-7, atol: 0 });
});

t.test('groupNorm gradients by finite differences; gamma/beta gradients only in the first C entries', async (t) => {
  const gen = rng(303);
  const q = quiet(t);
  const cases = gnCases(gen, true, 30);
  for (const c of cases) {
    const x = ms.tensor(randn32(gen, size(c.shape)), c.shape, { requiresGrad: true });
    const inputs = [x, ...(c.gamma === null ? [] : [c.gamma]), ...(c.beta === null ? [] : [c.beta])];
    const gi = c.gamma === null ? -1 : 1;
    const bi = c.beta === null ? -1 : c.gamma === null ? 1 : 2;
    checkGradients(
      q.sink, gnLabel(c), inputs,
      (...xs) => gnForward(xs[0], c, gi < 0 ? null : xs[gi], bi < 0 ? null : xs[bi]),
      (xs) => refGroupNorm(xs[0], c.shape, c.groups, gi < 0 ? null : xs[gi], bi < 0 ? null : xs[bi], c.eps ?? 1e-5),
      { gen, sample: 40 },
    );
    const ch = c.shape[1];
    for (const v of [c.gamma, c.beta]) {
      if (v === null) continue;
      assertAll(q.sink, v.grad!.data, range(ch, v.size), 0, `${gnLabel(c)}: gradient beyond C is zero`);
    }
  }
  t.equal(q.flush(), 0, `${cases.length} cases: gradients match`);
  // Existing gradients beyond C are left untouched.
  const x = ms.randn([2, 4, 3], { seed: 1 });
  const g = ms.randn([7], { seed: 2, requiresGrad: true });
  const b = ms.randn([7], { seed: 3, requiresGrad: true });
  g.grad = ms.full([7], 5);
  b.grad = ms.full([7], -5);
  ms.sum(ms.groupNorm(x, 2, g, b)).backward();
  assertAll(t, g.grad.data, range(4, 7), 5, 'gamma gradient beyond C untouched');
  assertAll(t, b.grad.data, range(4, 7), -5, 'beta gradient beyond C untouched');
  assertClose(t, b.grad.data.slice(0, 4), [1, 1, 1, 1], 'beta gradient = -5 + 6 values per channel');
});

// ------------------------------------------------------------------ batchNorm

t.test('batchNorm training: batch statistics and PyTorch running-stat updates on the prefix', async (t) => {
  const gen = rng(304);
  const q = quiet(t);
  let cases = 0;
  for (let i = 0; i < 80; i++) {
    const c = randInt(gen, 1, 8);
    const shape = randomShape(gen, c, 2);
    const extra = randInt(gen, 0, 3);
    const x = ms.tensor(randn32(gen, size(shape), 1.5).map((v) => v + 0.3), shape);
    const rm = ms.tensor(randn32(gen, c + extra), [c + extra]);
    const rv = ms.tensor(uniform32(gen, c + extra, 0.5, 2), [c + extra]);
    const rm0 = rm.data.slice();
    const rv0 = rv.data.slice();
    const g = channelVector(gen, c, randInt(gen, 0, 2), false, true);
    const b = channelVector(gen, c, randInt(gen, 0, 2), false, true);
    const momentum = i % 4 === 0 ? undefined : [0.1, 0.5, 0, 1, 0.01][gen.int(5)];
    const eps = i % 5 === 0 ? 1e-3 : undefined;
    const opts: ms.BatchNormOptions = { training: true };
    if (momentum !== undefined) opts.momentum = momentum;
    if (eps !== undefined) opts.eps = eps;
    const name = `x [${shape}] buffers [${c + extra}] momentum ${momentum ?? 'default'} eps ${eps ?? 'default'}`;
    const y = ms.batchNorm(x, rm, rv, g, b, opts);
    assertClose(q.sink, y.data, refBatchNorm(x.data, shape, null, g?.data ?? null, b?.data ?? null, eps ?? 1e-5), `${name}: values`, VALUE_TOL);
    const { mean, variance } = refChannelMoments(x.data, shape);
    const count = size(shape) / c;
    const m = momentum ?? 0.1;
    const expMean = Array.from(rm0, (v, k) => (k < c ? (1 - m) * v + m * mean[k] : v));
    const expVar = Array.from(rv0, (v, k) => (k < c ? (1 - m) * v + (m * variance[k] * count) / (count - 1) : v));
    assertClose(q.sink, rm.data, expMean, `${name}: running mean`, VALUE_TOL);
    assertClose(q.sink, rv.data, expVar, `${name}: running variance (unbiased)`, VALUE_TOL);
    const exact = { rtol: 0, atol: 0, indices: range(c, c + extra), allowEmpty: extra === 0 };
    assertClose(q.sink, rm.data, rm0, `${name}: running mean beyond C untouched`, exact);
    assertClose(q.sink, rv.data, rv0, `${name}: running variance beyond C untouched`, exact);
    cases++;
  }
  t.equal(q.flush(), 0, `${cases} cases match`);
});

t.test('batchNorm: PyTorch numbers by hand; eval uses and keeps the running statistics; null running stats', async (t) => {
  const x = ms.tensor([1, 2, 3, 4], [4, 1]);
  const rm = ms.tensor([0, 7]);
  const rv = ms.tensor([1, 7]);
  const y = ms.batchNorm(x, rm, rv, null, null, { training: true });
  const s = Math.sqrt(1.25 + 1e-5);
  assertClose(t, y.data, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 'training output', { rtol: 1e-6, atol: 1e-7 });
  assertClose(t, rm.data, [0.25, 7], 'running mean 0.9 * 0 + 0.1 * 2.5', { rtol: 1e-7, atol: 0 });
  assertClose(t, rv.data, [0.9 + 0.1 * (5 / 3), 7], 'running var 0.9 * 1 + 0.1 * 5/3 (unbiased)', { rtol: 1e-7, atol: 0 });
  // A second training step moves them again.
  ms.batchNorm(x, rm, rv, null, null, { training: true, momentum: 0.5 });
  assertClose(t, rm.data, [0.5 * 0.25 + 0.5 * 2.5, 7], 'second step, momentum 0.5', { rtol: 1e-7, atol: 0 });
  // Eval: (x - rm) / sqrt(rv + eps) * gamma + beta, running stats unchanged.
  const rm1 = rm.data.slice();
  const rv1 = rv.data.slice();
  const ye = ms.batchNorm(x, rm, rv, ms.tensor([2, 9]), ms.tensor([-1, 9]), { training: false });
  const se = Math.sqrt(rv1[0] + 1e-5);
  assertClose(t, ye.data, [1, 2, 3, 4].map((v) => ((v - rm1[0]) / se) * 2 - 1), 'eval output', { rtol: 1e-6, atol: 1e-6 });
  t.same(Array.from(rm.data), Array.from(rm1), 'eval leaves the running mean');
  t.same(Array.from(rv.data), Array.from(rv1), 'eval leaves the running variance');
  // Eval with one value per channel is fine (running statistics).
  t.same(ms.batchNorm(ms.tensor([5], [1, 1]), rm, rv, null, null, { training: false }).shape, [1, 1]);
  // Null running stats: batch statistics in both modes, nothing to update.
  const yn = ms.batchNorm(x, null, null, null, null, { training: false });
  assertClose(t, yn.data, y.data, 'eval without running stats uses batch statistics', { rtol: 0, atol: 0 });
  const yt = ms.batchNorm(x, null, null, null, null, { training: true });
  assertClose(t, yt.data, y.data, 'training without running stats', { rtol: 0, atol: 0 });
});

t.test('batchNorm training: an offset of 100 sigma stays accurate', async (t) => {
  const gen = rng(307);
  const shape = [4, 3, 8, 8];
  const x = ms.tensor(randn32(gen, size(shape)).map((v) => 10 + 0.1 * v), shape);
  const y = ms.batchNorm(x, null, null, null, null, { training: true });
  assertClose(t, y.data, refBatchNorm(x.data, shape, null, null, null, 1e-5), 'offset 10, spread 0.1', { rtol: 2e-5, atol: 2e-5 });
});

t.test('batchNorm eval: random shapes and longer buffers against the reference', async (t) => {
  const gen = rng(305);
  const q = quiet(t);
  let cases = 0;
  for (let i = 0; i < 60; i++) {
    const c = randInt(gen, 1, 8);
    const shape = randomShape(gen, c);
    const extra = randInt(gen, 0, 3);
    const x = ms.tensor(randn32(gen, size(shape)), shape);
    const rm = ms.tensor(randn32(gen, c + extra), [c + extra]);
    const rv = ms.tensor(uniform32(gen, c + extra, 0.2, 3), [c + extra]);
    const rm0 = rm.data.slice();
    const rv0 = rv.data.slice();
    const g = channelVector(gen, c, randInt(gen, 0, 2), false, true);
    const b = channelVector(gen, c, randInt(gen, 0, 2), false, true);
    const eps = i % 3 === 0 ? 0.01 : undefined;
    const name = `x [${shape}] buffers [${c + extra}] eps ${eps ?? 'default'}`;
    const y = ms.batchNorm(x, rm, rv, g, b, eps === undefined ? { training: false } : { training: false, eps });
    const ref = refBatchNorm(x.data, shape, { mean: rm.data, variance: rv.data }, g?.data ?? null, b?.data ?? null, eps ?? 1e-5);
    assertClose(q.sink, y.data, ref, `${name}: values`, VALUE_TOL);
    assertClose(q.sink, rm.data, rm0, `${name}: running mean unchanged`, { rtol: 0, atol: 0 });
    assertClose(q.sink, rv.data, rv0, `${name}: running var unchanged`, { rtol: 0, atol: 0 });
    cases++;
  }
  t.equal(q.flush(), 0, `${cases} cases match`);
});

t.test('batchNorm gradients by finite differences in training and eval; prefix rule', async (t) => {
  const gen = rng(306);
  const q = quiet(t);
  let cases = 0;
  for (let i = 0; i < 40; i++) {
    const training = i % 2 === 0;
    const c = randInt(gen, 1, 6);
    const shape = randomShape(gen, c, 2);
    const extra = randInt(gen, 0, 3);
    const x = ms.tensor(randn32(gen, size(shape)), shape, { requiresGrad: true });
    const g = channelVector(gen, c, extra, true, true);
    const b = channelVector(gen, c, extra, true, true);
    const withStats = !training || gen.uniform() < 0.7;
    // Running stats that require grad must still get none (they are constants).
    const rm = withStats ? ms.tensor(randn32(gen, c + 1), [c + 1], { requiresGrad: true }) : null;
    const rv = withStats ? ms.tensor(uniform32(gen, c + 1, 0.3, 2), [c + 1]) : null;
    const stats = training || rm === null ? null : { mean: Float64Array.from(rm.data), variance: Float64Array.from(rv!.data) };
    const eps = i % 3 === 0 ? 1e-3 : 1e-5;
    const inputs = [x, ...(g === null ? [] : [g]), ...(b === null ? [] : [b])];
    const gi = g === null ? -1 : 1;
    const bi = b === null ? -1 : g === null ? 1 : 2;
    const name = `${training ? 'training' : 'eval'} x [${shape}] gamma ${g?.size ?? 'null'} beta ${b?.size ?? 'null'} stats ${withStats}`;
    checkGradients(
      q.sink, name, inputs,
      (...xs) => ms.batchNorm(xs[0], rm, rv, gi < 0 ? null : xs[gi], bi < 0 ? null : xs[bi], { training, eps }),
      (xs) => refBatchNorm(xs[0], shape, stats, gi < 0 ? null : xs[gi], bi < 0 ? null : xs[bi], eps),
      { gen, sample: 40 },
    );
    for (const v of [g, b]) if (v !== null) assertAll(q.sink, v.grad!.data, range(c, v.size), 0, `${name}: gradient beyond C is zero`);
    if (rm !== null) q.sink.ok(rm.grad === null, `${name}: no gradient for the running mean`);
    cases++;
  }
  t.equal(q.flush(), 0, `${cases} cases: gradients match`);
});

t.test('large enough for the threaded paths: groupNorm and batchNorm identical with 1 and 2 threads', async (t) => {
  const gen = rng(308);
  const shape = [4, 16, 32, 32];
  const data = randn32(gen, size(shape));
  const gyData = randn32(gen, size(shape));
  const before = ms.getNumThreads();
  try {
    for (const kind of ['group', 'batch-train', 'batch-eval'] as const) {
      const results: Float32Array[][] = [];
      for (const threads of [1, 2]) {
        ms.setNumThreads(threads);
        const x = ms.tensor(data, shape, { requiresGrad: true });
        const g = ms.tensor(randn32(rng(1), 20), [20], { requiresGrad: true });
        const b = ms.tensor(randn32(rng(2), 20), [20], { requiresGrad: true });
        const rm = ms.tensor(randn32(rng(3), 20), [20]);
        const rv = ms.tensor(uniform32(rng(4), 20, 0.5, 2), [20]);
        const y =
          kind === 'group'
            ? ms.groupNorm(x, 4, g, b)
            : ms.batchNorm(x, rm, rv, g, b, { training: kind === 'batch-train' });
        y.backward(ms.tensor(gyData, shape));
        results.push([y.data, x.grad!.data, g.grad!.data, b.grad!.data, rm.data, rv.data]);
        if (threads === 1) {
          const ref =
            kind === 'group'
              ? refGroupNorm(data, shape, 4, g.data, b.data, 1e-5)
              : refBatchNorm(data, shape, kind === 'batch-train' ? null : { mean: randn32(rng(3), 20), variance: uniform32(rng(4), 20, 0.5, 2) }, g.data, b.data, 1e-5);
          assertClose(t, y.data, ref, `${kind}: [4, 16, 32, 32] values`, VALUE_TOL);
        }
      }
      const same = results[0].every((a, i) => a.every((v, j) => Object.is(v, results[1][i][j])));
      t.ok(same, `${kind}: outputs, gradients and running stats identical with 1 and 2 threads`);
    }
  } finally {
    ms.setNumThreads(before);
  }
});

// ------------------------------------------------------------------ bad input

t.test('groupNorm bad input throws a clear TypeError / RangeError', async (t) => {
  const x = ms.zeros([2, 6, 3, 3]);
  const E = (fn: () => unknown, type: typeof TypeError | typeof RangeError, patterns: (string | RegExp)[], msg: string): void =>
    assertOpError(t, fn, type, 'groupNorm', patterns, msg);
  E(() => ms.groupNorm(x, 3, ms.zeros([5]), null), RangeError, ['gamma', '[5]', '[2, 6, 3, 3]'], 'gamma shorter than C');
  E(() => ms.groupNorm(x, 3, null, ms.zeros([4])), RangeError, ['beta', '[4]', '[2, 6, 3, 3]'], 'beta shorter than C');
  E(() => ms.groupNorm(x, 3, ms.zeros([6, 1]), null), RangeError, ['gamma', '[6, 1]'], 'gamma of rank 2');
  E(() => ms.groupNorm(x, 3, [1, 2] as unknown as ms.Tensor, null), TypeError, ['gamma'], 'gamma not a tensor');
  E(() => ms.groupNorm(x, 4, null, null), RangeError, ['numGroups', '4', '[2, 6, 3, 3]'], 'numGroups not dividing C');
  E(() => ms.groupNorm(x, 12, null, null), RangeError, ['numGroups', '[2, 6, 3, 3]'], 'numGroups larger than C');
  E(() => ms.groupNorm(x, 0, null, null), RangeError, ['numGroups'], 'numGroups zero');
  E(() => ms.groupNorm(x, 1.5, null, null), RangeError, ['numGroups'], 'numGroups fractional');
  E(() => ms.groupNorm(x, undefined as unknown as number, null, null), TypeError, ['numGroups'], 'numGroups missing');
  E(() => ms.groupNorm(ms.zeros([6]), 3, null, null), RangeError, ['x', '[6]'], 'x of rank 1');
  E(() => ms.groupNorm(ms.zeros([]), 1, null, null), RangeError, ['x'], 'x of rank 0');
  E(() => ms.groupNorm('x' as unknown as ms.Tensor, 1, null, null), TypeError, ['x'], 'x not a tensor');
  E(() => ms.groupNorm(x, 3, null, null, { eps: -1 }), RangeError, ['eps'], 'negative eps');
  E(() => ms.groupNorm(x, 3, null, null, { eps: NaN }), RangeError, ['eps'], 'NaN eps');
  E(() => ms.groupNorm(x, 3, null, null, 5 as unknown as ms.GroupNormOptions), TypeError, ['options'], 'options not an object');
});

t.test('batchNorm bad input throws a clear TypeError / RangeError', async (t) => {
  const x = ms.zeros([2, 4, 3, 3]);
  const v4 = (): ms.Tensor => ms.zeros([4]);
  const E = (fn: () => unknown, type: typeof TypeError | typeof RangeError, patterns: (string | RegExp)[], msg: string): void =>
    assertOpError(t, fn, type, 'batchNorm', patterns, msg);
  E(() => ms.batchNorm(x, v4(), v4(), null, null, {} as ms.BatchNormOptions), TypeError, ['training'], 'training omitted');
  E(() => (ms.batchNorm as unknown as (...a: unknown[]) => unknown)(x, v4(), v4(), null, null), TypeError, ['training'], 'options omitted');
  E(() => ms.batchNorm(x, v4(), v4(), null, null, { training: 1 as unknown as boolean }), TypeError, ['training'], 'training not a boolean');
  E(() => ms.batchNorm(ms.zeros([1, 4]), v4(), v4(), null, null, { training: true }), RangeError, ['one value', '[1, 4]'], 'training with one value per channel');
  E(() => ms.batchNorm(ms.zeros([1, 4, 1, 1]), null, null, null, null, { training: true }), RangeError, ['[1, 4, 1, 1]'], 'training, one value, no stats');
  E(() => ms.batchNorm(ms.zeros([1, 4, 1]), null, null, null, null, { training: false }), RangeError, ['[1, 4, 1]'], 'eval without stats, one value');
  E(() => ms.batchNorm(x, ms.zeros([3]), v4(), null, null, { training: true }), RangeError, ['runningMean', '[3]', '[2, 4, 3, 3]'], 'runningMean shorter than C');
  E(() => ms.batchNorm(x, v4(), ms.zeros([3]), null, null, { training: false }), RangeError, ['runningVar', '[3]', '[2, 4, 3, 3]'], 'runningVar shorter than C');
  E(() => ms.batchNorm(x, v4(), v4(), ms.zeros([2]), null, { training: true }), RangeError, ['gamma', '[2]', '[2, 4, 3, 3]'], 'gamma shorter than C');
  E(() => ms.batchNorm(x, v4(), v4(), null, ms.zeros([4, 1]), { training: true }), RangeError, ['beta', '[4, 1]'], 'beta of rank 2');
  E(() => ms.batchNorm(x, v4(), null, null, null, { training: true }), TypeError, ['runningMean', 'runningVar'], 'only one running buffer');
  E(() => ms.batchNorm(x, v4(), v4(), null, null, { training: true, momentum: 1.5 }), RangeError, ['momentum'], 'momentum above 1');
  E(() => ms.batchNorm(x, v4(), v4(), null, null, { training: true, momentum: NaN }), RangeError, ['momentum'], 'NaN momentum');
  E(() => ms.batchNorm(x, v4(), v4(), null, null, { training: true, eps: -1 }), RangeError, ['eps'], 'negative eps');
  E(() => ms.batchNorm(ms.zeros([4]), v4(), v4(), null, null, { training: false }), RangeError, ['x', '[4]'], 'x of rank 1');
  E(() => ms.batchNorm(null as unknown as ms.Tensor, v4(), v4(), null, null, { training: false }), TypeError, ['x'], 'x null');
  // A failed training call leaves the running statistics alone.
  const rm = ms.tensor([1, 2, 3, 4]);
  const rv = ms.tensor([1, 1, 1, 1]);
  thrown(() => ms.batchNorm(x, rm, rv, ms.zeros([2]), null, { training: true }));
  thrown(() => ms.batchNorm(x, rm, rv, null, null, { training: true, momentum: 2 }));
  t.same(Array.from(rm.data), [1, 2, 3, 4], 'running mean untouched by failed calls');
  t.same(Array.from(rv.data), [1, 1, 1, 1], 'running var untouched by failed calls');
});

t.test('groupNormBackward with gxAccumulate false writes gx without reading it', async (t) => {
  const r = (n: number, seed: number) => ms.randn([n], { seed }).data;
  const [x, gy, gamma] = [r(60, 1), r(60, 2), r(6, 3)];
  const [mean, rstd] = [new Float32Array(6), new Float32Array(6)];
  native.groupNormForward(2, 6, 5, 3, x, gamma, null, 1e-5, new Float32Array(60), mean, rstd);
  for (const reluOut of [null, r(60, 4)]) {
    const zeroed = new Float32Array(60);
    native.groupNormBackward(2, 6, 5, 3, x, gy, gamma, mean, rstd, zeroed, null, null, reluOut);
    const written = new Float32Array(60).fill(NaN);
    native.groupNormBackward(2, 6, 5, 3, x, gy, gamma, mean, rstd, written, null, null, reluOut, false);
    t.same(Array.from(written), Array.from(zeroed), `${reluOut ? 'with' : 'without'} the fused ReLU: the sum into zeros`);
  }
});

t.test('raw addon: inconsistent sizes and short buffers throw instead of crashing', async (t) => {
  const f = (n: number): Float32Array => new Float32Array(n);
  // N=2, C=6, S=5, G=3
  native.groupNormForward(2, 6, 5, 3, f(60), f(6), f(6), 1e-5, f(60), f(6), f(6));
  native.groupNormBackward(2, 6, 5, 3, f(60), f(60), f(6), f(6), f(6), f(60), f(6), f(6));
  native.channelMoments(2, 6, 5, f(60), f(6), f(6));
  native.channelAffine(2, 6, 5, f(60), f(6), f(6), f(60));
  native.batchNormBackward(2, 6, 5, f(60), f(60), f(6), f(6), f(6), true, f(60), f(6), f(6));
  t.pass('consistent calls work');
  const cases: [string, () => unknown][] = [
    ['gn: groups not dividing', () => native.groupNormForward(2, 6, 5, 4, f(60), null, null, 1e-5, f(60), f(8), f(8))],
    ['gn: zero groups', () => native.groupNormForward(2, 6, 5, 0, f(60), null, null, 1e-5, f(60), f(6), f(6))],
    ['gn: x short', () => native.groupNormForward(2, 6, 5, 3, f(59), null, null, 1e-5, f(60), f(6), f(6))],
    ['gn: y short', () => native.groupNormForward(2, 6, 5, 3, f(60), null, null, 1e-5, f(59), f(6), f(6))],
    ['gn: gamma short', () => native.groupNormForward(2, 6, 5, 3, f(60), f(5), null, 1e-5, f(60), f(6), f(6))],
    ['gn: beta short', () => native.groupNormForward(2, 6, 5, 3, f(60), null, f(5), 1e-5, f(60), f(6), f(6))],
    ['gn: mean short', () => native.groupNormForward(2, 6, 5, 3, f(60), null, null, 1e-5, f(60), f(5), f(6))],
    ['gn: rstd short', () => native.groupNormForward(2, 6, 5, 3, f(60), null, null, 1e-5, f(60), f(6), f(5))],
    ['gn: eps not a number', () => native.groupNormForward(2, 6, 5, 3, f(60), null, null, 'a' as unknown as number, f(60), f(6), f(6))],
    ['gn: huge dims', () => native.groupNormForward(2 ** 40, 2 ** 40, 2 ** 40, 1, f(60), null, null, 1e-5, f(60), f(6), f(6))],
    ['gn: negative dims', () => native.groupNormForward(-2, 6, 5, 3, f(60), null, null, 1e-5, f(60), f(6), f(6))],
    ['gn back: gx short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(60), null, f(6), f(6), f(59), null, null)],
    ['gn back: gy short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(59), null, f(6), f(6), f(60), null, null)],
    ['gn back: ggamma short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(60), f(6), f(6), f(6), null, f(5), null)],
    ['gn back: gbeta short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(60), null, f(6), f(6), null, null, f(5))],
    ['gn back: mean short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(60), null, f(5), f(6), f(60), null, null)],
    ['gn back: gamma short', () => native.groupNormBackward(2, 6, 5, 3, f(60), f(60), f(2), f(6), f(6), f(60), null, null)],
    ['gn back: groups not dividing', () => native.groupNormBackward(2, 6, 5, 5, f(60), f(60), null, f(10), f(10), f(60), null, null)],
    ['moments: no values', () => native.channelMoments(0, 6, 5, f(0), f(6), f(6))],
    ['moments: x short', () => native.channelMoments(2, 6, 5, f(59), f(6), f(6))],
    ['moments: var short', () => native.channelMoments(2, 6, 5, f(60), f(6), f(5))],
    ['affine: scale short', () => native.channelAffine(2, 6, 5, f(60), f(5), f(6), f(60))],
    ['affine: shift short', () => native.channelAffine(2, 6, 5, f(60), f(6), f(5), f(60))],
    ['affine: y short', () => native.channelAffine(2, 6, 5, f(60), f(6), f(6), f(59))],
    ['bn back: gx short', () => native.batchNormBackward(2, 6, 5, f(60), f(60), f(6), f(6), null, true, f(59), null, null)],
    ['bn back: rstd short', () => native.batchNormBackward(2, 6, 5, f(60), f(60), f(6), f(5), null, true, f(60), null, null)],
    ['bn back: ggamma short', () => native.batchNormBackward(2, 6, 5, f(60), f(60), f(6), f(6), null, false, null, f(5), null)],
    ['bn back: training not boolean', () => native.batchNormBackward(2, 6, 5, f(60), f(60), f(6), f(6), null, 1 as unknown as boolean, f(60), null, null)],
    ['bn back: x a plain array', () => native.batchNormBackward(2, 6, 5, [] as unknown as Float32Array, f(60), f(6), f(6), null, true, f(60), null, null)],
    ['bn back: arguments missing', () => (native.batchNormBackward as unknown as (...a: unknown[]) => void)(2, 6, 5)],
  ];
  for (const [name, fn] of cases) {
    const e = thrown(fn);
    t.ok(e instanceof RangeError || e instanceof TypeError, `${name}: throws a RangeError/TypeError (${String(e)})`);
  }
});
