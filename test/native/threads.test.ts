// Kernel threads: each calling thread (the main thread, each Node worker thread)
// has its own pool and thread count, bounded by a stated limit; a failure to
// start a thread, or any other C++ exception in a kernel, is a JavaScript error.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';

const root = new URL('../../', import.meta.url).pathname;
const addonLoader = `require(${JSON.stringify(`${root}node_modules/node-gyp-build`)})(${JSON.stringify(root)})`;

t.test('setNumThreads refuses more than 4 threads per available core (at most 256)', async (t) => {
  const limit = Math.min(256, 4 * availableParallelism());
  t.equal(ms.kernelInfo().maxThreads, limit, `the limit is ${limit}`);
  const before = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(before));
  ms.setNumThreads(limit);
  t.equal(ms.getNumThreads(), limit, 'the limit itself is accepted');
  for (const n of [limit + 1, 1024, 100000]) {
    t.throws(() => ms.setNumThreads(n), { name: 'RangeError', message: new RegExp(`^setNumThreads: n must be an integer in \\[1, ${limit}\\].*got ${n}`) });
    t.throws(() => native.setNumThreads(n), { name: 'RangeError', message: new RegExp(`^setNumThreads: n must be in \\[1, ${limit}\\].*got ${n}`) }, 'the addon refuses it too');
  }
  t.equal(ms.getNumThreads(), limit, 'a refused call changes nothing');
});

t.test('every C++ exception from a kernel becomes a JavaScript error', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['bad_alloc', 'RangeError', /^testThrowInKernel: out of memory/],
    ['system_error', 'Error', /^testThrowInKernel: the system refused a kernel resource/],
    ['logic_error', 'Error', /^testThrowInKernel: kernel failed: share 1 failed/],
    ['int', 'Error', /^testThrowInKernel: kernel failed with an unknown exception/],
  ];
  const before = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(before));
  ms.setNumThreads(2);
  for (const [kind, name, message] of cases) t.throws(() => native.testThrowInKernel(kind as never), { name, message }, kind);
  const y = ms.relu(ms.tensor([-1, 2], [2]));
  t.same([...y.data], [0, 2], 'the kernels still work afterwards');
});

t.test(
  'a kernel thread the system refuses to start is a JavaScript error, and the process lives on',
  { skip: process.platform !== 'linux' || spawnSync('prlimit', ['--version']).status !== 0 ? 'needs Linux and prlimit' : false },
  async (t) => {
    // The child runs a GEMM on one thread, then its address space is capped just above
    // what it uses (prlimit works for root too, unlike a process count limit), so the
    // next pool thread cannot get its stack.
    const script = `
      const addon = ${addonLoader};
      const fs = require('node:fs');
      const M = 256, A = new Float32Array(M * M).fill(1), C = new Float32Array(M * M);
      const gemm = () => addon.gemm(false, false, M, M, M, 1, A, 0, M, A, 0, M, 0, C, 0, M);
      addon.setNumThreads(1);
      gemm();
      const kb = /VmSize:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
      process.stdout.write('ready ' + kb + '\\n');
      process.stdin.once('data', () => {
        addon.setNumThreads(4); // within the limit on any machine (4 per core)
        let error = null;
        try { gemm(); } catch (e) { error = e.constructor.name + ': ' + e.message; }
        addon.setNumThreads(1);
        C.fill(0);
        gemm();
        process.stdout.write('result ' + JSON.stringify({ error, after: C[0] }) + '\\n');
        process.exit(0);
      });
    `;
    // The cap leaves V8 itself little room too: under memory pressure it may die of its own
    // out-of-memory before the kernel runs. That says nothing about the kernels, so such a
    // run is repeated (at most three times); an uncaught C++ exception (std::terminate) is not.
    const attempt = async (): Promise<{ code: number | null; signal: string | null; out: string; err: string }> => {
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => (err += String(d)));
      const exit = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
      child.stdout.on('data', (d) => {
        out += String(d);
        const m = /ready (\d+)/.exec(out);
        if (m !== null && !out.includes('sent')) {
          out += 'sent\n';
          execFileSync('prlimit', ['--pid', String(child.pid), `--as=${(Number(m[1]) + 4096) * 1024}`]);
          child.stdin.write('go\n');
        }
      });
      const [code, signal] = await exit;
      return { code, signal, out, err };
    };
    let run = await attempt();
    for (let i = 1; i < 3 && !run.out.includes('result ') && !/terminate called/.test(run.err); i++) {
      t.comment(`the child died before the kernel ran (${run.signal ?? run.code}), not of a C++ exception; again:\n${run.err.slice(0, 300)}`);
      run = await attempt();
    }
    const { code, signal, out, err } = run;
    t.equal(signal, null, `the child was not killed by a signal\n${err}`);
    t.equal(code, 0, `the child exited normally\n${err}`);
    const m = /result (.*)/.exec(out);
    t.ok(m !== null, `the child reported\n${out}\n${err}`);
    const result = JSON.parse(m![1]) as { error: string | null; after: number };
    t.match(result.error, /^Error: gemm: the system refused a kernel resource \(.*\); with fewer threads \(setNumThreads\) it may fit/);
    t.equal(result.after, 256, 'the kernels still compute on the threads they have');
  },
);

