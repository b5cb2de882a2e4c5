#!/usr/bin/env node
// Model benchmarks: inference at batch 1 and 64, at rates 1, 0.75, 0.5 and
// 0.25, and with --train the training steps of bench/train.mjs, with the PyTorch peer (the paper's
// slicing by weight views, bench/peers/torch_slicing.py) run in the same
// session where Debian's python3-torch is installed, and onnxruntime-node and
// the TensorFlow.js wasm backend (bench/peers/tfjs_wasm.mjs) where their npm
// packages are installed.
//
//   npm run bench:models [-- --models resnet20,resnet164 --quick --no-peers --train --json]
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Benchmark from 'benchmark';
import * as ms from 'modelslice';
import { runTrainBench } from './train.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const quick = args.includes('--quick');
const withTrain = args.includes('--train');
const jsonOut = args.includes('--json');
const peers = !args.includes('--no-peers');
const log = (...a) => {
  if (!jsonOut) console.log(...a);
};
const rates = [1, 0.75, 0.5, 0.25];
const threads = Number(opt('threads', '2'));
ms.setNumThreads(threads);

const builders = {
  mlp: () => ({ model: ms.models.mlp({ inputs: 784, hidden: [1024, 1024], classes: 10 }), input: [784] }),
  resnet20: () => ({ model: ms.models.resnet({ depth: 20, classes: 10 }), input: [3, 32, 32] }),
  resnet56: () => ({ model: ms.models.resnet({ depth: 56, classes: 10 }), input: [3, 32, 32] }),
  resnet164: () => ({ model: ms.models.resnet({ depth: 164, classes: 10 }), input: [3, 32, 32] }),
  vgg13: () => ({ model: ms.models.vgg({ depth: 13, classes: 10 }), input: [3, 32, 32] }),
};
const names = opt('models', 'mlp,resnet20,resnet56,resnet164,vgg13').split(',');

function bestMs(fn, heavy) {
  const bench = new Benchmark('step', fn, { minSamples: quick ? 2 : heavy ? 3 : 8, maxTime: quick ? 0.5 : heavy ? 2 : 3, initCount: 1 });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return Math.min(...bench.stats.sample) * 1e3;
}

const results = { date: new Date().toISOString(), threads, kernels: ms.kernelInfo(), inference: [], eager: [], train: null, peakRssMiB: {}, peer: null };
log(`model inference, ${threads} threads, best sample (ms)`);
log('model       batch   r=1      r=0.75   r=0.5    r=0.25   t(0.5)/t(1)  t(0.25)/t(1)');
for (const name of names) {
  const { model, input } = builders[name]();
  model.eval();
  for (const batch of [1, 64]) {
    const x = ms.randn([batch, ...input], { seed: 1 });
    const row = {};
    for (const r of rates) {
      model.setSliceRate(r);
      row[r] = bestMs(() => ms.infer(model, x), batch === 64);
      results.inference.push({ model: name, batch, rate: r, ms: row[r] });
    }
    log(
      `${name.padEnd(11)} ${String(batch).padStart(5)} ${rates.map((r) => row[r].toFixed(1).padStart(8)).join(' ')}   ${(row[0.5] / row[1]).toFixed(3).padStart(10)}  ${(row[0.25] / row[1]).toFixed(3).padStart(11)}`,
    );
    // Eager (op by op, no plan) beside the plan, at batch 64: what a model that cannot be planned gets.
    if (batch === 64) {
      for (const r of [1, 0.25]) {
        model.setSliceRate(r);
        const eager = bestMs(() => ms.noGrad(() => model.forward(x)), true);
        results.eager.push({ model: name, rate: r, eagerMs: eager, planMs: row[r] });
        log(`${''.padEnd(11)} eager at r=${String(r).padEnd(4)} ${eager.toFixed(1).padStart(8)} ms = ${(eager / row[r]).toFixed(2)}x the plan`);
      }
    }
  }
  results.peakRssMiB[`${name} inference`] = process.resourceUsage().maxRSS / 1024;
}

