// Argument checks shared by the normalization ops: x [N, C, ...] and per-channel
// vectors of which the first C entries are used (the prefix rule).
import type { Tensor } from '../tensor.js';
import { checkOptionalTensor, fmt } from './check.js';

export function normDims(op: string, x: Tensor): { batch: number; channels: number; spatial: number } {
  if (x.rank < 2) throw new RangeError(`${op}: x must be at least 2-D [N, C, ...], got shape ${fmt(x.shape)}`);
  const [batch, channels] = x.shape;
  const spatial = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return { batch, channels, spatial };
}

/** A rank-1 tensor of at least `channels` values, or null. */
export function checkChannelVector(op: string, name: string, t: unknown, channels: number, xShape: readonly number[]): Tensor | null {
  const v = checkOptionalTensor(op, name, t);
  if (v !== null && (v.rank !== 1 || v.shape[0] < channels)) {
    throw new RangeError(`${op}: ${name} of shape ${fmt(v.shape)} must be 1-D with at least ${channels} entries for x of shape ${fmt(xShape)}`);
  }
  return v;
}

export function checkEps(op: string, eps: unknown): number {
  if (eps === undefined) return 1e-5;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new RangeError(`${op}: eps must be a finite number >= 0, got ${String(eps)}`);
  }
  return eps;
}
