// layerNorm (over the last axis) and embedding (rows of a table by integer ids), the first
// layers of the sliceable transformer: values against float64 references, gradients against
// central finite differences of those references in float64, and bad arguments.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose, assertOpError, checkGradients, randn32, rng, size } from '../helpers/reference.js';

/** Layer norm in float64: per row of `dim`, (x - mean) / sqrt(var + eps) * gamma + beta. */
function refLayerNorm(x: ArrayLike<number>, dim: number, gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, eps = 1e-5): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let mean = 0;
    for (let j = 0; j < dim; j++) mean += x[r * dim + j];
    mean /= dim;
    let v = 0;
    for (let j = 0; j < dim; j++) v += (x[r * dim + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / dim + eps);
    for (let j = 0; j < dim; j++) y[r * dim + j] = (x[r * dim + j] - mean) * rstd * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
  }
  return y;
}

t.test('layerNorm: values over the last axis at ranks 1 to 3, with and without gamma and beta', async (t) => {
  const gen = rng(181);
  for (const shape of [[5], [3, 7], [2, 4, 16], [5, 1], [2, 3, 65]]) {
    const dim = shape[shape.length - 1];
    // An offset and a spread, so centring and scaling both matter.
    const x = ms.tensor(randn32(gen, size(shape), 3).map((v) => v + 2), shape);
    const gamma = ms.tensor(randn32(gen, dim), [dim]);
    const beta = ms.tensor(randn32(gen, dim), [dim]);
    for (const affine of [true, false]) {
      const y = ms.layerNorm(x, affine ? gamma : null, affine ? beta : null);
      t.same(y.shape, shape, `[${shape}]: shape`);
      assertClose(t, y.data, refLayerNorm(x.data, dim, affine ? gamma.data : null, affine ? beta.data : null), `[${shape}] affine ${affine}: values`, { rtol: 1e-5, atol: 1e-5 });
    }
  }
  const eps = ms.layerNorm(ms.tensor([1, 2, 3, 4], [1, 4]), null, null, { eps: 0.5 });
  assertClose(t, eps.data, refLayerNorm([1, 2, 3, 4], 4, null, null, 0.5), 'eps', { rtol: 1e-6, atol: 1e-6 });
  t.same(ms.layerNorm(ms.zeros([0, 6]), null, null).shape, [0, 6], 'no rows');
});

t.test('layerNorm: gradients of x, gamma and beta by central differences in float64', async (t) => {
  const gen = rng(182);
  for (const shape of [[4, 6], [2, 3, 5], [3, 1]]) {
    const dim = shape[shape.length - 1];
    const x = ms.tensor(randn32(gen, size(shape), 2), shape, { requiresGrad: true });
    const gamma = ms.tensor(randn32(gen, dim), [dim], { requiresGrad: true });
    const beta = ms.tensor(randn32(gen, dim), [dim], { requiresGrad: true });
    checkGradients(t, `layerNorm [${shape}]`, [x, gamma, beta], (a, g, b) => ms.layerNorm(a, g, b), ([a, g, b]) => refLayerNorm(a, dim, g, b), { gen, eps: 1e-3 });
  }
});

t.test('layerNorm and nn.LayerNorm refuse bad arguments, naming them and the shapes', async (t) => {
  const x = ms.zeros([2, 4]);
  assertOpError(t, () => ms.layerNorm(x, ms.ones([3]), null), RangeError, 'layerNorm', [/gamma must have shape \[4\] for x of shape \[2, 4\], got \[3\]/], 'gamma of the wrong length');
  assertOpError(t, () => ms.layerNorm(x, null, ms.ones([4, 1])), RangeError, 'layerNorm', [/beta must have shape \[4\]/], 'beta of the wrong rank');
  assertOpError(t, () => ms.layerNorm(ms.zeros([3, 0]), null, null), RangeError, 'layerNorm', [/non-empty last axis/, /\[3, 0\]/], 'an empty last axis');
  assertOpError(t, () => ms.layerNorm(x, null, null, { eps: -1 }), RangeError, 'layerNorm', [/eps must be a finite number >= 0/], 'a negative eps');
  t.throws(() => new ms.nn.LayerNorm(0), /LayerNorm: dim must be a positive integer/);
  const ln = new ms.nn.LayerNorm(4);
  t.same([ln.weight.shape, ln.bias.shape, [...ln.weight.data], [...ln.bias.data]], [[4], [4], [1, 1, 1, 1], [0, 0, 0, 0]]);
  assertClose(t, ln.forward(ms.tensor([1, 2, 3, 4, 0, 0, 0, 8], [2, 4])).data, refLayerNorm([1, 2, 3, 4, 0, 0, 0, 8], 4, null, null), 'the layer: gain 1, bias 0', { rtol: 1e-5, atol: 1e-6 });
});

/** Rows of a [vocab, dim] table, in float64. */
function refEmbedding(weight: ArrayLike<number>, dim: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < dim; j++) out[i * dim + j] = weight[ids[i] * dim + j];
  return out;
}

