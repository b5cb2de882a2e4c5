// Text data for language models: a character vocabulary, ids and back, the 90/10 split, and
// batches of windows whose labels are the next characters; seeded, resumable, and refusing
// what does not fit by name.
import t from 'tap';
import * as ms from '../../src/index.js';

const TEXT = 'the quick brown fox jumps over the lazy dog.\n'.repeat(20);

t.test('a vocabulary of the text\'s characters; ids and back; the split', async (t) => {
  t.same(ms.data.charVocabulary('banana'), ['a', 'b', 'n']);
  t.same(ms.data.charVocabulary('a😀b'), ['a', 'b', '😀'], 'whole code points');
  const ds = ms.data.textDataset(TEXT, { name: 'fox' });
  t.equal(ds.ids.length, TEXT.length);
  t.equal(ms.data.decodeText(ds.ids, ds.vocabulary), TEXT, 'decodes to the text');
  const { train, valid } = ms.data.splitText(ds);
  t.equal(train.ids.length + valid.ids.length, TEXT.length);
  t.equal(valid.ids.length, Math.round(TEXT.length * 0.1));
  t.equal(train.name, 'fox-train');
  t.throws(() => ms.data.textDataset('abc!', { vocabulary: ['a', 'b', 'c'] }), /character "!" at position 3 is not in the vocabulary of 3 tokens/);
  t.throws(() => ms.data.decodeText([0, 5], ['a']), /ids\[1\] = 5 is not in the vocabulary of 1 tokens/);
  t.throws(() => ms.data.splitText(ds, 1), /validation must be a fraction in \(0, 1\)/);
});

t.test('TextLoader: windows and their next characters, seeded and resumable; evaluation covers the text in order', async (t) => {
  const ds = ms.data.textDataset(TEXT);
  const loader = new ms.data.TextLoader(ds, { context: 16, batchSize: 4, shuffle: true, batchesPerEpoch: 3, seed: 7 });
  const first = [...loader];
  t.equal(first.length, 3);
  for (const { x, y } of first) {
    t.same(x.shape, [4, 16]);
    t.equal(y.length, 64);
    for (let r = 0; r < 4; r++) for (let j = 0; j < 15; j++) t.equal(y[r * 16 + j], x.data[r * 16 + j + 1], 'the label is the next input');
  }
  const state = loader.stateDict();
  const second = [...loader];
  const again = new ms.data.TextLoader(ds, { context: 16, batchSize: 4, shuffle: true, batchesPerEpoch: 3, seed: 1 });
  again.loadStateDict(state);
  t.same([...again].map((b) => [...b.y]), second.map((b) => [...b.y]), 'a loader resumed from a state gives the same batches');
  const evalLoader = new ms.data.TextLoader(ds, { context: 16, batchSize: 5 });
  const windows = Math.floor((TEXT.length - 1) / 16);
  const batches = [...evalLoader];
  t.equal(batches.reduce((n, b) => n + b.x.shape[0], 0), windows, 'every whole window once');
  t.equal(evalLoader.tokens, windows * 16);
  t.same([...batches[0].x.data.subarray(0, 16)], [...ds.ids.subarray(0, 16)], 'in order from the start');
  t.throws(() => new ms.data.TextLoader(ms.data.textDataset('abc'), { context: 8, batchSize: 1 }), /holds 3 tokens, too few for one window of 8/);
  t.throws(() => new ms.data.TextLoader(ds, { context: 0, batchSize: 1 }), /context must be a positive integer, got 0/);
  t.throws(() => new ms.data.TextLoader(ds, { context: 4, batchSize: 1, shuffle: true, batchesPerEpoch: 0 }), /batchesPerEpoch must be a positive integer/);
});
