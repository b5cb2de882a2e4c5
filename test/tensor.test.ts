// Tensor creation, shape checks, accessors, noGrad and the autograd tape.
import t from 'tap';
import * as ms from '../src/index.js';
import {
  assertBitwise,
  assertClose,
  assertOpError,
  checkGradients,
  randn32,
  refBroadcast,
  refLinear,
  refRelu,
  rng,
} from './helpers/reference.js';

t.test('tensor(): nested arrays, flat data + shape, scalars, typed arrays', async (t) => {
  const a = ms.tensor([[1, 2, 3], [4, 5, 6]]);
  t.same(a.shape, [2, 3], 'shape read from nesting');
  t.same(Array.from(a.data), [1, 2, 3, 4, 5, 6], 'row-major values');
  t.ok(a.data instanceof Float32Array, 'float32 storage');
  t.same(ms.tensor([[[1], [2]], [[3], [4]]]).shape, [2, 2, 1], 'rank 3');
  t.same(ms.tensor([1, 2, 3, 4, 5, 6], [3, 2]).shape, [3, 2], 'flat data + shape');
  t.same(ms.tensor([[1, 2], [3, 4]], [4]).shape, [4], 'nested data with an explicit shape of the same size');
  const s = ms.tensor(2.5);
  t.same(s.shape, [], 'a number is a scalar of shape []');
  t.equal(s.item(), 2.5);
  t.same(ms.tensor([7], []).shape, [], 'one element with shape []');
  t.same(ms.tensor([]).shape, [0], 'empty array');
  t.same(ms.tensor([[], []]).shape, [2, 0], 'empty rows');
  t.same(Array.from(ms.tensor(Int32Array.from([1, -2, 3])).data), [1, -2, 3], 'from an Int32Array');
  t.same(Array.from(ms.tensor(Float64Array.of(0.1)).data), [Math.fround(0.1)], 'float64 rounded to float32');
  t.same(Array.from(ms.tensor({ length: 2, 0: 4, 1: 5 } as ArrayLike<number>).data), [4, 5], 'from an array-like');
  t.equal(ms.tensor([1], [1], { requiresGrad: true }).requiresGrad, true, 'requiresGrad option');
  t.equal(ms.tensor([1]).requiresGrad, false, 'requiresGrad defaults to false');
});

t.test('tensor(): a Float32Array is copied, not aliased', async (t) => {
  const src = new Float32Array([1, 2, 3, 4]);
  const x = ms.tensor(src, [2, 2]);
  t.not(x.data, src, 'a different array');
  t.not(x.data.buffer, src.buffer, 'a different buffer');
  src[0] = 100;
  t.equal(x.data[0], 1, 'changing the source does not change the tensor');
  x.data[1] = -7;
  t.equal(src[1], 2, 'changing the tensor does not change the source');
  const arr = [1, 2];
  const y = ms.tensor(arr);
  arr[0] = 9;
  t.equal(y.data[0], 1, 'plain arrays are copied too');
  // A subarray view copies only its window.
  const view = new Float32Array([0, 1, 2, 3, 4]).subarray(1, 3);
  t.same(Array.from(ms.tensor(view).data), [1, 2], 'a subarray copies its window');
});

