// The convolution path tests again with the kernels capped below the CPU's best
// (MODELSLICE_ISA, in a child process): the AVX2 fast paths (native/conv_avx2.cc) must take the
// same paths as AVX-512 and pass the same float64 and bit-for-bit checks, the generic kernels
// the im2col paths. A cap at or above what the CPU has changes nothing, so those runs are skipped.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import * as ms from '../../src/index.js';

const here = new URL('./', import.meta.url).pathname;
const best = ms.kernelInfo().gemm;
const rank = ['generic', 'avx2', 'avx512'];
const execArgv = process.execArgv.filter((a) => a.includes('typescript') || a.includes('tsx') || a.startsWith('--import') || a.startsWith('--loader'));

for (const isa of ['avx2', 'generic']) {
  for (const file of ['conv-paths.test.ts', 'conv-norm-fold.test.ts']) {
    const skip = rank.indexOf(isa) >= rank.indexOf(best) ? `the kernels already run ${best}` : false;
    t.test(`${file} with MODELSLICE_ISA=${isa}`, { skip }, async (t) => {
      const out = spawnSync(process.execPath, [...execArgv, `${here}${file}`], {
        env: { ...process.env, MODELSLICE_ISA: isa },
        encoding: 'utf8',
        timeout: 300000,
      });
      const failures = out.stdout.split('\n').filter((l) => /^\s*not ok /.test(l));
      t.equal(out.status, 0, `exit status 0\n${failures.slice(0, 10).join('\n')}\n${out.stderr.slice(-2000)}`);
      t.equal(failures.length, 0, 'no failing assertion');
      t.match(out.stdout, new RegExp(`^\\s*ok \\d+ - .* on ${isa}\\b`, 'm'), `the child ran the ${isa} kernels`);
    });
  }
}
