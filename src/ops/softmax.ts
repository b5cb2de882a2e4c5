// softmax over the last axis.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkTensor, fmt } from './check.js';

export function softmaxRows(op: string, x: Tensor, log: boolean): Tensor {
  checkTensor(op, 'x', x);
  if (x.rank < 1) throw new RangeError(`${op}: x must have at least one dimension, got shape ${fmt(x.shape)}`);
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const y = outputBuffer(x.size);
  native.softmax(rows, cols, x.data, y, log);
  return record(new Tensor(y, x.shape), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.softmaxBackward(rows, cols, y, g, gx, log);
  });
}

export function softmax(x: Tensor): Tensor {
  return softmaxRows('softmax', x, false);
}
