// Property tests (fast-check, fixed seed) over the arguments of the public ops.
// Valid arguments, widths at every boundary (1, full) and zero-size dimensions
// must match the float64 references of test/helpers; invalid ones (width 0 or
// full + 1, NaN, infinities, negative, fractional, 2^31, 2^53, wrong types)
// must throw a TypeError or RangeError whose message begins with the op's name
// and names the argument, and the process must survive all of it.
import fc from 'fast-check';
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  abs64,
  dotTol,
  randn32,
  refLinear,
  refLogSoftmax,
  refMatmul,
  refSoftmax,
  rng,
  size,
  type Asserter,
  type CloseOptions,
} from '../helpers/reference.js';
import { convOutSize, refBatchNorm, refChannelMoments, refConv2d, refGlobalAvgPool, refGroupNorm, refPool2d } from '../helpers/conv-reference.js';

const SEED = 20260610;
const LIMIT = 2 ** 31 - 1;

/** Runs a property with the fixed seed and reports fast-check's counterexample on failure. */
function check<T>(t: Asserter, name: string, property: fc.IProperty<T>, numRuns: number): void {
  refused = 0;
  const details = fc.check(property, { seed: SEED, numRuns });
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  const summary = `${name} (${numRuns} cases: ${numRuns - refused} computed, ${refused} refused)`;
  t.ok(!details.failed, details.failed ? `${name}: ${cause}\n${fc.defaultReportMessage(details)}` : summary);
}

// ------------------------------------------------------------------ helpers

/** Integers that are not valid sizes, widths or counts anywhere (TypeError when not a number). */
const HOSTILE: unknown[] = [NaN, Infinity, -Infinity, -1, -(2 ** 53), 1.5, 0.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e300, '2', null, true, {}, 2n];
/** Numbers at and around the boundaries of an integer argument, valid or not. */
const EDGES: unknown[] = [0, -0, 1, 2, LIMIT, ...HOSTILE];

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** Cases of the running property that ended in an expected error. */
let refused = 0;

/** Throws unless fn throws a TypeError or RangeError starting with `op:` and matching every pattern. */
function expectOpError(fn: () => unknown, op: string, patterns: (string | RegExp)[], what: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`${what}: did not throw`);
  if (!(err instanceof TypeError || err instanceof RangeError)) throw new Error(`${what}: threw ${String(err)} instead of a TypeError or RangeError`);
  const text = err.message;
  if (!text.startsWith(`${op}:`)) throw new Error(`${what}: message does not start with "${op}:": ${text}`);
  for (const p of patterns) {
    if (!(typeof p === 'string' ? text.includes(p) : p.test(text))) throw new Error(`${what}: message lacks ${String(p)}: ${text}`);
  }
  refused++;
}

/** Throws with the worst element unless |a - e| <= atol + rtol |e| + scaleTol * scale everywhere. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol: CloseOptions & { scale?: ArrayLike<number> } = {}): void {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} values, expected ${expected.length}`);
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-6;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) throw new Error(`${what}: [${i}] is ${a}, expected ${e}`);
      continue;
    }
    const bound = atol + rtol * Math.abs(e) + (tol.scale ? (tol.scaleTol ?? 0) * Math.abs(tol.scale[i]) : 0);
    if (!(Math.abs(a - e) <= bound)) throw new Error(`${what}: [${i}] is ${a}, expected ${e} (tolerance ${bound})`);
  }
}

function expectShape(got: readonly number[], want: readonly number[], what: string): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) throw new Error(`${what}: shape [${got}], expected [${want}]`);
}

/** A tensor of seeded standard-normal values. */
function randT(seed: number, shape: number[], requiresGrad = false): ms.Tensor {
  return ms.tensor(randn32(rng(seed), size(shape)), shape, { requiresGrad });
}

const seedArb = fc.integer({ min: 1, max: 2 ** 30 });

// ------------------------------------------------------------------- linear

