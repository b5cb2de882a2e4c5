#!/usr/bin/env node
// Training-step benchmark: ResNet-20 on 1x28x28 (Fashion-MNIST) and 3x32x32
// (CIFAR) images and ResNet-164 on 3x32x32, batch 128, one step at rate 1 and
// one sandwich step (1 / 0.5 / 0.25), each through `fit` with training plans
// (the default), through `fit` eagerly (plan: false), and in PyTorch (the
// paper's slicing by weight views, bench/peers/torch_slicing.py, Debian's
// python3-torch). Every case runs in its own child process, the three peers
// one after the other (interleaved, on the same machine state), so each
// reports its own peak RSS; the time is the best of --reps steps after two
// warm-up steps (the first builds the plan), and the best over --rounds such
// rounds (default 2: this machine's speed drifts by up to 2x over minutes, and
// a second round gives each peer another chance at a quiet spell). For ours, the share of the step
// spent outside kernels: wall time minus the kernel profile's total.
//
//   npm run bench:train [-- --quick --reps 5 --rounds 2 --cases resnet20-28,resnet20-32,resnet164-32,charlm --micro --json]
//
// charlm: the sliced character transformer (models.transformer) against the same model in
// PyTorch sliced by weight views (bench/peers/torch_charlm.py).
//
// `npm run bench:models -- --train` runs this after the inference benchmarks.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

const CASES = {
  'resnet20-28': { depth: 20, shape: [1, 28, 28] },
  'resnet20-32': { depth: 20, shape: [3, 32, 32] },
  'resnet164-32': { depth: 164, shape: [3, 32, 32] },
  // The character transformer of models.transformer (issue 18's configuration): 4 layers,
  // d_model 256, 8 heads, feed-forward 1024, batches of 32 windows of 128 characters; AdamW,
  // the narrower rates distilled from rate 1, gradients clipped at norm 1.
  charlm: { transformer: { vocab: 65, dModel: 256, heads: 8, layers: 4, context: 128 }, batch: 32, shape: [128] },
};
const STEPS = [
  ['rate 1', [1]],
  ['sandwich 1/0.5/0.25', [1, 0.5, 0.25]],
];

/** One case in this process (the child): prints {ms, kernelMs, peakRssMiB} as JSON. */
async function child(spec) {
  const ms = await import('modelslice');
  ms.setNumThreads(spec.threads);
  ms.manualSeed(1);
  const lm = spec.transformer;
  const model = lm ? ms.models.transformer(lm) : ms.models.resnet({ depth: spec.depth, classes: 10, inputShape: spec.shape });
  const batch = spec.batch ?? 128;
  const gen = new ms.Generator(2);
  const x = lm ? ms.tensor(Array.from({ length: batch * lm.context }, () => gen.int(lm.vocab)), [batch, lm.context]) : ms.randn([batch, ...spec.shape], { seed: 2 });
  const y = lm ? Int32Array.from({ length: batch * lm.context }, () => gen.int(lm.vocab)) : Int32Array.from({ length: batch }, (_, i) => i % 10);
  const steps = spec.reps + 2;
  const data = { *[Symbol.iterator]() { for (let i = 0; i < steps; i++) yield { x, y }; } };
  // Every step at all of the case's rates.
  const schedule = ms.rateSchedule('round_robin', spec.rates);
  const optimizer = lm ? new ms.optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 }) : new ms.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const samples = [];
  let t0 = 0;
  await ms.fit(model, data, {
    epochs: 1,
    optimizer,
    schedule,
    plan: spec.plan,
    ...(lm ? { distill: true, clipGradNorm: 1 } : {}),
    microBatch: spec.micro ?? undefined,
    callbacks: {
      onBatchBegin: () => {
        ms.startKernelProfile();
        t0 = performance.now();
      },
      onBatchEnd: () => {
        const wall = performance.now() - t0;
        const kernels = Object.values(ms.stopKernelProfile()).reduce((a, k) => a + k.ms, 0);
        samples.push({ wall, kernels });
      },
    },
  });
  const best = samples.slice(2).sort((a, b) => a.wall - b.wall)[0];
  console.log(JSON.stringify({ ms: best.wall, kernelMs: best.kernels, firstMs: samples[0].wall, peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
}

function runChild(command, args, env = {}) {
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, ...env } });
  if (run.status !== 0) return { error: (run.stderr || run.error?.message || `exit ${run.status}`).slice(-1500) };
  return JSON.parse(run.stdout.trim().split('\n').pop());
}

