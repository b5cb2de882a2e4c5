#!/usr/bin/env node
// Loads the prebuilt addon (never a local build/: the caller removes it first) and runs a
// GEMM against a JS reference on every kernel path the CPU allows (MODELSLICE_ISA caps the
// path; capping above what the CPU has is harmless). Used by the release workflow on each
// platform right after building its prebuild.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const nodeGypBuild = require('node-gyp-build');

if (process.argv[2] !== '--child') {
  const file = nodeGypBuild.resolve(root);
  console.log(`prebuild: ${file}`);
  if (!/[\\/]prebuilds[\\/]/.test(file)) {
    console.error('smoke-prebuild: node-gyp-build chose a local build, not a prebuild (remove build/ first)');
    process.exit(1);
  }
  let failed = false;
  for (const isa of ['', 'avx2', 'generic']) {
    const env = { ...process.env, MODELSLICE_ISA: isa };
    if (!isa) delete env.MODELSLICE_ISA;
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child'], { env, stdio: 'inherit' });
    if (r.status !== 0) failed = true;
  }
  process.exit(failed ? 1 : 0);
}

const addon = nodeGypBuild(root);
const M = 67, N = 45, K = 129;
let s = 1;
const rand = () => ((s = (s * 48271) % 2147483647) / 2147483647) - 0.5;
const A = Float32Array.from({ length: M * K }, rand);
const B = Float32Array.from({ length: K * N }, rand);
const C = new Float32Array(M * N);
addon.gemm(false, false, M, N, K, 1, A, 0, K, B, 0, N, 0, C, 0, N);
let err = 0;
for (let i = 0; i < M; i++) {
  for (let j = 0; j < N; j++) {
    let ref = 0;
    for (let k = 0; k < K; k++) ref += A[i * K + k] * B[k * N + j];
    err = Math.max(err, Math.abs(ref - C[i * N + j]));
  }
}
const info = addon.kernelInfo();
console.log(`  MODELSLICE_ISA=${process.env.MODELSLICE_ISA ?? '(unset)'}: ${JSON.stringify(info)}, max error ${err.toExponential(2)}`);
if (!(err < 1e-4)) {
  console.error('smoke-prebuild: GEMM result differs from the reference');
  process.exit(1);
}
