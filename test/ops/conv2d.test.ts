// conv2d with width arguments (channel prefixes of a full OIHW weight): values
// against a float64 reference at random shapes, strides, paddings, dilations,
// widths and group counts; equality with a dense conv on a copied sub-weight;
// gradients by finite differences; the prefix rule for weight/bias gradients;
// thread-count independence; bad input and raw addon calls.
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';
import {
  abs64,
  assertAll,
  assertBitwise,
  assertClose,
  assertOpError,
  checkGradients,
  dotTol,
  randInt,
  randn32,
  rng,
  type Asserter,
} from '../helpers/reference.js';
import {
  convOutSize,
  convWeightOutsidePrefix,
  copySubWeight,
  quiet,
  range,
  refConv2d,
  thrown,
  type ConvRefArgs,
} from '../helpers/conv-reference.js';

interface Case {
  n: number;
  inWidth: number;
  h: number;
  w: number;
  outFull: number;
  ipgFull: number;
  kh: number;
  kw: number;
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
  outWidth: number;
  bias: boolean;
}

function label(c: Case): string {
  return (
    `x [${c.n}, ${c.inWidth}, ${c.h}, ${c.w}] w [${c.outFull}, ${c.ipgFull}, ${c.kh}, ${c.kw}] ` +
    `s ${c.stride} p ${c.padding} d ${c.dilation} g ${c.groups} out ${c.outWidth} bias ${c.bias}`
  );
}

function refArgs(c: Case): ConvRefArgs {
  return {
    xShape: [c.n, c.inWidth, c.h, c.w],
    wShape: [c.outFull, c.ipgFull, c.kh, c.kw],
    stride: c.stride,
    padding: c.padding,
    dilation: c.dilation,
    groups: c.groups,
    outWidth: c.outWidth,
  };
}

/** Options as the user would pass them: numbers when square, pairs otherwise, defaults omitted at random. */
function options(c: Case, gen: ms.Generator): ms.Conv2dOptions {
  const pair = (p: [number, number], dflt: number): number | [number, number] | undefined => {
    if (p[0] !== p[1]) return p;
    if (p[0] === dflt && gen.uniform() < 0.5) return undefined;
    return gen.uniform() < 0.5 ? p[0] : p;
  };
  const o: ms.Conv2dOptions = {};
  const s = pair(c.stride, 1);
  if (s !== undefined) o.stride = s;
  const p = pair(c.padding, 0);
  if (p !== undefined) o.padding = p;
  const d = pair(c.dilation, 1);
  if (d !== undefined) o.dilation = d;
  if (c.groups !== 1 || gen.uniform() < 0.5) o.groups = c.groups;
  if (c.outWidth !== c.outFull || gen.uniform() < 0.5) o.outWidth = c.outWidth;
  return o;
}

/** A random case that fits; channels up to 9, images up to 9x9, kernels up to 4. */
function randomCase(gen: ms.Generator): Case {
  for (;;) {
    const groups = [1, 1, 1, 2, 3][gen.int(5)];
    const cg = randInt(gen, 1, Math.floor(9 / groups));
    const og = randInt(gen, 1, Math.floor(9 / groups));
    const c: Case = {
      n: randInt(gen, 1, 3),
      inWidth: groups * cg,
      h: randInt(gen, 1, 9),
      w: randInt(gen, 1, 9),
      outFull: groups * og + randInt(gen, 0, 2),
      ipgFull: cg + randInt(gen, 0, 2),
      kh: randInt(gen, 1, 4),
      kw: randInt(gen, 1, 4),
      stride: [randInt(gen, 1, 3), randInt(gen, 1, 3)],
      padding: [randInt(gen, 0, 2), randInt(gen, 0, 2)],
      dilation: [randInt(gen, 1, 2), randInt(gen, 1, 2)],
      groups,
      outWidth: groups * og,
      bias: gen.uniform() < 0.5,
    };
    if (gen.uniform() < 0.3) c.stride = [c.stride[0], c.stride[0]];
    if (gen.uniform() < 0.3) c.dilation = [1, 1];
    if (fits(c)) return c;
  }
}

function fits(c: Case): boolean {
  return (
    convOutSize(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]) > 0 &&
    convOutSize(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1]) > 0
  );
}

