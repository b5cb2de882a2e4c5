import t from 'tap';
import * as ms from '../../src/index.js';
import { captureCalls } from '../../src/capture.js';

const maxDiff = (a: ms.Tensor, b: ms.Tensor) => {
  let worst = 0;
  for (let i = 0; i < a.size; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
  return worst;
};

t.test('a replayed plan gives the eager result, for every model kind, rate and slice', async (t) => {
  ms.manualSeed(5);
  const cases: [string, ms.nn.Module, number[]][] = [
    ['mlp', ms.models.mlp({ inputs: 12, hidden: [16, 8], classes: 3 }), [12]],
    ['resnet group', ms.models.resnet({ depth: 8, classes: 4 }), [3, 8, 8]],
    ['resnet batch', ms.models.resnet({ depth: 11, block: 'bottleneck', classes: 4, norm: 'batch' }), [3, 8, 8]],
    ['vgg', ms.models.vgg({ depth: 11, classes: 4 }), [3, 32, 32]],
  ];
  for (const [name, model, shape] of cases) {
    const x = ms.randn([7, ...shape], { seed: 8 });
    for (const rate of [1, 0.625, 0.5, 0.25]) {
      const eager = ms.infer(model, x, { rate, plan: false, sliceSize: 3 });
      const first = ms.infer(model, x, { rate, sliceSize: 3 });
      const again = ms.infer(model, x, { rate, sliceSize: 3 });
      // Equal up to rounding: a residual add folded into its convolution sums in another order.
      t.ok(maxDiff(eager, first) < 1e-5 && maxDiff(eager, again) < 1e-5, `${name} at rate ${rate}: captured and replayed passes equal the eager one`);
      t.equal(maxDiff(first, again), 0, `${name} at rate ${rate}: replays are deterministic`);
    }
  }
});

t.test('a plan places intermediates in a shared arena smaller than the eager buffers', async (t) => {
  const model = ms.models.resnet({ depth: 20, classes: 10 }).eval();
  const plan = ms.InferencePlan.build(model, [4, 3, 16, 16]);
  if (typeof plan === 'string') throw new Error(plan);
  t.same(plan.outputShape, [4, 10]);
  t.ok(plan.arenaBytes > 0 && plan.arenaBytes * 4 < plan.eagerBytes, `arena ${plan.arenaBytes} B, eager ${plan.eagerBytes} B`);
  const x = ms.randn([4, 3, 16, 16], { seed: 1 });
  const out = new Float32Array(40);
  plan.run(x.data, 0, out, 0);
  const want = ms.noGrad(() => model.forward(x));
  t.ok(maxDiff(new ms.Tensor(out, [4, 10]), want) < 1e-5, 'the eager result, up to rounding');
  t.equal(plan.fusedAdds, 9, 'every residual add folded into the convolution before it');
  t.equal(plan.foldedNorms, 18, 'every group norm but the last (read by the pooling) folded into the convolutions after it');
  t.equal(plan.statsInConvs, 18, 'and the statistics of each computed by the convolution writing its input');
  const vgg = ms.InferencePlan.build(ms.models.vgg({ depth: 11, classes: 10 }).eval(), [1, 3, 32, 32]);
  t.equal(typeof vgg !== 'string' && vgg.fusedAdds, 0, 'VGG has no residual adds');
});

t.test('group norms folded into the convolutions that read them: the eager result bit for bit, and only where it is safe', async (t) => {
  ms.manualSeed(3);
  for (const [name, model, shape, folds] of [
    ['ResNet-11 bottleneck', ms.models.resnet({ depth: 11, classes: 5, block: 'bottleneck' }), [3, 3, 16, 16], 9],
    ['VGG-11 (a ReLU module after each norm)', ms.models.vgg({ depth: 11, classes: 5 }), [2, 3, 32, 32], 3],
    ['ResNet-8, batch norm (nothing to fold)', ms.models.resnet({ depth: 8, classes: 5, norm: 'batch' }), [2, 3, 16, 16], 0],
  ] as const) {
    model.eval();
    for (const rate of [1, 0.5]) {
      model.setSliceRate(rate);
      const plan = ms.InferencePlan.build(model, [...shape]);
      if (typeof plan === 'string') throw new Error(plan);
      t.equal(plan.foldedNorms, folds, `${name} at ${rate}: ${folds} norms folded`);
      t.equal(plan.statsInConvs, folds, `${name} at ${rate}: their statistics computed by the convolutions before them`);
      const x = ms.randn([...shape], { seed: 4 });
      const out = new Float32Array(plan.outputShape.reduce((a, b) => a * b, 1));
      plan.run(x.data, 0, out, 0);
      const want = ms.noGrad(() => model.forward(x));
      // Residual adds folded into convolutions round differently; a folded norm does not, so
      // VGG (no residual adds) must give the eager result exactly.
      const diff = maxDiff(new ms.Tensor(out, want.shape), want);
      if (name.startsWith('VGG')) t.equal(diff, 0, `${name} at ${rate}: the eager result, bit for bit`);
      else t.ok(diff < 1e-5, `${name} at ${rate}: the eager result, up to the adds' rounding`);
    }
  }
  // The norm's input is added to in place (a residual folded into conv0) before the
  // convolution reading the norm's output runs: folding would make it read the sum.
  class Hazard extends ms.nn.Module {
    pre = this.registerModule('pre', new ms.nn.Conv2d(4, 4, 3, { padding: 1, bias: false }));
    norm = this.registerModule('norm', new ms.nn.GroupNorm(2, 4));
    conv0 = this.registerModule('conv0', new ms.nn.Conv2d(4, 4, 3, { padding: 1, bias: false }));
    convH = this.registerModule('convH', new ms.nn.Conv2d(4, 4, 3, { padding: 1, bias: false }));
    forward(input: ms.Tensor): ms.Tensor {
      const x = this.pre.forward(input);
      const h = ms.groupNorm(x, 2, this.norm.weight, this.norm.bias, { relu: true });
      const t0 = ms.add(this.conv0.forward(input), x);
      return ms.add(this.convH.forward(h), t0);
    }
  }
  const hazard = new Hazard().eval();
  const xs = ms.randn([2, 4, 16, 16], { seed: 5 });
  const plan = ms.InferencePlan.build(hazard, [2, 4, 16, 16]);
  if (typeof plan === 'string') throw new Error(plan);
  const out = new Float32Array(2 * 4 * 16 * 16);
  plan.run(xs.data, 0, out, 0);
  t.equal(plan.fusedAdds, 2, 'both adds folded: conv0 adds into the norm\'s input in place');
  t.equal(plan.foldedNorms, 0, 'so the norm is not folded');
  t.ok(maxDiff(new ms.Tensor(out, [2, 4, 16, 16]), ms.noGrad(() => hazard.forward(xs))) < 1e-5, 'a norm whose input changes before its reader runs: the eager result');
});

t.test('the statistics of a folded norm move into the convolution only when a convolution wrote its whole input', async (t) => {
  class TwoNorms extends ms.nn.Module {
    convA = this.registerModule('convA', new ms.nn.Conv2d(4, 8, 3, { padding: 1, bias: false }));
    convB = this.registerModule('convB', new ms.nn.Conv2d(8, 4, 3, { padding: 1, bias: false }));
    convC = this.registerModule('convC', new ms.nn.Conv2d(4, 4, 1, { bias: false }));
    normA = this.registerModule('normA', new ms.nn.GroupNorm(4, 8));
    normB = this.registerModule('normB', new ms.nn.GroupNorm(2, 4));
    forward(input: ms.Tensor): ms.Tensor {
      // normA reads convA's output: its statistics can be convA's.
      const h = this.convB.forward(this.normA.forwardRelu(this.convA.forward(input)));
      // normB reads a sum with the model's input (no convolution wrote it whole): not moved.
      return this.convC.forward(this.normB.forwardRelu(ms.add(h, input)));
    }
  }
  const model = new TwoNorms().eval();
  for (const p of model.parameters()) p.data.forEach((_, i, a) => (a[i] = Math.sin(i * 1.7 + a.length)));
  const plan = ms.InferencePlan.build(model, [3, 4, 12, 12]);
  if (typeof plan === 'string') throw new Error(plan);
  t.equal(plan.foldedNorms, 2, 'both norms folded into the convolutions after them');
  t.equal(plan.statsInConvs, 1, 'one norm\'s statistics computed by the convolution before it');
  const x = ms.randn([3, 4, 12, 12], { seed: 8 });
  const out = new Float32Array(3 * 4 * 12 * 12);
  plan.run(x.data, 0, out, 0);
  const want = ms.noGrad(() => model.forward(x));
  t.ok(out.every((v, i) => Object.is(v, want.data[i])), 'the eager result bit for bit');
});

t.test('plans follow the weights: in-place changes at once, replaced arrays by a rebuild', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 4, norm: 'batch' });
  const x = ms.randn([4, 3, 8, 8], { seed: 2 });
  ms.infer(model, x);
  // In place: new values in the same arrays, running statistics included.
  const state = model.stateDict();
  for (const [name, v] of Object.entries(state)) {
    if (name.endsWith('running_var')) v.data.fill(2);
    else if (name.endsWith('weight')) v.data.forEach((w, i) => (v.data[i] = w * 0.5));
  }
  t.ok(maxDiff(ms.infer(model, x), ms.infer(model, x, { plan: false })) < 1e-5, 'in-place weight and statistics changes are seen');
  // Replaced arrays: the plan notices and is rebuilt.
  const fc = model.namedParameters().find(([n]) => n === 'fc.weight')![1];
  (fc as { data: Float32Array }).data = fc.data.map((v) => v + 1); // what plain JavaScript can do
  t.ok(maxDiff(ms.infer(model, x), ms.infer(model, x, { plan: false })) < 1e-5, 'replaced arrays are seen');
  ms.releasePlans(model);
  t.ok(maxDiff(ms.infer(model, x), ms.infer(model, x, { plan: false })) < 1e-5, 'released plans are rebuilt');
});