if (peers) {
  const depths = names.filter((n) => n.startsWith('resnet')).map((n) => n.slice(6));
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0 || depths.length === 0) {
    log('\nPyTorch peer: skipped (install Debian python3-torch for /usr/bin/python3)');
  } else {
    const run = spawnSync(
      '/usr/bin/python3',
      [join(here, 'peers', 'torch_slicing.py'), '--json', '--depths', depths.join(','), '--threads', String(threads), ...(quick ? ['--reps', '2'] : [])],
      { encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, OMP_NUM_THREADS: String(threads) } },
    );
    if (run.status !== 0) {
      log(`\nPyTorch peer failed: ${run.stderr.slice(-2000)}`);
    } else {
      results.peer = JSON.parse(run.stdout.trim().split('\n').pop());
      log(`\nPyTorch ${results.peer.torch} (paper's slicing by weight views), same shapes, ours / theirs:`);
      for (const p of results.peer.inference) {
        const ours = results.inference.find((r) => r.model === p.model && r.batch === p.batch && r.rate === p.rate);
        if (ours) log(`${p.model.padEnd(10)} batch ${String(p.batch).padStart(2)} rate ${String(p.rate).padEnd(5)} ${ours.ms.toFixed(1).padStart(8)} / ${p.ms.toFixed(1).padStart(8)} ms = ${(ours.ms / p.ms).toFixed(3)}`);
      }
    }
  }
}

// onnxruntime-node running one static model per rate, exported by our own exporter.
async function ortBestMs(session, feeds, reps) {
  await session.run(feeds);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

if (peers) {
  let ort = null;
  try {
    ort = (await import('onnxruntime-node')).default;
  } catch {
    log('\nonnxruntime-node peer: skipped (npm install onnxruntime-node)');
  }
  if (ort) {
    results.onnxruntime = [];
    log(`\nonnxruntime-node (one exported model per rate, ${threads} intra-op threads), ours / theirs:`);
    for (const name of names.filter((n) => n !== 'mlp')) {
      const { model, input } = builders[name]();
      model.eval();
      for (const r of rates) {
        const bytes = ms.onnxBytes(model, { rate: r, inputShape: [1, ...input] });
        const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
        for (const batch of [1, 64]) {
          const x = ms.randn([batch, ...input], { seed: 1 });
          const feeds = { input: new ort.Tensor('float32', x.data, [batch, ...input]) };
          const theirs = await ortBestMs(session, feeds, quick ? 2 : batch === 64 ? 5 : 20);
          results.onnxruntime.push({ model: name, batch, rate: r, ms: theirs });
          const ours = results.inference.find((row) => row.model === name && row.batch === batch && row.rate === r);
          log(`${name.padEnd(10)} batch ${String(batch).padStart(2)} rate ${String(r).padEnd(5)} ${ours.ms.toFixed(1).padStart(8)} / ${theirs.toFixed(1).padStart(8)} ms = ${(ours.ms / theirs).toFixed(3)}`);
        }
      }
    }
  }
}

// TensorFlow.js wasm backend running one static narrower model per rate, built
// from our sliced models' shapes and weights (bench/peers/tfjs_wasm.mjs).
if (peers) {
  const peer = await import('./peers/tfjs_wasm.mjs');
  let tfw = null;
  try {
    tfw = await peer.loadTfjsWasm(threads);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') log('\nTensorFlow.js wasm peer: skipped (npm install @tensorflow/tfjs-core @tensorflow/tfjs-backend-wasm)');
    else log(`\nTensorFlow.js wasm peer failed: ${e?.message ?? e}`);
  }
  if (tfw) {
    try {
      results.tfjsWasm = await peer.runTfjsPeer({ names, rates, batches: [1, 64], threads, quick, builders });
      log(`\nTensorFlow.js ${tfw.version} wasm backend (one static model per rate, ${tfw.note}), ours / theirs:`);
      for (const p of results.tfjsWasm.inference) {
        const ours = results.inference.find((row) => row.model === p.model && row.batch === p.batch && row.rate === p.rate);
        if (ours) log(`${p.model.padEnd(10)} batch ${String(p.batch).padStart(2)} rate ${String(p.rate).padEnd(5)} ${ours.ms.toFixed(1).padStart(8)} / ${p.ms.toFixed(1).padStart(8)} ms = ${(ours.ms / p.ms).toFixed(3)}`);
      }
    } catch (e) {
      log(`\nTensorFlow.js wasm peer failed: ${e?.stack ?? e}`);
    }
  }
}

// Training steps, each peer in its own child process (bench/train.mjs).
if (withTrain) {
  log('');
  results.train = runTrainBench({ quick, threads, micro: true, json: jsonOut });
}

mkdirSync(join(here, 'results'), { recursive: true });
const file = join(here, 'results', `models-${results.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(`${file}.tmp`, JSON.stringify(results, null, 2));
renameSync(`${file}.tmp`, file);
log(`\nwrote ${file}`);
if (jsonOut) console.log(JSON.stringify(results));
