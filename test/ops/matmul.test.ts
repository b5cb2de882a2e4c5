// matmul, 2-D and batched, against a float64 reference; gradients by finite differences.
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  abs64,
  assertClose,
  assertOpError,
  checkGradients,
  dotTol,
  randInt,
  randn32,
  refMatmul,
  rng,
  type Asserter,
} from '../helpers/reference.js';

function check(t: Asserter, gen: ms.Generator, batch: number | null, M: number, K: number, N: number): void {
  const aShape = batch === null ? [M, K] : [batch, M, K];
  const bShape = batch === null ? [K, N] : [batch, K, N];
  const B = batch ?? 1;
  const a = ms.tensor(randn32(gen, B * M * K), aShape);
  const b = ms.tensor(randn32(gen, B * K * N), bShape);
  const c = ms.matmul(a, b);
  const label = `[${aShape}] x [${bShape}]`;
  const want = batch === null ? [M, N] : [batch, M, N];
  t.ok(c.shape.length === want.length && c.shape.every((d, i) => d === want[i]), `${label}: shape [${c.shape}]`);
  const expected = refMatmul(a.data, b.data, B, M, K, N);
  const scale = refMatmul(abs64(a.data), abs64(b.data), B, M, K, N);
  assertClose(t, c.data, expected, `${label}: values`, { ...dotTol(K), scale });
}

t.test('2-D values at shapes with 1, odd and large sizes', async (t) => {
  const gen = rng(21);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 1], [3, 1, 5], [1, 1, 9], [7, 13, 5], [2, 3, 64], [33, 65, 17], [16, 16, 16], [130, 97, 129], [1, 300, 257],
  ];
  for (let i = 0; i < 10; i++) shapes.push([randInt(gen, 1, 70), randInt(gen, 1, 70), randInt(gen, 1, 70)]);
  for (const [M, K, N] of shapes) check(t, gen, null, M, K, N);
});

t.test('batched values', async (t) => {
  const gen = rng(22);
  for (const [B, M, K, N] of [[1, 1, 1, 1], [1, 4, 5, 6], [3, 1, 7, 1], [3, 7, 1, 5], [5, 9, 13, 11], [2, 65, 33, 31]]) {
    check(t, gen, B, M, K, N);
  }
});

t.test('empty sizes: K = 0 gives zeros, M = 0 / N = 0 / batch 0 give empty results', async (t) => {
  const a = ms.zeros([3, 0], { requiresGrad: true });
  const b = ms.zeros([0, 4], { requiresGrad: true });
  const c = ms.matmul(a, b);
  t.same(c.shape, [3, 4]);
  t.ok(c.data.every((v) => v === 0), 'K = 0: all zeros');
  c.backward(ms.ones([3, 4]));
  t.same(a.grad!.shape, [3, 0], 'grad of an empty a');
  t.same(ms.matmul(ms.zeros([0, 3]), ms.ones([3, 4])).shape, [0, 4]);
  t.same(ms.matmul(ms.ones([2, 3]), ms.ones([3, 0])).shape, [2, 0]);
  t.same(ms.matmul(ms.ones([0, 2, 3]), ms.ones([0, 3, 4])).shape, [0, 2, 4]);
});

t.test('gradients by finite differences (2-D and batched, incl. matmul(x, x))', async (t) => {
  const gen = rng(23);
  for (const [M, K, N] of [[1, 1, 1], [1, 5, 1], [3, 1, 4], [4, 6, 5], [7, 3, 1]]) {
    const a = ms.tensor(randn32(gen, M * K), [M, K], { requiresGrad: true });
    const b = ms.tensor(randn32(gen, K * N), [K, N], { requiresGrad: true });
    checkGradients(t, `[${M}, ${K}] x [${K}, ${N}]`, [a, b], ms.matmul, ([x, y]) => refMatmul(x, y, 1, M, K, N), { gen });
  }
  for (const [B, M, K, N] of [[1, 2, 3, 4], [3, 4, 2, 5], [2, 1, 7, 1]]) {
    const a = ms.tensor(randn32(gen, B * M * K), [B, M, K], { requiresGrad: true });
    const b = ms.tensor(randn32(gen, B * K * N), [B, K, N], { requiresGrad: true });
    checkGradients(t, `[${B}, ${M}, ${K}] x [${B}, ${K}, ${N}]`, [a, b], ms.matmul, ([x, y]) => refMatmul(x, y, B, M, K, N), { gen });
  }
  // Larger, sampled coordinates.
  const a = ms.tensor(randn32(gen, 65 * 130), [65, 130], { requiresGrad: true });
  const b = ms.tensor(randn32(gen, 130 * 33), [130, 33], { requiresGrad: true });
  checkGradients(t, '[65, 130] x [130, 33]', [a, b], ms.matmul, ([x, y]) => refMatmul(x, y, 1, 65, 130, 33), { gen, sample: 16 });
  // The same tensor on both sides.
  const x = ms.tensor(randn32(gen, 16), [4, 4], { requiresGrad: true });
  checkGradients(t, 'matmul(x, x)', [x], (v) => ms.matmul(v, v), ([v]) => refMatmul(v, v, 1, 4, 4, 4), { gen });
  // Only b requires grad.
  const ac = ms.tensor(randn32(gen, 6), [2, 3]);
  const bg = ms.tensor(randn32(gen, 12), [3, 4], { requiresGrad: true });
  checkGradients(t, 'only b requires grad', [ac, bg], ms.matmul, ([x2, y2]) => refMatmul(x2, y2, 1, 2, 3, 4), { gen });
  t.equal(ac.grad, null, 'a without requiresGrad gets no grad');
});

t.test('bad input throws with messages starting "matmul:" naming the shapes', async (t) => {
  const m = (shape: number[]): ms.Tensor => ms.zeros(shape);
  assertOpError(t, () => ms.matmul(m([2, 3]), m([4, 5])), RangeError, 'matmul', ['[2, 3]', '[4, 5]'], 'inner sizes differ');
  assertOpError(t, () => ms.matmul(m([2, 2, 3]), m([2, 4, 5])), RangeError, 'matmul', ['[2, 2, 3]', '[2, 4, 5]'], 'batched inner sizes differ');
  assertOpError(t, () => ms.matmul(m([2, 2, 3]), m([3, 3, 5])), RangeError, 'matmul', ['[2, 2, 3]', '[3, 3, 5]'], 'batch sizes differ');
  assertOpError(t, () => ms.matmul(m([2, 3]), m([2, 3, 4])), RangeError, 'matmul', ['[2, 3]', '[2, 3, 4]'], 'rank mismatch 2-D x 3-D');
  assertOpError(t, () => ms.matmul(m([2, 2, 3]), m([3, 4])), RangeError, 'matmul', ['[2, 2, 3]', '[3, 4]'], 'rank mismatch 3-D x 2-D');
  assertOpError(t, () => ms.matmul(m([3]), m([3])), RangeError, 'matmul', ['[3]'], '1-D operands');
  assertOpError(t, () => ms.matmul(m([]), m([])), RangeError, 'matmul', ['[]'], 'scalars');
  assertOpError(t, () => ms.matmul(m([1, 2, 3, 4]), m([1, 2, 4, 3])), RangeError, 'matmul', ['[1, 2, 3, 4]'], '4-D operands');
  assertOpError(t, () => ms.matmul([[1]] as unknown as ms.Tensor, m([1, 1])), TypeError, 'matmul', ['a'], 'a not a tensor');
  assertOpError(t, () => ms.matmul(m([1, 1]), undefined as unknown as ms.Tensor), TypeError, 'matmul', ['b'], 'b undefined');
});