class JsHead extends ms.nn.Module {
  forward(x: ms.Tensor): ms.Tensor {
    // Computes in JavaScript: a replay could not repeat it.
    return new ms.Tensor(x.data.map((v) => v * 2 + 1), x.shape);
  }
}

t.test('models a replay cannot repeat run eagerly', async (t) => {
  const model = new ms.nn.Sequential(ms.models.mlp({ inputs: 6, hidden: [5], classes: 3 }), new JsHead());
  const x1 = ms.randn([2, 6], { seed: 1 });
  const x2 = ms.randn([2, 6], { seed: 2 });
  ms.infer(model, x1);
  const got = ms.infer(model, x2);
  t.equal(maxDiff(got, ms.noGrad(() => model.forward(x2))), 0, 'a custom module keeps the eager path by default');
  // Ops computed in JavaScript are declared kernels too: a plan repeats them.
  class SumHead extends ms.nn.Module {
    forward(x: ms.Tensor): ms.Tensor {
      return ms.reshape(ms.sum(x), [1, 1]);
    }
  }
  const summed = new ms.nn.Sequential(new SumHead());
  t.type(ms.InferencePlan.build(summed, [1, 3]), ms.InferencePlan, 'sum is a kernel a plan replays');
  const y1 = ms.infer(summed, ms.tensor([1, 2, 3], [1, 3]), { plan: true });
  const y2 = ms.infer(summed, ms.tensor([4, 5, 6], [1, 3]), { plan: true });
  t.same([y1.data[0], y2.data[0]], [6, 15], 'and replays it with each input');
  // What a kernel cannot read again makes the capture refuse: labels in a number[].
  const { capture } = captureCalls(() => ms.nllLoss(ms.tensor([[-1, -2]]), [1]));
  t.match(capture.unsupported, /labels in a number\[\]/);
  t.throws(() => ms.infer(model, x1, { plan: 'yes' as never }), /infer: plan must be a boolean/);
  t.throws(() => captureCalls(() => captureCalls(() => 1)), /a capture is already open/);
});

