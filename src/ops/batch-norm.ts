// batchNorm with PyTorch's conventions: in training, batch statistics
// normalize and the running statistics move by `momentum` (variance unbiased);
// in evaluation the running statistics normalize. Per-channel vectors may be
// longer than C (full-width buffers of a sliced layer); the first C are used.
import { captureJs, captureUnsupported } from '../capture.js';
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
  const mean = new Float32Array(channels);
  const rstd = new Float32Array(channels);
  const variance = useBatchStats ? new Float32Array(channels) : null;
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  // The per-channel affine map from the statistics; an inference plan repeats
  // it on every replay, so it reads the running statistics and the affine
  // parameters as they are then.
  const deriveAffine = () => {
    for (let c = 0; c < channels; c++) {
      if (variance === null) mean[c] = rm!.data[c];
      rstd[c] = 1 / Math.sqrt((variance === null ? rv!.data[c] : variance[c]) + eps);
      scale[c] = (g === null ? 1 : g.data[c]) * rstd[c];
      shift[c] = (b === null ? 0 : b.data[c]) - mean[c] * scale[c];
    }
  };
  if (variance !== null) native.channelMoments(batch, channels, spatial, x.data, mean, variance);
  deriveAffine();
  captureJs(deriveAffine);
  if (training && rm !== null && rv !== null) {
    captureUnsupported('batchNorm in training mode');
    const unbias = count / (count - 1);
    for (let c = 0; c < channels; c++) {
      rm.data[c] = (1 - momentum) * rm.data[c] + momentum * mean[c];
      rv.data[c] = (1 - momentum) * rv.data[c] + momentum * variance![c] * unbias;
    }
  }
  const y = outputBuffer(x.size);
  native.channelAffine(batch, channels, spatial, x.data, scale, shift, y);
  return record(new Tensor(y, x.shape), op, [x, g, b], (gy) => {
    native.batchNormBackward(batch, channels, spatial, x.data, gy, mean, rstd, g?.data ?? null, useBatchStats,
      gradSink(x), gradSink(g), gradSink(b));
  });
}
