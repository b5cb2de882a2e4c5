// Linear layer; at rate r it computes the first outWidth units from the first
// inWidth inputs (the width of whatever arrives) with one in-place GEMM.
import { linear } from '../ops/linear.js';
import { defaultGenerator } from '../random.js';
import type { Tensor } from '../tensor.js';
import { uniformInit, withoutDrawing } from './init.js';
import { SliceableLayer, type SliceOptions } from './sliceable.js';
import { reportUse, tracing } from './trace.js';

export interface LinearLayerOptions extends SliceOptions {
  bias?: boolean;
}

export class Linear extends SliceableLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearLayerOptions = {}) {
    super('Linear', options);
    for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`Linear: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', uniformInit([outFeatures, inFeatures], bound, defaultGenerator))!;
    this.bias = (options.bias ?? true) ? this.registerParameter('bias', uniformInit([outFeatures], bound, defaultGenerator)) : null;
  }

  forward(x: Tensor): Tensor {
    const outWidth = this.outWidth(this.outFeatures);
    const y = linear(x, this.weight, this.bias, { outWidth });
    if (tracing()) {
      const inWidth = x.shape[x.rank - 1];
      reportUse({
        module: this,
        macs: (y.size / Math.max(1, x.shape[0])) * inWidth,
        params: outWidth * inWidth + (this.bias ? outWidth : 0),
        widths: { inWidth, outWidth },
      });
    }
    return y;
  }

  /** A layer of the widths this one reported in a trace (inWidth, outWidth), holding copies of its prefix weights. */
  override compact(widths?: Readonly<Record<string, number>>): Linear {
    const inWidth = widths?.inWidth ?? this.inFeatures;
    const outWidth = widths?.outWidth ?? this.outFeatures;
    return this.filledCopy(withoutDrawing(() => new Linear(inWidth, outWidth, { bias: this.bias !== null, sliceGroups: this.sliceGroups })));
  }
}