t.test('tensor(): bad data and shapes', async (t) => {
  assertOpError(t, () => ms.tensor([[1, 2], [3]]), RangeError, 'tensor', ['ragged'], 'ragged rows');
  assertOpError(t, () => ms.tensor([[1, 2], 3] as unknown as number[]), RangeError, 'tensor', ['ragged'], 'array next to a number');
  assertOpError(t, () => ms.tensor([1, [2, 3]] as unknown as number[]), RangeError, 'tensor', ['ragged'], 'number next to an array');
  assertOpError(t, () => ms.tensor([[1], [[2]]] as unknown as number[]), RangeError, 'tensor', ['ragged'], 'deeper nesting after a number');
  assertOpError(t, () => ms.tensor([1, [2, 3]] as unknown as number[], [3]), RangeError, 'tensor', ['ragged'], 'ragged data with an explicit shape');
  assertOpError(t, () => ms.tensor([['a']] as unknown as number[]), TypeError, 'tensor', ['numbers'], 'strings');
  assertOpError(t, () => ms.tensor([true] as unknown as number[]), TypeError, 'tensor', ['numbers'], 'booleans');
  assertOpError(t, () => ms.tensor(null as unknown as number[]), TypeError, 'tensor', ['data'], 'null');
  assertOpError(t, () => ms.tensor(undefined as unknown as number[]), TypeError, 'tensor', ['data'], 'undefined');
  assertOpError(t, () => ms.tensor('123' as unknown as number[]), TypeError, 'tensor', ['data'], 'a string');
  assertOpError(t, () => ms.tensor([1, 2, 3], [2, 2]), RangeError, 'tensor', ['3', '[2, 2]'], 'size mismatch');
  assertOpError(t, () => ms.tensor([1, 2], [-1, -2]), RangeError, 'tensor', ['shape', '[-1, -2]'], 'negative shape');
  assertOpError(t, () => ms.tensor([1, 2], [0.5, 4]), RangeError, 'tensor', ['shape', '[0.5, 4]'], 'fractional shape');
  assertOpError(t, () => ms.tensor([1, 2], [NaN]), RangeError, 'tensor', ['shape'], 'NaN shape');
  assertOpError(t, () => ms.tensor([1, 2], '2' as unknown as number[]), TypeError, 'tensor', ['shape'], 'shape a string');
  for (const [name, fn] of [['zeros', ms.zeros], ['ones', ms.ones], ['randn', ms.randn]] as const) {
    assertOpError(t, () => fn([2, -3]), RangeError, name, ['shape', '[2, -3]'], `${name}: negative size`);
    assertOpError(t, () => fn([1.5]), RangeError, name, ['shape', '[1.5]'], `${name}: fractional size`);
    assertOpError(t, () => fn(3 as unknown as number[]), TypeError, name, ['shape'], `${name}: shape a number`);
    assertOpError(t, () => fn([2 ** 16, 2 ** 16]), RangeError, name, ['shape', '2^31'], `${name}: too many elements`);
  }
  t.throws(() => new ms.Tensor(new Float32Array(3), [2, 2]), RangeError, 'the Tensor constructor checks the size');
});

