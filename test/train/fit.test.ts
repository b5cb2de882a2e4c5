import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';

const RATES = [1, 0.75, 0.5, 0.25];

/** A small learnable dataset: the label is the quadrant block with the largest sum. */
function toy(n: number, seed: number, shape: [number, number, number] = [1, 4, 4], classes = 3): ms.data.Dataset {
  const gen = new ms.Generator(seed);
  const size = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = gen.int(classes);
    labels[i] = label;
    for (let j = 0; j < size; j++) images[i * size + j] = gen.normal() + (j % classes === label ? 1 : 0);
  }
  return ms.data.makeDataset('toy', images, labels, shape, classes);
}

function mlp(seed: number, hidden = [16]): ms.models.Mlp {
  ms.manualSeed(seed);
  return ms.models.mlp({ inputs: 16, hidden, classes: 3 });
}

function snapshot(model: ms.nn.Module): Float32Array[] {
  return model.parameters().map((p) => p.data.slice());
}

function bitwiseEqual(a: ms.nn.Module, b: ms.nn.Module): boolean {
  const pa = a.stateDict();
  const pb = b.stateDict();
  const keys = Object.keys(pa);
  if (keys.join() !== Object.keys(pb).join()) return false;
  return keys.every((k) => {
    const x = new Uint32Array(pa[k].data.buffer, pa[k].data.byteOffset, pa[k].data.length);
    const y = new Uint32Array(pb[k].data.buffer, pb[k].data.byteOffset, pb[k].data.length);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  });
}

