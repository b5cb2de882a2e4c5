// Programs (src/program.ts): a plan's native calls bound once in the addon give what the calls
// give one by one; a bad call is refused when compiled, by the kernel's own checks; a program
// never follows a pointer into a detached buffer; JavaScript kernels and dynamic calls run in
// order between its ranges; a kernel profile still sees every call.
import t from 'tap';
import { captureCalls, type CapturedStep } from '../src/capture.js';
import { js } from '../src/js-kernels.js';
import { native, startKernelProfile, stopKernelProfile } from '../src/native.js';
import { Program } from '../src/program.js';

/** The calls fn makes, recorded as a plan records them (and run). */
function record(fn: () => void): CapturedStep[] {
  return captureCalls(fn).capture.steps;
}

function filled(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 31 + i * 0.7));
}

t.test('a program computes what its calls compute, JavaScript kernels and dynamic calls in order between its ranges', async (t) => {
  const [M, N, K] = [5, 37, 19];
  const a = filled(M * K, 1);
  const w = filled(N * K, 2);
  const bias = filled(N, 3);
  const y = new Float32Array(M * N);
  const z = new Float32Array(M * N);
  const steps = record(() => {
    native.gemm(false, true, M, N, K, 1, a, 0, K, w, 0, K, 0, y, 0, N);
    native.addRowBias(M, N, bias, y, N);
    js.fill(3, 0.5, z); // a JavaScript kernel between two ranges
    native.relu(y, z);
    native.axpy(M * N, -2, y, z);
  });
  const want = z.slice();
  const wantY = y.slice();
  y.fill(NaN);
  z.fill(NaN);
  const dynamic = new Set([steps[3]]); // relu: run from JavaScript, as a decode step's patched calls are
  const program = new Program(steps, dynamic);
  t.equal(program.compiled, 3, 'gemm, addRowBias and axpy are bound in the addon');
  program.run();
  t.same(Array.from(y), Array.from(wantY), 'the same products, bit for bit');
  t.same(Array.from(z), Array.from(want), 'and the same result after every call');
  // The bound calls read the arrays as they are at each run.
  a.set(filled(M * K, 9));
  program.run();
  const fresh = new Float32Array(M * N);
  native.gemm(false, true, M, N, K, 1, a, 0, K, w, 0, K, 0, fresh, 0, N);
  native.addRowBias(M, N, bias, fresh, N);
  t.same(Array.from(y), Array.from(fresh), 'a second run reads the new inputs');
});

t.test('a bad call is refused when the program is compiled, by its kernel, and nothing runs', async (t) => {
  const y = new Float32Array(4);
  const short = new Float32Array(3);
  const steps = record(() => native.relu(new Float32Array(4), y));
  // The same call with a buffer too short for it, as a broken pass could record it.
  const bad: CapturedStep = { ...steps[0], args: [new Float32Array(4), short] };
  t.throws(() => new Program([bad]), { name: 'RangeError', message: /relu: .*y/ }, 'the kernel names the argument');
  t.throws(() => native.planCompile([['noSuchKernel', []]]), { name: 'RangeError', message: /planCompile: call 0: no kernel noSuchKernel/ });
  t.throws(() => native.planCompile([['relu']] as unknown as [string, unknown[]][]), { name: 'TypeError', message: /call 0 must be \[name, args\]/ });
  t.throws(() => native.planCompile('gemm' as unknown as [string, unknown[]][]), { name: 'TypeError' });
  t.throws(() => native.planRun({}, 0, 0), { name: 'TypeError', message: /planRun: program must be what planCompile returned/ });
  const out = new Float32Array(2);
  const p = native.planCompile([['relu', [Float32Array.from([-1, 2]), out]]]);
  t.throws(() => native.planRun(p, 0, 2), { name: 'RangeError', message: /\[0, 2\) is outside the program's 1 calls/ });
  t.throws(() => native.planRun(p, 1, 0), RangeError);
  t.same(Array.from(out), [0, 0], 'a refused range runs nothing');
  native.planRun(p, 0, 1);
  t.same(Array.from(out), [0, 2], 'a good range runs');
});

t.test('a program refuses to run once a buffer it holds was detached, and the process survives', async (t) => {
  const x = filled(1024, 4);
  const y = new Float32Array(1024);
  const program = new Program(record(() => native.relu(x, y)));
  program.run();
  structuredClone(y.buffer, { transfer: [y.buffer] }); // y's memory now belongs to the clone
  t.equal(y.length, 0, 'the array was detached');
  t.throws(() => program.run(), /detached or resized .* the plan must be built again/);
  t.throws(() => program.run(), /detached/, 'every time');
});

t.test('while a kernel profile is recorded, a program runs call by call', async (t) => {
  const x = filled(64, 5);
  const y = new Float32Array(64);
  const program = new Program(record(() => {
    native.relu(x, y);
    native.axpy(64, 1, x, y);
  }));
  startKernelProfile();
  program.run();
  const profile = stopKernelProfile();
  t.equal(profile.relu?.calls, 1);
  t.equal(profile.axpy?.calls, 1);
  t.equal(profile.planRun, undefined, 'no program run hides them');
});
