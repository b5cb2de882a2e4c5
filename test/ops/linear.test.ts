// linear with width arguments: forward against a float64 reference for every
// (inWidth, outWidth) at a small shape and a sample at a larger one, gradients by
// finite differences, and the prefix rule (gradients never leave the prefix).
import t from 'tap';
import * as ms from '../../src/index.js';
import {
  abs64,
  assertAll,
  assertBitwise,
  assertClose,
  assertOpError,
  checkGradients,
  dotTol,
  randn32,
  refLinear,
  rng,
  sampleIndices,
  widths,
  type Asserter,
} from '../helpers/reference.js';

/** Indices of a [rows, cols] matrix outside its [usedRows, usedCols] prefix. */
function outsidePrefix(rows: number, cols: number, usedRows: number, usedCols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (r >= usedRows || c >= usedCols) out.push(r * cols + c);
  return out;
}

function subWeight(w: ms.Tensor, outWidth: number, inWidth: number): ms.Tensor {
  const inFull = w.shape[1];
  const data = new Float32Array(outWidth * inWidth);
  for (let o = 0; o < outWidth; o++) for (let i = 0; i < inWidth; i++) data[o * inWidth + i] = w.data[o * inFull + i];
  return ms.tensor(data, [outWidth, inWidth]);
}

/** Forward vs the float64 reference, and bitwise vs a dense linear on a copied sub-weight. */
function checkForward(
  t: Asserter, x: ms.Tensor, w: ms.Tensor, b: ms.Tensor | null, outWidth: number, label: string,
): boolean {
  const [outFull, inFull] = w.shape;
  const inWidth = x.shape[x.shape.length - 1];
  const y = ms.linear(x, w, b, outWidth === outFull && outWidth % 2 === 0 ? undefined : { outWidth });
  const shapeOk = t.ok(
    y.shape.length === x.shape.length && y.shape.every((d, i) => d === (i === x.shape.length - 1 ? outWidth : x.shape[i])),
    `${label}: shape [${y.shape}]`,
  );
  const expected = refLinear(x.data, inWidth, w.data, inFull, b === null ? null : b.data, outWidth);
  const scale = refLinear(abs64(x.data), inWidth, abs64(w.data), inFull, b === null ? null : abs64(b.data), outWidth);
  const close = assertClose(t, y.data, expected, `${label}: values`, { ...dotTol(inWidth + 1), scale });
  const dense = ms.linear(x, subWeight(w, outWidth, inWidth), b === null ? null : ms.tensor(b.data.slice(0, outWidth)));
  const same = assertBitwise(t, y.data, dense.data, `${label}: equals a dense linear on a copied sub-weight`);
  return shapeOk && close && same;
}

/** Quiet wrapper: reports only failing assertions (for loops over many widths). */
function quiet(t: Asserter): { sink: Asserter; flush(): number } {
  const failures: string[] = [];
  return {
    sink: {
      ok(cond, message) {
        if (!cond) failures.push(message ?? '');
        return Boolean(cond);
      },
    },
    flush() {
      for (const f of failures) t.ok(false, f);
      return failures.length;
    },
  };
}

t.test('forward: every (inWidth, outWidth) of weight [7, 5], batch 3, with and without bias', async (t) => {
  const gen = rng(11);
  const w = ms.tensor(randn32(gen, 35), [7, 5]);
  const b = ms.tensor(randn32(gen, 7), [7]);
  const q = quiet(t);
  let cases = 0;
  for (let inWidth = 1; inWidth <= 5; inWidth++) {
    const x = ms.tensor(randn32(gen, 3 * inWidth), [3, inWidth]);
    for (let outWidth = 1; outWidth <= 7; outWidth++) {
      for (const bias of [null, b]) {
        cases++;
        checkForward(q.sink, x, w, bias, outWidth, `in=${inWidth} out=${outWidth} bias=${bias !== null}`);
      }
    }
  }
  t.equal(q.flush(), 0, `${cases} width pairs all match`);
});

