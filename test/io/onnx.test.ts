// The exported compact model runs in onnxruntime-node and gives our outputs, within a bound
// relative to the largest logit: float32 sums in another order differ by a few units in the last
// place of the largest terms, so the agreement scales with the logits, not with a fixed constant.
// Measured on the example MLP (784-512-512-10, 8 epochs, 97% on the test digits, logits up to 64):
// at most 5.9e-7 of the largest logit (3.8e-5 absolute); see the README's ONNX section.
import { createRequire } from 'node:module';
import t from 'tap';
import * as ms from '../../src/index.js';

const require = createRequire(import.meta.url);
type Ort = {
  InferenceSession: { create(bytes: Uint8Array): Promise<{ run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: number[] }>> }> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
};
let ort: Ort | null = null;
try {
  ort = require('onnxruntime-node') as Ort;
} catch {
  ort = null;
}

/** The README's bound: max |onnxruntime - library| <= RELATIVE_BOUND * max |logit|. */
const RELATIVE_BOUND = 1e-5;

interface Checker {
  same(a: unknown, b: unknown, msg: string): unknown;
  ok(v: unknown, msg: string): unknown;
}

async function compare(t: Checker, model: ms.nn.Module, shape: number[], rate: number, label: string, input?: ms.Tensor): Promise<void> {
  model.eval();
  const x = input ?? ms.randn(shape, { seed: 7 });
  model.setSliceRate(rate);
  const expected = ms.noGrad(() => model.forward(x));
  model.setSliceRate(1);
  const bytes = ms.onnxBytes(model, { rate, inputShape: [1, ...shape.slice(1)] });
  const session = await ort!.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort!.Tensor('float32', x.data, shape) });
  const got = out.logits;
  t.same(got.dims, expected.shape, `${label}: output shape (dynamic batch ${shape[0]})`);
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < expected.size; i++) {
    worst = Math.max(worst, Math.abs(got.data[i] - expected.data[i]));
    largest = Math.max(largest, Math.abs(expected.data[i]));
  }
  const relative = worst / largest;
  t.ok(largest > 0 && worst <= RELATIVE_BOUND * largest, `${label}: largest difference ${worst.toExponential(2)}, ${relative.toExponential(2)} of the largest logit ${largest.toFixed(2)}`);
}

/** A few hundred standardised training digits and a few hundred test digits, as [N, 1, 28, 28]. */
async function digits(): Promise<{ train: ms.data.DataLoader; test: { x: ms.Tensor; y: Int32Array } }> {
  const raw = ms.data.sample(await ms.data.readDigits('train'), 600, 1);
  const stats = ms.data.pixelStats(raw);
  const test = ms.data.standardize(ms.data.sample(await ms.data.readDigits('test'), 400, 1), stats);
  return { train: new ms.data.DataLoader(ms.data.standardize(raw, stats), { batchSize: 50, shuffle: true, seed: 1 }), test: { x: ms.tensor(test.images, [test.length, 1, 28, 28]), y: test.labels } };
}

