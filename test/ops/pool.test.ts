// maxPool2d, avgPool2d and globalAvgPool2d: values against float64 references
// at random shapes, kernels, strides and paddings (max pads with -inf, average
// counts the padding like PyTorch's count_include_pad=True); gradients by finite
// differences (max pooling on tie-free inputs); tie-breaking to the first
// maximum; bad input; raw addon calls.
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';
import {
  abs64,
  assertAll,
  assertClose,
  assertOpError,
  checkGradients,
  dotTol,
  randInt,
  randn32,
  rng,
  type Asserter,
} from '../helpers/reference.js';
import { convOutSize, quiet, refGlobalAvgPool, refPool2d, thrown, type PoolRefArgs } from '../helpers/conv-reference.js';

interface PoolCase {
  shape: [number, number, number, number];
  args: PoolRefArgs;
  /** Whether to leave stride to its default (the kernel). */
  defaultStride: boolean;
}

function poolLabel(kind: string, c: PoolCase): string {
  return `${kind} x [${c.shape}] k ${c.args.kernel} s ${c.defaultStride ? 'default' : c.args.stride} p ${c.args.padding}`;
}

function randomPoolCase(gen: ms.Generator): PoolCase {
  for (;;) {
    const kernel: [number, number] = [randInt(gen, 1, 4), randInt(gen, 1, 4)];
    if (gen.uniform() < 0.4) kernel[1] = kernel[0];
    const defaultStride = gen.uniform() < 0.3;
    const stride: [number, number] = defaultStride ? [...kernel] : [randInt(gen, 1, 3), randInt(gen, 1, 3)];
    const padding: [number, number] = [randInt(gen, 0, Math.floor(kernel[0] / 2)), randInt(gen, 0, Math.floor(kernel[1] / 2))];
    const shape: [number, number, number, number] = [randInt(gen, 1, 3), randInt(gen, 1, 4), randInt(gen, 1, 9), randInt(gen, 1, 9)];
    if (convOutSize(shape[2], kernel[0], stride[0], padding[0], 1) > 0 && convOutSize(shape[3], kernel[1], stride[1], padding[1], 1) > 0) {
      return { shape, args: { kernel, stride, padding }, defaultStride };
    }
  }
}

function specialPoolCases(): PoolCase[] {
  const c = (shape: [number, number, number, number], k: [number, number], s: [number, number] | null, p: [number, number]): PoolCase => ({
    shape, args: { kernel: k, stride: s ?? [...k], padding: p }, defaultStride: s === null,
  });
  return [
    c([2, 3, 1, 1], [1, 1], null, [0, 0]), // 1x1 image
    c([2, 3, 1, 1], [2, 2], [1, 1], [1, 1]), // 1x1 image, padded
    c([1, 2, 1, 1], [3, 3], [2, 2], [1, 1]),
    c([2, 2, 4, 3], [4, 3], null, [0, 0]), // kernel = input
    c([2, 2, 4, 3], [4, 3], [1, 1], [2, 1]), // kernel = input, padded to half
    c([1, 3, 8, 8], [2, 2], null, [0, 0]), // the usual 2x2/2
    c([1, 3, 7, 7], [3, 3], [2, 2], [1, 1]), // ResNet-style 3x3/2 pad 1, overlapping windows
    c([2, 1, 5, 6], [3, 2], [1, 1], [1, 1]), // overlapping, non-square
    c([1, 2, 9, 5], [4, 2], [3, 1], [2, 0]),
  ];
}

function obj(c: PoolCase): ms.Pool2dOptions {
  const o: ms.Pool2dOptions = { padding: c.args.padding };
  if (!c.defaultStride) o.stride = c.args.stride;
  return o;
}

