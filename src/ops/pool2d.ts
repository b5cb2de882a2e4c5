// Shared argument handling of maxPool2d and avgPool2d.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkOptions, checkPair, checkRank, checkTensor, fmt, windowOutSize } from './check.js';

export interface Pool2dOptions {
  /** Defaults to the kernel size. */
  stride?: number | [number, number];
  padding?: number | [number, number];
}

export function pool2d(op: string, kind: 0 | 1, x: Tensor, kernel: number | [number, number], options?: Pool2dOptions): Tensor {
  checkTensor(op, 'x', x);
  checkRank(op, 'x', x, 4, '[N, C, H, W]');
  const opts = checkOptions(op, options);
  if (kernel === undefined || kernel === null) {
    throw new TypeError(`${op}: kernel must be a number or an [h, w] pair, got ${String(kernel)} (x ${fmt(x.shape)})`);
  }
  const [kh, kw] = checkPair(op, 'kernel', kernel, 1, 1);
  const [sh, sw] = checkPair(op, 'stride', opts.stride ?? [kh, kw], 1, 1);
  const [ph, pw] = checkPair(op, 'padding', opts.padding, 0, 0);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new RangeError(`${op}: padding ${ph}x${pw} must be at most half the kernel ${kh}x${kw}`);
  }
  const [n, c, h, w] = x.shape;
  const oh = windowOutSize(h, kh, sh, ph, 1);
  const ow = windowOutSize(w, kw, sw, pw, 1);
  if (oh < 0 || ow < 0) {
    throw new RangeError(`${op}: kernel ${kh}x${kw} is larger than the padded input of x ${fmt(x.shape)} (padding ${ph}x${pw})`);
  }
  const params = [n * c, h, w, kh, kw, sh, sw, ph, pw];
  const y = outputBuffer(n * c * oh * ow);
  native.poolForward(kind, params, x.data, y);
  return record(new Tensor(y, [n, c, oh, ow]), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.poolBackward(kind, params, x.data, g, gx);
  });
}
