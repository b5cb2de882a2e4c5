// Training plans (src/slicing/train-plan.ts): a replayed step gives the
// weights eager steps give, at every schedule, with GroupNorm and with
// switchable BatchNorm, every optimizer, distillation and micro-batches; the
// gradients a replay leaves are readable and hold nothing from the step before;
// the plans kept stay bounded.
import t from 'tap';
import * as ms from '../../src/index.js';
import { plannedStep, releaseTrainingPlans, trainingStepCounts, TrainingPlan, type StepMode } from '../../src/slicing/train-plan.js';
import { stepSettings } from '../../src/slicing/step.js';

type Batch = { x: ms.Tensor; y: Int32Array };

/** 20 batches: eight of 6 images, a smaller one of 4, then 6 again. */
function batches(shape: number[], classes: number, seed: number): Batch[] {
  const gen = new ms.Generator(seed);
  return [6, 6, 6, 6, 6, 6, 6, 6, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6].map((n, i) => ({
    x: ms.randn([n, ...shape], { seed: seed * 100 + i }),
    y: Int32Array.from({ length: n }, () => Math.floor(gen.uniform() * classes)),
  }));
}

function maxRel(a: ms.nn.Module, b: ms.nn.Module): number {
  let worst = 0;
  const sb = b.stateDict();
  for (const [name, v] of Object.entries(a.stateDict())) {
    let scale = 1e-3;
    let diff = 0;
    v.data.forEach((x, i) => {
      scale = Math.max(scale, Math.abs(x));
      diff = Math.max(diff, Math.abs(x - sb[name].data[i]));
    });
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

type Build = () => ms.nn.Module;
const MODELS: [string, Build, number[]][] = [
  ['ResNet with GroupNorm', () => ms.models.resnet({ depth: 8, classes: 3, inputShape: [3, 8, 8] }), [3, 8, 8]],
  ['ResNet with switchable BatchNorm', () => ms.models.resnet({ depth: 8, classes: 3, norm: 'batch', inputShape: [3, 8, 8] }), [3, 8, 8]],
  ['MLP', () => ms.models.mlp({ inputs: 10, hidden: [12, 12], classes: 3 }), [10]],
];
const SCHEDULES: ms.ScheduleName[] = ['random', 'random_min_max', 'round_robin', 'uniform'];
const OPTIMIZERS: [string, (p: ms.Tensor[]) => ms.optim.Optimizer][] = [
  ['SGD with Nesterov momentum and weight decay', (p) => new ms.optim.SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 })],
  ['Adam', (p) => new ms.optim.Adam(p, { lr: 0.01 })],
  ['AdamW', (p) => new ms.optim.AdamW(p, { lr: 0.01 })],
];

async function train(build: Build, data: Batch[], plan: boolean, schedule: ms.ScheduleName, optimizer: number, extra: Partial<ms.FitOptions> = {}) {
  ms.manualSeed(7);
  const model = build();
  const opt = OPTIMIZERS[optimizer][1](model.parameters());
  const lrSchedule = new ms.optim.CosineLR(opt, { totalEpochs: 1 });
  await ms.fit(model, data, { epochs: 1, optimizer: opt, schedule, scheduleK: 2, seed: 3, plan, lrSchedule, ...extra });
  return { model, counts: trainingStepCounts(model) };
}

t.test('planned steps give the weights eager steps give: every schedule, both norms, every optimizer', async (t) => {
  for (const [name, build, shape] of MODELS) {
    const data = batches(shape, 3, 5);
    for (const [i, schedule] of SCHEDULES.entries()) {
      const optimizer = i % OPTIMIZERS.length;
      const eager = await train(build, data, false, schedule, optimizer);
      const planned = await train(build, data, true, schedule, optimizer);
      const rel = maxRel(planned.model, eager.model);
      const { replay, build: built } = planned.counts;
      t.ok(rel < 1e-5, `${name}, ${schedule}, ${OPTIMIZERS[optimizer][0]}: max relative difference ${rel.toExponential(2)} after 20 steps (${built} built, ${replay} replayed)`);
      if (schedule === 'uniform') t.equal(built, 0, 'uniform rates never repeat: no plan is built');
      else t.ok(replay >= 3, 'steps were replayed');
      t.equal(eager.counts.replay + eager.counts.build + eager.counts.eager, 0, 'plan: false takes the eager path');
    }
  }
});

