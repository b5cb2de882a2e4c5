#!/usr/bin/env node
// Soak test (not part of the default suite): trains a small sliced model and
// serves predictions from it for a while, and watches whether the process's
// memory levels off. The main thread keeps training (fit, one epoch at a time)
// while a Predictor worker answers a steady stream of requests at random rates
// and batch sizes; every --redeploy seconds the model is saved and a fresh
// Predictor replaces the old one, as a service would after retraining.
// RSS and the heap are sampled every --interval seconds; at the end a table is
// printed and the verdict: RSS levelled off if the maximum of the last third of
// the samples is at most --tolerance (default 10%) above the maximum of the
// middle third. Exit code 0 when it levelled off, 1 when it kept growing.
//   npm run build:ts && node scripts/soak.mjs [--seconds 120] [--interval 5]
//     [--model mlp|resnet] [--redeploy 30] [--concurrency 4] [--tolerance 0.1] [--json]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearInterval, setInterval } from 'node:timers';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    interval: { type: 'string', default: '5' },
    model: { type: 'string', default: 'mlp' },
    redeploy: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '4' },
    tolerance: { type: 'string', default: '0.1' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const interval = Number(args.interval);
const redeployEvery = Number(args.redeploy);
const concurrency = Number(args.concurrency);
const tolerance = Number(args.tolerance);
for (const [name, v, min] of [['seconds', seconds, 1], ['interval', interval, 0.1], ['redeploy', redeployEvery, 1], ['concurrency', concurrency, 1], ['tolerance', tolerance, 0]]) {
  if (!Number.isFinite(v) || v < min) {
    console.error(`soak: --${name} must be a number >= ${min}, got ${String(v)}`);
    process.exit(2);
  }
}
if (!['mlp', 'resnet'].includes(args.model)) {
  console.error(`soak: --model must be mlp or resnet, got ${args.model}`);
  process.exit(2);
}

let ms;
try {
  ms = await import('../dist/index.js');
} catch (err) {
  console.error(`soak: cannot import dist/index.js (run npm run build:ts first): ${err.message}`);
  process.exit(2);
}

const RATES = [1, 0.75, 0.5, 0.25];
const MB = 2 ** 20;

// A learnable synthetic problem, so training does real work and stays finite.
function dataset(n, shape, classes, seed) {
  const gen = new ms.Generator(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = gen.int(classes);
    for (let j = 0; j < size; j++) images[i * size + j] = gen.normal() + (j % classes === labels[i] ? 0.25 : 0);
  }
  return ms.data.makeDataset('soak', images, labels, shape, classes);
}

const spec =
  args.model === 'mlp'
    ? { build: () => ms.models.mlp({ inputs: 64, hidden: [128, 128], classes: 10 }), shape: [1, 8, 8], serveShape: [64], n: 2048, batch: 64 }
    : { build: () => ms.models.resnet({ depth: 8, classes: 10 }), shape: [3, 16, 16], serveShape: [3, 16, 16], n: 256, batch: 32 };
ms.manualSeed(1);
const model = spec.build();
const train = dataset(spec.n, spec.shape, 10, 2);
const loader = new ms.data.DataLoader(train, { batchSize: spec.batch, shuffle: true, seed: 3 });
const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.02, momentum: 0.9 });
const dir = await mkdtemp(join(tmpdir(), 'modelslice-soak-'));
const checkpoint = join(dir, 'model.safetensors');

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const deadline = seconds;
const counts = { predictions: 0, inputs: 0, epochs: 0, redeploys: 0, errors: 0 };
let lastLoss = NaN;
const samples = [];
function sample() {
  const m = process.memoryUsage();
  samples.push({ t: elapsed(), rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, ...counts, loss: lastLoss });
}

// First a short training run, so the served model is a trained sliced one.
await ms.fit(model, loader, { epochs: 1, optimizer, rates: RATES, seed: 4 });
counts.epochs++;
await ms.save(model, checkpoint);
let predictor = await ms.Predictor.create(checkpoint, { profile: false });
sample();
const sampler = setInterval(sample, interval * 1000);

