// While a trace is active, sliceable layers report what one forward pass used:
// their active widths, multiply-accumulates per image and the parameters a
// compact copy at this rate would hold. Cost tables and model.slice() read it.
import type { Module } from '../nn/module.js';

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