t.test('embedding: rows by id, shaped [...idsShape, dim]; repeated ids add their gradients', async (t) => {
  const gen = rng(183);
  const vocab = 11;
  const dim = 5;
  const weight = ms.tensor(randn32(gen, vocab * dim), [vocab, dim], { requiresGrad: true });
  const ids = Int32Array.from([3, 0, 10, 3, 7, 3]);
  const y = ms.embedding(ids, weight, [2, 3]);
  t.same(y.shape, [2, 3, dim]);
  t.same([...y.data], [...refEmbedding(weight.data, dim, ids)].map(Math.fround), 'the rows, exactly');
  t.same(ms.embedding([1, 2], weight).shape, [2, dim], 'a number[] of ids, one axis by default');
  checkGradients(t, 'embedding', [weight], (w) => ms.embedding(ids, w, [2, 3]), ([w]) => refEmbedding(w, dim, ids), { gen, eps: 1e-3 });
  // Row 3 is used three times: its gradient is the sum of the three output rows' gradients.
  weight.grad = null;
  ms.embedding(ids, weight, [2, 3]).backward(ms.ones([2, 3, dim]));
  t.same([...weight.grad!.data.subarray(3 * dim, 4 * dim)], [3, 3, 3, 3, 3], 'id 3, three times');
  t.same([...weight.grad!.data.subarray(1 * dim, 2 * dim)], [0, 0, 0, 0, 0], 'an unused id: zero');
  // The ids are copied: reusing the caller's array before backward changes nothing.
  weight.grad = null;
  const reused = Int32Array.from([1, 2]);
  const z = ms.embedding(reused, weight);
  reused.fill(9);
  z.backward(ms.ones([2, dim]));
  t.same([...weight.grad!.data.subarray(dim, 2 * dim)], [1, 1, 1, 1, 1], 'the gradient goes to the ids given, not to the array reused since');
});

t.test('embedding and nn.Embedding refuse bad ids and shapes, naming them', async (t) => {
  const w = ms.zeros([4, 3]);
  assertOpError(t, () => ms.embedding([0, 4], w), RangeError, 'embedding', [/ids\[1\] = 4 is not a token id in \[0, 4\) for a weight of shape \[4, 3\]/], 'an id past the vocabulary');
  assertOpError(t, () => ms.embedding([0, -1], w), RangeError, 'embedding', [/ids\[1\] = -1/], 'a negative id');
  assertOpError(t, () => ms.embedding([0.5], w), RangeError, 'embedding', [/ids\[0\] = 0.5/], 'a fractional id');
  assertOpError(t, () => ms.embedding([0, 1, 2], w, [2, 2]), RangeError, 'embedding', [/3 ids for idsShape \[2, 2\] \(4\)/], 'a count that is not the shape');
  assertOpError(t, () => ms.embedding([0], ms.zeros([4])), RangeError, 'embedding', [/weight/, /\[vocab, dim\]/], 'a weight that is not a table');
  assertOpError(t, () => ms.embedding(null as never, w), TypeError, 'embedding', [/ids must be an Int32Array, number\[\] or Tensor, got null/], 'no ids');
  t.throws(() => new ms.nn.Embedding(0, 3), /Embedding: vocab must be a positive integer/);
  ms.manualSeed(3);
  const e = new ms.nn.Embedding(7, 4);
  t.same(e.weight.shape, [7, 4]);
  const std = Math.sqrt(e.weight.data.reduce((s, v) => s + v * v, 0) / e.weight.size);
  t.ok(std > 0.005 && std < 0.05, `initialised small (std ${std.toFixed(4)}, N(0, 0.02^2))`);
  t.same(e.forward(ms.tensor([6, 0, 2], [3])).shape, [3, 4], 'forward: ids held as numbers');
  t.same([...e.lookup(Int32Array.from([6]), [1, 1]).data], [...e.weight.data.subarray(24, 28)], 'lookup: the row');
  t.throws(() => e.forward(ms.tensor([1.5], [1])), /embedding: x\[0\] = 1.5 is not a token id/);
});

t.test('layerNorm on many rows (the threaded kernels): the values, and gradients that do not depend on the thread count', async (t) => {
  const gen = rng(61);
  const [rows, dim] = [300, 64];
  const x = ms.tensor(randn32(gen, rows * dim), [rows, dim], { requiresGrad: true });
  const gamma = ms.tensor(randn32(gen, dim), [dim], { requiresGrad: true });
  const beta = ms.tensor(randn32(gen, dim), [dim], { requiresGrad: true });
  const gy = ms.tensor(randn32(gen, rows * dim), [rows, dim]);
  const previous = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(previous));
  const grads = [1, 2].map((threads) => {
    ms.setNumThreads(threads);
    for (const p of [x, gamma, beta]) p.grad = null;
    const y = ms.layerNorm(x, gamma, beta);
    assertClose(t, y.data, refLayerNorm(x.data, dim, gamma.data, beta.data), `${threads} thread(s): values`, { rtol: 1e-5, atol: 1e-5 });
    y.backward(gy);
    return [x, gamma, beta].map((p) => Array.from(p.grad!.data));
  });
  t.same(grads[1], grads[0], 'the same gradients bit for bit with 1 and 2 threads');
  // gamma's gradient is the sum over rows of gy * xhat; beta's the sum of gy.
  const want = new Float64Array(dim);
  const xhat = refLayerNorm(x.data, dim, null, null);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) want[j] += gy.data[r * dim + j] * xhat[r * dim + j];
  assertClose(t, Float32Array.from(grads[0][1]), want, 'gamma\'s gradient', { rtol: 1e-4, atol: 1e-4 });
});