/** The named special cases the brief asks for. */
function specialCases(): Case[] {
  const base = (o: Partial<Case>): Case => ({
    n: 2, inWidth: 3, h: 5, w: 5, outFull: 4, ipgFull: 3, kh: 3, kw: 3,
    stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, outWidth: 4, bias: true, ...o,
  });
  return [
    // 1x1 images
    base({ h: 1, w: 1, kh: 1, kw: 1 }),
    base({ h: 1, w: 1, kh: 3, kw: 3, padding: [1, 1] }),
    base({ h: 1, w: 1, kh: 1, kw: 1, inWidth: 2, ipgFull: 5, outFull: 7, outWidth: 3, bias: false }),
    // kernel equal to the input size
    base({ h: 4, w: 3, kh: 4, kw: 3 }),
    base({ h: 4, w: 3, kh: 4, kw: 3, inWidth: 2, ipgFull: 4, outFull: 6, outWidth: 5 }),
    base({ h: 5, w: 5, kh: 3, kw: 3, dilation: [2, 2] }), // dilated span = input
    // pointwise (fast path), sliced and grouped
    base({ kh: 1, kw: 1 }),
    base({ kh: 1, kw: 1, inWidth: 2, ipgFull: 5, outFull: 8, outWidth: 3, bias: false }),
    base({ kh: 1, kw: 1, inWidth: 4, ipgFull: 3, outFull: 8, outWidth: 6, groups: 2 }),
    base({ kh: 1, kw: 1, stride: [2, 2] }), // not the fast path
    base({ kh: 1, kw: 1, padding: [1, 0] }), // not the fast path
    // groups 2 and 3
    base({ inWidth: 4, ipgFull: 2, outFull: 6, outWidth: 6, groups: 2, padding: [1, 1] }),
    base({ inWidth: 6, ipgFull: 2, outFull: 6, outWidth: 3, groups: 3, stride: [2, 1] }),
    base({ inWidth: 4, ipgFull: 4, outFull: 8, outWidth: 4, groups: 2 }), // sliced grouped
    // depthwise: groups = channels, weight [C, 1, k, k]
    base({ inWidth: 5, ipgFull: 1, outFull: 5, outWidth: 5, groups: 5, padding: [1, 1] }),
    base({ inWidth: 4, ipgFull: 1, outFull: 4, outWidth: 4, groups: 4, stride: [2, 2], dilation: [2, 1], padding: [2, 1], h: 7, w: 6 }),
    // sliced depthwise: x has fewer channels than the weight
    base({ inWidth: 3, ipgFull: 1, outFull: 8, outWidth: 3, groups: 3, padding: [1, 1] }),
    base({ inWidth: 1, ipgFull: 1, outFull: 8, outWidth: 1, groups: 1, padding: [1, 1] }),
    base({ inWidth: 6, ipgFull: 1, outFull: 8, outWidth: 6, groups: 6, kh: 3, kw: 2, bias: false }),
    // depthwise layer whose weight has more than one input channel per group
    base({ inWidth: 4, ipgFull: 2, outFull: 8, outWidth: 4, groups: 4, padding: [1, 1] }),
    // channel multiplier 2 (groups = channels, twice as many filters)
    base({ inWidth: 3, ipgFull: 1, outFull: 6, outWidth: 6, groups: 3, padding: [1, 1] }),
  ];
}

interface Made {
  x: ms.Tensor;
  w: ms.Tensor;
  b: ms.Tensor | null;
}

function make(c: Case, gen: ms.Generator, requiresGrad = false): Made {
  const x = ms.tensor(randn32(gen, c.n * c.inWidth * c.h * c.w), [c.n, c.inWidth, c.h, c.w], { requiresGrad });
  const w = ms.tensor(randn32(gen, c.outFull * c.ipgFull * c.kh * c.kw), [c.outFull, c.ipgFull, c.kh, c.kw], { requiresGrad });
  const b = c.bias ? ms.tensor(randn32(gen, c.outFull), [c.outFull], { requiresGrad }) : null;
  return { x, w, b };
}

/** Values vs the float64 reference; shape; bitwise equality with a dense conv on a copied sub-weight. */
function checkForward(t: Asserter, c: Case, m: Made, gen: ms.Generator): void {
  const name = label(c);
  const opts = options(c, gen);
  const y = ms.conv2d(m.x, m.w, m.b, opts);
  const ref = refConv2d(m.x.data, m.w.data, m.b?.data ?? null, refArgs(c));
  t.ok(y.shape.length === 4 && y.shape.every((d, i) => d === ref.shape[i]), `${name}: shape [${y.shape}] vs [${ref.shape}]`);
  const scale = refConv2d(abs64(m.x.data), abs64(m.w.data), m.b === null ? null : abs64(m.b.data), refArgs(c)).data;
  const k = (c.inWidth / c.groups) * c.kh * c.kw;
  assertClose(t, y.data, ref.data, `${name}: values`, { ...dotTol(k + 1), scale });
  const cg = c.inWidth / c.groups;
  if (c.outWidth !== c.outFull || cg !== c.ipgFull) {
    const dense = ms.conv2d(m.x, copySubWeight(m.w, c.outWidth, cg), m.b === null ? null : ms.tensor(m.b.data.slice(0, c.outWidth)), {
      ...opts,
      outWidth: undefined,
    });
    assertBitwise(t, y.data, dense.data, `${name}: equals a dense conv on a copied sub-weight`);
  }
}