t.test('distillation and micro-batches replay too', async (t) => {
  const build = MODELS[0][1];
  const data = batches([3, 8, 8], 3, 6);
  for (const extra of [{ distill: { mix: 0.3 } }, { microBatch: 4 }, { distill: true, microBatch: 5 }] as Partial<ms.FitOptions>[]) {
    const eager = await train(build, data, false, 'round_robin', 1, extra);
    const planned = await train(build, data, true, 'round_robin', 1, extra);
    const rel = maxRel(planned.model, eager.model);
    t.ok(rel < 1e-5, `${JSON.stringify(extra)}: max relative difference ${rel.toExponential(2)}`);
    t.ok(planned.counts.replay >= 15, `${planned.counts.replay} steps replayed`);
  }
});

t.test('a plan is built on the second sight of a step and replayed after; gradients are readable and fresh', async (t) => {
  ms.manualSeed(2);
  const model = ms.models.resnet({ depth: 8, classes: 3, inputShape: [3, 8, 8] }).train();
  const twin = ms.models.resnet({ depth: 8, classes: 3, inputShape: [3, 8, 8] }).train();
  twin.loadStateDict(model.stateDict());
  const modes: StepMode[] = [];
  const rates = [1, 0.25];
  for (let i = 0; i < 4; i++) {
    const x = ms.randn([5, 3, 8, 8], { seed: i });
    const y = new Int32Array([0, 1, 2, 1, i % 3]);
    const got = plannedStep(model, x, y, rates, { sightings: 2 });
    modes.push(got.mode);
    for (const p of twin.parameters()) p.grad = null;
    const want = ms.slicedStep(twin, x, y, rates);
    t.ok(got.results.every((r, k) => Math.abs(r.loss - want[k].loss) < 1e-5 && r.correct === want[k].correct), `step ${i}: losses and counts as eager`);
    const pg = model.parameters();
    twin.parameters().forEach((p, k) => {
      const g = pg[k].grad;
      if (p.grad === null) t.equal(g, null, 'a parameter the step does not reach has no gradient');
      else if (g === null || g.data.some((v, j) => Math.abs(v - p.grad!.data[j]) > 1e-5 * (1 + Math.abs(v)))) t.fail(`step ${i}: gradient ${k} differs`);
    });
    // The optimizer zeroes .grad: the replay must neither need nor read it.
    for (const p of model.parameters()) p.grad = null;
  }
  t.same(modes, ['eager', 'build', 'replay', 'replay']);
  // A step at another rate set may reach less: the replay of [1, 0.25] must not leave its gradients there.
  t.equal(plannedStep(model, ms.randn([5, 3, 8, 8], { seed: 9 }), new Int32Array(5), [0.25]).mode, 'build', 'by default a plan is built on the first sight');
  const fc = model.namedParameters().find(([n]) => n === 'fc.weight')![1];
  const [classes, inputs] = fc.shape;
  let beyond = 0;
  for (let c = 0; c < classes; c++) for (let j = inputs / 4; j < inputs; j++) beyond = Math.max(beyond, Math.abs(fc.grad!.data[c * inputs + j]));
  t.equal(beyond, 0, 'beyond the narrow prefix the fc gradient is zero after a rate-0.25 replay');
  t.throws(() => plannedStep(model, ms.randn([5, 3, 8, 8]), new Int32Array([0, 1, 2, 3, 0]), [0.25]), /labels\[3\] = 3 is not a class index in \[0, 3\)/);
  releaseTrainingPlans(model);
});

class Doubler extends ms.nn.Module {
  forward(x: ms.Tensor): ms.Tensor {
    // A factor made in JavaScript: a replay would keep the captured one.
    return ms.mul(x, new ms.Tensor(x.data.map((v) => (v > 0 ? 2 : 1)), x.shape));
  }
}

