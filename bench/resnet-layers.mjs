#!/usr/bin/env node
// Per-layer convolution times of a CIFAR-style ResNet-20 at batch 128, rate 1:
// each distinct layer shape once, forward / input gradient / weight gradient,
// best of 5, with the path each pass took (direct, implicit, im2col) and its
// GFLOP/s, and the whole network's total (shapes times their count). Shows which
// layer shapes a training step spends its convolution time on.
//
//   npm run build:ts && node bench/resnet-layers.mjs [--size 28|32] [--batch 128]
import { parseArgs } from 'node:util';
import * as ms from '../dist/index.js';
import { native } from '../dist/native.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '32' }, batch: { type: 'string', default: '128' } } });
const hw = Number(values.size);
const n = Number(values.batch);
const c0 = hw === 28 ? 1 : 3;
ms.setNumThreads(Number(process.env.MODELSLICE_NUM_THREADS ?? 2));
// [label, N, C, H, W, O, k, stride, pad, count in ResNet-20]
const layers = [
  ['stem 3x3', c0, hw, 16, 3, 1, 1, 1],
  ['16->16 3x3', 16, hw, 16, 3, 1, 1, 6],
  ['16->32 3x3 s2', 16, hw, 32, 3, 2, 1, 1],
  ['16->32 1x1 s2', 16, hw, 32, 1, 2, 0, 1],
  ['32->32 3x3', 32, hw / 2, 32, 3, 1, 1, 5],
  ['32->64 3x3 s2', 32, hw / 2, 64, 3, 2, 1, 1],
  ['32->64 1x1 s2', 32, hw / 2, 64, 1, 2, 0, 1],
  ['64->64 3x3', 64, hw / 4, 64, 3, 1, 1, 5],
];
const out = (s, k, st, p) => Math.floor((s + 2 * p - k) / st) + 1;
const best = (f) => {
  f();
  let t = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    f();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
};
const totals = [0, 0, 0];
console.log(`ResNet-20 convolutions, ${c0}x${hw}x${hw}, batch ${n}, ${ms.getNumThreads()} threads: ms (GFLOP/s, path)`);
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
