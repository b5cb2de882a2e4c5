// crossEntropy, nllLoss and klDiv against float64 references; gradients by
// finite differences; label checking.
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  assertClose,
  assertOpError,
  checkGradients,
  randn32,
  refCrossEntropy,
  refKlDiv,
  refLogSoftmax,
  refNllLoss,
  refSoftmax,
  rng,
} from '../helpers/reference.js';

function labelsFor(gen: ms.Generator, n: number, c: number): number[] {
  return Array.from({ length: n }, () => gen.int(c));
}

const SHAPES: [number, number][] = [[1, 1], [1, 5], [4, 1], [3, 7], [8, 10], [33, 97]];

t.test('crossEntropy: values and gradients, labels as number[] and Int32Array', async (t) => {
  const gen = rng(61);
  for (const [n, c] of SHAPES) {
    const labels = labelsFor(gen, n, c);
    for (const asInt of [false, true]) {
      const y = asInt ? Int32Array.from(labels) : labels;
      const logits = ms.tensor(randn32(gen, n * c, 3), [n, c], { requiresGrad: true });
      const loss = ms.crossEntropy(logits, y);
      t.same(loss.shape, [], `[${n}, ${c}]: a scalar`);
      assertClose(t, loss.data, refCrossEntropy(logits.data, labels, c), `[${n}, ${c}] ${asInt ? 'Int32Array' : 'number[]'}: value`, { rtol: 1e-5, atol: 1e-6 });
      checkGradients(t, `crossEntropy [${n}, ${c}]`, [logits], (l) => ms.crossEntropy(l, y), ([l]) => refCrossEntropy(l, labels, c), { gen, sample: 40 });
    }
  }
  // Known value: uniform logits give log(C).
  t.ok(Math.abs(ms.crossEntropy(ms.zeros([3, 10]), [0, 5, 9]).item() - Math.log(10)) < 1e-6, 'uniform logits: log C');
  // Stable for large logits.
  const big = ms.tensor([1e4, -1e4, 0, 0, 1e4, -1e4], [2, 3]);
  const v = ms.crossEntropy(big, [1, 0]).item();
  assertClose(t, [v], refCrossEntropy(big.data, [1, 0], 3), 'large logits: finite and right', { rtol: 1e-5 });
});

t.test('crossEntropy: the labels are copied (reusing the array before backward is safe)', async (t) => {
  const gen = rng(62);
  const logits = ms.tensor(randn32(gen, 12), [3, 4], { requiresGrad: true });
  const labels = Int32Array.from([0, 3, 1]);
  const loss = ms.crossEntropy(logits, labels);
  labels.set([2, 2, 2]);
  loss.backward();
  const expected = refSoftmax(logits.data, 4).map((p, i) => (p - (i % 4 === [0, 3, 1][Math.floor(i / 4)] ? 1 : 0)) / 3);
  assertClose(t, logits.grad!.data, expected, 'gradient uses the labels at call time', { rtol: 1e-5, atol: 1e-6 });
});

t.test('nllLoss: values and gradients', async (t) => {
  const gen = rng(63);
  for (const [n, c] of SHAPES) {
    const labels = labelsFor(gen, n, c);
    const logp = ms.tensor(randn32(gen, n * c), [n, c], { requiresGrad: true });
    assertClose(t, ms.nllLoss(logp, labels).data, refNllLoss(logp.data, labels, c), `[${n}, ${c}]: value`, { rtol: 1e-6, atol: 1e-7 });
    checkGradients(t, `nllLoss [${n}, ${c}]`, [logp], (l) => ms.nllLoss(l, Int32Array.from(labels)), ([l]) => refNllLoss(l, labels, c), { gen, sample: 40 });
  }
  // Composite equals crossEntropy.
  const x = ms.tensor(randn32(gen, 20), [4, 5]);
  const ce = ms.crossEntropy(x, [1, 2, 3, 4]).item();
  const nll = ms.nllLoss(ms.logSoftmax(x), [1, 2, 3, 4]).item();
  t.equal(ce, nll, 'crossEntropy == nllLoss(logSoftmax)');
});

