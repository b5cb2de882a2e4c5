// add, mul (NumPy broadcasting) and relu against float64 references; gradients
// by finite differences, including the reduction over broadcast axes.
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  assertClose,
  assertOpError,
  checkGradients,
  randnAwayFromZero,
  randn32,
  refBroadcast,
  refRelu,
  rng,
  size,
} from '../helpers/reference.js';

const PAIRS: [number[], number[]][] = [
  [[3, 4], [3, 4]],
  [[3, 4], [4]],
  [[4], [3, 4]],
  [[3, 4], [3, 1]],
  [[3, 1], [1, 4]],
  [[2, 3, 4], [3, 1]],
  [[2, 1, 4], [3, 1]],
  [[5, 1, 1, 2], [1, 3, 2]],
  [[], [3, 4]],
  [[3, 4], []],
  [[], []],
  [[1], [5]],
  [[1], []],
  [[1, 1], [1]],
  [[7, 1, 3], [7, 5, 3]],
  [[2, 3, 1, 2, 1, 2], [3, 1, 4, 1]],
  [[1, 1, 1, 1, 1, 1, 1, 2], [2]],
  [[0, 3], [3]],
  [[0, 3], [1, 1]],
  [[33, 257], [257]],
  [[33, 257], [33, 1]],
];

for (const op of ['add', 'mul'] as const) {
  const fn = op === 'add' ? ms.add : ms.mul;

  t.test(`${op}: values with broadcasting (scalars, size-1 axes, different ranks, empty)`, async (t) => {
    const gen = rng(op === 'add' ? 31 : 32);
    for (const [sa, sb] of PAIRS) {
      const a = ms.tensor(randn32(gen, size(sa)), sa);
      const b = ms.tensor(randn32(gen, size(sb)), sb);
      const y = fn(a, b);
      const ref = refBroadcast(op, a.data, sa, b.data, sb);
      t.same(y.shape, ref.shape, `[${sa}] ${op} [${sb}]: shape [${ref.shape}]`);
      // One float32 rounding of an exact float64 result.
      assertClose(t, y.data, ref.data, `[${sa}] ${op} [${sb}]: values`, { rtol: 2 ** -24, atol: 0, allowEmpty: size(ref.shape) === 0 });
    }
  });

  t.test(`${op}: gradients by finite differences, summed over broadcast axes`, async (t) => {
    const gen = rng(op === 'add' ? 33 : 34);
    for (const [sa, sb] of PAIRS) {
      if (size(sa) * size(sb) > 5000) continue;
      const a = ms.tensor(randn32(gen, size(sa)), sa, { requiresGrad: true });
      const b = ms.tensor(randn32(gen, size(sb)), sb, { requiresGrad: true });
      checkGradients(t, `[${sa}] ${op} [${sb}]`, [a, b], fn, ([x, y]) => refBroadcast(op, x, sa, y, sb).data, { gen });
    }
    // Larger broadcasts, sampled coordinates.
    const a = ms.tensor(randn32(gen, 33 * 257), [33, 257], { requiresGrad: true });
    const b = ms.tensor(randn32(gen, 257), [257], { requiresGrad: true });
    checkGradients(t, `[33, 257] ${op} [257]`, [a, b], fn, ([x, y]) => refBroadcast(op, x, [33, 257], y, [257]).data, { gen, sample: 24 });
    // The same tensor on both sides: d(x op x).
    const x = ms.tensor(randn32(gen, 6), [2, 3], { requiresGrad: true });
    checkGradients(t, `x ${op} x`, [x], (v) => fn(v, v), ([v]) => refBroadcast(op, v, [2, 3], v, [2, 3]).data, { gen });
    // Only one side requires grad.
    const c = ms.tensor(randn32(gen, 3), [3]);
    const d = ms.tensor(randn32(gen, 6), [2, 3], { requiresGrad: true });
    checkGradients(t, `only b requires grad (${op})`, [c, d], fn, ([x2, y2]) => refBroadcast(op, x2, [3], y2, [2, 3]).data, { gen });
    t.equal(c.grad, null, 'the constant gets no grad');
  });

  t.test(`${op}: shapes that cannot broadcast throw "${op}:" naming both shapes`, async (t) => {
    const z = (s: number[]): ms.Tensor => ms.zeros(s);
    for (const [sa, sb] of [[[3, 4], [4, 3]], [[2, 3], [3, 2]], [[3], [4]], [[2, 3, 4], [2, 4]], [[0], [2]], [[5, 2], [3, 1, 3]]]) {
      assertOpError(t, () => fn(z(sa), z(sb)), RangeError, op, [`[${sa.join(', ')}]`, `[${sb.join(', ')}]`], `[${sa}] ${op} [${sb}]`);
    }
    const nine = [1, 1, 1, 1, 1, 1, 1, 1, 2];
    assertOpError(t, () => fn(z(nine), z([2])), RangeError, op, ['[1, 1, 1, 1, 1, 1, 1, 1, 2]'], 'more than 8 dimensions');
    assertOpError(t, () => fn(3 as unknown as ms.Tensor, z([2])), TypeError, op, ['a'], 'a a number');
    assertOpError(t, () => fn(z([2]), null as unknown as ms.Tensor), TypeError, op, ['b'], 'b null');
  });
}

t.test('relu: values at shapes incl. empty, scalar and large (threaded)', async (t) => {
  const gen = rng(35);
  for (const shape of [[], [1], [7], [3, 5], [0, 4], [2, 3, 4], [70001], [300, 301]]) {
    const x = ms.tensor(randn32(gen, size(shape)), shape);
    const y = ms.relu(x);
    t.same(y.shape, shape, `[${shape}]: shape`);
    assertClose(t, y.data, refRelu(x.data), `[${shape}]: values`, { rtol: 0, atol: 0, allowEmpty: size(shape) === 0 });
  }
  const special = ms.relu(ms.tensor([-Infinity, -1, -0, 0, 1e-30, Infinity]));
  t.same(Array.from(special.data), [0, 0, 0, 0, 1e-30 as number, Infinity].map((v) => Math.fround(v)), 'special values');
});

t.test('relu: gradients by finite differences (away from 0) and 0 at exactly 0 like PyTorch', async (t) => {
  const gen = rng(36);
  for (const shape of [[1], [9], [4, 6], [2, 3, 5]]) {
    const x = ms.tensor(randnAwayFromZero(gen, size(shape)), shape, { requiresGrad: true });
    checkGradients(t, `relu [${shape}]`, [x], ms.relu, ([v]) => refRelu(v), { gen });
  }
  const x = ms.tensor([-2, -0, 0, 3, 0, 1e-20], [6], { requiresGrad: true });
  ms.relu(x).backward(ms.tensor([10, 20, 30, 40, 50, 60], [6]));
  t.same(Array.from(x.grad!.data), [0, 0, 0, 40, 0, 60], 'gradient is 0 at x == 0 and passes where x > 0');
  // Large, threaded path: gradient is g where x > 0.
  const big = ms.tensor(randnAwayFromZero(gen, 100003), [100003], { requiresGrad: true });
  const g = ms.tensor(randn32(gen, 100003), [100003]);
  ms.relu(big).backward(g);
  let bad = -1;
  for (let i = 0; i < big.size; i++) {
    if (big.grad!.data[i] !== (big.data[i] > 0 ? g.data[i] : 0)) {
      bad = i;
      break;
    }
  }
  t.equal(bad, -1, 'large relu gradient exact');
  assertOpError(t, () => ms.relu({} as ms.Tensor), TypeError, 'relu', ['x'], 'relu of a non-tensor');
});