t.test('linear: widths 0, 1, random, full and full + 1; hostile outWidth; zero-size batches', async (t) => {
  const arb = fc.record({
    lead: fc.constantFrom<number[]>([], [2], [0], [1, 3]),
    rows: fc.integer({ min: 0, max: 4 }),
    inFull: fc.integer({ min: 1, max: 7 }),
    outFull: fc.integer({ min: 0, max: 7 }),
    /** x's feature count relative to inFull: 0, 1, a prefix, full or full + 1. */
    inPick: fc.constantFrom('zero', 'one', 'mid', 'mid', 'full', 'full', 'over'),
    outWidth: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 2 },
      { arbitrary: fc.constantFrom('one', 'mid', 'full', 'over', 'zero'), weight: 3 },
      { arbitrary: fc.constantFrom(...HOSTILE), weight: 1 },
    ),
    bias: fc.boolean(),
    seed: seedArb,
  });
  check(t, 'linear', fc.property(arb, (c) => {
    const pick = (p: unknown, full: number, mid: number): number | unknown =>
      p === 'zero' ? 0 : p === 'one' ? 1 : p === 'mid' ? mid : p === 'full' ? full : p === 'over' ? full + 1 : p;
    const inWidth = pick(c.inPick, c.inFull, 1 + (c.seed % c.inFull)) as number;
    const outWidth = pick(c.outWidth, c.outFull, 1 + (c.seed % Math.max(c.outFull, 1)));
    const xShape = [...c.lead, c.rows, inWidth];
    const x = randT(c.seed, xShape, true);
    const w = randT(c.seed + 1, [c.outFull, c.inFull], true);
    const b = c.bias ? randT(c.seed + 2, [c.outFull], true) : null;
    const call = () => ms.linear(x, w, b, outWidth === undefined ? undefined : { outWidth: outWidth as number });
    const what = `x [${xShape}] w [${c.outFull}, ${c.inFull}] outWidth ${String(outWidth)}`;
    if (inWidth < 1 || inWidth > c.inFull) return expectOpError(call, 'linear', ['x', `weight [${c.outFull}, ${c.inFull}]`], what);
    if (outWidth !== undefined && !isInt(outWidth, 1, c.outFull)) return expectOpError(call, 'linear', ['outWidth'], what);
    const ow = (outWidth ?? c.outFull) as number;
    const y = call();
    expectShape(y.shape, [...c.lead, c.rows, ow], what);
    const expected = refLinear(x.data, inWidth, w.data, c.inFull, b?.data ?? null, ow);
    const scale = refLinear(abs64(x.data), inWidth, abs64(w.data), c.inFull, b ? abs64(b.data) : null, ow);
    expectClose(y.data, expected, `${what}: forward`, { ...dotTol(inWidth), scale });
    // Backward: dx = g W[:ow, :inWidth]; the weight gradient lands in the prefix only.
    const rows = x.size / inWidth;
    const g = randn32(rng(c.seed + 3), y.size);
    y.backward(ms.tensor(g, y.shape));
    const gx = new Float64Array(x.size);
    const gw = new Float64Array(w.size);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < ow; o++) {
        for (let i = 0; i < inWidth; i++) {
          gx[r * inWidth + i] += g[r * ow + o] * w.data[o * c.inFull + i];
          gw[o * c.inFull + i] += g[r * ow + o] * x.data[r * inWidth + i];
        }
      }
    }
    const tol = { rtol: 1e-4, atol: 1e-4 * (1 + Math.max(ow, rows)) };
    expectClose(x.grad?.data ?? new Float32Array(x.size), gx, `${what}: dx`, tol);
    expectClose(w.grad?.data ?? new Float32Array(w.size), gw, `${what}: dW (zero outside the prefix)`, tol);
  }), 250);
  // Structural misuse, once each.
  const x = ms.ones([2, 3]);
  const w = ms.ones([4, 3]);
  const misuse: [string, () => unknown, string[]][] = [
    ['x a number', () => ms.linear(5 as unknown as ms.Tensor, w, null), ['x']],
    ['weight null', () => ms.linear(x, null as unknown as ms.Tensor, null), ['weight']],
    ['x 1-D', () => ms.linear(ms.ones([3]), w, null), ['x']],
    ['weight 3-D', () => ms.linear(x, ms.ones([4, 3, 1]), null), ['weight']],
    ['bias too long', () => ms.linear(x, w, ms.ones([5])), ['bias']],
    ['bias 2-D', () => ms.linear(x, w, ms.ones([4, 1])), ['bias']],
    ['bias an array', () => ms.linear(x, w, [1, 2, 3, 4] as unknown as ms.Tensor), ['bias']],
    ['options a number', () => ms.linear(x, w, null, 3 as unknown as ms.LinearOptions), ['options']],
  ];
  for (const [name, fn, pats] of misuse) {
    t.doesNotThrow(() => expectOpError(fn, 'linear', pats, name), name);
  }
});

// ------------------------------------------------------------------- matmul

