// The raw addon GEMM against a float64 reference: every transpose combination,
// padded leading dimensions, buffer offsets, alpha/beta, canaries around C,
// thread-count independence and the binding's argument checks (second door).
import { spawnSync } from 'node:child_process';
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';
import {
  assertBitwise,
  assertClose,
  dotTol,
  randInt,
  randn32,
  refGemm,
  rng,
  type Asserter,
} from '../helpers/reference.js';

interface GemmCase {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  /** Extra columns of leading-dimension padding for A, B, C. */
  padA: number;
  padB: number;
  padC: number;
  aOffset: number;
  bOffset: number;
  cOffset: number;
  /** Fill the C block with NaN before the call (only meaningful with beta = 0). */
  nanC?: boolean;
}

interface Operands {
  A: Float32Array;
  lda: number;
  B: Float32Array;
  ldb: number;
  C: Float32Array;
  ldc: number;
}

const CANARY = -12345.625;
const TAIL = 5; // extra elements after each buffer's last used element

function extent(offset: number, rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? offset : offset + (rows - 1) * ld + cols;
}

function makeOperands(gen: ms.Generator, c: GemmCase): Operands {
  const aRows = c.transA ? c.K : c.M;
  const aCols = c.transA ? c.M : c.K;
  const bRows = c.transB ? c.N : c.K;
  const bCols = c.transB ? c.K : c.N;
  const lda = Math.max(aCols, 1) + c.padA;
  const ldb = Math.max(bCols, 1) + c.padB;
  const ldc = Math.max(c.N, 1) + c.padC;
  const A = randn32(gen, extent(c.aOffset, aRows, aCols, lda) + TAIL);
  const B = randn32(gen, extent(c.bOffset, bRows, bCols, ldb) + TAIL);
  const C = randn32(gen, extent(c.cOffset, c.M, c.N, ldc) + TAIL);
  // Everything outside the M x N block of C is a canary.
  for (let i = 0; i < C.length; i++) if (!inBlock(i, c, ldc)) C[i] = CANARY;
  if (c.nanC) for (let i = 0; i < C.length; i++) if (inBlock(i, c, ldc)) C[i] = NaN;
  return { A, lda, B, ldb, C, ldc };
}

function inBlock(i: number, c: GemmCase, ldc: number): boolean {
  if (i < c.cOffset) return false;
  const r = Math.floor((i - c.cOffset) / ldc);
  const col = (i - c.cOffset) % ldc;
  return r < c.M && col < c.N;
}

function describe(c: GemmCase): string {
  return (
    `${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'} M=${c.M} N=${c.N} K=${c.K} alpha=${c.alpha} beta=${c.beta}` +
    ` pad=${c.padA}/${c.padB}/${c.padC} off=${c.aOffset}/${c.bOffset}/${c.cOffset}${c.nanC ? ' NaN-C' : ''}`
  );
}

function checkCase(t: Asserter, gen: ms.Generator, c: GemmCase): boolean {
  const { A, lda, B, ldb, C, ldc } = makeOperands(gen, c);
  const A0 = A.slice();
  const B0 = B.slice();
  const C0 = C.slice();
  const expected = Float64Array.from(C);
  const scale = new Float64Array(C.length);
  refGemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, c.aOffset, lda, B, c.bOffset, ldb, c.beta, expected, c.cOffset, ldc, scale);
  native.gemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, c.aOffset, lda, B, c.bOffset, ldb, c.beta, C, c.cOffset, ldc);
  const name = describe(c);
  const block: number[] = [];
  let canaryBad = -1;
  for (let i = 0; i < C.length; i++) {
    if (inBlock(i, c, ldc)) block.push(i);
    else if (!Object.is(C[i], C0[i]) && canaryBad < 0) canaryBad = i;
  }
  let ok = assertClose(t, C, expected, `${name}: C block`, { ...dotTol(c.K), scale, indices: block });
  ok = t.ok(canaryBad < 0, `${name}: C outside the block untouched${canaryBad < 0 ? '' : ` (element ${canaryBad} is ${C[canaryBad]})`}`) && ok;
  ok = assertBitwise(t, A, A0, `${name}: A unchanged`) && ok;
  ok = assertBitwise(t, B, B0, `${name}: B unchanged`) && ok;
  return ok;
}