t.test('zeros, ones, full, rand, randn', async (t) => {
  t.same(Array.from(ms.zeros([2, 3]).data), [0, 0, 0, 0, 0, 0]);
  t.same(ms.zeros([2, 3]).shape, [2, 3]);
  t.same(Array.from(ms.ones([4]).data), [1, 1, 1, 1]);
  t.same(Array.from(ms.full([2], -2.5).data), [-2.5, -2.5]);
  t.same(ms.zeros([]).shape, [], 'a scalar zero');
  t.equal(ms.zeros([]).item(), 0);
  t.same(ms.zeros([3, 0]).shape, [3, 0], 'empty');
  t.equal(ms.ones([2], { requiresGrad: true }).requiresGrad, true);

  const a = ms.randn([1000], { seed: 42 });
  const b = ms.randn([1000], { seed: 42 });
  const c = ms.randn([1000], { seed: 43 });
  assertBitwise(t, a.data, b.data, 'same seed, same values');
  t.ok(a.data.some((v, i) => v !== c.data[i]), 'different seeds differ');
  t.ok(a.data.every((v, i) => v !== c.data[i] || v === 0), 'different seeds differ everywhere (no shared stream)');
  const g1 = new ms.Generator(7);
  const g2 = new ms.Generator(7);
  assertBitwise(t, ms.randn([50], { generator: g1 }).data, ms.randn([50], { generator: g2 }).data, 'same generator state, same values');
  ms.manualSeed(123);
  const d1 = ms.randn([20]);
  ms.manualSeed(123);
  assertBitwise(t, d1.data, ms.randn([20]).data, 'manualSeed makes the default generator reproducible');

  const n = 100000;
  const x = ms.randn([n], { seed: 2024 }).data;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= n;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  const std = Math.sqrt(variance / (n - 1));
  // Standard errors: mean 1/sqrt(n) = 0.0032, std 1/sqrt(2n) = 0.0022; allow about 5 of them.
  t.ok(Math.abs(mean) < 0.016, `randn mean ${mean} ~ 0`);
  t.ok(Math.abs(std - 1) < 0.012, `randn std ${std} ~ 1`);
  let tails = 0;
  for (const v of x) if (Math.abs(v) > 1.959964) tails++;
  t.ok(Math.abs(tails / n - 0.05) < 0.004, `randn: ${tails / n} of values beyond 1.96 (normal: 0.05)`);
  t.ok(x.every(Number.isFinite), 'all finite');

  const u = ms.rand([10000], { seed: 5, low: -2, high: 3 }).data;
  t.ok(u.every((v) => v >= -2 && v < 3), 'rand within [low, high)');
  let um = 0;
  for (const v of u) um += v;
  t.ok(Math.abs(um / u.length - 0.5) < 0.06, 'rand mean ~ (low + high) / 2');
  assertOpError(t, () => ms.randn([2], { seed: NaN }), RangeError, 'randn', ['seed'], 'randn: NaN seed');
  assertOpError(t, () => ms.rand([2], { seed: Infinity }), RangeError, 'rand', ['seed'], 'rand: infinite seed');
});

t.test('item, toArray, detach, clone, zeroGrad', async (t) => {
  t.equal(ms.tensor([[3.5]]).item(), 3.5, 'item of [1, 1]');
  assertOpError(t, () => ms.tensor([1, 2]).item(), RangeError, 'item', ['[2]'], 'item of two elements');
  assertOpError(t, () => ms.zeros([0]).item(), RangeError, 'item', ['[0]'], 'item of none');
  t.same(ms.tensor([[1, 2], [3, 4]]).toArray(), [[1, 2], [3, 4]], 'toArray 2-D');
  t.same(ms.tensor([1, 2, 3, 4, 5, 6], [2, 1, 3]).toArray(), [[[1, 2, 3]], [[4, 5, 6]]], 'toArray 3-D');
  t.equal(ms.tensor(4).toArray(), 4, 'toArray of a scalar is a number');
  t.same(ms.zeros([2, 0]).toArray(), [[], []], 'toArray of an empty tensor');

  const x = ms.tensor([1, 2, 3], [3], { requiresGrad: true });
  const y = ms.mul(x, x);
  const d = y.detach();
  t.equal(d.requiresGrad, false, 'detach: no grad');
  t.equal(d.gradFn, null, 'detach: no history');
  t.equal(d.data, y.data, 'detach shares the values');
  t.same(d.shape, [3]);
  const c = y.clone();
  t.not(c.data, y.data, 'clone copies');
  t.same(Array.from(c.data), [1, 4, 9]);
  t.equal(c.gradFn, null, 'clone has no history');
  ms.sum(ms.mul(d, x)).backward();
  t.same(Array.from(x.grad!.data), [1, 4, 9], 'no gradient flows through a detached tensor');
  x.zeroGrad();
  t.equal(x.grad, null, 'zeroGrad clears');
  t.match(String(x), /Tensor\(shape=\[3\], requiresGrad\)/, 'toString');
  t.equal(x.size, 3);
  t.equal(x.rank, 1);
});

