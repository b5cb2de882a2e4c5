// attention: multi-head scaled dot-product attention over q [batch, Tq, heads * headDim] and
// k, v [batch, Tk, heads * headDim] (the layout a linear projection writes, heads side by side,
// so a prefix of the columns is a prefix of the heads: a sliced projection hands over only
// the active heads, and `heads` says how many there are). The queries are the last Tq of the
// Tk positions (Tq = Tk in training; Tq < Tk when a key/value cache holds the earlier ones).
// Per (sequence, head):
//   S = Q K^T / sqrt(headDim), P = softmax of each row (causal: query i over keys j <= Tk - Tq + i),
//   O = P V,
// each product one strided GEMM on the head's columns in place (no transposed copies).
// P is kept for the backward (native/attention.cc):
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
  const probs = outputBuffer(batch * heads * T * Tk);
  const out = outputBuffer(q.size);
  // Every (sequence, head) in one kernel call: the products run on each head's columns in
  // place, a causal block of queries stops at the last key it sees, P is kept for the backward.
  native.attentionForward(batch, heads, T, Tk, d, scale, causal, q.data, k.data, v.data, probs, out);
  return record(new Tensor(out, q.shape), op, [q, k, v], (g) => {
    const gq = gradSink(q);
    const gk = gradSink(k);
    const gv = gradSink(v);
    if (gq === null && gk === null && gv === null) return;
    // One tensor given as two of q, k, v (self-attention without projections) has one gradient
    // buffer: the kernel's outputs may not overlap, so the repeats accumulate apart and are added.
    const apart = (x: Float32Array | null, ...before: (Float32Array | null)[]): Float32Array | null => {
      if (x === null || !before.includes(x)) return x;
      const own = new Float32Array(x.length);
      js.fill(own.length, 0, own);
      return own;
    };
    const sk = apart(gk, gq);
    const sv = apart(gv, gq, gk);
    native.attentionBackward(batch, heads, T, Tk, d, scale, causal, q.data, k.data, v.data, probs, g, gq, sk, sv);
    if (sk !== gk) native.axpy(sk!.length, 1, sk!, gk!);
    if (sv !== gv) native.axpy(sv!.length, 1, sv!, gv!);
  });
}
