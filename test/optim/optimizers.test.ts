// SGD (plain, momentum, dampening, Nesterov, weight decay), Adam and AdamW
// against float64 re-implementations of PyTorch's update rules; parameters
// without a gradient; zeroGrad; state dicts; hyper-parameter validation.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertBitwise, assertClose, assertOpError, randn32, rng, size, type Asserter } from '../helpers/reference.js';

const SHAPES = [[3, 4], [5], [2, 1, 3]];

/** Float64 reference optimizer state: per parameter buffers and step counts. */
interface RefState {
  p: Float64Array[];
  steps: number[];
  bufs: Map<string, Float64Array>[];
}

function refState(params: ms.Tensor[]): RefState {
  return { p: params.map((x) => Float64Array.from(x.data)), steps: params.map(() => 0), bufs: params.map(() => new Map()) };
}

interface SgdHyper {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

/** torch.optim.SGD, in float64. `grads[i]` null means parameter i has no gradient this step. */
function refSgdStep(st: RefState, grads: (Float32Array | null)[], h: SgdHyper): void {
  const mom = h.momentum ?? 0;
  const damp = h.dampening ?? 0;
  const wd = h.weightDecay ?? 0;
  grads.forEach((g, k) => {
    if (g === null) return;
    st.steps[k]++;
    const p = st.p[k];
    const d = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) d[i] = g[i] + wd * p[i];
    let step: Float64Array = d;
    if (mom !== 0) {
      let buf = st.bufs[k].get('momentum_buffer');
      if (buf === undefined) {
        buf = Float64Array.from(d);
        st.bufs[k].set('momentum_buffer', buf);
      } else {
        for (let i = 0; i < p.length; i++) buf[i] = mom * buf[i] + (1 - damp) * d[i];
      }
      if (h.nesterov) {
        step = new Float64Array(p.length);
        for (let i = 0; i < p.length; i++) step[i] = d[i] + mom * buf[i];
      } else {
        step = buf;
      }
    }
    for (let i = 0; i < p.length; i++) p[i] -= h.lr * step[i];
  });
}