t.test('noGrad: records nothing, returns the result, restores the mode even after a throw', async (t) => {
  const x = ms.tensor([1, -2, 3], [3], { requiresGrad: true });
  t.equal(ms.isGradEnabled(), true, 'grad mode on by default');
  const y = ms.noGrad(() => {
    t.equal(ms.isGradEnabled(), false, 'off inside');
    return ms.relu(ms.mul(x, x));
  });
  t.equal(y.requiresGrad, false, 'output does not require grad');
  t.equal(y.gradFn, null, 'no graph recorded');
  t.same(Array.from(y.data), [1, 4, 9], 'values computed');
  t.equal(ms.isGradEnabled(), true, 'restored after');
  t.throws(() => ms.noGrad(() => {
    throw new Error('boom');
  }), /boom/, 'the error propagates');
  t.equal(ms.isGradEnabled(), true, 'restored after a throw');
  ms.noGrad(() => {
    ms.noGrad(() => undefined);
    t.equal(ms.isGradEnabled(), false, 'nested noGrad leaves it off');
  });
  t.equal(ms.isGradEnabled(), true, 'on after nesting');
  const z = ms.mul(x, x);
  t.equal(z.requiresGrad, true, 'recording again');
});

t.test('backward: seeds, grad shape checks, leaves', async (t) => {
  const x = ms.tensor([1, 2, 3], [3], { requiresGrad: true });
  const y = ms.mul(x, x);
  assertOpError(t, () => y.backward(), RangeError, 'backward', ['[3]'], 'no default seed for 3 elements');
  assertOpError(t, () => y.backward(ms.ones([4]), { retainGraph: true }), RangeError, 'backward', ['[4]', '[3]'], 'grad shape mismatch');
  assertOpError(t, () => y.backward(ms.ones([3, 1]), { retainGraph: true }), RangeError, 'backward', ['[3, 1]', '[3]'], 'grad rank mismatch');
  assertOpError(t, () => y.backward([1, 1, 1] as unknown as ms.Tensor), TypeError, 'backward', ['grad'], 'grad not a tensor');
  y.backward(ms.tensor([1, 10, 100]));
  t.same(Array.from(x.grad!.data), [2, 40, 600], 'given seed');
  const s = ms.tensor([[5]], [1, 1], { requiresGrad: true });
  ms.mul(s, s).backward();
  t.same(Array.from(s.grad!.data), [10], 'one-element [1, 1] defaults to seed 1');
  t.same(s.grad!.shape, [1, 1], 'grad has the shape of the tensor');
  const leaf = ms.tensor([1, 2], [2], { requiresGrad: true });
  leaf.backward(ms.tensor([3, 4]));
  t.same(Array.from(leaf.grad!.data), [3, 4], 'backward on a leaf');
  const c = ms.tensor([1, 2]);
  t.throws(() => ms.sum(c).backward(), /backward.*requires? grad/, 'nothing requires grad: a clear error');
});

