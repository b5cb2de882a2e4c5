// attention: multi-head scaled dot-product attention over q, k, v of shape
// [batch, T, heads * headDim] (the layout a linear projection writes, heads side by side,
// so a prefix of the columns is a prefix of the heads: a sliced projection hands over only
// the active heads, and `heads` says how many there are). Per (image, head):
//   S = Q K^T / sqrt(headDim), P = softmax of each row (causal: row i over keys j <= i),
//   O = P V,
// each product one strided GEMM on the head's columns in place (no transposed copies).
// P is kept for the backward:
//   dV = P^T dO, dP = dO V^T, dS = softmax backward of dP at P, dQ = dS K / sqrt(d),
//   dK = dS^T Q / sqrt(d).
import { js } from '../js-kernels.js';
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkInt, checkOptions, checkRank, checkTensor, fmt } from './check.js';

export interface AttentionOptions {
  /** Heads side by side in the last axis (it must divide its width). */
  heads: number;
  /** Each position attends only to itself and earlier ones (default true). */
  causal?: boolean;
}

export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  const op = 'attention';
  checkTensor(op, 'q', q);
  checkTensor(op, 'k', k);
  checkTensor(op, 'v', v);
  checkRank(op, 'q', q, 3, '[batch, T, heads * headDim]');
  for (const [name, x] of [['k', k], ['v', v]] as const) {
    if (x.rank !== 3 || x.shape.some((d, i) => d !== q.shape[i])) throw new RangeError(`${op}: ${name} must have q's shape ${fmt(q.shape)}, got ${fmt(x.shape)}`);
  }
  const opts = checkOptions(op, options);
  const [batch, T, width] = q.shape;
  const heads = checkInt(op, 'heads', opts.heads, 1, 2 ** 31 - 1);
  if (width % heads !== 0) throw new RangeError(`${op}: heads ${heads} must divide the last axis of q ${fmt(q.shape)}`);
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean') throw new TypeError(`${op}: causal must be a boolean, got ${String(opts.causal)}`);
  const causal = opts.causal ?? true;
  const d = width / heads;
  const scale = 1 / Math.sqrt(d);
  const block = T * T;
  const probs = new Float32Array(batch * heads * block);
  const scores = new Float32Array(block);
  const out = outputBuffer(q.size);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++) {
      const off = b * T * width + h * d;
      const p = probs.subarray((b * heads + h) * block, (b * heads + h + 1) * block);
      native.gemm(false, true, T, T, d, scale, q.data, off, width, k.data, off, width, 0, scores, 0, T);
      if (causal) js.causalSoftmax(T, T, scores, p);
      else native.softmax(T, T, scores, p, false);
      native.gemm(false, false, T, d, T, 1, p, 0, T, v.data, off, width, 0, out, off, width);
    }
  return record(new Tensor(out, q.shape), op, [q, k, v], (g) => {
    const gq = gradSink(q);
    const gk = gradSink(k);
    const gv = gradSink(v);
    const dp = new Float32Array(block);
    const ds = new Float32Array(block);
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < heads; h++) {
        const off = b * T * width + h * d;
        const p = probs.subarray((b * heads + h) * block, (b * heads + h + 1) * block);
        if (gv !== null) native.gemm(true, false, T, d, T, 1, p, 0, T, g, off, width, 1, gv, off, width);
        if (gq === null && gk === null) continue;
        native.gemm(false, true, T, T, d, 1, g, off, width, v.data, off, width, 0, dp, 0, T);
        js.fill(block, 0, ds);
        // Masked entries have P = 0, so their dS is 0: the causal mask needs nothing more here.
        native.softmaxBackward(T, T, p, dp, ds, false);
        if (gq !== null) native.gemm(false, false, T, d, T, scale, ds, 0, T, k.data, off, width, 1, gq, off, width);
        if (gk !== null) native.gemm(true, false, T, d, T, scale, ds, 0, T, q.data, off, width, 1, gk, off, width);
      }
  });
}
