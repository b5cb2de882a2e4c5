// The exported compact model runs in onnxruntime-node and gives our outputs.
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

interface Checker {
  same(a: unknown, b: unknown, msg: string): unknown;
  ok(v: unknown, msg: string): unknown;
}

async function compare(t: Checker, model: ms.nn.Module, shape: number[], rate: number, label: string): Promise<void> {
  model.eval();
  const x = ms.randn(shape, { seed: 7 });
  model.setSliceRate(rate);
  const expected = ms.noGrad(() => model.forward(x));
  model.setSliceRate(1);
  const bytes = ms.onnxBytes(model, { rate, inputShape: [1, ...shape.slice(1)] });
  const session = await ort!.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort!.Tensor('float32', x.data, shape) });
  const got = out.logits;
  t.same(got.dims, expected.shape, `${label}: output shape (dynamic batch ${shape[0]})`);
  let worst = 0;
  for (let i = 0; i < expected.size; i++) worst = Math.max(worst, Math.abs(got.data[i] - expected.data[i]));
  t.ok(worst < 1e-4, `${label}: largest difference ${worst.toExponential(2)}`);
}

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