/** A compact check used inside loops: only reports the cases that fail. */
function checkQuiet(t: Asserter, gen: ms.Generator, c: GemmCase): boolean {
  const failures: string[] = [];
  const sink: Asserter = {
    ok(cond, message) {
      if (!cond) failures.push(message ?? '');
      return Boolean(cond);
    },
  };
  const ok = checkCase(sink, gen, c);
  for (const f of failures) t.ok(false, f);
  return ok;
}

const base: Omit<GemmCase, 'transA' | 'transB' | 'M' | 'N' | 'K'> = {
  alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, aOffset: 0, bOffset: 0, cOffset: 0,
};
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

t.test('edge shapes (1, primes, powers of two and neighbours) in every transpose combination', async (t) => {
  const gen = rng(101);
  const sizes = [1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 65];
  let count = 0;
  let passed = 0;
  for (const [transA, transB] of TRANS) {
    for (const M of [1, 3, 17, 33]) {
      for (const N of [1, 2, 16, 31, 65]) {
        const K = sizes[(M * 7 + N * 3) % sizes.length];
        count++;
        if (checkQuiet(t, gen, { ...base, transA, transB, M, N, K, padA: 1, padB: 3, padC: 2 })) passed++;
      }
    }
    // K = 1 and M, N, K all 1.
    count += 2;
    if (checkQuiet(t, gen, { ...base, transA, transB, M: 9, N: 11, K: 1 })) passed++;
    if (checkQuiet(t, gen, { ...base, transA, transB, M: 1, N: 1, K: 1 })) passed++;
  }
  t.equal(passed, count, `${count} edge-shape cases`);
});

t.test('random shapes up to 130 with odd padding, offsets, alpha and beta', async (t) => {
  const gen = rng(202);
  const special = [1, 2, 3, 7, 11, 31, 37, 63, 64, 97, 127, 128, 129, 130];
  const pick = (): number => (gen.uniform() < 0.5 ? special[gen.int(special.length)] : randInt(gen, 1, 130));
  const alphas = [1, -1, 0.5, 2.25, -0.375];
  const betas = [0, 1, -1, 0.5, 1.75];
  let count = 0;
  let passed = 0;
  for (let n = 0; n < 48; n++) {
    const [transA, transB] = TRANS[n % 4];
    const c: GemmCase = {
      transA, transB, M: pick(), N: pick(), K: pick(),
      alpha: alphas[gen.int(alphas.length)], beta: betas[gen.int(betas.length)],
      padA: 2 * gen.int(4) + 1, padB: 2 * gen.int(4) + 1, padC: 2 * gen.int(4) + 1,
      aOffset: gen.int(9), bOffset: gen.int(9), cOffset: gen.int(9),
    };
    count++;
    if (checkQuiet(t, gen, c)) passed++;
  }
  t.equal(passed, count, `${count} random cases`);
});

t.test('beta = 0 never reads C: NaN in C does not propagate', async (t) => {
  const gen = rng(303);
  for (const [transA, transB] of TRANS) {
    for (const [M, N, K] of [[1, 1, 1], [1, 37, 19], [41, 1, 23], [29, 35, 67], [70, 66, 130]] as const) {
      checkCase(t, gen, { ...base, transA, transB, M, N, K, beta: 0, alpha: 1.5, nanC: true, padC: 3, cOffset: 2 });
    }
  }
});

t.test('K = 0 and alpha = 0 give beta * C', async (t) => {
  const gen = rng(404);
  for (const [transA, transB] of TRANS) {
    for (const beta of [0, 1, -2.5]) {
      checkCase(t, gen, { ...base, transA, transB, M: 5, N: 7, K: 0, beta, padC: 1, cOffset: 3 });
      checkCase(t, gen, { ...base, transA, transB, M: 1, N: 9, K: 0, beta });
      checkCase(t, gen, { ...base, transA, transB, M: 13, N: 17, K: 11, alpha: 0, beta, padA: 1 });
    }
    // beta = 0 with K = 0 clears even NaN.
    checkCase(t, gen, { ...base, transA, transB, M: 6, N: 4, K: 0, beta: 0, nanC: true });
  }
});

