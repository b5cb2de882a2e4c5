// logSoftmax over the last axis (computed stably, not as log(softmax)).
import type { Tensor } from '../tensor.js';
import { softmaxRows } from './softmax.js';

export function logSoftmax(x: Tensor): Tensor {
  return softmaxRows('logSoftmax', x, true);
}
