import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { Predictor } from '../../src/serve/predictor.js';
import { estimateLatencyMs, rateForBudget, profileBatchSizes } from '../../src/serve/latency.js';

const PRE = { mean: 0.5, std: 2 };

function tinyModel(seed = 3): ms.nn.Module {
  ms.manualSeed(seed);
  const model = ms.models.mlp({ inputs: 16, hidden: [32], classes: 4 });
  ms.setTrainedRates(model, [1, 0.5, 0.25]);
  return model;
}

/** The model's own forward at `rate` on standardised inputs: what the worker must reproduce. */
function direct(model: ms.nn.Module, x: ms.Tensor, rate: number, pre?: { mean: number; std: number }): Float32Array {
  const data = pre ? x.data.map((v) => (v - pre.mean) / pre.std) : x.data;
  model.eval();
  model.setSliceRate(rate);
  const out = ms.noGrad(() => model.forward(new ms.Tensor(Float32Array.from(data), x.shape)));
  model.setSliceRate(1);
  return out.data;
}

function argmax(logits: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < logits.length / cols; i++) {
    const row = [...logits.subarray(i * cols, (i + 1) * cols)];
    out.push(row.indexOf(Math.max(...row)));
  }
  return out;
}

t.test('predictions equal a direct forward at the same rate (checkpoint with standardisation)', async (t) => {
  const model = tinyModel();
  const path = join(t.testdir(), 'tiny.safetensors');
  await ms.save(model, path, { preprocess: PRE });
  const p = await Predictor.create(path, { profile: false });
  t.teardown(() => p.close());
  t.same(p.trainedRates, [1, 0.5, 0.25]);
  t.same(p.inputShape, [16]);
  t.equal(p.classes, 4);
  t.same(p.preprocess, PRE);
  t.equal(p.latencyProfile, undefined, 'profile: false measures nothing');
  const x = ms.randn([5, 16], { seed: 7 });
  for (const rate of [1, 0.5, 0.25, 0.3]) {
    const got = await p.predict(x, { rate });
    const want = direct(model, x, rate, PRE);
    t.equal(got.rate, rate);
    t.same([...got.logits], [...want], `logits at rate ${rate}`);
    t.same([...got.classes], argmax(want, 4), `classes at rate ${rate}`);
    t.ok(got.ms >= 0);
  }
  // A Float32Array with and without an explicit shape; the caller's buffer is untouched.
  const flat = x.data.slice();
  const a = await p.predict(flat, { shape: [5, 16], rate: 0.5 });
  const b = await p.predict(flat, { rate: 0.5 });
  t.same([...flat], [...x.data], 'input not modified or detached');
  t.same([...a.logits], [...direct(model, x, 0.5, PRE)]);
  t.same([...b.logits], [...a.logits]);
  t.equal((await p.predict(x)).rate, 1, 'default rate 1');
});

t.test('a Predictor from a model in memory', async (t) => {
  const model = tinyModel(5);
  const mainThreads = ms.getNumThreads();
  const p = await Predictor.create(model, { profile: { batchSizes: [1, 4], repeats: 1 }, threads: 1 });
  t.teardown(() => p.close());
  const x = ms.randn([3, 16], { seed: 9 });
  const got = await p.predict(x, { rate: 0.25 });
  t.same([...got.logits], [...direct(model, x, 0.25)]);
  t.same(Object.keys(p.latencyProfile!.byBatch).map(Number), [1, 4]);
  for (const b of [1, 4]) t.same(Object.keys(p.latencyProfile!.byBatch[b]).map(Number).sort(), [0.25, 0.5, 1]);
  t.equal(ms.getNumThreads(), mainThreads, "threads sets the worker's own count, not the main thread's");
});

t.test('transfer: an array that owns its buffer goes to the worker without a copy; any other is copied', async (t) => {
  const model = tinyModel(6);
  const p = await Predictor.create(model, { profile: false, threads: 1 });
  t.teardown(() => p.close());
  const x = ms.randn([3, 16], { seed: 10 });
  const want = [...direct(model, x, 1)];
  const owned = x.data.slice();
  t.same([...(await p.predict(owned, { transfer: true })).logits], want, 'the same answer');
  t.equal(owned.length, 0, 'the array was handed over (detached)');
  const big = new Float32Array(64);
  big.set(x.data, 16);
  const view = big.subarray(16, 16 + x.data.length);
  t.same([...(await p.predict(view, { transfer: true })).logits], want, 'a view into a larger buffer');
  t.equal(view.length, x.data.length, 'was copied, not detached');
  t.equal(big[16], x.data[0], 'and its buffer untouched');
  const kept = x.data.slice();
  await p.predict(kept);
  t.equal(kept.length, x.data.length, 'without transfer nothing is detached');
});

