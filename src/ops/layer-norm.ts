// layerNorm: normalizes over the last axis (each row of `dim` features to mean 0 and
// variance 1, statistics in float64), then gamma and beta per feature. One row kernel each
// way; the backward adds to x's gradient and sums gamma's and beta's over the rows.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkOptions, checkTensor, fmt } from './check.js';
import { checkEps } from './norm-args.js';

export interface LayerNormOptions {
  eps?: number;
}

export function layerNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, options?: LayerNormOptions): Tensor {
  const op = 'layerNorm';
  checkTensor(op, 'x', x);
  const opts = checkOptions(op, options);
  if (x.rank < 1 || x.shape[x.rank - 1] === 0) throw new RangeError(`${op}: x needs a non-empty last axis to normalize over, got shape ${fmt(x.shape)}`);
  const dim = x.shape[x.rank - 1];
  for (const [name, v] of [['gamma', gamma], ['beta', beta]] as const) {
    if (v !== null) checkTensor(op, name, v);
    if (v !== null && (v.rank !== 1 || v.shape[0] !== dim)) throw new RangeError(`${op}: ${name} must have shape [${dim}] for x of shape ${fmt(x.shape)}, got ${fmt(v.shape)}`);
  }
  const rows = x.size / dim;
  const eps = checkEps(op, opts.eps);
  const y = outputBuffer(x.size);
  const mean = outputBuffer(rows);
  const rstd = outputBuffer(rows);
  native.layerNormForward(rows, dim, x.data, gamma?.data ?? null, beta?.data ?? null, eps, y, mean, rstd);
  const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  return record(new Tensor(y, x.shape), op, inputs, (g) => {
    const gx = gradSink(x);
    const gg = gamma ? gradSink(gamma) : null;
    const gb = beta ? gradSink(beta) : null;
    if (gx === null && gg === null && gb === null) return;
    native.layerNormBackward(rows, dim, x.data, g, gamma?.data ?? null, mean, rstd, gx, gg, gb);
  });
}