t.test('batchNorm in training mode is captured, running statistics included', async (t) => {
  ms.manualSeed(3);
  const model = ms.models.resnet({ depth: 8, classes: 4, norm: 'batch' }).train();
  const twin = ms.models.resnet({ depth: 8, classes: 4, norm: 'batch' }).train();
  twin.loadStateDict(model.stateDict());
  const plan = ms.InferencePlan.build(model, [2, 3, 8, 8]);
  if (typeof plan === 'string') throw new Error(plan);
  twin.loadStateDict(model.stateDict()); // the capture ran one pass on zeros: so does the twin
  const out = new Float32Array(2 * 4);
  for (const seed of [1, 2]) {
    const x = ms.randn([2, 3, 8, 8], { seed });
    plan.run(x.data, 0, out, 0);
    const want = ms.noGrad(() => twin.forward(x));
    t.ok(maxDiff(new ms.Tensor(out.slice(), [2, 4]), want) < 1e-5, `replay ${seed}: batch statistics of this batch`);
  }
  const rv = (m: ms.nn.Module) => m.namedBuffers().find(([n]) => n.endsWith('running_var'))![1];
  t.ok(maxDiff(rv(model), rv(twin)) < 1e-6, 'the running statistics moved as in two eager passes');
});

t.test('a batch remainder replays as power-of-two slices, one plan per size', async (t) => {
  const model = ms.models.resnet({ depth: 8, classes: 4 });
  const x = ms.randn([27, 3, 8, 8], { seed: 4 });
  const eager = ms.infer(model, x, { sliceSize: 16, plan: false });
  const planned = ms.infer(model, x, { sliceSize: 16 });
  // Other slice sizes than the eager 16 + 11 may block the kernels' sums differently.
  t.ok(maxDiff(eager, planned) < 1e-5, '27 = 16 + 8 + 2 + 1 gives the eager result');
  t.same(planned.shape, [27, 4]);
});

