// A group norm (+ ReLU) folded into the convolutions that read it (native/conv.h,
// InputTransform): groupNormStats gives the per-(image, channel) map that groupNormForward
// applies, in the same rounding, and conv2dForward with that map equals, bit for bit, the
// same convolution of groupNormForward's output, on every path a convolution can take
// (direct tiles with stride 1 and 2, implicit GEMM, few output pixels, small and large 1x1, im2col, depthwise,
// groups), with channel prefixes of a larger weight, with and without ReLU, bias and
// accumulation, for 1 and 2 threads. The addon reports which path ran; on the generic kernels every
// case runs the portable paths and is checked the same way.
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';

let seed = 20261203;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 - 0.5;
}
const randArray = (n: number, scale = 1, offset = 0) => Float32Array.from({ length: n }, () => rand() * scale + offset);

// [N, C, H, W, O, kh, kw, sH, sW, pH, pW, dH, dW, groups, weightInPerGroup], and the group norm's groups.
/** path: the path on AVX-512 and AVX2 (avx2Path where AVX2 differs; plain 1x1 runs the per-image GEMM there). */
type Case = { name: string; p: number[]; normGroups: number; path: string; avx2Path?: string };
const fast = ['avx512', 'avx2'].includes(ms.kernelInfo().gemm);
const cases: Case[] = [
  { name: '3x3 on 16x16 (direct)', p: [3, 12, 16, 16, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 16], normGroups: 4, path: 'direct' },
  { name: '3x3 on 28x28 rows (direct, ragged)', p: [2, 8, 28, 28, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], normGroups: 2, path: 'direct' },
  { name: '3x3 stride 2 (direct, halves)', p: [2, 6, 30, 30, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 8], normGroups: 3, path: 'direct' },
  { name: '1x1 on 32x32 (direct)', p: [4, 32, 32, 32, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, 40], normGroups: 4, path: 'direct', avx2Path: 'pointwise' },
  { name: '3x3 on 8x8 (flat)', p: [4, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 20], normGroups: 4, path: 'flat' },
  { name: '3x3 stride 2, 16x16 -> 8x8 (flat over the four phase planes)', p: [4, 16, 16, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 20], normGroups: 4, path: 'flat' },
  { name: '3x3 on 5x5 (implicit)', p: [4, 16, 5, 5, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 20], normGroups: 4, path: 'implicit' },
  { name: 'small 1x1 (pointwise)', p: [2, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 4], normGroups: 2, path: 'pointwise' },
  { name: '3x3 stride 3 (im2col)', p: [2, 5, 11, 11, 4, 3, 3, 3, 3, 1, 1, 1, 1, 1, 5], normGroups: 5, path: 'im2col' },
  { name: 'depthwise 3x3', p: [2, 6, 9, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, 1], normGroups: 3, path: 'depthwise' },
  { name: '3x3 on 4x4 at batch 1 (small)', p: [1, 12, 4, 4, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 16], normGroups: 4, path: 'small' },
  { name: '3x3 stride 2, 7x7 -> 4x4 at batch 1 (small)', p: [1, 6, 7, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 8], normGroups: 3, path: 'small' },
  { name: 'two groups 3x3 on 16x16', p: [2, 8, 16, 16, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4], normGroups: 2, path: 'direct' },
  // Over 2^20 multiply-adds, so two threads share it; batch 3 splits an image between them.
  { name: '3x3 on 16x16 at batch 3, two threads (direct, an image split)', p: [3, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 16], normGroups: 4, path: 'direct' },
  // One image of one tile: its output rows split between the threads, its statistics after.
  { name: '3x3 on 8x8 at batch 1, two threads (flat, rows split)', p: [1, 64, 8, 8, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 64], normGroups: 8, path: 'flat', avx2Path: 'implicit' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const [N, C, H, W, O, kh, kw, , , , , , , groups, wpg] = c.p;
    const spatial = H * W;
    // An offset and a spread per channel, so centring and scaling both matter.
    const x = randArray(N * C * spatial, 3, 0.7);
    const gamma = randArray(C, 1, 1);
    const beta = randArray(C, 0.5);
    const w = randArray(O * wpg * kh * kw);
    const G = c.normGroups;
    for (const relu of [true, false]) {
      const y = new Float32Array(N * C * spatial);
      const mean = new Float32Array(N * G), rstd = new Float32Array(N * G);
      native.groupNormForward(N, C, spatial, G, x, gamma, beta, 1e-5, y, mean, rstd, relu);
      const center = new Float32Array(N * C), scale = new Float32Array(N * C), shift = new Float32Array(N * C);
      const mean2 = new Float32Array(N * G), rstd2 = new Float32Array(N * G);
      native.groupNormStats(N, C, spatial, G, x, gamma, beta, 1e-5, mean2, rstd2, center, scale, shift);
      t.same([...mean2], [...mean], 'the same means');
      t.same([...rstd2], [...rstd], 'the same rstd');
      // The map, in float32 steps, gives groupNormForward's output (exactly where the compiler
      // rounds the multiply and the add apart, as on x86-64; within an ulp where it fuses them).
      let mismatches = 0;
      for (let i = 0; i < y.length; i++) {
        const k = Math.floor(i / spatial);
        let v = Math.fround(Math.fround(Math.fround(x[i] - center[k]) * scale[k]) + shift[k]);
        if (relu && v <= 0) v = 0;
        const tol = process.arch === 'x64' ? 0 : 2 ** -22 * Math.max(Math.abs(v), 2 ** -20);
        if (Math.abs(v - y[i]) > tol) mismatches++;
      }
      t.equal(mismatches, 0, `relu ${relu}: the map reproduces groupNormForward's output`);
      for (const threads of [1, 2]) {
        ms.setNumThreads(threads);
        for (const withBias of groups === 1 ? [false, true] : [false]) {
          const bias = withBias ? randArray(O) : null;
          const outH = Math.floor((H + 2 * c.p[9] - kh) / c.p[7]) + 1;
          const outW = Math.floor((W + 2 * c.p[10] - kw) / c.p[8]) + 1;
          const want = new Float32Array(N * O * outH * outW);
          native.conv2dForward(c.p, y, w, bias, want);
          const unfusedPath = native.convPaths().forward;
          const got = new Float32Array(want.length).fill(NaN);
          native.conv2dForward(c.p, x, w, bias, got, false, center, scale, shift, relu);
          const path = ms.kernelInfo().gemm === 'avx2' ? (c.avx2Path ?? c.path) : c.path;
          t.equal(native.convPaths().forward, fast ? path : unfusedPath, `relu ${relu}, ${threads} threads: ran ${fast ? path : 'the portable path'} on ${ms.kernelInfo().gemm}`);
          t.ok(got.every((v, i) => Object.is(v, want[i])), `relu ${relu}, bias ${withBias}, ${threads} threads: equal bit for bit`);
          if (!withBias && groups === 1) {
            // Accumulating into a residual: the same sum added to it.
            const r = randArray(want.length);
            const wantAcc = Float32Array.from(r);
            native.conv2dForward(c.p, y, w, null, wantAcc, true);
            const gotAcc = Float32Array.from(r);
            native.conv2dForward(c.p, x, w, null, gotAcc, true, center, scale, shift, relu);
            t.ok(gotAcc.every((v, i) => Object.is(v, wantAcc[i])), `relu ${relu}, ${threads} threads: accumulating, equal bit for bit`);
          }
        }
      }
      ms.setNumThreads(2);
    }
  });
}

