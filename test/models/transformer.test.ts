// models.transformer: a GPT-style language model whose heads and feed-forward units slice.
// A compact slice equals the full model at that rate, training plans replay the eager steps
// exactly (token ids are read from each new batch), the file keeps the vocabulary, costs fall
// about linearly in r, and bad options and inputs are refused by name.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { plannedStep, releaseTrainingPlans } from '../../src/slicing/train-plan.js';
import { slicedStep } from '../../src/slicing/step.js';
import { assertClose } from '../helpers/reference.js';

const VOCAB = ['a', 'b', 'c', 'd', 'e', ' ', '\n'];

function tiny(seed = 5): ms.models.Transformer {
  ms.manualSeed(seed);
  return ms.models.transformer({ vocab: VOCAB.length, dModel: 16, heads: 4, layers: 2, ffn: 32, ffnGroups: 4, context: 8, vocabulary: VOCAB });
}

/** A batch of token ids [batch, T] and the next-token labels (batch x T). */
function batch(n: number, T: number, seed: number): { x: ms.Tensor; y: Int32Array } {
  const gen = new ms.Generator(seed);
  const seq = Array.from({ length: n }, () => Array.from({ length: T + 1 }, () => gen.int(VOCAB.length)));
  const x = ms.tensor(seq.flatMap((s) => s.slice(0, T)), [n, T]);
  const y = Int32Array.from(seq.flatMap((s) => s.slice(1)));
  return { x, y };
}

t.test('logits [batch, T, vocab]; causal: a position does not see later tokens', async (t) => {
  const model = tiny();
  model.eval();
  const { x } = batch(2, 6, 1);
  const y = ms.noGrad(() => model.forward(x));
  t.same(y.shape, [2, 6, VOCAB.length]);
  const changed = x.clone();
  changed.data[5] = (changed.data[5] + 1) % VOCAB.length; // the last token of sequence 0
  const z = ms.noGrad(() => model.forward(changed));
  assertClose(t, z.data.subarray(0, 5 * VOCAB.length), y.data.subarray(0, 5 * VOCAB.length), 'positions 0..4 of sequence 0 unchanged', { atol: 1e-6 });
  t.not(z.data[5 * VOCAB.length], y.data[5 * VOCAB.length], 'position 5 changed');
  const shorter = ms.noGrad(() => model.forward(ms.tensor(Array.from(x.data.subarray(0, 3)), [1, 3])));
  assertClose(t, shorter.data, y.data.subarray(0, 3 * VOCAB.length), 'a shorter sequence gives the same prefix logits', { atol: 1e-5 });
});

t.test('slice(r) equals setSliceRate(r); the costs fall about linearly in r', async (t) => {
  const model = tiny();
  model.eval();
  const { x } = batch(3, 8, 2);
  for (const rate of [0.5, 0.25]) {
    model.setSliceRate(rate);
    const want = ms.noGrad(() => model.forward(x));
    model.setSliceRate(1);
    const compact = model.slice(rate);
    const got = ms.noGrad(() => compact.eval().forward(x));
    assertClose(t, got.data, want.data, `rate ${rate}`, { atol: 1e-5 });
    t.ok(compact.numParameters() < model.numParameters(), `rate ${rate}: the compact copy is smaller`);
    t.same(compact.vocabulary, VOCAB, 'the vocabulary travels with the slice');
    t.same((compact.blocks.at(0) as ms.nn.TransformerBlock).attention.query.outFeatures, rate * 16, 'only the active heads are kept');
  }
  const table = ms.costs(model, [8], [1, 0.5, 0.25]);
  const blockMacs = (rate: number): number => table.find((r) => r.rate === rate)!.macs - 8 * 16 * VOCAB.length;
  // Everything in the blocks scales with r; the head does not (d_model stays full).
  t.ok(Math.abs(blockMacs(0.5) / blockMacs(1) - 0.5) < 0.02, `block MACs at 0.5: ${blockMacs(0.5) / blockMacs(1)} of rate 1`);
  t.ok(Math.abs(blockMacs(0.25) / blockMacs(1) - 0.25) < 0.02, `block MACs at 0.25: ${blockMacs(0.25) / blockMacs(1)} of rate 1`);
});

