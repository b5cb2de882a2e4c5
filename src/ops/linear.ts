// linear: y = x W[:outWidth, :inWidth]^T + b[:outWidth], one GEMM on the full
// weight read in place through its real leading dimension.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkInt, checkOptionalTensor, checkOptions, checkRank, checkTensor, fmt } from './check.js';

export interface LinearOptions {
  /** How many leading output units to compute (default: all of the weight's rows). */
  outWidth?: number;
}

/**
 * `x [N, inWidth]` (or `[..., inWidth]`) times the prefix `weight[:outWidth, :inWidth]`
 * of a full `weight [outFull, inFull]`, plus `bias[:outWidth]`.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, options?: LinearOptions): Tensor {
  const op = 'linear';
  checkTensor(op, 'x', x);
  checkTensor(op, 'weight', weight);
  const b = checkOptionalTensor(op, 'bias', bias);
  const opts = checkOptions(op, options);
  checkRank(op, 'weight', weight, 2, '[outFeatures, inFeatures]');
  if (x.rank < 2) throw new RangeError(`${op}: x must be at least 2-D [N, inWidth], got shape ${fmt(x.shape)}`);
  const [outFull, inFull] = weight.shape;
  const inWidth = x.shape[x.rank - 1];
  if (inWidth > inFull || inWidth < 1) {
    throw new RangeError(
      `${op}: x has ${inWidth} input features (shape ${fmt(x.shape)}) but weight ${fmt(weight.shape)} has ${inFull}`,
    );
  }
  const outWidth = checkInt(op, 'outWidth', opts.outWidth, 1, outFull, outFull, `for weight ${fmt(weight.shape)}`);
  if (b !== null && (b.rank !== 1 || b.shape[0] !== outFull)) {
    throw new RangeError(`${op}: bias must have shape [${outFull}] to match weight ${fmt(weight.shape)}, got ${fmt(b.shape)}`);
  }
  const rows = x.size / inWidth;
  const outShape = [...x.shape.slice(0, -1), outWidth];
  // A weight with no rows gives an empty result; leading dimensions stay >= 1 for the binding.
  const ldy = Math.max(outWidth, 1);
  const y = outputBuffer(rows * outWidth);
  native.gemm(false, true, rows, outWidth, inWidth, 1, x.data, 0, inWidth, weight.data, 0, inFull, 0, y, 0, ldy);
  if (b !== null) native.addRowBias(rows, outWidth, b.data, y, ldy);
  const out = new Tensor(y, outShape);
  return record(out, op, [x, weight, b], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.gemm(false, false, rows, inWidth, outWidth, 1, g, 0, ldy, weight.data, 0, inFull, 1, gx, 0, inWidth);
    const gw = gradSink(weight);
    if (gw !== null) native.gemm(true, false, outWidth, inWidth, rows, 1, g, 0, ldy, x.data, 0, inWidth, 1, gw, 0, inFull);
    const gb = gradSink(b);
    if (gb !== null) native.columnSums(rows, outWidth, g, ldy, gb);
  });
}
