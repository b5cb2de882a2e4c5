// attention: multi-head scaled dot-product attention (causal and not) against a float64
// reference, gradients of q, k and v by central differences in float64, heads as a prefix
// (the first h heads' columns alone give those heads' outputs), and bad arguments.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose, assertOpError, checkGradients, randn32, rng } from '../helpers/reference.js';

/** Queries are the last T of Tk positions (Tk = T unless given). */
function refAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, batch: number, T: number, width: number, heads: number, causal: boolean, Tk = T): Float64Array {
  const d = width / heads;
  const out = new Float64Array(batch * T * width);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        const n = causal ? Tk - T + i + 1 : Tk;
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(b * T + i) * width + h * d + c] * k[(b * Tk + j) * width + h * d + c];
          s.push(dot / Math.sqrt(d));
        }
        const max = Math.max(...s);
        const e = s.map((x) => Math.exp(x - max));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let c = 0; c < d; c++) {
          let o = 0;
          for (let j = 0; j < n; j++) o += (e[j] / sum) * v[(b * Tk + j) * width + h * d + c];
          out[(b * T + i) * width + h * d + c] = o;
        }
      }
  return out;
}

t.test('attention: values, causal and not, at several head counts and lengths', async (t) => {
  const gen = rng(191);
  for (const [batch, T, heads, d] of [[1, 1, 1, 1], [2, 5, 2, 3], [1, 9, 4, 8], [3, 4, 1, 5], [2, 17, 3, 2]]) {
    const width = heads * d;
    const shape = [batch, T, width];
    const [q, k, v] = [0, 1, 2].map(() => ms.tensor(randn32(gen, batch * T * width), shape));
    for (const causal of [true, false]) {
      const y = ms.attention(q, k, v, { heads, causal });
      t.same(y.shape, shape);
      assertClose(t, y.data, refAttention(q.data, k.data, v.data, batch, T, width, heads, causal), `[${shape}] heads ${heads} causal ${causal}`, { rtol: 1e-5, atol: 1e-6 });
    }
  }
  // Causal: the first position sees only itself.
  const q = ms.tensor([1, 2, 3, 4], [1, 2, 2]);
  const v = ms.tensor([5, 6, 7, 8], [1, 2, 2]);
  t.same([...ms.attention(q, q, v, { heads: 1 }).data.subarray(0, 2)], [5, 6], 'position 0 attends to itself alone');
});

t.test('attention: the first h heads of the columns give those heads\' outputs (a prefix of heads is a working slice)', async (t) => {
  const gen = rng(192);
  const [batch, T, heads, d] = [2, 6, 4, 3];
  const width = heads * d;
  const [q, k, v] = [0, 1, 2].map(() => randn32(gen, batch * T * width));
  const full = ms.attention(ms.tensor(q, [batch, T, width]), ms.tensor(k, [batch, T, width]), ms.tensor(v, [batch, T, width]), { heads });
  const active = 2;
  const prefix = (x: Float32Array) => {
    const out = new Float32Array(batch * T * active * d);
    for (let r = 0; r < batch * T; r++) out.set(x.subarray(r * width, r * width + active * d), r * active * d);
    return ms.tensor(out, [batch, T, active * d]);
  };
  const sliced = ms.attention(prefix(q), prefix(k), prefix(v), { heads: active });
  let same = true;
  for (let r = 0; r < batch * T; r++) for (let c = 0; c < active * d; c++) same &&= sliced.data[r * active * d + c] === full.data[r * width + c];
  t.ok(same, 'bit for bit');
});

t.test('attention: gradients of q, k and v by central differences in float64', async (t) => {
  const gen = rng(193);
  for (const [batch, T, heads, d, causal] of [[2, 4, 2, 3, true], [1, 5, 1, 4, false], [1, 3, 3, 2, true]] as const) {
    const width = heads * d;
    const shape = [batch, T, width];
    const [q, k, v] = [0, 1, 2].map(() => ms.tensor(randn32(gen, batch * T * width), shape, { requiresGrad: true }));
    checkGradients(t, `attention [${shape}] heads ${heads} causal ${causal}`, [q, k, v], (a, b, c) => ms.attention(a, b, c, { heads, causal }), ([a, b, c]) => refAttention(a, b, c, batch, T, width, heads, causal), { gen, eps: 1e-3 });
  }
});