t.test('M = 0 or N = 0 touches nothing', async (t) => {
  const gen = rng(505);
  for (const [M, N] of [[0, 5], [5, 0], [0, 0]] as const) {
    const A = randn32(gen, 40);
    const B = randn32(gen, 40);
    const C = new Float32Array(10).fill(CANARY);
    native.gemm(false, false, M, N, 3, 1, A, 0, 3, B, 0, Math.max(N, 1), 1, C, 0, Math.max(N, 1));
    t.ok(C.every((v) => v === CANARY), `M=${M} N=${N}: C untouched`);
  }
});

t.test('larger sampled shapes', async (t) => {
  const gen = rng(606);
  checkCase(t, gen, { ...base, transA: false, transB: false, M: 300, N: 257, K: 513, padA: 3, padB: 1, padC: 5, aOffset: 1, cOffset: 7 });
  checkCase(t, gen, { ...base, transA: true, transB: true, M: 257, N: 300, K: 301, beta: 0.5, padA: 1, padB: 1, padC: 1, bOffset: 3 });
  checkCase(t, gen, { ...base, transA: false, transB: true, M: 129, N: 513, K: 200, alpha: -1, beta: 1, padB: 7 });
  checkCase(t, gen, { ...base, transA: true, transB: false, M: 1, N: 1031, K: 257, beta: 1, padA: 2, padC: 1 });
  checkCase(t, gen, { ...base, transA: true, transB: true, M: 1031, N: 1, K: 263, padB: 2, padC: 4 });
});

t.test('results do not depend on the thread count (bitwise)', async (t) => {
  const saved = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(saved));
  const gen = rng(707);
  const shapes: [number, number, number][] = [[256, 384, 300], [1, 4096, 300], [4096, 1, 300], [203, 517, 129]];
  for (const [M, N, K] of shapes) {
    for (const [transA, transB] of TRANS) {
      for (const beta of [0, 1]) {
        const c: GemmCase = { ...base, transA, transB, M, N, K, beta, padA: 1, padB: 3, padC: 2, aOffset: 1 };
        const { A, lda, B, ldb, C, ldc } = makeOperands(gen, c);
        const results: Float32Array[] = [];
        for (const threads of [1, 2]) {
          ms.setNumThreads(threads);
          const out = C.slice();
          native.gemm(transA, transB, M, N, K, 1, A, c.aOffset, lda, B, 0, ldb, beta, out, 0, ldc);
          results.push(out);
        }
        assertBitwise(t, results[0], results[1], `${describe(c)}: 1 thread == 2 threads`);
      }
    }
  }
  ms.setNumThreads(saved);
  t.equal(ms.getNumThreads(), saved, 'thread count restored');
});

t.test('a few rows times a transposed B: each row is the one-row product, bit for bit, at every thread count', async (t) => {
  const saved = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(saved));
  const gen = rng(808);
  let cases = 0;
  let passed = 0;
  for (const M of [2, 3, 5, 8, 9]) {
    for (const [N, K] of [[1031, 257], [37, 19], [4, 1], [515, 1024], [130, 33]] as const) {
      for (const beta of [0, 1, -0.5]) {
        const c: GemmCase = { ...base, transA: false, transB: true, M, N, K, alpha: M % 2 === 0 ? 1 : -1.5, beta, padA: 3, padB: 1, padC: 5, aOffset: 2, cOffset: 3 };
        cases++;
        if (checkQuiet(t, gen, c)) passed++;
        if (M > 8) continue; // the blocked path: rows need not round as one-row products
        const { A, lda, B, ldb, C, ldc } = makeOperands(gen, c);
        let same = true;
        for (const threads of [1, 2]) {
          ms.setNumThreads(threads);
          const whole = C.slice();
          native.gemm(false, true, M, N, K, c.alpha, A, c.aOffset, lda, B, 0, ldb, beta, whole, c.cOffset, ldc);
          for (let i = 0; i < M; i++) {
            const row = C.slice();
            native.gemm(false, true, 1, N, K, c.alpha, A, c.aOffset + i * lda, lda, B, 0, ldb, beta, row, c.cOffset + i * ldc, ldc);
            for (let j = 0; j < N; j++) if (!Object.is(row[c.cOffset + i * ldc + j], whole[c.cOffset + i * ldc + j])) same = false;
          }
        }
        t.ok(same, `${describe(c)}: rows equal one-row products`);
      }
    }
  }
  t.equal(passed, cases, `${cases} cases against the reference`);
});