/** Distinct values with gaps of at least 0.02 (no ties, safe for central differences). */
function distinct(gen: ms.Generator, n: number): Float32Array {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = gen.int(i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return Float32Array.from(idx, (v) => (v - n / 2) * 0.05 + 0.01 * gen.uniform());
}

function size(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

function checkPoolForward(t: Asserter, kind: 'max' | 'avg', c: PoolCase, data: Float32Array): void {
  const x = ms.tensor(data, c.shape);
  const y = kind === 'max' ? ms.maxPool2d(x, c.args.kernel, obj(c)) : ms.avgPool2d(x, c.args.kernel, obj(c));
  const ref = refPool2d(kind, data, c.shape, c.args);
  const name = poolLabel(kind, c);
  t.ok(y.shape.every((d, i) => d === ref.shape[i]) && y.shape.length === 4, `${name}: shape [${y.shape}]`);
  if (kind === 'max') assertClose(t, y.data, ref.data, `${name}: values`, { rtol: 0, atol: 0 });
  else {
    // A float32 sum of k*k terms: the error scales with the mean of |x| over the window.
    const scale = refPool2d('avg', abs64(data), c.shape, c.args).data;
    assertClose(t, y.data, ref.data, `${name}: values`, { ...dotTol(c.args.kernel[0] * c.args.kernel[1]), scale });
  }
}

t.test('forward: random shapes, kernels, strides and paddings', async (t) => {
  const gen = rng(201);
  const q = quiet(t);
  let cases = 0;
  for (let i = 0; i < 150; i++) {
    const c = randomPoolCase(gen);
    const data = randn32(gen, size(c.shape));
    // Negative inputs make -inf padding and zero padding differ.
    if (i % 3 === 0) for (let k = 0; k < data.length; k++) data[k] = -Math.abs(data[k]) - 1;
    checkPoolForward(q.sink, 'max', c, data);
    checkPoolForward(q.sink, 'avg', c, data);
    cases += 2;
  }
  for (const c of specialPoolCases()) {
    const data = randn32(gen, size(c.shape));
    for (let k = 0; k < data.length; k++) data[k] -= 3;
    checkPoolForward(q.sink, 'max', c, data);
    checkPoolForward(q.sink, 'avg', c, data);
    cases += 2;
  }
  t.equal(q.flush(), 0, `${cases} cases match`);
});

t.test('padding: max ignores it (-inf), avg counts it as zeros in a k*k divisor', async (t) => {
  const x = ms.full([1, 1, 2, 2], -2);
  t.same(Array.from(ms.maxPool2d(x, 3, { stride: 1, padding: 1 }).data), [-2, -2, -2, -2], 'max of negative values with padding');
  const ones = ms.ones([1, 1, 2, 2]);
  assertClose(t, ms.avgPool2d(ones, 3, { stride: 1, padding: 1 }).data, [4 / 9, 4 / 9, 4 / 9, 4 / 9], 'avg divides by 9 with padding');
  assertClose(t, ms.avgPool2d(ones, 2, { stride: 1, padding: 1 }).data, [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25], 'avg 2x2 pad 1');
  t.same(ms.avgPool2d(ones, 2, { stride: 1, padding: 1 }).shape, [1, 1, 3, 3]);
  // Default stride = kernel, and a kernel pair.
  const r = ms.tensor(Float32Array.from({ length: 24 }, (_, i) => i), [1, 1, 4, 6]);
  t.same(ms.maxPool2d(r, [2, 3]).toArray(), [[[[8, 11], [20, 23]]]], 'maxPool2d [2, 3] with default stride');
  t.same(ms.avgPool2d(r, 2).toArray(), [[[[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]]]], 'avgPool2d 2 with default stride');
  // The last partial window is dropped (floor), as in PyTorch.
  t.same(ms.maxPool2d(ms.ones([1, 1, 5, 5]), 2).shape, [1, 1, 2, 2], 'floor mode');
});

t.test('gradients by finite differences (max pooling on tie-free inputs)', async (t) => {
  const gen = rng(202);
  const q = quiet(t);
  let cases = 0;
  const all = [...specialPoolCases()];
  for (let i = 0; i < 40; i++) all.push(randomPoolCase(gen));
  for (const c of all) {
    for (const kind of ['max', 'avg'] as const) {
      const x = ms.tensor(distinct(gen, size(c.shape)), c.shape, { requiresGrad: true });
      const name = poolLabel(kind, c);
      checkGradients(
        q.sink, name, [x],
        (xx) => (kind === 'max' ? ms.maxPool2d(xx, c.args.kernel, obj(c)) : ms.avgPool2d(xx, c.args.kernel, obj(c))),
        ([xx]) => refPool2d(kind, xx, c.shape, c.args).data,
        { gen, sample: 48 },
      );
      cases++;
    }
  }
  t.equal(q.flush(), 0, `${cases} cases: gradients match`);
});

t.test('max pooling: ties go to the first maximum; NaN propagates', async (t) => {
  // One 2x2 window of equal values: the whole gradient goes to the first (row-major).
  const x = ms.full([1, 1, 2, 2], 3, { requiresGrad: true });
  ms.maxPool2d(x, 2).backward(ms.tensor([5], [1, 1, 1, 1]));
  t.same(Array.from(x.grad!.data), [5, 0, 0, 0], 'equal window: gradient to the first element');
  // A tie between the second and last elements of a 3x3 window.
  const v = ms.tensor([0, 7, 1, 2, 3, 4, 5, 6, 7], [1, 1, 3, 3], { requiresGrad: true });
  ms.maxPool2d(v, 3).backward(ms.ones([1, 1, 1, 1]));
  t.same(Array.from(v.grad!.data), [0, 1, 0, 0, 0, 0, 0, 0, 0], 'tie: gradient to the earlier maximum');
  // Overlapping windows on a constant plane: each window sends its gradient to its first element.
  const c = ms.zeros([1, 1, 3, 3], { requiresGrad: true });
  ms.maxPool2d(c, 2, { stride: 1 }).backward(ms.tensor([1, 2, 3, 4], [1, 1, 2, 2]));
  t.same(Array.from(c.grad!.data), [1, 2, 0, 3, 4, 0, 0, 0, 0], 'overlapping constant windows');
  // Padding never takes the gradient, even when it ties (-inf never ties a finite value).
  const p = ms.full([1, 1, 1, 1], -1e30, { requiresGrad: true });
  ms.maxPool2d(p, 2, { stride: 1, padding: 1 }).backward(ms.ones([1, 1, 2, 2]));
  t.same(Array.from(p.grad!.data), [4], 'padded windows route everything to the one real value');
  const n = ms.tensor([1, NaN, 3, 2], [1, 1, 2, 2]);
  t.ok(Number.isNaN(ms.maxPool2d(n, 2).item()), 'NaN in a window gives NaN');
});

t.test('max pooling 2x2 / 2 (its own vectorised path): ties, NaN, signed zeros and -inf, threads 1 and 2', async (t) => {
  // The general loop's rule, tap by tap in row-major order: a later tap wins when it is larger,
  // or when it is NaN and the maximum so far is not.
  const takes = (m: number, v: number): boolean => v > m || (Number.isNaN(v) && !Number.isNaN(m));
  const values = [-Infinity, -1, -0, 0, 1, 2, NaN];
  const gen = new ms.Generator(7);
  for (const shape of [[2, 3, 7, 9], [4, 64, 16, 16]] as [number, number, number, number][]) {
    const [n, c, h, w] = shape;
    const data = Float32Array.from({ length: size(shape) }, () => values[gen.int(values.length)]);
    const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
    const want = new Float32Array(n * c * oh * ow);
    const gy = Float32Array.from(want, (_, i) => (i % 13) + 1);
    const wantGrad = new Float32Array(data.length);
    for (let p = 0; p < n * c; p++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let arg = -1;
          for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const k = p * h * w + (2 * i + di) * w + 2 * j + dj;
            if (arg < 0 || takes(data[arg], data[k])) arg = k;
          }
          const o = (p * oh + i) * ow + j;
          want[o] = data[arg];
          wantGrad[arg] += gy[o];
        }
    for (const threads of [1, 2]) {
      const before = ms.getNumThreads();
      ms.setNumThreads(threads);
      try {
        const x = ms.tensor(data, shape, { requiresGrad: true });
        const y = ms.maxPool2d(x, 2);
        y.backward(ms.tensor(gy, y.shape));
        const bad = Array.from(y.data).findIndex((v, i) => !Object.is(v, want[i]));
        t.equal(bad, -1, `[${shape}], ${threads} thread(s): every window's first maximum (NaN, -0 vs 0)${bad < 0 ? '' : `: [${bad}] ${y.data[bad]} vs ${want[bad]}`}`);
        const badG = Array.from(x.grad!.data).findIndex((v, i) => !Object.is(v, wantGrad[i]));
        t.equal(badG, -1, `[${shape}], ${threads} thread(s): the gradient to that tap only`);
      } finally {
        ms.setNumThreads(before);
      }
    }
  }
});

t.test('globalAvgPool2d: values and gradients', async (t) => {
  const gen = rng(203);
  const q = quiet(t);
  let cases = 0;
  for (const shape of [[1, 1, 1, 1], [2, 3, 1, 1], [2, 3, 4, 5], [1, 2, 9, 9], [3, 1, 2, 7], [2, 16, 8, 8]] as [number, number, number, number][]) {
    const x = ms.tensor(randn32(gen, size(shape)), shape, { requiresGrad: true });
    const y = checkGradients(q.sink, `x [${shape}]`, [x], (xx) => ms.globalAvgPool2d(xx), ([xx]) => refGlobalAvgPool(xx, shape), { gen, sample: 48 });
    q.sink.ok(y.shape.length === 2 && y.shape[0] === shape[0] && y.shape[1] === shape[1], `x [${shape}]: shape [${y.shape}]`);
    assertClose(q.sink, y.data, refGlobalAvgPool(x.data, shape), `x [${shape}]: values`, { rtol: 1e-6, atol: 1e-6 });
    cases++;
  }
  // A large plane with an offset: the mean stays accurate.
  const big = new Float32Array(3 * 4096).map((_, i) => 1000 + (i % 7) * 0.001);
  const yb = ms.globalAvgPool2d(ms.tensor(big, [1, 3, 64, 64]));
  assertClose(q.sink, yb.data, refGlobalAvgPool(big, [1, 3, 64, 64]), 'large plane with offset', { rtol: 1e-7, atol: 0 });
  t.equal(q.flush(), 0, `${cases + 1} cases match`);
  // Exactly 1/(H*W) everywhere.
  const x = ms.zeros([1, 2, 2, 2], { requiresGrad: true });
  ms.globalAvgPool2d(x).backward(ms.tensor([4, 8], [1, 2]));
  t.same(Array.from(x.grad!.data), [1, 1, 1, 1, 2, 2, 2, 2]);
});

t.test('large enough for the threaded paths: values, gradients, threads 1 vs 2', async (t) => {
  const gen = rng(204);
  const shape: [number, number, number, number] = [4, 8, 32, 32];
  const c: PoolCase = { shape, args: { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }, defaultStride: false };
  const data = distinct(gen, size(shape));
  checkPoolForward(t, 'max', c, data);
  checkPoolForward(t, 'avg', c, data);
  const before = ms.getNumThreads();
  try {
    for (const kind of ['max', 'avg', 'global'] as const) {
      const results: Float32Array[][] = [];
      for (const threads of [1, 2]) {
        ms.setNumThreads(threads);
        const x = ms.tensor(data, shape, { requiresGrad: true });
        const y = kind === 'max' ? ms.maxPool2d(x, 3, obj(c)) : kind === 'avg' ? ms.avgPool2d(x, 3, obj(c)) : ms.globalAvgPool2d(x);
        y.backward(ms.tensor(randn32(rng(9), y.size), y.shape));
        results.push([y.data, x.grad!.data]);
      }
      t.ok(results[0].every((a, i) => a.length === results[1][i].length && a.every((v, j) => Object.is(v, results[1][i][j]))), `${kind}: identical with 1 and 2 threads`);
    }
    const x = ms.tensor(data, shape, { requiresGrad: true });
    checkGradients(t, 'max [4, 8, 32, 32] 3/2 pad 1', [x], (xx) => ms.maxPool2d(xx, 3, obj(c)), ([xx]) => refPool2d('max', xx, shape, c.args).data, {
      gen,
      sample: 32,
      eps: 1e-6, // |x| reaches 800 here: keep the step well inside the 0.04 gaps between values
    });
    checkGradients(t, 'avg [4, 8, 32, 32] 3/2 pad 1', [x], (xx) => ms.avgPool2d(xx, 3, obj(c)), ([xx]) => refPool2d('avg', xx, shape, c.args).data, { gen, sample: 32 });
  } finally {
    ms.setNumThreads(before);
  }
});

t.test('gradients accumulate into an existing .grad', async (t) => {
  const x = ms.tensor([1, 2, 3, 4], [1, 1, 2, 2], { requiresGrad: true });
  x.grad = ms.full([1, 1, 2, 2], 10);
  ms.maxPool2d(x, 2).backward(ms.ones([1, 1, 1, 1]));
  ms.avgPool2d(x, 2).backward(ms.tensor([4], [1, 1, 1, 1]));
  ms.globalAvgPool2d(x).backward(ms.tensor([8], [1, 1]));
  t.same(Array.from(x.grad.data), [13, 13, 13, 14]);
});

t.test('bad input throws a clear TypeError / RangeError', async (t) => {
  const x = ms.zeros([2, 3, 5, 5]);
  for (const [op, f] of [
    ['maxPool2d', ms.maxPool2d],
    ['avgPool2d', ms.avgPool2d],
  ] as const) {
    const E = (fn: () => unknown, type: typeof TypeError | typeof RangeError, patterns: (string | RegExp)[], msg: string): void =>
      assertOpError(t, fn, type, op, patterns, `${op}: ${msg}`);
    E(() => f(x, 3, { padding: 2 }), RangeError, ['padding', '3x3'], 'padding larger than half the kernel');
    E(() => f(x, [3, 2], { padding: [1, 2] }), RangeError, ['padding'], 'padding larger than half the kernel (w)');
    E(() => f(x, 1, { padding: 1 }), RangeError, ['padding'], 'padding with a 1x1 kernel');
    E(() => f(x, 6), RangeError, ['kernel', '[2, 3, 5, 5]'], 'kernel larger than the input');
    E(() => f(ms.zeros([1, 1, 1, 3]), 4, { padding: 1 }), RangeError, ['kernel', '[1, 1, 1, 3]'], 'kernel larger than the padded input');
    E(() => f(ms.zeros([1, 1, 0, 3]), 1), RangeError, ['kernel', '[1, 1, 0, 3]'], 'empty plane');
    E(() => f(x, 2, { stride: 0 }), RangeError, ['stride'], 'zero stride');
    E(() => f(x, 2, { stride: [2, 0] }), RangeError, ['stride'], 'zero stride in a pair');
    E(() => f(x, 2, { padding: -1 }), RangeError, ['padding'], 'negative padding');
    E(() => f(x, 0), RangeError, ['kernel'], 'zero kernel');
    E(() => f(x, 2.5), RangeError, ['kernel'], 'fractional kernel');
    E(() => f(x, [2, 2, 2] as unknown as number), RangeError, ['kernel'], 'kernel of three entries');
    E(() => f(x, undefined as unknown as number), TypeError, ['kernel'], 'missing kernel');
    E(() => f(ms.zeros([3, 5, 5]), 2), RangeError, ['x', '[3, 5, 5]'], 'x of rank 3');
    E(() => f(ms.zeros([1, 3, 5, 5, 1]), 2), RangeError, ['x', '[1, 3, 5, 5, 1]'], 'x of rank 5');
    E(() => f({} as ms.Tensor, 2), TypeError, ['x'], 'x not a tensor');
    E(() => f(x, 2, 'x' as unknown as ms.Pool2dOptions), TypeError, ['options'], 'options not an object');
  }
  assertOpError(t, () => ms.globalAvgPool2d(ms.zeros([2, 3])), RangeError, 'globalAvgPool2d', ['x', '[2, 3]'], 'globalAvgPool2d: x of rank 2');
  assertOpError(t, () => ms.globalAvgPool2d(ms.zeros([2, 3, 0, 4])), RangeError, 'globalAvgPool2d', ['[2, 3, 0, 4]'], 'globalAvgPool2d: empty plane');
  assertOpError(t, () => ms.globalAvgPool2d(null as unknown as ms.Tensor), TypeError, 'globalAvgPool2d', ['x'], 'globalAvgPool2d: null');
  // Padding of exactly half the kernel is fine.
  t.same(ms.maxPool2d(x, 2, { padding: 1 }).shape, [2, 3, 3, 3]);
  t.same(ms.avgPool2d(x, [4, 2], { padding: [2, 1], stride: 1 }).shape, [2, 3, 6, 6]);
  // An empty batch.
  t.same(ms.maxPool2d(ms.zeros([0, 3, 4, 4]), 2).shape, [0, 3, 2, 2]);
  t.same(ms.globalAvgPool2d(ms.zeros([0, 3, 4, 4])).shape, [0, 3]);
});

t.test('raw addon: inconsistent params and short buffers throw instead of crashing', async (t) => {
  // [planes, H, W, kh, kw, strideH, strideW, padH, padW]
  const good = [6, 5, 5, 2, 2, 2, 2, 0, 0];
  const x = new Float32Array(6 * 25);
  const y = new Float32Array(6 * 4);
  for (const kind of [0, 1] as const) native.poolForward(kind, good, x, y);
  t.pass('consistent calls work');
  const with_ = (i: number, v: number): number[] => good.map((p, j) => (j === i ? v : p));
  const cases: [string, () => unknown][] = [
    ['unknown kind', () => native.poolForward(2 as 0, good, x, y)],
    ['negative kind', () => native.poolForward(-1 as 0, good, x, y)],
    ['params short', () => native.poolForward(0, good.slice(1), x, y)],
    ['zero kernel', () => native.poolForward(0, with_(3, 0), x, y)],
    ['zero stride', () => native.poolForward(1, with_(6, 0), x, y)],
    ['padding over half', () => native.poolForward(0, with_(7, 2), x, y)],
    ['kernel larger than input', () => native.poolForward(0, with_(3, 9), x, y)],
    ['huge planes', () => native.poolForward(0, with_(0, 2 ** 40), x, y)],
    ['huge sizes', () => native.poolForward(0, [2 ** 31, 2 ** 31, 2 ** 31, 2, 2, 2, 2, 0, 0], x, y)],
    ['x short', () => native.poolForward(0, good, x.subarray(1), y)],
    ['y short', () => native.poolForward(1, good, x, y.subarray(1))],
    ['y for stride 1 short', () => native.poolForward(1, with_(5, 1), x, y)],
    ['x a plain array', () => native.poolForward(0, good, [1, 2] as unknown as Float32Array, y)],
    ['backward: gy short', () => native.poolBackward(0, good, x, y.subarray(1), new Float32Array(x.length))],
    ['backward: gx short', () => native.poolBackward(1, good, x, y, new Float32Array(x.length - 1))],
    ['backward: x short', () => native.poolBackward(0, good, x.subarray(3), y, new Float32Array(x.length))],
    ['backward: gx missing', () => (native.poolBackward as unknown as (...a: unknown[]) => void)(0, good, x, y)],
    ['global: size 0', () => native.globalAvgPool(3, 0, new Float32Array(3), new Float32Array(3))],
    ['global: x short', () => native.globalAvgPool(3, 4, new Float32Array(11), new Float32Array(3))],
    ['global: y short', () => native.globalAvgPool(3, 4, new Float32Array(12), new Float32Array(2))],
    ['global: negative planes', () => native.globalAvgPool(-3, 4, new Float32Array(12), new Float32Array(3))],
    ['global: huge', () => native.globalAvgPool(2 ** 40, 2 ** 40, new Float32Array(12), new Float32Array(3))],
    ['global backward: gx short', () => native.globalAvgPoolBackward(3, 4, new Float32Array(3), new Float32Array(11))],
    ['global backward: gy short', () => native.globalAvgPoolBackward(3, 4, new Float32Array(2), new Float32Array(12))],
    ['global backward: size 0', () => native.globalAvgPoolBackward(3, 0, new Float32Array(3), new Float32Array(12))],
  ];
  for (const [name, fn] of cases) {
    const e = thrown(fn);
    t.ok(e instanceof RangeError || e instanceof TypeError, `${name}: throws a RangeError/TypeError (${String(e)})`);
  }
  assertAll(t, y, Array.from({ length: y.length }, (_, i) => i), 0, 'y of the good calls is all zero');
});

t.test('a window far larger than the input costs what the input costs', async (t) => {
  // Kernel 2^20 + 1 with padding 2^19: every window covers the whole 3x3
  // input. Looping over all 2^40 taps per output never finished; the kernels
  // now visit only the taps inside the input.
  const x = ms.tensor([3, -1, 4, 1, -5, 9, 2, 6, -5], [1, 1, 3, 3], { requiresGrad: true });
  const k = 2 ** 20 + 1;
  const y = ms.maxPool2d(x, k, { stride: 1, padding: 2 ** 19 });
  t.same(y.shape, [1, 1, 3, 3]);
  t.same(Array.from(y.data), new Array(9).fill(9), 'every window sees the maximum');
  ms.sum(y).backward();
  t.same(Array.from(x.grad!.data), [0, 0, 0, 0, 0, 9, 0, 0, 0], 'all gradient goes to the maximum');
  const a = ms.avgPool2d(ms.tensor(new Array(9).fill(1), [1, 1, 3, 3]), [k, 1], { stride: 1, padding: [2 ** 19, 0] });
  t.ok(Math.abs(a.data[0] - 3 / k) < 1e-12, 'average over the window, padding counted');
});
