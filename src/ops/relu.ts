// relu: max(x, 0); the gradient passes where x > 0.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkTensor } from './check.js';

export function relu(x: Tensor): Tensor {
  checkTensor('relu', 'x', x);
  const y = outputBuffer(x.size);
  native.relu(x.data, y);
  return record(new Tensor(y, x.shape), 'relu', [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.reluBackward(x.data, g, gx);
  });
}
