// fit: the training loop. Each batch runs the rates its schedule draws
// (widest first), sums their gradients and takes one optimizer step. It yields
// to the event loop between batches, honours an AbortSignal, guards against
// non-finite losses, and can checkpoint every epoch and resume exactly.
import { loadFile, save } from '../io/model-file.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/norm.js';
import type { LrSchedule } from '../optim/lr.js';
import type { Optimizer } from '../optim/optimizer.js';
import { defaultGenerator, Generator, type GeneratorState } from '../random.js';
import { useSwitchableBatchNorm } from '../slicing/calibrate.js';
import { rateSchedule, type RateSchedule, type ScheduleName } from '../slicing/schedules.js';
import { DEFAULT_RATES, setTrainedRates } from '../slicing/select.js';
import { onlyLibraryModules } from '../slicing/infer.js';
import { slicedStep } from '../slicing/step.js';
import { plannedStep, releaseTrainingPlans } from '../slicing/train-plan.js';
import { setInputShape } from '../nn/input-shape.js';
import { Tensor } from '../tensor.js';
import { evaluate, type BatchSource, type EvalRow } from './evaluate.js';

export interface BatchInfo {
  epoch: number;
  batch: number;
  /** Batches per epoch when the data knows it. */
  batches: number | null;
  rates: number[];
  /** Loss and accuracy of the widest rate on this batch. */
  loss: number;
  accuracy: number;
  images: number;
  /** Seconds since the epoch began. */
  seconds: number;
}

export interface EpochRecord {
  epoch: number;
  /** Mean loss and accuracy of the widest rate over the epoch's batches. */
  loss: number;
  accuracy: number;
  seconds: number;
  eval?: EvalRow[];
}

export interface FitCallbacks {
  onEpochBegin?: (epoch: number) => void | Promise<void>;
  onEpochEnd?: (record: EpochRecord) => void | Promise<void>;
  onBatchBegin?: (epoch: number, batch: number) => void | Promise<void>;
  onBatchEnd?: (info: BatchInfo) => void | Promise<void>;
}

export interface FitOptions {
  epochs: number;
  optimizer: Optimizer;
  /** Rates to train (default 1, 0.75, 0.5, 0.25). */
  rates?: number[];
  /** A schedule object, or a name with scheduleK and seed (default random_min_max). */
  schedule?: RateSchedule | ScheduleName;
  scheduleK?: number;
  seed?: number;
  /** Updated every batch with a fractional epoch. */
  lrSchedule?: LrSchedule;
  /** In-place distillation; mix is the weight of the label loss for narrower rates. */
  distill?: boolean | { mix?: number };
  /** Images per forward/backward chunk of a step (see SlicedStepOptions.microBatch; default the whole batch). */
  microBatch?: number;
  evalData?: BatchSource;
  evalRates?: number[];
  callbacks?: FitCallbacks;
  signal?: AbortSignal;
  /** Rescale gradients whose global L2 norm exceeds this. */
  clipGradNorm?: number;
  /**
   * Replay each step from a training plan (slicing/train-plan.ts) once its
   * rates and batch shape come back (default: true when every module is one of
   * the library's own; a custom module may compute in JavaScript, which a
   * replay would skip). Gives the same weights as eager steps, faster.
   */
  plan?: boolean;
  /** Stop with an error when a loss is not finite (default true). */
  nanGuard?: boolean;
  /** Write a checkpoint here after every epoch (atomically). */
  checkpoint?: string;
  /** Continue from a checkpoint written by fit (model, optimizer, schedules, data order, random state). */
  resume?: string;
}

export interface FitResult {
  epochs: EpochRecord[];
}

interface Stateful<S> {
  stateDict(): S;
  loadStateDict(s: S): void;
}

interface TrainingState {
  epoch: number;
  history: EpochRecord[];
  optimizer: { lr: number; stepCount: number; paramSteps: number[] };
  schedule: unknown;
  lrSchedule: unknown;
  data: unknown;
  generator: GeneratorState;
}

function isStateful<S>(x: unknown): x is Stateful<S> {
  return x !== null && typeof x === 'object' && typeof (x as Stateful<S>).stateDict === 'function' && typeof (x as Stateful<S>).loadStateDict === 'function';
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('fit: aborted');
  err.name = 'AbortError';
  return err;
}

