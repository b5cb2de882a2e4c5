// Models know their input: built-in models record the shape of one input,
// fit overwrites it with its data's, the model file keeps it (and the dataset),
// and costs / selectRate / profileLatency / exportOnnx / Predictor / the CLI
// use it when no shape is given. A shape that cannot feed the model is an
// error naming both shapes.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { runCli } from '../helpers/cli.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';

const require = createRequire(import.meta.url);
type Ort = {
  InferenceSession: { create(bytes: Uint8Array): Promise<{ inputNames: string[]; run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: number[] }>> }> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
};
let ort: Ort | null = null;
try {
  ort = require('onnxruntime-node') as Ort;
} catch {
  ort = null;
}

t.test('a CIFAR-style ResNet costs what 32x32 images cost, and selectRate follows', async (t) => {
  const model = ms.models.resnet({ depth: 20, classes: 10 });
  t.same(model.inputShape, [3, 32, 32]);
  const rows = ms.costs(model);
  t.equal(rows[0].macs, 40813184, 'ResNet-20 at rate 1 on its own 3x32x32 input');
  t.same(rows, ms.costs(model, [3, 32, 32]));
  // The README's example: 12e6 MACs fit rate 0.5 (10.3M), not 0.75 (23.0M).
  t.equal(ms.selectRate(model, { budgetMacs: 12e6 }), 0.5);
  t.same(ms.models.vgg({ depth: 11, classes: 10 }).inputShape, [3, 32, 32]);
  t.same(ms.models.mlp({ inputs: 784, hidden: [8], classes: 10 }).inputShape, [784]);
});

t.test('models built for another input record it, and costs use it', async (t) => {
  const model = ms.models.resnet({ depth: 20, classes: 10, inputShape: [1, 28, 28] });
  t.equal(model.config.inChannels, 1, 'inChannels comes from inputShape');
  t.same(model.inputShape, [1, 28, 28]);
  t.same(ms.costs(model), ms.costs(model, [1, 28, 28]));
  t.ok(ms.costs(model)[0].macs < ms.costs(model, [1, 32, 32])[0].macs, '28x28 costs less than 32x32');
  const m = ms.models.mlp({ inputShape: [1, 28, 28], hidden: [16], classes: 10 });
  t.equal(m.config.inputs, 784);
  t.same(m.inputShape, [1, 28, 28]);
  const v = ms.models.vgg({ depth: 11, classes: 10, inputShape: [3, 64, 64] });
  t.same(v.inputShape, [3, 64, 64]);
  t.throws(() => ms.models.resnet({ depth: 20, classes: 10, inChannels: 3, inputShape: [1, 28, 28] }), /resnet: inChannels 3 disagrees with inputShape \[1, 28, 28\]/);
  t.throws(() => ms.models.resnet({ depth: 20, classes: 10, inputShape: [28, 28] }), /resnet: inputShape must be \[channels, height, width\]/);
  t.throws(() => ms.models.mlp({ inputs: 100, inputShape: [1, 28, 28], hidden: [4], classes: 2 }), /mlp: inputs 100 disagrees with inputShape \[1, 28, 28\] \(784 values\)/);
  t.throws(() => ms.models.vgg({ depth: 11, classes: 10, inputShape: [1, 28, 28] }), /vgg: inputShape \[1, 28, 28\] does not fit the model.*at least 32x32/);
});

t.test('a shape that cannot feed the model is an error naming both shapes', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 10, inputShape: [1, 28, 28] });
  t.throws(() => ms.costs(model, [3, 32, 32]), /costs: inputShape \[3, 32, 32\] does not fit the model, which takes \[1, 28, 28\]: a resnet built for 1 input channel cannot take 3/);
  t.throws(() => ms.profileLatency(model, { inputShape: [3, 28, 28], batchSizes: [1] }), /profileLatency: options.inputShape \[3, 28, 28\] does not fit the model, which takes \[1, 28, 28\]/);
  t.throws(() => ms.onnxBytes(model, { inputShape: [1, 3, 28, 28] }), /exportOnnx: inputShape \[1,3,28,28\] without its batch \[3, 28, 28\] does not fit the model, which takes \[1, 28, 28\]/);
  t.throws(() => model.slice(0.5, { inputShape: [2, 28, 28] }), /slice: options.inputShape \[2, 28, 28\] does not fit the model/);
  const mlp = ms.models.mlp({ inputs: 784, hidden: [8], classes: 10 });
  t.throws(() => ms.costs(mlp, [3, 32, 32]), /costs: inputShape \[3, 32, 32\] does not fit the model, which takes \[784\]: an MLP of 784 inputs takes 784 values per input, not 3072/);
  t.same(ms.costs(mlp, [1, 28, 28]), ms.costs(mlp), 'any shape of 784 values feeds a 784-input MLP');
  // A custom module has no config to check against: it needs the shape given.
  class Custom extends ms.nn.Module {
    forward(x: ms.Tensor): ms.Tensor {
      return x;
    }
  }
  t.throws(() => ms.costs(new Custom()), /costs: inputShape is required for a model that does not record its input shape/);
});

