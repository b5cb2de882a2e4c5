// sum / mean of all elements, to a scalar of shape [].
import { captureUnsupported } from '../capture.js';
import { gradSink, record, Tensor } from '../tensor.js';
import { checkTensor } from './check.js';

function reduceAll(op: string, x: Tensor, scale: number): Tensor {
  checkTensor(op, 'x', x);
  captureUnsupported(op);
  let total = 0;
  for (let i = 0; i < x.size; i++) total += x.data[i];
  return record(new Tensor(new Float32Array([total * scale]), []), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx === null) return;
    const v = g[0] * scale;
    for (let i = 0; i < gx.length; i++) gx[i] += v;
  });
}

export function sum(x: Tensor): Tensor {
  return reduceAll('sum', x, 1);
}

export function mean(x: Tensor): Tensor {
  checkTensor('mean', 'x', x);
  return reduceAll('mean', x, x.size === 0 ? NaN : 1 / x.size);
}