/** Gradients of x, weight, bias vs finite differences; exact zeros outside the prefix. */
function checkConvGradients(t: Asserter, c: Case, gen: ms.Generator, sample: number): void {
  const name = label(c);
  const m = make(c, gen, true);
  const inputs = m.b === null ? [m.x, m.w] : [m.x, m.w, m.b];
  const opts = options(c, gen);
  const args = refArgs(c);
  checkGradients(
    t, name, inputs,
    (x, w, b) => ms.conv2d(x, w, b ?? null, opts),
    ([x, w, b]) => refConv2d(x, w, b ?? null, args).data,
    { gen, sample },
  );
  const cg = c.inWidth / c.groups;
  if (m.w.grad !== null) {
    assertAll(t, m.w.grad.data, convWeightOutsidePrefix(m.w.shape, c.outWidth, cg), 0, `${name}: weight grad zero outside the prefix`);
  }
  if (m.b !== null && m.b.grad !== null) {
    assertAll(t, m.b.grad.data, range(c.outWidth, c.outFull), 0, `${name}: bias grad zero beyond outWidth`);
  }
}

t.test('forward: random shapes, strides, paddings, dilations, widths and groups', async (t) => {
  const gen = rng(101);
  const q = quiet(t);
  const cases = 150;
  const seen = { grouped: 0, sliced: 0, tiny: 0, dilated: 0, strided: 0 };
  for (let i = 0; i < cases; i++) {
    const c = randomCase(gen);
    if (c.groups > 1) seen.grouped++;
    if (c.outWidth < c.outFull || c.inWidth / c.groups < c.ipgFull) seen.sliced++;
    if (c.h * c.w <= 2) seen.tiny++;
    if (c.dilation[0] * c.dilation[1] > 1) seen.dilated++;
    if (c.stride[0] * c.stride[1] > 1) seen.strided++;
    checkForward(q.sink, c, make(c, gen), gen);
  }
  t.equal(q.flush(), 0, `${cases} random cases match (${JSON.stringify(seen)})`);
  t.ok(seen.grouped > 10 && seen.sliced > 50 && seen.dilated > 10 && seen.strided > 10, 'the sample covers each feature');
});

t.test('forward: 1x1 images, kernel = input, pointwise, groups, depthwise, sliced depthwise', async (t) => {
  const gen = rng(102);
  for (const c of specialCases()) {
    for (const bias of [true, false]) {
      const cc = { ...c, bias };
      checkForward(t, cc, make(cc, gen), gen);
    }
  }
});

t.test('forward: every (inWidth, outWidth) of weight [6, 5, 3, 3], with and without bias', async (t) => {
  const gen = rng(103);
  const q = quiet(t);
  let cases = 0;
  for (let inWidth = 1; inWidth <= 5; inWidth++) {
    for (let outWidth = 1; outWidth <= 6; outWidth++) {
      for (const bias of [false, true]) {
        const c: Case = {
          n: 2, inWidth, h: 5, w: 4, outFull: 6, ipgFull: 5, kh: 3, kw: 3,
          stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, outWidth, bias,
        };
        cases++;
        checkForward(q.sink, c, make(c, gen), gen);
      }
    }
  }
  t.equal(q.flush(), 0, `${cases} width pairs all match`);
});

t.test('gradients: every (inWidth, outWidth) of weight [6, 5, 3, 3] by finite differences; prefix rule', async (t) => {
  const gen = rng(104);
  const q = quiet(t);
  let cases = 0;
  for (let inWidth = 1; inWidth <= 5; inWidth++) {
    for (let outWidth = 1; outWidth <= 6; outWidth++) {
      const c: Case = {
        n: 2, inWidth, h: 4, w: 3, outFull: 6, ipgFull: 5, kh: 3, kw: 3,
        stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, outWidth, bias: (inWidth + outWidth) % 2 === 0,
      };
      cases++;
      checkConvGradients(q.sink, c, gen, 24);
    }
  }
  t.equal(q.flush(), 0, `${cases} width pairs: gradients match and stay in the prefix`);
});

t.test('gradients: special cases and random shapes by finite differences; prefix rule', async (t) => {
  const gen = rng(105);
  const q = quiet(t);
  let cases = 0;
  for (const c of specialCases()) {
    cases++;
    checkConvGradients(q.sink, c, gen, 32);
  }
  for (let i = 0; i < 30; i++) {
    const c = randomCase(gen);
    cases++;
    checkConvGradients(q.sink, c, gen, 24);
  }
  t.equal(q.flush(), 0, `${cases} cases: gradients match and stay in the prefix`);
});