interface AdamHyper {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** torch.optim.Adam (decoupled = false) / AdamW (decoupled = true), in float64. */
function refAdamStep(st: RefState, grads: (Float32Array | null)[], h: AdamHyper, decoupled: boolean): void {
  const [b1, b2] = h.betas ?? [0.9, 0.999];
  const eps = h.eps ?? 1e-8;
  const wd = h.weightDecay ?? (decoupled ? 1e-2 : 0);
  grads.forEach((g, k) => {
    if (g === null) return;
    const step = ++st.steps[k];
    const p = st.p[k];
    let m = st.bufs[k].get('exp_avg');
    let v = st.bufs[k].get('exp_avg_sq');
    if (m === undefined || v === undefined) {
      m = new Float64Array(p.length);
      v = new Float64Array(p.length);
      st.bufs[k].set('exp_avg', m);
      st.bufs[k].set('exp_avg_sq', v);
    }
    const bc1 = 1 - b1 ** step;
    const bc2 = 1 - b2 ** step;
    for (let i = 0; i < p.length; i++) {
      let gi = g[i];
      if (decoupled) p[i] *= 1 - h.lr * wd;
      else gi += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + eps;
      p[i] -= (h.lr / bc1) * (m[i] / denom);
    }
  });
}

function makeParams(seed: number): ms.Tensor[] {
  const gen = rng(seed);
  return SHAPES.map((s) => ms.tensor(randn32(gen, size(s)), s, { requiresGrad: true }));
}

/**
 * `steps` random gradients per parameter; `skip(step, k)` true makes parameter
 * k have no gradient at that step.
 */
function makeGrads(seed: number, steps: number, skip: (step: number, k: number) => boolean = () => false): (Float32Array | null)[][] {
  const gen = rng(seed);
  const out: (Float32Array | null)[][] = [];
  for (let s = 0; s < steps; s++) out.push(SHAPES.map((sh, k) => (skip(s, k) ? null : randn32(gen, size(sh)))));
  return out;
}

function setGrads(params: ms.Tensor[], grads: (Float32Array | null)[]): void {
  params.forEach((p, k) => {
    const g = grads[k];
    p.grad = g === null ? null : ms.tensor(g, p.shape);
  });
}

/** Checks the parameters against the reference, and each displacement from the start more strictly. */
function compare(tt: Asserter, params: ms.Tensor[], start: Float32Array[], ref: RefState, label: string): void {
  params.forEach((p, k) => {
    assertClose(tt, p.data, ref.p[k], `${label}: param ${k}`, { rtol: 1e-5, atol: 1e-7 });
    const moved = p.data.map((v, i) => v - start[k][i]);
    const refMoved = ref.p[k].map((v, i) => v - start[k][i]);
    assertClose(tt, moved, refMoved, `${label}: displacement of param ${k}`, { rtol: 1e-4, atol: 2e-6 });
  });
}

const SGD_CASES: [string, SgdHyper][] = [
  ['plain', { lr: 0.1 }],
  ['weight decay', { lr: 0.1, weightDecay: 0.05 }],
  ['momentum', { lr: 0.05, momentum: 0.9 }],
  ['momentum + dampening', { lr: 0.05, momentum: 0.9, dampening: 0.3 }],
  ['momentum + dampening + weight decay', { lr: 0.05, momentum: 0.8, dampening: 0.5, weightDecay: 1e-2 }],
  ['Nesterov', { lr: 0.05, momentum: 0.9, nesterov: true }],
  ['Nesterov + weight decay', { lr: 0.02, momentum: 0.7, nesterov: true, weightDecay: 5e-3 }],
];

t.test('SGD matches torch.optim.SGD in float64', async (t) => {
  for (const [name, h] of SGD_CASES) {
    const params = makeParams(1);
    const start = params.map((p) => p.data.slice());
    const ref = refState(params);
    const opt = new ms.optim.SGD(params, h);
    for (const g of makeGrads(2, 6)) {
      setGrads(params, g);
      opt.step();
      refSgdStep(ref, g, h);
    }
    compare(t, params, start, ref, `SGD ${name}`);
    t.equal(opt.stepCount, 6, `SGD ${name}: stepCount`);
    if ((h.momentum ?? 0) > 0) {
      const sd = opt.stateDict();
      params.forEach((_, k) => {
        const buf = sd.buffers[`${k}.momentum_buffer`];
        t.ok(buf instanceof ms.Tensor, `SGD ${name}: momentum buffer ${k} in the state dict`);
        if (buf) assertClose(t, buf.data, ref.bufs[k].get('momentum_buffer')!, `SGD ${name}: momentum buffer ${k}`, { rtol: 1e-4, atol: 1e-6 });
      });
    }
  }
});

const ADAM_CASES: [string, AdamHyper][] = [
  ['defaults, lr 0.05', { lr: 0.05 }],
  ['betas, eps', { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6 }],
  ['weight decay', { lr: 0.03, weightDecay: 0.1 }],
  ['beta1 0', { lr: 0.01, betas: [0, 0.9], weightDecay: 0.01 }],
];

for (const decoupled of [false, true]) {
  const name = decoupled ? 'AdamW' : 'Adam';
  t.test(`${name} matches torch.optim.${name} in float64`, async (t) => {
    for (const [label, h] of ADAM_CASES) {
      const params = makeParams(3);
      const start = params.map((p) => p.data.slice());
      const ref = refState(params);
      const opt = decoupled ? new ms.optim.AdamW(params, h) : new ms.optim.Adam(params, h);
      for (const g of makeGrads(4, 7)) {
        setGrads(params, g);
        opt.step();
        refAdamStep(ref, g, h, decoupled);
      }
      compare(t, params, start, ref, `${name} ${label}`);
      const sd = opt.stateDict();
      t.same(sd.paramSteps, [7, 7, 7], `${name} ${label}: paramSteps`);
      params.forEach((_, k) => {
        assertClose(t, sd.buffers[`${k}.exp_avg`].data, ref.bufs[k].get('exp_avg')!, `${name} ${label}: exp_avg ${k}`, { rtol: 1e-4, atol: 1e-7 });
        assertClose(t, sd.buffers[`${k}.exp_avg_sq`].data, ref.bufs[k].get('exp_avg_sq')!, `${name} ${label}: exp_avg_sq ${k}`, { rtol: 1e-4, atol: 1e-8 });
      });
    }
  });
}

t.test('AdamW default weight decay is 1e-2, Adam default is 0', async (t) => {
  const p = ms.tensor([1, -2, 3], [3], { requiresGrad: true });
  t.equal(new ms.optim.AdamW([p]).weightDecay, 1e-2);
  t.equal(new ms.optim.Adam([p]).weightDecay, 0);
  t.equal(new ms.optim.Adam([p]).lr, 1e-3, 'Adam default lr');
  // With a zero gradient, AdamW only decays: p *= 1 - lr * wd (the Adam step is 0/(0+eps) = 0).
  const q = ms.tensor([1, -2, 3], [3], { requiresGrad: true });
  const opt = new ms.optim.AdamW([q], { lr: 0.1, weightDecay: 0.5 });
  q.grad = ms.zeros([3]);
  opt.step();
  assertClose(t, q.data, [0.95, -1.9, 2.85], 'AdamW decays a parameter with zero gradient');
});

t.test('parameters whose .grad is null are skipped', async (t) => {
  // Parameter 1 has no gradient at steps 0 and 3, parameter 2 none at step 0.
  const skip = (s: number, k: number): boolean => (k === 1 && (s === 0 || s === 3)) || (k === 2 && s === 0);
  const grads = makeGrads(5, 6, skip);
  const cases: [string, (ps: ms.Tensor[]) => ms.optim.Optimizer, (st: RefState, g: (Float32Array | null)[]) => void][] = [
    ['SGD momentum', (ps) => new ms.optim.SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.1 }), (st, g) => refSgdStep(st, g, { lr: 0.05, momentum: 0.9, weightDecay: 0.1 })],
    ['Adam', (ps) => new ms.optim.Adam(ps, { lr: 0.05, weightDecay: 0.1 }), (st, g) => refAdamStep(st, g, { lr: 0.05, weightDecay: 0.1 }, false)],
    ['AdamW', (ps) => new ms.optim.AdamW(ps, { lr: 0.05, weightDecay: 0.1 }), (st, g) => refAdamStep(st, g, { lr: 0.05, weightDecay: 0.1 }, true)],
  ];
  for (const [name, make, refStep] of cases) {
    const params = makeParams(6);
    const start = params.map((p) => p.data.slice());
    const ref = refState(params);
    const opt = make(params);
    // Step 0: parameters 1 and 2 have no gradient; they must not move at all (no weight decay either).
    setGrads(params, grads[0]);
    opt.step();
    refStep(ref, grads[0]);
    assertBitwise(t, params[1].data, start[1], `${name}: a parameter without gradient is untouched`);
    assertBitwise(t, params[2].data, start[2], `${name}: a second parameter without gradient is untouched`);
    for (const g of grads.slice(1)) {
      setGrads(params, g);
      opt.step();
      refStep(ref, g);
    }
    compare(t, params, start, ref, `${name} with skipped gradients`);
    const sd = opt.stateDict();
    t.same(sd.paramSteps, [6, 4, 5], `${name}: per-parameter step counts`);
    t.equal(sd.stepCount, 6, `${name}: stepCount counts every step`);
  }
});

