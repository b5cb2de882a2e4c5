// One training step over several rates: forward and backward at each rate of
// the batch (widest first), gradients summed in the parameters' .grad, no
// optimizer step. With in-place distillation the widest rate learns from the
// labels and the narrower ones from its detached soft predictions.
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/norm.js';
import { add } from '../ops/add.js';
import { crossEntropy } from '../ops/cross-entropy.js';
import { klDiv } from '../ops/kl-div.js';
import { logSoftmax } from '../ops/log-softmax.js';
import { mul } from '../ops/mul.js';
import { reshape } from '../ops/reshape.js';
import { softmax } from '../ops/softmax.js';
import { noGrad, Tensor, tensor } from '../tensor.js';
import { checkRate } from '../nn/width.js';

export interface SlicedStepOptions {
  /** In-place distillation: narrower rates learn from the widest rate's soft predictions. */
  distill?: boolean;
  /** With distill, the weight of the label loss for narrower rates (0 = teacher only). */
  distillMix?: number;
  /**
   * Images per forward/backward chunk (default: the whole batch). The chunks'
   * gradients add up to the whole batch's (each chunk's loss is weighted by its
   * share of the batch), so this needs a model whose layers treat each sample
   * on its own: no BatchNorm in training mode, whose batch statistics would
   * change with the chunk. Only one chunk's activations are alive at a time:
   * ResNet-164 at batch 128 trains in 0.7 GB instead of 4.5 GB with chunks of
   * 16, and 13% faster on the 2-core machine; ResNet-56 is 15% slower (its
   * whole batch fits the caches about as well, and small GEMMs cost more).
   */
  microBatch?: number;
}

export interface RateLoss {
  rate: number;
  loss: number;
  /** Correct predictions in this batch at this rate. */
  correct: number;
}

/** Correct predictions of logits [N, classes] (or [N, T, classes], a label per position) for the labels. */
export function countCorrect(logits: Tensor, labels: Int32Array | readonly number[]): number {
  const classes = logits.shape[logits.rank - 1];
  return correctRows(logits.data, logits.size / Math.max(1, classes), classes, labels);
}

/**
 * Logits with one row per label: [N, classes] as they are, and a sequence model's
 * [N, T, classes] (a prediction at every position, labels in the same order) as [N x T, classes].
 */
export function labelRows(logits: Tensor): Tensor {
  return logits.rank > 2 ? reshape(logits, [-1, logits.shape[logits.rank - 1]]) : logits;
}

/** @internal countCorrect on raw logits. */
export function correctRows(logits: Float32Array, n: number, c: number, labels: Int32Array | readonly number[]): number {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (logits[i * c + j] > logits[i * c + best]) best = j;
    if (best === labels[i]) correct++;
  }
  return correct;
}

/** @internal A step's checked settings. */
export interface StepPlan {
  /** Rates, widest first. */
  rates: number[];
  distill: boolean;
  mix: number;
  /** Images per chunk. */
  chunk: number;
}

/** @internal One chunk's pass: its loss weighted by its share of the batch, its logits and labels. */
export interface ChunkPass {
  share: Tensor;
  logits: Tensor;
  labels: Int32Array | readonly number[];
}

/** @internal Checks a step's rates and options against the model and batch. */
export function stepSettings(op: string, model: Module, batch: number, rates: readonly number[], options: SlicedStepOptions): StepPlan {
  const sorted = [...rates].map((r) => checkRate(op, r)).sort((a, b) => b - a);
  const mix = options.distillMix ?? 0;
  if (!(mix >= 0 && mix <= 1)) throw new RangeError(`${op}: distillMix must be in [0, 1], got ${String(mix)}`);
  const perSample = !model.modules().some((m) => m instanceof BatchNorm2d && m.training);
  const chunk = options.microBatch ?? Math.max(1, batch);
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`${op}: microBatch must be a positive integer, got ${String(chunk)}`);
  if (chunk < batch && !perSample) {
    throw new RangeError(`${op}: microBatch needs a model without BatchNorm in training mode (its batch statistics depend on the chunk)`);
  }
  return { rates: sorted, distill: options.distill === true, mix, chunk };
}

/**
 * @internal The forward and backward passes of a step, gradients added to the
 * parameters' .grad; per rate, the passes of its chunks (read their values
 * with stepResults). Only kernels compute here, so a capture of this is the
 * whole step (train-plan.ts).
 */
export function runStep(model: Module, x: Tensor, labels: Int32Array | readonly number[], s: StepPlan): ChunkPass[][] {
  const batch = x.shape[0];
  const per = x.size / Math.max(1, batch);
  const previous = model.sliceRate;
  const out: ChunkPass[][] = [];
  const teachers: Tensor[] = [];
  try {
    s.rates.forEach((rate, i) => {
      model.setSliceRate(rate);
      const passes: ChunkPass[] = [];
      for (let start = 0, k = 0; start < batch || (batch === 0 && k === 0); start += s.chunk, k++) {
        const n = Math.min(s.chunk, batch - start);
        const xs = n === batch ? x : new Tensor(x.data.subarray(start * per, (start + n) * per), [n, ...x.shape.slice(1)]);
        // A sequence model has a label per position: `labels.length / batch` of them per input.
        const lp = labels.length / Math.max(1, batch);
        const ys = n === batch ? labels : labels instanceof Int32Array ? labels.subarray(start * lp, (start + n) * lp) : labels.slice(start * lp, (start + n) * lp);
        const logits = labelRows(model.forward(xs));
        let loss: Tensor;
        if (i === 0 || !s.distill || teachers.length === 0) {
          loss = crossEntropy(logits, ys);
        } else {
          const kd = klDiv(logSoftmax(logits), teachers[k]);
          loss = s.mix > 0 ? add(mul(kd, tensor([1 - s.mix], [])), mul(crossEntropy(logits, ys), tensor([s.mix], []))) : kd;
        }
        const share = n === batch ? loss : mul(loss, tensor([n / batch], []));
        share.backward();
        if (i === 0 && s.distill) teachers.push(noGrad(() => softmax(logits.detach())));
        passes.push({ share, logits, labels: ys });
      }
      out.push(passes);
    });
  } finally {
    model.setSliceRate(previous);
  }
  return out;
}

/** @internal Loss and correct predictions per rate from a step's passes. */
export function stepResults(rates: readonly number[], passes: readonly ChunkPass[][]): RateLoss[] {
  return rates.map((rate, i) => {
    let loss = 0;
    let correct = 0;
    for (const p of passes[i]) {
      loss += p.share.item();
      correct += countCorrect(p.logits, p.labels);
    }
    return { rate, loss, correct };
  });
}

export function slicedStep(
  model: Module,
  x: Tensor,
  labels: Int32Array | readonly number[],
  rates: readonly number[],
  options: SlicedStepOptions = {},
): RateLoss[] {
  const settings = stepSettings('slicedStep', model, x.shape[0], rates, options);
  return stepResults(settings.rates, runStep(model, x, labels, settings));
}
