// attention: multi-head scaled dot-product attention over q [batch, Tq, heads * headDim] and
// k, v [batch, Tk, heads * headDim] (the layout a linear projection writes, heads side by side,
// so a prefix of the columns is a prefix of the heads: a sliced projection hands over only
// the active heads, and `heads` says how many there are). The queries are the last Tq of the
// Tk positions (Tq = Tk in training; Tq < Tk when a key/value cache holds the earlier ones).
// Per (sequence, head):
//   S = Q K^T / sqrt(headDim), P = softmax of each row (causal: query i over keys j <= Tk - Tq + i),
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
  checkRank(op, 'q', q, 3, '[batch, Tq, heads * headDim]');
  for (const [name, x] of [['k', k], ['v', v]] as const) {
    if (x.rank !== 3 || x.shape[0] !== q.shape[0] || x.shape[2] !== q.shape[2] || x.shape[1] !== k.shape[1]) {
      throw new RangeError(`${op}: ${name} must be [batch, Tk, width] with q's batch and width ${fmt(q.shape)} and k's Tk, got ${fmt(x.shape)}`);
    }
  }
  const opts = checkOptions(op, options);
  const [batch, T, width] = q.shape;
  const heads = checkInt(op, 'heads', opts.heads, 1, 2 ** 31 - 1);
  if (width % heads !== 0) throw new RangeError(`${op}: heads ${heads} must divide the last axis of q ${fmt(q.shape)}`);
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean') throw new TypeError(`${op}: causal must be a boolean, got ${String(opts.causal)}`);
  const causal = opts.causal ?? true;
  const Tk = k.shape[1];
  if (causal && Tk < T) throw new RangeError(`${op}: causal attention needs at least as many keys as queries, got k ${fmt(k.shape)} for q ${fmt(q.shape)}`);
  const d = width / heads;
  const scale = 1 / Math.sqrt(d);
  const block = T * Tk;
  const probs = new Float32Array(batch * heads * block);
  const scores = new Float32Array(block);
  const out = outputBuffer(q.size);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++) {
      const off = b * T * width + h * d;
      const koff = b * Tk * width + h * d;
      const p = probs.subarray((b * heads + h) * block, (b * heads + h + 1) * block);
      native.gemm(false, true, T, Tk, d, scale, q.data, off, width, k.data, koff, width, 0, scores, 0, Tk);
      if (causal) native.causalSoftmax(T, Tk, scores, p);
      else native.softmax(T, Tk, scores, p, false);
      native.gemm(false, false, T, d, Tk, 1, p, 0, Tk, v.data, koff, width, 0, out, off, width);
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
        const koff = b * Tk * width + h * d;
        const p = probs.subarray((b * heads + h) * block, (b * heads + h + 1) * block);
        if (gv !== null) native.gemm(true, false, Tk, d, T, 1, p, 0, Tk, g, off, width, 1, gv, koff, width);
        if (gq === null && gk === null) continue;
        native.gemm(false, true, T, Tk, d, 1, g, off, width, v.data, koff, width, 0, dp, 0, Tk);
        js.fill(block, 0, ds);
        // Masked entries have P = 0, so their dS is 0: the causal mask needs nothing more here.
        native.softmaxBackward(T, Tk, p, dp, ds, false);
        if (gq !== null) native.gemm(false, false, T, d, Tk, scale, ds, 0, Tk, k.data, koff, width, 1, gq, off, width);
        if (gk !== null) native.gemm(true, false, Tk, d, T, scale, ds, 0, Tk, q.data, off, width, 1, gk, koff, width);
      }
  });
}