t.test('zeroGrad clears every gradient; a step after it changes nothing', async (t) => {
  for (const make of [
    (ps: ms.Tensor[]) => new ms.optim.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 }),
    (ps: ms.Tensor[]) => new ms.optim.Adam(ps, { lr: 0.1 }),
    (ps: ms.Tensor[]) => new ms.optim.AdamW(ps, { lr: 0.1 }),
  ]) {
    const params = makeParams(7);
    const opt = make(params);
    setGrads(params, makeGrads(8, 1)[0]);
    opt.step();
    opt.zeroGrad();
    t.ok(params.every((p) => p.grad === null), `${opt.constructor.name}: every .grad is null`);
    const before = params.map((p) => p.data.slice());
    opt.step();
    params.forEach((p, k) => assertBitwise(t, p.data, before[k], `${opt.constructor.name}: param ${k} unchanged by a step without gradients`));
  }
  // zeroGrad works with gradients produced by backward().
  const w = ms.tensor([1, 2, 3], [3], { requiresGrad: true });
  const opt = new ms.optim.SGD([w], { lr: 0.1 });
  ms.mul(w, w).backward(ms.ones([3]));
  t.ok(w.grad !== null, 'backward filled .grad');
  opt.step();
  assertClose(t, w.data, [0.8, 1.6, 2.4], 'SGD step from backward(): w - 0.1 * 2w');
  opt.zeroGrad();
  t.equal(w.grad, null, 'zeroGrad cleared it');
});