// Issue 14: plans went stale when a layer changed after they were built.
t.test('a plan is rebuilt after a layer changes: sliceOutput, eps, stride, children', async (t) => {
  ms.manualSeed(11);
  const mlp = ms.models.mlp({ inputs: 12, hidden: [16, 16], classes: 3 });
  const x = ms.randn([4, 12], { seed: 3 });
  ms.infer(mlp, x, { rate: 0.5 }); // a plan at rate 0.5 now exists
  const first = mlp.modules().find((m): m is ms.nn.Linear => m instanceof ms.nn.Linear)!;
  const before = mlp.structureVersion;
  first.sliceOutput = false; // its output stays full width at every rate
  t.ok(mlp.structureVersion > before, 'setting sliceOutput moves the version');
  t.ok(maxDiff(ms.infer(mlp, x, { rate: 0.5 }), ms.infer(mlp, x, { rate: 0.5, plan: false })) < 1e-5, 'sliceOutput: the plan follows');

  const resnet = ms.models.resnet({ depth: 8, classes: 4 });
  const xi = ms.randn([3, 3, 8, 8], { seed: 4 });
  ms.infer(resnet, xi);
  const norm = resnet.modules().find((m): m is ms.nn.GroupNorm => m instanceof ms.nn.GroupNorm)!;
  norm.eps = 0.5;
  t.ok(maxDiff(ms.infer(resnet, xi), ms.infer(resnet, xi, { plan: false })) < 1e-5, 'GroupNorm eps: the plan follows');
  const conv = resnet.modules().filter((m): m is ms.nn.Conv2d => m instanceof ms.nn.Conv2d)[1];
  conv.dilation = 2;
  conv.padding = 2;
  t.ok(maxDiff(ms.infer(resnet, xi), ms.infer(resnet, xi, { plan: false })) < 1e-5, 'Conv2d dilation and padding: the plan follows');
  t.throws(() => {
    conv.stride[0] = 2;
  }, TypeError, 'an in-place write, which could not move the version, is refused');

  const bn = ms.models.resnet({ depth: 8, classes: 4, norm: 'batch' });
  ms.infer(bn, xi);
  const bnorm = bn.modules().find((m): m is ms.nn.BatchNorm2d => m instanceof ms.nn.BatchNorm2d)!;
  bnorm.eps = 0.5;
  t.ok(maxDiff(ms.infer(bn, xi), ms.infer(bn, xi, { plan: false })) < 1e-5, 'BatchNorm2d eps: the plan follows');

  const seq = new ms.nn.Sequential(new ms.nn.Linear(6, 5), new ms.nn.ReLU(), new ms.nn.Linear(5, 3));
  const xs = ms.randn([2, 6], { seed: 5 });
  ms.infer(seq, xs);
  const pool = new ms.nn.MaxPool2d(2);
  const v = seq.structureVersion;
  pool.kernelSize = 3;
  t.equal(seq.structureVersion, v, "a module outside the model does not move the model's version");
  t.throws(() => {
    (pool.options as { stride?: number }).stride = 1;
  }, TypeError, "a pool's options are frozen");
});

