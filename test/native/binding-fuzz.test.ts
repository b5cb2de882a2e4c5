// The binding's second door, fuzzed: every raw addon entry point (gemm has its
// own table in gemm.test.ts) gets valid calls at random small shapes, then one
// argument at a time replaced by something hostile: sizes and offsets that are
// NaN, negative, fractional, infinite, 2^31, 2^53 or past the buffer, buffers
// one element short or of the wrong type, arrays of the wrong length. Each call
// must either be refused with a TypeError / RangeError naming the function, or
// run without touching a single element outside the buffers it was given
// (canaries on both sides of every buffer), and the process must survive.
import fc from 'fast-check';
import t from 'tap';
import { native } from '../../src/native.js';
import type { Asserter } from '../helpers/reference.js';

const SEED = 20260612;
const GUARD = 8;
const CANARY = Math.fround(-7.75e33);

/** One argument of a call. `need` is the length the binding requires of a buffer (0 when unused). */
type Slot =
  | { kind: 'int'; value: number }
  | { kind: 'num'; value: number }
  | { kind: 'bool'; value: boolean }
  /** `lenient`: strides of an empty shape, which the binding reads only up to the first zero size. */
  | { kind: 'ints'; value: number[]; lenient?: boolean }
  /** `defines`: the binding takes the size from this buffer's length, so a shorter one is a smaller call. */
  | { kind: 'buf'; len: number; optional?: boolean; absent?: boolean; defines?: boolean };

interface Call {
  fn: keyof typeof native;
  slots: Slot[];
}

const int = (value: number): Slot => ({ kind: 'int', value });
const num = (value: number): Slot => ({ kind: 'num', value });
const bool = (value: boolean): Slot => ({ kind: 'bool', value });
const ints = (value: number[]): Slot => ({ kind: 'ints', value });
const buf = (len: number, optional = false): Slot => ({ kind: 'buf', len, optional });

/** A buffer of `len` values inside a larger one whose edges are canaries. */
function guarded(len: number, seed: number): { view: Float32Array; whole: Float32Array } {
  const whole = new Float32Array(len + 2 * GUARD).fill(CANARY);
  for (let i = 0; i < len; i++) whole[GUARD + i] = Math.sin(seed * 131 + i * 7.3) * 2;
  return { view: whole.subarray(GUARD, GUARD + len), whole };
}

function canariesIntact(whole: Float32Array): boolean {
  for (let i = 0; i < GUARD; i++) if (whole[i] !== CANARY || whole[whole.length - 1 - i] !== CANARY) return false;
  return true;
}

/**
 * Makes the call. Returns 'refused' or 'ran'; throws when the binding threw
 * anything else, or a message without the function's name, or wrote outside a buffer.
 */
function invoke(call: Call, args: unknown[], wholes: Float32Array[], what: string): 'refused' | 'ran' {
  try {
    (native[call.fn] as (...a: unknown[]) => unknown)(...args);
  } catch (e) {
    if (!(e instanceof TypeError || e instanceof RangeError)) throw new Error(`${what}: threw ${String(e)}`);
    if (!e.message.startsWith(`${call.fn}:`)) throw new Error(`${what}: message does not name ${call.fn}: ${e.message}`);
    return 'refused';
  }
  for (const w of wholes) if (!canariesIntact(w)) throw new Error(`${what}: wrote outside a buffer`);
  return 'ran';
}

/** The arguments of a call, with its buffers guarded. */
function materialize(call: Call, seed: number): { args: unknown[]; wholes: Float32Array[] } {
  const wholes: Float32Array[] = [];
  const args = call.slots.map((s, i) => {
    if (s.kind === 'buf') {
      if (s.absent) return null;
      const g = guarded(s.len, seed + i);
      wholes.push(g.whole);
      return g.view;
    }
    return s.kind === 'ints' ? [...s.value] : s.value;
  });
  return { args, wholes };
}

// ------------------------------------------------------- valid call builders

const small = (max: number) => fc.integer({ min: 0, max });
const pos = (max: number) => fc.integer({ min: 1, max });

