#!/usr/bin/env node
// The benchmark suite (benchmark.js). Prints a table, writes JSON under
// bench/results/, and, where OpenBLAS is installed, runs it side by side
// through the native harness bench/native/gemm_bench.cc.
//
//   npm run bench [-- --suite gemm|linear|conv|peer|all] [--quick] [--json]
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Benchmark from 'benchmark';
import * as ms from 'modelslice';
import { native } from '../dist/native.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const suiteArg = args.includes('--suite') ? args[args.indexOf('--suite') + 1] : 'all';
const quick = args.includes('--quick');
const jsonOut = args.includes('--json');
const log = (...a) => {
  if (!jsonOut) console.log(...a);
};

const options = { minSamples: quick ? 3 : 8, maxTime: quick ? 0.5 : 2, initCount: 1 };

function bestSeconds(bench) {
  // The fastest sample: on a shared, noisy machine the minimum is the most
  // repeatable estimate of what the code itself costs.
  return Math.min(...bench.stats.sample);
}

function runOne(name, fn) {
  const bench = new Benchmark(name, fn, options);
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return { name, best: bestSeconds(bench), mean: bench.stats.mean, rme: bench.stats.rme, samples: bench.stats.sample.length };
}

function filled(n, gen) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = gen.uniform() - 0.5;
  return a;
}

const results = { machine: { kernels: ms.kernelInfo(), node: process.version, date: new Date().toISOString() }, gemm: [], linear: [], conv: [], peer: null };

// --- GEMM: the four reference shapes, NN and NT, 1 and 2 threads -------------
const shapes = [
  [1024, 1024, 1024],
  [64, 1024, 1024],
  [4096, 64, 576],
  [256, 256, 2304],
];

function gemmSuite() {
  const gen = new ms.Generator(7);
  log('\nsgemm (ours), GFLOP/s, best sample');
  log('threads  M x N x K             NN      NT      TN');
  for (const threads of [1, 2]) {
    ms.setNumThreads(threads);
    for (const [M, N, K] of shapes) {
      const A = filled(M * K, gen);
      const B = filled(K * N, gen);
      const C = new Float32Array(M * N);
      const flops = 2 * M * N * K;
      const row = { threads, M, N, K };
      for (const [label, ta, tb] of [['NN', false, false], ['NT', false, true], ['TN', true, false]]) {
        const lda = ta ? M : K;
        const ldb = tb ? K : N;
        const r = runOne(`gemm ${label} ${M}x${N}x${K} t${threads}`, () => native.gemm(ta, tb, M, N, K, 1, A, 0, lda, B, 0, ldb, 0, C, 0, N));
        row[label] = flops / r.best / 1e9;
      }
      results.gemm.push(row);
      log(`${String(threads).padEnd(8)} ${`${M} x ${N} x ${K}`.padEnd(18)} ${row.NN.toFixed(1).padStart(6)}  ${row.NT.toFixed(1).padStart(6)}  ${row.TN.toFixed(1).padStart(6)}`);
    }
  }
}

// --- linear: a sliced prefix vs a dense weight of the same shape vs masking ----
function linearSuite() {
  const gen = new ms.Generator(11);
  const batch = 256;
  const full = 2048;
  const width = 1024;
  const wFull = ms.tensor(filled(full * full, gen), [full, full]);
  const wDense = ms.tensor(filled(width * width, gen), [width, width]);
  const x = ms.tensor(filled(batch * width, gen), [batch, width]);
  // The masked alternative: the full-size GEMM over a zero-padded input and weight.
  const wMasked = ms.tensor(new Float32Array(full * full), [full, full]);
  for (let r = 0; r < width; r++) wMasked.data.set(wFull.data.subarray(r * full, r * full + width), r * full);
  const xPadded = ms.zeros([batch, full]);
  for (let r = 0; r < batch; r++) xPadded.data.set(x.data.subarray(r * width, (r + 1) * width), r * full);
  log(`\nlinear, batch ${batch}: first ${width}x${width} of a ${full}x${full} weight`);
  log('threads  sliced (ms)  dense (ms)  masked (ms)  sliced/dense  masked/sliced');
  for (const threads of [1, 2]) {
    ms.setNumThreads(threads);
    const sliced = runOne('sliced', () => ms.linear(x, wFull, null, { outWidth: width }));
    const dense = runOne('dense', () => ms.linear(x, wDense, null));
    const masked = runOne('masked', () => ms.linear(xPadded, wMasked, null));
    const row = { threads, batch, full, width, slicedMs: sliced.best * 1e3, denseMs: dense.best * 1e3, maskedMs: masked.best * 1e3 };
    results.linear.push(row);
    log(
      `${String(threads).padEnd(8)} ${row.slicedMs.toFixed(2).padStart(11)} ${row.denseMs.toFixed(2).padStart(11)} ${row.maskedMs.toFixed(2).padStart(12)} ${(row.slicedMs / row.denseMs).toFixed(3).padStart(13)} ${(row.maskedMs / row.slicedMs).toFixed(2).padStart(14)}`,
    );
  }
}