t.test('second door: the binding rejects bad arguments and the process survives', async (t) => {
  const gen = rng(808);
  // A valid call: NT, M=4, N=5, K=6, lda=7, ldb=8, ldc=9 with offsets 2, 3, 1.
  const M = 4, N = 5, K = 6, lda = 7, ldb = 8, ldc = 9;
  const aLen = 2 + (M - 1) * lda + K;
  const bLen = 3 + (N - 1) * ldb + K;
  const cLen = 1 + (M - 1) * ldc + N;
  const A = randn32(gen, aLen);
  const B = randn32(gen, bLen);
  const C = new Float32Array(cLen);
  type Args = Parameters<typeof native.gemm>;
  const good: Args = [false, true, M, N, K, 1, A, 2, lda, B, 3, ldb, 0, C, 1, ldc];
  const call = (args: unknown[]): void => (native.gemm as (...a: unknown[]) => void)(...args);
  t.doesNotThrow(() => call(good), 'the valid call works');
  const with_ = (i: number, v: unknown): unknown[] => {
    const a: unknown[] = [...good];
    a[i] = v;
    return a;
  };

  // Buffers one element too short, offsets past the end, leading dims below the width.
  const tooShort: [string, unknown[]][] = [
    ['A one short', with_(6, A.subarray(0, aLen - 1))],
    ['B one short', with_(9, B.subarray(0, bLen - 1))],
    ['C one short', with_(13, C.subarray(0, cLen - 1))],
    ['aOffset one more', with_(7, 3)],
    ['bOffset one more', with_(10, 4)],
    ['cOffset one more', with_(14, 2)],
    ['aOffset past the end', with_(7, aLen + 1)],
    ['bOffset past the end', with_(10, bLen + 10)],
    ['cOffset past the end', with_(14, cLen + 1)],
    ['lda < K', with_(8, K - 1)],
    ['ldb < K (B transposed)', with_(11, K - 1)],
    ['ldc < N', with_(15, N - 1)],
    ['lda = 0', with_(8, 0)],
    ['ldc = 0', with_(15, 0)],
  ];
  for (const [name, args] of tooShort) t.throws(() => call(args), RangeError, `${name} -> RangeError`);
  // Transposed A: stored K x M, so lda must be >= M and the buffer hold (K-1)*lda + M.
  const At = randn32(gen, (K - 1) * M + M);
  t.doesNotThrow(() => call(with_(8, M).map((v, i) => (i === 6 ? At : i === 0 ? true : i === 7 ? 0 : v))), 'transposed A fits exactly');
  t.throws(() => call(with_(8, M - 1).map((v, i) => (i === 6 ? At : i === 0 ? true : i === 7 ? 0 : v))), RangeError, 'transposed A: lda < M');
  t.throws(() => call(with_(8, M).map((v, i) => (i === 6 ? At.subarray(1) : i === 0 ? true : i === 7 ? 0 : v))), RangeError, 'transposed A one short');
  // Non-transposed B: stored K x N, so ldb >= N and (K-1)*ldb + N elements.
  const Bn = randn32(gen, (K - 1) * N + N);
  const nb = (v: unknown, i: number): unknown => (i === 9 ? Bn : i === 1 ? false : i === 10 ? 0 : v);
  t.doesNotThrow(() => call(with_(11, N).map(nb)), 'non-transposed B fits exactly');
  t.throws(() => call(with_(11, N - 1).map(nb)), RangeError, 'non-transposed B: ldb < N');
  t.throws(() => call(with_(11, N).map((v, i) => (i === 9 ? Bn.subarray(1) : nb(v, i)))), RangeError, 'non-transposed B one short');

  // Wrong types.
  const wrongTypes: [string, unknown[]][] = [
    ['transA a number', with_(0, 1)],
    ['transB a string', with_(1, 'yes')],
    ['M a string', with_(2, '4')],
    ['N null', with_(3, null)],
    ['K undefined', with_(4, undefined)],
    ['alpha a string', with_(5, '1')],
    ['A a Float64Array', with_(6, new Float64Array(aLen))],
    ['A a plain array', with_(6, Array.from(A))],
    ['B an Int32Array', with_(9, new Int32Array(bLen))],
    ['C a Uint8Array', with_(13, new Uint8Array(cLen * 4))],
    ['C an ArrayBuffer', with_(13, new ArrayBuffer(cLen * 4))],
    ['aOffset a bigint', with_(7, 2n)],
    ['beta an object', with_(12, {})],
    ['too few arguments', good.slice(0, 15)],
    ['no arguments', []],
  ];
  for (const [name, args] of wrongTypes) t.throws(() => call(args), TypeError, `${name} -> TypeError`);

  // NaN, negative, fractional, infinite and huge sizes, offsets and leading dimensions.
  const bad = [NaN, -1, 1.5, -0.5, Infinity, -Infinity, 2 ** 53 + 2, 1e300];
  for (const [i, name] of [[2, 'M'], [3, 'N'], [4, 'K'], [7, 'aOffset'], [8, 'lda'], [10, 'bOffset'], [11, 'ldb'], [14, 'cOffset'], [15, 'ldc']] as const) {
    for (const v of bad) t.throws(() => call(with_(i, v)), RangeError, `${name} = ${v} -> RangeError`);
  }
  // Huge but integral sizes that the small buffers cannot hold.
  const huge: [string, unknown[]][] = [
    ['M = 2^31', with_(2, 2 ** 31)],
    ['N = 2^40', with_(3, 2 ** 40)],
    ['K = 2^53', with_(4, 2 ** 53)],
    ['M = 2^53, lda = 2^53', with_(8, 2 ** 53).map((v, i) => (i === 2 ? 2 ** 53 : v))],
    ['ldc = 2^53', with_(15, 2 ** 53)],
    ['cOffset = 2^53', with_(14, 2 ** 53)],
  ];
  for (const [name, args] of huge) t.throws(() => call(args), RangeError, `${name} -> RangeError`);

  // The errors name the function and the offending argument.
  t.throws(() => call(with_(6, A.subarray(0, aLen - 1))), { message: /^gemm: A\b/ }, 'message names gemm and A');
  t.throws(() => call(with_(2, NaN)), { message: /^gemm: M\b/ }, 'message names gemm and M');
  t.throws(() => call(with_(13, new Float64Array(cLen))), { message: /^gemm: C\b/ }, 'message names gemm and C');

  // Still alive and still right.
  const expected = new Float64Array(cLen);
  refGemm(false, true, M, N, K, 1, A, 2, lda, B, 3, ldb, 0, expected, 1, ldc);
  C.fill(0);
  call(good);
  assertClose(t, C, expected, 'a valid call after all the refused ones is still correct', { ...dotTol(K), scale: expected.map(Math.abs) });
});