// The serving side: `concurrency` request loops at random rates and batch sizes.
const gen = new ms.Generator(5);
const inputSize = spec.shape.reduce((a, b) => a * b, 1);
async function requestLoop() {
  while (elapsed() < deadline) {
    const n = 1 + gen.int(16);
    const x = new Float32Array(n * inputSize);
    for (let i = 0; i < x.length; i++) x[i] = gen.normal();
    const rate = gen.uniform() < 0.25 ? RATES[gen.int(RATES.length)] : 0.1 + 0.9 * gen.uniform();
    try {
      const p = predictor;
      const out = await p.predict(x, { rate, shape: [n, ...spec.serveShape] });
      if (out.classes.length !== n) throw new Error(`${out.classes.length} classes for ${n} inputs`);
      counts.predictions++;
      counts.inputs += n;
    } catch (err) {
      // A request caught by a redeploy's close is expected; anything else is counted and shown.
      if (!/closed/.test(err.message)) {
        counts.errors++;
        if (counts.errors <= 5) console.error(`soak: prediction failed: ${err.message}`);
      }
    }
  }
}

// The training side: epochs back to back, a redeploy every `redeployEvery` seconds.
async function trainLoop() {
  let nextRedeploy = redeployEvery;
  while (elapsed() < deadline) {
    const r = await ms.fit(model, loader, { epochs: 1, optimizer, rates: RATES, seed: 10 + counts.epochs });
    lastLoss = r.epochs[0].loss;
    counts.epochs++;
    if (elapsed() >= nextRedeploy && elapsed() < deadline) {
      nextRedeploy += redeployEvery;
      await ms.save(model, checkpoint);
      const fresh = await ms.Predictor.create(checkpoint, { profile: false });
      const old = predictor;
      predictor = fresh;
      await old.close();
      counts.redeploys++;
    }
  }
}

await Promise.all([trainLoop(), ...Array.from({ length: concurrency }, requestLoop)]);
clearInterval(sampler);
sample();
await predictor.close();
await rm(dir, { recursive: true, force: true });

// ----------------------------------------------------------------- verdict
const third = Math.floor(samples.length / 3);
const maxOf = (xs) => Math.max(...xs.map((s) => s.rss));
const middle = samples.slice(third, 2 * third);
const last = samples.slice(2 * third);
let verdict;
let ok;
if (third < 1) {
  verdict = `too few samples (${samples.length}) for a verdict: run longer or sample more often`;
  ok = false;
} else {
  const growth = maxOf(last) / maxOf(middle) - 1;
  ok = growth <= tolerance;
  verdict =
    `max RSS ${(maxOf(middle) / MB).toFixed(1)} MB in the middle third, ${(maxOf(last) / MB).toFixed(1)} MB in the last: ` +
    `${growth >= 0 ? '+' : ''}${(100 * growth).toFixed(1)}% -> ${ok ? 'levelled off' : `still growing (more than ${(100 * tolerance).toFixed(0)}%)`}`;
}

const header = ['t (s)', 'rss MB', 'heap MB', 'external MB', 'arrayBuffers MB', 'predictions', 'inputs', 'epochs', 'redeploys', 'loss'];
const rows = samples.map((s) => [
  s.t.toFixed(1), (s.rss / MB).toFixed(1), (s.heapUsed / MB).toFixed(1), (s.external / MB).toFixed(1), (s.arrayBuffers / MB).toFixed(1),
  String(s.predictions), String(s.inputs), String(s.epochs), String(s.redeploys), Number.isFinite(s.loss) ? s.loss.toPrecision(3) : '-',
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
console.log(`soak: ${args.model}, ${seconds} s, ${concurrency} request loops, redeploy every ${redeployEvery} s, kernel threads ${ms.getNumThreads()}`);
console.log(line(header));
for (const r of rows) console.log(line(r));
console.log(`errors: ${counts.errors}`);
console.log(`verdict: ${verdict}`);
if (args.json) console.log(JSON.stringify({ model: args.model, seconds, ok, verdict, errors: counts.errors, samples }));
process.exit(ok && counts.errors === 0 ? 0 : 1);
