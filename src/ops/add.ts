// add: elementwise sum with NumPy broadcasting.
import { native } from '../native.js';
import { gradSink, outputBuffer, record, shapeSize, Tensor } from '../tensor.js';
import { broadcastShapes, broadcastStrides, kernelLayout } from './broadcast.js';
import { checkTensor } from './check.js';

export function add(a: Tensor, b: Tensor): Tensor {
  const op = 'add';
  checkTensor(op, 'a', a);
  checkTensor(op, 'b', b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const sa = broadcastStrides(a.shape, shape);
  const sb = broadcastStrides(b.shape, shape);
  const out = outputBuffer(shapeSize(shape));
  const [ks, ka, kb] = kernelLayout(shape, sa, sb);
  native.binary(0, ks, a.data, ka, b.data, kb, out);
  return record(new Tensor(out, shape), op, [a, b], (g) => {
    const ga = gradSink(a);
    if (ga !== null) native.sumTo(shape, g, 1, ga, sa);
    const gb = gradSink(b);
    if (gb !== null) native.sumTo(shape, g, 1, gb, sb);
  });
}
