// maxPool2d: the maximum of each window; padding counts as -inf.
import type { Tensor } from '../tensor.js';
import { pool2d, type Pool2dOptions } from './pool2d.js';

export function maxPool2d(x: Tensor, kernel: number | [number, number], options?: Pool2dOptions): Tensor {
  return pool2d('maxPool2d', 0, x, kernel, options);
}
