// Compact copies are the layers' own business: each layer with tensors makes
// its copy for the widths it reported in a trace, Module copies containers,
// and model.slice(r) is a walk that calls them. This file loads nn/ (and
// models/, which builds on it) but not slicing/: slice() must not need it.
import t from 'tap';
import { Conv2d } from '../../src/nn/conv2d.js';
import { Linear } from '../../src/nn/linear.js';
import { ReLU, Sequential } from '../../src/nn/layers.js';
import { modelRecord } from '../../src/metadata.js';
import { Module } from '../../src/nn/module.js';
import { BatchNorm2d, GroupNorm } from '../../src/nn/norm.js';
import { markSliceBoundaries } from '../../src/nn/sliceable.js';
import { resnet, type PreActBasicBlock } from '../../src/models/resnet.js';
import { mlp } from '../../src/models/mlp.js';
import { manualSeed } from '../../src/random.js';
import { noGrad, ones, randn, Tensor } from '../../src/tensor.js';
import { mul } from '../../src/ops/mul.js';

function maxAbsDiff(a: Tensor, b: Tensor): number {
  let e = 0;
  for (let i = 0; i < a.size; i++) e = Math.max(e, Math.abs(a.data[i] - b.data[i]));
  return e;
}

/** Element [i0, i1, ...] of a contiguous tensor. */
function at(x: Tensor, ...index: number[]): number {
  let offset = 0;
  for (let d = 0; d < index.length; d++) offset = offset * x.shape[d] + index[d];
  return x.data[offset];
}

t.test('model.slice(r) works without slicing/ loaded', async (t) => {
  manualSeed(3);
  const net = new Sequential(new Linear(6, 16, { sliceGroups: 4 }), new ReLU(), new Linear(16, 3, { sliceGroups: 4 }));
  markSliceBoundaries(net);
  modelRecord(net).inputShape = [6];
  net.eval();
  const x = randn([2, 6], { seed: 1 });
  net.setSliceRate(0.5);
  const expected = noGrad(() => net.forward(x));
  net.setSliceRate(1);
  const small = net.slice(0.5);
  small.eval();
  t.ok(small instanceof Sequential, 'a Sequential');
  t.equal(small.sliceRate, 1);
  t.same(small.namedParameters().map(([n, p]) => [n, p.shape]), [
    ['0.weight', [8, 6]],
    ['0.bias', [8]],
    ['2.weight', [3, 8]],
    ['2.bias', [3]],
  ]);
  t.ok(maxAbsDiff(noGrad(() => small.forward(x)), expected) < 1e-6, 'the outputs of setSliceRate(0.5)');
  t.same(modelRecord(small).trainedRates, [1]);
  t.same(modelRecord(small).inputShape, [6]);
  const layer = new Linear(4, 8);
  Object.assign(modelRecord(layer), { inputShape: [4], preprocess: { mean: 0.5, std: 2 }, dataset: 'digits', latencyProfile: { byBatch: { 1: { 1: 0.1 } } } });
  const copy = layer.slice(0.25);
  const { preprocess, dataset, latencyProfile } = modelRecord(copy);
  t.same([copy.outFeatures, preprocess, dataset, latencyProfile], [2, { mean: 0.5, std: 2 }, 'digits', undefined], 'a layer as the root keeps what the model carries');
  t.not(preprocess, modelRecord(layer).preprocess, 'its own preprocess record');
  t.notOk('preprocess' in layer || 'trainedRates' in layer || 'config' in layer, 'a layer carries no model record fields');
  t.throws(() => net.slice(0.5, { inputShape: [0, 6] }), /slice: options\.inputShape must be the shape of one input without the batch/);
  t.throws(() => new Sequential(new Linear(2, 2)).slice(0.5), /slice: options\.inputShape is required for a model that does not record its input shape/);
  t.throws(() => net.slice(1.5), /slice: slice rate must be a finite number in \(0, 1\], got 1.5/);
});

