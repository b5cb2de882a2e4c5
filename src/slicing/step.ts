// One training step over several rates: forward and backward at each rate of
// the batch (widest first), gradients summed in the parameters' .grad, no
// optimizer step. With in-place distillation the widest rate learns from the
// labels and the narrower ones from its detached soft predictions.
import type { Module } from '../nn/module.js';
import { add } from '../ops/add.js';
import { crossEntropy } from '../ops/cross-entropy.js';
import { klDiv } from '../ops/kl-div.js';
import { logSoftmax } from '../ops/log-softmax.js';
import { mul } from '../ops/mul.js';
import { softmax } from '../ops/softmax.js';
import { noGrad, tensor, type Tensor } from '../tensor.js';
import { checkRate } from './width.js';

export interface SlicedStepOptions {
  /** In-place distillation: narrower rates learn from the widest rate's soft predictions. */
  distill?: boolean;
  /** With distill, the weight of the label loss for narrower rates (0 = teacher only). */
  distillMix?: number;
}

export interface RateLoss {
  rate: number;
  loss: number;
  /** Correct predictions in this batch at this rate. */
  correct: number;
}

export function countCorrect(logits: Tensor, labels: Int32Array | readonly number[]): number {
  const [n, c] = logits.shape;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (logits.data[i * c + j] > logits.data[i * c + best]) best = j;
    if (best === labels[i]) correct++;
  }
  return correct;
}

export function slicedStep(
  model: Module,
  x: Tensor,
  labels: Int32Array | readonly number[],
  rates: readonly number[],
  options: SlicedStepOptions = {},
): RateLoss[] {
  const sorted = [...rates].map((r) => checkRate('slicedStep', r)).sort((a, b) => b - a);
  const mix = options.distillMix ?? 0;
  if (!(mix >= 0 && mix <= 1)) throw new RangeError(`slicedStep: distillMix must be in [0, 1], got ${String(mix)}`);
  const previous = model.sliceRate;
  const out: RateLoss[] = [];
  let teacher: Tensor | null = null;
  try {
    sorted.forEach((rate, i) => {
      model.setSliceRate(rate);
      const logits = model.forward(x);
      let loss: Tensor;
      if (i === 0 || !options.distill || teacher === null) {
        loss = crossEntropy(logits, labels);
      } else {
        const kd = klDiv(logSoftmax(logits), teacher);
        loss = mix > 0 ? add(mul(kd, tensor([1 - mix], [])), mul(crossEntropy(logits, labels), tensor([mix], []))) : kd;
      }
      loss.backward();
      if (i === 0 && options.distill) teacher = noGrad(() => softmax(logits.detach()));
      out.push({ rate, loss: loss.item(), correct: countCorrect(logits, labels) });
    });
  } finally {
    model.setSliceRate(previous);
  }
  return out;
}