t.test('profileLatency and the compact model use the recorded shape', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 10, inputShape: [1, 28, 28] });
  const profile = ms.profileLatency(model, { batchSizes: [1], rates: [1], repeats: 1 });
  t.ok(profile.byBatch[1][1] > 0, 'profiled without naming a shape');
  const small = model.slice(0.5);
  t.same(small.inputShape, [1, 28, 28], 'slice() keeps the input shape');
});

t.test('fit records the shape of the data it trained on', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 3, inChannels: 1 });
  t.same(model.inputShape, [1, 32, 32]);
  const x = ms.randn([6, 1, 28, 28], { seed: 2 });
  const y = new Int32Array([0, 1, 2, 0, 1, 2]);
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.01 });
  await ms.fit(model, [{ x, y }], { epochs: 1, optimizer, rates: [1, 0.5] });
  t.same(model.inputShape, [1, 28, 28]);
  t.same(ms.costs(model), ms.costs(model, [1, 28, 28]));
  const wrong = ms.models.resnet({ depth: 8, classes: 3 });
  await t.rejects(
    ms.fit(wrong, [{ x, y }], { epochs: 1, optimizer: new ms.optim.SGD(wrong.parameters(), { lr: 0.01 }), rates: [1] }),
    /fit: the shape of the data \[1, 28, 28\] does not fit the model, which takes \[3, 32, 32\]/,
  );
});

t.test('the model file keeps the input shape and dataset; older files load with a warning', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.resnet({ depth: 8, classes: 10, inputShape: [1, 28, 28] });
  model.dataset = 'fashion-mnist';
  const path = join(dir, 'r.safetensors');
  await ms.save(model, path);
  const again = await ms.load(path);
  t.same(again.inputShape, [1, 28, 28]);
  t.equal(again.dataset, 'fashion-mnist');
  t.same(ms.costs(again), ms.costs(model));

  // A file from before this change: no inputShape or dataset in its metadata.
  const { tensors, metadata } = parseSafetensors(readFileSync(path), path);
  delete metadata.inputShape;
  delete metadata.dataset;
  const legacy = join(dir, 'legacy.safetensors');
  writeFileSync(legacy, serializeSafetensors(tensors, metadata));
  const warnings: Error[] = [];
  const onWarning = (w: Error) => void warnings.push(w);
  process.on('warning', onWarning);
  const old = await ms.load(legacy);
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  process.off('warning', onWarning);
  t.same(old.inputShape, [1, 32, 32], 'the shape the config implies, as before');
  t.equal(old.dataset, undefined);
  t.equal(warnings.length, 1);
  t.match(warnings[0], { code: 'MODELSLICE_NO_INPUT_SHAPE', message: /legacy\.safetensors does not record its input shape.*assuming \[1, 32, 32\]/ });

  // A forged shape that cannot feed the model is refused at load.
  const forged = join(dir, 'forged.safetensors');
  writeFileSync(forged, serializeSafetensors(tensors, { ...metadata, inputShape: '[3, 32, 32]' }));
  await t.rejects(ms.load(forged), /load: .*forged\.safetensors has unusable inputShape metadata: load: inputShape \[3, 32, 32\] does not fit the model/);
});

t.test('a Predictor takes the recorded input size (784 floats for 28x28)', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 10, inputShape: [1, 28, 28] });
  const p = await ms.Predictor.create(model, { profile: false });
  t.teardown(() => p.close());
  t.same(p.inputShape, [1, 28, 28]);
  const out = await p.predict(new Float32Array(784), { rate: 1 });
  t.equal(out.classes.length, 1);
  await t.rejects(p.predict(new Float32Array(1024), { rate: 1 }), /784/);
  await t.rejects(ms.Predictor.create(model, { profile: false, inputShape: [3, 32, 32] }), /inputShape \[3, 32, 32\] does not fit the model, which takes \[1, 28, 28\]/);
});

