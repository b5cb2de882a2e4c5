// The convolution's fast paths (native/conv_implicit.cc): direct tiles over a padded image
// (stride-1 rows whose output width is a multiple of 16) and the implicit GEMM (other
// stride-1 rows, and every weight gradient), each against a float64 reference through the
// raw addon: channel prefixes of a larger weight, row tails (widths that are not a
// multiple of the register tile), partial pixel tiles, panels spanning two images, depth
// blocks, dilation, vertical stride, groups, padding wider than the kernel, accumulation
// into gx / the gw prefix (the rest of gw untouched), and bitwise equality for 1 and 2 threads.
// Shapes with few output pixels take the small path (native/conv_small.cc) forward.
// Each case names the path each pass must take, and the addon reports the path it took. The
// fast paths exist where the kernels run AVX-512 or AVX2 (kernelInfo().gemm: the CPU's best,
// or lower under a MODELSLICE_ISA cap), with the same geometry and so the same paths; on the
// generic kernels every case must take the im2col path, and the numeric checks then cover
// that path instead. test/native/conv-paths-isa.test.ts runs this file again with the
// kernels capped at AVX2 and at generic.
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';

// [N, C, H, W, O, kh, kw, sH, sW, pH, pW, dH, dW, groups, weightInPerGroup]
type Params = [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];

type Path = 'direct' | 'flat' | 'implicit' | 'im2col' | 'small' | 'pointwise';

interface Case {
  name: string;
  p: Params;
  outFull: number;
  bias: boolean;
  /** The paths of the forward, input-gradient and weight-gradient passes on AVX-512 and AVX2. */
  paths: [Path, Path, Path];
  /** Where AVX2 differs (flat tiles up to 32 output channels there, 64 on AVX-512). */
  avx2Paths?: [Path, Path, Path];
  /** Without the fast paths, where not im2col (a plain 1x1 is one GEMM per image). */
  plainPaths?: [Path, Path, Path];
}

const fastPaths = ['avx512', 'avx2'].includes(ms.kernelInfo().gemm);

let seed = 987654321;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 - 0.5;
}
function randArray(n: number): Float32Array {
  return Float32Array.from({ length: n }, rand);
}

function outSize(size: number, k: number, s: number, pad: number, d: number): number {
  return Math.floor((size + 2 * pad - d * (k - 1) - 1) / s) + 1;
}

interface Geometry {
  n: number; c: number; h: number; w: number; o: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number; dh: number; dw: number; groups: number; ipg: number;
  oh: number; ow: number; cg: number; og: number;
}
function geometry(p: Params): Geometry {
  const [n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups, ipg] = p;
  return {
    n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups, ipg,
    oh: outSize(h, kh, sh, ph, dh), ow: outSize(w, kw, sw, pw, dw), cg: c / groups, og: o / groups,
  };
}

// Visits every (output, input, weight) index triple of the convolution.
function forEachTap(g: Geometry, fn: (yi: number, xi: number, wi: number) => void): void {
  for (let b = 0; b < g.n; b++)
    for (let o = 0; o < g.o; o++) {
      const grp = Math.floor(o / g.og);
      for (let yh = 0; yh < g.oh; yh++)
        for (let yw = 0; yw < g.ow; yw++) {
          const yi = ((b * g.o + o) * g.oh + yh) * g.ow + yw;
          for (let ci = 0; ci < g.cg; ci++)
            for (let i = 0; i < g.kh; i++) {
              const ih = yh * g.sh - g.ph + i * g.dh;
              if (ih < 0 || ih >= g.h) continue;
              for (let j = 0; j < g.kw; j++) {
                const iw = yw * g.sw - g.pw + j * g.dw;
                if (iw < 0 || iw >= g.w) continue;
                fn(yi, ((b * g.c + grp * g.cg + ci) * g.h + ih) * g.w + iw, ((o * g.ipg + ci) * g.kh + i) * g.kw + j);
              }
            }
        }
    }
}

