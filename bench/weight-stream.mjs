#!/usr/bin/env node
// The memory floor of a batch-1 pass: how fast this machine streams a model's weights from
// memory, and what that makes of the whole model's weights (issue 16 asks VGG-13 at batch 1 for
// at most the larger of 0.8x onnxruntime and 1.2x this time), best of --reps: a batch-1
// 512 -> 512 3x3 convolution on 4x4 (the small path, which reads each weight once) cycling
// through eight weight copies (75 MB, more than the caches hold).
//
//   npm run build:ts && node bench/weight-stream.mjs [--model vgg13] [--reps 20]
import { parseArgs } from 'node:util';
import * as ms from '../dist/index.js';
import { native } from '../dist/native.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'vgg13' }, reps: { type: 'string', default: '20' } } });
const reps = Number(values.reps);
ms.setNumThreads(Number(process.env.MODELSLICE_NUM_THREADS ?? 2));

const [c, h, o] = [512, 4, 512];
const p = [1, c, h, h, o, 3, 3, 1, 1, 1, 1, 1, 1, 1, c];
const x = ms.randn([c * h * h], { seed: 1 }).data;
const copies = Array.from({ length: 8 }, (_, i) => ms.randn([o * c * 9], { seed: 2 + i }).data);
const y = new Float32Array(o * h * h);
let conv = Infinity;
for (let r = 0; r < reps; r++) {
  for (const w of copies) {
    const t = performance.now();
    native.conv2dForward(p, x, w, null, y);
    conv = Math.min(conv, performance.now() - t);
  }
}
const convRate = (o * c * 9 * 4) / conv / 1e6; // GB/s


const model = values.model === 'vgg13' ? ms.models.vgg({ depth: 13, classes: 10, inputShape: [3, 32, 32] }) : ms.models.resnet({ depth: Number(values.model.replace('resnet', '')), classes: 10, inputShape: [3, 32, 32] });
const bytes = model.parameters().reduce((a, q) => a + q.size * 4, 0);
const rate = convRate;
console.log(`weights read by a batch-1 512->512 3x3 convolution (8 copies, ${((o * c * 9 * 32) / 2 ** 20).toFixed(0)} MiB): ${conv.toFixed(3)} ms each, ${convRate.toFixed(1)} GB/s`);
console.log(`${values.model}: ${(bytes / 1e6).toFixed(1)} MB of parameters stream in ${(bytes / rate / 1e6).toFixed(2)} ms at ${rate.toFixed(1)} GB/s; 1.2x that is ${((1.2 * bytes) / rate / 1e6).toFixed(2)} ms`);
