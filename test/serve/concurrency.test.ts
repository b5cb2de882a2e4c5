// Concurrency: forward passes from several worker threads at once (each loads
// the addon and the model) give bitwise the results of one thread alone; a
// Predictor answering interleaved requests at different slice rates runs each
// pass at its own rate only; and a server whose controller changes the rate
// while batches are in flight on two workers never mixes widths in one pass.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import * as ms from '../../src/index.js';
import { serve, type ServedBatch } from '../../src/serve/server.js';
import { Predictor } from '../../src/serve/predictor.js';
import { quiet } from '../helpers/conv-reference.js';
import { assertBitwise, randn32, rng } from '../helpers/reference.js';
import type { ForwardJob, ForwardResult, WorkerInput } from './forward-worker.js';
import { postJson, until } from './http.js';

const RATES = [1, 0.75, 0.5, 0.25, 0.3];

interface Case {
  name: string;
  build: () => ms.nn.Module;
  shape: number[];
}

const CASES: Case[] = [
  {
    name: 'mlp 64-128-128-10',
    build: () => ms.models.mlp({ inputs: 64, hidden: [128, 128], classes: 10 }),
    shape: [32, 64],
  },
  {
    name: 'resnet-8 (group norm)',
    build: () => ms.models.resnet({ depth: 8, classes: 10 }),
    shape: [2, 3, 16, 16],
  },
  {
    name: 'resnet-8 (switchable batch norm)',
    build: () => {
      const m = ms.models.resnet({ depth: 8, classes: 10, norm: 'batch' });
      ms.setTrainedRates(m, [1, 0.5, 0.25]);
      ms.useSwitchableBatchNorm(m, [1, 0.5, 0.25]); // as fit does: a private BatchNorm per trained rate
      return m;
    },
    shape: [2, 3, 16, 16],
  },
];

/** Logits of `model` at each rate, in this thread. */
function forwardAll(model: ms.nn.Module, input: Float32Array, shape: number[], rates: number[]): Float32Array[] {
  model.eval();
  return rates.map((rate) => {
    model.setSliceRate(rate);
    return ms.noGrad(() => model.forward(new ms.Tensor(input.slice(), shape))).data.slice();
  });
}

