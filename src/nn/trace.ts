// While a trace is active, sliceable layers report what one forward pass used:
// their active widths, multiply-accumulates per image and the parameters a
// compact copy at this rate would hold. Cost tables and model.slice() read it.
import { noGrad, zeros } from '../tensor.js';
import type { Module } from './module.js';

export interface LayerUse {
  module: Module;
  /** Multiply-accumulates per image. */
  macs: number;
  /** Parameter values the layer used (its compact copy's size). */
  params: number;
  /** Layer-specific active sizes (inWidth, outWidth, channels, groups...). */
  widths: Record<string, number>;
}

let active: LayerUse[] | null = null;

export function tracing(): boolean {
  return active !== null;
}

export function reportUse(use: LayerUse): void {
  if (active !== null) active.push(use);
}

/** Runs fn with a trace open and returns what the layers reported. */
export function traceUses(fn: () => void): LayerUse[] {
  const previous = active;
  const uses: LayerUse[] = [];
  active = uses;
  try {
    fn();
  } finally {
    active = previous;
  }
  return uses;
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