/** Runs the benchmark; returns {rows, torch} and logs a table unless `json`. */
export function runTrainBench({ quick = false, reps = quick ? 2 : 5, rounds = quick ? 1 : 2, threads = 2, cases = Object.keys(CASES), micro = false, json = false } = {}) {
  const log = (...a) => {
    if (!json) console.log(...a);
  };
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  const torch = probe.status === 0 ? probe.stdout.trim() : null;
  if (torch === null) log('PyTorch peer: skipped (install Debian python3-torch for /usr/bin/python3)');
  // Debian's PyTorch does its linear layers through libblas.so.3, the reference BLAS unless an
  // optimised one is the alternative (a 30x slower charlm step: bench/RESULTS.md); its
  // convolutions go through oneDNN either way.
  const blas = spawnSync('/usr/bin/python3', ['-c', "import os; print(os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3'))"], { encoding: 'utf8' });
  if (torch !== null && cases.includes('charlm') && /\/blas\/libblas\.so/.test(blas.stdout ?? '')) {
    log('PyTorch peer: libblas.so.3 is the reference BLAS, so its charlm step is not a fair peer (apt-get install libopenblas0-pthread)');
  }
  log(`training steps, batch 128 (charlm: 32 x 128 characters), ${threads} threads, best of ${reps} steps after 2 warm-up steps and of ${rounds} rounds (ms); peak RSS of each child (MiB)`);
  log('case                         step                         plan    eager  PyTorch  plan/PT  eager/PT  outside kernels (plan)  RSS plan / eager / PT');
  const rows = [];
  for (const name of cases) {
    for (const [microBatch, prefix] of [[null, ''], ...(micro && name === 'resnet164-32' ? [[16, 'micro-batches of 16, ']] : [])]) {
      for (const [label, rates] of STEPS) {
        const spec = { ...CASES[name], rates, reps, threads, micro: microBatch };
        const self = fileURLToPath(import.meta.url);
        const best = (a, b) => (a === null ? b : b === null || b.error ? a : a.error || b.ms < a.ms ? b : a);
        let plan = null;
        let pt = null;
        let eager = null;
        for (let round = 0; round < rounds; round++) {
          plan = best(plan, runChild(process.execPath, [self, '--child', JSON.stringify({ ...spec, plan: true })]));
          if (torch !== null) {
            const peer = spec.transformer
              ? [join(here, 'peers', 'torch_charlm.py'), '--threads', String(threads), '--reps', String(reps), '--rates', rates.join(',')]
              : [join(here, 'peers', 'torch_slicing.py'), '--threads', String(threads), '--train-step', JSON.stringify(spec)];
            pt = best(pt, runChild('/usr/bin/python3', peer, { OMP_NUM_THREADS: String(threads) }));
          }
          eager = best(eager, runChild(process.execPath, [self, '--child', JSON.stringify({ ...spec, plan: false })]));
        }
        const row = { case: name, step: `${prefix}${label}`, plan, eager, torch: pt };
        rows.push(row);
        const f = (r) => (r && !r.error ? r.ms.toFixed(0) : 'err').padStart(7);
        const ratio = (a, b) => (a && b && !a.error && !b.error ? (a.ms / b.ms).toFixed(3) : '-').padStart(8);
        const outside = plan.error ? '-' : `${(100 * (1 - plan.kernelMs / plan.ms)).toFixed(1)}%`;
        const rss = [plan, eager, pt].map((r) => (r && !r.error ? r.peakRssMiB.toFixed(0) : '-')).join(' / ');
        log(`${(CASES[name].transformer ? name : `${name} (${CASES[name].shape.join('x')})`).padEnd(28)} ${row.step.padEnd(27)} ${f(plan)}  ${f(eager)}  ${f(pt)} ${ratio(plan, pt)}  ${ratio(eager, pt)}  ${outside.padStart(22)}  ${rss}`);
        for (const [who, r] of [['plan', plan], ['eager', eager], ['PyTorch', pt]]) if (r?.error) log(`  ${who} failed: ${r.error}`);
      }
    }
  }
  return { date: new Date().toISOString(), threads, reps, rounds, torch, rows };
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  await child(JSON.parse(args[1]));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const opt = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
  const quick = args.includes('--quick');
  const json = args.includes('--json');
  const results = runTrainBench({
    quick,
    reps: Number(opt('reps', quick ? '2' : '5')),
    rounds: Number(opt('rounds', quick ? '1' : '2')),
    threads: Number(opt('threads', '2')),
    cases: opt('cases', Object.keys(CASES).join(',')).split(','),
    micro: args.includes('--micro'),
    json,
  });
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', `train-${results.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(results, null, 2));
  renameSync(`${file}.tmp`, file);
  if (json) console.log(JSON.stringify(results));
  else console.log(`\nwrote ${file}`);
}