t.test('matmul: zero-size M, K, N and batch; mismatched shapes', async (t) => {
  const arb = fc.record({
    batched: fc.boolean(),
    B: fc.integer({ min: 0, max: 3 }),
    M: fc.integer({ min: 0, max: 6 }),
    K: fc.integer({ min: 0, max: 6 }),
    N: fc.integer({ min: 0, max: 6 }),
    fault: fc.constantFrom('none', 'none', 'none', 'inner', 'batch', 'rank'),
    seed: seedArb,
  });
  check(t, 'matmul', fc.property(arb, (c) => {
    const B = c.batched ? c.B : 1;
    const lead = c.batched ? [c.B] : [];
    const K2 = c.fault === 'inner' ? c.K + 1 : c.K;
    const bLead = c.batched && c.fault === 'batch' ? [c.B + 1] : lead;
    const aShape = c.fault === 'rank' ? [...lead, c.M, c.K, 1] : [...lead, c.M, c.K];
    const a = randT(c.seed, aShape, true);
    const b = randT(c.seed + 1, [...bLead, K2, c.N], true);
    const what = `[${a.shape}] x [${b.shape}]`;
    if (c.fault === 'inner') return expectOpError(() => ms.matmul(a, b), 'matmul', ['inner', `[${a.shape.join(', ')}]`], what);
    if (c.fault === 'rank') return expectOpError(() => ms.matmul(a, b), 'matmul', ['[M, K] x [K, N]'], what);
    if (c.fault === 'batch' && c.batched) return expectOpError(() => ms.matmul(a, b), 'matmul', ['batch'], what);
    const y = ms.matmul(a, b);
    expectShape(y.shape, [...lead, c.M, c.N], what);
    const expected = refMatmul(a.data, b.data, B, c.M, c.K, c.N);
    const scale = refMatmul(abs64(a.data), abs64(b.data), B, c.M, c.K, c.N);
    expectClose(y.data, expected, what, { ...dotTol(c.K), scale });
    y.backward(ms.ones(y.shape));
    if (a.grad === null || b.grad === null) throw new Error(`${what}: no gradients`);
    // d sum(AB) / dA[i, k] = sum_j B[k, j]; / dB[k, j] = sum_i A[i, k].
    const ga = new Float64Array(a.size);
    const gb = new Float64Array(b.size);
    for (let q = 0; q < B; q++) {
      for (let i = 0; i < c.M; i++) for (let k = 0; k < c.K; k++) for (let j = 0; j < c.N; j++) ga[(q * c.M + i) * c.K + k] += b.data[(q * c.K + k) * c.N + j];
      for (let k = 0; k < c.K; k++) for (let j = 0; j < c.N; j++) for (let i = 0; i < c.M; i++) gb[(q * c.K + k) * c.N + j] += a.data[(q * c.M + i) * c.K + k];
    }
    expectClose(a.grad.data, ga, `${what}: dA`, { rtol: 1e-4, atol: 1e-4 * (1 + c.N) });
    expectClose(b.grad.data, gb, `${what}: dB`, { rtol: 1e-4, atol: 1e-4 * (1 + c.M) });
  }), 200);
});

// ------------------------------------------------------------------- conv2d

