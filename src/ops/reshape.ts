// reshape / flatten: a new shape over the same values (no copy).
import { native } from '../native.js';
import { checkShape, gradSink, record, shapeSize, Tensor } from '../tensor.js';
import { checkTensor, fmt } from './check.js';

/** `shape` may hold one -1, inferred from the element count. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const op = 'reshape';
  checkTensor(op, 'x', x);
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array of sizes`);
  const inferAt = shape.indexOf(-1);
  if (inferAt !== shape.lastIndexOf(-1)) throw new RangeError(`${op}: shape ${fmt(shape)} has more than one -1`);
  let target: number[];
  if (inferAt >= 0) {
    const rest = checkShape(op, 'shape', shape.filter((_, i) => i !== inferAt));
    const known = shapeSize(rest);
    if (known === 0 || x.size % known !== 0) {
      throw new RangeError(`${op}: cannot reshape x of shape ${fmt(x.shape)} into ${fmt(shape)}`);
    }
    target = [...shape];
    target[inferAt] = x.size / known;
  } else {
    target = checkShape(op, 'shape', shape);
  }
  if (shapeSize(target) !== x.size) {
    throw new RangeError(`${op}: cannot reshape x of shape ${fmt(x.shape)} (${x.size} elements) into ${fmt(shape)}`);
  }
  return record(new Tensor(x.data, target), op, [x], (g) => {
    const gx = gradSink(x);
    if (gx !== null) native.axpy(g.length, 1, g, gx);
  });
}

/** `[N, ...]` to `[N, rest]`. */
export function flatten(x: Tensor): Tensor {
  checkTensor('flatten', 'x', x);
  if (x.rank < 1) throw new RangeError(`flatten: x must have a batch dimension, got shape ${fmt(x.shape)}`);
  // The rest from the shape, not x.size / n: an empty batch [0, 3, 4] flattens to [0, 12].
  return reshape(x, [x.shape[0], shapeSize(x.shape.slice(1))]);
}