t.test('budgetMs picks the largest trained rate whose profiled latency fits', async (t) => {
  const p = await Predictor.create(tinyModel(), { profile: { batchSizes: [1, 8], inputShape: [16], repeats: 3 } });
  t.teardown(() => p.close());
  const x = ms.randn([8, 16], { seed: 1 });
  t.equal((await p.predict(x, { budgetMs: 1e9 })).rate, 1, 'a huge budget: full width');
  t.equal((await p.predict(x, { budgetMs: 0 })).rate, 0.25, 'nothing fits: the narrowest');
  const row = p.latencyProfile!.byBatch[8];
  for (const r of [1, 0.5, 0.25]) {
    const want = [1, 0.5, 0.25].find((q) => row[q] <= row[r]);
    t.equal((await p.predict(x, { budgetMs: row[r] })).rate, want, `budget = measured latency of rate ${r}`);
    t.equal(p.selectRate(row[r], 8), want);
  }
  t.equal(p.estimateMs(1, 8), row[1]);
});

t.test('latency estimates between and beyond profiled batch sizes', async (t) => {
  const profile = { byBatch: { 1: { 1: 2, 0.5: 1 }, 4: { 1: 5, 0.5: 2 }, 8: { 1: 9 } } };
  t.equal(estimateLatencyMs(profile, 1, 1), 2);
  t.equal(estimateLatencyMs(profile, 1, 2), 3, 'interpolated');
  t.equal(estimateLatencyMs(profile, 1, 6), 7);
  t.equal(estimateLatencyMs(profile, 1, 16), 18, 'beyond the largest: proportional');
  t.equal(estimateLatencyMs(profile, 0.5, 8), 4, 'the largest batch measured at that rate');
  t.equal(estimateLatencyMs(profile, 0.25, 1), undefined);
  t.equal(estimateLatencyMs(undefined, 1, 1), undefined);
  t.equal(rateForBudget('x', profile, [0.5, 1], 3, 2), 1);
  t.equal(rateForBudget('x', profile, [0.5, 1], 2.9, 2), 0.5);
  t.equal(rateForBudget('x', profile, [0.25, 0.5, 1], 0, 1), 0.5, 'the narrowest profiled rate');
  t.throws(() => rateForBudget('x', undefined, [1], 1, 1), { name: 'RangeError', message: /^x: no latency profile/ });
  t.throws(() => rateForBudget('x', profile, [1], -1, 1), { name: 'RangeError', message: /^x: budgetMs/ });
  t.same(profileBatchSizes(32), [1, 2, 4, 8, 16, 32]);
  t.same(profileBatchSizes(20), [1, 2, 4, 8, 16, 20]);
  t.same(profileBatchSizes(1), [1]);
});

t.test('the event loop stays responsive while the worker computes', async (t) => {
  ms.manualSeed(2);
  const model = ms.models.mlp({ inputs: 256, hidden: [512, 512], classes: 4 });
  const p = await Predictor.create(model, { profile: false });
  t.teardown(() => p.close());
  const x = ms.randn([256, 256], { seed: 3 });
  let resolved = 0;
  let resolvedAtFirstTick = -1;
  let ticks = 0;
  const timer = setInterval(() => {
    if (ticks++ === 0) resolvedAtFirstTick = resolved;
  }, 1);
  const jobs = Array.from({ length: 30 }, () => p.predict(x, { rate: 1 }).then(() => resolved++));
  await Promise.all(jobs);
  clearInterval(timer);
  t.ok(ticks > 0, `a 1 ms timer fired ${ticks} times during 30 passes`);
  t.ok(resolvedAtFirstTick >= 0 && resolvedAtFirstTick < 30, `the first tick came while passes were still queued (${resolvedAtFirstTick} of 30 done)`);
});

t.test('abort: a queued request is removed and rejects with AbortError', async (t) => {
  ms.manualSeed(2);
  const model = ms.models.mlp({ inputs: 64, hidden: [128], classes: 4 });
  const p = await Predictor.create(model, { profile: false });
  t.teardown(() => p.close());
  const x = ms.randn([64, 64], { seed: 3 });
  const running = new AbortController();
  const queued = new AbortController();
  const first = p.predict(x, { signal: running.signal }); // dispatched at once
  const second = p.predict(x, { signal: queued.signal });
  const third = p.predict(x);
  t.equal(p.pending, 2);
  t.ok(p.busy);
  queued.abort();
  running.abort(); // already running: it completes
  t.equal(p.pending, 1, 'the aborted request left the queue');
  await t.rejects(second, { name: 'AbortError', code: 'ABORT_ERR' });
  t.equal((await first).rate, 1, 'a started request completes');
  t.equal((await third).classes.length, 64);
  await t.rejects(p.predict(x, { signal: AbortSignal.abort() }), { name: 'AbortError' }, 'already aborted');
  t.equal(p.pending, 0);
  t.notOk(p.busy);
});

