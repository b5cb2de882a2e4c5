// Shared test helpers: seeded data, plain float64 reference implementations,
// central finite differences and a tolerance check that says where it failed.
// Not a test file (tap only runs test/**/*.test.ts).
import type { Extra } from 'tap';
import * as ms from '../../src/index.js';

/** The smallest interface of a tap test these helpers need. */
export interface Asserter {
  ok(cond: unknown, ...rest: [string] | [string, Extra]): boolean;
}

// ---------------------------------------------------------------- random data

/** A seeded generator for test data. */
export function rng(seed: number): ms.Generator {
  return new ms.Generator(seed);
}

/** n standard-normal float32 values (times `scale`). */
export function randn32(gen: ms.Generator, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * gen.normal();
  return out;
}

/** n uniform float32 values in [low, high). */
export function uniform32(gen: ms.Generator, n: number, low = -1, high = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * gen.uniform();
  return out;
}

/** Standard-normal values kept at least `gap` away from 0 (for relu kinks). */
export function randnAwayFromZero(gen: ms.Generator, n: number, gap = 0.05): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = gen.normal();
    while (Math.abs(v) < gap) v = gen.normal();
    out[i] = v;
  }
  return out;
}

/** A tensor of standard-normal values from `gen`. */
export function randTensor(gen: ms.Generator, shape: number[], requiresGrad = false, scale = 1): ms.Tensor {
  return ms.tensor(randn32(gen, size(shape), scale), shape, { requiresGrad });
}

/** Random integer in [lo, hi]. */
export function randInt(gen: ms.Generator, lo: number, hi: number): number {
  return lo + gen.int(hi - lo + 1);
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function f64(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x);
}

/** Every width 1..full when full <= `every`, else a sample including 1, 2, full-1, full and some in between. */
export function widths(full: number, every: number, gen: ms.Generator, samples = 4): number[] {
  if (full <= every) return Array.from({ length: full }, (_, i) => i + 1);
  const set = new Set<number>([1, 2, full - 1, full]);
  while (set.size < 4 + samples) set.add(randInt(gen, 1, full));
  return [...set].filter((w) => w >= 1 && w <= full).sort((a, b) => a - b);
}

// --------------------------------------------------------- float64 references

/**
 * C = alpha * op(A) * op(B) + beta * C, row-major, in float64, in place on C.
 * op(A) is M x K (A stored K x M when transA), op(B) is K x N. beta == 0 means C is not read.
 */
export function refGemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: ArrayLike<number>, aOffset: number, lda: number,
  B: ArrayLike<number>, bOffset: number, ldb: number,
  beta: number, C: Float64Array, cOffset: number, ldc: number,
  /** When given, receives |alpha| sum |a||b| + |beta||c| per element of C (the error scale). */
  scaleOut?: Float64Array,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let m = 0;
      for (let p = 0; p < K; p++) {
        const a = transA ? A[aOffset + p * lda + i] : A[aOffset + i * lda + p];
        const b = transB ? B[bOffset + j * ldb + p] : B[bOffset + p * ldb + j];
        s += a * b;
        m += Math.abs(a * b);
      }
      const c = cOffset + i * ldc + j;
      if (scaleOut !== undefined) scaleOut[c] = Math.abs(alpha) * m + (beta === 0 ? 0 : Math.abs(beta * C[c]));
      C[c] = beta === 0 ? alpha * s : alpha * s + beta * C[c];
    }
  }
}

/**
 * linear with the prefix rule: x [rows, inWidth] (any leading dims flattened),
 * weight [outFull, inFull], bias [outFull] or null; y [rows, outWidth] =
 * x W[:outWidth, :inWidth]^T + b[:outWidth].
 */
export function refLinear(
  x: ArrayLike<number>, inWidth: number, weight: ArrayLike<number>, inFull: number,
  bias: ArrayLike<number> | null, outWidth: number,
): Float64Array {
  const rows = x.length / inWidth;
  const y = new Float64Array(rows * outWidth);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outWidth; o++) {
      let s = bias === null ? 0 : bias[o];
      for (let i = 0; i < inWidth; i++) s += x[r * inWidth + i] * weight[o * inFull + i];
      y[r * outWidth + o] = s;
    }
  }
  return y;
}

