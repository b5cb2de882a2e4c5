// Inference over cache-sized slices of a batch. A whole-batch pass streams
// every activation through memory once per layer; slices of a few images keep
// a block's activations in cache between its norm, convolution and add
// (ResNet-164 at batch 64: 542 ms whole, 444 ms in slices of 16 here).
import type { Module } from '../nn/module.js';
import { noGrad, Tensor } from '../tensor.js';
import { checkRate } from './width.js';

export interface InferOptions {
  /** Slice rate for this pass (default: the model's current rate). */
  rate?: number;
  /** Images per slice; default 16 for image batches and the whole batch otherwise. */
  sliceSize?: number;
}

/** The model's output for x in eval mode, without recording a graph, one slice at a time. */
export function infer(model: Module, x: Tensor, options: InferOptions = {}): Tensor {
  const op = 'infer';
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: x must be a Tensor`);
  if (x.rank < 1 || x.shape[0] < 1) throw new RangeError(`${op}: x must have a non-empty batch axis, got shape [${x.shape.join(', ')}]`);
  const batch = x.shape[0];
  const slice = options.sliceSize ?? (x.rank >= 4 ? 16 : batch);
  if (!Number.isInteger(slice) || slice < 1) throw new RangeError(`${op}: sliceSize must be a positive integer, got ${String(slice)}`);
  const previousRate = model.sliceRate;
  const flags = model.modules().map((m) => m.training);
  if (options.rate !== undefined) model.setSliceRate(checkRate(op, options.rate));
  model.eval();
  try {
    return noGrad(() => {
      if (slice >= batch) return model.forward(x);
      const per = x.size / batch;
      let out: Float32Array | null = null;
      let outShape: number[] = [];
      for (let start = 0; start < batch; start += slice) {
        const n = Math.min(slice, batch - start);
        const part = new Tensor(x.data.subarray(start * per, (start + n) * per), [n, ...x.shape.slice(1)]);
        const y = model.forward(part);
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
