// The sliceable transformer block: heads and feed-forward units as slice groups. At rate r it
// equals the full block with the inactive heads' and units' weights zeroed (a prefix of the
// groups is a working smaller block), it is causal, and it trains at a narrow rate.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose } from '../helpers/reference.js';

function block(): ms.nn.TransformerBlock {
  ms.manualSeed(21);
  return new ms.nn.TransformerBlock({ dModel: 16, heads: 4, ffn: 32, ffnGroups: 4 });
}

/** Zeroes rows [from, rows) of a [rows, cols] weight (or entries of a bias). */
function zeroRows(w: ms.Tensor, from: number): void {
  const cols = w.rank === 2 ? w.shape[1] : 1;
  w.data.fill(0, from * cols);
}
function zeroCols(w: ms.Tensor, from: number): void {
  const [rows, cols] = w.shape;
  for (let r = 0; r < rows; r++) w.data.fill(0, r * cols + from, (r + 1) * cols);
}

t.test('a sliced block equals the full one with the inactive heads and units zeroed', async (t) => {
  const x = ms.randn([2, 5, 16], { seed: 3 });
  for (const [rate, heads, units] of [[0.5, 2, 16], [0.25, 1, 8], [0.75, 3, 24]] as const) {
    const sliced = block();
    sliced.setSliceRate(rate);
    const y = ms.noGrad(() => sliced.forward(x));
    t.same(y.shape, [2, 5, 16], `rate ${rate}: the residual stream stays 16 wide`);
    const full = block();
    const a = full.attention;
    for (const p of [a.query, a.key, a.value]) {
      zeroRows(p.weight, heads * 4);
      zeroRows(p.bias!, heads * 4);
    }
    zeroCols(a.output.weight, heads * 4);
    zeroRows(full.hidden.weight, units);
    zeroRows(full.hidden.bias!, units);
    zeroCols(full.project.weight, units);
    const ref = ms.noGrad(() => full.forward(x));
    assertClose(t, y.data, ref.data, `rate ${rate}: ${heads} of 4 heads, ${units} of 32 hidden units`, { rtol: 1e-5, atol: 1e-5 });
  }
});

t.test('causal: a later position does not change earlier outputs, at every rate', async (t) => {
  const m = block();
  const x = ms.randn([1, 6, 16], { seed: 4 });
  const x2 = ms.tensor(x.data.slice(), x.shape);
  for (let c = 0; c < 16; c++) x2.data[4 * 16 + c] += 1;
  for (const rate of [1, 0.5, 0.25]) {
    m.setSliceRate(rate);
    const [y, y2] = [x, x2].map((v) => ms.noGrad(() => m.forward(v)));
    t.same([...y2.data.subarray(0, 4 * 16)], [...y.data.subarray(0, 4 * 16)], `rate ${rate}: positions 0-3 unchanged`);
    t.notSame([...y2.data.subarray(4 * 16, 5 * 16)], [...y.data.subarray(4 * 16, 5 * 16)], 'position 4 changed');
  }
});

t.test('trains at a narrow rate: SGD lowers a loss, and only the active groups move', async (t) => {
  const m = block();
  m.setSliceRate(0.25);
  const x = ms.randn([4, 6, 16], { seed: 5 });
  // The block must learn to cancel its residual input: mean of the output squared.
  const loss = () => {
    const y = m.forward(x);
    return ms.mean(ms.mul(y, y));
  };
  const opt = new ms.optim.SGD(m.parameters(), { lr: 0.1 });
  const before = m.attention.query.weight.data.slice();
  const first = loss().data[0];
  for (let i = 0; i < 40; i++) {
    opt.zeroGrad();
    loss().backward();
    opt.step();
  }
  const last = loss().data[0];
  t.ok(last < first * 0.9, `loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  const q = m.attention.query.weight.data;
  t.ok(q.subarray(0, 4 * 16).some((v, i) => v !== before[i]), 'the active head\'s query rows moved');
  t.same([...q.subarray(4 * 16)], [...before.subarray(4 * 16)], 'the inactive heads\' rows did not');
});

t.test('bad shapes are refused by name', async (t) => {
  t.throws(() => new ms.nn.CausalSelfAttention(10, 4), /CausalSelfAttention: heads 4 must divide dModel 10/);
  t.throws(() => new ms.nn.TransformerBlock({ dModel: 8, heads: 2, ffn: 0 }), /TransformerBlock: ffn must be a positive integer/);
});