t.test('ONNX export of a trained MLP agrees within the bound relative to the largest logit', { skip: ort === null ? 'onnxruntime-node is not installed' : false }, async (t) => {
  // Trained weights give logits of tens (random ones stay near 1), which is where a fixed
  // absolute tolerance would mislead.
  const { train, test } = await digits();
  const rates = [1, 0.75, 0.5, 0.25];
  ms.manualSeed(3);
  const model = ms.models.mlp({ inputs: 784, hidden: [256, 256], classes: 10 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  await ms.fit(model, train, { epochs: 3, optimizer, rates, schedule: 'random_min_max', seed: 1 });
  const input = ms.reshape(test.x, [test.y.length, 784]);
  const [full] = await ms.evaluate(model, [{ x: input, y: test.y }], { rates: [1] });
  t.ok(full.accuracy > 0.7, `trained: ${(100 * full.accuracy).toFixed(1)}% of the held-out digits`);
  for (const rate of rates) await compare(t, model, [...input.shape], rate, `trained mlp 784-256-256-10 rate ${rate}`, input);
});

t.test('ONNX export matches the model at each rate', { skip: ort === null ? 'onnxruntime-node is not installed' : false }, async (t) => {
  ms.manualSeed(5);
  const mlp = ms.models.mlp({ inputs: 20, hidden: [24, 16], classes: 5 });
  const gn = ms.models.resnet({ depth: 8, classes: 10 });
  const bn = ms.models.resnet({ depth: 11, classes: 10, norm: 'batch', block: 'bottleneck' });
  const vgg = ms.models.vgg({ depth: 11, classes: 10 });
  // Non-trivial statistics and norm parameters, so each exported tensor matters.
  for (const m of [gn, bn, vgg]) for (const [n, p] of [...m.namedParameters(), ...m.namedBuffers()]) if (/bn|features\.\d+\.(weight|bias)|running/.test(n) && p.rank === 1) p.data.forEach((_, i) => (p.data[i] = n.includes('var') ? 0.5 + ((i * 7) % 10) / 10 : 0.9 + ((i * 3) % 7) / 30));
  for (const rate of [1, 0.5, 0.3]) {
    await compare(t, mlp, [3, 20], rate, `mlp rate ${rate}`);
    await compare(t, gn, [2, 3, 16, 16], rate, `resnet-8 group norm rate ${rate}`);
    await compare(t, bn, [2, 3, 16, 16], rate, `resnet-11 bottleneck batch norm rate ${rate}`);
  }
  await compare(t, vgg, [2, 3, 32, 32], 0.25, 'vgg-11 rate 0.25');
  const images = ms.models.mlp({ inputs: 64, hidden: [8], classes: 3 });
  await compare(t, images, [2, 1, 8, 8], 0.5, 'mlp on images flattens its input');
});

t.test('exportOnnx writes a file atomically and checks its arguments', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 });
  await ms.exportOnnx(model, `${dir}/m.onnx`, { rate: 0.5, inputShape: [1, 4] });
  const { readFileSync, readdirSync } = await import('node:fs');
  t.ok(readFileSync(`${dir}/m.onnx`).length > 100);
  t.same(readdirSync(dir), ['m.onnx'], 'no temporary files left');
  t.throws(() => ms.onnxBytes(model, { rate: 0, inputShape: [1, 4] }), /exportOnnx: slice rate/);
  t.throws(() => ms.onnxBytes(model, { rate: 1, inputShape: [4] }), /exportOnnx: inputShape must include the batch/);
  await t.rejects(ms.exportOnnx(model, `${dir}/missing/m.onnx`, { inputShape: [1, 4] }), /exportOnnx: cannot write/);
});

t.test('ONNX export of a transformer: int64 ids [N, T] with T dynamic, logits at every position, each rate', { skip: ort === null ? 'onnxruntime-node is not installed' : false }, async (t) => {
  ms.manualSeed(9);
  const model = ms.models.transformer({ vocab: 13, dModel: 16, heads: 4, layers: 2, ffn: 32, ffnGroups: 4, context: 12 });
  // Larger weights than the initialisation's, so the logits are not all near 0.
  for (const p of model.parameters()) for (let i = 0; i < p.size; i++) p.data[i] *= 5;
  model.eval();
  const gen = new ms.Generator(4);
  for (const rate of [1, 0.5, 0.25]) {
    const bytes = ms.onnxBytes(model, { rate });
    const session = await ort!.InferenceSession.create(bytes);
    for (const [n, T] of [[1, 12], [3, 5]]) {
      const ids = Array.from({ length: n * T }, () => gen.int(13));
      model.setSliceRate(rate);
      const expected = ms.noGrad(() => model.forward(ms.tensor(ids, [n, T])));
      model.setSliceRate(1);
      const feed = new (ort!.Tensor as unknown as new (type: string, data: BigInt64Array, dims: number[]) => unknown)('int64', BigInt64Array.from(ids.map(BigInt)), [n, T]);
      const got = (await session.run({ input: feed })).logits;
      t.same(got.dims, [n, T, 13], `rate ${rate}, [${n}, ${T}]: logits [N, T, vocab]`);
      let worst = 0;
      let largest = 0;
      for (let i = 0; i < expected.size; i++) {
        worst = Math.max(worst, Math.abs(got.data[i] - expected.data[i]));
        largest = Math.max(largest, Math.abs(expected.data[i]));
      }
      t.ok(largest > 1 && worst <= RELATIVE_BOUND * largest, `rate ${rate}, [${n}, ${T}]: largest difference ${worst.toExponential(2)} of logits up to ${largest.toFixed(2)}`);
    }
  }
});
