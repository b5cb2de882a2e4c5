// Inference over cache-sized slices of a batch, each replayed from an
// inference plan (plan.ts). A whole-batch pass streams every activation
// through memory once per layer; slices of a few images keep a block's
// activations in cache between its norm, convolution and add, and a plan
// places them in one reused arena instead of a fresh buffer per op.
import * as models from '../models/index.js';
import * as nn from '../nn/index.js';
import type { Module } from '../nn/module.js';
import { noGrad, Tensor } from '../tensor.js';
import { InferencePlan } from './plan.js';
import { checkRate } from '../nn/width.js';

export interface InferOptions {
  /** Slice rate for this pass (default: the model's current rate). */
  rate?: number;
  /**
   * Images per slice. Default for image batches: 32 / rate (32 at rate 1, 64
   * at 0.5). With a plan's arena, bigger slices win until the activations
   * overflow the caches: ResNet-164 at batch 64, rate 1, took 390 / 316 / 309 /
   * 327 ms in slices of 8 / 16 / 32 / 64, and at rate 0.5 the whole batch was
   * best (132 ms against 146 in slices of 32); ResNet-56 was best whole at
   * both. The whole batch for other inputs.
   */
  sliceSize?: number;
  /**
   * Replay a captured plan (default: true when every module is one of the
   * library's own, whose forward passes are known to run only kernels; a
   * custom module may compute in JavaScript, which a replay would skip).
   */
  plan?: boolean;
}

// Plans per model, by rate and slice shape, for one structureVersion of the
// model (a change of a layer's attributes or children drops them all); the
// least recently used go first once a model's plans hold more than
// MAX_PLAN_BYTES of arenas or MAX_PLANS plans (a server sees every batch size
// up to its limit at several rates).
const MAX_PLANS = 64;
const MAX_PLAN_BYTES = 256 * 2 ** 20;
const plans = new WeakMap<Module, { version: number; byKey: Map<string, InferencePlan | string> }>();

let builtins: Set<unknown> | null = null;

/**
 * Whether every module of the model is one of the library's own, whose passes
 * are known to compute only in kernels (a custom module may compute in
 * JavaScript, which a plan's replay would skip): the default for plans.
 */
export function onlyLibraryModules(model: Module): boolean {
  builtins ??= new Set<unknown>([...Object.values(nn), ...Object.values(models)].filter((v) => typeof v === 'function'));
  return model.modules().every((m) => builtins!.has(m.constructor));
}

/** The cached plan for the model's rate and this shape (built on a miss); `state` is InferencePlan.state(model). */
function planFor(model: Module, shape: number[], state: readonly Tensor[], version: number): InferencePlan | null {
  let entry = plans.get(model);
  if (entry === undefined || entry.version !== version) plans.set(model, (entry = { version, byKey: new Map() }));
  const cache = entry.byKey;
  const key = `${model.sliceRate}|${shape.join('x')}`;
  let plan = cache.get(key);
  if (plan instanceof InferencePlan && !plan.validFor(state)) plan = undefined;
  if (plan === undefined) plan = InferencePlan.build(model, shape);
  cache.delete(key);
  cache.set(key, plan);
  let bytes = 0;
  for (const p of cache.values()) bytes += p instanceof InferencePlan ? p.arenaBytes : 0;
  for (const [k, p] of cache) {
    if (k === key || (cache.size <= MAX_PLANS && bytes <= MAX_PLAN_BYTES)) break;
    bytes -= p instanceof InferencePlan ? p.arenaBytes : 0;
    cache.delete(k);
  }
  return plan instanceof InferencePlan ? plan : null;
}

/** The keys (rate|shape) of the inference plans kept for a model, least recently used first. */
export function cachedPlanKeys(model: Module): string[] {
  return [...(plans.get(model)?.byKey.keys() ?? [])];
}

/** Drops the inference plans kept for a model (they are rebuilt on demand). */
export function releasePlans(model: Module): void {
  plans.delete(model);
}

// [start, size] of each slice: full slices, then the rest in one slice, or,
// with plans, in descending powers of two, so a server whose batches take every
// size up to its limit needs a handful of plans per rate, not one per size.
function slices(batch: number, size: number, powersOfTwo: boolean): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (; start + size <= batch; start += size) out.push([start, size]);
  let rest = batch - start;
  if (rest > 0 && !powersOfTwo) return [...out, [start, rest]];
  for (let p = 2 ** Math.floor(Math.log2(Math.max(1, rest))); rest > 0; p /= 2) {
    if (p > rest) continue;
    out.push([start, p]);
    start += p;
    rest -= p;
  }
  return out;
}

/** The model's output for x in eval mode, without recording a graph, one slice at a time. */
export function infer(model: Module, x: Tensor, options: InferOptions = {}): Tensor {
  const op = 'infer';
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: x must be a Tensor`);
  if (x.rank < 1 || x.shape[0] < 1) throw new RangeError(`${op}: x must have a non-empty batch axis, got shape [${x.shape.join(', ')}]`);
  const batch = x.shape[0];
  const rate = options.rate === undefined ? model.sliceRate : checkRate(op, options.rate);
  const slice = options.sliceSize ?? (x.rank >= 4 ? Math.ceil(32 / rate) : batch);
  if (!Number.isInteger(slice) || slice < 1) throw new RangeError(`${op}: sliceSize must be a positive integer, got ${String(slice)}`);
  if (options.plan !== undefined && typeof options.plan !== 'boolean') throw new TypeError(`${op}: plan must be a boolean`);
  const previousRate = model.sliceRate;
  const flags = model.modules().map((m) => m.training);
  if (options.rate !== undefined) model.setSliceRate(rate);
  model.eval();
  const usePlan = options.plan ?? onlyLibraryModules(model);
  const state = usePlan ? InferencePlan.state(model) : [];
  const version = model.structureVersion;
  try {
    return noGrad(() => {
      const per = x.size / batch;
      let out: Float32Array | null = null;
      let outShape: number[] = [];
      for (const [start, n] of slices(batch, slice, usePlan)) {
        const shape = [n, ...x.shape.slice(1)];
        const plan = usePlan ? planFor(model, shape, state, version) : null;
        if (plan !== null) {
          const outPer = plan.outputShape.slice(1).reduce((a, b) => a * b, 1);
          if (out === null) {
            outShape = [batch, ...plan.outputShape.slice(1)];
            out = new Float32Array(batch * outPer);
          }
          plan.run(x.data, start * per, out, start * outPer);
          continue;
        }
        const y = slice >= batch ? model.forward(x) : model.forward(new Tensor(x.data.subarray(start * per, (start + n) * per), shape));
        if (slice >= batch) return y;
        const outPer = y.size / n;
        if (out === null) {
          outShape = [batch, ...y.shape.slice(1)];
          out = new Float32Array(batch * outPer);
        }
        out.set(y.data, start * outPer);
      }
      return new Tensor(out!, outShape);
    });
  } finally {
    model.setSliceRate(previousRate);
    model.modules().forEach((m, i) => (m.training = flags[i]));
  }
}