const convCall = fc
  .record({
    n: small(2), groups: pos(2), cg: pos(3), ipgExtra: small(1), og: pos(2), k: fc.tuple(pos(3), pos(3)),
    stride: fc.tuple(pos(2), pos(2)), pad: fc.tuple(small(1), small(1)), dil: fc.tuple(pos(2), pos(2)), hw: fc.tuple(pos(5), pos(5)),
    which: fc.constantFrom('conv2dForward', 'conv2dBackwardInput', 'conv2dBackwardWeight', 'conv2dBackwardBias'), bias: fc.boolean(),
  })
  .map((c): Call => {
    const C = c.groups * c.cg;
    const O = c.groups * c.og;
    const ipg = c.cg + c.ipgExtra;
    const [kh, kw] = c.k;
    // Large enough for the dilated kernel.
    const h = c.hw[0] + c.dil[0] * (kh - 1);
    const w = c.hw[1] + c.dil[1] * (kw - 1);
    const outSize = (size: number, k: number, s: number, p: number, d: number) => Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;
    const oh = outSize(h, kh, c.stride[0], c.pad[0], c.dil[0]);
    const ow = outSize(w, kw, c.stride[1], c.pad[1], c.dil[1]);
    const params = [c.n, C, h, w, O, kh, kw, c.stride[0], c.stride[1], c.pad[0], c.pad[1], c.dil[0], c.dil[1], c.groups, ipg];
    const xLen = c.n * C * h * w;
    const yLen = c.n * O * oh * ow;
    const wLen = (O - 1) * ipg * kh * kw + c.cg * kh * kw;
    switch (c.which) {
      case 'conv2dForward':
        return { fn: c.which, slots: [ints(params), buf(xLen), buf(wLen), c.bias ? buf(O, true) : { kind: 'buf', len: O, optional: true, absent: true }, buf(yLen)] };
      case 'conv2dBackwardInput':
        return { fn: c.which, slots: [ints(params), buf(yLen), buf(wLen), buf(xLen)] };
      case 'conv2dBackwardWeight':
        return { fn: c.which, slots: [ints(params), buf(yLen), buf(xLen), buf(wLen)] };
      default:
        return { fn: 'conv2dBackwardBias', slots: [ints(params), buf(yLen), buf(O)] };
    }
  });

const poolCall = fc
  .record({ planes: small(3), h: pos(6), w: pos(6), k: fc.tuple(pos(3), pos(3)), stride: fc.tuple(pos(3), pos(3)), halfPad: fc.boolean(), kind: fc.constantFrom(0, 1), backward: fc.boolean() })
  .map((c): Call => {
    const [kh, kw] = c.k;
    const ph = c.halfPad ? Math.floor(kh / 2) : 0;
    const pw = c.halfPad ? Math.floor(kw / 2) : 0;
    const h = Math.max(c.h, kh);
    const w = Math.max(c.w, kw);
    const oh = Math.floor((h + 2 * ph - kh) / c.stride[0]) + 1;
    const ow = Math.floor((w + 2 * pw - kw) / c.stride[1]) + 1;
    const params = [c.planes, h, w, kh, kw, c.stride[0], c.stride[1], ph, pw];
    const xLen = c.planes * h * w;
    const yLen = c.planes * oh * ow;
    return c.backward
      ? { fn: 'poolBackward', slots: [int(c.kind), ints(params), buf(xLen), buf(yLen), buf(xLen)] }
      : { fn: 'poolForward', slots: [int(c.kind), ints(params), buf(xLen), buf(yLen)] };
  });

const normCall = fc
  .record({ n: small(3), g: pos(3), cpg: pos(3), sp: small(5), which: fc.constantFrom('gnF', 'gnB', 'moments', 'affine', 'bnB'), opt: fc.boolean(), flag: fc.boolean() })
  .map((c): Call => {
    const C = c.g * c.cpg;
    const total = c.n * C * c.sp;
    const opt = (len: number): Slot => (c.opt ? buf(len, true) : { kind: 'buf', len, optional: true, absent: true });
    switch (c.which) {
      case 'gnF':
        return { fn: 'groupNormForward', slots: [int(c.n), int(C), int(c.sp), int(c.g), buf(total), opt(C), opt(C), num(1e-5), buf(total), buf(c.n * c.g), buf(c.n * c.g), bool(c.flag)] };
      case 'gnB':
        return { fn: 'groupNormBackward', slots: [int(c.n), int(C), int(c.sp), int(c.g), buf(total), buf(total), opt(C), buf(c.n * c.g), buf(c.n * c.g), opt(total), opt(C), opt(C), opt(total)] };
      case 'moments':
        return { fn: 'channelMoments', slots: [int(Math.max(c.n, 1)), int(C), int(Math.max(c.sp, 1)), buf(Math.max(c.n, 1) * C * Math.max(c.sp, 1)), buf(C), buf(C)] };
      case 'affine':
        return { fn: 'channelAffine', slots: [int(c.n), int(C), int(c.sp), buf(total), buf(C), buf(C), buf(total)] };
      default:
        return { fn: 'batchNormBackward', slots: [int(c.n), int(C), int(c.sp), buf(total), buf(total), buf(C), buf(C), opt(C), bool(c.flag), opt(total), opt(C), opt(C)] };
    }
  });