t.test('stateDict / loadStateDict: a restored optimizer makes identical updates', async (t) => {
  const makers: [string, (ps: ms.Tensor[]) => ms.optim.Optimizer][] = [
    ['SGD', (ps) => new ms.optim.SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 })],
    ['SGD Nesterov', (ps) => new ms.optim.SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true })],
    ['Adam', (ps) => new ms.optim.Adam(ps, { lr: 0.01, weightDecay: 0.01 })],
    ['AdamW', (ps) => new ms.optim.AdamW(ps, { lr: 0.01 })],
  ];
  const skip = (s: number, k: number): boolean => k === 2 && s < 2;
  const grads = makeGrads(9, 7, skip);
  for (const [name, make] of makers) {
    const a = makeParams(10);
    const optA = make(a);
    for (const g of grads.slice(0, 3)) {
      setGrads(a, g);
      optA.step();
    }
    optA.lr *= 0.5; // a schedule changed it: the state dict must carry it
    const sd = optA.stateDict();
    // A fresh optimizer on copies of the parameters, restored from the state dict.
    const b = a.map((p) => ms.tensor(p.data.slice(), p.shape, { requiresGrad: true }));
    const optB = make(b);
    optB.loadStateDict(sd);
    t.equal(optB.lr, optA.lr, `${name}: lr restored`);
    t.equal(optB.stepCount, 3, `${name}: stepCount restored`);
    // Stepping A further must not alter the saved dict (it holds copies).
    const saved = Object.fromEntries(Object.entries(sd.buffers).map(([k, v]) => [k, v.data.slice()]));
    for (const g of grads.slice(3)) {
      setGrads(a, g);
      optA.step();
      setGrads(b, g);
      optB.step();
    }
    a.forEach((p, k) => assertBitwise(t, b[k].data, p.data, `${name}: param ${k} identical after 4 more steps`));
    for (const [k, v] of Object.entries(sd.buffers)) assertBitwise(t, v.data, saved[k], `${name}: saved buffer ${k} is a copy`);
    const sdA = optA.stateDict();
    const sdB = optB.stateDict();
    t.same(sdB.paramSteps, sdA.paramSteps, `${name}: paramSteps agree`);
    t.same(Object.keys(sdB.buffers).sort(), Object.keys(sdA.buffers).sort(), `${name}: same buffers`);
  }
});

t.test('loadStateDict refuses state of another shape', async (t) => {
  const a = makeParams(11);
  const opt = new ms.optim.Adam(a, { lr: 0.01 });
  setGrads(a, makeGrads(12, 1)[0]);
  opt.step();
  const sd = opt.stateDict();
  const other = new ms.optim.Adam([ms.zeros([3, 4])], { lr: 0.01 });
  t.throws(() => other.loadStateDict(sd), RangeError, 'buffers naming missing parameters are refused');
  const wrong = new ms.optim.Adam([ms.zeros([3, 4]), ms.zeros([6]), ms.zeros([2, 1, 3])], { lr: 0.01 });
  t.throws(() => wrong.loadStateDict(sd), RangeError, 'a buffer of the wrong size is refused');
  t.throws(() => wrong.loadStateDict(null as never), TypeError, 'null state is refused');
});