t.test('conv2d: channel prefixes, groups, strides, paddings, dilations, hostile options', async (t) => {
  const pairArb = (lo: number, hi: number) =>
    fc.oneof(
      { arbitrary: fc.integer({ min: lo, max: hi }), weight: 5 },
      { arbitrary: fc.tuple(fc.integer({ min: lo, max: hi }), fc.integer({ min: lo, max: hi })), weight: 5 },
      { arbitrary: fc.constantFrom<unknown>(...EDGES, [1, 1, 1], [], [1, NaN], ['1', 1]), weight: 1 },
    );
  // Each option is hostile about one time in ten, so most cases reach the kernels.
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: a, weight: 7 });
  const arb = fc.record({
    n: fc.integer({ min: 0, max: 2 }),
    groups: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 3 }), weight: 12 }, { arbitrary: fc.constantFrom<unknown>(...EDGES), weight: 1 }),
    cg: fc.integer({ min: 1, max: 3 }),
    ipgExtra: fc.integer({ min: 0, max: 2 }),
    og: fc.integer({ min: 1, max: 3 }),
    outExtra: fc.integer({ min: 0, max: 3 }),
    /** outWidth: the default, a boundary, or something hostile. */
    outPick: fc.oneof(
      { arbitrary: fc.constantFrom<unknown>('default', 'exact', 'full', 'default', 'exact', 'full', 'exact', 'default', 'over', 0), weight: 10 },
      { arbitrary: fc.constantFrom<unknown>(...HOSTILE), weight: 1 },
    ),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    h: fc.oneof({ arbitrary: fc.integer({ min: 3, max: 7 }), weight: 6 }, { arbitrary: fc.integer({ min: 0, max: 2 }), weight: 1 }),
    w: fc.oneof({ arbitrary: fc.integer({ min: 3, max: 7 }), weight: 6 }, { arbitrary: fc.integer({ min: 0, max: 2 }), weight: 1 }),
    stride: maybe(pairArb(1, 3)),
    padding: maybe(pairArb(0, 2)),
    dilation: maybe(pairArb(1, 2)),
    bias: fc.boolean(),
    seed: seedArb,
  });
  check(t, 'conv2d', fc.property(arb, (c) => {
    const groups = isInt(c.groups, 1, 3) ? c.groups : 1;
    const inWidth = groups * c.cg;
    const ipgFull = c.cg + c.ipgExtra;
    const exact = groups * c.og;
    const outFull = exact + groups * c.outExtra; // divisible by the group count, so the default width is valid
    const outWidth = c.outPick === 'default' ? undefined : c.outPick === 'exact' ? exact : c.outPick === 'full' ? outFull : c.outPick === 'over' ? outFull + 1 : c.outPick;
    const x = randT(c.seed, [c.n, inWidth, c.h, c.w]);
    const w = randT(c.seed + 1, [outFull, ipgFull, c.kh, c.kw], true);
    const b = c.bias ? randT(c.seed + 2, [outFull]) : null;
    const options: Record<string, unknown> = { groups: c.groups };
    if (outWidth !== undefined) options.outWidth = outWidth;
    if (c.stride !== undefined) options.stride = c.stride;
    if (c.padding !== undefined) options.padding = c.padding;
    if (c.dilation !== undefined) options.dilation = c.dilation;
    const call = () => ms.conv2d(x, w, b, options as ms.Conv2dOptions);
    const what = `x [${x.shape}] w [${w.shape}] ${JSON.stringify(options, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
    // The oracle: the first bad argument in the order conv2d checks them.
    const pair = (v: unknown, lo: number, fallback: number): [number, number] | null => {
      if (v === undefined) return [fallback, fallback];
      const p = Array.isArray(v) ? v : [v, v];
      return p.length === 2 && p.every((e) => isInt(e, lo, LIMIT)) ? [p[0], p[1]] : null;
    };
    const stride = pair(c.stride, 1, 1);
    if (stride === null) return expectOpError(call, 'conv2d', ['stride'], what);
    const padding = pair(c.padding, 0, 0);
    if (padding === null) return expectOpError(call, 'conv2d', ['padding'], what);
    const dilation = pair(c.dilation, 1, 1);
    if (dilation === null) return expectOpError(call, 'conv2d', ['dilation'], what);
    if (!isInt(c.groups, 1, LIMIT)) return expectOpError(call, 'conv2d', ['groups'], what);
    if (outWidth !== undefined && !isInt(outWidth, 1, outFull)) return expectOpError(call, 'conv2d', ['outWidth'], what);
    const ow = (outWidth ?? outFull) as number;
    if (inWidth % c.groups !== 0 || ow % c.groups !== 0) return expectOpError(call, 'conv2d', ['groups'], what);
    const oh = convOutSize(c.h, c.kh, stride[0], padding[0], dilation[0]);
    const owid = convOutSize(c.w, c.kw, stride[1], padding[1], dilation[1]);
    if (oh < 0 || owid < 0) return expectOpError(call, 'conv2d', ['kernel', 'padded input'], what);
    if (Math.max(ow, 1) * oh * owid > LIMIT || c.n * ow * oh * owid > LIMIT) return expectOpError(call, 'conv2d', ['output', 'padding'], what);
    const y = call();
    const args = { xShape: x.shape, wShape: w.shape, stride, padding, dilation, groups: c.groups, outWidth: ow };
    const ref = refConv2d(x.data, w.data, b?.data ?? null, args);
    const scale = refConv2d(abs64(x.data), abs64(w.data), b ? abs64(b.data) : null, args).data;
    expectShape(y.shape, ref.shape, what);
    expectClose(y.data, ref.data, what, { ...dotTol((inWidth / c.groups) * c.kh * c.kw), scale });
    // The weight gradient lands in the prefix [:ow, :cg] only.
    y.backward(ms.ones(y.shape));
    const gw = w.grad?.data ?? new Float32Array(w.size);
    const taps = c.kh * c.kw;
    for (let o = 0; o < outFull; o++) {
      for (let ci = 0; ci < ipgFull; ci++) {
        if (o < ow && ci < c.cg) continue;
        for (let k = 0; k < taps; k++) {
          if (gw[(o * ipgFull + ci) * taps + k] !== 0) throw new Error(`${what}: weight gradient outside the prefix at o ${o} c ${ci}`);
        }
      }
    }
  }), 300);
});

// -------------------------------------------------------------------- pools

t.test('maxPool2d / avgPool2d: kernels, strides and paddings at their limits; zero-size planes', async (t) => {
  const pairArb = (lo: number, hi: number) =>
    fc.oneof(
      { arbitrary: fc.integer({ min: lo, max: hi }), weight: 3 },
      { arbitrary: fc.tuple(fc.integer({ min: lo, max: hi }), fc.integer({ min: lo, max: hi })), weight: 3 },
      { arbitrary: fc.constantFrom<unknown>(...EDGES, [2, 2, 2], [1, Infinity]), weight: 1 },
    );
  const arb = fc.record({
    kind: fc.constantFrom('max', 'avg') as fc.Arbitrary<'max' | 'avg'>,
    n: fc.integer({ min: 0, max: 2 }),
    c: fc.integer({ min: 0, max: 3 }),
    h: fc.oneof({ arbitrary: fc.integer({ min: 4, max: 8 }), weight: 6 }, { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 }),
    w: fc.oneof({ arbitrary: fc.integer({ min: 4, max: 8 }), weight: 6 }, { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 }),
    kernel: pairArb(1, 4),
    stride: fc.oneof(fc.constant(undefined), pairArb(1, 3)),
    padding: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: pairArb(0, 1), weight: 4 }, { arbitrary: pairArb(0, 2), weight: 1 }),
    seed: seedArb,
  });
  check(t, 'pool2d', fc.property(arb, (c) => {
    const op = c.kind === 'max' ? 'maxPool2d' : 'avgPool2d';
    const x = randT(c.seed, [c.n, c.c, c.h, c.w], true);
    const options: Record<string, unknown> = {};
    if (c.stride !== undefined) options.stride = c.stride;
    if (c.padding !== undefined) options.padding = c.padding;
    const call = () => (c.kind === 'max' ? ms.maxPool2d : ms.avgPool2d)(x, c.kernel as number, options as ms.Pool2dOptions);
    const what = `${op} x [${x.shape}] k ${String(c.kernel)} ${JSON.stringify(options, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
    const pair = (v: unknown, lo: number): [number, number] | null => {
      const p = Array.isArray(v) ? v : [v, v];
      return p.length === 2 && p.every((e) => isInt(e, lo, LIMIT)) ? [p[0], p[1]] : null;
    };
    if (c.kernel === null || c.kernel === undefined) return expectOpError(call, op, ['kernel'], what);
    const kernel = pair(c.kernel, 1);
    if (kernel === null) return expectOpError(call, op, ['kernel'], what);
    // A null stride means the default, like undefined.
    const stride = c.stride === undefined || c.stride === null ? kernel : pair(c.stride, 1);
    if (stride === null) return expectOpError(call, op, ['stride'], what);
    const padding = c.padding === undefined ? [0, 0] as [number, number] : pair(c.padding, 0);
    if (padding === null) return expectOpError(call, op, ['padding'], what);
    if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1]) return expectOpError(call, op, ['padding', 'half the kernel'], what);
    const oh = convOutSize(c.h, kernel[0], stride[0], padding[0], 1);
    const ow = convOutSize(c.w, kernel[1], stride[1], padding[1], 1);
    if (oh < 0 || ow < 0) return expectOpError(call, op, ['kernel', 'padded input'], what);
    const y = call();
    const ref = refPool2d(c.kind, x.data, x.shape, { kernel, stride, padding });
    expectShape(y.shape, ref.shape, what);
    expectClose(y.data, ref.data, what, { rtol: 1e-5, atol: 1e-5 });
    // Backward runs and gives a gradient of the input's size (values are covered by test/ops/pool.test.ts).
    y.backward(ms.ones(y.shape));
    if (x.size > 0 && y.size > 0 && x.grad?.size !== x.size) throw new Error(`${what}: no input gradient`);
  }), 400);
  // Missing or malformed kernels, once each.
  const x = ms.ones([1, 1, 4, 4]);
  for (const op of ['maxPool2d', 'avgPool2d'] as const) {
    for (const k of [undefined, null, '2', [2], [2, 2, 2], [0, 2], [2, NaN]]) {
      t.doesNotThrow(() => expectOpError(() => ms[op](x, k as unknown as number), op, ['kernel'], `kernel ${JSON.stringify(k)}`), `${op} kernel ${JSON.stringify(k)}`);
    }
    t.doesNotThrow(() => expectOpError(() => ms[op](ms.ones([4, 4]), 2), op, ['x', '[N, C, H, W]'], 'x 2-D'), `${op} x 2-D`);
    t.doesNotThrow(() => expectOpError(() => ms[op](x, 2, 'x' as unknown as ms.Pool2dOptions), op, ['options'], 'options a string'), `${op} options a string`);
  }
});