t.test('it learns: a sliced MLP on 2000 digits beats chance by far at every rate', async (t) => {
  const raw = ms.data.sample(await ms.data.readDigits('train'), 2000, 1);
  const stats = ms.data.pixelStats(raw);
  const train = ms.data.standardize(raw, stats);
  const test = ms.data.standardize(await ms.data.readDigits('test'), stats);
  ms.manualSeed(1);
  const model = ms.models.mlp({ inputs: 784, hidden: [64], classes: 10 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const loader = new ms.data.DataLoader(train, { batchSize: 64, shuffle: true, seed: 1 });
  const result = await ms.fit(model, loader, { epochs: 3, optimizer, rates: RATES, schedule: 'random_min_max', seed: 1 });
  t.equal(result.epochs.length, 3);
  t.ok(result.epochs[2].loss < result.epochs[0].loss, 'the training loss falls');
  t.same(model.trainedRates, RATES, 'trained rates recorded');
  const rows = await ms.evaluate(model, new ms.data.DataLoader(test, { batchSize: 500 }), { rates: RATES });
  t.same(rows.map((r) => r.rate), RATES);
  for (const r of rows) t.ok(r.accuracy > 0.6, `rate ${r.rate}: test accuracy ${(100 * r.accuracy).toFixed(1)}%`);
});

t.test('fit returns epoch records, with per-rate eval rows from evalData', async (t) => {
  const model = mlp(2);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const loader = new ms.data.DataLoader(toy(64, 1), { batchSize: 16, shuffle: true, seed: 2 });
  const evalData = new ms.data.DataLoader(toy(30, 2), { batchSize: 8 });
  const result = await ms.fit(model, loader, { epochs: 2, optimizer, rates: [1, 0.5, 0.25], evalData, seed: 3 });
  t.same(result.epochs.map((e) => e.epoch), [1, 2]);
  for (const e of result.epochs) {
    t.ok(Number.isFinite(e.loss) && e.loss > 0, 'loss');
    t.ok(e.accuracy >= 0 && e.accuracy <= 1, 'accuracy is a fraction');
    t.ok(e.seconds >= 0, 'seconds');
    t.same(e.eval!.map((r) => r.rate), [1, 0.5, 0.25], 'eval rows at the trained rates');
    for (const r of e.eval!) {
      t.ok(r.accuracy >= 0 && r.accuracy <= 1 && Number.isFinite(r.loss) && r.macs > 0 && r.params > 0, `eval row ${r.rate}`);
    }
  }
  t.ok(model.modules().every((m) => m.training), 'back in training mode after evaluation');
  // The last epoch's eval rows are what evaluate() says now.
  const now = await ms.evaluate(model, evalData, { rates: [1, 0.5, 0.25] });
  t.same(result.epochs[1].eval, now);
  // evalRates picks other rates.
  const r2 = await ms.fit(model, loader, { epochs: 1, optimizer, rates: [1, 0.5, 0.25], evalData, evalRates: [0.75], seed: 3 });
  t.same(r2.epochs[0].eval!.map((r) => r.rate), [0.75]);
});

t.test('callbacks fire in order with sensible BatchInfo', async (t) => {
  const model = mlp(3);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05 });
  const loader = new ms.data.DataLoader(toy(40, 3), { batchSize: 16, shuffle: true, seed: 1 });
  const events: string[] = [];
  const infos: ms.BatchInfo[] = [];
  const records: ms.EpochRecord[] = [];
  const result = await ms.fit(model, loader, {
    epochs: 2,
    optimizer,
    rates: RATES,
    seed: 4,
    callbacks: {
      onEpochBegin: (e) => void events.push(`epochBegin ${e}`),
      onBatchBegin: (e, b) => void events.push(`batchBegin ${e} ${b}`),
      onBatchEnd: async (info) => {
        events.push(`batchEnd ${info.epoch} ${info.batch}`);
        infos.push(info);
        await new Promise((resolve) => setImmediate(resolve));
        events.push('awaited');
      },
      onEpochEnd: (rec) => {
        events.push(`epochEnd ${rec.epoch}`);
        records.push(rec);
      },
    },
  });
  const expected: string[] = [];
  for (const e of [1, 2]) {
    expected.push(`epochBegin ${e}`);
    for (const b of [0, 1, 2]) expected.push(`batchBegin ${e} ${b}`, `batchEnd ${e} ${b}`, 'awaited');
    expected.push(`epochEnd ${e}`);
  }
  t.same(events, expected, 'order, and async callbacks are awaited');
  t.same(records, result.epochs, 'onEpochEnd gets the epoch records');
  t.same(infos.map((i) => i.images), [16, 16, 8, 16, 16, 8], 'images per batch (last batch partial)');
  for (const info of infos) {
    t.equal(info.batches, 3);
    t.equal(info.rates.length, 3, 'random_min_max with k=1: three rates');
    t.equal(info.rates[0], 1);
    t.equal(info.rates[2], 0.25);
    t.ok([0.75, 0.5].includes(info.rates[1]));
    t.ok(Number.isFinite(info.loss) && info.loss > 0);
    t.ok(info.accuracy >= 0 && info.accuracy <= 1);
    t.ok(info.seconds >= 0);
  }
  for (const e of [1, 2]) {
    const of = infos.filter((i) => i.epoch === e);
    t.ok(of.every((i, j) => j === 0 || i.seconds >= of[j - 1].seconds), 'seconds since the epoch began do not go back');
    const n = of.reduce((s, i) => s + i.images, 0);
    const loss = of.reduce((s, i) => s + i.loss * i.images, 0) / n;
    const acc = of.reduce((s, i) => s + i.accuracy * i.images, 0) / n;
    t.ok(Math.abs(result.epochs[e - 1].loss - loss) < 1e-9, `epoch ${e}: loss is the image-weighted mean of the batches`);
    t.ok(Math.abs(result.epochs[e - 1].accuracy - acc) < 1e-9, `epoch ${e}: accuracy likewise`);
  }

  // A plain async iterable (no length) works too: batches is null.
  async function* batches() {
    yield* new ms.data.DataLoader(toy(20, 4), { batchSize: 10 });
  }
  const seen: (number | null)[] = [];
  await ms.fit(model, batches(), { epochs: 1, optimizer, callbacks: { onBatchEnd: (i) => void seen.push(i.batches) } });
  t.same(seen, [null, null]);
});

function countSteps(optimizer: ms.optim.SGD): { count: number } {
  const counter = { count: 0 };
  const step = optimizer.step.bind(optimizer);
  optimizer.step = () => {
    counter.count++;
    step();
  };
  return counter;
}

