// conv2d on channel prefixes: x [N, inWidth, H, W] with the first outWidth
// filters of a full OIHW weight, each read over its first inWidth / groups
// input channels, in place.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkInt, checkOptionalTensor, checkOptions, checkPair, checkRank, checkTensor, fmt, windowOutSize } from './check.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  /** The group count of this call: for a sliced depthwise layer, the active channel count. */
  groups?: number;
  /** How many leading filters to apply (default: all of the weight's). */
  outWidth?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, options?: Conv2dOptions): Tensor {
  const op = 'conv2d';
  checkTensor(op, 'x', x);
  checkTensor(op, 'weight', weight);
  const b = checkOptionalTensor(op, 'bias', bias);
  const opts = checkOptions(op, options);
  checkRank(op, 'x', x, 4, '[N, C, H, W]');
  checkRank(op, 'weight', weight, 4, '[outChannels, inChannels / groups, kh, kw]');
  const [n, inWidth, h, w] = x.shape;
  const [outFull, inPerGroupFull, kh, kw] = weight.shape;
  const [sh, sw] = checkPair(op, 'stride', opts.stride, 1, 1);
  const [ph, pw] = checkPair(op, 'padding', opts.padding, 0, 0);
  const [dh, dw] = checkPair(op, 'dilation', opts.dilation, 1, 1);
  const groups = checkInt(op, 'groups', opts.groups, 1, 2 ** 31 - 1, 1);
  const outWidth = checkInt(op, 'outWidth', opts.outWidth, 1, outFull, outFull, `for weight ${fmt(weight.shape)}`);
  if (inWidth % groups !== 0 || outWidth % groups !== 0) {
    throw new RangeError(
      `${op}: groups ${groups} must divide the input channels of x ${fmt(x.shape)} and outWidth ${outWidth} (weight ${fmt(weight.shape)})`,
    );
  }
  if (inWidth === 0 || inWidth / groups > inPerGroupFull) {
    throw new RangeError(
      `${op}: x ${fmt(x.shape)} has ${inWidth / groups} input channels per group but weight ${fmt(weight.shape)} has ${inPerGroupFull}`,
    );
  }
  if (kh === 0 || kw === 0) throw new RangeError(`${op}: weight ${fmt(weight.shape)} has an empty kernel`);
  if (b !== null && (b.rank !== 1 || b.shape[0] !== outFull)) {
    throw new RangeError(`${op}: bias must have shape [${outFull}] to match weight ${fmt(weight.shape)}, got ${fmt(b.shape)}`);
  }
  const oh = windowOutSize(h, kh, sh, ph, dh);
  const ow = windowOutSize(w, kw, sw, pw, dw);
  if (oh < 0 || ow < 0) {
    throw new RangeError(
      `${op}: kernel ${kh}x${kw} (dilation ${dh}x${dw}) is larger than the padded input of x ${fmt(x.shape)} (padding ${ph}x${pw})`,
    );
  }
  // Huge padding must not turn into a huge allocation (the size limit of every tensor),
  // nor, for an empty batch, into sizes the kernels' bounds arithmetic refuses.
  const perImage = Math.max(outWidth, 1) * oh * ow;
  if (perImage > 2 ** 31 - 1 || n * perImage > 2 ** 31 - 1) {
    throw new RangeError(
      `${op}: the output [${n}, ${outWidth}, ${oh}, ${ow}] of x ${fmt(x.shape)} (padding ${ph}x${pw}, stride ${sh}x${sw}) ` +
        'has more than 2^31 - 1 elements per image or in all',
    );
  }
  const params = [n, inWidth, h, w, outWidth, kh, kw, sh, sw, ph, pw, dh, dw, groups, inPerGroupFull];
  const y = outputBuffer(n * outWidth * oh * ow);
  native.conv2dForward(params, x.data, weight.data, b === null ? null : b.data, y);
  return record(new Tensor(y, [n, outWidth, oh, ow]), op, [x, weight, b], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.conv2dBackwardInput(params, g, weight.data, gx);
    const gw = gradSink(weight);
    if (gw !== null) native.conv2dBackwardWeight(params, g, x.data, gw);
    const gb = gradSink(b);
    if (gb !== null) native.conv2dBackwardBias(params, g, gb);
  });
}