const rowCall = fc
  .record({ rows: small(5), cols: small(6), pad: small(2), which: fc.constantFrom('softmax', 'softmaxBackward', 'addRowBias', 'columnSums', 'axpy', 'relu', 'reluBackward', 'gap', 'gapB'), log: fc.boolean() })
  .map((c): Call => {
    const n = c.rows * c.cols;
    const ld = Math.max(c.cols, 1) + c.pad;
    const mat = c.rows === 0 || c.cols === 0 ? 0 : (c.rows - 1) * ld + c.cols;
    switch (c.which) {
      case 'softmax':
        return { fn: 'softmax', slots: [int(c.rows), int(c.cols), buf(n), buf(n), bool(c.log)] };
      case 'softmaxBackward':
        return { fn: 'softmaxBackward', slots: [int(c.rows), int(c.cols), buf(n), buf(n), buf(n), bool(c.log)] };
      case 'addRowBias':
        return { fn: 'addRowBias', slots: [int(c.rows), int(c.cols), buf(c.cols), buf(mat), int(ld)] };
      case 'columnSums':
        return { fn: 'columnSums', slots: [int(c.rows), int(c.cols), buf(mat), int(ld), buf(c.cols)] };
      case 'axpy':
        return { fn: 'axpy', slots: [int(n), num(0.5), buf(n), buf(n)] };
      case 'relu':
        return { fn: 'relu', slots: [{ kind: 'buf', len: n, defines: true }, buf(n)] };
      case 'reluBackward':
        return { fn: 'reluBackward', slots: [{ kind: 'buf', len: n, defines: true }, buf(n), buf(n)] };
      case 'gap':
        return { fn: 'globalAvgPool', slots: [int(c.rows), int(Math.max(c.cols, 1)), buf(c.rows * Math.max(c.cols, 1)), buf(c.rows)] };
      default:
        return { fn: 'globalAvgPoolBackward', slots: [int(c.rows), int(Math.max(c.cols, 1)), buf(c.rows), buf(c.rows * Math.max(c.cols, 1))] };
    }
  });

const broadcastCall = fc
  .record({ shape: fc.array(small(4), { minLength: 0, maxLength: 4 }), bcast: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), which: fc.constantFrom(0, 1, 2, 3) })
  .map((c): Call => {
    const shape = c.shape;
    // Contiguous strides, and a broadcast operand with stride 0 on the chosen axes.
    const contiguous: number[] = [];
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      contiguous[d] = s;
      s *= shape[d];
    }
    const count = s;
    const bShape = shape.map((d, i) => (c.bcast[i] ? 1 : d));
    const bStrides: number[] = [];
    let sb = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      bStrides[d] = c.bcast[d] ? 0 : sb;
      sb *= bShape[d];
    }
    const bLen = count === 0 ? 0 : sb;
    const strides = (v: number[]): Slot => ({ kind: 'ints', value: v, lenient: count === 0 });
    if (c.which <= 1) return { fn: 'binary', slots: [int(c.which), ints(shape), buf(count), strides(contiguous), buf(bLen), strides(bStrides), buf(count)] };
    if (c.which === 2) return { fn: 'sumTo', slots: [ints(shape), buf(count), num(1), buf(bLen), strides(bStrides)] };
    return { fn: 'mulGrad', slots: [ints(shape), buf(count), buf(count), strides(contiguous), buf(bLen), strides(bStrides)] };
  });

const anyCall = fc.oneof(convCall, poolCall, normCall, rowCall, broadcastCall);

// ------------------------------------------------------------------ mutations

/** Values no size, offset or index may take. */
const NOT_INDEX = [NaN, -1, -0.5, 1.5, Infinity, -Infinity, 2 ** 53 + 2, 1e300];
/** Integral but huge: refused unless the buffers really are that large (they never are). */
const HUGE = [2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 - 1];
const NOT_A_NUMBER: unknown[] = ['1', null, undefined, {}, [], true, 1n];
const NOT_A_BUFFER: unknown[] = [new Float64Array(4), new Int32Array(4), new Uint8Array(16), [1, 2, 3], new ArrayBuffer(16), 5, 'x', {}];