/** [M, K] x [K, N] (batch = 1) or [B, M, K] x [B, K, N]. */
export function refMatmul(
  a: ArrayLike<number>, b: ArrayLike<number>, batch: number, M: number, K: number, N: number,
): Float64Array {
  const c = new Float64Array(batch * M * N);
  for (let q = 0; q < batch; q++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += a[q * M * K + i * K + p] * b[q * K * N + p * N + j];
        c[q * M * N + i * N + j] = s;
      }
    }
  }
  return c;
}

/** NumPy broadcast of two shapes (throws on mismatch). */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)] : 1;
    const db = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)] : 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: cannot broadcast [${a}] and [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Index into a row-major operand of `shape` for the multi-index `idx` over `outShape`. */
function broadcastIndex(idx: number[], shape: readonly number[], outShape: readonly number[]): number {
  let flat = 0;
  const lead = outShape.length - shape.length;
  for (let d = 0; d < shape.length; d++) {
    const i = shape[d] === 1 ? 0 : idx[lead + d];
    flat = flat * shape[d] + i;
  }
  return flat;
}

/** Elementwise a (op) b with NumPy broadcasting. */
export function refBroadcast(
  op: 'add' | 'mul', a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[],
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShape(aShape, bShape);
  const n = size(shape);
  const data = new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    let rem = k;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
    const va = a[broadcastIndex(idx, aShape, shape)];
    const vb = b[broadcastIndex(idx, bShape, shape)];
    data[k] = op === 'add' ? va + vb : va * vb;
  }
  return { data, shape };
}

export function refRelu(x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
  return y;
}

/** softmax over rows of `cols` elements. */
export function refSoftmax(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - m);
    for (let j = 0; j < cols; j++) y[r * cols + j] = Math.exp(x[r * cols + j] - m) / s;
  }
  return y;
}

/** log softmax over rows of `cols` elements. */
export function refLogSoftmax(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - m);
    const ls = Math.log(s);
    for (let j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j] - m - ls;
  }
  return y;
}

/** Mean over the batch of -logp[i, label_i]. */
export function refNllLoss(logp: ArrayLike<number>, labels: ArrayLike<number>, cols: number): Float64Array {
  const n = labels.length;
  let s = 0;
  for (let i = 0; i < n; i++) s -= logp[i * cols + labels[i]];
  return Float64Array.of(s / n);
}

export function refCrossEntropy(logits: ArrayLike<number>, labels: ArrayLike<number>, cols: number): Float64Array {
  return refNllLoss(refLogSoftmax(logits, cols), labels, cols);
}

/** Mean over the batch of sum_j q (log q - logp), with 0 log 0 = 0. */
export function refKlDiv(logp: ArrayLike<number>, q: ArrayLike<number>, rows: number): Float64Array {
  let s = 0;
  for (let i = 0; i < q.length; i++) if (q[i] > 0) s += q[i] * (Math.log(q[i]) - logp[i]);
  return Float64Array.of(s / rows);
}

export function refSum(x: ArrayLike<number>): Float64Array {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return Float64Array.of(s);
}

export function refMean(x: ArrayLike<number>): Float64Array {
  return Float64Array.of(refSum(x)[0] / x.length);
}

// --------------------------------------------------------- finite differences

export interface NumGradOptions {
  /** Step; default 1e-4 (relative to max(1, |x_i|)). */
  eps?: number;
  /** Only these coordinates (others are left NaN); default all. */
  indices?: readonly number[];
}

/**
 * d(sum_j w_j * f(x)_j)/dx by central differences, all in float64. `f` must
 * not keep or modify its argument.
 */
