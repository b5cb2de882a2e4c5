// sum / mean of all elements, to a scalar of shape [].
import { js } from '../js-kernels.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkTensor } from './check.js';

function reduceAll(op: string, x: Tensor, scale: number): Tensor {
  checkTensor(op, 'x', x);
  const out = outputBuffer(1);
  js.sum(x.size, scale, x.data, out);
  return record(new Tensor(out, []), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) js.sumBackward(x.size, scale, g, gx);
  });
}

export function sum(x: Tensor): Tensor {
  return reduceAll('sum', x, 1);
}

export function mean(x: Tensor): Tensor {
  checkTensor('mean', 'x', x);
  return reduceAll('mean', x, x.size === 0 ? NaN : 1 / x.size);
}
