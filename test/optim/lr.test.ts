// Learning-rate schedules: MultiStepLR, CosineLR, WarmupLR (alone and wrapping
// another schedule), per-epoch step(), fractional setEpoch, state dicts.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertOpError } from '../helpers/reference.js';

function sgd(lr: number): ms.optim.SGD {
  return new ms.optim.SGD([ms.zeros([2])], { lr, momentum: 0.9 });
}

const close = (a: number, b: number, tol = 1e-12): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

t.test('MultiStepLR: gamma at each milestone, one step() per epoch', async (t) => {
  const opt = sgd(0.4);
  const sched = new ms.optim.MultiStepLR(opt, { milestones: [5, 2], gamma: 0.1 });
  t.same(sched.milestones, [2, 5], 'milestones sorted');
  t.ok(close(opt.lr, 0.4), 'epoch 0: base rate');
  // PyTorch: lr at epoch e = base * gamma ** (milestones <= e).
  const expected = [0.4, 0.4, 0.04, 0.04, 0.04, 0.004, 0.004, 0.004];
  const seen = [opt.lr];
  for (let e = 1; e < expected.length; e++) {
    sched.step();
    seen.push(opt.lr);
    t.equal(sched.epoch, e, `epoch counter ${e}`);
  }
  t.ok(seen.every((v, i) => close(v, expected[i])), `per-epoch rates ${seen.join(', ')}`);
  t.ok(close(sched.lrAt(100), 0.004), 'far past the last milestone');
  t.equal(sched.baseLr, 0.4, 'baseLr unchanged');
});

t.test('MultiStepLR: default gamma 0.1, fractional epochs, repeated milestones', async (t) => {
  const opt = sgd(1);
  const sched = new ms.optim.MultiStepLR(opt, { milestones: [3] });
  t.equal(sched.gamma, 0.1, 'default gamma');
  sched.setEpoch(2.5);
  t.ok(close(opt.lr, 1), 'epoch 2.5 is before milestone 3');
  sched.setEpoch(2.999);
  t.ok(close(opt.lr, 1), 'epoch 2.999 still before');
  sched.setEpoch(3);
  t.ok(close(opt.lr, 0.1), 'epoch 3 passes it');
  sched.setEpoch(3.7);
  t.ok(close(opt.lr, 0.1), 'epoch 3.7');
  sched.setEpoch(2.5);
  sched.step();
  t.equal(sched.epoch, 3, 'step() from a fractional epoch goes to the next whole epoch');
  t.ok(close(opt.lr, 0.1), 'and sets its rate');
  // A milestone listed twice applies gamma twice (PyTorch counts milestones with multiplicity).
  const twice = new ms.optim.MultiStepLR(sgd(1), { milestones: [1, 1], gamma: 0.5 });
  t.ok(close(twice.lrAt(1), 0.25), 'repeated milestone counted twice');
  // A milestone at epoch 0 applies from the start, like PyTorch.
  const opt0 = sgd(1);
  new ms.optim.MultiStepLR(opt0, { milestones: [0], gamma: 0.5 });
  t.ok(close(opt0.lr, 0.5), `milestone 0 applies at construction (lr ${opt0.lr})`);
});

t.test('CosineLR: start, middle, end, minLr', async (t) => {
  const opt = sgd(0.1);
  const sched = new ms.optim.CosineLR(opt, { totalEpochs: 10 });
  t.ok(close(opt.lr, 0.1), 'starts at the base rate');
  t.ok(close(sched.lrAt(5), 0.05), 'half way: half the base rate');
  t.ok(close(sched.lrAt(10), 0, 1e-15), 'ends at 0');
  t.ok(close(sched.lrAt(15), 0, 1e-15), 'stays at minLr after the end');
  // The closed form of torch's CosineAnnealingLR.
  for (const e of [0, 1, 2.5, 7, 9.75]) {
    t.ok(close(sched.lrAt(e), 0.05 * (1 + Math.cos((Math.PI * e) / 10))), `epoch ${e}`);
  }
  const rates: number[] = [opt.lr];
  for (let e = 1; e <= 10; e++) {
    sched.step();
    rates.push(opt.lr);
  }
  t.ok(rates.every((r, i) => i === 0 || r < rates[i - 1]), 'decreasing epoch by epoch');
  t.ok(close(rates[10], 0, 1e-15), 'step() reaches 0 at totalEpochs');

  const opt2 = sgd(0.2);
  const withMin = new ms.optim.CosineLR(opt2, { totalEpochs: 4, minLr: 0.02 });
  t.ok(close(withMin.lrAt(0), 0.2), 'minLr: start');
  t.ok(close(withMin.lrAt(2), 0.11), 'minLr: middle is the mean of base and minLr');
  t.ok(close(withMin.lrAt(4), 0.02), 'minLr: end');
  t.ok(close(withMin.lrAt(40), 0.02), 'minLr: after the end');
  withMin.setEpoch(1);
  t.ok(close(opt2.lr, 0.02 + 0.09 * (1 + Math.cos(Math.PI / 4))), 'setEpoch(1) sets the optimizer rate');
});