t.test('weight and bias gradients accumulate into the prefix and leave the rest untouched', async (t) => {
  const gen = rng(106);
  for (const c of [
    { inWidth: 2, ipgFull: 4, outFull: 6, outWidth: 3, groups: 1 },
    { inWidth: 4, ipgFull: 3, outFull: 8, outWidth: 4, groups: 2 },
    { inWidth: 3, ipgFull: 1, outFull: 8, outWidth: 3, groups: 3 }, // sliced depthwise
    { inWidth: 2, ipgFull: 5, outFull: 7, outWidth: 3, groups: 1, k: 1 }, // pointwise
  ]) {
    const k = 'k' in c && c.k !== undefined ? c.k : 3;
    const x = ms.tensor(randn32(gen, 2 * c.inWidth * 5 * 5), [2, c.inWidth, 5, 5]);
    const w = ms.tensor(randn32(gen, c.outFull * c.ipgFull * k * k), [c.outFull, c.ipgFull, k, k], { requiresGrad: true });
    const b = ms.tensor(randn32(gen, c.outFull), [c.outFull], { requiresGrad: true });
    const opts = { padding: k === 3 ? 1 : 0, groups: c.groups, outWidth: c.outWidth };
    ms.conv2d(x, w, b, opts).backward(ms.ones([2, c.outWidth, 5, 5]));
    const gw1 = w.grad!.data.slice();
    const gb1 = b.grad!.data.slice();
    // Seed non-zero gradients, run again: the prefix doubles, the rest keeps its seed.
    w.grad = ms.full(w.shape, 0.5);
    b.grad = ms.full(b.shape, -0.25);
    const gw0 = w.grad.data.slice();
    ms.conv2d(x, w, b, opts).backward(ms.ones([2, c.outWidth, 5, 5]));
    const outside = new Set(convWeightOutsidePrefix(w.shape, c.outWidth, c.inWidth / c.groups));
    const name = `x [2, ${c.inWidth}, 5, 5] w [${w.shape}] g ${c.groups} out ${c.outWidth}`;
    assertAll(t, w.grad.data, outside, 0.5, `${name}: weight grad outside the prefix untouched`);
    const inside = range(0, w.size).filter((i) => !outside.has(i));
    assertClose(t, inside.map((i) => w.grad!.data[i]), inside.map((i) => gw0[i] + gw1[i]), `${name}: prefix accumulates`);
    t.ok(inside.some((i) => gw1[i] !== 0), `${name}: prefix gradient non-trivial`);
    assertAll(t, b.grad.data, range(c.outWidth, c.outFull), -0.25, `${name}: bias grad beyond outWidth untouched`);
    assertClose(t, b.grad.data.slice(0, c.outWidth), Array.from(gb1.slice(0, c.outWidth), (v) => v - 0.25), `${name}: bias prefix accumulates`);
    // The value of the bias gradient: 2 * 5 * 5 per filter.
    assertClose(t, gb1.slice(0, c.outWidth), new Array(c.outWidth).fill(50), `${name}: bias gradient sums the output gradient`);
  }
});

t.test('larger sample: N=2, 16 -> 24 channels of a [32, 32, 3, 3] weight, 17x17 image, pad 1; threads 1 vs 2', async (t) => {
  const gen = rng(107);
  const c: Case = {
    n: 2, inWidth: 16, h: 17, w: 17, outFull: 32, ipgFull: 32, kh: 3, kw: 3,
    stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, outWidth: 24, bias: true,
  };
  const m = make(c, gen, true);
  checkForward(t, c, m, gen);
  const strided = { ...c, stride: [2, 2] as [number, number] };
  checkForward(t, strided, m, gen);
  const dw: Case = { ...c, inWidth: 24, ipgFull: 1, groups: 24, outWidth: 24 };
  const mdw = make(dw, gen, true);
  checkForward(t, dw, mdw, gen);

  const before = ms.getNumThreads();
  const run = (threads: number, mm: Made, opts: ms.Conv2dOptions): Float32Array[] => {
    ms.setNumThreads(threads);
    for (const v of [mm.x, mm.w, mm.b]) if (v !== null) v.grad = null;
    const y = ms.conv2d(mm.x, mm.w, mm.b, opts);
    y.backward(ms.tensor(randn32(rng(5), y.size), y.shape));
    return [y.data, mm.x.grad!.data, mm.w.grad!.data, mm.b!.grad!.data];
  };
  try {
    for (const [mm, opts, name] of [
      [m, { padding: 1, outWidth: 24 }, 'dense 16 -> 24'],
      [m, { padding: 1, outWidth: 24, stride: 2 }, 'stride 2'],
      [mdw, { padding: 1, groups: 24, outWidth: 24 }, 'sliced depthwise 24 of 32'],
    ] as [Made, ms.Conv2dOptions, string][]) {
      const one = run(1, mm, opts);
      const two = run(2, mm, opts);
      t.equal(ms.getNumThreads(), 2, 'thread count set to 2');
      ['y', 'grad x', 'grad weight', 'grad bias'].forEach((what, i) => {
        assertBitwise(t, one[i], two[i], `${name}: ${what} identical with 1 and 2 threads`);
      });
    }
  } finally {
    ms.setNumThreads(before);
  }
  t.equal(ms.getNumThreads(), before, 'thread count restored');
});