t.test('forward: sampled widths of weight [130, 97], batch 33; batch 1; x of rank 3', async (t) => {
  const gen = rng(12);
  const w = ms.tensor(randn32(gen, 130 * 97), [130, 97]);
  const b = ms.tensor(randn32(gen, 130), [130]);
  const q = quiet(t);
  let cases = 0;
  for (const inWidth of widths(97, 0, gen, 3)) {
    const x = ms.tensor(randn32(gen, 33 * inWidth), [33, inWidth]);
    const x1 = ms.tensor(randn32(gen, inWidth), [1, inWidth]);
    for (const outWidth of widths(130, 0, gen, 3)) {
      cases += 2;
      checkForward(q.sink, x, w, gen.uniform() < 0.5 ? null : b, outWidth, `[33, ${inWidth}] out=${outWidth}`);
      checkForward(q.sink, x1, w, b, outWidth, `[1, ${inWidth}] out=${outWidth}`);
    }
  }
  t.equal(q.flush(), 0, `${cases} sampled width pairs all match`);
  const x3 = ms.tensor(randn32(gen, 2 * 3 * 4), [2, 3, 4]);
  const small = ms.tensor(randn32(gen, 6 * 5), [6, 5]);
  checkForward(t, x3, small, ms.tensor(randn32(gen, 6)), 4, 'x [2, 3, 4], weight [6, 5], outWidth 4');
  const x4 = ms.tensor(randn32(gen, 2 * 1 * 3 * 5), [2, 1, 3, 5]);
  checkForward(t, x4, small, null, 6, 'x [2, 1, 3, 5], weight [6, 5]');
});

t.test('an empty batch gives an empty result', async (t) => {
  const w = ms.randn([4, 3], { seed: 1, requiresGrad: true });
  const x = ms.zeros([0, 3], { requiresGrad: true });
  const y = ms.linear(x, w, null, { outWidth: 2 });
  t.same(y.shape, [0, 2]);
  ms.sum(y).backward();
  t.ok(w.grad!.data.every((v) => v === 0), 'weight gradient all zero');
});

t.test('gradients by finite differences at every width pair of weight [7, 5]; prefix rule', async (t) => {
  const gen = rng(13);
  const q = quiet(t);
  let cases = 0;
  for (let inWidth = 1; inWidth <= 5; inWidth++) {
    for (let outWidth = 1; outWidth <= 7; outWidth++) {
      for (const withBias of [false, true]) {
        cases++;
        const x = ms.tensor(randn32(gen, 3 * inWidth), [3, inWidth], { requiresGrad: true });
        const w = ms.tensor(randn32(gen, 35), [7, 5], { requiresGrad: true });
        const b = withBias ? ms.tensor(randn32(gen, 7), [7], { requiresGrad: true }) : null;
        const inputs = b === null ? [x, w] : [x, w, b];
        const label = `in=${inWidth} out=${outWidth} bias=${withBias}`;
        checkGradients(
          q.sink, label, inputs,
          (xx, ww, bb) => ms.linear(xx, ww, bb ?? null, { outWidth }),
          ([xx, ww, bb]) => refLinear(xx, inWidth, ww, 5, bb ?? null, outWidth),
          { gen, sample: 1000 },
        );
        assertAll(q.sink, w.grad!.data, outsidePrefix(7, 5, outWidth, inWidth), 0, `${label}: weight grad zero outside the prefix`);
        if (b !== null) assertAll(q.sink, b.grad!.data, [...Array(7 - outWidth)].map((_, i) => outWidth + i), 0, `${label}: bias grad zero outside the prefix`);
      }
    }
  }
  t.equal(q.flush(), 0, `${cases} gradient cases all match`);
});

