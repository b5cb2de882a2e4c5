// layerNorm: normalizes over the last axis (each row of `dim` features to mean 0 and
// variance 1, then gamma and beta per feature). A composite: the rows are the images of a
// one-group group norm with one value per channel, so it shares that kernel's forward, its
// float64 statistics and its backward.
import { type Tensor } from '../tensor.js';
import { checkOptions, checkTensor, fmt } from './check.js';
import { groupNorm } from './group-norm.js';
import { checkEps } from './norm-args.js';
import { reshape } from './reshape.js';

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
    if (v !== null && (v.rank !== 1 || v.shape[0] !== dim)) throw new RangeError(`${op}: ${name} must have shape [${dim}] for x of shape ${fmt(x.shape)}, got ${fmt(v.shape)}`);
  }
  const rows = x.size / dim;
  const eps = checkEps(op, opts.eps);
  const y = groupNorm(reshape(x, [rows, dim]), 1, gamma, beta, { eps });
  return reshape(y, x.shape);
}