t.test('WarmupLR alone: a linear ramp up to the base rate', async (t) => {
  const opt = sgd(0.8);
  const sched = new ms.optim.WarmupLR(opt, { warmupEpochs: 4 });
  t.ok(opt.lr > 0 && opt.lr <= 0.8 / 4, `epoch 0 uses a small warm-up rate, not the base rate (lr ${opt.lr})`);
  const at = [0, 1, 2, 3, 4, 5, 10].map((e) => sched.lrAt(e));
  t.ok(at.every((v, i) => i === 0 || v >= at[i - 1]), `non-decreasing: ${at.join(', ')}`);
  t.ok(at.slice(0, 4).every((v, i) => i === 0 || v > at[i - 1]), 'strictly increasing during warm-up');
  t.ok(close(sched.lrAt(4), 0.8) && close(sched.lrAt(10), 0.8), 'the base rate from warmupEpochs on');
  // Linear: equal increments per epoch during the ramp.
  const inc = [1, 2, 3].map((e) => sched.lrAt(e) - sched.lrAt(e - 1));
  t.ok(inc.every((d) => close(d, 0.2, 1e-9)), `increments of base / warmupEpochs: ${inc.join(', ')}`);
  t.ok(Math.abs(sched.lrAt(2) - 0.4) <= 0.8 / 4 / 8, `half way is about half the rate (${sched.lrAt(2)})`);
  const seen: number[] = [opt.lr];
  for (let e = 1; e <= 5; e++) {
    sched.step();
    seen.push(opt.lr);
  }
  t.ok(seen.every((v, e) => close(v, sched.lrAt(e))), 'step() follows lrAt');
  const none = new ms.optim.WarmupLR(sgd(0.3), { warmupEpochs: 0 });
  t.ok(close(none.lrAt(0), 0.3), 'warmupEpochs 0: constant rate');
});

t.test('WarmupLR wrapping another schedule', async (t) => {
  const opt = sgd(1);
  const cosine = new ms.optim.CosineLR(opt, { totalEpochs: 20, minLr: 0.1 });
  const sched = new ms.optim.WarmupLR(opt, { warmupEpochs: 2, after: cosine });
  t.equal(sched.baseLr, 1, 'base rate of the wrapped schedule');
  t.ok(opt.lr < 0.5, `warm-up starts low (lr ${opt.lr})`);
  for (const e of [2, 3, 7.5, 12, 20, 25]) t.ok(close(sched.lrAt(e), cosine.lrAt(e)), `epoch ${e}: the wrapped schedule's rate`);
  t.ok(sched.lrAt(1) < cosine.lrAt(1) && sched.lrAt(1) > 0, 'epoch 1: still ramping');
  t.ok(sched.lrAt(1.5) <= cosine.lrAt(1.5), 'fractional epoch during the ramp');

  const opt2 = sgd(0.5);
  const steps = new ms.optim.MultiStepLR(opt2, { milestones: [3, 6], gamma: 0.2 });
  const warm = new ms.optim.WarmupLR(opt2, { warmupEpochs: 2, after: steps });
  const rates = [opt2.lr];
  for (let e = 1; e <= 7; e++) {
    warm.step();
    rates.push(opt2.lr);
  }
  t.ok(rates[0] < rates[1] && rates[1] < 0.5, `ramp over epochs 0, 1: ${rates.slice(0, 2).join(', ')}`);
  t.ok(close(rates[2], 0.5) && close(rates[3], 0.1) && close(rates[5], 0.1) && close(rates[6], 0.02) && close(rates[7], 0.02), `then the milestones: ${rates.join(', ')}`);
});