t.test('a diamond graph (residual y = linear(relu(linear(x, W1)), W2) + x): gradients by finite differences', async (t) => {
  const gen = rng(71);
  const batch = 4, d = 6, hidden = 9;
  const x = ms.tensor(randn32(gen, batch * d), [batch, d], { requiresGrad: true });
  const W1 = ms.tensor(randn32(gen, hidden * d, 0.5), [hidden, d], { requiresGrad: true });
  const b1 = ms.tensor(randn32(gen, hidden, 0.5), [hidden], { requiresGrad: true });
  const W2 = ms.tensor(randn32(gen, d * hidden, 0.5), [d, hidden], { requiresGrad: true });
  const b2 = ms.tensor(randn32(gen, d, 0.5), [d], { requiresGrad: true });
  const forward = (xx: ms.Tensor, w1: ms.Tensor, bb1: ms.Tensor, w2: ms.Tensor, bb2: ms.Tensor): ms.Tensor => {
    const h = ms.relu(ms.linear(xx, w1, bb1));
    const y = ms.add(ms.linear(h, w2, bb2), xx);
    return ms.mul(y, ms.softmax(y)); // x reaches the output along three paths
  };
  const reference = ([xx, w1, bb1, w2, bb2]: Float64Array[]): Float64Array => {
    const h = refRelu(refLinear(xx, d, w1, d, bb1, hidden));
    const y = refBroadcast('add', refLinear(h, hidden, w2, hidden, bb2, d), [batch, d], xx, [batch, d]).data;
    const sm = new Float64Array(y.length);
    for (let r = 0; r < batch; r++) {
      let m = -Infinity;
      for (let j = 0; j < d; j++) m = Math.max(m, y[r * d + j]);
      let s = 0;
      for (let j = 0; j < d; j++) s += Math.exp(y[r * d + j] - m);
      for (let j = 0; j < d; j++) sm[r * d + j] = Math.exp(y[r * d + j] - m) / s;
    }
    return y.map((v, i) => v * sm[i]);
  };
  const out = checkGradients(t, 'residual block', [x, W1, b1, W2, b2], forward, reference, { gen, eps: 1e-5 });
  assertClose(t, out.data, reference([x, W1, b1, W2, b2].map((v) => Float64Array.from(v.data))), 'forward value');
  // The pre-activations must stay away from relu's kink for the differences to be valid.
  const pre = refLinear(x.data, d, W1.data, d, b1.data, hidden);
  t.ok(pre.every((v) => Math.abs(v) > 1e-3), 'no pre-activation within 1e-3 of the kink');
  // Intermediate tensors keep no .grad (like PyTorch's non-leaf tensors).
  const h = ms.relu(ms.linear(x, W1, b1));
  ms.sum(h).backward();
  t.equal(h.grad, null, 'non-leaf tensors get no .grad');
});

t.test('gradients accumulate across backward calls; retainGraph; freed graphs throw clearly', async (t) => {
  const gen = rng(72);
  const x = ms.tensor(randn32(gen, 6), [2, 3], { requiresGrad: true });
  const w = ms.tensor(randn32(gen, 12), [4, 3], { requiresGrad: true });
  const build = (): ms.Tensor => ms.sum(ms.mul(ms.linear(x, w, null), ms.linear(x, w, null)));
  build().backward();
  const gx1 = x.grad!.data.slice();
  const gw1 = w.grad!.data.slice();
  build().backward();
  assertClose(t, x.grad!.data, gx1.map((v) => 2 * v), 'x grad accumulates over two graphs');
  assertClose(t, w.grad!.data, gw1.map((v) => 2 * v), 'w grad accumulates over two graphs');

  x.grad = null;
  w.grad = null;
  const loss = build();
  loss.backward(undefined, { retainGraph: true });
  loss.backward(undefined, { retainGraph: true });
  assertClose(t, x.grad!.data, gx1.map((v) => 2 * v), 'retainGraph: backward twice through one graph');
  loss.backward();
  assertClose(t, x.grad!.data, gx1.map((v) => 3 * v), 'a third time, freeing it');
  t.throws(() => loss.backward(), /backward.*freed.*retainGraph/, 'a freed graph throws a clear error');
  assertClose(t, x.grad!.data, gx1.map((v) => 3 * v), 'and adds nothing');

  // A graph freed through another root: an intermediate shared by two losses.
  const h = ms.linear(x, w, null);
  const l1 = ms.sum(h);
  const l2 = ms.sum(ms.mul(h, h));
  l1.backward();
  t.throws(() => l2.backward(), /freed/, 'a second loss through a freed intermediate throws');
  const k = ms.linear(x, w, null);
  const k1 = ms.sum(k);
  const k2 = ms.mean(k);
  k1.backward(undefined, { retainGraph: true });
  t.doesNotThrow(() => k2.backward(), 'retained: a second loss through the same intermediate works');
});