t.test('what does not move structureVersion: the rate, train/eval, parameter values', async (t) => {
  const model = ms.models.mlp({ inputs: 6, hidden: [5], classes: 3 });
  const v = model.structureVersion;
  model.setSliceRate(0.5);
  model.eval();
  model.train();
  model.parameters()[0].data[0] += 1;
  model.loadStateDict(model.stateDict());
  t.equal(model.structureVersion, v, 'unchanged');
  model.markStructureChanged();
  t.ok(model.structureVersion > v, 'markStructureChanged moves it (for custom modules)');
});

t.test('{plan: true} on a module that computes in JavaScript is refused, not replayed', async (t) => {
  const model = new ms.nn.Sequential(ms.models.mlp({ inputs: 6, hidden: [5], classes: 3 }), new JsHead());
  model.eval();
  t.match(ms.InferencePlan.build(model, [2, 6]), /^JsHead \(module '1'\) computes in JavaScript: the output was not written by a kernel/);
  const x1 = ms.randn([2, 6], { seed: 1 });
  const x2 = ms.randn([2, 6], { seed: 2 });
  const y1 = ms.infer(model, x1, { plan: true });
  const y2 = ms.infer(model, x2, { plan: true });
  t.equal(maxDiff(y1, ms.noGrad(() => model.forward(x1))), 0, 'the first input: the eager result');
  t.equal(maxDiff(y2, ms.noGrad(() => model.forward(x2))), 0, 'another input: its own eager result, not the captured one');
  // JavaScript work in the middle of a pass, feeding a kernel.
  class JsMiddle extends ms.nn.Module {
    forward(x: ms.Tensor): ms.Tensor {
      return ms.tensor(x.data.map((v) => Math.tanh(v)), x.shape);
    }
  }
  const middle = new ms.nn.Sequential(new ms.nn.Linear(6, 4), new JsMiddle(), new ms.nn.Linear(4, 2)).eval();
  t.match(ms.InferencePlan.build(middle, [2, 6]), /^JsMiddle \(module '1'\) computes in JavaScript: kernel gemm reads a tensor made outside the kernels/);
  const z2 = ms.infer(middle, x2, { plan: true });
  t.equal(maxDiff(z2, ms.noGrad(() => middle.forward(x2))), 0, 'run eagerly instead');
  // A module returning its input unchanged is not JavaScript work.
  const plain = new ms.nn.Sequential(new ms.nn.Linear(6, 4), new ms.nn.Identity()).eval();
  t.type(ms.InferencePlan.build(plain, [2, 6]), ms.InferencePlan, 'Identity is replayable');
});