t.test('bad hyper-parameters throw RangeError naming the optimizer and argument', async (t) => {
  const p = [ms.zeros([2])];
  const bad: [string, () => unknown, string][] = [
    ['SGD', () => new ms.optim.SGD(p, { lr: -0.1 }), 'lr'],
    ['SGD', () => new ms.optim.SGD(p, { lr: NaN }), 'lr'],
    ['SGD', () => new ms.optim.SGD(p, { lr: Infinity }), 'lr'],
    ['SGD', () => new ms.optim.SGD(p, {} as never), 'lr'],
    ['SGD', () => new ms.optim.SGD(p, { lr: '0.1' } as never), 'lr'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, momentum: -0.5 }), 'momentum'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, momentum: 1.5 }), 'momentum'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, momentum: 0.9, dampening: -1 }), 'dampening'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, weightDecay: -1e-4 }), 'weightDecay'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, weightDecay: NaN }), 'weightDecay'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, nesterov: true }), 'Nesterov'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, momentum: 0, nesterov: true }), 'Nesterov'],
    ['SGD', () => new ms.optim.SGD(p, { lr: 0.1, momentum: 0.9, dampening: 0.5, nesterov: true }), 'Nesterov'],
    ['Adam', () => new ms.optim.Adam(p, { lr: -1 }), 'lr'],
    ['Adam', () => new ms.optim.Adam(p, { lr: NaN }), 'lr'],
    ['Adam', () => new ms.optim.Adam(p, { betas: [1, 0.999] }), 'betas[0]'],
    ['Adam', () => new ms.optim.Adam(p, { betas: [-0.1, 0.999] }), 'betas[0]'],
    ['Adam', () => new ms.optim.Adam(p, { betas: [0.9, 1] }), 'betas[1]'],
    ['Adam', () => new ms.optim.Adam(p, { betas: [0.9, NaN] }), 'betas[1]'],
    ['Adam', () => new ms.optim.Adam(p, { eps: -1e-8 }), 'eps'],
    ['Adam', () => new ms.optim.Adam(p, { weightDecay: -0.1 }), 'weightDecay'],
    ['AdamW', () => new ms.optim.AdamW(p, { lr: -1 }), 'lr'],
    ['AdamW', () => new ms.optim.AdamW(p, { betas: [0.9, 2] }), 'betas[1]'],
    ['AdamW', () => new ms.optim.AdamW(p, { eps: Infinity }), 'eps'],
    ['AdamW', () => new ms.optim.AdamW(p, { weightDecay: -1 }), 'weightDecay'],
  ];
  for (const [op, fn, arg] of bad) assertOpError(t, fn, RangeError, op, [arg], `${op} refuses bad ${arg}`);
  assertOpError(t, () => new ms.optim.SGD(5 as never, { lr: 0.1 }), TypeError, 'SGD', ['params'], 'SGD refuses non-iterable params');
  assertOpError(t, () => new ms.optim.Adam([p[0], 'x'] as never), TypeError, 'Adam', ['params[1]'], 'Adam refuses a non-tensor param');
  assertOpError(t, () => new ms.optim.AdamW(null as never), TypeError, 'AdamW', ['params'], 'AdamW refuses null params');
  // Valid edge values are accepted.
  t.doesNotThrow(() => new ms.optim.SGD(p, { lr: 0, momentum: 1, dampening: 1 }), 'lr 0, momentum 1, dampening 1 accepted');
  t.doesNotThrow(() => new ms.optim.SGD(p, { lr: 0.1, momentum: 0.5, nesterov: true }), 'Nesterov with momentum accepted');
  t.doesNotThrow(() => new ms.optim.Adam(p, { betas: [0, 0], eps: 0 }), 'betas 0 and eps 0 accepted');
});