t.test('an AbortSignal stops fit: it rejects and no further steps happen', async (t) => {
  const loader = new ms.data.DataLoader(toy(80, 5), { batchSize: 10 });
  const cases: [string, (ac: AbortController) => ms.FitCallbacks, number, number[]][] = [
    ['onBatchEnd of batch 2', (ac) => ({ onBatchEnd: (i) => void (i.batch === 2 && ac.abort()) }), 3, [1]],
    ['onBatchBegin of batch 2', (ac) => ({ onBatchBegin: (_e, b) => void (b === 2 && ac.abort()) }), 2, [1]],
    ['onEpochBegin of epoch 2', (ac) => ({ onEpochBegin: (e) => void (e === 2 && ac.abort()) }), 8, [1, 2]],
    ['onEpochEnd of epoch 1', (ac) => ({ onEpochEnd: () => ac.abort() }), 8, [1]],
  ];
  for (const [where, callbacks, steps, begun] of cases) {
    const model = mlp(4);
    const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05 });
    const counter = countSteps(optimizer);
    const ac = new AbortController();
    const epochsBegun: number[] = [];
    const cbs = callbacks(ac);
    const onEpochBegin = cbs.onEpochBegin;
    cbs.onEpochBegin = (e) => {
      epochsBegun.push(e);
      return onEpochBegin?.(e);
    };
    await t.rejects(ms.fit(model, loader, { epochs: 3, optimizer, signal: ac.signal, callbacks: cbs }), { name: 'AbortError' }, `aborted in ${where}`);
    t.equal(counter.count, steps, `${where}: ${steps} optimizer steps, none after the abort`);
    t.same(epochsBegun, begun, `${where}: no later epoch begins`);
  }
  // Already aborted: nothing happens; a reason of our own is passed through.
  const model = mlp(4);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05 });
  const counter = countSteps(optimizer);
  const before = snapshot(model);
  const reason = new Error('stop now');
  await t.rejects(ms.fit(model, loader, { epochs: 1, optimizer, signal: AbortSignal.abort(reason) }), reason);
  t.equal(counter.count, 0);
  t.same(snapshot(model), before, 'parameters untouched');
  await t.rejects(ms.fit(model, loader, { epochs: 1, optimizer, signal: AbortSignal.abort('no reason') }), { name: 'AbortError', message: /aborted/ });
});

t.test('the NaN guard stops a diverging run with a clear error', async (t) => {
  const model = mlp(5);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 1e6, momentum: 0.9 });
  const loader = new ms.data.DataLoader(toy(64, 6), { batchSize: 8, shuffle: true, seed: 1 });
  let lastBatch = -1;
  let lastEpoch = 0;
  const err = await ms
    .fit(model, loader, {
      epochs: 10,
      optimizer,
      seed: 1,
      callbacks: {
        onBatchEnd: (i) => {
          lastEpoch = i.epoch;
          lastBatch = i.batch;
        },
      },
    })
    .then(
      () => null,
      (e: unknown) => e as Error,
    );
  t.ok(err instanceof Error, 'fit rejects');
  t.match(err!.message, /^fit: the loss became (NaN|Infinity|-Infinity) at epoch \d+, batch \d+ \(rate [\d.]+\)/);
  const [, epoch, batch] = /epoch (\d+), batch (\d+)/.exec(err!.message)!.map(Number);
  const failedAt = lastBatch + 1 === loader.length ? [lastEpoch + 1, 0] : [lastEpoch, lastBatch + 1];
  t.same([epoch, batch], failedAt, 'names the batch that diverged (the one after the last onBatchEnd)');
  t.ok(optimizer.params.every((p) => p.grad === null), 'gradients cleared');

  // nanGuard: false lets it run on.
  const m2 = mlp(5);
  const o2 = new ms.optim.SGD(m2.parameters(), { lr: 1e6, momentum: 0.9 });
  const r = await ms.fit(m2, loader, { epochs: 3, optimizer: o2, seed: 1, nanGuard: false });
  t.equal(r.epochs.length, 3);
  t.notOk(Number.isFinite(r.epochs[2].loss), 'the loss is not finite');
});