t.test('Linear.compact copies the prefix of the widths it is given', async (t) => {
  manualSeed(5);
  const layer = new Linear(5, 8, { sliceGroups: 4, slice: false });
  layer.eval();
  const copy = layer.compact({ inWidth: 3, outWidth: 4 });
  t.ok(copy instanceof Linear);
  t.equal(copy.inFeatures, 3);
  t.equal(copy.outFeatures, 4);
  t.equal(copy.sliceGroups, 4);
  t.equal(copy.sliceOutput, false, 'sliceOutput kept');
  t.equal(copy.training, false, 'training flag kept');
  t.same(copy.weight.shape, [4, 3]);
  for (let o = 0; o < 4; o++) for (let i = 0; i < 3; i++) t.equal(at(copy.weight, o, i), at(layer.weight, o, i), `weight[${o}, ${i}]`);
  t.same([...copy.bias!.data], [...layer.bias!.data.subarray(0, 4)]);
  t.same(copy.namedParameters().map(([n]) => n), ['weight', 'bias']);
  t.ok(copy.parameters().every((p) => p.requiresGrad), 'trainable');
  copy.weight.data[0] += 1;
  t.not(copy.weight.data[0], layer.weight.data[0], 'a copy, not a view');
  const whole = layer.compact();
  t.same([whole.inFeatures, whole.outFeatures], [5, 8], 'no widths: full size');
  t.same([...whole.weight.data], [...layer.weight.data]);
  t.equal(new Linear(2, 2, { bias: false }).compact({ inWidth: 1, outWidth: 1 }).bias, null, 'no bias stays without');
});

t.test('Conv2d.compact copies prefix filters and keeps its geometry', async (t) => {
  manualSeed(6);
  const conv = new Conv2d(4, 6, [3, 2], { stride: 2, padding: [1, 0], dilation: [1, 2], sliceGroups: 2 });
  const copy = conv.compact({ inWidth: 2, outWidth: 3, groups: 1 });
  t.same([copy.inChannels, copy.outChannels, copy.groups], [2, 3, 1]);
  t.same([copy.kernelSize, copy.stride, copy.padding, copy.dilation], [
    [3, 2],
    [2, 2],
    [1, 0],
    [1, 2],
  ]);
  t.equal(copy.sliceGroups, 2);
  t.same(copy.weight.shape, [3, 2, 3, 2]);
  for (let o = 0; o < 3; o++)
    for (let i = 0; i < 2; i++)
      for (let h = 0; h < 3; h++) for (let w = 0; w < 2; w++) t.equal(at(copy.weight, o, i, h, w), at(conv.weight, o, i, h, w));
  t.same([...copy.bias!.data], [...conv.bias!.data.subarray(0, 3)]);

  const depthwise = new Conv2d(8, 8, 3, { groups: 8, padding: 1, bias: false });
  const narrow = depthwise.compact({ inWidth: 4, outWidth: 4, groups: 4 });
  t.ok(narrow.isDepthwise(), 'a depthwise copy narrows its groups with its channels');
  t.same(narrow.weight.shape, [4, 1, 3, 3]);
  t.same([...narrow.weight.data], [...depthwise.weight.data.subarray(0, 36)]);
  t.equal(narrow.bias, null);
});

t.test('GroupNorm.compact keeps the group count of the trace; BatchNorm2d the statistics of the rate', async (t) => {
  const gn = new GroupNorm(4, 16, { eps: 1e-3 });
  gn.weight!.data.forEach((_, i, a) => (a[i] = i + 1));
  gn.bias!.data.forEach((_, i, a) => (a[i] = 100 + i));
  const g = gn.compact({ channels: 8, groups: 2 });
  t.same([g.numGroups, g.numChannels, g.eps], [2, 8, 1e-3]);
  t.same([...g.weight!.data], [1, 2, 3, 4, 5, 6, 7, 8]);
  t.same([...g.bias!.data], [100, 101, 102, 103, 104, 105, 106, 107]);

  const bn = new BatchNorm2d(8, { eps: 1e-4, momentum: 0.3 });
  bn.setTrainedRates([1, 0.5]);
  const half = bn.stateForRate(0.5);
  half.runningMean.data.forEach((_, i, a) => (a[i] = 10 + i));
  half.runningVar.data.forEach((_, i, a) => (a[i] = 2 + i));
  half.weight!.data.fill(3);
  bn.setSliceRate(0.5);
  const b = bn.compact({ channels: 4 });
  t.same([b.numFeatures, b.eps, b.momentum], [4, 1e-4, 0.3]);
  t.same(b.statRates, [1], 'one set of statistics');
  const own = Object.fromEntries(b.namedParameters().concat(b.namedBuffers()).map(([n, v]) => [n, [...v.data]]));
  t.same(own, { weight: [3, 3, 3, 3], bias: [0, 0, 0, 0], running_mean: [10, 11, 12, 13], running_var: [2, 3, 4, 5] });
  bn.setSliceRate(1);
  t.same([...bn.compact({ channels: 4 }).namedBuffers()[0][1].data], [0, 0, 0, 0], 'at rate 1: the statistics of rate 1');
});