// Sizes whose products overflow int64 inside the binding's bounds check: run in
// a child process so a crash cannot take the test runner with it.
t.test('second door: int64 overflow in the bounds arithmetic is refused, not a crash', async (t) => {
  const root = new URL('../../', import.meta.url).pathname;
  const run = (body: string): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ['-e', `
      const addon = require('node-gyp-build')(${JSON.stringify(root)});
      try { ${body}; console.log('no error'); }
      catch (e) { console.log(e instanceof RangeError ? 'RangeError' : 'other ' + e); }
    `], { encoding: 'utf8', timeout: 60000 });
  // (K-1)*ldb + N = 1023 * 2^53 + 2^53 = 2^63 wraps negative; likewise for C.
  const gemm = run(`
    const big = 2 ** 53;
    addon.gemm(false, false, 1024, big, 1024, 1, new Float32Array(1024 * 1024), 0, 1024,
      new Float32Array(16), 0, big, 0, new Float32Array(16), 0, big);`);
  t.equal(gemm.signal, null, `gemm: no signal (got ${gemm.signal})`);
  t.equal(String(gemm.stdout).trim(), 'RangeError', 'gemm: RangeError');
  const binary = run(`
    const s = 2 ** 53 - 1;
    addon.binary(0, [1025, 1025], new Float32Array(4), [s, s], new Float32Array(4), [0, 0],
      new Float32Array(1025 * 1025));`);
  t.equal(binary.signal, null, `binary: no signal (got ${binary.signal})`);
  t.equal(String(binary.stdout).trim(), 'RangeError', 'binary: RangeError');
  // A control: the same child-process harness reports a refused call as RangeError.
  const control = run('addon.gemm(false, false, 1, 1, 1, 1, new Float32Array(0), 0, 1, new Float32Array(1), 0, 1, 0, new Float32Array(1), 0, 1)');
  t.equal(control.signal, null, 'control: no signal');
  t.equal(String(control.stdout).trim(), 'RangeError', 'control: a short buffer is a RangeError in the child too');
});
