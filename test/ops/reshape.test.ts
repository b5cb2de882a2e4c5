// reshape (with -1) and flatten: shapes, values, gradients and errors.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose, assertOpError, checkGradients, randn32, rng, size } from '../helpers/reference.js';

t.test('reshape: shapes, -1 in every position, values in row-major order', async (t) => {
  const gen = rng(41);
  const x = ms.tensor(randn32(gen, 24), [2, 3, 4]);
  const cases: [number[], number[]][] = [
    [[24], [24]],
    [[-1], [24]],
    [[4, 6], [4, 6]],
    [[-1, 6], [4, 6]],
    [[4, -1], [4, 6]],
    [[2, -1, 3], [2, 4, 3]],
    [[1, 24, 1], [1, 24, 1]],
    [[1, -1, 1, 1], [1, 24, 1, 1]],
    [[2, 3, 4], [2, 3, 4]],
  ];
  for (const [target, expected] of cases) {
    const y = ms.reshape(x, target);
    t.same(y.shape, expected, `[${target}] -> [${expected}]`);
    t.same(Array.from(y.data), Array.from(x.data), `[${target}]: same values in the same order`);
  }
  t.same(ms.reshape(ms.tensor([5]), []).shape, [], 'one element to a scalar');
  t.same(ms.reshape(ms.tensor(7), [1, 1]).shape, [1, 1], 'scalar to [1, 1]');
  t.same(ms.reshape(ms.tensor(7), [-1]).shape, [1], 'scalar to [-1]');
  t.same(ms.reshape(ms.zeros([0, 3]), [-1, 3]).shape, [0, 3], 'empty with -1');
  t.same(ms.reshape(ms.zeros([0, 3]), [3, 0, 5]).shape, [3, 0, 5], 'empty to another empty shape');
  const input: number[] = [3, -1];
  ms.reshape(x, input);
  t.same(input, [3, -1], 'the caller\'s shape array is not modified');
});

t.test('flatten keeps dim 0', async (t) => {
  const gen = rng(42);
  for (const [shape, expected] of [
    [[2, 3, 4, 5], [2, 60]],
    [[2, 3], [2, 3]],
    [[5], [5, 1]],
    [[1, 1, 1], [1, 1]],
    [[3, 0, 2], [3, 0]],
    [[0, 3, 4], [0, 12]],
  ] as [number[], number[]][]) {
    const x = ms.tensor(randn32(gen, size(shape)), shape);
    const y = ms.flatten(x);
    t.same(y.shape, expected, `flatten [${shape}] -> [${expected}]`);
    t.same(Array.from(y.data), Array.from(x.data), 'values unchanged');
  }
});

t.test('gradients flow back in the input\'s shape', async (t) => {
  const gen = rng(43);
  const x = ms.tensor(randn32(gen, 24), [2, 3, 4], { requiresGrad: true });
  checkGradients(t, 'reshape [2, 3, 4] -> [4, -1]', [x], (v) => ms.reshape(v, [4, -1]), ([v]) => v, { gen });
  checkGradients(t, 'flatten [2, 3, 4]', [x], ms.flatten, ([v]) => v, { gen });
  // Through a reshape into an op that uses the new shape: mul by a [6] row broadcast over [4, 6].
  const w = ms.tensor(randn32(gen, 6), [6], { requiresGrad: true });
  checkGradients(
    t, 'mul(reshape(x, [4, 6]), w)', [x, w], (v, ww) => ms.mul(ms.reshape(v, [4, 6]), ww),
    ([v, ww]) => v.map((e, i) => e * ww[i % 6]), { gen },
  );
  // Two reshapes of the same tensor accumulate.
  x.grad = null;
  ms.add(ms.sum(ms.reshape(x, [24])), ms.sum(ms.flatten(x))).backward();
  assertClose(t, x.grad!.data, new Float64Array(24).fill(2), 'two reshapes of one tensor: gradient 2', { rtol: 0, atol: 0 });
});

t.test('bad shapes throw "reshape:" / "flatten:" naming the shapes', async (t) => {
  const x = ms.zeros([2, 3, 4]);
  assertOpError(t, () => ms.reshape(x, [5, 5]), RangeError, 'reshape', ['[2, 3, 4]', '[5, 5]'], 'size mismatch');
  assertOpError(t, () => ms.reshape(x, [-1, 5]), RangeError, 'reshape', ['[2, 3, 4]', '[-1, 5]'], '-1 that cannot divide');
  assertOpError(t, () => ms.reshape(x, [-1, -1]), RangeError, 'reshape', ['[-1, -1]'], 'two -1');
  assertOpError(t, () => ms.reshape(x, [-1, 0]), RangeError, 'reshape', ['[-1, 0]'], '-1 with a zero size');
  assertOpError(t, () => ms.reshape(x, [-2, -12]), RangeError, 'reshape', ['[-2, -12]'], 'negative sizes');
  assertOpError(t, () => ms.reshape(x, [2.5, 9.6]), RangeError, 'reshape', ['[2.5, 9.6]'], 'fractional sizes');
  assertOpError(t, () => ms.reshape(x, [NaN, 24]), RangeError, 'reshape', ['shape'], 'NaN size');
  assertOpError(t, () => ms.reshape(x, [-1, NaN]), RangeError, 'reshape', ['shape'], 'NaN size with -1');
  assertOpError(t, () => ms.reshape(x, '24' as unknown as number[]), TypeError, 'reshape', ['shape'], 'shape a string');
  assertOpError(t, () => ms.reshape(x, null as unknown as number[]), TypeError, 'reshape', ['shape'], 'shape null');
  assertOpError(t, () => ms.reshape([1, 2] as unknown as ms.Tensor, [2]), TypeError, 'reshape', ['x'], 'x not a tensor');
  assertOpError(t, () => ms.flatten(ms.tensor(3)), RangeError, 'flatten', ['x', '[]'], 'flatten of a scalar');
  assertOpError(t, () => ms.flatten(null as unknown as ms.Tensor), TypeError, 'flatten', ['x'], 'flatten of null');
});