// Accumulates value and |terms| per output element in float64.
class Acc {
  v: Float64Array;
  a: Float64Array;
  constructor(init: ArrayLike<number>) {
    this.v = Float64Array.from(init);
    this.a = Float64Array.from(init, Math.abs);
  }
  add(i: number, term: number): void {
    this.v[i] += term;
    this.a[i] += Math.abs(term);
  }
}

function checkClose(tt: { ok: (ok: boolean, message: string) => unknown }, got: Float32Array, ref: Acc, depth: number, what: string): void {
  let bad = -1;
  for (let i = 0; i < got.length; i++) {
    const tol = 1e-6 + (depth + 8) * 2 ** -23 * ref.a[i];
    if (!(Math.abs(got[i] - ref.v[i]) <= tol)) {
      bad = i;
      break;
    }
  }
  tt.ok(bad < 0, bad < 0 ? `${what} matches the float64 reference` : `${what}: [${bad}] ${got[bad]} vs ${ref.v[bad]}`);
}

const cases: Case[] = [
  // Direct tiles (output width a multiple of 16).
  { name: 'direct: prefixes, 11 of 13 filters (row tail), bias', p: [3, 5, 16, 16, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], outFull: 13, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 16 -> 16 of 24, 32x32', p: [2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 24], outFull: 24, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: dilation 2, padding 2', p: [2, 6, 16, 16, 8, 3, 3, 1, 1, 2, 2, 2, 2, 1, 6], outFull: 8, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: vertical stride 2', p: [2, 4, 15, 16, 6, 3, 3, 2, 1, 1, 1, 1, 1, 1, 4], outFull: 6, bias: false, paths: ['direct', 'im2col', 'direct'] },
  { name: 'direct: 2 groups', p: [2, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2, 5], outFull: 10, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 5x5, partial pixel tiles (6 vectors per image)', p: [3, 3, 3, 32, 24, 5, 5, 1, 1, 2, 2, 1, 1, 1, 3], outFull: 24, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 9x9 kernel (81 taps)', p: [2, 2, 16, 16, 7, 9, 9, 1, 1, 4, 4, 1, 1, 1, 2], outFull: 7, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 24 filters, 5 vectors per image', p: [3, 4, 5, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4], outFull: 32, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 4 of 6 filters (the 4 x 5 tile), 28x28, bias', p: [2, 4, 28, 28, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4], outFull: 6, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 3 of 5 filters (4 x 5 tile, rows beyond 3), 30x30', p: [3, 7, 30, 30, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 9], outFull: 5, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct: 1x1 kernel with padding 1', p: [2, 33, 4, 30, 17, 1, 1, 1, 1, 1, 1, 1, 1, 1, 40], outFull: 20, bias: true, paths: ['direct', 'implicit', 'direct'] },
  // Implicit GEMM (other widths), including a depth of two blocks and panels across images.
  { name: 'flat: 70 channels, 9x9 images (backward-input: 70 rows, implicit)', p: [3, 70, 9, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 72], outFull: 12, bias: true, paths: ['flat', 'implicit', 'implicit'] },
  { name: 'implicit: 70 channels (two depth blocks), 5x5 images (flat vectors would waste half)', p: [3, 70, 5, 5, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 72], outFull: 12, bias: true, paths: ['implicit', 'implicit', 'implicit'] },
  { name: 'flat: 20x7, no padding, 16 filters', p: [3, 6, 7, 20, 16, 3, 3, 1, 1, 0, 0, 1, 1, 1, 6], outFull: 16, bias: true, paths: ['flat', 'flat', 'flat'] },
  { name: 'flat: padding wider than the kernel', p: [2, 3, 6, 16, 5, 3, 3, 1, 1, 3, 3, 1, 1, 1, 3], outFull: 5, bias: false, paths: ['flat', 'implicit', 'flat'] },
  { name: 'flat: 1x1 kernel with padding 1, 7x7', p: [3, 33, 7, 7, 17, 1, 1, 1, 1, 1, 1, 1, 1, 1, 33], outFull: 17, bias: false, paths: ['flat', 'implicit', 'flat'] },
  { name: 'direct: 16x16 images (6 x 4 tiles), 64 filters', p: [2, 8, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], outFull: 64, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'implicit: vertical stride 2, dilation 2, groups 3', p: [2, 6, 11, 13, 9, 3, 3, 2, 1, 2, 1, 2, 2, 3, 2], outFull: 9, bias: true, paths: ['implicit', 'im2col', 'implicit'] },
  // Weight gradient with several pixel chunks per image.
  { name: 'flat: 10x60 images (600 pixels: two chunks of the implicit weight gradient, 594 patch rows)', p: [2, 66, 60, 10, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 66], outFull: 8, bias: false, paths: ['flat', 'implicit', 'implicit'] },
  // Rows that are not a multiple of 16 wide: the last vector of a row is masked.
  { name: 'direct, ragged rows: 28x28 (16 + 12 lanes), prefixes of 20 filters', p: [2, 6, 28, 28, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], outFull: 20, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct, ragged rows: 14x14 (one 14-lane vector per row), 32 filters', p: [3, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 16], outFull: 32, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'direct, ragged rows: 15 wide, 5x5 dilation 2, 2 groups (input rows of 23: flat)', p: [2, 4, 9, 23, 6, 5, 5, 1, 1, 2, 0, 1, 2, 2, 2], outFull: 6, bias: true, paths: ['direct', 'flat', 'direct'] },
  { name: 'direct, ragged rows: vertical stride 2, 30 wide', p: [2, 3, 11, 30, 5, 3, 3, 2, 1, 1, 1, 1, 1, 1, 3], outFull: 5, bias: false, paths: ['direct', 'im2col', 'direct'] },
  // Horizontal stride 2: the padded image's rows split into even and odd columns.
  { name: 'direct, stride 2: 28x28 -> 14x14, 3x3', p: [2, 16, 28, 28, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 16], outFull: 32, bias: true, paths: ['direct', 'direct', 'direct'] },
  // The stride-2 input gradient by phases: gx's even / odd rows and columns each a stride-1
  // convolution of gy with part of the kernel, on the direct tiles, then interleaved.
  { name: 'phases: 27x29 -> 14x15 (phases of 14 and 15 rows and columns), 7 of 9 filters', p: [2, 5, 27, 29, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 5], outFull: 9, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: 5x5 kernel, padding 2 (3 and 2 taps a side)', p: [2, 4, 28, 28, 6, 5, 5, 2, 2, 2, 2, 1, 1, 1, 4], outFull: 6, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: 4x4 kernel (an even kernel: two taps in every phase)', p: [2, 3, 30, 30, 5, 4, 4, 2, 2, 1, 1, 1, 1, 1, 3], outFull: 5, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: no padding, and padding 0 x 1', p: [2, 6, 29, 30, 4, 3, 3, 2, 2, 0, 1, 1, 1, 1, 6], outFull: 4, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: 2 groups', p: [2, 8, 28, 28, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, 4], outFull: 6, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: batch 1, 32 channels (two threads)', p: [1, 32, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 32], outFull: 32, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: 1x3 kernel (no tap reaches the odd rows: written as zeros, or left when adding)', p: [2, 5, 28, 28, 6, 1, 3, 2, 2, 0, 1, 1, 1, 1, 5], outFull: 6, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'phases: 1x1 stays on im2col', p: [2, 8, 28, 28, 6, 1, 1, 2, 2, 0, 0, 1, 1, 1, 8], outFull: 6, bias: false, paths: ['direct', 'im2col', 'direct'] },
  { name: 'direct, stride 2: 1x1, 31 wide -> 16', p: [2, 5, 9, 31, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, 5], outFull: 9, bias: false, paths: ['direct', 'im2col', 'direct'] },
  { name: 'direct, stride 2: odd padding, 3x5 taps, dilation 2 across', p: [2, 3, 10, 33, 4, 3, 5, 2, 2, 1, 3, 1, 2, 1, 3], outFull: 4, bias: true, paths: ['direct', 'im2col', 'direct'] },
  // Stride 2 to short rows: the forward pass over the padded image's four phase planes.
  { name: 'flat, stride 2: 14x14 -> 7x7', p: [2, 8, 14, 14, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 8], outFull: 8, bias: false, paths: ['flat', 'im2col', 'flat'] },
  { name: 'flat, stride 2: 15x15 -> 8x8 (odd padded size), 21 of 24 filters, bias', p: [3, 5, 15, 15, 21, 3, 3, 2, 2, 1, 1, 1, 1, 1, 5], outFull: 24, bias: true, paths: ['flat', 'im2col', 'flat'] },
  { name: 'flat, stride 2: 15x14 -> 6x6, no padding, 5x4 kernel', p: [2, 4, 15, 14, 6, 5, 4, 2, 2, 0, 0, 1, 1, 1, 4], outFull: 6, bias: false, paths: ['flat', 'im2col', 'flat'] },
  { name: 'flat, stride 2: dilation 2 (every tap in phase 0), padding 2, 2 groups', p: [2, 8, 14, 14, 6, 3, 3, 2, 2, 2, 2, 2, 2, 2, 4], outFull: 6, bias: true, paths: ['flat', 'im2col', 'flat'] },
  { name: 'stride 2, 1x1 to 7x7 stays on im2col (one tap: the phase copy costs more)', p: [2, 8, 14, 14, 8, 1, 1, 2, 2, 0, 0, 1, 1, 1, 8], outFull: 8, bias: false, paths: ['im2col', 'im2col', 'im2col'] },
  // Batch 1 with more vector tiles than the threads need: the threads split the image's vectors.
  { name: 'direct: batch 1, 40x32, 16 of 20 channels (the threads split the vectors)', p: [1, 16, 40, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 20], outFull: 16, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'flat: batch 1, 48x8 (the threads split the flat vectors)', p: [1, 32, 48, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 32], outFull: 32, bias: false, paths: ['flat', 'flat', 'flat'] },
  { name: 'flat: 48 filters on 7x7 (AVX2: flat only up to 32)', p: [2, 8, 7, 7, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], outFull: 50, bias: true, paths: ['flat', 'flat', 'flat'], avx2Paths: ['implicit', 'flat', 'flat'] },
  { name: '7x7 images take the flat tiles (a 16-lane vector per row would waste 9)', p: [2, 8, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8], outFull: 8, bias: false, paths: ['flat', 'flat', 'flat'] },
  { name: 'direct: 14x14, batch 7: the weight gradient sums passes of 4 and 3 images', p: [7, 5, 14, 14, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 5], outFull: 10, bias: false, paths: ['direct', 'direct', 'direct'] },
  { name: 'im2col weight gradient, images side by side: 7x7 outputs, batch 23 (passes of 21 and 2), 2 groups of 65 channels (585 patch rows: not flat)', p: [23, 130, 13, 13, 10, 3, 3, 2, 2, 1, 1, 1, 1, 2, 65], outFull: 10, bias: false, paths: ['flat', 'im2col', 'im2col'] },
  // Few output pixels (native/conv_small.cc): weight rows in place times gathered patches.
  { name: 'small: 2x2 at batch 1, 500 of 512 filters, 509 of 512 channels (the weight stream)', p: [1, 509, 2, 2, 500, 3, 3, 1, 1, 1, 1, 1, 1, 1, 512], outFull: 512, bias: true, paths: ['small', 'implicit', 'implicit'] },
  { name: 'small: 4x4, 13 of 16 filters (row tail), 70 of 72 channels (K tail), bias', p: [1, 70, 4, 4, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 72], outFull: 16, bias: true, paths: ['small', 'implicit', 'implicit'] },
  { name: 'small: stride 2, 7x7 -> 4x4, dilation 2 across, 2 groups', p: [1, 6, 7, 7, 10, 3, 3, 2, 2, 1, 2, 1, 2, 2, 4], outFull: 10, bias: false, paths: ['small', 'im2col', 'im2col'] },
  { name: 'small: 5 images of one pixel (5x5 kernel, no padding; a patch tile of 1)', p: [5, 6, 5, 5, 9, 5, 5, 1, 1, 0, 0, 1, 1, 1, 6], outFull: 9, bias: true, paths: ['small', 'implicit', 'implicit'] },
  { name: 'small: 8x8 at batch 2 with 1 MiB of weight (128 pixels)', p: [2, 128, 8, 8, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 128], outFull: 256, bias: false, paths: ['small', 'implicit', 'implicit'] },
  // Unpadded 1x1 weight gradients read the image in place (no padded copy), and gy in place
  // when few tiles read it (5 input channels: one column of tiles) or copied (64: eleven).
  // (AVX2 keeps plain 1x1 layers on the per-image GEMMs.)
  { name: 'direct: unpadded 1x1, 64x13, 5 -> 32 of 36 (weight gradient reads x and gy in place)', p: [16, 5, 64, 13, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, 6], outFull: 36, bias: false, paths: ['direct', 'direct', 'direct'], avx2Paths: ['pointwise', 'pointwise', 'pointwise'], plainPaths: ['pointwise', 'pointwise', 'pointwise'] },
  { name: 'direct: unpadded 1x1, 28x28, 64 -> 24 (weight gradient reads x in place, copies gy)', p: [2, 64, 28, 28, 24, 1, 1, 1, 1, 0, 0, 1, 1, 1, 64], outFull: 24, bias: true, paths: ['direct', 'direct', 'direct'], avx2Paths: ['pointwise', 'pointwise', 'pointwise'], plainPaths: ['pointwise', 'pointwise', 'pointwise'] },
  { name: 'direct: 1 channel, 28x28 (the MNIST stem: gy read in place on AVX2 too)', p: [3, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1], outFull: 16, bias: true, paths: ['direct', 'direct', 'direct'] },
  // At batch 1 a few vector tiles also split their output rows between the threads.
  { name: 'direct: batch 1, 32 -> 30 of 32, 16x16 (rows split between threads)', p: [1, 32, 16, 16, 30, 3, 3, 1, 1, 1, 1, 1, 1, 1, 32], outFull: 32, bias: true, paths: ['direct', 'direct', 'direct'] },
  { name: 'flat: batch 1, 64 -> 45, 8x8 (rows split between threads)', p: [1, 64, 8, 8, 45, 3, 3, 1, 1, 1, 1, 1, 1, 1, 64], outFull: 48, bias: true, paths: ['flat', 'flat', 'flat'], avx2Paths: ['implicit', 'implicit', 'flat'] },
  { name: 'direct: 32x20 images, weight gradient over 640 pixels', p: [2, 3, 20, 32, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 3], outFull: 8, bias: false, paths: ['direct', 'direct', 'direct'] },
];

function run(c: Case): { y: Float32Array; gx: Float32Array; gw: Float32Array; taken: [string, string, string] } & Record<string, unknown> {
  const g = geometry(c.p);
  const x = randArray(g.n * g.c * g.h * g.w);
  const w = randArray(c.outFull * g.ipg * g.kh * g.kw);
  const bias = c.bias ? randArray(c.outFull) : null;
  const gy = randArray(g.n * g.o * g.oh * g.ow);
  const gx0 = randArray(x.length);
  const gw0 = randArray(w.length);
  const y = new Float32Array(gy.length).fill(NaN);
  native.conv2dForward(c.p, x, w, bias, y);
  const gx = gx0.slice();
  native.conv2dBackwardInput(c.p, gy, w, gx);
  const gw = gw0.slice();
  native.conv2dBackwardWeight(c.p, gy, x, gw);
  const p = native.convPaths();
  return { y, gx, gw, x, w, bias, gy, gx0, gw0, taken: [p.forward, p.backwardInput, p.backwardWeight] };
}

/** conv2dForward with a residual r equals the convolution then `y + r`, bit for bit (y written, NaN there unread). */
function residualLikeAdd(p: Params, x: Float32Array, w: Float32Array, bias: Float32Array | null, size: number): boolean {
  const r = randArray(size);
  const plain = new Float32Array(size);
  native.conv2dForward(p, x, w, bias, plain);
  const want = plain.map((v, i) => Math.fround(v + r[i]));
  const got = new Float32Array(size).fill(NaN);
  native.conv2dForward(p, x, w, bias, got, false, null, null, null, false, r);
  return Buffer.compare(Buffer.from(want.buffer), Buffer.from(got.buffer)) === 0;
}

/** conv2dBackwardInput(accumulate false) into NaN equals accumulating into zeros, bitwise. */
function writesLikeZeroed(p: Params, gy: Float32Array, w: Float32Array, size: number): boolean {
  const zeroed = new Float32Array(size);
  native.conv2dBackwardInput(p, gy, w, zeroed);
  const written = new Float32Array(size).fill(NaN);
  native.conv2dBackwardInput(p, gy, w, written, false);
  return Buffer.compare(Buffer.from(zeroed.buffer), Buffer.from(written.buffer)) === 0;
}

t.test('backward input with accumulate false, and forward with a residual, on the pointwise, im2col and depthwise paths', async (tt) => {
  const shapes: [string, Params][] = [
    ['pointwise 1x1', [2, 8, 5, 6, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1, 8]],
    ['im2col, stride 2 (pixels no window covers)', [2, 5, 9, 9, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, 5]],
    ['im2col, 3x3 stride 2', [2, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 4]],
    ['depthwise', [2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, 1]],
  ];
  for (const [name, p] of shapes) {
    const g = geometry(p);
    const gy = randArray(g.n * g.o * g.oh * g.ow);
    const w = randArray(g.o * g.ipg * g.kh * g.kw);
    tt.ok(writesLikeZeroed(p, gy, w, g.n * g.c * g.h * g.w), `${name}: the sum into zeros, bit for bit`);
    const x = randArray(g.n * g.c * g.h * g.w);
    tt.ok(residualLikeAdd(p, x, w, randArray(g.o), gy.length), `${name}: forward with a residual (and a bias) as the convolution, then the add`);
  }
  // A residual with accumulate, or overlapping y, is refused before anything runs.
  const p: Params = [2, 8, 5, 6, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1, 8];
  const x = randArray(2 * 8 * 30), w = randArray(12 * 8), y = new Float32Array(2 * 12 * 30);
  tt.throws(() => native.conv2dForward(p, x, w, null, y, true, null, null, null, false, new Float32Array(y.length)), /residual needs accumulate false/);
  tt.throws(() => native.conv2dForward(p, x, w, null, y, false, null, null, null, false, y), /overlap/);
  tt.throws(() => native.conv2dForward(p, x, w, null, y, false, null, null, null, false, new Float32Array(5)), /residual/);
});

for (const c of cases) {
  t.test(c.name, async (tt) => {
    const g = geometry(c.p);
    seed = 12345;
    const r = run(c);
    const want = fastPaths ? (ms.kernelInfo().gemm === 'avx2' ? (c.avx2Paths ?? c.paths) : c.paths) : (c.plainPaths ?? (['im2col', 'im2col', 'im2col'] as const));
    tt.same(r.taken, want, `paths taken (forward, input gradient, weight gradient) on ${fastPaths ? ms.kernelInfo().gemm : `${ms.kernelInfo().gemm}, without the fast paths`}`);
    const x = r.x as Float32Array, w = r.w as Float32Array, bias = r.bias as Float32Array | null, gy = r.gy as Float32Array;
    const refY = new Acc(new Float64Array(r.y.length).map((_, i) => (bias ? bias[Math.floor(i / (g.oh * g.ow)) % g.o] : 0)));
    const refGx = new Acc(r.gx0 as Float32Array);
    const refGw = new Acc(r.gw0 as Float32Array);
    const touched = new Uint8Array(w.length);
    forEachTap(g, (yi, xi, wi) => {
      refY.add(yi, x[xi] * w[wi]);
      refGx.add(xi, gy[yi] * w[wi]);
      refGw.add(wi, gy[yi] * x[xi]);
      touched[wi] = 1;
    });
    checkClose(tt, r.y, refY, g.cg * g.kh * g.kw, 'forward');
    checkClose(tt, r.gx, refGx, g.og * g.kh * g.kw, 'backward input (accumulated into gx)');
    checkClose(tt, r.gw, refGw, g.n * g.oh * g.ow, 'backward weight (accumulated into the prefix)');
    // Outside the prefix (filters >= O, or input channels >= C / groups), gw is untouched.
    let outside = 0, changed = 0;
    const gw0 = r.gw0 as Float32Array;
    for (let o = 0; o < c.outFull; o++)
      for (let ci = 0; ci < g.ipg; ci++)
        for (let k = 0; k < g.kh * g.kw; k++) {
          const i = (o * g.ipg + ci) * g.kh * g.kw + k;
          if (o < g.o && ci < g.cg) continue;
          outside++;
          if (Object.is(r.gw[i], gw0[i]) === false) changed++;
        }
    tt.equal(changed, 0, `${outside} weight-gradient entries outside the prefix untouched`);
    // accumulate false writes gx without reading it: NaN there must not show.
    tt.ok(writesLikeZeroed(c.p, gy, w, x.length), 'backward input with accumulate false: the sum into zeros, bit for bit');
    tt.ok(residualLikeAdd(c.p, x, w, bias, gy.length), 'forward with a residual: the convolution, then the add, bit for bit');
    // Thread-count independence.
    const before = ms.getNumThreads();
    try {
      ms.setNumThreads(1);
      seed = 12345;
      const one = run(c);
      ms.setNumThreads(2);
      seed = 12345;
      const two = run(c);
      for (const k of ['y', 'gx', 'gw'] as const) {
        const a = new Uint32Array(one[k].buffer), b = new Uint32Array(two[k].buffer);
        let diff = -1;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { diff = i; break; }
        tt.equal(diff, -1, `${k} bitwise identical with 1 and 2 threads`);
      }
    } finally {
      ms.setNumThreads(before);
    }
  });
}

t.test('weight gradients of empty batches and channel-less shapes leave gw alone (no division by a zero size)', async (tt) => {
  // [batch, inC, H, W, outC, kh, kw, sh, sw, ph, pw, dh, dw, groups, weightInPerGroup]
  for (const [name, p] of [
    ['im2col, batch 0', [0, 4, 13, 13, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 4]],
    ['direct, batch 0', [0, 4, 14, 14, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4]],
    ['im2col, no input channels', [3, 0, 13, 13, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 4]],
    ['direct, no input channels', [3, 0, 14, 14, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4]],
    ['direct, no output channels', [3, 4, 14, 14, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4]],
  ] as const) {
    const [n, c, h, w, o, kh, kw] = p; // p[14]: weight inputs per group
    const outH = Math.max(0, h - kh + 1 + 2 * p[9]), outW = Math.max(0, w - kw + 1 + 2 * p[10]);
    const gw = Float32Array.from({ length: o * p[14] * kh * kw }, (_, i) => i);
    native.conv2dBackwardWeight([...p], new Float32Array(n * o * outH * outW), new Float32Array(n * c * h * w), gw);
    tt.same(gw, Float32Array.from({ length: gw.length }, (_, i) => i), name);
  }
});