t.test('globalAvgPool2d: zero-size batch and channels; empty planes refused', async (t) => {
  const arb = fc.record({ n: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 3 }), h: fc.integer({ min: 0, max: 4 }), w: fc.integer({ min: 0, max: 4 }), seed: seedArb });
  check(t, 'globalAvgPool2d', fc.property(arb, (c) => {
    const x = randT(c.seed, [c.n, c.c, c.h, c.w]);
    const what = `x [${x.shape}]`;
    if (c.h * c.w === 0) return expectOpError(() => ms.globalAvgPool2d(x), 'globalAvgPool2d', ['empty planes', `[${x.shape.join(', ')}]`], what);
    const y = ms.globalAvgPool2d(x);
    expectShape(y.shape, [c.n, c.c], what);
    expectClose(y.data, refGlobalAvgPool(x.data, x.shape), what, { rtol: 1e-5, atol: 1e-6 });
  }), 100);
});

// -------------------------------------------------------------- normalizations

t.test('groupNorm: group counts, prefix gamma/beta, eps; zero-size dimensions', async (t) => {
  const arb = fc.record({
    n: fc.integer({ min: 0, max: 3 }),
    groups: fc.integer({ min: 1, max: 4 }),
    cpg: fc.integer({ min: 0, max: 3 }),
    spatial: fc.constantFrom<number[]>([], [3], [2, 3], [0], [1, 1]),
    numGroups: fc.oneof({ arbitrary: fc.constantFrom<unknown>('ok', 'ok', 'ok', 'ok', 'nodivide'), weight: 5 }, { arbitrary: fc.constantFrom<unknown>(...EDGES), weight: 1 }),
    gammaExtra: fc.constantFrom<number | null>(null, 0, 2, -1),
    betaExtra: fc.constantFrom<number | null>(null, 0, 1, -1),
    eps: fc.oneof({ arbitrary: fc.constantFrom<unknown>(undefined, 1e-5, 0.1, 0), weight: 5 }, { arbitrary: fc.constantFrom<unknown>(NaN, -1e-5, Infinity, '1e-5', null), weight: 1 }),
    seed: seedArb,
  });
  check(t, 'groupNorm', fc.property(arb, (c) => {
    const channels = c.groups * c.cpg;
    const xShape = [c.n, channels, ...c.spatial];
    const x = randT(c.seed, xShape);
    const numGroups = c.numGroups === 'ok' ? c.groups : c.numGroups === 'nodivide' ? channels + 1 : c.numGroups;
    const vec = (extra: number | null, s: number) => (extra === null ? null : randT(s, [Math.max(0, channels + extra)]));
    const gamma = vec(c.gammaExtra, c.seed + 1);
    const beta = vec(c.betaExtra, c.seed + 2);
    const options = c.eps === undefined ? undefined : { eps: c.eps as number };
    const call = () => ms.groupNorm(x, numGroups as number, gamma, beta, options);
    const what = `x [${xShape}] numGroups ${String(numGroups)} gamma ${gamma ? `[${gamma.shape}]` : null} beta ${beta ? `[${beta.shape}]` : null} eps ${String(c.eps)}`;
    if (!isInt(numGroups, 1, LIMIT)) return expectOpError(call, 'groupNorm', ['numGroups'], what);
    if (channels % numGroups !== 0) return expectOpError(call, 'groupNorm', ['numGroups', 'divide'], what);
    if (gamma !== null && gamma.size < channels) return expectOpError(call, 'groupNorm', ['gamma'], what);
    if (beta !== null && beta.size < channels) return expectOpError(call, 'groupNorm', ['beta'], what);
    const eps = c.eps === undefined ? 1e-5 : c.eps;
    if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) return expectOpError(call, 'groupNorm', ['eps'], what);
    const y = call();
    expectShape(y.shape, xShape, what);
    const ref = refGroupNorm(x.data, xShape, numGroups, gamma?.data ?? null, beta?.data ?? null, eps);
    // eps = 0 with a one-value group is 0/0 in both; otherwise the error grows with 1/std.
    expectClose(y.data, ref, what, { rtol: 1e-3, atol: 1e-3 });
  }), 300);
});

