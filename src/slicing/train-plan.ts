// Training plans: a whole training step (every rate's forward and backward
// passes, the losses, in-place distillation, micro-batches, the gradients
// summed into the parameters' .grad) captured once per (rates, batch shape,
// options) as the list of kernel calls it makes, and replayed with every
// intermediate in one arena. A replay allocates nothing, walks no tape, and
// makes no tensor objects: it copies the batch in, runs the calls, and hands
// back each rate's loss and correct count.
//
// Gradients: a step's gradient buffers are zeroed by the step's own recorded
// `fill` kernels (the first write into a gradient buffer), so nothing leaks
// from the step before and what the step's rates do not reach holds zero. A
// parameter's .grad after a replay is the plan's buffer for it, as after an
// eager step (parameters the step does not reach keep .grad null).
//
// The optimizer update is not part of the plan: it runs after the replay on
// the parameters and their .grad, reads its learning rate then, and allocates
// nothing after its first step.
import { captureCalls } from '../capture.js';
import type { Module } from '../nn/module.js';
import { Tensor } from '../tensor.js';
import { allocatedBytes, ArenaLayout, bindSteps, placeInArena } from './arena.js';
import { aliasGradientSums, foldNormsForTraining, overwriteFirstWrites, residualIntoConvs } from './passes.js';
import { InferencePlan, readsMadeTensor, StateSnapshot, withModuleLabels } from './plan.js';
import type { CapturedStep } from '../capture.js';
import { correctRows, runStep, stepResults, stepSettings, type RateLoss, type SlicedStepOptions, type StepPlan } from './step.js';

interface ChunkOut {
  share: unknown;
  logits: unknown;
  rows: number;
  cols: number;
  labels: Int32Array;
}

/** One model's arena, shared by all its training plans (one runs at a time). */
class SharedArena {
  buffer = new ArrayBuffer(0);
  readonly plans = new Set<TrainingPlan>();

  /** An arena of at least `bytes`; plans bound to a smaller one are unbound (they rebind on their next run). */
  ensure(bytes: number): ArrayBuffer {
    if (this.buffer.byteLength < bytes) {
      for (const p of this.plans) p.unbind();
      this.buffer = new ArrayBuffer(0); // let the old one go before the new one is made
      this.buffer = new ArrayBuffer(bytes);
    }
    return this.buffer;
  }
}

/** A training step at fixed rates and batch shape, replayable without allocation. */
export class TrainingPlan {
  readonly rates: readonly number[];
  readonly inputShape: readonly number[];
  /** Bytes of the plan's arena (its share of the model's arena). */
  readonly arenaBytes: number;
  /** Bytes the same intermediates take when each has its own buffer (the eager step). */
  readonly eagerBytes: number;
  /** Kernel calls per replay. */
  readonly calls: number;
  /**
   * What the plan passes changed: residual adds folded into their convolutions, group norms
   * folded into the convolutions that read them (forward and weight gradient), add gradients
   * passed through, fills replaced by overwriting first writes.
   */
  readonly passes: { residualAdds: number; foldedNorms: number; aliasedSums: number; overwrites: number };
  private readonly template: CapturedStep[];
  private bound: CapturedStep[] | null = null;
  private boundOut: { share: Float32Array; logits: Float32Array; rows: number; cols: number; labels: Int32Array }[][] = [];
  private readonly input: Float32Array;
  private readonly labels: Int32Array;
  private readonly outputs: ChunkOut[][];
  private readonly layout: ArenaLayout;
  private readonly grads: [Tensor, Tensor][];
  private readonly state: StateSnapshot;
  private readonly arena: SharedArena;

  private constructor(init: {
    rates: number[];
    inputShape: number[];
    arenaBytes: number;
    eagerBytes: number;
    template: CapturedStep[];
    input: Float32Array;
    labels: Int32Array;
    outputs: ChunkOut[][];
    layout: ArenaLayout;
    grads: [Tensor, Tensor][];
    state: StateSnapshot;
    arena: SharedArena;
    passes: { residualAdds: number; foldedNorms: number; aliasedSums: number; overwrites: number };
  }) {
    this.passes = init.passes;
    this.rates = init.rates;
    this.inputShape = init.inputShape;
    this.arenaBytes = init.arenaBytes;
    this.eagerBytes = init.eagerBytes;
    this.template = init.template;
    this.calls = init.template.length;
    this.input = init.input;
    this.labels = init.labels;
    this.outputs = init.outputs;
    this.layout = init.layout;
    this.grads = init.grads;
    this.state = init.state;
    this.arena = init.arena;
    this.arena.plans.add(this);
  }