t.test('large enough for every threaded path: N=8, 32 -> 32 channels, 17x17; threads 1 vs 2', async (t) => {
  const gen = rng(108);
  const c: Case = {
    n: 8, inWidth: 32, h: 17, w: 17, outFull: 40, ipgFull: 32, kh: 3, kw: 3,
    stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, outWidth: 32, bias: true,
  };
  const m = make(c, gen, true);
  checkForward(t, c, m, gen);
  const before = ms.getNumThreads();
  const gy = ms.tensor(randn32(gen, 8 * 32 * 17 * 17), [8, 32, 17, 17]);
  const run = (threads: number): Float32Array[] => {
    ms.setNumThreads(threads);
    for (const v of [m.x, m.w, m.b]) if (v !== null) v.grad = null;
    const y = ms.conv2d(m.x, m.w, m.b, { padding: 1, outWidth: 32 });
    y.backward(gy);
    return [y.data, m.x.grad!.data, m.w.grad!.data, m.b!.grad!.data];
  };
  try {
    const one = run(1);
    const two = run(2);
    ['y', 'grad x', 'grad weight', 'grad bias'].forEach((what, i) => assertBitwise(t, one[i], two[i], `${what} identical with 1 and 2 threads`));
    // Gradients of this size against the float64 reference at a few coordinates.
    checkConvGradients(t, { ...c, n: 1, outFull: 32 }, gen, 8);
  } finally {
    ms.setNumThreads(before);
  }
});

t.test('an empty batch gives an empty result and zero gradients', async (t) => {
  const w = ms.randn([4, 3, 3, 3], { seed: 1, requiresGrad: true });
  const b = ms.randn([4], { seed: 2, requiresGrad: true });
  const x = ms.zeros([0, 2, 5, 5], { requiresGrad: true });
  const y = ms.conv2d(x, w, b, { padding: 1, outWidth: 2 });
  t.same(y.shape, [0, 2, 5, 5]);
  y.backward(ms.zeros([0, 2, 5, 5]));
  t.ok(w.grad!.data.every((v) => v === 0), 'weight gradient all zero');
  t.ok(b.grad!.data.every((v) => v === 0), 'bias gradient all zero');
});

t.test('no gradient is recorded under noGrad or without requiresGrad', async (t) => {
  const w = ms.randn([4, 3, 3, 3], { seed: 1, requiresGrad: true });
  const x = ms.randn([1, 3, 4, 4], { seed: 3 });
  const y = ms.noGrad(() => ms.conv2d(x, w, null));
  t.equal(y.requiresGrad, false);
  t.equal(ms.conv2d(x, w.detach(), null).requiresGrad, false);
  t.equal(ms.conv2d(x, w, null).requiresGrad, true);
});