t.test('clipGradNorm', async (t) => {
  const a = ms.tensor([3, 0], [2], { requiresGrad: true });
  const b = ms.tensor([0], [1], { requiresGrad: true });
  const c = ms.tensor([1], [1], { requiresGrad: true });
  a.grad = ms.tensor([3, 0], [2]);
  b.grad = ms.tensor([4], [1]);
  t.equal(ms.clipGradNorm([a, b, c], 1), 5, 'returns the norm before clipping');
  t.ok(Math.abs(a.grad.data[0] - 0.6) < 1e-7 && a.grad.data[1] === 0 && Math.abs(b.grad.data[0] - 0.8) < 1e-7, 'scaled to norm 1');
  t.equal(c.grad, null, 'parameters without a gradient are skipped');
  t.ok(Math.abs(ms.clipGradNorm([a, b], 10) - 1) < 1e-6, 'the norm is now 1');
  t.ok(Math.abs(a.grad.data[0] - 0.6) < 1e-7, 'below the limit: unchanged');
  t.equal(ms.clipGradNorm([c], 1), 0);

  // Through fit: one plain SGD step of lr 1 moves the parameters by at most the clip norm.
  const data = new ms.data.DataLoader(toy(16, 7), { batchSize: 16 });
  const move = async (clip?: number) => {
    const model = mlp(6);
    const before = snapshot(model);
    const optimizer = new ms.optim.SGD(model.parameters(), { lr: 1 });
    await ms.fit(model, data, { epochs: 1, optimizer, seed: 1, clipGradNorm: clip });
    let sq = 0;
    snapshot(model).forEach((p, i) => p.forEach((v, j) => (sq += (v - before[i][j]) ** 2)));
    return Math.sqrt(sq);
  };
  const free = await move();
  const clipped = await move(0.05);
  t.ok(free > 0.05, `without clipping the step is ${free}`);
  t.ok(clipped <= 0.05 * (1 + 1e-4) && clipped > 0.05 * 0.99, `with clipGradNorm 0.05 the step is ${clipped}`);
  await t.rejects(ms.fit(mlp(6), data, { epochs: 1, optimizer: new ms.optim.SGD(mlp(6).parameters(), { lr: 1 }), clipGradNorm: 0 }), /^fit: clipGradNorm/);
});

t.test('fit yields to the event loop between batches', async (t) => {
  const model = mlp(7);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05 });
  const loader = new ms.data.DataLoader(toy(200, 8), { batchSize: 10 });
  let immediate = false;
  let timeout = false;
  setImmediate(() => (immediate = true));
  setTimeout(() => (timeout = true), 0);
  const immediateAtBatch: boolean[] = [];
  await ms.fit(model, loader, { epochs: 1, optimizer, callbacks: { onBatchBegin: () => void immediateAtBatch.push(immediate) } });
  t.equal(immediateAtBatch[0], false, 'the first batch starts before the event loop turns');
  t.equal(immediateAtBatch[1], true, 'a setImmediate scheduled before fit runs before the second batch');
  t.ok(timeout, 'a setTimeout(0) scheduled before fit ran before fit resolved');
});

t.test('argument checks', async (t) => {
  const model = mlp(8);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05 });
  const data = new ms.data.DataLoader(toy(8, 1), { batchSize: 4 });
  await t.rejects(ms.fit(model, data, { epochs: -1, optimizer }), /^fit: epochs/);
  await t.rejects(ms.fit(model, data, { epochs: 1.5, optimizer }), /^fit: epochs/);
  await t.rejects(ms.fit(model, data, { epochs: 1 } as never), /^fit: options.optimizer/);
  await t.rejects(ms.fit(model, data, null as never), /^fit: options/);
  await t.rejects(ms.fit(model, [], { epochs: 1, optimizer }), /^fit: the data yielded no batches/);
  await t.rejects(ms.fit(model, data, { epochs: 1, optimizer, rates: [1, 0] }), /^rateSchedule: slice rate/);
  const r = await ms.fit(model, data, { epochs: 0, optimizer });
  t.same(r.epochs, [], 'zero epochs: nothing to do');
});

