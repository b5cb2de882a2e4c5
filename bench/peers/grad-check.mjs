#!/usr/bin/env node
// Our gradients against PyTorch's at the same weights, on the ResNet example's own
// trajectory. Runs the recipe of examples/train-resnet.mjs (same seed handling, training
// plans as fit uses them) and at steps FROM..TO (counted from 0 over the whole run) writes
// the weights before the step, the batch, its rates and our gradient of that step (an eager
// slicedStep of a twin model at those weights: plans and eager agree bit for bit) to
// OUT.safetensors; bench/peers/torch_grad_check.py then computes PyTorch's gradients at
// those weights in float32 and float64 and prints both errors per step.
//
//   npm run build:ts && node bench/peers/grad-check.mjs --seed 2 --from 1137 --to 1142 --out /tmp/steps.safetensors
//   /usr/bin/python3 bench/peers/torch_grad_check.py /tmp/steps.safetensors
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as ms from '../../dist/index.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    from: { type: 'string', default: '0' },
    to: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '10' },
    out: { type: 'string', default: 'grad-check.safetensors' },
  },
});
const seed = Number(values.seed), from = Number(values.from), to = Number(values.to), epochs = Number(values.epochs);
const rates = [1, 0.75, 0.5, 0.25];
ms.manualSeed(seed);
const rawTrain = await ms.data.loadDataset('fashion-mnist', 'train');
const stats = ms.data.pixelStats(rawTrain);
const loader = new ms.data.DataLoader(ms.data.standardize(rawTrain, stats), { batchSize: 128, shuffle: true, seed, cropPadding: 2 });
const model = ms.models.resnet({ depth: 20, classes: 10, inChannels: 1 });
const twin = ms.models.resnet({ depth: 20, classes: 10, inChannels: 1 });
const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const lrSchedule = new ms.optim.WarmupLR(optimizer, { warmupEpochs: 1, after: new ms.optim.CosineLR(optimizer, { totalEpochs: epochs }) });
// The schedule fit would make, drawn here so each step's rates are known before it runs.
const inner = ms.rateSchedule('random_min_max', rates, { generator: new ms.Generator(seed) });
let pending = null;
const schedule = { name: inner.name, rates: inner.rates, next: () => pending, stateDict: () => inner.stateDict(), loadStateDict: (s) => inner.loadStateDict(s) };
let current = null;
let step = 0;
const out = {};
const meta = [];
const data = { length: loader.length, *[Symbol.iterator]() { for (const b of loader) { current = b; yield b; } } };
const done = new AbortController();
try {
  await ms.fit(model, data, {
    epochs, optimizer, lrSchedule, schedule, signal: done.signal,
    callbacks: {
      onBatchBegin: () => {
        pending = inner.next();
        if (step < from || step > to) return;
        const mine = twin.namedParameters();
        model.namedParameters().forEach(([name, p], i) => {
          mine[i][1].data.set(p.data);
          mine[i][1].grad = null;
          out[`step${step}.weight.${name}`] = p.detach().clone();
        });
        const losses = ms.slicedStep(twin, current.x, current.y, pending).map((r) => r.loss);
        for (const [name, p] of mine) out[`step${step}.grad.${name}`] = p.grad.detach().clone();
        out[`step${step}.x`] = current.x;
        out[`step${step}.y`] = new ms.Tensor(Float32Array.from(current.y), [current.y.length]);
        meta.push({ step, rates: pending, losses });
        console.log(`step ${step}: rates ${pending.join(', ')}, losses ${losses.map((l) => l.toFixed(4)).join(', ')}`);
      },
      onBatchEnd: () => {
        if (step++ === to) done.abort();
      },
    },
  });
} catch (err) {
  if (err.name !== 'AbortError') throw err;
}
writeFileSync(values.out, ms.serializeSafetensors(out, { steps: JSON.stringify(meta), names: JSON.stringify(model.namedParameters().map(([n]) => n)) }));
console.log(`wrote ${values.out}`);