t.test('batchNorm: training and evaluation, prefix vectors, momentum and eps at their limits', async (t) => {
  const arb = fc.record({
    n: fc.integer({ min: 0, max: 3 }),
    channels: fc.integer({ min: 0, max: 4 }),
    spatial: fc.constantFrom<number[]>([], [3], [2, 2], [0]),
    training: fc.oneof({ arbitrary: fc.boolean(), weight: 8 }, { arbitrary: fc.constantFrom<unknown>(undefined, 1, 'yes'), weight: 1 }),
    stats: fc.constantFrom('both', 'both', 'none', 'meanOnly', 'short'),
    extra: fc.integer({ min: 0, max: 2 }),
    momentum: fc.oneof({ arbitrary: fc.constantFrom<unknown>(undefined, 0, 0.1, 1), weight: 6 }, { arbitrary: fc.constantFrom<unknown>(-0.1, 1.5, NaN, Infinity, '0.1'), weight: 1 }),
    eps: fc.oneof({ arbitrary: fc.constantFrom<unknown>(undefined, 1e-5, 1e-3), weight: 6 }, { arbitrary: fc.constantFrom<unknown>(NaN, -1, -Infinity), weight: 1 }),
    seed: seedArb,
  });
  check(t, 'batchNorm', fc.property(arb, (c) => {
    const xShape = [c.n, c.channels, ...c.spatial];
    const x = randT(c.seed, xShape);
    const full = c.channels + c.extra;
    const rm = c.stats === 'none' ? null : randT(c.seed + 1, [c.stats === 'short' ? Math.max(0, c.channels - 1) : full]);
    const rvData = Float32Array.from(randn32(rng(c.seed + 2), full), (v) => 0.5 + Math.abs(v));
    const rv = c.stats === 'none' || c.stats === 'meanOnly' ? null : ms.tensor(rvData, [full]);
    const gamma = randT(c.seed + 3, [full]);
    const beta = randT(c.seed + 4, [full]);
    const meanBefore = rm?.data.slice();
    const varBefore = rv?.data.slice();
    const options: Record<string, unknown> = { training: c.training };
    if (c.momentum !== undefined) options.momentum = c.momentum;
    if (c.eps !== undefined) options.eps = c.eps;
    const call = () => ms.batchNorm(x, rm, rv, gamma, beta, options as unknown as ms.BatchNormOptions);
    const what = `x [${xShape}] training ${String(c.training)} stats ${c.stats} momentum ${String(c.momentum)} eps ${String(c.eps)}`;
    if (typeof c.training !== 'boolean') return expectOpError(call, 'batchNorm', ['training'], what);
    if (c.stats === 'short' && c.channels > 0) return expectOpError(call, 'batchNorm', ['runningMean'], what);
    if (c.stats === 'meanOnly') return expectOpError(call, 'batchNorm', ['runningMean', 'runningVar'], what);
    const eps = (c.eps ?? 1e-5) as number;
    if (!(Number.isFinite(eps) && eps >= 0)) return expectOpError(call, 'batchNorm', ['eps'], what);
    const momentum = (c.momentum ?? 0.1) as number;
    if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) return expectOpError(call, 'batchNorm', ['momentum'], what);
    const useBatch = c.training || rm === null;
    const count = c.n * size(c.spatial);
    if (useBatch && count <= 1) return expectOpError(call, 'batchNorm', ['more than one value'], what);
    const y = call();
    expectShape(y.shape, xShape, what);
    const stats = useBatch ? null : { mean: rm!.data, variance: rv!.data };
    const ref = refBatchNorm(x.data, xShape, stats, gamma.data, beta.data, eps);
    expectClose(y.data, ref, what, { rtol: 1e-3, atol: 1e-3 });
    // Running statistics: moved in training (prefix only, variance unbiased), untouched otherwise.
    if (rm !== null && rv !== null) {
      const m0 = meanBefore!;
      const v0 = varBefore!;
      const em = Float64Array.from(m0);
      const ev = Float64Array.from(v0);
      if (c.training) {
        const { mean, variance } = refChannelMoments(x.data, xShape);
        for (let ch = 0; ch < c.channels; ch++) {
          em[ch] = (1 - momentum) * m0[ch] + momentum * mean[ch];
          ev[ch] = (1 - momentum) * v0[ch] + (momentum * variance[ch] * count) / (count - 1);
        }
      }
      expectClose(rm.data, em, `${what}: running mean`, { rtol: 1e-4, atol: 1e-5 });
      expectClose(rv.data, ev, `${what}: running variance`, { rtol: 1e-4, atol: 1e-5 });
    }
  }), 300);
});

