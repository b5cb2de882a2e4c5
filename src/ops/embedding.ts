// embedding: the rows of a [vocab, dim] table picked by integer ids (token ids, as class
// labels are given: an Int32Array), shaped [...idsShape, dim]; the gradient adds each
// output row back into the row of the table it came from.
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { js } from '../js-kernels.js';
import { checkRank, checkTensor, fmt } from './check.js';
import { checkLabels } from './labels.js';

export function embedding(ids: Int32Array | readonly number[], weight: Tensor, idsShape?: readonly number[]): Tensor {
  const op = 'embedding';
  checkTensor(op, 'weight', weight);
  checkRank(op, 'weight', weight, 2, '[vocab, dim]');
  const [vocab, dim] = weight.shape;
  if (!(ids instanceof Int32Array) && !Array.isArray(ids)) throw new TypeError(`${op}: ids must be an Int32Array or number[], got ${ids === null ? 'null' : typeof ids}`);
  const given = ids.length;
  const shape = idsShape === undefined ? [given] : [...idsShape];
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new RangeError(`${op}: idsShape must be non-negative integers, got ${fmt(shape)}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (given !== count) throw new RangeError(`${op}: ${given} ids for idsShape ${fmt(shape)} (${count})`);
  // The same checks and private copy as class labels: every id in [0, vocab).
  const copy = checkLabels(op, ids, count, vocab, weight.shape, 'ids', 'a token id', 'a weight');
  const out = outputBuffer(count * dim);
  js.embeddingGather(count, vocab, dim, copy, weight.data, out);
  return record(new Tensor(out, [...shape, dim]), op, [weight], (g) => {
    const gw = gradSink(weight);
    if (gw !== null) js.embeddingScatter(count, vocab, dim, copy, g, gw);
  });
}