t.test('bad input throws a clear TypeError / RangeError', async (t) => {
  const x = ms.zeros([2, 4, 5, 5]);
  const w = ms.zeros([6, 4, 3, 3]);
  const w2 = ms.zeros([6, 2, 3, 3]);
  const b = ms.zeros([6]);
  const E = (fn: () => unknown, type: typeof TypeError | typeof RangeError, patterns: (string | RegExp)[], msg: string): void =>
    assertOpError(t, fn, type, 'conv2d', patterns, msg);

  E(() => ms.conv2d(ms.zeros([2, 4, 2, 2]), w, null), RangeError, ['kernel', '[2, 4, 2, 2]'], 'kernel larger than the input');
  E(() => ms.conv2d(ms.zeros([2, 4, 2, 5]), w, null, { dilation: [1, 2] }), RangeError, ['kernel', '[2, 4, 2, 5]'], 'kernel larger than the input, other axis');
  E(() => ms.conv2d(ms.zeros([2, 4, 3, 3]), w, null, { dilation: 2 }), RangeError, ['kernel', 'dilation', '[2, 4, 3, 3]'], 'dilated kernel larger than the input');
  E(() => ms.conv2d(ms.zeros([2, 4, 1, 1]), w, null, { dilation: 2, padding: 1 }), RangeError, ['kernel', 'dilation', '[2, 4, 1, 1]'], 'dilated kernel larger than the padded input');
  E(() => ms.conv2d(x, w, null, { stride: 0 }), RangeError, ['stride'], 'zero stride');
  E(() => ms.conv2d(x, w, null, { stride: [1, 0] }), RangeError, ['stride'], 'zero stride in a pair');
  E(() => ms.conv2d(x, w, null, { stride: [1, 2, 3] as unknown as [number, number] }), RangeError, ['stride'], 'stride of three entries');
  E(() => ms.conv2d(x, w, null, { stride: 1.5 }), RangeError, ['stride'], 'fractional stride');
  E(() => ms.conv2d(x, w, null, { stride: '2' as unknown as number }), TypeError, ['stride'], 'string stride');
  E(() => ms.conv2d(x, w, null, { padding: -1 }), RangeError, ['padding'], 'negative padding');
  E(() => ms.conv2d(x, w, null, { dilation: 0 }), RangeError, ['dilation'], 'zero dilation');
  E(() => ms.conv2d(x, w, null, { padding: NaN }), RangeError, ['padding'], 'NaN padding');
  E(() => ms.conv2d(ms.zeros([2, 3, 5, 5]), w2, null, { groups: 2 }), RangeError, ['groups', '[2, 3, 5, 5]'], 'channels not divisible by groups');
  E(() => ms.conv2d(x, ms.zeros([5, 2, 3, 3]), null, { groups: 2 }), RangeError, ['groups', 'outWidth', '[5, 2, 3, 3]'], 'filters not divisible by groups');
  E(() => ms.conv2d(x, w2, null, { groups: 2, outWidth: 3 }), RangeError, ['groups', 'outWidth'], 'outWidth not divisible by groups');
  E(() => ms.conv2d(x, w, null, { groups: 0 }), RangeError, ['groups'], 'zero groups');
  E(() => ms.conv2d(x, w, null, { groups: 8 }), RangeError, ['groups', '[2, 4, 5, 5]'], 'more groups than channels');
  E(() => ms.conv2d(ms.zeros([2, 6, 5, 5]), w, null), RangeError, ['[2, 6, 5, 5]', '[6, 4, 3, 3]'], 'more input channels than the weight');
  E(() => ms.conv2d(ms.zeros([2, 6, 5, 5]), w2, null, { groups: 2 }), RangeError, ['[2, 6, 5, 5]', '[6, 2, 3, 3]'], 'inWidth / groups larger than the weight');
  E(() => ms.conv2d(ms.zeros([2, 0, 5, 5]), w, null), RangeError, ['[2, 0, 5, 5]'], 'zero input channels');
  E(() => ms.conv2d(x, w, null, { outWidth: 7 }), RangeError, ['outWidth', '[6, 4, 3, 3]'], 'outWidth larger than the weight');
  E(() => ms.conv2d(x, w, null, { outWidth: 0 }), RangeError, ['outWidth', '[6, 4, 3, 3]'], 'outWidth zero');
  E(() => ms.conv2d(x, w, null, { outWidth: 2.5 }), RangeError, ['outWidth', '[6, 4, 3, 3]'], 'fractional outWidth');
  E(() => ms.conv2d(x, w, null, { outWidth: NaN }), RangeError, ['outWidth'], 'NaN outWidth');
  E(() => ms.conv2d(x, w, null, { outWidth: '3' as unknown as number }), TypeError, ['outWidth'], 'string outWidth');
  E(() => ms.conv2d(ms.zeros([4, 5, 5]), w, null), RangeError, ['x', '[4, 5, 5]'], 'x of rank 3');
  E(() => ms.conv2d(ms.zeros([1, 2, 4, 5, 5]), w, null), RangeError, ['x', '[1, 2, 4, 5, 5]'], 'x of rank 5');
  E(() => ms.conv2d(x, ms.zeros([6, 4, 9]), null), RangeError, ['weight', '[6, 4, 9]'], 'weight of rank 3');
  E(() => ms.conv2d(x, ms.zeros([6, 4, 0, 3]), null), RangeError, ['weight', '[6, 4, 0, 3]'], 'empty kernel');
  E(() => ms.conv2d(x, w, ms.zeros([5])), RangeError, ['bias', '[5]', '[6, 4, 3, 3]'], 'bias too short');
  E(() => ms.conv2d(x, w, ms.zeros([7])), RangeError, ['bias', '[7]'], 'bias too long');
  E(() => ms.conv2d(x, w, ms.zeros([6, 1])), RangeError, ['bias', '[6, 1]'], 'bias of rank 2');
  E(() => ms.conv2d(x, w, b, { outWidth: 3, groups: 2 }), RangeError, ['groups'], 'groups with a non-divisible width');
  E(() => ms.conv2d([1, 2] as unknown as ms.Tensor, w, null), TypeError, ['x'], 'x not a tensor');
  E(() => ms.conv2d(x, null as unknown as ms.Tensor, null), TypeError, ['weight'], 'weight null');
  E(() => ms.conv2d(x, w, [1] as unknown as ms.Tensor), TypeError, ['bias'], 'bias not a tensor');
  E(() => ms.conv2d(x, w, null, 3 as unknown as ms.Conv2dOptions), TypeError, ['options'], 'options not an object');
  // Still works after all that.
  t.same(ms.conv2d(x, w, b, { padding: 1, outWidth: 2 }).shape, [2, 2, 5, 5], 'a good call still works');
});