t.test('a BatchNorm ResNet gets switchable BN for its trained rates, and all of it trains', async (t) => {
  ms.manualSeed(9);
  const model = ms.models.resnet({ depth: 8, classes: 10, norm: 'batch', inChannels: 1 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const data = new ms.data.DataLoader(toy(48, 9, [1, 8, 8], 10), { batchSize: 16, shuffle: true, seed: 1 });
  const rates = [1, 0.5, 0.25];
  await ms.fit(model, data, { epochs: 1, optimizer, rates, schedule: 'round_robin', seed: 1 });
  const norms = model.modules().filter((m): m is ms.nn.BatchNorm2d => m instanceof ms.nn.BatchNorm2d);
  t.ok(norms.length > 0);
  t.ok(norms.every((n) => n.statRates.join() === rates.join()), 'every BatchNorm2d keeps statistics per trained rate');
  const named = new Map(model.namedParameters());
  const buffers = new Map(model.namedBuffers());
  for (const r of ['0_5', '0_25']) {
    const w = named.get(`bn.rate_${r}.weight`);
    t.ok(w !== undefined, `bn.rate_${r}.weight exists`);
    t.ok(w!.data.some((v) => v !== 1), `bn.rate_${r}.weight was trained`);
    t.ok(named.get(`layer1.0.bn1.rate_${r}.bias`)!.data.some((v) => v !== 0), `layer1.0.bn1.rate_${r}.bias was trained`);
    t.ok(buffers.get(`bn.rate_${r}.running_mean`)!.data.some((v) => v !== 0), `rate ${r} running mean moved`);
  }
  // The same again: fit does not rebuild the statistics it already has.
  const kept = named.get('bn.rate_0_5.weight');
  await ms.fit(model, data, { epochs: 1, optimizer, rates, schedule: 'round_robin', seed: 1 });
  t.equal(new Map(model.namedParameters()).get('bn.rate_0_5.weight'), kept, 'same tensors on a second fit');
  const rows = await ms.evaluate(model, data, { rates: [1, 0.5, 0.25, 0.375] });
  t.ok(rows.every((r) => Number.isFinite(r.loss)), 'evaluates at trained and untrained rates');
});

t.test('exact resume: 2 epochs straight == 1 epoch, checkpoint, resume for epoch 2', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'modelslice-fit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataset = toy(70, 10);
  const images = toy(70, 10, [1, 8, 8], 10);
  type Lr = 'multistep' | 'cosine' | 'bn';
  const setup = (lr: Lr) => {
    if (lr === 'bn') {
      ms.manualSeed(11);
      const model = ms.models.resnet({ depth: 8, classes: 10, norm: 'batch', inChannels: 1 });
      const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true });
      const lrSchedule = new ms.optim.WarmupLR(optimizer, { warmupEpochs: 1, after: new ms.optim.CosineLR(optimizer, { totalEpochs: 2 }) });
      const loader = new ms.data.DataLoader(images, { batchSize: 16, shuffle: true, seed: 12, cropPadding: 1, horizontalFlip: true });
      const schedule = ms.rateSchedule('random', RATES, { seed: 13, k: 2 });
      return { model, optimizer, lrSchedule, loader, schedule };
    }
    const model = mlp(11, [16, 16]);
    const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
    const lrSchedule = lr === 'cosine' ? new ms.optim.CosineLR(optimizer, { totalEpochs: 2 }) : new ms.optim.MultiStepLR(optimizer, { milestones: [1] });
    const loader = new ms.data.DataLoader(dataset, { batchSize: 16, shuffle: true, seed: 12 });
    const schedule = ms.rateSchedule('random_min_max', RATES, { seed: 13 });
    return { model, optimizer, lrSchedule, loader, schedule };
  };
  for (const lr of ['multistep', 'cosine', 'bn'] as const) {
    const straightPath = join(dir, `straight-${lr}.ckpt`);
    const a = setup(lr);
    const inodes: number[] = [];
    const straight = await ms.fit(a.model, a.loader, {
      epochs: 2,
      optimizer: a.optimizer,
      lrSchedule: a.lrSchedule,
      schedule: a.schedule,
      distill: { mix: 0.5 },
      checkpoint: straightPath,
      callbacks: { onEpochEnd: async () => void inodes.push((await stat(straightPath)).ino) },
    });
    t.not(inodes[0], inodes[1], `${lr}: the checkpoint is replaced by a rename, not rewritten in place`);

    const halfPath = join(dir, `half-${lr}.ckpt`);
    const b = setup(lr);
    await ms.fit(b.model, b.loader, { epochs: 1, optimizer: b.optimizer, lrSchedule: b.lrSchedule, schedule: b.schedule, distill: { mix: 0.5 }, checkpoint: halfPath });
    t.notOk(bitwiseEqual(a.model, b.model), `${lr}: after one epoch the models differ`);

    const c = setup(lr);
    // Stir the global generator: resume must restore it.
    ms.randn([5]);
    const resumed = await ms.fit(c.model, c.loader, {
      epochs: 2,
      optimizer: c.optimizer,
      lrSchedule: c.lrSchedule,
      schedule: c.schedule,
      distill: { mix: 0.5 },
      resume: halfPath,
      checkpoint: halfPath,
    });
    t.ok(bitwiseEqual(a.model, c.model), `${lr}: final parameters are bitwise identical`);
    t.equal(c.optimizer.lr, a.optimizer.lr, `${lr}: same learning rate at the end`);
    t.same(resumed.epochs.map((e) => e.epoch), [1, 2], `${lr}: the history carries over`);
    t.equal(resumed.epochs[0].loss, straight.epochs[0].loss);
    t.equal(resumed.epochs[1].loss, straight.epochs[1].loss, `${lr}: epoch 2 loss identical`);
    t.same(c.optimizer.stateDict().buffers, a.optimizer.stateDict().buffers, `${lr}: momentum buffers identical`);
  }
  const files = (await readdir(dir)).sort();
  t.same(files, ['half-bn.ckpt', 'half-cosine.ckpt', 'half-multistep.ckpt', 'straight-bn.ckpt', 'straight-cosine.ckpt', 'straight-multistep.ckpt'], 'no temporary files left behind');

  // A plain model file is not a checkpoint: refused, and the model is left alone.
  const modelPath = join(dir, 'plain.safetensors');
  await ms.save(mlp(20, [16, 16]), modelPath);
  const d = setup('cosine');
  const before = snapshot(d.model);
  await t.rejects(ms.fit(d.model, d.loader, { epochs: 2, optimizer: d.optimizer, resume: modelPath }), /not a training checkpoint/);
  t.same(snapshot(d.model), before, 'model untouched by a refused resume');
  await t.rejects(ms.fit(d.model, d.loader, { epochs: 2, optimizer: d.optimizer, resume: join(dir, 'missing.ckpt') }), /cannot read/);
});

