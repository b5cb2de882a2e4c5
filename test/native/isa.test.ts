// Every instruction-set path of the kernels, forced with MODELSLICE_ISA in a
// child process, gives the same results (to rounding) as the default one; the
// default is the one the CPU's flags call for; a misspelt MODELSLICE_ISA is refused.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';

const root = new URL('../../', import.meta.url).pathname;

// What cpuid should give here, read independently of the addon: Linux lists the CPU's
// flags (which the kernel clears when the OS does not save the vector state).
function expectedIsa(): string | null {
  if (process.arch === 'arm64') return 'generic';
  if (process.arch !== 'x64' || process.platform !== 'linux') return null;
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(/\s+/) ?? []);
  if (['avx512f', 'avx512dq', 'avx512vl', 'fma', 'avx2'].every((f) => flags.has(f))) return 'avx512';
  if (['avx2', 'fma', 'avx'].every((f) => flags.has(f))) return 'avx2';
  return 'generic';
}

interface Run {
  kernel: string;
  values: number[];
  /** Per value: the sum of the magnitudes of its terms, and how many terms. */
  scale: number[];
  terms: number[];
  stderr: string;
}

function runWith(isa: string | undefined): Run {
  const script = `
    const addon = require('node-gyp-build')(${JSON.stringify(root)});
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const M = 37, N = 131, K = 77;
    const A = Float32Array.from({ length: M * K }, rand);
    const B = Float32Array.from({ length: N * K }, rand);
    const C = new Float32Array(M * N);
    addon.gemm(false, true, M, N, K, 1, A, 0, K, B, 0, K, 0, C, 0, N);
    const scale = [], terms = [];
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let a = 0;
        for (let k = 0; k < K; k++) a += Math.abs(A[i * K + k] * B[j * K + k]);
        scale.push(a);
        terms.push(K);
      }
    const x = Float32Array.from({ length: 2 * 5 * 9 * 9 }, rand);
    const w = Float32Array.from({ length: 7 * 5 * 3 * 3 }, rand);
    const y = new Float32Array(2 * 7 * 9 * 9);
    addon.conv2dForward([2, 5, 9, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 5], x, w, null, y);
    for (let n = 0; n < 2; n++)
      for (let o = 0; o < 7; o++)
        for (let h = 0; h < 9; h++)
          for (let v = 0; v < 9; v++) {
            let a = 0;
            for (let c = 0; c < 5; c++)
              for (let i = 0; i < 3; i++)
                for (let j = 0; j < 3; j++) {
                  const ih = h - 1 + i, iw = v - 1 + j;
                  if (ih >= 0 && ih < 9 && iw >= 0 && iw < 9) a += Math.abs(x[((n * 5 + c) * 9 + ih) * 9 + iw] * w[((o * 5 + c) * 3 + i) * 3 + j]);
                }
            scale.push(a);
            terms.push(45);
          }
    console.log(JSON.stringify({ kernel: addon.kernelInfo().gemm, values: [...C, ...y], scale, terms }));
  `;
  const env = { ...process.env };
  delete env.MODELSLICE_ISA;
  if (isa !== undefined) env.MODELSLICE_ISA = isa;
  const out = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60000 });
  if (out.status !== 0) throw new Error(`child failed: ${out.stderr}`);
  return { ...JSON.parse(out.stdout.trim().split('\n').pop()!), stderr: out.stderr };
}

t.test('forced instruction sets agree with the default path', async (t) => {
  const base = runWith(undefined);
  const want = expectedIsa();
  if (want !== null) t.equal(base.kernel, want, `the default kernel is the best the CPU has (${want})`);
  else t.ok(['avx512', 'avx2', 'generic'].includes(base.kernel), `default kernel ${base.kernel}`);
  for (const isa of ['avx2', 'generic']) {
    const got = runWith(isa);
    // A cap never raises the choice above what the CPU has.
    if (base.kernel === 'generic') t.equal(got.kernel, 'generic');
    else if (isa === 'generic') t.equal(got.kernel, 'generic', 'capped at generic');
    else t.equal(got.kernel, base.kernel === 'avx512' ? 'avx2' : base.kernel, 'capped at avx2');
    // Each float32 result is within about (terms) * 2^-24 * sum|terms| of the exact
    // sum whatever the order of its additions; two of them differ by at most twice that.
    let bad = -1;
    for (let i = 0; i < base.values.length; i++) {
      const tol = (base.terms[i] + 8) * 2 ** -23 * base.scale[i];
      if (!(Math.abs(got.values[i] - base.values[i]) <= tol)) {
        bad = i;
        break;
      }
    }
    t.equal(bad, -1, bad < 0 ? `${isa}: every value within its rounding bound of the default path` : `${isa}: value ${bad} is ${got.values[bad]}, default ${base.values[bad]}, bound ${((base.terms[bad] + 8) * 2 ** -23 * base.scale[bad]).toExponential(2)}`);
  }
});

