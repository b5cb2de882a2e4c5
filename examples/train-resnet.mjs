#!/usr/bin/env node
// Trains a sliceable pre-activation ResNet-20 (GroupNorm) on Fashion-MNIST and
// prints accuracy and cost at rates 1, 0.75, 0.5 and 0.25.
//
//   apt-get install dataset-fashion-mnist     # the data, under /usr/share/datasets/fashion-mnist
//   node examples/train-resnet.mjs [--epochs 10] [--clip 5] [--limit N] [--data-dir DIR] [--out DIR] [--json]
//
// The gradients of a batch (the sum over its three rates) are clipped to a global L2 norm
// of 5: without it a run can blow up after the warm-up (bench/RESULTS.md, seed 2), and
// PyTorch computes the same gradients there.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ms from 'modelslice';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    depth: { type: 'string', default: '20' },
    limit: { type: 'string' },
    'data-dir': { type: 'string' },
    'batch-size': { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.1' },
    clip: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'runs/train-resnet' },
    json: { type: 'boolean', default: false },
  },
});
const epochs = Number(values.epochs);
const seed = Number(values.seed);
const rates = [1, 0.75, 0.5, 0.25];
const log = values.json ? () => {} : console.log;
const dataOptions = values['data-dir'] ? { dataDir: values['data-dir'] } : {};

ms.manualSeed(seed);
let rawTrain = await ms.data.loadDataset('fashion-mnist', 'train', dataOptions);
if (values.limit) rawTrain = ms.data.sample(rawTrain, Number(values.limit), seed);
const stats = ms.data.pixelStats(rawTrain);
const train = new ms.data.DataLoader(ms.data.standardize(rawTrain, stats), {
  batchSize: Number(values['batch-size']),
  shuffle: true,
  seed,
  cropPadding: 2,
});
const testSet = ms.data.standardize(await ms.data.loadDataset('fashion-mnist', 'test', dataOptions), stats);
const test = new ms.data.DataLoader(testSet, { batchSize: 500 });

const model = ms.models.resnet({ depth: Number(values.depth), classes: 10, inChannels: 1 });
model.preprocess = stats;
const optimizer = new ms.optim.SGD(model.parameters(), { lr: Number(values.lr), momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const lrSchedule = new ms.optim.WarmupLR(optimizer, { warmupEpochs: 1, after: new ms.optim.CosineLR(optimizer, { totalEpochs: epochs }) });

log(`sliced ResNet-${values.depth} on ${rawTrain.length} Fashion-MNIST images, rates ${rates.join(', ')}, ${epochs} epochs`);
const started = performance.now();
await ms.fit(model, train, {
  epochs,
  optimizer,
  lrSchedule,
  rates,
  schedule: 'random_min_max',
  seed,
  clipGradNorm: Number(values.clip),
  callbacks: {
    onEpochEnd: (e) => log(`epoch ${e.epoch}/${epochs}  loss ${e.loss.toFixed(4)}  train accuracy ${(100 * e.accuracy).toFixed(2)}%  ${e.seconds.toFixed(1)} s`),
  },
});
const trainSeconds = (performance.now() - started) / 1000;
const rows = await ms.evaluate(model, test, { rates });
mkdirSync(values.out, { recursive: true });
await ms.save(model, join(values.out, 'resnet.safetensors'));
writeFileSync(join(values.out, 'resnet-rates.svg'), ms.rateTradeoffSvg(rows, `Sliced ResNet-${values.depth} on Fashion-MNIST: accuracy and cost per rate`));

if (values.json) {
  console.log(JSON.stringify({ rates: rows, trainSeconds }));
} else {
  log(`\ntest set (${testSet.length} images), ${trainSeconds.toFixed(1)} s of training`);
  log(ms.formatRateTable(rows));
}
