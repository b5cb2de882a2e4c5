// Every instruction-set path of the kernels, forced with MODELSLICE_ISA in a
// child process, gives the same results (to rounding) as the default one.
import { spawnSync } from 'node:child_process';
import t from 'tap';

const root = new URL('../../', import.meta.url).pathname;

function runWith(isa: string | undefined): { kernel: string; values: number[] } {
  const script = `
    const addon = require('node-gyp-build')(${JSON.stringify(root)});
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const M = 37, N = 131, K = 77;
    const A = Float32Array.from({ length: M * K }, rand);
    const B = Float32Array.from({ length: N * K }, rand);
    const C = new Float32Array(M * N);
    addon.gemm(false, true, M, N, K, 1, A, 0, K, B, 0, K, 0, C, 0, N);
    const x = Float32Array.from({ length: 2 * 5 * 9 * 9 }, rand);
    const w = Float32Array.from({ length: 7 * 5 * 3 * 3 }, rand);
    const y = new Float32Array(2 * 7 * 9 * 9);
    addon.conv2dForward([2, 5, 9, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 5], x, w, null, y);
    console.log(JSON.stringify({ kernel: addon.kernelInfo().gemm, values: [...C, ...y] }));
  `;
  const env = { ...process.env };
  delete env.MODELSLICE_ISA;
  if (isa !== undefined) env.MODELSLICE_ISA = isa;
  const out = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60000 });
  if (out.status !== 0) throw new Error(`child failed: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop()!);
}

t.test('forced instruction sets agree with the default path', async (t) => {
  const base = runWith(undefined);
  t.ok(['avx512', 'avx2', 'generic', 'neon'].includes(base.kernel), `default kernel ${base.kernel}`);
  for (const isa of ['avx2', 'generic']) {
    const got = runWith(isa);
    // A cap never raises the choice above what the CPU has.
    if (base.kernel === 'generic') t.equal(got.kernel, 'generic');
    else if (isa === 'generic') t.equal(got.kernel, 'generic', 'capped at generic');
    else t.equal(got.kernel, base.kernel === 'avx512' ? 'avx2' : base.kernel, 'capped at avx2');
    let worst = 0;
    for (let i = 0; i < base.values.length; i++) worst = Math.max(worst, Math.abs(got.values[i] - base.values[i]));
    t.ok(worst < 1e-4, `${isa}: largest difference ${worst.toExponential(2)} from the default path`);
  }
});

t.test('the standalone GEMM check passes on every kernel', { skip: spawnSync('g++', ['--version']).status !== 0 ? 'no g++ on PATH' : false }, async (t) => {
  const out = spawnSync('sh', [`${root}native/test/build-and-run.sh`], { encoding: 'utf8', timeout: 300000 });
  t.equal(out.status, 0, `gemm_check exits 0\n${out.stdout}\n${out.stderr}`);
  t.match(out.stdout, /gemm_check: OK/);
});
