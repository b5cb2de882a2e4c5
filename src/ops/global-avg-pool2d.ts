// globalAvgPool2d: [N, C, H, W] to [N, C], the mean of each plane.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkRank, checkTensor, fmt } from './check.js';

export function globalAvgPool2d(x: Tensor): Tensor {
  const op = 'globalAvgPool2d';
  checkTensor(op, 'x', x);
  checkRank(op, 'x', x, 4, '[N, C, H, W]');
  const [n, c, h, w] = x.shape;
  if (h * w === 0) throw new RangeError(`${op}: x ${fmt(x.shape)} has empty planes`);
  const y = outputBuffer(n * c);
  native.globalAvgPool(n * c, h * w, x.data, y);
  return record(new Tensor(y, [n, c]), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.globalAvgPoolBackward(n * c, h * w, g, gx);
  });
}