type Mutation = { slot: number; how: string; value?: unknown; shorten?: boolean; mustRefuse: boolean; mustRun?: boolean };

function mutationArb(call: Call): fc.Arbitrary<Mutation> {
  const options: fc.Arbitrary<Mutation>[] = [];
  call.slots.forEach((s, slot) => {
    if (s.kind === 'int') {
      options.push(fc.constantFrom(...NOT_INDEX).map((value) => ({ slot, how: `= ${value}`, value, mustRefuse: true })));
      options.push(fc.constantFrom(...NOT_A_NUMBER).map((value) => ({ slot, how: `= ${String(value)}`, value, mustRefuse: true })));
      options.push(fc.constantFrom(...HUGE, s.value + 1, s.value * 2 + 1, 0).map((value) => ({ slot, how: `= ${value}`, value, mustRefuse: false })));
    } else if (s.kind === 'num') {
      options.push(fc.constantFrom(...NOT_A_NUMBER).map((value) => ({ slot, how: `= ${String(value)}`, value, mustRefuse: true })));
      options.push(fc.constantFrom(NaN, Infinity, -Infinity, 0, -1e38).map((value) => ({ slot, how: `= ${value}`, value, mustRefuse: false, mustRun: true })));
    } else if (s.kind === 'bool') {
      options.push(fc.constantFrom(0, 1, 'true', null, {}).map((value) => ({ slot, how: `= ${String(value)}`, value, mustRefuse: true })));
    } else if (s.kind === 'ints') {
      const n = s.value.length;
      if (n > 0) {
        options.push(
          fc.record({ at: fc.integer({ min: 0, max: n - 1 }), v: fc.constantFrom(...NOT_INDEX, '1', null) }).map(({ at, v }) => {
            const value = [...s.value];
            value[at] = v as number;
            return { slot, how: `[${at}] = ${String(v)}`, value, mustRefuse: !s.lenient };
          }),
        );
        options.push(
          fc.record({ at: fc.integer({ min: 0, max: n - 1 }), v: fc.constantFrom(...HUGE, 0, 1, 3) }).map(({ at, v }) => {
            const value = [...s.value];
            value[at] = v;
            return { slot, how: `[${at}] = ${v}`, value, mustRefuse: false };
          }),
        );
      }
      options.push(fc.constantFrom<unknown>(s.value.slice(1), [...s.value, 1], new Array(9).fill(1), 'x', null, 5).map((value) => ({
        slot, how: `= ${JSON.stringify(value)}`, value,
        // One entry more or fewer is a different rank for shape arguments, which can still be consistent.
        mustRefuse: !Array.isArray(value) || (value as unknown[]).length === 9,
      })));
    } else if (!s.absent) {
      if (s.len > 0) options.push(fc.constant({ slot, how: 'one element short', shorten: true, mustRefuse: !s.defines }));
      options.push(fc.constantFrom(...NOT_A_BUFFER).map((value) => ({ slot, how: `= ${Object.prototype.toString.call(value)}`, value, mustRefuse: true })));
      if (!s.optional) options.push(fc.constantFrom(null, undefined).map((value) => ({ slot, how: `= ${String(value)}`, value, mustRefuse: true })));
      else options.push(fc.constant({ slot, how: '= null', value: null, mustRefuse: false }));
    }
  });
  return fc.oneof(...options);
}

function check<T>(t: Asserter, name: string, property: fc.IProperty<T>, numRuns: number): void {
  const details = fc.check(property, { seed: SEED, numRuns });
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  t.ok(!details.failed, details.failed ? `${name}: ${cause}\n${fc.defaultReportMessage(details)}` : `${name} (${numRuns} cases)`);
}

function describe(call: Call): string {
  return `${call.fn}(${call.slots.map((s) => (s.kind === 'buf' ? (s.absent ? 'null' : `f32[${s.len}]`) : JSON.stringify(s.value))).join(', ')})`;
}

