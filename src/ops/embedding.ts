// embedding: the rows of a [vocab, dim] table picked by integer ids, shaped
// [...idsShape, dim]; the gradient adds each output row back into the row of the table it
// came from. Ids come as class labels do (an Int32Array), or as the values of a tensor (a
// model's input, [batch, T] token ids): then a kernel checks and converts them, so a plan
// replaying the pass reads each new input's ids.
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { js } from '../js-kernels.js';
import { checkRank, checkTensor, fmt } from './check.js';
import { checkLabels } from './labels.js';

export function embedding(ids: Int32Array | readonly number[] | Tensor, weight: Tensor, idsShape?: readonly number[]): Tensor {
  const op = 'embedding';
  checkTensor(op, 'weight', weight);
  checkRank(op, 'weight', weight, 2, '[vocab, dim]');
  const [vocab, dim] = weight.shape;
  const isTensor = ids instanceof Tensor;
  if (!isTensor && !(ids instanceof Int32Array) && !Array.isArray(ids)) {
    throw new TypeError(`${op}: ids must be an Int32Array, number[] or Tensor, got ${ids === null ? 'null' : typeof ids}`);
  }
  const given = isTensor ? ids.size : ids.length;
  const shape = idsShape === undefined ? (isTensor ? [...ids.shape] : [given]) : [...idsShape];
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new RangeError(`${op}: idsShape must be non-negative integers, got ${fmt(shape)}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (given !== count) throw new RangeError(`${op}: ${given} ids for idsShape ${fmt(shape)} (${count})`);
  let copy: Int32Array;
  if (isTensor) {
    copy = new Int32Array(count);
    js.tokenIds(count, vocab, ids.data, copy);
  } else {
    // The same checks and private copy as class labels: every id in [0, vocab).
    copy = checkLabels(op, ids, count, vocab, weight.shape, 'ids', 'a token id', 'a weight');
  }
  const out = outputBuffer(count * dim);
  js.embeddingGather(count, vocab, dim, copy, weight.data, out);
  return record(new Tensor(out, [...shape, dim]), op, [weight], (g) => {
    const gw = gradSink(weight);
    if (gw !== null) js.embeddingScatter(count, vocab, dim, copy, g, gw);
  });
}
