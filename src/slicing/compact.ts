// Cost tables and compact sub-models, both read off one traced forward pass
// at the rate in question: each sliceable layer reports its active widths.
import { Conv2d } from '../nn/conv2d.js';
import { Linear } from '../nn/linear.js';
import { Module, setSliceImplementation } from '../nn/module.js';
import { BatchNorm2d, GroupNorm } from '../nn/norm.js';
import { SliceableLayer } from '../nn/sliceable.js';
import { modelInputShape } from '../models/input-shape.js';
import { noGrad, Tensor, zeros } from '../tensor.js';
import { traceUses, type LayerUse } from '../nn/trace.js';
import { activeGroups, checkRate } from '../nn/width.js';

/** One row of a cost table. */
export interface CostRow {
  /** The rate as asked. */
  rate: number;
  /** Fraction of units used: k / G. */
  width: number;
  /** Multiply-accumulates of convolutions and linear layers per input. */
  macs: number;
  /** Parameters (norms and biases included) of the compact model at this rate. */
  params: number;
}

/** Runs one batch-1 forward at `rate` in eval mode and returns the layers' reports. */
export function traceAtRate(model: Module, rate: number, inputShape: readonly number[]): LayerUse[] {
  const previousRate = model.sliceRate;
  const flags = model.modules().map((m) => m.training);
  model.eval();
  model.setSliceRate(rate);
  try {
    return traceUses(() => {
      noGrad(() => model.forward(zeros([1, ...inputShape])));
    });
  } finally {
    model.setSliceRate(previousRate);
    model.modules().forEach((m, i) => (m.training = flags[i]));
  }
}

function sliceGroupsOf(model: Module): number {
  const layer = model.modules().find((m): m is SliceableLayer => m instanceof SliceableLayer);
  return layer?.sliceGroups ?? 8;
}

/**
 * Per-rate multiply-accumulates per input and compact-model parameter counts,
 * from the shapes each layer actually uses at that rate.
 */