t.test('a compact model is rebuilt by the walk: fields follow the copies', async (t) => {
  const net = resnet({ depth: 8, classes: 10, inputShape: [3, 8, 8] });
  const small = net.slice(0.5);
  const children = new Map(small.namedChildren());
  t.equal(small.layer1, children.get('layer1'), 'layer1 is the registered copy');
  t.equal(small.fc, children.get('fc'));
  t.equal(small.conv1, children.get('conv1'));
  const block = small.layer1.at(0) as PreActBasicBlock;
  t.equal(block, new Map(small.layer1.namedChildren()).get('0'), "Sequential's list holds the copies");
  t.equal(block.conv1, new Map(block.namedChildren()).get('conv1'));
  t.equal(block.conv1.outChannels, 8);
  t.ok(small.modules().every((m) => !net.modules().includes(m)), 'no module is shared with the source');
  t.not(small.structureVersion, net.structureVersion, 'the copy has a structure version of its own');
  t.same(small.config, { ...net.config, sliceChain: [0.5] });
  t.equal(net.slice(1).numParameters(), net.numParameters(), 'rate 1: the whole model');
});

t.test('a custom module: its own tensors are copied and its fields follow them', async (t) => {
  class Scale extends Module {
    readonly scale: Tensor;
    readonly calls: Tensor;
    readonly inner: Linear;
    constructor() {
      super();
      this.inner = this.registerModule('inner', new Linear(4, 8, { sliceGroups: 2 }));
      this.scale = this.registerParameter('scale', ones([1]))!;
      this.calls = this.registerBuffer('calls', ones([2]));
    }
    forward(x: Tensor): Tensor {
      return mul(this.inner.forward(x), this.scale);
    }
  }
  class Net extends Module {
    readonly body: Sequential;
    /** A module two levels down, held under another name. */
    readonly first: Linear;
    constructor() {
      super();
      this.body = this.registerModule('body', new Sequential(new Scale(), new ReLU(), new Linear(8, 2, { sliceGroups: 2 })));
      this.first = (this.body.at(0) as Scale).inner;
    }
    forward(x: Tensor): Tensor {
      return this.body.forward(x);
    }
  }
  const net = new Net();
  markSliceBoundaries(net);
  modelRecord(net).inputShape = [4];
  (net.body.at(0) as Scale).calls.data.set([3, 4]);
  const smallNet = net.slice(0.5);
  t.ok(smallNet instanceof Net);
  const model = net.body;
  const small = smallNet.body;
  t.equal(small, new Map(smallNet.namedChildren()).get('body'));
  const scale = small.at(0) as Scale;
  t.ok(scale instanceof Scale);
  t.equal(scale.inner, new Map(scale.namedChildren()).get('inner'));
  t.equal(smallNet.first, scale.inner, 'a field naming a module below a child follows too');
  t.equal(scale.inner.outFeatures, 4);
  const registered = new Map(small.namedParameters());
  t.equal(scale.scale, registered.get('0.scale'), 'the field is the registered parameter of the copy');
  t.not(scale.scale, (model.at(0) as Scale).scale, 'not the source tensor');
  t.equal(scale.calls, new Map(small.namedBuffers()).get('0.calls'), 'the field is the registered buffer of the copy');
  t.same([...scale.calls.data], [3, 4], 'buffers are copied as they are');
  t.not(scale.calls.data, (model.at(0) as Scale).calls.data, 'into storage of their own');
  const x = randn([2, 4], { seed: 4 });
  model.setSliceRate(0.5);
  const before = noGrad(() => model.forward(x));
  t.ok(maxAbsDiff(noGrad(() => small.forward(x)), before) < 1e-6, 'the outputs of the source at 0.5');
  // Training the copy moves its registered parameters; its forward must read them.
  registered.get('0.scale')!.data[0] = 0;
  const last = small.at(2) as Linear;
  t.same([...noGrad(() => small.forward(x)).data], [...last.bias!.data, ...last.bias!.data], 'a zero scale leaves the last bias');
  t.same([...noGrad(() => model.forward(x)).data], [...before.data], 'the source is unaffected');
});

t.test('slice() draws nothing from the global generator', async (t) => {
  const model = mlp({ inputs: 64, hidden: [32], classes: 4 });
  manualSeed(11);
  model.slice(0.5);
  const after = randn([6]);
  manualSeed(11);
  t.same([...after.data], [...randn([6]).data], 'the seeded sequence goes on as if slice() had not run');
});
