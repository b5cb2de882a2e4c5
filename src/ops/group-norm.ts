// groupNorm: normalizes each of numGroups contiguous channel groups per image,
// then applies gamma[:C], beta[:C] of possibly longer (full-width) vectors.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkInt, checkOptions, checkTensor, fmt } from './check.js';
import { checkChannelVector, checkEps, normDims } from './norm-args.js';

export interface GroupNormOptions {
  eps?: number;
  /** Apply ReLU to the result in the same pass (saves a pass over memory and a buffer). */
  relu?: boolean;
}

export function groupNorm(x: Tensor, numGroups: number, gamma: Tensor | null, beta: Tensor | null, options?: GroupNormOptions): Tensor {
  const op = 'groupNorm';
  checkTensor(op, 'x', x);
  const opts = checkOptions(op, options);
  const { batch, channels, spatial } = normDims(op, x);
  const groups = checkInt(op, 'numGroups', numGroups, 1, 2 ** 31 - 1);
  if (channels % groups !== 0) {
    throw new RangeError(`${op}: numGroups ${groups} must divide the ${channels} channels of x ${fmt(x.shape)}`);
  }
  const g = checkChannelVector(op, 'gamma', gamma, channels, x.shape);
  const b = checkChannelVector(op, 'beta', beta, channels, x.shape);
  const eps = checkEps(op, opts.eps);
  const y = outputBuffer(x.size);
  const mean = new Float32Array(batch * groups);
  const rstd = new Float32Array(batch * groups);
  const fuseRelu = opts.relu === true;
  native.groupNormForward(batch, channels, spatial, groups, x.data, g?.data ?? null, b?.data ?? null, eps, y, mean, rstd, fuseRelu);
  return record(new Tensor(y, x.shape), fuseRelu ? 'groupNormRelu' : op, [x, g, b], (gy) => {
    // With the fused ReLU the kernel masks the gradient by y > 0 as it reads it.
    native.groupNormBackward(batch, channels, spatial, groups, x.data, gy, g?.data ?? null, mean, rstd,
      gradSink(x), gradSink(g), gradSink(b), fuseRelu ? y : null);
  });
}
