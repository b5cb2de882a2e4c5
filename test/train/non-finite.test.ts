// Non-finite numbers in training: NaN and infinities in the data or in the
// weights stop fit with an error that names the epoch, batch and rate and says
// whether the data or the optimisation is to blame; the failing batch takes no
// optimizer step; ReLU (plain and fused with GroupNorm) passes NaN through as
// PyTorch does instead of hiding it; evaluate reports a NaN loss, not a number.
// (A diverging learning rate is covered in fit.test.ts.)
import t from 'tap';
import * as ms from '../../src/index.js';

/** Batches of a learnable toy problem: 16 features, 3 classes. */
function batches(count: number, size: number, seed: number): { x: ms.Tensor; y: Int32Array }[] {
  const gen = new ms.Generator(seed);
  return Array.from({ length: count }, () => {
    const y = Int32Array.from({ length: size }, () => gen.int(3));
    const x = new Float32Array(size * 16);
    for (let i = 0; i < size; i++) for (let j = 0; j < 16; j++) x[i * 16 + j] = gen.normal() + (j % 3 === y[i] ? 1 : 0);
    return { x: ms.tensor(x, [size, 16]), y };
  });
}

function mlp(seed: number): ms.nn.Module {
  ms.manualSeed(seed);
  return ms.models.mlp({ inputs: 16, hidden: [16], classes: 3 });
}

const snapshot = (m: ms.nn.Module) => m.parameters().map((p) => p.data.slice());
const allFinite = (m: ms.nn.Module) => m.parameters().every((p) => p.data.every(Number.isFinite));

async function fitError(model: ms.nn.Module, data: { x: ms.Tensor; y: Int32Array }[], rates: number[], after?: (batch: number) => void): Promise<Error | null> {
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  return ms
    .fit(model, data, { epochs: 2, optimizer, rates, schedule: 'round_robin', seed: 1, callbacks: { onBatchEnd: (i) => after?.(i.batch) } })
    .then(
      () => null,
      (e: unknown) => e as Error,
    );
}

t.test('relu and the fused groupNorm + relu pass NaN through; their gradients there are 0', async (t) => {
  const x = ms.tensor([NaN, -1, 2, -0, Infinity, -Infinity], [6], { requiresGrad: true });
  const y = ms.relu(x);
  t.ok(Number.isNaN(y.data[0]), 'relu(NaN) is NaN');
  t.same([...y.data.subarray(1)], [0, 2, 0, Infinity, 0], 'the rest as usual');
  y.backward(ms.ones([6]));
  t.same([...x.grad!.data], [0, 0, 1, 0, 1, 0], 'gradient 1 where x > 0, else 0 (NaN included, like PyTorch)');
  // A group holding a NaN is NaN after normalisation, fused ReLU or not; the other group is untouched.
  const g = ms.tensor([1, 2, 3, NaN, -1, 2, -3, 4], [1, 2, 4]);
  for (const relu of [false, true]) {
    const out = ms.groupNorm(g, 2, null, null, { relu });
    t.ok(out.data.subarray(0, 4).every(Number.isNaN), `groupNorm${relu ? ' + relu' : ''}: the NaN group stays NaN`);
    t.ok(out.data.subarray(4).every(Number.isFinite), `groupNorm${relu ? ' + relu' : ''}: the other group is finite`);
  }
});

t.test('a NaN or infinity in the data stops fit at that batch, blaming the data, before any step', async (t) => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const model = mlp(3);
    const data = batches(4, 8, 5);
    data[2].x.data[8 * 16 - 3] = bad; // the last image of batch 2
    let before: Float32Array[] = [];
    const err = await fitError(model, data, [1, 0.5], (b) => {
      if (b === 1) before = snapshot(model);
    });
    t.ok(err instanceof Error, `${bad}: fit rejects`);
    t.match(err!.message, /^fit: the loss became (NaN|Infinity|-Infinity) at epoch 1, batch 2 \(rate 1\); /, `${bad}: names epoch 1, batch 2, rate 1`);
    t.match(err!.message, new RegExp(`the input batch holds ${bad} \\(at flat index ${8 * 16 - 3}\\): check the data`), `${bad}: blames the data, not the learning rate`);
    t.notMatch(err!.message, /diverged/, `${bad}: does not call bad data divergence`);
    t.same(snapshot(model), before, `${bad}: the parameters are those after batch 1 (the bad batch took no step)`);
    t.ok(allFinite(model), `${bad}: no parameter became non-finite`);
    t.ok(model.parameters().every((p) => p.grad === null), `${bad}: gradients cleared`);
  }
});

t.test('a NaN weight used only at full width: the guard names rate 1; training only narrower rates is unaffected', async (t) => {
  // Hidden unit 15 belongs to the last of 8 slice groups: only rate 1 reads it.
  const poison = (m: ms.nn.Module) => {
    const w = m.namedParameters().find(([n]) => n === '0.weight')![1];
    w.data[15 * 16] = NaN;
  };
  const wide = mlp(4);
  poison(wide);
  const err = await fitError(wide, batches(3, 8, 6), [1, 0.25]);
  t.ok(err instanceof Error, 'fit rejects');
  t.match(err!.message, /^fit: the loss became NaN at epoch 1, batch 0 \(rate 1\); training diverged: lower the learning rate, or set clipGradNorm$/, 'names rate 1 (the data is fine)');

  const narrow = mlp(4);
  poison(narrow);
  t.equal(await fitError(narrow, batches(3, 8, 6), [0.5, 0.25]), null, 'rates 0.5 and 0.25 never read the poisoned unit and train');
  const params = narrow.parameters().map((p) => [...p.data].filter((v) => !Number.isFinite(v)).length);
  t.equal(params.reduce((a, b) => a + b, 0), 1, 'the one poisoned weight is the only non-finite value (no NaN spread through the prefix)');
});

t.test('evaluate reports a NaN loss for NaN inputs instead of a misleading number', async (t) => {
  const model = mlp(8);
  const data = batches(2, 4, 9);
  data[1].x.data[0] = NaN;
  const rows = await ms.evaluate(model, data, { rates: [1, 0.5] });
  for (const r of rows) {
    t.ok(Number.isNaN(r.loss), `rate ${r.rate}: loss is NaN`);
    t.ok(r.accuracy >= 0 && r.accuracy <= 1, `rate ${r.rate}: accuracy ${r.accuracy} stays a fraction`);
  }
});