// A folded norm's statistics computed by the convolution that writes its input
// (conv2dForwardNormStats, native/conv.h OutputStats): the same convolution output and the
// same statistics as conv2dForward then groupNormStats, bit for bit, on every path (the direct
// tiles compute them image by image; a batch that does not split evenly over the threads
// leaves an image for the caller), with and without an input map, accumulating or not.
for (const c of cases) {
  t.test(`${c.name}: statistics of the output computed by the convolution`, async (t) => {
    const [N, C, H, W, O, kh, kw, , , , , , , groups, wpg] = c.p;
    const outH = Math.floor((H + 2 * c.p[9] - kh) / c.p[7]) + 1;
    const outW = Math.floor((W + 2 * c.p[10] - kw) / c.p[8]) + 1;
    const spatial = outH * outW;
    const G = [4, 3, 2, 1].find((g) => O % g === 0)!;
    const x = randArray(N * C * H * W, 2, 0.3);
    const w = randArray(O * wpg * kh * kw);
    const gamma = randArray(O, 1, 1), beta = randArray(O, 0.5);
    const inMap = [randArray(N * C, 0.2), randArray(N * C, 1, 1), randArray(N * C, 0.3)];
    const outs = () => [new Float32Array(N * G), new Float32Array(N * G), new Float32Array(N * O), new Float32Array(N * O), new Float32Array(N * O)];
    for (const threads of [1, 2]) {
      ms.setNumThreads(threads);
      for (const mapped of [false, true]) {
        for (const accumulate of groups === 1 ? [false, true] : [false]) {
          const [ce, sc, sh] = mapped ? inMap : [null, null, null];
          const r = randArray(N * O * spatial);
          const want = accumulate ? Float32Array.from(r) : new Float32Array(N * O * spatial);
          native.conv2dForward(c.p, x, w, null, want, accumulate, ce, sc, sh, mapped);
          const ws = outs();
          native.groupNormStats(N, O, spatial, G, want, gamma, beta, 1e-5, ...(ws as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array]));
          const got = accumulate ? Float32Array.from(r) : new Float32Array(N * O * spatial).fill(NaN);
          const gs = outs();
          native.conv2dForwardNormStats(c.p, x, w, null, got, accumulate, ce, sc, sh, mapped, G, gamma, beta, 1e-5,
            ...(gs as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array]));
          const what = `${threads} threads, map ${mapped}, accumulate ${accumulate}`;
          t.ok(got.every((v, i) => Object.is(v, want[i])), `${what}: the output bit for bit`);
          t.ok(gs.every((a, k) => a.every((v, i) => Object.is(v, ws[k][i]))), `${what}: mean, rstd, center, scale, shift bit for bit`);
        }
      }
    }
    ms.setNumThreads(2);
  });
}