t.test('gradients at larger shapes (sampled coordinates), rank-3 x; prefix untouched in a pre-filled grad', async (t) => {
  const gen = rng(14);
  for (const [batch, inWidth, outWidth] of [[33, 97, 130], [33, 61, 67], [5, 1, 1], [1, 96, 129]] as const) {
    const x = ms.tensor(randn32(gen, batch * inWidth), [batch, inWidth], { requiresGrad: true });
    const w = ms.tensor(randn32(gen, 130 * 97), [130, 97], { requiresGrad: true });
    const b = ms.tensor(randn32(gen, 130), [130], { requiresGrad: true });
    const label = `x [${batch}, ${inWidth}], weight [130, 97], outWidth ${outWidth}`;
    checkGradients(
      t, label, [x, w, b],
      (xx, ww, bb) => ms.linear(xx, ww, bb, { outWidth }),
      ([xx, ww, bb]) => refLinear(xx, inWidth, ww, 97, bb, outWidth),
      { gen, sample: 24, tol: { rtol: 1e-3, atol: 2e-4 } },
    );
    // "Untouched" means untouched: pre-fill the full gradients and run again.
    w.grad = ms.full([130, 97], 7.5);
    b.grad = ms.full([130], -3.25);
    ms.linear(x, w, b, { outWidth }).backward(ms.ones([batch, outWidth]));
    assertAll(t, w.grad.data, outsidePrefix(130, 97, outWidth, inWidth), 7.5, `${label}: weight grad outside the prefix untouched`);
    assertAll(t, b.grad.data, [...Array(130 - outWidth)].map((_, i) => outWidth + i), -3.25, `${label}: bias grad outside the prefix untouched`);
    const inside = sampleIndices(gen, outWidth * inWidth, 8).map((k) => Math.floor(k / inWidth) * 97 + (k % inWidth));
    t.ok(inside.every((k) => w.grad!.data[k] !== 7.5), `${label}: weight grad inside the prefix changed`);
  }
  const x3 = ms.tensor(randn32(gen, 2 * 3 * 4), [2, 3, 4], { requiresGrad: true });
  const w3 = ms.tensor(randn32(gen, 6 * 5), [6, 5], { requiresGrad: true });
  const b3 = ms.tensor(randn32(gen, 6), [6], { requiresGrad: true });
  checkGradients(
    t, 'x [2, 3, 4], weight [6, 5], outWidth 3', [x3, w3, b3],
    (xx, ww, bb) => ms.linear(xx, ww, bb, { outWidth: 3 }),
    ([xx, ww, bb]) => refLinear(xx, 4, ww, 5, bb, 3),
    { gen },
  );
});

t.test('gradients accumulate over two backward calls; only inputs that need them get one', async (t) => {
  const gen = rng(15);
  const x = ms.tensor(randn32(gen, 4 * 3), [4, 3], { requiresGrad: true });
  const w = ms.tensor(randn32(gen, 6 * 5), [6, 5], { requiresGrad: true });
  const b = ms.tensor(randn32(gen, 6), [6], { requiresGrad: true });
  const g = ms.tensor(randn32(gen, 4 * 4), [4, 4]);
  ms.linear(x, w, b, { outWidth: 4 }).backward(g);
  const once = [x.grad!.data.slice(), w.grad!.data.slice(), b.grad!.data.slice()];
  ms.linear(x, w, b, { outWidth: 4 }).backward(g);
  const twice = [x.grad!.data, w.grad!.data, b.grad!.data];
  ['x', 'weight', 'bias'].forEach((name, i) => {
    assertClose(t, twice[i], once[i].map((v) => 2 * v), `${name} grad doubled`);
  });
  // x without requiresGrad: no .grad, the weight still gets one.
  const xc = ms.tensor(randn32(gen, 4 * 3), [4, 3]);
  const w2 = ms.tensor(randn32(gen, 6 * 5), [6, 5], { requiresGrad: true });
  const bc = ms.tensor(randn32(gen, 6), [6]);
  ms.sum(ms.linear(xc, w2, bc, { outWidth: 2 })).backward();
  t.equal(xc.grad, null, 'x without requiresGrad gets no grad');
  t.equal(bc.grad, null, 'bias without requiresGrad gets no grad');
  t.not(w2.grad, null, 'weight gets a grad');
  // Nothing requires grad: no graph.
  const y = ms.linear(xc, ms.tensor(w2.data, [6, 5]), null);
  t.equal(y.requiresGrad, false, 'no input requires grad: the output does not either');
  t.equal(y.gradFn, null, 'and records nothing');
});