// ------------------------------------------------------- softmax and reshape

t.test('softmax / logSoftmax: any rank >= 1, zero-size rows and columns, large magnitudes', async (t) => {
  const arb = fc.record({
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 3 }),
    scale: fc.constantFrom(1, 30, 1e4),
    log: fc.boolean(),
    seed: seedArb,
  });
  check(t, 'softmax', fc.property(arb, (c) => {
    const op = c.log ? 'logSoftmax' : 'softmax';
    const x = ms.tensor(randn32(rng(c.seed), size(c.shape), c.scale), c.shape);
    const call = () => (c.log ? ms.logSoftmax(x) : ms.softmax(x));
    const what = `${op} x [${c.shape}] scale ${c.scale}`;
    if (c.shape.length === 0) return expectOpError(call, op, ['x', 'at least one dimension'], what);
    const y = call();
    expectShape(y.shape, c.shape, what);
    const cols = c.shape[c.shape.length - 1];
    const ref = c.log ? refLogSoftmax(x.data, cols) : refSoftmax(x.data, cols);
    expectClose(y.data, ref, what, c.log ? { rtol: 1e-5, atol: 1e-4 * c.scale * 1e-2 + 1e-5 } : { rtol: 1e-4, atol: 1e-6 });
  }), 200);
});

t.test('reshape / flatten: -1 inference, zero sizes, hostile shapes', async (t) => {
  const dimArb = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 4 }), weight: 8 }, { arbitrary: fc.constantFrom<unknown>(-1, -2, NaN, 1.5, 2 ** 31, 2 ** 53, Infinity, '2'), weight: 1 });
  // Half the targets are rearrangements of the source shape (merged neighbours, one -1), so most reshape.
  const arb = fc
    .record({
      from: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 4 }),
      random: fc.array(dimArb, { minLength: 0, maxLength: 4 }),
      derive: fc.boolean(),
      merge: fc.nat(),
      infer: fc.nat(),
    })
    .map((r) => {
      if (!r.derive) return { from: r.from, to: r.random };
      const to: unknown[] = [...r.from].reverse();
      if (to.length > 1) {
        const at = r.merge % (to.length - 1);
        to.splice(at, 2, (to[at] as number) * (to[at + 1] as number));
      }
      if (to.length > 0 && r.infer % 2 === 0) to[r.infer % to.length] = -1;
      return { from: r.from, to };
    });
  check(t, 'reshape', fc.property(arb, (c) => {
    const x = ms.tensor(randn32(rng(7), size(c.from)), c.from, { requiresGrad: true });
    const call = () => ms.reshape(x, c.to as number[]);
    const what = `[${c.from}] -> [${c.to.map(String)}]`;
    const minusOnes = c.to.filter((d) => d === -1).length;
    if (minusOnes > 1) return expectOpError(call, 'reshape', ['more than one -1'], what);
    const rest = c.to.filter((d) => d !== -1);
    if (!rest.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) return expectOpError(call, 'reshape', ['shape'], what);
    const known = size(rest as number[]);
    if (known > LIMIT) return expectOpError(call, 'reshape', ['shape', '2^31 - 1'], what);
    const target = (c.to as number[]).map((d) => (d === -1 ? x.size / known : d));
    if (minusOnes === 1 ? known === 0 || x.size % known !== 0 : known !== x.size) return expectOpError(call, 'reshape', ['cannot reshape', `[${x.shape.join(', ')}]`], what);
    const y = call();
    expectShape(y.shape, target, what);
    if (y.data !== x.data) throw new Error(`${what}: reshape copied the values`);
    ms.sum(y).backward();
    if (x.size > 0 && !x.grad!.data.every((v) => v === 1)) throw new Error(`${what}: gradient not all ones`);
  }), 300);
  t.doesNotThrow(() => expectOpError(() => ms.reshape(ms.ones([2]), 'x' as unknown as number[]), 'reshape', ['shape'], 'shape a string'), 'shape a string');
  t.doesNotThrow(() => expectOpError(() => ms.flatten(ms.ones([])), 'flatten', ['x'], 'flatten a scalar'), 'flatten a scalar');
  t.same(ms.flatten(ms.zeros([0, 3, 4])).shape, [0, 12], 'an empty batch flattens to [0, rest]');
});

