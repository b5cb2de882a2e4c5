// What sliceable layers share: G slice groups, whether the output shrinks with
// the rate ('auto' until the model's structure decides), and the width rule.
import type { Tensor } from '../tensor.js';
import { sliceWidth } from './width.js';
import { Module } from './module.js';

export interface SliceOptions {
  /** Number of slice groups G (default 8). */
  sliceGroups?: number;
  /** false keeps this layer's output at full width at every rate (a classifier, say). */
  slice?: boolean;
}

interface WeightAndBias {
  weight: Tensor;
  bias: Tensor | null;
}

export abstract class SliceableLayer extends Module {
  readonly sliceGroups: number;
  private sliceOutputMode: boolean | 'auto' = 'auto';

  constructor(op: string, options: SliceOptions = {}) {
    super();
    const g = options.sliceGroups ?? 8;
    if (!Number.isInteger(g) || g < 1) throw new RangeError(`${op}: sliceGroups must be a positive integer, got ${String(g)}`);
    this.sliceGroups = g;
    this.sliceOutput = options.slice === false ? false : 'auto';
  }

  /** Whether the output narrows with the rate; 'auto' until decided from the model's structure. */
  get sliceOutput(): boolean | 'auto' {
    return this.sliceOutputMode;
  }

  set sliceOutput(mode: boolean | 'auto') {
    if (mode !== true && mode !== false && mode !== 'auto') {
      throw new TypeError(`sliceOutput: must be true, false or 'auto', got ${String(mode)}`);
    }
    if (mode === this.sliceOutputMode) return;
    this.sliceOutputMode = mode;
    this.markStructureChanged();
  }

  /**
   * Finishes a compact copy made by a subclass's constructor: the same output
   * mode and training flag, and the prefixes of this layer's weight and bias.
   */
  protected filledCopy<L extends SliceableLayer & WeightAndBias>(this: L, copy: L): L {
    copy.sliceOutput = this.sliceOutput;
    copy.training = this.training;
    copyPrefix(this.weight, copy.weight);
    if (this.bias !== null && copy.bias !== null) copyPrefix(this.bias, copy.bias);
    return copy;
  }

  /** How many of `units` outputs to compute at the current rate. */
  protected outWidth(units: number): number {
    return this.sliceOutput === false ? units : sliceWidth(units, this.sliceRate, this.sliceGroups);
  }
}

/**
 * Decides the slicing boundaries of a model from its structure: the last
 * sliceable layer (in registration order, which follows the forward order of
 * the built-in models) keeps its full output. Layers set explicitly stay as set.
 */
export function markSliceBoundaries(model: Module): void {
  const layers = model.modules().filter((m): m is SliceableLayer => m instanceof SliceableLayer);
  layers.forEach((layer, i) => {
    if (layer.sliceOutput === 'auto') layer.sliceOutput = i < layers.length - 1;
  });
}

/** Copies the leading block of `src` (a prefix along every dimension) into `dst`, a tensor of the same rank. */
function copyPrefix(src: Tensor, dst: Tensor): void {
  const rank = dst.rank;
  const inner = dst.shape[rank - 1];
  const rows = dst.size / Math.max(1, inner);
  for (let r = 0; r < rows; r++) {
    let srcOffset = 0;
    let srcStride = src.shape[rank - 1];
    let rest = r;
    for (let i = rank - 2; i >= 0; i--) {
      srcOffset += (rest % dst.shape[i]) * srcStride;
      rest = Math.floor(rest / dst.shape[i]);
      srcStride *= src.shape[i];
    }
    dst.data.set(src.data.subarray(srcOffset, srcOffset + inner), r * inner);
  }
}
