// batchNorm with PyTorch's conventions: in training, batch statistics
// normalize and the running statistics move by `momentum` (variance unbiased);
// in evaluation the running statistics normalize. Per-channel vectors may be
// longer than C (full-width buffers of a sliced layer); the first C are used.
import { js } from '../js-kernels.js';
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkOptions, checkTensor, fmt } from './check.js';
import { checkChannelVector, checkEps, normDims } from './norm-args.js';

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  gamma: Tensor | null,
  beta: Tensor | null,
  options: BatchNormOptions,
): Tensor {
  const op = 'batchNorm';
  checkTensor(op, 'x', x);
  const opts = checkOptions(op, options);
  if (typeof opts.training !== 'boolean') throw new TypeError(`${op}: options.training must be a boolean`);
  const training = opts.training;
  const { batch, channels, spatial } = normDims(op, x);
  const rm = checkChannelVector(op, 'runningMean', runningMean, channels, x.shape);
  const rv = checkChannelVector(op, 'runningVar', runningVar, channels, x.shape);
  if ((rm === null) !== (rv === null)) throw new TypeError(`${op}: runningMean and runningVar must both be given or both be null`);
  const g = checkChannelVector(op, 'gamma', gamma, channels, x.shape);
  const b = checkChannelVector(op, 'beta', beta, channels, x.shape);
  const eps = checkEps(op, opts.eps);
  const momentum = opts.momentum ?? 0.1;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) {
    throw new RangeError(`${op}: momentum must be in [0, 1], got ${String(momentum)}`);
  }
  const useBatchStats = training || rm === null;
  const count = batch * spatial;
  if (useBatchStats && count <= 1) {
    throw new RangeError(`${op}: training needs more than one value per channel, got x of shape ${fmt(x.shape)}`);
  }
  const rstd = new Float32Array(channels);
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  // The statistics that normalize: the batch's, or the running ones (read as
  // they are at each replay of a plan, as are the affine parameters).
  let mean: Float32Array;
  let variance: Float32Array;
  if (useBatchStats) {
    mean = new Float32Array(channels);
    variance = new Float32Array(channels);
    native.channelMoments(batch, channels, spatial, x.data, mean, variance);
  } else {
    mean = rm!.data;
    variance = rv!.data;
  }
  js.batchNormAffine(channels, eps, mean, variance, g?.data ?? null, b?.data ?? null, rstd, scale, shift);
  if (training && rm !== null && rv !== null) {
    js.batchNormRunningStats(channels, momentum, count / (count - 1), mean, variance, rm.data, rv.data);
  }
  const y = outputBuffer(x.size);
  native.channelAffine(batch, channels, spatial, x.data, scale, shift, y);
  return record(new Tensor(y, x.shape), op, [x, g, b], (gy) => {
    native.batchNormBackward(batch, channels, spatial, x.data, gy, mean, rstd, g?.data ?? null, useBatchStats,
      gradSink(x), gradSink(g), gradSink(b));
  });
}