t.test('training: planned steps give the eager steps\' gradients, a new batch\'s ids included', async (t) => {
  const eager = tiny();
  const planned = tiny();
  t.teardown(() => releaseTrainingPlans(planned));
  const rates = [1, 0.5, 0.25];
  for (let step = 0; step < 3; step++) {
    const { x, y } = batch(4, 8, 10 + step);
    eager.zeroGrad();
    planned.zeroGrad();
    const a = slicedStep(eager, x, y, rates, { distill: true });
    const b = plannedStep(planned, x, y, rates, { distill: true }).results;
    for (let i = 0; i < rates.length; i++) {
      t.ok(Math.abs(a[i].loss - b[i].loss) < 1e-5, `step ${step} rate ${rates[i]}: loss ${b[i].loss} = ${a[i].loss}`);
      t.equal(b[i].correct, a[i].correct, `step ${step} rate ${rates[i]}: correct predictions`);
    }
    const pe = eager.namedParameters();
    const pp = new Map(planned.namedParameters());
    let worst = 0;
    for (const [name, p] of pe) {
      const q = pp.get(name)!;
      for (let i = 0; i < p.size; i++) worst = Math.max(worst, Math.abs(p.grad!.data[i] - q.grad!.data[i]));
    }
    t.ok(worst < 1e-5, `step ${step}: largest gradient difference ${worst}`);
  }
});

t.test('fit trains a tiny language model; the loss falls at every rate', async (t) => {
  const model = tiny(7);
  // A repeating text: the next character is predictable from the one before.
  const text = 'abcde abcde\nabcde abcde\n'.repeat(20);
  const ids = Int32Array.from(text, (c) => VOCAB.indexOf(c));
  const batches = Array.from({ length: 8 }, (_, b) => {
    const x: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < 8; i++) {
      const at = (b * 37 + i * 11) % (ids.length - 9);
      x.push(...ids.subarray(at, at + 8));
      y.push(...ids.subarray(at + 1, at + 9));
    }
    return { x: ms.tensor(x, [8, 8]), y: Int32Array.from(y) };
  });
  const before = await ms.evaluate(model, batches, { rates: [1, 0.5, 0.25] });
  await ms.fit(model, batches, { epochs: 6, optimizer: new ms.optim.AdamW(model.parameters(), { lr: 3e-3 }), rates: [1, 0.5, 0.25], schedule: 'random_min_max', distill: true, seed: 1 });
  const after = await ms.evaluate(model, batches, { rates: [1, 0.5, 0.25] });
  for (let i = 0; i < 3; i++) t.ok(after[i].loss < before[i].loss - 0.5, `rate ${after[i].rate}: loss ${before[i].loss.toFixed(3)} -> ${after[i].loss.toFixed(3)} nats per token`);
  t.same(model.inputShape, [8]);
});

t.test('save and load keep the weights, the config and the vocabulary', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ms-transformer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const model = tiny();
  model.eval();
  const path = join(dir, 'lm.safetensors');
  await ms.save(model, path);
  const loaded = (await ms.load(path)) as ms.models.Transformer;
  t.ok(loaded instanceof ms.models.Transformer);
  t.same(loaded.vocabulary, VOCAB);
  t.same(loaded.config, model.config);
  const { x } = batch(2, 5, 3);
  assertClose(t, ms.noGrad(() => loaded.eval().forward(x)).data, ms.noGrad(() => model.forward(x)).data, 'the same logits', { atol: 0 });
  const half = model.slice(0.5);
  await ms.save(half, path);
  const halfLoaded = (await ms.load(path)) as ms.models.Transformer;
  assertClose(t, ms.noGrad(() => halfLoaded.eval().forward(x)).data, ms.noGrad(() => half.eval().forward(x)).data, 'a saved slice', { atol: 0 });
});

t.test('bad options and inputs are refused by name', async (t) => {
  t.throws(() => ms.models.transformer({ vocab: 7, dModel: 10, heads: 4, layers: 1, context: 4 }), /heads 4 must divide dModel 10/);
  t.throws(() => ms.models.transformer({ vocab: 7, dModel: 8, heads: 2, layers: 0, context: 4 }), /layers must be a positive integer, got 0/);
  t.throws(() => ms.models.transformer({ vocab: 3, dModel: 8, heads: 2, layers: 1, context: 4, vocabulary: ['a', 'b'] }), /vocabulary holds 2 tokens but vocab is 3/);
  t.throws(() => ms.models.transformer({ vocab: 2, dModel: 8, heads: 2, layers: 1, context: 4, vocabulary: ['a', 'a'] }), /vocabulary\[1\] = "a" appears twice/);
  const model = tiny();
  t.throws(() => model.forward(ms.zeros([2, 9])), /1 <= T <= context 8, got shape \[2, 9\]/);
  t.throws(() => model.forward(ms.zeros([2, 3, 1])), /token ids \[batch, T\]/);
  t.throws(() => model.forward(ms.tensor([0, 7], [1, 2])), /x\[1\] = 7 is not a token id \(an integer in \[0, 7\)\)/);
  t.throws(() => model.forward(ms.tensor([0, 1.5], [1, 2])), /x\[1\] = 1.5 is not a token id/);
});