t.test('evaluate: accuracy, loss, MACs and params per rate', async (t) => {
  const model = mlp(14);
  const dataset = toy(30, 15);
  const rates = [1, 0.5, 0.25];
  model.setSliceRate(0.75);
  model.train();
  // Uneven batches (7, 7, 7, 7, 2): the loss is a mean over images, not batches.
  const rows = await ms.evaluate(model, new ms.data.DataLoader(dataset, { batchSize: 7 }), { rates });
  t.equal(model.sliceRate, 0.75, 'rate restored');
  t.ok(model.modules().every((m) => m.training), 'training mode restored');
  const table = ms.costs(model, [1, 4, 4], rates);
  t.same(rows.map((r) => Object.keys(r).sort()), rates.map(() => ['accuracy', 'loss', 'macs', 'params', 'rate']));
  const x = ms.tensor(dataset.images, [30, 1, 4, 4]);
  rates.forEach((rate, i) => {
    const row = rows[i];
    t.equal(row.rate, rate);
    t.equal(row.macs, table[i].macs, `rate ${rate}: macs from costs`);
    t.equal(row.params, table[i].params, `rate ${rate}: params from costs`);
    model.setSliceRate(rate);
    const logits = ms.noGrad(() => model.forward(x));
    const correct = ms.countCorrect(logits, dataset.labels);
    t.ok(row.accuracy >= 0 && row.accuracy <= 1);
    t.equal(row.accuracy, correct / 30, `rate ${rate}: accuracy`);
    const loss = ms.crossEntropy(logits, dataset.labels).item();
    t.ok(Math.abs(row.loss - loss) < 1e-5, `rate ${rate}: loss ${row.loss} vs ${loss}`);
  });

  // Default rates: the trained ones.
  ms.setTrainedRates(model, [1, 0.5]);
  model.setSliceRate(0.5);
  model.eval();
  const dflt = await ms.evaluate(model, new ms.data.DataLoader(dataset, { batchSize: 30 }));
  t.same(dflt.map((r) => r.rate), [1, 0.5]);
  t.ok(model.modules().every((m) => !m.training), 'eval mode kept');
  await t.rejects(ms.evaluate(model, []), /^evaluate: data yielded no batches/);
  await t.rejects(ms.evaluate(model, new ms.data.DataLoader(dataset, { batchSize: 30 }), { rates: [0] }), /^evaluate: slice rate/);
  t.equal(model.sliceRate, 0.5);
});

t.test('fit refuses options.rates that differ from a schedule object’s', async (t) => {
  const model = ms.models.mlp({ inputs: 16, hidden: [6], classes: 3 });
  const loader = new ms.data.DataLoader(toy(8, 3), { batchSize: 4 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.01 });
  const schedule = ms.rateSchedule('random_min_max', [1, 0.5, 0.25], { seed: 1 });
  await t.rejects(ms.fit(model, loader, { epochs: 1, optimizer, schedule, rates: [1, 0.5] }), /fit: options.rates \[1, ?0.5\] differ from the schedule's rates/);
  const same = await ms.fit(model, loader, { epochs: 1, optimizer, schedule, rates: [0.25, 1, 0.5] });
  t.equal(same.epochs.length, 1, 'the same rates in another order are fine');
});
