// NumPy broadcasting: the result shape of two operands and, for each operand,
// element strides over the result shape (0 along axes it is broadcast on).
import type { Shape } from '../tensor.js';
import { fmt } from './check.js';

export const MAX_DIMS = 8;

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  if (rank > MAX_DIMS) throw new RangeError(`${op}: at most ${MAX_DIMS} dimensions, got ${fmt(a)} and ${fmt(b)}`);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of a contiguous operand of `shape` when read over the broadcast `outShape`. */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = outShape.length - shape.length + i;
    strides[o] = shape[i] === 1 && outShape[o] !== 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

/**
 * The binary kernel's shape and strides for operands that both have the result's shape: one
 * axis of all the elements (the kernel reads short index lists faster than long ones), or the
 * broadcast layout unchanged.
 */
export function kernelLayout(shape: readonly number[], sa: readonly number[], sb: readonly number[]): [number[], number[], number[]] {
  const whole = (s: readonly number[]) => {
    let stride = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      if (shape[i] !== 1 && s[i] !== stride) return false;
      stride *= shape[i];
    }
    return true;
  };
  if (shape.length > 1 && whole(sa) && whole(sb)) return [[shape.reduce((x, y) => x * y, 1)], [1], [1]];
  return [[...shape], [...sa], [...sb]];
}