t.test('valid raw calls at random shapes run and stay inside their buffers', async (t) => {
  const seen = new Set<string>();
  check(t, 'valid calls', fc.property(anyCall, fc.integer({ min: 0, max: 1000 }), (call, seed) => {
    seen.add(call.fn);
    const { args, wholes } = materialize(call, seed);
    const outcome = invoke(call, args, wholes, describe(call));
    if (outcome !== 'ran') throw new Error(`${describe(call)}: a valid call was refused`);
  }), 600);
  t.ok(seen.size >= 20, `entry points covered: ${[...seen].sort().join(', ')}`);
});

t.test('one hostile argument at a time: refused with the function named, or harmless', async (t) => {
  let refused = 0;
  let ran = 0;
  const arb = anyCall.chain((call) => fc.tuple(fc.constant(call), mutationArb(call), fc.integer({ min: 0, max: 1000 })));
  check(t, 'hostile arguments', fc.property(arb, ([call, m, seed]) => {
    const { args, wholes } = materialize(call, seed);
    const slot = call.slots[m.slot];
    if (m.shorten) args[m.slot] = (args[m.slot] as Float32Array).subarray(0, (slot as { len: number }).len - 1);
    else args[m.slot] = m.value;
    const what = `${describe(call)} with argument ${m.slot} ${m.how}`;
    const outcome = invoke(call, args, wholes, what);
    if (outcome === 'ran' && m.mustRefuse) throw new Error(`${what}: ran instead of being refused`);
    if (outcome === 'refused' && m.mustRun) throw new Error(`${what}: refused a finite-or-not float (they are data, not sizes)`);
    if (outcome === 'refused') refused++;
    else ran++;
  }), 1500);
  t.ok(refused > 500 && ran > 50, `${refused} refused, ${ran} ran harmlessly`);
  // Still alive and still right.
  const x = new Float32Array([1, 2, 3, 4]);
  const y = new Float32Array(4);
  native.softmax(1, 4, x, y, false);
  t.ok(Math.abs(y.reduce((a, b) => a + b, 0) - 1) < 1e-6, 'a softmax after all of it still sums to 1');
});

t.test('sizes whose products overflow int64 are refused, not wrapped', async (t) => {
  const big = 2 ** 53;
  const cases: [keyof typeof native, unknown[]][] = [
    ['conv2dForward', [[1, 1, 1, 1, 1, big, big, 1, 1, 0, 0, big, big, 1, 1], new Float32Array(1), new Float32Array(1), null, new Float32Array(1)]],
    ['conv2dForward', [[0, 1, 1, 1, 1, 1, 1, 1, 1, 2 ** 31, 2 ** 31, 1, 1, 1, 1], new Float32Array(0), new Float32Array(1), null, new Float32Array(0)]],
    ['poolForward', [0, [big, big, big, 1, 1, 1, 1, 0, 0], new Float32Array(1), new Float32Array(1)]],
    ['channelMoments', [big, 0, big, new Float32Array(0), new Float32Array(0), new Float32Array(0)]],
    ['groupNormForward', [big, big, big, 1, new Float32Array(1), null, null, 1e-5, new Float32Array(1), new Float32Array(1), new Float32Array(1)]],
    ['softmax', [big, big, new Float32Array(1), new Float32Array(1), false]],
    ['columnSums', [big, 2, new Float32Array(4), big, new Float32Array(2)]],
    ['addRowBias', [2, 2, new Float32Array(2), new Float32Array(4), big]],
    ['globalAvgPool', [big, big, new Float32Array(1), new Float32Array(1)]],
    ['sumTo', [[big, big], new Float32Array(1), 1, new Float32Array(1), [big, 1]]],
    ['mulGrad', [[3, 3], new Float32Array(9), new Float32Array(9), [big, big], new Float32Array(9), [3, 1]]],
  ];
  for (const [fn, args] of cases) {
    let err: unknown;
    try {
      (native[fn] as (...a: unknown[]) => unknown)(...args);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof RangeError && err.message.startsWith(`${fn}:`), `${fn}: ${err instanceof Error ? err.message : 'no error'}`);
  }
});

t.test('setNumThreads refuses hostile counts and keeps the old one', async (t) => {
  const before = native.getNumThreads();
  for (const n of [0, -1, 1.5, NaN, Infinity, 1025, 2 ** 31, 2 ** 53]) {
    t.throws(() => native.setNumThreads(n), RangeError, `setNumThreads(${n})`);
  }
  for (const n of ['2', null, undefined, {}]) t.throws(() => (native.setNumThreads as (v: unknown) => void)(n), TypeError, `setNumThreads(${String(n)})`);
  t.equal(native.getNumThreads(), before, 'the thread count is unchanged');
});
