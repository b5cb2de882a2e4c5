import t from 'tap';
import * as ms from '../../src/index.js';

function maxAbsDiff(a: ms.Tensor, b: ms.Tensor): number {
  let e = 0;
  for (let i = 0; i < a.size; i++) e = Math.max(e, Math.abs(a.data[i] - b.data[i]));
  return e;
}

t.test('parameter names follow PyTorch dotted style', async (t) => {
  const mlp = ms.models.mlp({ inputs: 6, hidden: [5, 4], classes: 3 });
  t.same(mlp.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
  const net = ms.models.resnet({ depth: 20, classes: 10 });
  const names = net.namedParameters().map(([n]) => n);
  for (const n of ['conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.conv1.weight', 'layer2.0.downsample.0.weight', 'bn.weight', 'fc.weight', 'fc.bias']) {
    t.ok(names.includes(n), n);
  }
  t.notOk(names.includes('conv1.bias'), 'convolutions have no bias');
  const bn = ms.models.resnet({ depth: 20, classes: 10, norm: 'batch' });
  const buffers = bn.namedBuffers().map(([n]) => n);
  t.ok(buffers.includes('layer1.0.bn1.running_mean'));
  t.ok(buffers.includes('bn.running_var'));
});

t.test('bottleneck ResNet: stage 1 starts with a 16 -> 64 projection', async (t) => {
  const net = ms.models.resnet({ depth: 164, classes: 10 });
  const first = net.layer1.at(0) as ms.models.PreActBottleneck;
  t.same(first.downsample!.parameters()[0].shape, [64, 16, 1, 1]);
  t.same(first.conv2.weight.shape, [16, 16, 3, 3]);
  t.equal(net.layer1.length, 18);
  t.same(net.fc.weight.shape, [10, 256]);
});

t.test('stateDict round-trips and loadStateDict checks keys and shapes first', async (t) => {
  ms.manualSeed(1);
  const a = ms.models.mlp({ inputs: 6, hidden: [5], classes: 3 });
  ms.manualSeed(2);
  const b = ms.models.mlp({ inputs: 6, hidden: [5], classes: 3 });
  const x = ms.randn([2, 6], { seed: 3 });
  t.not(maxAbsDiff(a.forward(x), b.forward(x)), 0);
  b.loadStateDict(a.stateDict());
  t.equal(maxAbsDiff(a.forward(x), b.forward(x)), 0);
  const before = b.stateDict()['0.weight'].data.slice();
  const bad = { ...a.stateDict(), '2.weight': ms.zeros([3, 4]) };
  t.throws(() => b.loadStateDict(bad), /loadStateDict: 2.weight has shape \[3, 4\] but the model expects \[3, 5\]/);
  t.same(b.stateDict()['0.weight'].data, before, 'nothing written when a shape is wrong');
  const missing: ms.nn.StateDict = { ...a.stateDict() };
  delete missing['0.bias'];
  t.throws(() => b.loadStateDict(missing), /missing: 0.bias/);
  t.throws(() => b.loadStateDict({ ...a.stateDict(), extra: ms.zeros([1]) }), /unexpected: extra/);
  t.doesNotThrow(() => b.loadStateDict(missing, { strict: false }));
});

t.test('setSliceRate drives every layer; the classifier output stays full', async (t) => {
  const net = ms.models.resnet({ depth: 20, classes: 10 });
  const x = ms.randn([2, 3, 8, 8], { seed: 4 });
  for (const r of [1, 0.875, 0.5, 0.3, 0.25, 0.01]) {
    net.setSliceRate(r);
    t.equal(net.sliceRate, r);
    t.equal(net.layer2.sliceRate, r);
    const y = ms.noGrad(() => net.forward(x));
    t.same(y.shape, [2, 10], `rate ${r}`);
  }
  const mlp = ms.models.mlp({ inputs: 7, hidden: [16], classes: 3 });
  mlp.setSliceRate(0.25);
  t.same(mlp.forward(ms.randn([4, 7], { seed: 1 })).shape, [4, 3]);
});

t.test('bad rates are refused with a clear error', async (t) => {
  const net = ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 });
  for (const r of [0, -0.5, NaN, 1.01, Infinity]) {
    t.throws(() => net.setSliceRate(r), { name: 'RangeError', message: /setSliceRate: slice rate must be a finite number in \(0, 1\]/ }, String(r));
  }
  t.throws(() => net.setSliceRate('0.5' as never), { name: 'TypeError' });
  t.throws(() => net.slice(0), /slice: slice rate/);
});

t.test('the width rule: k = clamp(ceil(rG), 1, G) groups, ceil(C k / G) units', async (t) => {
  t.equal(ms.sliceWidth(64, 0.25, 8), 16);
  t.equal(ms.sliceWidth(64, 0.5, 8), 32);
  t.equal(ms.sliceWidth(64, 0.75, 8), 48);
  t.equal(ms.sliceWidth(64, 0.26, 8), 24, 'snapped up to the next group');
  t.equal(ms.sliceWidth(64, 0.01, 8), 8, 'at least one group');
  t.equal(ms.sliceWidth(10, 0.5, 8), 5);
  t.equal(ms.sliceWidth(10, 0.125, 8), 2, 'ceil of units');
  t.equal(ms.activeGroups(0.3 * 10 / 10, 10), 3, 'no float drift: 0.3 * 10 is 3 groups, not 4');
});