// --- conv2d: 3x3, 32x32, batch 64 at widths 64/32/16 of one 64 -> 64 weight ------
function convSuite() {
  const gen = new ms.Generator(13);
  const batch = quick ? 16 : 64;
  const full = 64;
  const wFull = ms.tensor(filled(full * full * 9, gen), [full, full, 3, 3]);
  log(`\nconv2d 3x3 pad 1, 32x32, batch ${batch}, 2 threads: prefixes of a ${full} -> ${full} weight`);
  log('width    sliced (ms)  GFLOP/s  dense (ms)  masked (ms)  sliced/dense  time vs full  ideal');
  ms.setNumThreads(2);
  let fullMs = 0;
  for (const width of [64, 48, 32, 16]) {
    const x = ms.tensor(filled(batch * width * 1024, gen), [batch, width, 32, 32]);
    const wDense = ms.tensor(filled(width * width * 9, gen), [width, width, 3, 3]);
    // Masked: the full-width convolution on zero-padded channels.
    const xPadded = ms.zeros([batch, full, 32, 32]);
    for (let n = 0; n < batch; n++) xPadded.data.set(x.data.subarray(n * width * 1024, (n + 1) * width * 1024), n * full * 1024);
    const sliced = runOne('sliced', () => ms.conv2d(x, wFull, null, { padding: 1, outWidth: width }));
    const dense = runOne('dense', () => ms.conv2d(x, wDense, null, { padding: 1 }));
    const masked = width === full ? sliced : runOne('masked', () => ms.conv2d(xPadded, wFull, null, { padding: 1 }));
    const flops = 2 * batch * width * width * 9 * 1024;
    if (width === full) fullMs = sliced.best * 1e3;
    const row = { width, batch, slicedMs: sliced.best * 1e3, denseMs: dense.best * 1e3, maskedMs: masked.best * 1e3, gflops: flops / sliced.best / 1e9 };
    results.conv.push(row);
    log(
      `${String(width).padEnd(8)} ${row.slicedMs.toFixed(2).padStart(11)} ${row.gflops.toFixed(1).padStart(8)} ${row.denseMs.toFixed(2).padStart(11)} ${row.maskedMs.toFixed(2).padStart(12)} ${(row.slicedMs / row.denseMs).toFixed(3).padStart(13)} ${(row.slicedMs / fullMs).toFixed(4).padStart(13)} ${((width / full) ** 2).toFixed(4).padStart(6)}`,
    );
  }
}

// --- OpenBLAS side by side, through the native harness -------------------------
function peerSuite() {
  // One build recipe for the native harnesses: native/test/build-and-run.sh checks the
  // GEMM against its reference first, then builds and runs bench/native/gemm_bench.cc.
  const run = spawnSync('sh', [join(here, '..', 'native', 'test', 'build-and-run.sh'), 'bench', '--json'], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (run.status !== 0) {
    log(`\nOpenBLAS comparison: the native harness failed or could not be built (g++ with OpenMP needed)\n${run.stderr.slice(-2000)}`);
    return;
  }
  const lines = run.stdout.trim().split('\n');
  log(`\nOpenBLAS side by side (bench/native/gemm_bench.cc; install libopenblas0 to enable)\n${lines.slice(0, -1).join('\n')}`);
  try {
    results.peer = JSON.parse(lines[lines.length - 1]);
  } catch {
    results.peer = { raw: run.stdout };
  }
}

const threadsBefore = ms.getNumThreads();
if (suiteArg === 'all' || suiteArg === 'gemm') gemmSuite();
if (suiteArg === 'all' || suiteArg === 'linear') linearSuite();
if (suiteArg === 'all' || suiteArg === 'conv') convSuite();
if (suiteArg === 'all' || suiteArg === 'peer') peerSuite();
ms.setNumThreads(threadsBefore);

const outDir = join(here, 'results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `kernels-${results.machine.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(`${file}.tmp`, JSON.stringify(results, null, 2));
renameSync(`${file}.tmp`, file);
log(`\nwrote ${file}`);
if (jsonOut) console.log(JSON.stringify(results));