// The norm kernels are one source vectorised per instruction set (cpu.h, run_isa) with no
// fma contraction: every ISA gives the same bits. Groups of one to three of the reductions'
// 4096-value blocks, an offset, statistics, output and gradients.
function normBits(isa: string | undefined): string {
  const script = `
    const addon = require('node-gyp-build')(${JSON.stringify(root)});
    let s = 777;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const [N, C, S, G] = [2, 6, 1800, 2];
    const x = Float32Array.from({ length: N * C * S }, () => 3 + rand());
    const gy = Float32Array.from({ length: N * C * S }, rand);
    const gamma = Float32Array.from({ length: C }, () => 1 + rand()), beta = Float32Array.from({ length: C }, rand);
    const mean = new Float32Array(N * G), rstd = new Float32Array(N * G), y = new Float32Array(N * C * S);
    const center = new Float32Array(N * C), scale = new Float32Array(N * C), shift = new Float32Array(N * C);
    addon.groupNormForward(N, C, S, G, x, gamma, beta, 1e-5, y, mean, rstd, true);
    addon.groupNormStats(N, C, S, G, x, gamma, beta, 1e-5, mean, rstd, center, scale, shift);
    const gx = new Float32Array(N * C * S), gg = new Float32Array(C), gb = new Float32Array(C);
    addon.groupNormBackward(N, C, S, G, x, gy, gamma, mean, rstd, gx, gg, gb, y);
    const m = new Float32Array(C), v = new Float32Array(C);
    addon.channelMoments(N, C, S, x, m, v);
    const all = [y, mean, rstd, center, scale, shift, gx, gg, gb, m, v];
    console.log(require('node:crypto').createHash('sha256').update(Buffer.concat(all.map((a) => Buffer.from(a.buffer)))).digest('hex'));
  `;
  const env = { ...process.env };
  delete env.MODELSLICE_ISA;
  if (isa !== undefined) env.MODELSLICE_ISA = isa;
  const out = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60000 });
  if (out.status !== 0) throw new Error(`child failed: ${out.stderr}`);
  return out.stdout.trim();
}

t.test('the norm kernels give the same bits on every instruction set', async (t) => {
  const base = normBits(undefined);
  t.match(base, /^[0-9a-f]{64}$/);
  for (const isa of ['avx2', 'generic']) t.equal(normBits(isa), base, `${isa}: identical to the default path`);
});

t.test('a MODELSLICE_ISA that names no instruction set is not ignored', async (t) => {
  // The addon loaded directly warns and keeps the uncapped choice.
  const base = runWith(undefined);
  const typo = runWith('avx-2');
  t.equal(typo.kernel, base.kernel, 'the choice is not capped');
  t.match(typo.stderr, /modelslice: MODELSLICE_ISA=avx-2 names no instruction set \(accepted: avx512, avx2, generic\); using /);
  t.equal(runWith('AVX2').stderr, '', 'the accepted names, in any case, say nothing');
  // The package refuses to load with it.
  const execArgv = process.execArgv.filter((a) => a.includes('typescript') || a.includes('tsx') || a.startsWith('--import') || a.startsWith('--loader'));
  const load = (isa: string) =>
    spawnSync(process.execPath, [...execArgv, '--input-type=module', '-e', `await import(${JSON.stringify(`${root}src/index.ts`)}); console.log('loaded');`], {
      env: { ...process.env, MODELSLICE_ISA: isa },
      encoding: 'utf8',
      timeout: 60000,
    });
  const refused = load('avx-2');
  t.not(refused.status, 0, 'importing the package fails');
  t.match(refused.stderr, /RangeError: MODELSLICE_ISA: "avx-2" names no instruction set; accepted: avx512, avx2, generic \(any case\), or unset/);
  const fine = load('Generic');
  t.equal(fine.status, 0, `an accepted name loads\n${fine.stderr}`);
  t.match(fine.stdout, /loaded/);
});

t.test('the standalone GEMM check passes on every kernel', { skip: spawnSync('g++', ['--version']).status !== 0 ? 'no g++ on PATH' : false }, async (t) => {
  const out = spawnSync('sh', [`${root}native/test/build-and-run.sh`], { encoding: 'utf8', timeout: 300000 });
  t.equal(out.status, 0, `gemm_check exits 0\n${out.stdout}\n${out.stderr}`);
  t.match(out.stdout, /gemm_check: OK/);
});