t.test('GroupNorm keeps channels per group constant as the width shrinks', async (t) => {
  t.equal(ms.nn.scaledNormGroups(64, 8, 64), 8);
  t.equal(ms.nn.scaledNormGroups(64, 8, 32), 4);
  t.equal(ms.nn.scaledNormGroups(64, 8, 8), 1);
  t.equal(ms.nn.scaledNormGroups(16, 8, 4), 2);
  t.equal(ms.nn.scaledNormGroups(12, 4, 9), 3);
  const g = ms.nn.scaledNormGroups(10, 5, 7);
  t.equal(7 % g, 0, 'falls back to a divisor when the width is not a multiple');
});

t.test('gradients of a sliced model touch only the prefix of each weight', async (t) => {
  const net = ms.models.resnet({ depth: 20, classes: 10 });
  net.setSliceRate(0.5);
  const x = ms.randn([2, 3, 8, 8], { seed: 2 });
  ms.crossEntropy(net.forward(x), [1, 7]).backward();
  const conv = net.layer1.at(0) as ms.models.PreActBasicBlock;
  const g = conv.conv1.weight.grad!;
  // weight [16, 16, 3, 3]; at rate 0.5 the prefix is [8, 8, 3, 3].
  let inside = 0;
  let outside = 0;
  for (let o = 0; o < 16; o++)
    for (let c = 0; c < 16; c++)
      for (let k = 0; k < 9; k++) {
        const v = Math.abs(g.data[(o * 16 + c) * 9 + k]);
        if (o < 8 && c < 8) inside += v;
        else outside += v;
      }
  t.ok(inside > 0, 'the prefix has gradient');
  t.equal(outside, 0, 'nothing outside the prefix');
  const fc = net.fc.weight.grad!;
  for (let o = 0; o < 10; o++) t.equal(fc.data.subarray(o * 64 + 32, o * 64 + 64).reduce((a, b) => a + Math.abs(b), 0), 0);
  t.equal(net.conv1.weight.grad!.data.subarray(8 * 27).reduce((a, b) => a + Math.abs(b), 0), 0, 'stem: only 8 filters');
});

t.test('slice(r) equals setSliceRate(r) at every rate and leaves the source alone', async (t) => {
  ms.manualSeed(9);
  const models: [ms.nn.Module, number[]][] = [
    [ms.models.resnet({ depth: 20, classes: 10 }), [3, 9, 9]],
    [ms.models.resnet({ depth: 29, classes: 4, block: 'bottleneck' }), [3, 8, 8]],
    [ms.models.resnet({ depth: 20, classes: 10, norm: 'batch' }), [3, 8, 8]],
    [ms.models.mlp({ inputs: 12, hidden: [20, 13], classes: 4 }), [12]],
  ];
  for (const [model, shape] of models) {
    model.eval();
    const x = ms.randn([3, ...shape], { seed: 11 });
    const snapshot = model.parameters().map((p) => p.data.slice());
    for (let k = 1; k <= 8; k++) {
      const r = k / 8;
      model.setSliceRate(r);
      const expected = ms.noGrad(() => model.forward(x));
      const compact = model.slice(r);
      compact.eval();
      t.equal(compact.sliceRate, 1);
      const got = ms.noGrad(() => compact.forward(x));
      t.same(got.shape, expected.shape);
      t.ok(maxAbsDiff(got, expected) < 1e-5, `${ms.modelRecord(model).config!.kind} rate ${r}`);
      t.equal(compact.numParameters(), ms.costs(model, shape, [r])[0].params);
    }
    t.equal(model.sliceRate, 1, 'source rate restored');
    model.parameters().forEach((p, i) => t.same(p.data, snapshot[i]));
  }
  const net = ms.models.resnet({ depth: 20, classes: 10 });
  const small = net.slice(0.25);
  small.parameters()[0].data[0] += 1;
  t.not(small.parameters()[0].data[0], net.parameters()[0].data[0], 'copies, not views');
  t.ok(small.numParameters() < net.numParameters() * 0.1, 'about r^2 of the memory');
});

t.test('switchable batch norm keeps private statistics per trained rate', async (t) => {
  ms.manualSeed(4);
  const net = ms.models.resnet({ depth: 20, classes: 10, norm: 'batch' });
  ms.useSwitchableBatchNorm(net, [1, 0.5]);
  const names = net.namedBuffers().map(([n]) => n);
  t.ok(names.includes('layer1.0.bn1.running_mean'));
  t.ok(names.includes('layer1.0.bn1.rate_0_5.running_mean'));
  const x = ms.randn([4, 3, 8, 8], { seed: 2 });
  net.train();
  net.setSliceRate(0.5);
  net.forward(x);
  const bn = (net.layer1.at(0) as ms.models.PreActBasicBlock).bn1 as ms.nn.BatchNorm2d;
  t.not(bn.stateForRate(0.5).runningMean.data[0], 0, 'rate 0.5 statistics moved');
  t.equal(bn.stateForRate(1).runningMean.data[0], 0, 'rate 1 statistics untouched');
  t.equal(bn.stateForRate(0.75), bn.stateForRate(1), 'untrained 0.75 uses the nearest trained rate above');
  t.equal(bn.stateForRate(0.25), bn.stateForRate(0.5), 'below the narrowest: the narrowest');
  await ms.calibrateBatchNorm(net, [{ x }, { x: ms.randn([4, 3, 8, 8], { seed: 3 }) }], [0.75]);
  t.not(bn.stateForRate(0.75), bn.stateForRate(1), 'calibrated 0.75 has its own statistics');
  t.not(bn.stateForRate(0.75).runningMean.data[0], bn.stateForRate(1).runningMean.data[0]);
  t.equal(net.sliceRate, 0.5, 'rate restored after calibration');
});