/** Starts `count` workers on the jobs, lets them all go at once, and collects their logits. */
async function runWorkers(jobs: ForwardJob[], count: number, whileRunning: () => void): Promise<ForwardResult[]> {
  const go = new Int32Array(new SharedArrayBuffer(4));
  const workerData: WorkerInput = { jobs, go };
  const workers = Array.from({ length: count }, () => new Worker(new URL('./forward-worker.ts', import.meta.url), { workerData, execArgv: process.execArgv }));
  try {
    const ready: Promise<void>[] = [];
    const results = workers.map(
      (w) =>
        new Promise<ForwardResult>((resolve, reject) => {
          ready.push(new Promise<void>((r) => w.once('message', () => r())));
          w.on('message', (m: ForwardResult | { ready: true }) => {
            if ('logits' in m) resolve(m);
          });
          w.on('error', reject);
          w.on('exit', (code) => reject(new Error(`worker exited with code ${code} before answering`)));
        }),
    );
    await Promise.race([Promise.all(ready), Promise.all(results)]);
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    whileRunning();
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

t.test('forward passes from three worker threads at once equal one thread alone, bitwise', async (t) => {
  const dir = t.testdir();
  const threads = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(threads));
  const models: ms.nn.Module[] = [];
  const jobs: ForwardJob[] = [];
  for (const [k, c] of CASES.entries()) {
    ms.manualSeed(100 + k);
    models.push(c.build());
    const path = join(dir, `model-${k}.safetensors`);
    await ms.save(models[k], path);
    jobs.push({ path, input: randn32(rng(200 + k), c.shape.reduce((a, b) => a * b, 1)), shape: c.shape, rates: RATES, repeats: 2 });
  }
  // The reference: this thread alone, one kernel thread.
  ms.setNumThreads(1);
  const reference = jobs.map((j, k) => forwardAll(models[k], j.input, j.shape, RATES));
  ms.setNumThreads(threads);
  let mainAgain: Float32Array[][] = [];
  const results = await runWorkers(jobs, 3, () => {
    // This thread computes too while the workers run: four users of the kernels at once.
    mainAgain = jobs.map((j, k) => forwardAll(models[k], j.input, j.shape, RATES));
  });
  const q = quiet(t); // only failures are reported: there are hundreds of comparisons
  CASES.forEach((c, k) => {
    let compared = 0;
    RATES.forEach((rate, i) => {
      const passes = [mainAgain[k][i], ...results.flatMap((r) => r.logits[k].map((pass) => pass[i]))];
      passes.forEach((logits, p) => {
        compared++;
        assertBitwise(q.sink, logits, reference[k][i], `${c.name} rate ${rate}: pass ${p}`);
      });
    });
    // The main thread plus three workers, each passing every rate several times.
    t.ok(compared >= RATES.length * 4, `${c.name}: ${compared} concurrent passes compared`);
    // The rates really are different computations.
    t.ok(reference[k].some((l, i) => i > 0 && l.some((v, j) => v !== reference[k][0][j])), `${c.name}: narrower rates give other logits`);
  });
  t.equal(q.flush(), 0, 'every concurrent pass equals the single-thread reference bitwise');
});


t.test('a Predictor answering interleaved requests at different rates runs each pass at its own rate', async (t) => {
  ms.manualSeed(7);
  const model = ms.models.resnet({ depth: 8, classes: 10 });
  ms.setTrainedRates(model, [1, 0.75, 0.5, 0.25]);
  const path = join(t.testdir(), 'resnet.safetensors');
  await ms.save(model, path);
  // Two predictors (two worker threads computing at the same time), each with a queue of mixed rates.
  const predictors = await Promise.all([Predictor.create(path, { profile: false }), Predictor.create(path, { profile: false })]);
  t.teardown(() => Promise.all(predictors.map((p) => p.close())));
  const jobs = Array.from({ length: 30 }, (_, i) => ({ rate: RATES[i % RATES.length], x: ms.tensor(randn32(rng(300 + i), 2 * 3 * 16 * 16), [2, 3, 16, 16]), p: predictors[(i >> 1) % 2] }));
  const answers = await Promise.all(jobs.map((j) => j.p.predict(j.x, { rate: j.rate })));
  const direct = (x: ms.Tensor, rate: number) => forwardAll(model, x.data, [...x.shape], [rate])[0];
  let mismatches = 0;
  answers.forEach((a, i) => {
    const { rate, x } = jobs[i];
    if (a.rate !== rate) mismatches++;
    const want = direct(x, rate);
    const same = a.logits.length === want.length && a.logits.every((v, j) => Object.is(v, want[j]));
    if (!same) {
      mismatches++;
      // Name the rate the logits do match, if any: that is the width the pass actually ran at.
      const match = RATES.find((r) => direct(x, r).every((v, j) => Object.is(v, a.logits[j])));
      t.fail(`request ${i} at rate ${rate}: logits differ from a direct pass at that rate${match === undefined ? '' : ` (they match rate ${match})`}`);
    }
  });
  t.equal(mismatches, 0, `${answers.length} interleaved requests at rates ${RATES.join(', ')}: each equals a direct pass at its own rate`);
});

t.test('a rate change while batches are in flight on two workers never mixes widths', async (t) => {
  ms.manualSeed(11);
  const model = ms.models.mlp({ inputs: 16, hidden: [32], classes: 4 });
  ms.setTrainedRates(model, [1, 0.5, 0.25]);
  const rows = (n: number, seed: number) => {
    const x = randn32(rng(seed), n * 16, 3);
    return Array.from({ length: n }, (_, i) => [...x.subarray(i * 16, (i + 1) * 16)]);
  };
  const classesAt = (inputs: number[][], rate: number) => {
    const out = forwardAll(model, Float32Array.from(inputs.flat()), [inputs.length, 16], [rate])[0];
    return inputs.map((_, i) => {
      const r = [...out.subarray(i * 4, i * 4 + 4)];
      return r.indexOf(Math.max(...r));
    });
  };
  // The same batch at 1 and 0.5 gives different classes, so a mixed pass would show.
  const probe = rows(8, 1);
  t.notSame(classesAt(probe, 1), classesAt(probe, 0.5), 'rates 1 and 0.5 classify these inputs differently');

  let now = 0;
  let open = true;
  const waiters: (() => void)[] = [];
  const hold = () => (open ? undefined : new Promise<void>((resolve) => waiters.push(resolve)));
  const batches: ServedBatch[] = [];
  // Rate 1 at a batch of 8 is profiled far over the SLO, rate 0.5 within it (as in server.test.ts).
  const latencyProfile = { byBatch: { 1: { 1: 100, 0.5: 30, 0.25: 10 }, 8: { 1: 2000, 0.5: 250, 0.25: 80 } } };
  const server = await serve(model, {
    sloMs: 1000, maxBatch: 8, workers: 2, threads: 1, latencyProfile, clock: () => now, controller: { upHoldMs: 1000 },
    beforeBatch: (b) => (batches.push(b), hold()),
  });
  t.teardown(async () => {
    await server.close();
    ms.setNumThreads(2);
  });
  const ask = async (inputs: number[][]) => (await postJson(`${server.url}/predict`, { inputs })).json() as { classes: number[]; rate: number };
  now = 5000;
  open = false;
  // One request decided at full width and held; then a burst the controller answers with a lower rate.
  const first = probe.slice(0, 1);
  const held = ask(first);
  t.ok(await until(() => batches.length === 1), 'the first batch is decided and held');
  const burst = Array.from({ length: 8 }, (_, i) => rows(1, 50 + i));
  const burstReplies = burst.map((b) => ask(b));
  t.ok(await until(() => batches.length === 2), 'the second worker takes a batch of the burst while the first is held');
  open = true;
  for (const w of waiters.splice(0)) w();
  const answers = [await held, ...(await Promise.all(burstReplies))];
  const asked = [first, ...burst];
  const rates = new Set(answers.map((a) => a.rate));
  t.ok(rates.has(1) && [...rates].some((r) => r < 1), `batches ran at different rates (${[...rates].join(', ')}) while two were in flight`);
  t.same(batches.slice(0, 2).map((b) => b.worker).sort(), [0, 1], 'both workers held a batch at once');
  answers.forEach((a, i) => t.same(a.classes, classesAt(asked[i], a.rate), `request ${i}: the classes of a direct pass at its rate ${a.rate}`));
});