t.test('klDiv: values with zeros in q, gradient into logp only', async (t) => {
  const gen = rng(64);
  for (const [n, c] of SHAPES) {
    const q64 = refSoftmax(randn32(gen, n * c, 2), c);
    // Zero some entries of q (and renormalise the rows): 0 log 0 = 0.
    for (let i = 0; i < n; i++) {
      if (c > 1) q64[i * c + gen.int(c)] = 0;
      if (c > 3) q64[i * c + gen.int(c)] = 0;
      let s = 0;
      for (let j = 0; j < c; j++) s += q64[i * c + j];
      for (let j = 0; j < c; j++) q64[i * c + j] = s > 0 ? q64[i * c + j] / s : 0;
    }
    const q = ms.tensor(Float32Array.from(q64), [n, c], { requiresGrad: true });
    const logp = ms.tensor(Float32Array.from(refLogSoftmax(randn32(gen, n * c), c)), [n, c], { requiresGrad: true });
    const value = ms.klDiv(logp, q);
    t.same(value.shape, [], `[${n}, ${c}]: a scalar`);
    t.ok(Number.isFinite(value.item()), `[${n}, ${c}]: finite with zeros in q`);
    assertClose(t, value.data, refKlDiv(logp.data, q.data, n), `[${n}, ${c}]: value`, { rtol: 1e-5, atol: 1e-6 });
    checkGradients(t, `klDiv [${n}, ${c}]`, [logp, ms.tensor(q.data, [n, c])], ms.klDiv, ([l, qq]) => refKlDiv(l, qq, n), { gen, sample: 40 });
    q.grad = null;
    ms.klDiv(logp, q).backward();
    t.equal(q.grad, null, `[${n}, ${c}]: no gradient flows into q`);
  }
  // KL(q || q) = 0, and through logSoftmax of a student.
  const p = ms.softmax(ms.randn([3, 4], { seed: 5 }));
  t.ok(Math.abs(ms.klDiv(ms.logSoftmax(ms.randn([3, 4], { seed: 5 })), p).item()) < 1e-6, 'KL(p || p) = 0');
  const student = ms.tensor(randn32(gen, 12), [3, 4], { requiresGrad: true });
  const teacher = Float32Array.from(refSoftmax(randn32(gen, 12), 4));
  checkGradients(
    t, 'klDiv(logSoftmax(student), teacher)', [student], (s) => ms.klDiv(ms.logSoftmax(s), ms.tensor(teacher, [3, 4])),
    ([s]) => refKlDiv(refLogSoftmax(s, 4), teacher, 3), { gen },
  );
});

t.test('bad labels and shapes throw, naming the op, argument and shapes', async (t) => {
  const logits = ms.zeros([3, 4]);
  for (const [op, fn] of [
    ['crossEntropy', (l: unknown) => ms.crossEntropy(logits, l as number[])],
    ['nllLoss', (l: unknown) => ms.nllLoss(logits, l as number[])],
  ] as const) {
    assertOpError(t, () => fn([0, 1, 4]), RangeError, op, ['labels[2]', '4', '[3, 4]'], `${op}: label = C`);
    assertOpError(t, () => fn([0, -1, 2]), RangeError, op, ['labels[1]', '-1', '[3, 4]'], `${op}: negative label`);
    assertOpError(t, () => fn([0, 1.5, 2]), RangeError, op, ['labels[1]', '1.5', '[3, 4]'], `${op}: fractional label`);
    assertOpError(t, () => fn([NaN, 1, 2]), RangeError, op, ['labels[0]', 'NaN'], `${op}: NaN label`);
    assertOpError(t, () => fn(['1', 1, 2]), RangeError, op, ['labels[0]'], `${op}: string label`);
    assertOpError(t, () => fn([0, 1]), RangeError, op, ['labels', '2', '[3, 4]'], `${op}: too few labels`);
    assertOpError(t, () => fn(Int32Array.from([0, 1, 2, 3])), RangeError, op, ['labels', '4', '[3, 4]'], `${op}: too many labels`);
    assertOpError(t, () => fn(Int32Array.from([0, 9, 1])), RangeError, op, ['labels[1]', '9'], `${op}: Int32Array label out of range`);
    assertOpError(t, () => fn(new Float32Array(3)), TypeError, op, ['labels'], `${op}: labels a Float32Array`);
    assertOpError(t, () => fn(null), TypeError, op, ['labels'], `${op}: labels null`);
    assertOpError(t, () => fn('012'), TypeError, op, ['labels'], `${op}: labels a string`);
  }
  assertOpError(t, () => ms.crossEntropy(ms.zeros([12]), [0]), RangeError, 'crossEntropy', ['logits', '[12]'], 'crossEntropy: 1-D logits');
  assertOpError(t, () => ms.crossEntropy(ms.zeros([2, 3, 4]), [0, 1]), RangeError, 'crossEntropy', ['logits', '[2, 3, 4]'], 'crossEntropy: 3-D logits');
  assertOpError(t, () => ms.crossEntropy([[0, 1]] as unknown as ms.Tensor, [0]), TypeError, 'crossEntropy', ['logits'], 'crossEntropy: logits not a tensor');
  assertOpError(t, () => ms.nllLoss(ms.zeros([4]), [0]), RangeError, 'nllLoss', ['logp', '[4]'], 'nllLoss: 1-D logp');
  assertOpError(t, () => ms.klDiv(ms.zeros([2, 3]), ms.zeros([3, 2])), RangeError, 'klDiv', ['q', '[3, 2]', '[2, 3]'], 'klDiv: shapes differ');
  assertOpError(t, () => ms.klDiv(ms.zeros([6]), ms.zeros([6])), RangeError, 'klDiv', ['logp', '[6]'], 'klDiv: 1-D');
  assertOpError(t, () => ms.klDiv(ms.zeros([2, 3]), null as unknown as ms.Tensor), TypeError, 'klDiv', ['q'], 'klDiv: q null');
  // An empty batch is NaN like PyTorch's mean over nothing.
  t.ok(Number.isNaN(ms.crossEntropy(ms.zeros([0, 4]), []).item()), 'empty batch: NaN');
});