/** Scales every gradient so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) if (p.grad) for (const g of p.grad.data) sq += g * g;
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && norm > 0) {
    const s = maxNorm / norm;
    for (const p of params) if (p.grad) for (let i = 0; i < p.grad.size; i++) p.grad.data[i] *= s;
  }
  return norm;
}

export async function fit(model: Module, data: BatchSource, options: FitOptions): Promise<FitResult> {
  const op = 'fit';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const { optimizer, epochs } = options;
  if (!Number.isInteger(epochs) || epochs < 0) throw new RangeError(`${op}: epochs must be a non-negative integer, got ${String(epochs)}`);
  if (optimizer === undefined || typeof optimizer.step !== 'function') throw new TypeError(`${op}: options.optimizer is required`);
  const clip = options.clipGradNorm;
  if (clip !== undefined && !(clip > 0)) throw new RangeError(`${op}: clipGradNorm must be a positive number, got ${String(clip)}`);
  const schedule =
    typeof options.schedule === 'object' && options.schedule !== null
      ? options.schedule
      : rateSchedule(options.schedule ?? 'random_min_max', options.rates ?? DEFAULT_RATES, {
          k: options.scheduleK ?? 1,
          generator: new Generator(options.seed ?? Generator.freshSeed()),
        });
  // A schedule object carries its own rates; a different options.rates would be silently ignored.
  const asked = Array.isArray(options.rates) ? [...new Set(options.rates)].sort((p, q) => q - p) : options.rates;
  if (asked !== undefined && String(asked) !== String(schedule.rates)) {
    throw new RangeError(`${op}: options.rates [${String(options.rates)}] differ from the schedule's rates [${schedule.rates.join(', ')}]; give one of them`);
  }
  const distill = options.distill === true || (typeof options.distill === 'object' && options.distill !== null);
  const distillMix = typeof options.distill === 'object' && options.distill !== null ? options.distill.mix ?? 0 : 0;
  const nanGuard = options.nanGuard ?? true;
  if (options.plan !== undefined && typeof options.plan !== 'boolean') throw new TypeError(`${op}: plan must be a boolean`);
  const cb = options.callbacks ?? {};
  setTrainedRates(model, schedule.rates);
  if (model.modules().some((m) => m instanceof BatchNorm2d) && schedule.rates.length > 1) {
    const bn = model.modules().find((m): m is BatchNorm2d => m instanceof BatchNorm2d)!;
    if (bn.statRates.join() !== schedule.rates.join()) {
      const norms = model.modules().filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
      const before = norms.map((n) => new Set(n.parameters()));
      useSwitchableBatchNorm(model, schedule.rates);
      // The per-rate affine parameters are new tensors the caller's optimizer
      // has never seen: without this they would never be trained.
      const known = new Set(optimizer.params);
      norms.forEach((n, i) => {
        if (!n.parameters().some((p) => before[i].has(p) && known.has(p))) return;
        optimizer.addParams(n.parameters().filter((p) => !before[i].has(p) && !known.has(p)));
      });
    }
  }

  let history: EpochRecord[] = [];
  let startEpoch = 1;
  if (options.resume !== undefined) {
    const file = await loadFile(options.resume);
    const state = file.training as TrainingState | undefined;
    if (state === undefined || typeof state.epoch !== 'number') throw new RangeError(`${op}: ${options.resume} is a model file, not a training checkpoint`);
    model.loadStateDict(file.model.stateDict());
    const buffers: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(file.extraTensors)) if (name.startsWith('optimizer.')) buffers[name.slice('optimizer.'.length)] = t;
    optimizer.loadStateDict({ ...state.optimizer, buffers });
    if (state.schedule !== undefined) schedule.loadStateDict(state.schedule as never);
    if (options.lrSchedule && state.lrSchedule !== undefined) options.lrSchedule.loadStateDict(state.lrSchedule as never);
    if (isStateful(data) && state.data !== undefined) data.loadStateDict(state.data);
    defaultGenerator.setState(state.generator);
    history = state.history ?? [];
    startEpoch = state.epoch + 1;
  }

  const dataLength = (data as unknown as { length?: unknown }).length;
  const batchesPerEpoch = typeof dataLength === 'number' ? dataLength : null;
  model.train();
  const usePlan = options.plan ?? onlyLibraryModules(model);
  let shapeRecorded = false;
  try {
    for (let epoch = startEpoch; epoch <= epochs; epoch++) {
      if (options.signal?.aborted) throw abortError(options.signal);
      await cb.onEpochBegin?.(epoch);
      const started = performance.now();
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let batch = 0;
      for await (const { x, y } of data as AsyncIterable<{ x: Tensor; y: Int32Array }>) {
        if (options.signal?.aborted) throw abortError(options.signal);
        await cb.onBatchBegin?.(epoch, batch);
        if (options.signal?.aborted) throw abortError(options.signal);
        if (options.lrSchedule) options.lrSchedule.setEpoch(epoch - 1 + (batchesPerEpoch ? batch / batchesPerEpoch : 0));
        if (!shapeRecorded) {
          // What the model trained on is what it takes: costs, exports and servers use it.
          setInputShape(op, model, x.shape.slice(1), 'the shape of the data');
          shapeRecorded = true;
        }
        const rates = schedule.next();
        const stepOptions = { distill, distillMix, microBatch: options.microBatch };
        const results = usePlan
          ? // Uniform rates never repeat: plan a step only if it comes back.
            plannedStep(model, x, y instanceof Int32Array ? y : Int32Array.from(y), rates, { ...stepOptions, sightings: schedule.name === 'uniform' ? 2 : 1 }).results
          : slicedStep(model, x, y, rates, stepOptions);
        const bad = results.find((r) => !Number.isFinite(r.loss));
        if (nanGuard && bad !== undefined) {
          optimizer.zeroGrad();
          // Bad data is not divergence: say which it is.
          const at = x.data.findIndex((v) => !Number.isFinite(v));
          throw new Error(
            `${op}: the loss became ${bad.loss} at epoch ${epoch}, batch ${batch} (rate ${bad.rate}); ` +
              (at >= 0
                ? `the input batch holds ${x.data[at]} (at flat index ${at}): check the data`
                : 'training diverged: lower the learning rate, or set clipGradNorm'),
          );
        }
        if (clip !== undefined) clipGradNorm(optimizer.params, clip);
        optimizer.step();
        optimizer.zeroGrad();
        const widest = results[0];
        lossSum += widest.loss * y.length;
        correct += widest.correct;
        seen += y.length;
        await cb.onBatchEnd?.({
          epoch,
          batch,
          batches: batchesPerEpoch,
          rates,
          loss: widest.loss,
          accuracy: widest.correct / y.length,
          images: y.length,
          seconds: (performance.now() - started) / 1000,
        });
        batch++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (seen === 0) throw new RangeError(`${op}: the data yielded no batches in epoch ${epoch}`);
      const record: EpochRecord = { epoch, loss: lossSum / seen, accuracy: correct / seen, seconds: (performance.now() - started) / 1000 };
      if (options.lrSchedule) options.lrSchedule.setEpoch(epoch);
      if (options.evalData !== undefined) {
        record.eval = await evaluate(model, options.evalData, { rates: options.evalRates ?? schedule.rates });
        model.train();
      }
      history.push(record);
      if (options.checkpoint !== undefined) {
        const opt = optimizer.stateDict();
        const extraTensors: Record<string, Tensor> = {};
        for (const [name, t] of Object.entries(opt.buffers)) extraTensors[`optimizer.${name}`] = t;
        const state: TrainingState = {
          epoch,
          history,
          optimizer: { lr: opt.lr, stepCount: opt.stepCount, paramSteps: opt.paramSteps },
          schedule: schedule.stateDict(),
          lrSchedule: options.lrSchedule?.stateDict(),
          data: isStateful(data) ? data.stateDict() : undefined,
          generator: defaultGenerator.getState(),
        };
        await save(model, options.checkpoint, { extraTensors, training: state });
      }
      await cb.onEpochEnd?.(record);
    }
  } finally {
    // A plan's arena holds a step's activations (3 GiB for ResNet-164 at batch 128): it
    // goes with the training run, not with the model.
    if (usePlan) releaseTrainingPlans(model);
  }
  return { epochs: history };
}