  /**
   * Captures the step dry (recorded, not run: no memory for its
   * intermediates beyond the arena, no change to the model), then runs it on
   * (x, labels) from the plan, leaving its gradients in .grad (replacing any
   * there). When the step cannot be replayed, it runs eagerly instead; either
   * way the results are the step's, with the plan or why there is none.
   */
  static build(
    model: Module,
    x: Tensor,
    labels: Int32Array,
    settings: StepPlan,
    arena: SharedArena = arenaOf(model),
  ): { plan: TrainingPlan | string; results: RateLoss[] } {
    const params = model.parameters();
    for (const p of params) p.grad = null;
    // The plan's own input buffers; the dry capture reads no values (run copies the batch in).
    const input = new Float32Array(x.size);
    const labelsIn = new Int32Array(labels.length);
    const { result: passes, capture } = captureCalls(() => withModuleLabels(model, () => runStep(model, new Tensor(input, x.shape), labelsIn, settings)), true);
    const eager = (why: string) => {
      for (const p of params) p.grad = null;
      return { plan: why, results: stepResults(settings.rates, runStep(model, x, labels, settings)) };
    };
    if (capture.unsupported !== null) return eager(capture.unsupported);
    const state = InferencePlan.state(model);
    const allowed = new Set<ArrayBufferLike>([input.buffer, ...state.map((t) => t.data.buffer), ...params.flatMap((p) => (p.grad === null ? [] : [p.grad.data.buffer]))]);
    const refused = readsMadeTensor(model, capture, allowed, true);
    if (refused !== null) return eager(refused);
    const outViews = passes.flat().flatMap((p) => [p.share.data, p.logits.data]);
    if (outViews.some((v) => !capture.allocated.has(v.buffer))) return eager('a loss or logits tensor was not written by a kernel');
    const residual = residualIntoConvs(capture.steps, capture.allocated);
    const folded = foldNormsForTraining(residual.steps, capture.allocated, outViews);
    const aliased = aliasGradientSums(folded.steps, capture.allocated, outViews);
    const overwritten = overwriteFirstWrites(aliased.steps);
    const steps = overwritten.steps;
    const allocated = new Set([...capture.allocated, ...folded.added.map((m) => m.buffer)]);
    const { offsets, arenaBytes } = placeInArena(steps, allocated, outViews);
    const eagerBytes = allocatedBytes(capture.allocated);
    const layout = new ArenaLayout(offsets);
    const outputs = passes.map((chunks) =>
      chunks.map((p) => ({
        share: layout.ref(p.share.data),
        logits: layout.ref(p.logits.data),
        rows: p.logits.shape[0],
        cols: p.logits.shape[1],
        labels: p.labels as Int32Array,
      })),
    );
    const grads: [Tensor, Tensor][] = [];
    for (const p of params) if (p.grad !== null) grads.push([p, p.grad]);
    const plan = new TrainingPlan({
      rates: settings.rates,
      inputShape: [...x.shape],
      arenaBytes,
      eagerBytes,
      template: layout.template(steps),
      passes: { residualAdds: residual.count, foldedNorms: folded.count, aliasedSums: aliased.count, overwrites: overwritten.count },
      input,
      labels: labelsIn,
      outputs,
      layout,
      grads,
      state: new StateSnapshot(state),
      arena,
    });
    return { plan, results: plan.run(x.data, labels) };
  }

  /** False once the model's parameters or buffers were replaced by new arrays, or the set changed. */
  validFor(now: readonly Tensor[]): boolean {
    return this.state.matches(now);
  }

  /** @internal Drops the views of the shared arena (it is being replaced). */
  unbind(): void {
    this.bound = null;
    this.boundOut = [];
  }

  /** @internal Removes the plan from its arena's list. */
  release(): void {
    this.unbind();
    this.arena.plans.delete(this);
  }

  /**
   * One step on x (inputShape) and labels (checked class indices): gradients
   * in the parameters' .grad (replacing what was there), results per rate.
   */
  run(x: Float32Array, labels: Int32Array): RateLoss[] {
    if (x.length !== this.input.length || labels.length !== this.labels.length) {
      throw new RangeError(`TrainingPlan.run: ${x.length} inputs and ${labels.length} labels for a plan of [${this.inputShape.join(', ')}]`);
    }
    const classes = this.outputs[0][0].cols;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i];
      if (!(v >= 0 && v < classes)) throw new RangeError(`fit: labels[${i}] = ${v} is not a class index in [0, ${classes})`);
    }
    if (this.bound === null) {
      const arena = this.arena.ensure(this.arenaBytes);
      const seen = new Map();
      this.bound = bindSteps(this.template, arena, seen);
      this.boundOut = this.outputs.map((chunks) =>
        chunks.map((c) => ({
          ...c,
          share: this.layout.bind(c.share, arena, seen) as Float32Array,
          logits: this.layout.bind(c.logits, arena, seen) as Float32Array,
        })),
      );
    }
    this.input.set(x);
    this.labels.set(labels);
    for (const s of this.bound) s.fn(...s.args);
    for (const [p, g] of this.grads) p.grad = g;
    return this.rates.map((rate, i) => {
      let loss = 0;
      let correct = 0;
      for (const c of this.boundOut[i]) {
        loss += c.share[0];
        correct += correctRows(c.logits, c.rows, c.cols, c.labels);
      }
      return { rate, loss, correct };
    });
  }
}

