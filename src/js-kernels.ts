// Kernels computed in JavaScript: the losses, whole-tensor sums, batch norm's
// per-channel statistics, label copies and buffer fills. They are small (per
// sample, per channel or one pass), but a plan must repeat them, so each is
// declared in kernels.ts beside the addon's and called through the same
// wrapper (native.ts): a capture records them as it records native calls, the
// profile times them, and no op computes outside a record.
import { checkCall, KERNELS } from './kernels.js';
import { instrumentKernels } from './native.js';

export interface JsKernels {
  /** y[0..n) = value. */
  fill(n: number, value: number, y: Float32Array): void;
  /** dst[0..n) = src[0..n): an op's private copy of labels the caller may reuse. */
  copyLabels(n: number, src: Int32Array, dst: Int32Array): void;
  /** loss[0] = mean over rows of -logp[i, labels[i]] (NaN for no rows). */
  nllLoss(rows: number, cols: number, logp: Float32Array, labels: Int32Array, loss: Float32Array): void;
  /** glogp[i, labels[i]] -= g[0] / rows. */
  nllLossBackward(rows: number, cols: number, labels: Int32Array, g: Float32Array, glogp: Float32Array): void;
  /** loss[0] = mean over rows of sum_j q (log q - logp), with 0 log 0 = 0. */
  klDiv(rows: number, cols: number, logp: Float32Array, q: Float32Array, loss: Float32Array): void;
  /** glogp -= q * g[0] / rows. */
  klDivBackward(rows: number, cols: number, q: Float32Array, g: Float32Array, glogp: Float32Array): void;
  /** out[0] = scale * sum(x[0..n)). */
  sum(n: number, scale: number, x: Float32Array, out: Float32Array): void;
  /** gx[0..n) += g[0] * scale. */
  sumBackward(n: number, scale: number, g: Float32Array, gx: Float32Array): void;
  /**
   * Batch norm's per-channel map y = x * scale + shift from the statistics it
   * normalizes with (a batch's, or the running ones): rstd = 1 / sqrt(var + eps),
   * scale = gamma * rstd, shift = beta - mean * scale.
   */
  batchNormAffine(channels: number, eps: number, mean: Float32Array, variance: Float32Array,
    gamma: Float32Array | null, beta: Float32Array | null, rstd: Float32Array, scale: Float32Array, shift: Float32Array): void;
  /** ids[i] = x[i], each an integer in [0, vocab) (a RangeError names the first that is not). */
  tokenIds(count: number, vocab: number, x: Float32Array, ids: Int32Array): void;
  /** out[i, :] = weight[ids[i], :] (ids already checked to lie in [0, vocab)). */
  embeddingGather(count: number, vocab: number, dim: number, ids: Int32Array, weight: Float32Array, out: Float32Array): void;
  /** gweight[ids[i], :] += g[i, :], in order of i. */
  embeddingScatter(count: number, vocab: number, dim: number, ids: Int32Array, g: Float32Array, gweight: Float32Array): void;
  /** Running statistics move by momentum towards a batch's (variance unbiased by count / (count - 1)). */
  batchNormRunningStats(channels: number, momentum: number, unbias: number, mean: Float32Array, variance: Float32Array,
    runningMean: Float32Array, runningVar: Float32Array): void;
}

const kernels: JsKernels = {
  fill(n, value, y) {
    y.fill(value, 0, n);
  },
  copyLabels(n, src, dst) {
    dst.set(src.subarray(0, n));
  },
  nllLoss(rows, cols, logp, labels, loss) {
    let total = 0;
    for (let i = 0; i < rows; i++) total -= logp[i * cols + labels[i]];
    loss[0] = rows === 0 ? NaN : total / rows;
  },
  nllLossBackward(rows, cols, labels, g, glogp) {
    const scale = g[0] / rows;
    for (let i = 0; i < rows; i++) glogp[i * cols + labels[i]] -= scale;
  },
  klDiv(rows, cols, logp, q, loss) {
    let total = 0;
    for (let i = 0; i < rows * cols; i++) {
      const qi = q[i];
      if (qi > 0) total += qi * (Math.log(qi) - logp[i]);
    }
    loss[0] = rows === 0 ? NaN : total / rows;
  },
  klDivBackward(rows, cols, q, g, glogp) {
    const scale = g[0] / rows;
    for (let i = 0; i < rows * cols; i++) glogp[i] -= scale * q[i];
  },
  sum(n, scale, x, out) {
    let total = 0;
    for (let i = 0; i < n; i++) total += x[i];
    out[0] = total * scale;
  },
  sumBackward(n, scale, g, gx) {
    const v = g[0] * scale;
    for (let i = 0; i < n; i++) gx[i] += v;
  },
  batchNormAffine(channels, eps, mean, variance, gamma, beta, rstd, scale, shift) {
    for (let c = 0; c < channels; c++) {
      rstd[c] = 1 / Math.sqrt(variance[c] + eps);
      scale[c] = (gamma === null ? 1 : gamma[c]) * rstd[c];
      shift[c] = (beta === null ? 0 : beta[c]) - mean[c] * scale[c];
    }
  },
  tokenIds(count, vocab, x, ids) {
    for (let i = 0; i < count; i++) {
      const v = x[i];
      if (!(Number.isInteger(v) && v >= 0 && v < vocab)) throw new RangeError(`embedding: x[${i}] = ${v} is not a token id (an integer in [0, ${vocab}))`);
      ids[i] = v;
    }
  },
  embeddingGather(count, _vocab, dim, ids, weight, out) {
    for (let i = 0; i < count; i++) out.set(weight.subarray(ids[i] * dim, (ids[i] + 1) * dim), i * dim);
  },
  embeddingScatter(count, _vocab, dim, ids, g, gweight) {
    for (let i = 0; i < count; i++) {
      const row = ids[i] * dim;
      for (let j = 0; j < dim; j++) gweight[row + j] += g[i * dim + j];
    }
  },
  batchNormRunningStats(channels, momentum, unbias, mean, variance, runningMean, runningVar) {
    for (let c = 0; c < channels; c++) {
      runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
      runningVar[c] = (1 - momentum) * runningVar[c] + momentum * variance[c] * unbias;
    }
  },
};

/**
 * Each kernel behind the checks its declaration implies (kernels.ts, `checkCall`):
 * the same conditions, regions and overlaps the addon's generated binders check,
 * so a JavaScript kernel cannot read past a buffer into NaN or write past one unseen.
 */
function checked(table: JsKernels): JsKernels {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(table) as [string, (...a: unknown[]) => void][]) {
    const decl = KERNELS.get(name);
    if (decl === undefined) throw new Error(`js-kernels: ${name} is not declared in kernels.ts`);
    out[name] = (...a: unknown[]): void => {
      checkCall(decl, a);
      fn(...a);
    };
  }
  return out as unknown as JsKernels;
}

/** The JavaScript kernels, checked, recorded and profiled like the addon's. */
export const js: JsKernels = instrumentKernels(checked(kernels));
