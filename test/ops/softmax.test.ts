// softmax and logSoftmax over the last axis against float64 references,
// stability at large magnitudes, one-element rows, and gradients.
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  assertBitwise,
  assertClose,
  assertOpError,
  checkGradients,
  randn32,
  refLogSoftmax,
  refSoftmax,
  rng,
  size,
} from '../helpers/reference.js';

const SHAPES = [[1], [7], [1, 1], [3, 1], [1, 9], [4, 10], [2, 3, 5], [33, 257], [129, 257]];
const OPS = [
  { name: 'softmax', fn: ms.softmax, ref: refSoftmax },
  { name: 'logSoftmax', fn: ms.logSoftmax, ref: refLogSoftmax },
] as const;

for (const { name, fn, ref } of OPS) {
  t.test(`${name}: values at shapes incl. one-element rows, 1-D, rank 3 and large (threaded)`, async (t) => {
    const gen = rng(name === 'softmax' ? 51 : 52);
    for (const shape of SHAPES) {
      const cols = shape[shape.length - 1];
      const x = ms.tensor(randn32(gen, size(shape), 3), shape);
      const y = fn(x);
      t.same(y.shape, shape, `[${shape}]: shape`);
      assertClose(t, y.data, ref(x.data, cols), `[${shape}]: values`, { rtol: 1e-5, atol: 1e-6 });
    }
    // A row of one element: softmax 1, logSoftmax 0, whatever the value.
    const one = fn(ms.tensor([-1e4, 0, 3.5, 1e4], [4, 1]));
    t.same(Array.from(one.data), new Array(4).fill(name === 'softmax' ? 1 : 0), 'rows of one element');
    t.same(fn(ms.zeros([0, 5])).shape, [0, 5], 'no rows');
    t.same(fn(ms.zeros([3, 0])).shape, [3, 0], 'rows of no elements');
  });

  t.test(`${name}: stable at large magnitudes (1e4)`, async (t) => {
    const gen = rng(name === 'softmax' ? 53 : 54);
    const x = ms.tensor(randn32(gen, 6 * 10, 1e4), [6, 10]);
    const y = fn(x);
    t.ok(y.data.every(Number.isFinite), 'finite');
    // Errors relative to the magnitude of the inputs (a few float32 ulps of 1e4).
    assertClose(t, y.data, ref(x.data, 10), 'values at +-1e4', { rtol: 1e-6, atol: name === 'softmax' ? 1e-7 : 4e-3 });
    const big = ms.tensor([1e4, -1e4, 0, 3e38, -3e38, 88, 89, 1e4 - 1], [2, 4]);
    const yb = fn(big);
    t.ok(yb.data.every((v) => !Number.isNaN(v)), 'no NaN with values near the float32 limit');
    assertClose(t, yb.data, ref(big.data, 4), 'values near the float32 limit', { rtol: 1e-5, atol: 1e-6 });
    if (name === 'softmax') {
      let rowsOk = true;
      for (let r = 0; r < 6; r++) {
        let s = 0;
        for (let j = 0; j < 10; j++) s += y.data[r * 10 + j];
        rowsOk &&= Math.abs(s - 1) < 1e-5;
      }
      t.ok(rowsOk, 'rows sum to 1');
    }
  });

  t.test(`${name}: shift invariance, f(x + 1e4) == f(x) to float32 accuracy`, async (t) => {
    const gen = rng(name === 'softmax' ? 55 : 56);
    const base = randn32(gen, 4 * 10);
    const shifted = base.map((v) => v + 1e4);
    const y = fn(ms.tensor(shifted, [4, 10]));
    // The reference of the shifted (float32-rounded) values: the shift itself is exact in float64.
    assertClose(t, y.data, ref(shifted, 10), 'f(x + 1e4) vs reference', { rtol: 1e-5, atol: 1e-6 });
  });

  t.test(`${name}: gradients by finite differences`, async (t) => {
    const gen = rng(name === 'softmax' ? 57 : 58);
    for (const shape of [[1], [6], [1, 1], [3, 1], [4, 5], [2, 3, 4]]) {
      const cols = shape[shape.length - 1];
      const x = ms.tensor(randn32(gen, size(shape), 2), shape, { requiresGrad: true });
      checkGradients(t, `${name} [${shape}]`, [x], fn, ([v]) => ref(v, cols), { gen });
    }
    const x = ms.tensor(randn32(gen, 129 * 257), [129, 257], { requiresGrad: true });
    checkGradients(t, `${name} [129, 257] (threaded)`, [x], fn, ([v]) => ref(v, 257), { gen, sample: 12 });
    const xl = ms.tensor(randn32(gen, 3 * 5, 100), [3, 5], { requiresGrad: true });
    checkGradients(t, `${name} at magnitude 100`, [xl], fn, ([v]) => ref(v, 5), { gen, eps: 1e-6 });
  });

  t.test(`${name}: same result for 1 and 2 threads`, async (t) => {
    const saved = ms.getNumThreads();
    t.teardown(() => ms.setNumThreads(saved));
    const gen = rng(59);
    const x = ms.tensor(randn32(gen, 257 * 300), [257, 300], { requiresGrad: true });
    const g = ms.tensor(randn32(gen, 257 * 300), [257, 300]);
    const out: Float32Array[] = [];
    const grads: Float32Array[] = [];
    for (const n of [1, 2]) {
      ms.setNumThreads(n);
      x.grad = null;
      const y = fn(x);
      y.backward(g);
      out.push(y.data);
      grads.push(x.grad!.data);
    }
    assertBitwise(t, out[0], out[1], 'forward');
    assertBitwise(t, grads[0], grads[1], 'backward');
  });

  t.test(`${name}: bad input`, async (t) => {
    assertOpError(t, () => fn(ms.tensor(3)), RangeError, name, ['x', '[]'], 'a scalar');
    assertOpError(t, () => fn([1, 2] as unknown as ms.Tensor), TypeError, name, ['x'], 'not a tensor');
  });
}