t.test('bad input throws TypeError / RangeError starting with "linear:"', async (t) => {
  const x = ms.randn([3, 5], { seed: 1 });
  const w = ms.randn([7, 5], { seed: 2 });
  const b = ms.randn([7], { seed: 3 });
  const W = '[7, 5]';
  assertOpError(t, () => ms.linear(ms.randn([3, 6], { seed: 4 }), w, b), RangeError, 'linear', ['x', '[3, 6]', W], 'inWidth 6 > inFull 5');
  for (const outWidth of [0, 8, -1, 1.5, NaN, Infinity]) {
    assertOpError(t, () => ms.linear(x, w, b, { outWidth }), RangeError, 'linear', ['outWidth', String(outWidth), W], `outWidth ${outWidth}`);
  }
  assertOpError(t, () => ms.linear(x, w, b, { outWidth: '3' as unknown as number }), TypeError, 'linear', ['outWidth'], 'outWidth a string');
  assertOpError(t, () => ms.linear(x, ms.randn([35], { seed: 5 }), b), RangeError, 'linear', ['weight', '[35]'], 'weight 1-D');
  assertOpError(t, () => ms.linear(x, ms.randn([7, 5, 1], { seed: 5 }), b), RangeError, 'linear', ['weight', '[7, 5, 1]'], 'weight 3-D');
  assertOpError(t, () => ms.linear(x, w, ms.randn([6], { seed: 6 })), RangeError, 'linear', ['bias', '[6]', W], 'bias too short');
  assertOpError(t, () => ms.linear(x, w, ms.randn([8], { seed: 6 })), RangeError, 'linear', ['bias', '[8]', W], 'bias too long');
  assertOpError(t, () => ms.linear(x, w, ms.randn([1, 7], { seed: 6 })), RangeError, 'linear', ['bias', '[1, 7]', W], 'bias 2-D');
  assertOpError(t, () => ms.linear(ms.randn([5], { seed: 7 }), w, b), RangeError, 'linear', ['x', '[5]'], 'x 1-D');
  assertOpError(t, () => ms.linear(ms.zeros([3, 0]), w, b), RangeError, 'linear', ['x', '[3, 0]', W], 'x with 0 features');
  const notTensors: [string, unknown][] = [['a number', 3], ['an array', [[1, 2, 3, 4, 5]]], ['a Float32Array', new Float32Array(15)], ['null', null], ['a string', 'x']];
  for (const [what, v] of notTensors) {
    assertOpError(t, () => ms.linear(v as ms.Tensor, w, b), TypeError, 'linear', ['x'], `x ${what}`);
    if (v !== null) assertOpError(t, () => ms.linear(x, v as ms.Tensor, b), TypeError, 'linear', ['weight'], `weight ${what}`);
    if (v !== null) assertOpError(t, () => ms.linear(x, w, v as ms.Tensor), TypeError, 'linear', ['bias'], `bias ${what}`);
  }
  assertOpError(t, () => ms.linear(x, null as unknown as ms.Tensor, b), TypeError, 'linear', ['weight'], 'weight null');
  assertOpError(t, () => ms.linear(x, w, b, 3 as unknown as ms.LinearOptions), TypeError, 'linear', ['options'], 'options a number');
  t.doesNotThrow(() => ms.linear(x, w, undefined as unknown as null), 'bias undefined means no bias');
});