t.test('exportOnnx takes the recorded shape; onnxruntime accepts 28x28 images', { skip: ort === null ? 'onnxruntime-node is not installed' : false }, async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 10, inputShape: [1, 28, 28] });
  model.eval();
  const bytes = ms.onnxBytes(model, { rate: 0.5 });
  const session = await ort!.InferenceSession.create(bytes);
  const x = ms.randn([2, 1, 28, 28], { seed: 5 });
  const out = await session.run({ input: new ort!.Tensor('float32', x.data, [2, 1, 28, 28]) });
  t.same(out.logits.dims, [2, 10]);
  const expected = ms.infer(model, x, { rate: 0.5 });
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < expected.size; i++) {
    worst = Math.max(worst, Math.abs(out.logits.data[i] - expected.data[i]));
    largest = Math.max(largest, Math.abs(expected.data[i]));
  }
  t.ok(worst <= 1e-5 * Math.max(1, largest), `agrees with infer (${worst.toExponential(2)})`);
});

const cli = runCli;

t.test('CLI: a ResNet trained on 28x28 digits exports 28x28 and evaluates on its own dataset', async (t) => {
  const dir = t.testdir({});
  const out = join(dir, 'r.safetensors');
  const train = await cli(['train', '--model', 'resnet', '--depth', '8', '--limit', '200', '--epochs', '1', '--rates', '1,0.5', '--out', out, '--json']);
  t.equal(train.code, 0, train.stderr);
  const model = await ms.load(out);
  t.same(model.inputShape, [1, 28, 28]);
  t.equal(model.dataset, 'mnist');
  const trained = JSON.parse(train.lines[train.lines.length - 1]) as { rates: { macs: number }[] };
  t.equal(trained.rates[0].macs, ms.costs(model)[0].macs, 'the table costs 28x28 images');

  const onnx = join(dir, 'r.onnx');
  const exp = await cli(['export', '--checkpoint', out, '--rate', '0.5', '--out', onnx, '--json']);
  t.equal(exp.code, 0, exp.stderr);
  t.same((JSON.parse(exp.lines[exp.lines.length - 1]) as { inputShape: number[] }).inputShape, [1, 1, 28, 28]);
  const bad = await cli(['export', '--checkpoint', out, '--out', onnx, '--input-shape', '1,3,32,32']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /inputShape \[1,3,32,32\] without its batch \[3, 32, 32\] does not fit the model, which takes \[1, 28, 28\]/);

  const serveBad = await cli(['serve', '--checkpoint', out, '--port', '0', '--slo-ms', '50', '--input-shape', '1,0,28']);
  t.equal(serveBad.code, 2);
  t.match(serveBad.stderr, /--input-shape must be positive integers \(one input, without the batch\), got 1,0,28/);
  const serveWrong = await cli(['serve', '--checkpoint', out, '--port', '0', '--slo-ms', '50', '--input-shape', '3,32,32']);
  t.equal(serveWrong.code, 1);
  t.match(serveWrong.stderr, /inputShape \[3, 32, 32\] does not fit the model, which takes \[1, 28, 28\]/);

  const ev = await cli(['eval', '--checkpoint', out, '--json']);
  t.equal(ev.code, 0, ev.stderr);
  const evJson = JSON.parse(ev.lines[ev.lines.length - 1]) as { dataset: string; rates: unknown[] };
  t.equal(evJson.dataset, 'mnist', 'eval names the dataset it evaluated');
  t.equal(ev.stderr, '', 'no warning: the file says which dataset');
});

const fashion = '/usr/share/datasets/fashion-mnist';
let haveFashion = false;
try {
  readFileSync(join(fashion, 't10k-labels-idx1-ubyte.gz'));
  haveFashion = true;
} catch {
  try {
    readFileSync(join(fashion, 't10k-labels-idx1-ubyte'));
    haveFashion = true;
  } catch {
    haveFashion = false;
  }
}

t.test('CLI: eval without --dataset uses the dataset the model was trained on', { skip: haveFashion ? false : `no Fashion-MNIST under ${fashion}` }, async (t) => {
  const dir = t.testdir({});
  const out = join(dir, 'f.safetensors');
  const train = await cli(['train', '--dataset', 'fashion-mnist', '--hidden', '32', '--limit', '2000', '--epochs', '1', '--rates', '1', '--out', out, '--json']);
  t.equal(train.code, 0, train.stderr);
  const ev = await cli(['eval', '--checkpoint', out, '--rates', '1', '--json']);
  t.equal(ev.code, 0, ev.stderr);
  const res = JSON.parse(ev.lines[ev.lines.length - 1]) as { dataset: string; images: number; rates: { accuracy: number }[] };
  t.equal(res.dataset, 'fashion-mnist');
  t.equal(res.images, 10000);
  t.ok(res.rates[0].accuracy > 0.5, `accuracy ${res.rates[0].accuracy} is a Fashion-MNIST model's on Fashion-MNIST`);
  const other = await cli(['eval', '--checkpoint', out, '--rates', '1', '--dataset', 'mnist', '--json']);
  t.equal(other.code, 0, other.stderr);
  t.match(other.stderr, /was trained on fashion-mnist; evaluating on mnist as --dataset asks/);
});