t.test('raw addon: inconsistent params and short buffers throw instead of crashing', async (t) => {
  // [N, C, H, W, O, kh, kw, sH, sW, pH, pW, dH, dW, groups, weightInPerGroup]
  const good = [2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4];
  const xs = new Float32Array(2 * 4 * 25);
  const ws = new Float32Array(6 * 4 * 9);
  const ys = new Float32Array(2 * 6 * 25);
  const bs = new Float32Array(6);
  native.conv2dForward(good, xs, ws, bs, ys);
  t.pass('consistent call works');
  const with_ = (i: number, v: number): number[] => good.map((p, j) => (j === i ? v : p));
  const cases: [string, () => unknown][] = [
    ['params too short', () => native.conv2dForward(good.slice(0, 14), xs, ws, bs, ys)],
    ['params not an array', () => native.conv2dForward(3 as unknown as number[], xs, ws, bs, ys)],
    ['negative param', () => native.conv2dForward(with_(2, -1), xs, ws, bs, ys)],
    ['fractional param', () => native.conv2dForward(with_(2, 4.5), xs, ws, bs, ys)],
    ['NaN param', () => native.conv2dForward(with_(0, NaN), xs, ws, bs, ys)],
    ['string param', () => native.conv2dForward(with_(0, '1' as unknown as number), xs, ws, bs, ys)],
    ['huge param', () => native.conv2dForward(with_(0, 2 ** 40), xs, ws, bs, ys)],
    ['huge sizes', () => native.conv2dForward([2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4], xs, ws, bs, ys)],
    ['zero stride', () => native.conv2dForward(with_(7, 0), xs, ws, bs, ys)],
    ['zero dilation', () => native.conv2dForward(with_(12, 0), xs, ws, bs, ys)],
    ['zero kernel', () => native.conv2dForward(with_(5, 0), xs, ws, bs, ys)],
    ['zero groups', () => native.conv2dForward(with_(13, 0), xs, ws, bs, ys)],
    ['groups not dividing', () => native.conv2dForward(with_(13, 3), xs, ws, bs, ys)],
    ['inChannels > weight', () => native.conv2dForward(with_(14, 3), xs, ws, bs, ys)],
    ['kernel larger than input', () => native.conv2dForward(with_(5, 8), xs, ws, bs, ys)],
    ['x too short', () => native.conv2dForward(good, xs.subarray(1), ws, bs, ys)],
    ['w too short', () => native.conv2dForward(good, xs, ws.subarray(1), bs, ys)],
    ['w too short for more filters', () => native.conv2dForward(with_(4, 7), xs, ws, new Float32Array(7), new Float32Array(2 * 7 * 25))],
    ['w too short for a larger weightInPerGroup', () => native.conv2dForward(with_(14, 5), xs, ws, bs, ys)],
    ['bias too short', () => native.conv2dForward(good, xs, ws, bs.subarray(1), ys)],
    ['y too short', () => native.conv2dForward(good, xs, ws, bs, ys.subarray(1))],
    ['x bigger H', () => native.conv2dForward(with_(2, 6), xs, ws, bs, new Float32Array(2 * 6 * 30))],
    ['x a Float64Array', () => native.conv2dForward(good, new Float64Array(200) as unknown as Float32Array, ws, bs, ys)],
    ['x missing', () => (native.conv2dForward as unknown as (...a: unknown[]) => void)(good)],
    ['bias a number', () => native.conv2dForward(good, xs, ws, 3 as unknown as Float32Array, ys)],
    ['backward input: gy too short', () => native.conv2dBackwardInput(good, ys.subarray(1), ws, new Float32Array(xs.length))],
    ['backward input: gx too short', () => native.conv2dBackwardInput(good, ys, ws, new Float32Array(xs.length - 1))],
    ['backward input: w too short', () => native.conv2dBackwardInput(good, ys, ws.subarray(9), new Float32Array(xs.length))],
    ['backward weight: gw too short', () => native.conv2dBackwardWeight(good, ys, xs, new Float32Array(ws.length - 1))],
    ['backward weight: x too short', () => native.conv2dBackwardWeight(good, ys, xs.subarray(5), new Float32Array(ws.length))],
    ['backward weight: gy too short', () => native.conv2dBackwardWeight(good, ys.subarray(5), xs, new Float32Array(ws.length))],
    ['backward bias: gb too short', () => native.conv2dBackwardBias(good, ys, new Float32Array(5))],
    ['backward bias: gy too short', () => native.conv2dBackwardBias(good, ys.subarray(1), new Float32Array(6))],
    ['backward bias: bad params', () => native.conv2dBackwardBias(with_(13, 5), ys, new Float32Array(6))],
  ];
  for (const [name, fn] of cases) {
    const e = thrown(fn);
    t.ok(e instanceof RangeError || e instanceof TypeError, `${name}: throws a RangeError/TypeError (${String(e)})`);
  }
  // Degenerate but consistent calls (no filters, an empty batch) do nothing and do not crash.
  const noFilters = [2, 4, 5, 5, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4];
  native.conv2dForward(noFilters, xs, new Float32Array(0), null, new Float32Array(0));
  native.conv2dBackwardInput(noFilters, new Float32Array(0), new Float32Array(0), new Float32Array(xs.length));
  native.conv2dBackwardWeight(noFilters, new Float32Array(0), xs, new Float32Array(0));
  native.conv2dBackwardBias(noFilters, new Float32Array(0), new Float32Array(0));
  const noBatch = with_(0, 0);
  const gw = new Float32Array(ws.length);
  const gb = new Float32Array(6);
  native.conv2dForward(noBatch, new Float32Array(0), ws, bs, new Float32Array(0));
  native.conv2dBackwardInput(noBatch, new Float32Array(0), ws, new Float32Array(0));
  native.conv2dBackwardWeight(noBatch, new Float32Array(0), new Float32Array(0), gw);
  native.conv2dBackwardBias(noBatch, new Float32Array(0), gb);
  t.ok(gw.every((v) => v === 0) && gb.every((v) => v === 0), 'degenerate calls leave the gradients zero');
  // A depthwise call whose weight is just long enough works; one element short throws.
  const dwp = [1, 3, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3, 1];
  native.conv2dForward(dwp, new Float32Array(48), new Float32Array(27), null, new Float32Array(48));
  const e = thrown(() => native.conv2dForward(dwp, new Float32Array(48), new Float32Array(26), null, new Float32Array(48)));
  t.ok(e instanceof RangeError, 'depthwise weight one short throws');
  // Zero input channels through the raw addon: the result is the bias alone (or zero).
  const y0 = new Float32Array(2 * 3 * 16).fill(NaN);
  native.conv2dForward([2, 0, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2], new Float32Array(0), new Float32Array(2 * 18 + 0), new Float32Array([1, 2, 3]), y0);
  t.ok(y0.every((v, i) => v === [1, 2, 3][Math.floor(i / 16) % 3]), 'zero input channels give the bias alone');
});