const arenas = new WeakMap<Module, SharedArena>();

function arenaOf(model: Module): SharedArena {
  let a = arenas.get(model);
  if (a === undefined) arenas.set(model, (a = new SharedArena()));
  return a;
}

// Plans per model, for one structureVersion (a change of a layer drops them
// all). A plan is built the first time its key is seen, or with `sightings: 2`
// the second, so keys that never come back (the `uniform` schedule's
// continuous rates) cost nothing but the eager step they run. At most
// MAX_PLANS are kept, the least recently used dropped first: the `random`
// schedule over 4 rates with k = 2 draws 6 rate sets, random_min_max with k = 1
// draws 2 (plus, for each, the smaller last batch of an epoch).
const MAX_PLANS = 8;
const MAX_SEEN = 64;
interface Cache {
  version: number;
  byKey: Map<string, TrainingPlan | string>;
  seen: Set<string>;
}
const caches = new WeakMap<Module, Cache>();
const counts = new WeakMap<Module, Record<StepMode, number>>();

/** What plannedStep did: replayed a plan, built one, or ran eagerly (and why). */
export type StepMode = 'replay' | 'build' | 'eager';

/** plannedStep's options: slicedStep's, and when to build a plan. */
export interface PlannedStepOptions extends SlicedStepOptions {
  /** Build a step's plan the first time its rates and shape are seen (1, the default) or the second (2). */
  sightings?: 1 | 2;
}

/**
 * @internal One training step like slicedStep, replayed from a cached plan
 * when one exists: gradients replace the parameters' .grad (they do not add to
 * it), results per rate.
 */
export function plannedStep(
  model: Module,
  x: Tensor,
  labels: Int32Array,
  rates: readonly number[],
  options: PlannedStepOptions = {},
): { results: RateLoss[]; mode: StepMode; why?: string } {
  const out = step(model, x, labels, rates, options);
  const c = counts.get(model) ?? { replay: 0, build: 0, eager: 0 };
  c[out.mode]++;
  counts.set(model, c);
  return out;
}

function step(
  model: Module,
  x: Tensor,
  labels: Int32Array,
  rates: readonly number[],
  options: PlannedStepOptions,
): { results: RateLoss[]; mode: StepMode; why?: string } {
  const settings = stepSettings('fit', model, x.shape[0], rates, options);
  const key = [settings.rates.join(','), x.shape.join('x'), settings.distill, settings.mix, settings.chunk, model.modules().map((m) => (m.training ? 1 : 0)).join('')].join('|');
  let entry = caches.get(model);
  if (entry === undefined || entry.version !== model.structureVersion) {
    entry?.byKey.forEach((p) => p instanceof TrainingPlan && p.release());
    caches.set(model, (entry = { version: model.structureVersion, byKey: new Map(), seen: new Set() }));
  }
  const { byKey, seen } = entry;
  let plan = byKey.get(key);
  if (plan instanceof TrainingPlan && !plan.validFor(InferencePlan.state(model))) {
    plan.release();
    byKey.delete(key);
    plan = undefined;
  }
  if (plan instanceof TrainingPlan) {
    byKey.delete(key);
    byKey.set(key, plan);
    return { results: plan.run(x.data, labels), mode: 'replay' };
  }
  if (plan === undefined && (seen.has(key) || options.sightings !== 2)) {
    const built = TrainingPlan.build(model, x, labels, settings);
    byKey.set(key, built.plan);
    for (const [k, p] of byKey) {
      if (byKey.size <= MAX_PLANS) break;
      if (p instanceof TrainingPlan) p.release();
      byKey.delete(k);
    }
    return typeof built.plan === 'string' ? { results: built.results, mode: 'eager', why: built.plan } : { results: built.results, mode: 'build' };
  }
  seen.add(key);
  if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value as string);
  for (const p of model.parameters()) p.grad = null;
  return { results: stepResults(settings.rates, runStep(model, x, labels, settings)), mode: 'eager', why: typeof plan === 'string' ? plan : 'first sight' };
}

/** @internal Steps a model took by replay, plan build and eagerly (for tests and benchmarks). */
export function trainingStepCounts(model: Module): Record<StepMode, number> {
  return { replay: 0, build: 0, eager: 0, ...counts.get(model) };
}

/** Drops a model's training plans and their arena (they are rebuilt on demand). */
export function releaseTrainingPlans(model: Module): void {
  caches.get(model)?.byKey.forEach((p) => p instanceof TrainingPlan && p.release());
  caches.delete(model);
  arenas.delete(model);
}
