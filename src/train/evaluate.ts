// evaluate: accuracy, mean loss, MACs and parameters at each rate. The
// accuracy per rate becomes the model's record (saved in its file).
import { modelRecord } from '../metadata.js';
import type { Module } from '../nn/module.js';
import { crossEntropy } from '../ops/cross-entropy.js';
import { costs } from '../slicing/compact.js';
import { infer } from '../slicing/infer.js';
import { countCorrect, labelRows } from '../slicing/step.js';
import { trainedRatesOf } from '../slicing/select.js';
import { checkRate } from '../nn/width.js';
import { noGrad, type Tensor } from '../tensor.js';

export interface EvalRow {
  rate: number;
  /** Fraction correct, in [0, 1]. */
  accuracy: number;
  loss: number;
  macs: number;
  params: number;
}

export interface EvaluateOptions {
  rates?: readonly number[];
  /** Called after each batch with the number of inputs evaluated so far (at every rate). */
  onProgress?: (inputs: number) => void;
}

export type BatchSource = Iterable<{ x: Tensor; y: Int32Array }> | AsyncIterable<{ x: Tensor; y: Int32Array }>;

export async function evaluate(model: Module, data: BatchSource, options: EvaluateOptions = {}): Promise<EvalRow[]> {
  const rates = [...(options.rates ?? trainedRatesOf(model))].map((r) => checkRate('evaluate', r));
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new TypeError('evaluate: onProgress must be a function');
  let seen = 0;
  const previous = model.sliceRate;
  const flags = model.modules().map((m) => m.training);
  model.eval();
  const totals = rates.map(() => ({ loss: 0, correct: 0, count: 0 }));
  let inputShape: number[] | null = null;
  try {
    for await (const batch of data as AsyncIterable<{ x: Tensor; y: Int32Array }>) {
      inputShape ??= batch.x.shape.slice(1);
      rates.forEach((rate, i) => {
        model.setSliceRate(rate);
        noGrad(() => {
          const logits = labelRows(infer(model, batch.x));
          const n = batch.y.length;
          totals[i].loss += crossEntropy(logits, batch.y).item() * n;
          totals[i].correct += countCorrect(logits, batch.y);
          totals[i].count += n;
        });
      });
      seen += batch.y.length;
      options.onProgress?.(seen);
      // Keep a server's event loop responsive between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    model.setSliceRate(previous);
    model.modules().forEach((m, i) => (m.training = flags[i]));
  }
  if (inputShape === null) throw new RangeError('evaluate: data yielded no batches');
  const table = costs(model, inputShape, rates);
  const rows = rates.map((rate, i) => ({
    rate,
    accuracy: totals[i].count > 0 ? totals[i].correct / totals[i].count : 0,
    loss: totals[i].count > 0 ? totals[i].loss / totals[i].count : NaN,
    macs: table[i].macs,
    params: table[i].params,
  }));
  modelRecord(model).accuracy = rows.map(({ rate, accuracy }, i) => ({ rate, accuracy, examples: totals[i].count })).sort((a, b) => b.rate - a.rate);
  return rows;
}