export function numGrad(
  f: (x: Float64Array) => ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, options: NumGradOptions = {},
): Float64Array {
  const eps = options.eps ?? 1e-4;
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length).fill(NaN);
  const weighted = (y: ArrayLike<number>): number => {
    if (y.length !== w.length) throw new Error(`numGrad: f gave ${y.length} values but w has ${w.length}`);
    let s = 0;
    for (let j = 0; j < y.length; j++) s += w[j] * y[j];
    return s;
  };
  const indices = options.indices ?? Array.from({ length: xs.length }, (_, i) => i);
  for (const i of indices) {
    const x0 = xs[i];
    const h = eps * Math.max(1, Math.abs(x0));
    xs[i] = x0 + h;
    const up = weighted(f(xs));
    xs[i] = x0 - h;
    const down = weighted(f(xs));
    xs[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** `count` distinct indices in [0, n) (all of them when n <= count). */
export function sampleIndices(gen: ms.Generator, n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const set = new Set<number>([0, n - 1]);
  while (set.size < count) set.add(gen.int(n));
  return [...set].sort((a, b) => a - b);
}

// ------------------------------------------------------------------ tolerance

export interface CloseOptions {
  /** Relative tolerance (default 1e-5, fine for a few float32 roundings). */
  rtol?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /**
   * Optional per-element magnitude (e.g. |A||B| for a GEMM): the tolerance of
   * element i grows by `scaleTol * scale[i]`.
   */
  scale?: ArrayLike<number>;
  scaleTol?: number;
  /** Only compare these indices. */
  indices?: readonly number[];
  /** Pass when there is nothing to compare (an empty tensor); otherwise that fails, since it checks nothing. */
  allowEmpty?: boolean;
  /** Mark the assertion as a known, reported defect (tap todo): it runs and reports but does not fail the suite. */
  todo?: string;
}

/**
 * Asserts |actual - expected| <= atol + rtol |expected| (+ scaleTol * scale) for
 * every element, and reports the worst element (index, value, expected,
 * tolerance). NaN matches NaN only; infinities must match exactly. Comparing
 * nothing fails unless `allowEmpty` says an empty result is what is tested.
 */
export function assertClose(
  t: Asserter, actual: ArrayLike<number>, expected: ArrayLike<number>, message: string, options: CloseOptions = {},
): boolean {
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  const scaleTol = options.scaleTol ?? 0;
  if (actual.length !== expected.length) {
    return t.ok(false, `${message}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = -1;
  let worstRatio = 0;
  let worstTol = 0;
  let bad = 0;
  const check = (i: number): void => {
    const a = actual[i];
    const e = expected[i];
    let tol = atol + rtol * Math.abs(e);
    if (options.scale !== undefined) tol += scaleTol * Math.abs(options.scale[i]);
    let ratio: number;
    if (Number.isNaN(e) || Number.isNaN(a)) ratio = Number.isNaN(e) && Number.isNaN(a) ? 0 : Infinity;
    else if (!Number.isFinite(e) || !Number.isFinite(a)) ratio = a === e ? 0 : Infinity;
    else ratio = Math.abs(a - e) / tol;
    if (ratio > 1) bad++;
    if (ratio > worstRatio || worst < 0) {
      worstRatio = ratio;
      worst = i;
      worstTol = tol;
    }
  };
  if (options.indices !== undefined) for (const i of options.indices) check(i);
  else for (let i = 0; i < actual.length; i++) check(i);
  const extra: Extra = options.todo === undefined ? {} : { todo: options.todo };
  if (worst < 0) {
    if (options.allowEmpty === true) return t.ok(true, `${message} (empty, as expected)`, extra);
    const what = options.indices !== undefined ? 'no indices were given' : 'the arrays are empty';
    return t.ok(false, `${message}: nothing compared (${what})`, extra);
  }
  const ok = bad === 0;
  return t.ok(
    ok,
    ok
      ? message
      : `${message}: ${bad} element(s) out of tolerance; worst at [${worst}]: got ${actual[worst]}, ` +
          `expected ${expected[worst]}, |diff| ${Math.abs(actual[worst] - expected[worst])} > tol ${worstTol}`,
    extra,
  );
}

/** Asserts every listed element is exactly `value` (e.g. untouched prefix gradients). */
export function assertAll(t: Asserter, actual: ArrayLike<number>, indices: Iterable<number>, value: number, message: string): boolean {
  for (const i of indices) {
    if (!Object.is(actual[i], value)) return t.ok(false, `${message}: element [${i}] is ${actual[i]}, expected ${value}`);
  }
  return t.ok(true, message);
}

/** Bitwise equality of two float32 arrays, reporting the first difference. */
export function assertBitwise(t: Asserter, a: Float32Array, b: Float32Array, message: string): boolean {
  if (a.length !== b.length) return t.ok(false, `${message}: lengths ${a.length} and ${b.length}`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) return t.ok(false, `${message}: first difference at [${i}]: ${a[i]} vs ${b[i]}`);
  }
  return t.ok(true, message);
}

/** Tolerance options for a float32 dot product of length K against a float64 reference. */
export function dotTol(K: number): Pick<CloseOptions, 'rtol' | 'atol' | 'scaleTol'> {
  // A K-term float32 sum is within about K * 2^-24 * sum |a_i b_i| (twice that for slack).
  return { rtol: 1e-6, atol: 1e-6, scaleTol: (K + 4) * 2 ** -23 };
}

/** |x| elementwise as float64. */
export function abs64(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]);
  return out;
}

/** Gradient tolerance: float32 backward vs float64 finite differences. */
export const GRAD_TOL: CloseOptions = { rtol: 1e-3, atol: 1e-4 };

// ------------------------------------------------------------- gradient check

export interface GradCheckOptions {
  /** Generator for the output weights w and the sampled coordinates. */
  gen: ms.Generator;
  /** At most this many coordinates per input are differenced (default 64; all when fewer). */
  sample?: number;
  eps?: number;
  tol?: CloseOptions;
  /** Output weights; default standard normal. */
  w?: Float32Array;
}

/**
 * Runs `forward(...inputs)`, back-propagates random output weights w and
 * compares every input's .grad (for inputs with requiresGrad) with central
 * differences of sum(w * reference(inputs as float64)). Clears the inputs'
 * .grad first. Returns the output tensor.
 */
export function checkGradients(
  t: Asserter,
  name: string,
  inputs: ms.Tensor[],
  forward: (...xs: ms.Tensor[]) => ms.Tensor,
  reference: (xs: Float64Array[]) => ArrayLike<number>,
  options: GradCheckOptions,
): ms.Tensor {
  for (const x of inputs) x.grad = null;
  const y = forward(...inputs);
  const w = options.w ?? randn32(options.gen, y.size);
  y.backward(ms.tensor(w, y.shape));
  const base = inputs.map((x) => f64(x.data));
  inputs.forEach((x, k) => {
    if (!x.requiresGrad) return;
    if (x.grad === null) {
      t.ok(false, `${name}: input ${k} has no .grad after backward`);
      return;
    }
    t.ok(x.grad.shape.length === x.shape.length && x.grad.shape.every((d, i) => d === x.shape[i]), `${name}: grad ${k} has the input's shape`);
    const indices = sampleIndices(options.gen, x.size, options.sample ?? 64);
    const f = (xk: Float64Array): ArrayLike<number> => reference(base.map((b, j) => (j === k ? xk : b)));
    const ng = numGrad(f, base[k], w, { eps: options.eps, indices });
    assertClose(t, x.grad.data, ng, `${name}: d/d input ${k} vs finite differences`, { ...GRAD_TOL, ...options.tol, indices, allowEmpty: x.size === 0 });
  });
  return y;
}

/** Asserts that fn throws `type` with a message starting with `op + ':'` and matching every pattern. */
export function assertOpError(
  t: Asserter,
  fn: () => unknown,
  type: typeof TypeError | typeof RangeError,
  op: string,
  patterns: (string | RegExp)[],
  message: string,
): void {
  let caught: unknown = undefined;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (caught === undefined) {
    t.ok(false, `${message}: did not throw`);
    return;
  }
  const err = caught as Error;
  const text = String(err?.message);
  const problems: string[] = [];
  if (!(err instanceof type)) problems.push(`threw ${err?.constructor?.name} instead of ${type.name}`);
  if (!text.startsWith(`${op}:`)) problems.push(`message does not start with "${op}:"`);
  for (const p of patterns) {
    const hit = typeof p === 'string' ? text.includes(p) : p.test(text);
    if (!hit) problems.push(`message lacks ${String(p)}`);
  }
  t.ok(problems.length === 0, problems.length === 0 ? `${message} (${text})` : `${message}: ${problems.join('; ')} -- "${text}"`);
}