t.test('large 1x1 convolutions (the whole-batch paths) agree with the per-image GEMM path', async (t) => {
  // Per image these stay under the 2M multiply-adds where 1x1 layers switch to
  // the whole-batch paths; the batch of 8 crosses it. Widths 20 (column path)
  // and 32 (direct path), sliced input and output.
  const gen = rng(107);
  for (const [h, w] of [[16, 20], [8, 32]]) {
    const n = 8;
    const x = ms.tensor(randn32(gen, n * 40 * h * w), [n, 40, h, w], { requiresGrad: true });
    const weight = ms.tensor(randn32(gen, 64 * 48), [64, 48, 1, 1], { requiresGrad: true });
    const gy = randn32(gen, n * 56 * h * w);
    const y = ms.conv2d(x, weight, null, { outWidth: 56 });
    ms.sum(ms.mul(y, ms.tensor(gy, y.shape))).backward();
    const per = 40 * h * w;
    const gw = new Float64Array(weight.size);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const xi = ms.tensor(x.data.slice(i * per, (i + 1) * per), [1, 40, h, w], { requiresGrad: true });
      const wi = ms.tensor(weight.data.slice(), weight.shape, { requiresGrad: true });
      const yi = ms.conv2d(xi, wi, null, { outWidth: 56 });
      ms.sum(ms.mul(yi, ms.tensor(gy.slice(i * 56 * h * w, (i + 1) * 56 * h * w), yi.shape))).backward();
      for (let j = 0; j < yi.size; j++) worst = Math.max(worst, Math.abs(yi.data[j] - y.data[i * yi.size + j]) / (1 + Math.abs(yi.data[j])));
      for (let j = 0; j < per; j++) worst = Math.max(worst, Math.abs(xi.grad!.data[j] - x.grad!.data[i * per + j]) / (1 + Math.abs(xi.grad!.data[j])));
      wi.grad!.data.forEach((v, j) => (gw[j] += v));
    }
    for (let j = 0; j < gw.length; j++) worst = Math.max(worst, Math.abs(gw[j] - weight.grad!.data[j]) / (1 + Math.abs(gw[j])));
    t.ok(worst < 1e-4, `${h}x${w}: forward, input and weight gradients agree (worst relative difference ${worst.toExponential(2)})`);
    assertAll(t, weight.grad!.data, convWeightOutsidePrefix(weight.shape, 56, 40), 0, `${h}x${w}: weight gradient zero outside the prefix`);
  }
});

t.test('conv2dForward with accumulate adds the convolution to y on every path', async (t) => {
  const gen = rng(108);
  // [n, c, h, w, o, k, stride, pad]: direct tiles (rows of 32), the column path
  // (rows of 20), im2col (stride 2), and a small 1x1 (per-image sgemm).
  for (const [n, c, h, w, o, k, st, pad] of [
    [2, 5, 6, 32, 7, 3, 1, 1],
    [3, 6, 5, 20, 9, 3, 1, 1],
    [2, 4, 9, 9, 5, 3, 2, 1],
    [2, 3, 4, 4, 6, 1, 1, 0],
  ]) {
    const oh = Math.floor((h + 2 * pad - k) / st) + 1;
    const ow = Math.floor((w + 2 * pad - k) / st) + 1;
    const x = randn32(gen, n * c * h * w);
    const wt = randn32(gen, o * c * k * k);
    const params = [n, c, h, w, o, k, k, st, st, pad, pad, 1, 1, 1, c];
    const fresh = new Float32Array(n * o * oh * ow);
    native.conv2dForward(params, x, wt, null, fresh);
    const y0 = randn32(gen, fresh.length);
    const y = y0.slice();
    native.conv2dForward(params, x, wt, null, y, true);
    let worst = 0;
    for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i] - (y0[i] + fresh[i])) / (1 + Math.abs(y0[i] + fresh[i])));
    t.ok(worst < 1e-5, `${n}x${c}x${h}x${w} -> ${o}, ${k}x${k} stride ${st}: y0 + conv (worst ${worst.toExponential(2)})`);
  }
  const params = [1, 2, 4, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 2];
  const y = new Float32Array(32);
  t.throws(() => native.conv2dForward(params, new Float32Array(32), new Float32Array(4), new Float32Array(2), y, true), /accumulate needs groups 1 and no bias/);
  const grouped = [1, 2, 4, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 2, 1];
  t.throws(() => native.conv2dForward(grouped, new Float32Array(32), new Float32Array(2), null, y, true), /accumulate needs groups 1 and no bias/);
});