export function costs(model: Module, inputShape?: readonly number[], rates: readonly number[] = [1, 0.75, 0.5, 0.25]): CostRow[] {
  const op = 'costs';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module`);
  const shape = modelInputShape(op, model, inputShape);
  if (!Array.isArray(rates) || rates.length === 0) throw new RangeError(`${op}: rates must be a non-empty array`);
  const groups = sliceGroupsOf(model);
  return rates.map((rate) => {
    checkRate(op, rate);
    const uses = traceAtRate(model, rate, shape);
    return {
      rate,
      width: activeGroups(rate, groups) / groups,
      macs: uses.reduce((n, u) => n + u.macs, 0),
      params: uses.reduce((n, u) => n + u.params, 0),
    };
  });
}

// --- compact sub-models ---------------------------------------------------------

/** Copies the leading block of `src` into a new tensor of `shape` (same rank). */
function prefixCopy(src: Tensor, shape: number[]): Tensor {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  const rank = shape.length;
  const srcStrides = new Array<number>(rank);
  const dstStrides = new Array<number>(rank);
  let s = 1;
  let d = 1;
  for (let i = rank - 1; i >= 0; i--) {
    srcStrides[i] = s;
    dstStrides[i] = d;
    s *= src.shape[i];
    d *= shape[i];
  }
  const inner = shape[rank - 1];
  const rows = out.length / Math.max(1, inner);
  for (let r = 0; r < rows; r++) {
    let srcOff = 0;
    let rem = r;
    for (let i = rank - 2; i >= 0; i--) {
      const idx = rem % shape[i];
      rem = Math.floor(rem / shape[i]);
      srcOff += idx * srcStrides[i];
    }
    out.set(src.data.subarray(srcOff, srcOff + inner), r * inner);
  }
  return new Tensor(out, shape);
}

type Internals = {
  params: Map<string, Tensor | null>;
  buffers: Map<string, Tensor>;
  children_: Map<string, Module>;
};

function cloneModule(m: Module, uses: Map<Module, LayerUse>, swapped: Map<unknown, unknown>): Module {
  const c = Object.create(Object.getPrototypeOf(m)) as Module;
  Object.assign(c, m);
  const ci = c as unknown as Internals;
  const mi = m as unknown as Internals;
  ci.params = new Map();
  ci.buffers = new Map();
  ci.children_ = new Map();
  for (const [name, child] of mi.children_) {
    const cc = cloneModule(child, uses, swapped);
    swapped.set(child, cc);
    ci.children_.set(name, cc);
  }
  const use = uses.get(m);
  const w = use?.widths ?? {};
  const set = (key: string, value: unknown) => {
    (c as unknown as Record<string, unknown>)[key] = value;
  };
  const param = (name: string, t: Tensor | null) => {
    if (t === null) return null;
    const p = new Tensor(t.data, t.shape, true);
    ci.params.set(name, p);
    return p;
  };
  if (m instanceof Linear) {
    const inW = w.inWidth ?? m.inFeatures;
    const outW = w.outWidth ?? m.outFeatures;
    set('inFeatures', inW);
    set('outFeatures', outW);
    set('weight', param('weight', prefixCopy(m.weight, [outW, inW])));
    set('bias', m.bias ? param('bias', prefixCopy(m.bias, [outW])) : null);
  } else if (m instanceof Conv2d) {
    const inW = w.inWidth ?? m.inChannels;
    const outW = w.outWidth ?? m.outChannels;
    const groups = w.groups ?? m.groups;
    const [kh, kw] = m.kernelSize;
    set('inChannels', inW);
    set('outChannels', outW);
    set('groups', groups);
    set('weight', param('weight', prefixCopy(m.weight, [outW, inW / groups, kh, kw])));
    set('bias', m.bias ? param('bias', prefixCopy(m.bias, [outW])) : null);
  } else if (m instanceof GroupNorm) {
    const ch = w.channels ?? m.numChannels;
    set('numChannels', ch);
    set('numGroups', w.groups ?? m.numGroups);
    set('weight', m.weight ? param('weight', prefixCopy(m.weight, [ch])) : null);
    set('bias', m.bias ? param('bias', prefixCopy(m.bias, [ch])) : null);
  } else if (m instanceof BatchNorm2d) {
    const ch = w.channels ?? m.numFeatures;
    const state = m.stateForRate(m.sliceRate);
    const fresh = new BatchNorm2d(ch, { eps: m.eps, momentum: m.momentum, affine: state.weight !== null });
    fresh.training = m.training;
    const own = new Map(fresh.namedParameters().concat(fresh.namedBuffers()));
    if (state.weight) own.get('weight')!.data.set(state.weight.data.subarray(0, ch));
    if (state.bias) own.get('bias')!.data.set(state.bias.data.subarray(0, ch));
    own.get('running_mean')!.data.set(state.runningMean.data.subarray(0, ch));
    own.get('running_var')!.data.set(state.runningVar.data.subarray(0, ch));
    return fresh;
  } else {
    for (const [name, p] of mi.params) ci.params.set(name, p === null ? null : new Tensor(p.data.slice(), p.shape, true));
    for (const [name, b] of mi.buffers) ci.buffers.set(name, new Tensor(b.data.slice(), b.shape));
  }
  // Fields that pointed at the source's children now point at their copies.
  for (const key of Object.keys(c)) {
    const v = (c as unknown as Record<string, unknown>)[key];
    if (swapped.has(v)) set(key, swapped.get(v));
    else if (Array.isArray(v) && v.some((x) => swapped.has(x))) set(key, v.map((x) => (swapped.has(x) ? swapped.get(x) : x)));
  }
  return c;
}

export interface SliceOptions {
  /** Shape of one input without the batch; needed only for models that do not know it. */
  inputShape?: readonly number[];
}

/**
 * A new, independent model holding copies of the prefix weights used at rate
 * r: its full width is the sliced width and its rate is 1. The source model is
 * unchanged.
 */
export function sliceModel<M extends Module>(model: M, rate: number, options: SliceOptions = {}): M {
  const op = 'slice';
  checkRate(op, rate);
  const shape = modelInputShape(op, model, options.inputShape, 'options.inputShape');
  const uses = new Map(traceAtRate(model, rate, shape).map((u) => [u.module, u]));
  const previous = model.sliceRate;
  model.setSliceRate(rate); // BatchNorm copies read the statistics of this rate
  let compact: Module;
  try {
    compact = cloneModule(model, uses, new Map());
  } finally {
    model.setSliceRate(previous);
  }
  compact.setSliceRate(1);
  // A compact model is trained (only) at its own full width, and has not been profiled.
  compact.trainedRates = [1];
  delete compact.latencyProfile;
  compact.inputShape = shape;
  if (model.config !== undefined) compact.config = { ...model.config, sliceChain: [...(model.config.sliceChain ?? []), rate] };
  return compact as M;
}

setSliceImplementation((model, rate, options) => sliceModel(model, rate, options));