t.test('attention: queries after cached keys (Tq < Tk) attend to every earlier key, values and gradients', async (t) => {
  const gen = rng(197);
  for (const [batch, T, Tk, heads, d, causal] of [[2, 1, 4, 2, 3, true], [1, 2, 5, 1, 4, true], [1, 2, 3, 2, 2, false]] as const) {
    const width = heads * d;
    const q = ms.tensor(randn32(gen, batch * T * width), [batch, T, width], { requiresGrad: true });
    const [k, v] = [0, 1].map(() => ms.tensor(randn32(gen, batch * Tk * width), [batch, Tk, width], { requiresGrad: true }));
    assertClose(t, ms.attention(q, k, v, { heads, causal }).data, refAttention(q.data, k.data, v.data, batch, T, width, heads, causal, Tk), `[${batch}, ${T}] after ${Tk} keys, causal ${causal}`, { atol: 1e-5 });
    checkGradients(t, `attention q [${batch}, ${T}] k [${batch}, ${Tk}] causal ${causal}`, [q, k, v], (a, b, c) => ms.attention(a, b, c, { heads, causal }), ([a, b, c]) => refAttention(a, b, c, batch, T, width, heads, causal, Tk), { gen, eps: 1e-3 });
  }
  // The last query of a full causal pass is one query after the other keys.
  const full = [0, 1, 2].map(() => ms.tensor(randn32(gen, 5 * 4), [1, 5, 4]));
  const all = ms.attention(full[0], full[1], full[2], { heads: 2 });
  const last = ms.attention(ms.tensor(full[0].data.subarray(16), [1, 1, 4]), full[1], full[2], { heads: 2 });
  assertClose(t, last.data, all.data.subarray(16), 'the last row of a full pass', { atol: 1e-6 });
});

t.test('attention refuses bad arguments, naming them and the shapes', async (t) => {
  const x = ms.zeros([2, 3, 6]);
  assertOpError(t, () => ms.attention(x, ms.zeros([2, 3, 4]), x, { heads: 2 }), RangeError, 'attention', [/k must be \[batch, Tk, width\] with q's batch and width \[2, 3, 6\] and k's Tk, got \[2, 3, 4\]/], 'k of another width');
  assertOpError(t, () => ms.attention(x, ms.zeros([2, 4, 6]), x, { heads: 2 }), RangeError, 'attention', [/v must be .* got \[2, 3, 6\]/], 'v of another length than k');
  assertOpError(t, () => ms.attention(x, ms.zeros([2, 2, 6]), ms.zeros([2, 2, 6]), { heads: 2 }), RangeError, 'attention', [/at least as many keys as queries, got k \[2, 2, 6\] for q \[2, 3, 6\]/], 'fewer keys than causal queries');
  assertOpError(t, () => ms.attention(x, x, x, { heads: 4 }), RangeError, 'attention', [/heads 4 must divide the last axis of q \[2, 3, 6\]/], 'heads that do not divide');
  assertOpError(t, () => ms.attention(ms.zeros([3, 6]), x, x, { heads: 2 }), RangeError, 'attention', [/q/, /\[batch, Tq, heads \* headDim\]/], 'q of rank 2');
  assertOpError(t, () => ms.attention(x, x, x, { heads: 0 }), RangeError, 'attention', [/heads/], 'no heads');
  assertOpError(t, () => ms.attention(x, x, x, { heads: 2, causal: 'yes' as never }), TypeError, 'attention', [/causal must be a boolean/], 'a causal that is not a boolean');
});

t.test('attention on long sequences (the threaded causal softmax) matches the reference', async (t) => {
  const gen = rng(211);
  const [T, heads, d] = [200, 1, 8];
  const [q, k, v] = [0, 1, 2].map(() => ms.tensor(randn32(gen, T * heads * d), [1, T, heads * d]));
  assertClose(t, ms.attention(q, k, v, { heads }).data, refAttention(q.data, k.data, v.data, 1, T, heads * d, heads, true), 'T = 200', { atol: 1e-5, rtol: 1e-4 });
});

t.test('attention(x, x, x): one tensor as queries, keys and values gets the sum of the three gradients', async (t) => {
  const gen = rng(223);
  const x = ms.tensor(randn32(gen, 2 * 4 * 6), [2, 4, 6], { requiresGrad: true });
  checkGradients(t, 'attention(x, x, x)', [x], (a) => ms.attention(a, a, a, { heads: 2 }), ([a]) => refAttention(a, a, a, 2, 4, 6, 2, true), { gen, eps: 1e-3 });
});