// ------------------------------------------------------ losses and creation

t.test('crossEntropy: hostile labels; creation functions: hostile shapes', async (t) => {
  const arb = fc.record({
    n: fc.integer({ min: 0, max: 4 }),
    classes: fc.integer({ min: 0, max: 5 }),
    bad: fc.oneof(fc.constant<unknown>('none'), fc.constantFrom<unknown>('count', -1, 'classes', 1.5, NaN, Infinity, '0', null, 2 ** 31)),
    asArray: fc.boolean(),
    seed: seedArb,
  });
  check(t, 'crossEntropy', fc.property(arb, (c) => {
    const logits = randT(c.seed, [c.n, c.classes], true);
    const labels: unknown[] = Array.from({ length: c.n }, (_, i) => (c.classes === 0 ? 0 : (i * 7 + c.seed) % c.classes));
    if (c.bad === 'count') labels.push(0);
    else if (c.bad !== 'none' && c.n > 0) labels[c.n - 1] = c.bad === 'classes' ? c.classes : c.bad;
    const lab = c.asArray ? labels : Int32Array.from(labels as number[]);
    const call = () => ms.crossEntropy(logits, lab as number[]);
    const what = `logits [${logits.shape}] labels ${JSON.stringify(labels)}${c.asArray ? '' : ' (Int32Array)'}`;
    const given = c.asArray ? labels : [...(lab as Int32Array)];
    if (given.length !== c.n) return expectOpError(call, 'crossEntropy', ['labels'], what);
    const badAt = given.findIndex((v) => !isInt(v, 0, c.classes - 1));
    if (badAt >= 0) return expectOpError(call, 'crossEntropy', [`labels[${badAt}]`], what);
    const loss = call();
    expectShape(loss.shape, [], what);
    if (c.n === 0) {
      if (!Number.isNaN(loss.item())) throw new Error(`${what}: the mean over an empty batch is ${loss.item()}, expected NaN`);
      return;
    }
    const ref = refLogSoftmax(logits.data, c.classes);
    let s = 0;
    for (let i = 0; i < c.n; i++) s -= ref[i * c.classes + (given[i] as number)];
    expectClose([loss.item()], [s / c.n], what, { rtol: 1e-5, atol: 1e-5 });
  }), 200);

  const shapeArb = fc.array(fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 4 }, { arbitrary: fc.constantFrom<unknown>(...HOSTILE, 2 ** 31 - 1), weight: 1 }), { maxLength: 3 });
  check(t, 'zeros / ones / full / randn / rand', fc.property(shapeArb, fc.constantFrom('zeros', 'ones', 'randn', 'rand', 'full'), (shape, fn) => {
    const call = () =>
      fn === 'full' ? ms.full(shape as number[], 2) : fn === 'randn' ? ms.randn(shape as number[], { seed: 1 }) : fn === 'rand' ? ms.rand(shape as number[], { seed: 1 }) : ms[fn as 'zeros' | 'ones'](shape as number[]);
    const what = `${fn}([${shape.map(String)}])`;
    if (!shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) return expectOpError(call, fn, ['shape'], what);
    const n = size(shape as number[]);
    if (n > LIMIT) return expectOpError(call, fn, ['shape', '2^31 - 1'], what);
    const y = call();
    expectShape(y.shape, shape as number[], what);
  }), 200);
});

// ------------------------------------------------------------- slice rates

t.test('setSliceRate: any rate in (0, 1] works, anything else is refused and changes nothing', async (t) => {
  ms.manualSeed(11);
  const model = ms.models.mlp({ inputs: 6, hidden: [16], classes: 3 });
  model.eval();
  const x = randT(12, [2, 6]);
  const rateArb = fc.oneof(
    { arbitrary: fc.double({ min: 0, max: 1, noNaN: true }), weight: 4 },
    { arbitrary: fc.constantFrom<unknown>(0, -0, 1, 2 ** -1074, 1 + 2 ** -52, -1, NaN, Infinity, -Infinity, 2 ** 31, '0.5', null, undefined), weight: 2 },
  );
  check(t, 'setSliceRate', fc.property(rateArb, (r) => {
    model.setSliceRate(1);
    const what = `rate ${String(r)}`;
    if (typeof r !== 'number' || !(r > 0 && r <= 1)) {
      expectOpError(() => model.setSliceRate(r as number), 'setSliceRate', ['slice rate'], what);
      if (model.sliceRate !== 1) throw new Error(`${what}: the refused rate changed sliceRate to ${model.sliceRate}`);
      return;
    }
    model.setSliceRate(r);
    const y = ms.noGrad(() => model.forward(x));
    expectShape(y.shape, [2, 3], what);
    if (!y.data.every(Number.isFinite)) throw new Error(`${what}: non-finite logits`);
  }), 150);
});
