#!/usr/bin/env node
// The kernels capped at AVX2 (MODELSLICE_ISA=avx2) against the CPU's best, side by side:
// inference through ms.infer at each rate, every instruction set in its own child process
// (the choice is fixed when the addon loads), the children alternating round by round so a
// noisy neighbour slows both alike; the best time of each is kept.
//
//   node bench/isa.mjs [--models resnet164] [--batch 64] [--rounds 3] [--reps 5] [--isas default,avx2] [--json]
//
// An entry of --isas may name another built checkout after an @ (avx2@/tmp/old: that
// checkout's dist/ and addon, capped at AVX2), to compare builds the same way.
// Needs `npm run build` (dist/ and the addon).
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'resnet164' },
    batch: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    reps: { type: 'string', default: '5' },
    isas: { type: 'string', default: 'default,avx2' },
    threads: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
    root: { type: 'string', default: new URL('..', import.meta.url).pathname },
  },
});
const rates = [1, 0.75, 0.5, 0.25];

if (values.child) {
  const ms = await import(new URL('dist/index.js', `file://${values.root.replace(/\/?$/, '/')}`).href);
  ms.setNumThreads(Number(values.threads));
  const out = { kernels: ms.kernelInfo().gemm, ms: {} };
  for (const name of values.models.split(',')) {
    const depth = Number(/^resnet(\d+)$/.exec(name)?.[1]);
    const model = name.startsWith('vgg') ? ms.models.vgg({ depth: Number(name.slice(3)), classes: 10 }) : ms.models.resnet({ depth, classes: 10 });
    model.eval();
    const x = ms.randn([Number(values.batch), 3, 32, 32], { seed: 1 });
    for (const r of rates) {
      model.setSliceRate(r);
      ms.infer(model, x);
      let best = Infinity;
      for (let i = 0; i < Number(values.reps); i++) {
        const t0 = performance.now();
        ms.infer(model, x);
        best = Math.min(best, performance.now() - t0);
      }
      out.ms[`${name} ${r}`] = best;
    }
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const isas = values.isas.split(',');
const best = {};
const kernels = {};
for (let round = 0; round < Number(values.rounds); round++) {
  for (const entry of isas) {
    const [isa, root] = entry.split('@');
    const env = { ...process.env };
    delete env.MODELSLICE_ISA;
    if (isa !== 'default') env.MODELSLICE_ISA = isa;
    const args = [new URL(import.meta.url).pathname, '--child', '--models', values.models, '--batch', values.batch, '--reps', values.reps, '--threads', values.threads, ...(root ? ['--root', root] : [])];
    const run = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`child (${entry}) failed: ${run.stderr}`);
    const got = JSON.parse(run.stdout.trim().split('\n').pop());
    kernels[entry] = got.kernels;
    best[entry] ??= {};
    for (const [k, v] of Object.entries(got.ms)) best[entry][k] = Math.min(best[entry][k] ?? Infinity, v);
  }
}
const rows = Object.keys(best[isas[0]]).map((key) => ({ case: key, ms: Object.fromEntries(isas.map((i) => [i, best[i][key]])) }));
if (values.json) {
  console.log(JSON.stringify({ batch: Number(values.batch), threads: Number(values.threads), kernels, rows }, null, 2));
} else {
  console.log(`ms.infer, batch ${values.batch}, ${values.threads} threads, best of ${values.rounds} rounds x ${values.reps} (ms); kernels: ${isas.map((i) => `${i} = ${kernels[i]}`).join(', ')}`);
  console.log(`model / rate        ${isas.map((i) => i.padStart(9)).join(' ')}   ${isas.slice(1).map((i) => `${i}/${isas[0]}`).join(' ')}`);
  for (const r of rows)
    console.log(`${r.case.padEnd(18)} ${isas.map((i) => r.ms[i].toFixed(1).padStart(9)).join(' ')}   ${isas.slice(1).map((i) => (r.ms[i] / r.ms[isas[0]]).toFixed(2).padStart(9)).join(' ')}`);
}