t.test('schedule state dicts restore the epoch, base rate and optimizer rate', async (t) => {
  const make: [string, (o: ms.optim.Optimizer) => ms.optim.LrSchedule][] = [
    ['MultiStepLR', (o) => new ms.optim.MultiStepLR(o, { milestones: [2, 4], gamma: 0.3 })],
    ['CosineLR', (o) => new ms.optim.CosineLR(o, { totalEpochs: 6, minLr: 0.01 })],
    ['WarmupLR', (o) => new ms.optim.WarmupLR(o, { warmupEpochs: 3 })],
    ['WarmupLR(Cosine)', (o) => new ms.optim.WarmupLR(o, { warmupEpochs: 2, after: new ms.optim.CosineLR(o, { totalEpochs: 6 }) })],
  ];
  for (const [name, mk] of make) {
    const a = sgd(0.3);
    const sa = mk(a);
    sa.step();
    sa.step();
    sa.setEpoch(2.25);
    const sd = sa.stateDict();
    t.same(sd, { epoch: 2.25, baseLr: 0.3 }, `${name}: state dict`);
    t.same(JSON.parse(JSON.stringify(sd)), sd, `${name}: JSON-serializable`);
    const b = sgd(0.3);
    const sb = mk(b);
    sb.loadStateDict(sd);
    t.equal(sb.epoch, 2.25, `${name}: epoch restored`);
    t.equal(b.lr, a.lr, `${name}: optimizer rate restored`);
    for (let i = 0; i < 4; i++) {
      sa.step();
      sb.step();
      t.equal(b.lr, a.lr, `${name}: same rate after ${i + 1} more step(s)`);
    }
    // The optimizer's rate at save time may differ from the base (it was scheduled): baseLr comes from the dict.
    const c = sgd(0.3 * 0.01);
    const sc = mk(c);
    sc.loadStateDict(sd);
    t.equal(sc.baseLr, 0.3, `${name}: baseLr from the state dict`);
    assertOpError(t, () => sc.loadStateDict({ epoch: -1, baseLr: 0.3 }), RangeError, 'LrSchedule.loadStateDict', ['epoch'], `${name}: negative epoch refused`);
    assertOpError(t, () => sc.loadStateDict({ epoch: 1, baseLr: NaN }), RangeError, 'LrSchedule.loadStateDict', ['baseLr'], `${name}: NaN baseLr refused`);
  }
});

t.test('bad schedule options are refused', async (t) => {
  const o = sgd(0.1);
  assertOpError(t, () => new ms.optim.MultiStepLR(o, { milestones: [1.5] }), RangeError, 'MultiStepLR', ['milestones'], 'fractional milestone');
  assertOpError(t, () => new ms.optim.MultiStepLR(o, { milestones: [-1] }), RangeError, 'MultiStepLR', ['milestones'], 'negative milestone');
  assertOpError(t, () => new ms.optim.MultiStepLR(o, { milestones: 3 } as never), RangeError, 'MultiStepLR', ['milestones'], 'milestones not an array');
  assertOpError(t, () => new ms.optim.MultiStepLR(o, { milestones: [1], gamma: -0.1 }), RangeError, 'MultiStepLR', ['gamma'], 'negative gamma');
  assertOpError(t, () => new ms.optim.CosineLR(o, { totalEpochs: 0 }), RangeError, 'CosineLR', ['totalEpochs'], 'totalEpochs 0');
  assertOpError(t, () => new ms.optim.CosineLR(o, { totalEpochs: NaN }), RangeError, 'CosineLR', ['totalEpochs'], 'totalEpochs NaN');
  assertOpError(t, () => new ms.optim.CosineLR(o, { totalEpochs: 5, minLr: -1 }), RangeError, 'CosineLR', ['minLr'], 'negative minLr');
  assertOpError(t, () => new ms.optim.WarmupLR(o, { warmupEpochs: -2 }), RangeError, 'WarmupLR', ['warmupEpochs'], 'negative warmupEpochs');
  assertOpError(t, () => new ms.optim.WarmupLR(o, {} as never), RangeError, 'WarmupLR', ['warmupEpochs'], 'missing warmupEpochs');
});