// A worker that waits for the other one, then runs GEMMs on 2 kernel threads while the
// other is still running its own, noting which OS threads ran each call's shares.
const workerScript = `
  const { parentPort, workerData } = require('node:worker_threads');
  const addon = ${addonLoader};
  const { flags, me, minimum } = workerData;
  const other = 1 - me;
  addon.setNumThreads(2);
  const M = 192, A = new Float32Array(M * M).fill(1), C = new Float32Array(M * M);
  Atomics.add(flags, 4, 1);
  while (Atomics.load(flags, 4) < 2) Atomics.wait(flags, 5, 0, 1);
  const overlapping = [];
  // Run until both have done the minimum: each call below the other's finish overlaps it.
  while (Atomics.load(flags, me) < minimum || Atomics.load(flags, other) < minimum) {
    const otherBusy = Atomics.load(flags, 2 + other) === 0;
    addon.gemm(false, false, M, M, M, 1, A, 0, M, A, 0, M, 0, C, 0, M);
    if (otherBusy && Atomics.load(flags, 2 + other) === 0) overlapping.push(addon.lastParallelThreads());
    Atomics.add(flags, me, 1);
  }
  Atomics.store(flags, 2 + me, 1);
  parentPort.postMessage({ overlapping, threads: addon.getNumThreads() });
`;

t.test('two worker threads running kernels at once each use their own pool threads', async (t) => {
  const before = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(before));
  ms.setNumThreads(1);
  // flags: [0] [1] calls done by each worker, [2] [3] each finished, [4] workers started.
  const flags = new Int32Array(new SharedArrayBuffer(6 * 4));
  const results = await Promise.all(
    [0, 1].map(
      (me) =>
        new Promise<{ overlapping: number[][]; threads: number }>((resolve, reject) => {
          const w = new Worker(workerScript, { eval: true, workerData: { flags, me, minimum: 40 } });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    ),
  );
  t.equal(ms.getNumThreads(), 1, "a worker's setNumThreads does not change the main thread's count");
  const owners: Set<number>[] = [];
  results.forEach((r, me) => {
    t.equal(r.threads, 2, `worker ${me} runs with the 2 threads it asked for`);
    t.ok(r.overlapping.length >= 10, `worker ${me}: ${r.overlapping.length} calls while the other worker was busy`);
    const shortOnes = r.overlapping.filter((ids) => new Set(ids).size !== 2).length;
    t.equal(shortOnes, 0, `worker ${me}: every call while the other was busy ran on 2 distinct threads`);
    owners.push(new Set(r.overlapping.flat()));
  });
  const shared = [...owners[0]].filter((id) => owners[1].has(id));
  t.same(shared, [], 'no OS thread ran shares for both workers');
});

function taskCount(): number {
  return readdirSync('/proc/self/task').length;
}

t.test('the pool threads of exiting workers are torn down', { skip: process.platform !== 'linux' ? 'counts /proc/self/task' : false }, async (t) => {
  const runWorker = (threads: number) =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(
        `const addon = ${addonLoader};
         addon.setNumThreads(${threads});
         const M = 192, A = new Float32Array(M * M).fill(1), C = new Float32Array(M * M);
         addon.gemm(false, false, M, M, M, 1, A, 0, M, A, 0, M, 0, C, 0, M);
         if (new Set(addon.lastParallelThreads()).size !== ${threads}) throw new Error('the pool did not run');`,
        { eval: true },
      );
      w.once('error', reject);
      w.once('exit', () => resolve());
    });
  // One worker first, so threads Node starts once (for workers at all) are in the baseline.
  await runWorker(2);
  const settle = async (limit: number) => {
    for (let i = 0; i < 500 && taskCount() > limit; i++) await new Promise((r) => setTimeout(r, 10));
    return taskCount();
  };
  const baseline = await settle(0);
  for (let round = 0; round < 4; round++) await Promise.all([runWorker(4), runWorker(3), runWorker(2)]);
  const after = await settle(baseline);
  t.ok(after <= baseline, `${after} OS threads after 12 workers with 3 to 4 kernel threads each came and went (baseline ${baseline})`);
});