t.test('the map arguments go together and must cover every (image, channel)', async (t) => {
  const p = [2, 4, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4];
  const x = new Float32Array(2 * 4 * 36), w = new Float32Array(3 * 4 * 9), y = new Float32Array(2 * 3 * 36);
  const m = new Float32Array(8);
  t.throws(() => native.conv2dForward(p, x, w, null, y, false, m, m.slice(), null, true), { name: 'RangeError', message: /^conv2dForward: inCenter, inScale and inShift go together/ });
  t.throws(() => native.conv2dForward(p, x, w, null, y, false, m, new Float32Array(7), m.slice(), true), { name: 'RangeError', message: /^conv2dForward: inScale has 7 elements, needs 8/ });
  t.throws(() => native.groupNormStats(2, 4, 36, 3, x, null, null, 1e-5, new Float32Array(6), new Float32Array(6), m, m.slice(), m.slice()), { message: /^groupNormStats: groups must divide channels/ });
  const s6 = () => new Float32Array(6);
  t.throws(() => native.conv2dForwardNormStats(p, x, w, null, y, false, null, null, null, false, 2, null, null, 1e-5, s6(), s6(), s6(), s6(), s6()),
    { name: 'RangeError', message: /^conv2dForwardNormStats: normGroups must divide the output channels \(3 channels, 2 groups\)/ });
  t.throws(() => native.conv2dForwardNormStats(p, x, w, null, y, false, null, null, null, false, 3, null, null, 1e-5, s6(), s6(), s6(), s6(), new Float32Array(5)),
    { name: 'RangeError', message: /^conv2dForwardNormStats: shift has 5 elements, needs 6/ });
});

