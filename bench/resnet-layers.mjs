#!/usr/bin/env node
// Per-layer convolution times of a CIFAR-style ResNet-20 at batch 128, rate 1:
// each distinct layer shape once, forward / input gradient / weight gradient,
// best of 5 (50 at batch 4 or less), with the path each pass took (direct, implicit, small, im2col) and its
// GFLOP/s, and the whole network's total (shapes times their count). Shows which
// layer shapes a training step spends its convolution time on.
//
//   npm run build:ts && node bench/resnet-layers.mjs [--size 28|32] [--batch 128] [--depth 20|164|vgg13] [--rate 1]
//
// --depth 164: the bottleneck ResNet-164's shapes instead (--rate r: every width sliced to
// ceil(r x width), as the model runs at rate r). --depth vgg13: VGG-13's ten 3x3 layers (the
// late 4x4 and 2x2 maps at batch 1 take the few-pixel path). MODELSLICE_ISA caps the kernels
// as usual.
import { parseArgs } from 'node:util';
import * as ms from '../dist/index.js';
import { native } from '../dist/native.js';

const { values } = parseArgs({
  options: { size: { type: 'string', default: '32' }, batch: { type: 'string', default: '128' }, depth: { type: 'string', default: '20' }, rate: { type: 'string', default: '1' } },
});
const depth = values.depth === 'vgg13' ? 'vgg13' : Number(values.depth);
if (depth !== 20 && depth !== 164 && depth !== 'vgg13') throw new RangeError('--depth must be 20, 164 or vgg13');
const rate = Number(values.rate);
const w = (c) => Math.max(1, Math.ceil(c * rate));
const hw = Number(values.size);
const n = Number(values.batch);
const c0 = hw === 28 ? 1 : 3;
ms.setNumThreads(Number(process.env.MODELSLICE_NUM_THREADS ?? 2));
// [label, C, H, O, k, stride, pad, count in the network]
const resnet20 = [
  ['stem 3x3', c0, hw, w(16), 3, 1, 1, 1],
  ['16->16 3x3', w(16), hw, w(16), 3, 1, 1, 6],
  ['16->32 3x3 s2', w(16), hw, w(32), 3, 2, 1, 1],
  ['16->32 1x1 s2', w(16), hw, w(32), 1, 2, 0, 1],
  ['32->32 3x3', w(32), hw / 2, w(32), 3, 1, 1, 5],
  ['32->64 3x3 s2', w(32), hw / 2, w(64), 3, 2, 1, 1],
  ['32->64 1x1 s2', w(32), hw / 2, w(64), 1, 2, 0, 1],
  ['64->64 3x3', w(64), hw / 4, w(64), 3, 1, 1, 5],
];
// ResNet-164: 18 bottleneck blocks per stage (1x1 in, 3x3, 1x1 out at 4x the width); the
// stage's first block and its shortcut projection are folded into the common shapes.
const resnet164 = [
  ['stem 3x3', c0, hw, w(16), 3, 1, 1, 1],
  ['s1 1x1 in', w(64), hw, w(16), 1, 1, 0, 17],
  ['s1 3x3', w(16), hw, w(16), 3, 1, 1, 18],
  ['s1 1x1 out', w(16), hw, w(64), 1, 1, 0, 18],
  ['s2 1x1 in', w(128), hw / 2, w(32), 1, 1, 0, 17],
  ['s2 3x3', w(32), hw / 2, w(32), 3, 1, 1, 17],
  ['s2 3x3 s2', w(32), hw, w(32), 3, 2, 1, 1],
  ['s2 1x1 out', w(32), hw / 2, w(128), 1, 1, 0, 18],
  ['s3 1x1 in', w(256), hw / 4, w(64), 1, 1, 0, 17],
  ['s3 3x3', w(64), hw / 4, w(64), 3, 1, 1, 17],
  ['s3 3x3 s2', w(64), hw / 2, w(64), 3, 2, 1, 1],
  ['s3 1x1 out', w(64), hw / 4, w(256), 1, 1, 0, 18],
];
const vgg13 = [
  ['3->64 3x3', c0, hw, w(64), 3, 1, 1, 1],
  ['64->64 3x3', w(64), hw, w(64), 3, 1, 1, 1],
  ['64->128 3x3', w(64), hw / 2, w(128), 3, 1, 1, 1],
  ['128->128 3x3', w(128), hw / 2, w(128), 3, 1, 1, 1],
  ['128->256 3x3', w(128), hw / 4, w(256), 3, 1, 1, 1],
  ['256->256 3x3', w(256), hw / 4, w(256), 3, 1, 1, 1],
  ['256->512 3x3', w(256), hw / 8, w(512), 3, 1, 1, 1],
  ['512->512 3x3', w(512), hw / 8, w(512), 3, 1, 1, 1],
  ['512->512 2x2', w(512), hw / 16, w(512), 3, 1, 1, 2],
];
const layers = depth === 'vgg13' ? vgg13 : depth === 164 ? resnet164 : resnet20;
const out = (s, k, st, p) => Math.floor((s + 2 * p - k) / st) + 1;
// Best of 5, or of 50 at batch sizes up to 4 (calls of tens of microseconds).
const best = (f) => {
  f();
  let t = Infinity;
  for (let i = 0; i < (n <= 4 ? 50 : 5); i++) {
    const t0 = performance.now();
    f();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
};
const totals = [0, 0, 0];
console.log(`${depth === 'vgg13' ? 'VGG-13' : `ResNet-${depth}`} convolutions${rate === 1 ? '' : ` at rate ${rate}`}, ${c0}x${hw}x${hw}, batch ${n}, ${ms.getNumThreads()} threads: ms (GFLOP/s, path)`);
for (const [label, c, h, o, k, st, pad, count] of layers) {
  const p = [n, c, h, h, o, k, k, st, st, pad, pad, 1, 1, 1, c];
  const oh = out(h, k, st, pad);
  const x = ms.randn([n * c * h * h], { seed: 1 }).data;
  const w = ms.randn([o * c * k * k], { seed: 2 }).data;
  const gy = ms.randn([n * o * oh * oh], { seed: 3 }).data;
  const y = new Float32Array(gy.length);
  const gx = new Float32Array(x.length);
  const gw = new Float32Array(w.length);
  const gflop = (2 * n * o * oh * oh * c * k * k) / 1e9;
  const cells = [];
  [
    ['forward', () => native.conv2dForward(p, x, w, null, y)],
    ['backwardInput', () => native.conv2dBackwardInput(p, gy, w, gx, false)],
    ['backwardWeight', () => native.conv2dBackwardWeight(p, gy, x, gw)],
  ].forEach(([pass, f], i) => {
    const t = best(f);
    totals[i] += t * count;
    cells.push(`${t.toFixed(2).padStart(6)} (${(gflop / t * 1e3).toFixed(0).padStart(3)} ${native.convPaths()[pass]})`);
  });
  console.log(`${label.padEnd(14)} x${count}  ${cells.join('  ')}`);
}
console.log(`total (x count): forward ${totals[0].toFixed(1)}, input gradient ${totals[1].toFixed(1)}, weight gradient ${totals[2].toFixed(1)} ms`);