t.test('only needed gradients are computed', async (t) => {
  const gen = rng(73);
  const x = ms.tensor(randn32(gen, 6), [2, 3]);
  const w = ms.tensor(randn32(gen, 12), [4, 3], { requiresGrad: true });
  const b = ms.tensor(randn32(gen, 4), [4]);
  const c = ms.tensor(randn32(gen, 8), [2, 4]);
  ms.sum(ms.mul(ms.linear(x, w, b), c)).backward();
  t.equal(x.grad, null, 'x without requiresGrad: no grad');
  t.equal(b.grad, null, 'bias without requiresGrad: no grad');
  t.equal(c.grad, null, 'constant: no grad');
  t.not(w.grad, null, 'weight: a grad');
  // d/dw sum(c * (x w^T + b)) = c^T x
  const expected = new Float64Array(12);
  for (let o = 0; o < 4; o++) for (let i = 0; i < 3; i++) for (let n = 0; n < 2; n++) expected[o * 3 + i] += c.data[n * 4 + o] * x.data[n * 3 + i];
  assertClose(t, w.grad!.data, expected, 'weight grad = c^T x');
});

t.test('a chain of 20000 ops does not overflow the stack', async (t) => {
  const x = ms.tensor([1, 2, 3], [3], { requiresGrad: true });
  const half = ms.full([3], 0.5);
  const one = ms.ones([3]);
  let z = x;
  for (let i = 0; i < 20000; i++) z = i % 2 === 0 ? ms.add(z, half) : ms.mul(z, one);
  t.doesNotThrow(() => ms.sum(z).backward(), 'backward through 20000 ops');
  t.same(Array.from(x.grad!.data), [1, 1, 1], 'gradient 1 through the chain');
  t.same(Array.from(z.data), [5001, 5002, 5003], 'value after 10000 additions of 0.5');
  t.equal(one.grad, null, 'a constant used 10000 times gets no grad');
});

t.test('setNumThreads / getNumThreads; results identical for 1 and 2 threads', async (t) => {
  const saved = ms.getNumThreads();
  t.teardown(() => ms.setNumThreads(saved));
  t.ok(Number.isInteger(saved) && saved >= 1, `default thread count ${saved}`);
  for (const bad of [0, -1, 1.5, NaN, Infinity, 1025, '2', null, undefined]) {
    assertOpError(t, () => ms.setNumThreads(bad as number), RangeError, 'setNumThreads', ['n'], `setNumThreads(${String(bad)})`);
  }
  t.equal(ms.getNumThreads(), saved, 'a refused value changes nothing');
  ms.setNumThreads(1);
  t.equal(ms.getNumThreads(), 1);
  ms.setNumThreads(3);
  t.equal(ms.getNumThreads(), 3);
  const info = ms.kernelInfo();
  t.type(info.gemm, 'string', `kernel ${info.gemm}`);
  t.equal(info.threads, 3, 'kernelInfo reports the thread count');

  const gen = rng(74);
  const x = ms.tensor(randn32(gen, 256 * 300), [256, 300], { requiresGrad: true });
  const w = ms.tensor(randn32(gen, 384 * 301), [384, 301], { requiresGrad: true });
  const b = ms.tensor(randn32(gen, 384), [384], { requiresGrad: true });
  const a3 = ms.tensor(randn32(gen, 2 * 200 * 150), [2, 200, 150], { requiresGrad: true });
  const b3 = ms.tensor(randn32(gen, 2 * 150 * 260), [2, 150, 260], { requiresGrad: true });
  const runs: Float32Array[][] = [];
  for (const n of [1, 2]) {
    ms.setNumThreads(n);
    for (const p of [x, w, b, a3, b3]) p.grad = null;
    const y = ms.linear(x, w, b, { outWidth: 320 });
    y.backward(ms.ones(y.shape));
    const m = ms.matmul(a3, b3);
    m.backward(ms.full(m.shape, 0.25));
    runs.push([y.data, x.grad!.data, w.grad!.data, b.grad!.data, m.data, a3.grad!.data, b3.grad!.data]);
  }
  ['linear forward', 'linear dx', 'linear dW', 'linear db', 'matmul forward', 'matmul da', 'matmul db'].forEach((name, i) => {
    assertBitwise(t, runs[0][i], runs[1][i], `${name}: 1 thread == 2 threads`);
  });
});