t.test('bad input and a closed predictor', async (t) => {
  const dir = t.testdir();
  await t.rejects(Predictor.create(join(dir, 'missing.safetensors')), { message: /^load: cannot read/ });
  await t.rejects(Predictor.create(42 as never), { name: 'TypeError' });
  await t.rejects(Predictor.create(tinyModel(), { threads: 0 }), { name: 'RangeError' });
  const limit = ms.kernelInfo().maxThreads;
  await t.rejects(Predictor.create(tinyModel(), { threads: limit + 1 }), new RegExp(`Predictor.create: threads must be an integer in \\[1, ${limit}\\]`));
  await t.rejects(Predictor.create(tinyModel(), { profile: { batchSizes: [0] } }), { name: 'RangeError' });
  await t.rejects(Predictor.create(tinyModel(), { inputShape: [] }), { name: 'RangeError', message: /Predictor.create: inputShape must be the shape of one input/ });
  const p = await Predictor.create(tinyModel(), { profile: false });
  const x = ms.randn([2, 16]);
  await t.rejects(p.predict(ms.randn([2, 15])), { name: 'RangeError', message: /does not fit the model's input \[N, 16\]/ });
  await t.rejects(p.predict(new Float32Array(17)), { name: 'RangeError', message: /not a whole number of inputs/ });
  await t.rejects(p.predict(new Float32Array(32), { shape: [3, 16] }), { name: 'RangeError' });
  await t.rejects(p.predict([1, 2] as never), { name: 'TypeError' });
  await t.rejects(p.predict(x, { rate: 0 }), { name: 'RangeError', message: /slice rate/ });
  await t.rejects(p.predict(x, { rate: 1, budgetMs: 1 }), { name: 'TypeError' });
  await t.rejects(p.predict(x, { budgetMs: 1 }), { name: 'RangeError', message: /no latency profile/ });
  await t.rejects(p.predict(x, { signal: {} as never }), { name: 'TypeError' });
  const late = t.rejects(p.predict(x), { message: /closed/ }, 'running when closed');
  const later = t.rejects(p.predict(x), { message: /closed/ }, 'queued when closed');
  await p.close();
  await p.close();
  await Promise.all([late, later]);
  await t.rejects(p.predict(x), { message: /closed/ });
});

t.test('warm: the worker builds the plans of those batch sizes at every trained rate before it is ready', async (t) => {
  const path = join(t.testdir(), 'tiny.safetensors');
  await ms.save(tinyModel(), path);
  const cold = await Predictor.create(path, { profile: false });
  t.teardown(() => cold.close());
  t.same(cold.plans, [], 'no profile, no warm: none');
  const warm = await Predictor.create(path, { profile: false, warm: [1, 3] });
  t.teardown(() => warm.close());
  t.same([...warm.plans].sort(), ['0.25|1x16', '0.25|3x16', '0.5|1x16', '0.5|3x16', '1|1x16', '1|3x16']);
  const x = ms.randn([3, 16], { seed: 5 });
  t.same((await warm.predict(x, { rate: 0.5 })).classes, (await cold.predict(x, { rate: 0.5 })).classes, 'and predicts as a cold one');
  const profiled = await Predictor.create(path, { profile: { batchSizes: [2], repeats: 1 } });
  t.teardown(() => profiled.close());
  t.same([...profiled.plans].sort(), ['0.25|2x16', '0.5|2x16', '1|2x16'], 'profiling builds the plans it measures');
  // A model that carries a profile is not profiled again: the plans of the profile's sizes are built instead.
  const carried = tinyModel();
  const r = { 1: 1, 0.5: 0.5, 0.25: 0.3 };
  ms.modelRecord(carried).latencyProfile = { byBatch: { 1: r, 4: r } };
  const known = await Predictor.create(carried);
  t.teardown(() => known.close());
  t.same([...known.plans].sort(), ['0.25|1x16', '0.25|4x16', '0.5|1x16', '0.5|4x16', '1|1x16', '1|4x16'], 'a carried profile warms its sizes');
  await t.rejects(Predictor.create(path, { warm: [0] }), { name: 'RangeError', message: /warm must be positive integer batch sizes, got \[0\]/ });
});