// The training form (a training plan's foldNormsForTraining): the weight gradient of a
// convolution reading a folded norm, conv2dBackwardWeight through the map, equals the weight
// gradient over groupNormForward's output bit for bit, on the path the unfolded gradient takes
// (an unpadded 1x1, read in place without a map, is mapped into a copy of its own layout), into
// a gw that already holds values; and the norm's backward pass with the ReLU mask recomputed
// through the map (reluCenter / reluScale / reluShift) equals it with the mask read from the
// norm's output (reluOut), for gx written, gx added to, and the parameters' gradients alone.
for (const c of cases) {
  t.test(`${c.name}: weight gradient and norm backward through the map`, async (t) => {
    const [N, C, H, W, O, kh, kw, , , , , , , , wpg] = c.p;
    const outH = Math.floor((H + 2 * c.p[9] - kh) / c.p[7]) + 1;
    const outW = Math.floor((W + 2 * c.p[10] - kw) / c.p[8]) + 1;
    const spatial = H * W;
    const G = c.normGroups;
    const x = randArray(N * C * spatial, 3, 0.7);
    const gamma = randArray(C, 1, 1), beta = randArray(C, 0.5);
    const gy = randArray(N * O * outH * outW);
    const gw0 = randArray(O * wpg * kh * kw);
    for (const relu of [true, false]) {
      const y = new Float32Array(N * C * spatial);
      const mean = new Float32Array(N * G), rstd = new Float32Array(N * G);
      native.groupNormForward(N, C, spatial, G, x, gamma, beta, 1e-5, y, mean, rstd, relu);
      const [center, scale, shift] = [0, 1, 2].map(() => new Float32Array(N * C));
      native.groupNormStats(N, C, spatial, G, x, gamma, beta, 1e-5, mean.slice(), rstd.slice(), center, scale, shift);
      for (const threads of [1, 2]) {
        ms.setNumThreads(threads);
        const want = Float32Array.from(gw0);
        native.conv2dBackwardWeight(c.p, gy, y, want);
        const unfusedPath = native.convPaths().backwardWeight;
        const got = Float32Array.from(gw0);
        native.conv2dBackwardWeight(c.p, gy, x, got, center, scale, shift, relu);
        t.equal(native.convPaths().backwardWeight, unfusedPath, `relu ${relu}, ${threads} threads: the weight gradient ran ${unfusedPath}, as unfolded`);
        t.ok(got.every((v, i) => Object.is(v, want[i])), `relu ${relu}, ${threads} threads: the weight gradient bit for bit`);
      }
      ms.setNumThreads(2);
      if (!relu) continue;
      // The norm's backward pass: the gradient of its output (what the convolutions' input
      // gradients summed), masked by the ReLU.
      const gOut = randArray(N * C * spatial);
      const gx0 = randArray(N * C * spatial);
      for (const mode of ['add', 'write', 'no gx'] as const) {
        const run = (masked: 'out' | 'map') => {
          const gx = mode === 'no gx' ? null : Float32Array.from(gx0);
          const gg = randArray(C, 0, 0.25), gb = randArray(C, 0, -0.5);
          const [ro, ce, sc, sh] = masked === 'out' ? [y, null, null, null] : [null, center, scale, shift];
          native.groupNormBackward(N, C, spatial, G, x, gOut, gamma, mean, rstd, gx, gg, gb, ro, mode !== 'write', ce, sc, sh);
          return [gx ?? new Float32Array(0), gg, gb];
        };
        const [want, got] = [run('out'), run('map')];
        t.ok(got.every((a, k) => a.every((v, i) => Object.is(v, want[k][i]))), `norm backward, ${mode}: gx, ggamma and gbeta bit for bit`);
      }
    }
  });
}

t.test('the weight gradient map and the norm backward mask are checked', async (t) => {
  const p = [2, 4, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4];
  const x = new Float32Array(2 * 4 * 36), gy = new Float32Array(2 * 3 * 36), gw = new Float32Array(3 * 4 * 9);
  const m = () => new Float32Array(8);
  t.throws(() => native.conv2dBackwardWeight(p, gy, x, gw, m(), null, m(), true), { name: 'RangeError', message: /^conv2dBackwardWeight: inCenter, inScale and inShift go together/ });
  t.throws(() => native.conv2dBackwardWeight(p, gy, x, gw, m(), m(), new Float32Array(7), true), { name: 'RangeError', message: /^conv2dBackwardWeight: inShift has 7 elements, needs 8/ });
  const s = () => new Float32Array(4);
  t.throws(() => native.groupNormBackward(2, 4, 36, 2, x, x, null, s(), s(), null, null, null, null, true, m(), m(), null),
    { name: 'RangeError', message: /^groupNormBackward: reluCenter, reluScale and reluShift go together/ });
  t.throws(() => native.groupNormBackward(2, 4, 36, 2, x, x, null, s(), s(), null, null, null, x, true, m(), m(), m()),
    { name: 'RangeError', message: /^groupNormBackward: the ReLU mask comes from reluOut or from the map, not both/ });
});