t.test('plans stay bounded, follow the structure, and are refused for what they cannot replay', async (t) => {
  ms.manualSeed(4);
  const model = ms.models.mlp({ inputs: 6, hidden: [8], classes: 2 }).train();
  const x = ms.randn([3, 6], { seed: 1 });
  const y = new Int32Array([0, 1, 1]);
  const builds: StepMode[] = [];
  // 12 rate sets, each seen twice: every one gets built, at most 8 are kept.
  for (let k = 1; k <= 12; k++) {
    const rates = [1, k / 16];
    plannedStep(model, x, y, rates, { sightings: 2 });
    builds.push(plannedStep(model, x, y, rates, { sightings: 2 }).mode);
  }
  t.ok(builds.every((m) => m === 'build'), 'each built on its second sight');
  t.equal(plannedStep(model, x, y, [1, 12 / 16]).mode, 'replay', 'the newest is kept');
  t.equal(plannedStep(model, x, y, [1, 1 / 16]).mode, 'build', 'the oldest was dropped, and is built again');
  // The structure version: a layer change drops every plan.
  const lin = model.modules().find((m): m is ms.nn.Linear => m instanceof ms.nn.Linear)!;
  t.equal(plannedStep(model, x, y, [1, 12 / 16]).mode, 'replay');
  lin.sliceOutput = false;
  t.equal(plannedStep(model, x, y, [1, 12 / 16]).mode, 'build', 'after sliceOutput changes, the plan is built again');
  // What a replay could not repeat stays eager, with the reason.
  const custom = new ms.nn.Sequential(ms.models.mlp({ inputs: 6, hidden: [8], classes: 2 }), new Doubler()).train();
  const built = TrainingPlan.build(custom, x, y, stepSettings('test', custom, 3, [1], {}));
  t.match(built.plan, /Doubler \(module '1'\) computes in JavaScript: kernel binary reads a tensor made outside the kernels/);
  t.ok(Number.isFinite(built.results[0].loss), 'the step itself ran');
  plannedStep(custom, x, y, [1]);
  t.match(plannedStep(custom, x, y, [1]), { mode: 'eager', why: /Doubler/ });
  releaseTrainingPlans(model);
});

t.test('plan passes: residual adds fold into convolutions, norms into the convolutions reading them, add gradients pass through, first writes overwrite, the arena reuses space', async (t) => {
  ms.manualSeed(6);
  const model = ms.models.resnet({ depth: 14, classes: 3, inputShape: [3, 8, 8] }).train();
  const twin = ms.models.resnet({ depth: 14, classes: 3, inputShape: [3, 8, 8] }).train();
  twin.loadStateDict(model.stateDict());
  const x = ms.randn([4, 3, 8, 8], { seed: 1 });
  const y = new Int32Array([0, 1, 2, 0]);
  const { plan } = TrainingPlan.build(model, x, y, stepSettings('test', model, 4, [1, 0.5], {}));
  if (typeof plan === 'string') throw new Error(plan);
  t.equal(plan.passes.residualAdds, 2 * 6, `${plan.passes.residualAdds}: each of the 6 residual adds at both rates is folded into the convolution before it`);
  t.equal(plan.passes.foldedNorms, 2 * 12, `${plan.passes.foldedNorms}: both norms of each of the 6 blocks at both rates fold into the convolutions reading them`);
  t.equal(plan.passes.aliasedSums, 2 * 6 * 2, `${plan.passes.aliasedSums}: both sums of each of the 6 residual adds at both rates are gone`);
  t.ok(plan.passes.overwrites >= 2 * 12, `${plan.passes.overwrites} fills replaced by overwriting first writes`);
  t.ok(plan.arenaBytes < 0.7 * plan.eagerBytes, `arena ${plan.arenaBytes} bytes for ${plan.eagerBytes} of intermediates`);
  // Replays on new data give the eager gradients, bit for bit.
  for (const seed of [2, 3]) {
    const xs = ms.randn([4, 3, 8, 8], { seed });
    plan.run(xs.data, y);
    for (const p of twin.parameters()) p.grad = null;
    ms.slicedStep(twin, xs, y, [1, 0.5]);
    const got = model.parameters().map((p) => p.grad?.data ?? null);
    const bad = twin.parameters().findIndex((p, i) => (p.grad === null) !== (got[i] === null) || (p.grad !== null && p.grad.data.some((v, j) => v !== got[i]![j])));
    t.equal(bad, -1, `replay on batch ${seed}: every gradient equals the eager one`);
  }
});

t.test('fit releases its plans (and their arena) when it returns', async (t) => {
  ms.manualSeed(8);
  const model = ms.models.mlp({ inputs: 6, hidden: [8], classes: 2 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.1 });
  const x = ms.randn([3, 6], { seed: 1 });
  const y = new Int32Array([0, 1, 1]);
  await ms.fit(model, [{ x, y }, { x, y }], { epochs: 1, optimizer, rates: [1], schedule: 'round_robin' });
  t.equal(trainingStepCounts(model).replay, 1, 'the second batch replayed');
  model.train();
  t.equal(plannedStep(model, x, y, [1]).mode, 'build', 'after fit, the same step has no plan left');
  releaseTrainingPlans(model);
});

t.test('fit checks the plan option', async (t) => {
  const model = ms.models.mlp({ inputs: 6, hidden: [8], classes: 2 });
  const optimizer = new ms.optim.SGD(model.parameters(), { lr: 0.1 });
  await t.rejects(ms.fit(model, [], { epochs: 1, optimizer, plan: 'yes' as never }), /fit: plan must be a boolean/);
});
