// avgPool2d: the mean of each window, padding counted (PyTorch's count_include_pad=True).
import type { Tensor } from '../tensor.js';
import { pool2d, type Pool2dOptions } from './pool2d.js';

export function avgPool2d(x: Tensor, kernel: number | [number, number], options?: Pool2dOptions): Tensor {
  return pool2d('avgPool2d', 1, x, kernel, options);
}
