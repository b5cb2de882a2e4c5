import t from 'tap';
import * as ms from '../../src/index.js';

function model(): ms.models.Mlp {
  ms.manualSeed(1);
  return ms.models.mlp({ inputs: 20, hidden: [64, 32], classes: 5 });
}

t.test('selectRate({budgetMacs}): the largest trained rate whose MACs fit', async (t) => {
  const m = model();
  const table = ms.costs(m, [20], [1, 0.75, 0.5, 0.25]);
  t.ok(table[0].macs > table[1].macs && table[1].macs > table[2].macs && table[2].macs > table[3].macs, 'costs fall with the rate');
  for (const row of table) {
    t.equal(ms.selectRate(m, { budgetMacs: row.macs }), row.rate, `exactly ${row.macs} MACs -> ${row.rate}`);
  }
  for (let i = 0; i < table.length - 1; i++) {
    t.equal(ms.selectRate(m, { budgetMacs: table[i].macs - 1 }), table[i + 1].rate, `just below ${table[i].macs} -> ${table[i + 1].rate}`);
  }
  t.equal(ms.selectRate(m, { budgetMacs: Number.MAX_SAFE_INTEGER }), 1, 'a huge budget: full width');
  t.equal(ms.selectRate(m, { budgetMacs: table[3].macs - 1 }), 0.25, 'nothing fits: the narrowest');
  t.equal(ms.selectRate(m, { budgetMacs: 0 }), 0.25, 'zero budget: the narrowest');
  t.equal(ms.selectRate(m, { budgetMacs: table[1].macs, inputShape: [20] }), 0.75, 'with an explicit input shape');

  // Only trained rates are candidates.
  ms.setTrainedRates(m, [0.5, 1]);
  t.equal(ms.selectRate(m, { budgetMacs: table[1].macs }), 0.5, '0.75 is not trained');
  t.equal(ms.selectRate(m, { budgetMacs: 1 }), 0.5, 'the narrowest trained rate');
  const c = ms.models.resnet({ depth: 8, classes: 10 });
  ms.setTrainedRates(c, [1, 0.5]);
  const ct = ms.costs(c, [3, 8, 8], [1, 0.5]);
  t.equal(ms.selectRate(c, { budgetMacs: ct[0].macs - 1, inputShape: [3, 8, 8] }), 0.5, 'a ResNet with an input shape');

  t.throws(() => ms.selectRate(m, { budgetMacs: -1 }), { name: 'RangeError', message: /^selectRate: budgetMacs/ });
  t.throws(() => ms.selectRate(m, { budgetMacs: NaN }), /^selectRate: budgetMacs/);
  t.throws(() => ms.selectRate(m, {} as never), { name: 'TypeError', message: /^selectRate: budget must be/ });
  t.throws(() => ms.selectRate(m, null as never), /^selectRate: budget must be/);
});

t.test('selectRate({budgetMs}) uses the latency profile', async (t) => {
  const m = model();
  t.throws(() => ms.selectRate(m, { budgetMs: 5 }), { name: 'RangeError', message: /profileLatency/ }, 'no profile: says how to make one');
  m.latencyProfile = { byBatch: { 1: { 1: 10, 0.75: 6, 0.5: 3, 0.25: 1 } } };
  const cases: [number, number][] = [
    [100, 1],
    [10, 1],
    [9.99, 0.75],
    [6, 0.75],
    [5.9, 0.5],
    [3, 0.5],
    [2.5, 0.25],
    [1, 0.25],
    [0.5, 0.25],
    [0, 0.25],
  ];
  for (const [budgetMs, rate] of cases) t.equal(ms.selectRate(m, { budgetMs }), rate, `${budgetMs} ms -> ${rate}`);
  t.equal(ms.selectRate(m, { budgetMs: 7, batchSize: 1 }), 0.75);
  t.throws(() => ms.selectRate(m, { budgetMs: 7, batchSize: 8 }), /batch size 8.*profileLatency/, 'a batch size that was not profiled');
  t.throws(() => ms.selectRate(m, { budgetMs: -1 }), /^selectRate: budgetMs/);
  // Rates missing from the profile are skipped.
  m.latencyProfile = { byBatch: { 1: { 1: 10, 0.5: 3, 0.25: 1 } } };
  t.equal(ms.selectRate(m, { budgetMs: 7 }), 0.5, 'a rate without a measurement is not chosen');
});

t.test('profileLatency measures every rate and batch size and restores the model', async (t) => {
  const m = model();
  ms.setTrainedRates(m, [1, 0.5, 0.25]);
  m.train();
  m.setSliceRate(0.5);
  const profile = ms.profileLatency(m, { inputShape: [20], batchSizes: [1, 4], repeats: 3 });
  t.same(Object.keys(profile.byBatch).map(Number).sort((a, b) => a - b), [1, 4]);
  for (const b of [1, 4]) {
    t.same(Object.keys(profile.byBatch[b]).map(Number).sort((a, c) => c - a), [1, 0.5, 0.25], `batch ${b}: the trained rates`);
    for (const v of Object.values(profile.byBatch[b])) t.ok(Number.isFinite(v) && v > 0, `batch ${b}: ${v} ms`);
  }
  t.equal(m.latencyProfile, profile, 'kept with the model');
  t.equal(m.sliceRate, 0.5, 'rate restored');
  t.ok(m.modules().every((x) => x.training), 'training mode restored');
  // selectRate now works from it.
  const r = ms.selectRate(m, { budgetMs: Infinity, batchSize: 4 });
  t.equal(r, 1);
  t.equal(ms.selectRate(m, { budgetMs: 0, batchSize: 4 }), 0.25);

  m.eval();
  const p2 = ms.profileLatency(m, { inputShape: [20], rates: [0.75], repeats: 1 });
  t.same(Object.keys(p2.byBatch), ['1']);
  t.same(Object.keys(p2.byBatch[1]), ['0.75']);
  t.ok(m.modules().every((x) => !x.training), 'eval mode restored');
  t.equal(m.sliceRate, 0.5);

  t.throws(() => ms.profileLatency(m, { inputShape: [21] }), 'a wrong input shape throws');
  t.equal(m.sliceRate, 0.5, 'rate restored after an error');
  t.ok(m.modules().every((x) => !x.training), 'mode restored after an error');
});

t.test('setTrainedRates / trainedRatesOf', async (t) => {
  const m = model();
  t.same(ms.trainedRatesOf(m), [1, 0.75, 0.5, 0.25], 'default rates');
  ms.setTrainedRates(m, [0.25, 1, 0.5]);
  t.same(ms.trainedRatesOf(m), [1, 0.5, 0.25], 'sorted widest first');
  t.same(m.trainedRates, [1, 0.5, 0.25]);
  for (const r of [0, -1, 1.5, NaN, Infinity]) {
    t.throws(() => ms.setTrainedRates(m, [1, r]), { name: 'RangeError', message: /^setTrainedRates: slice rate/ }, String(r));
  }
  t.throws(() => ms.setTrainedRates(m, [1, '0.5' as never]), { name: 'TypeError', message: /^setTrainedRates/ });
  t.throws(() => ms.setTrainedRates(m, []), { message: /^setTrainedRates: / }, 'empty');
  t.throws(() => ms.setTrainedRates(m, null as never), { message: /^setTrainedRates: / }, 'not an array');
  t.same(ms.trainedRatesOf(m), [1, 0.5, 0.25], 'unchanged after refused calls');
  ms.setTrainedRates(m, [0.5, 0.5, 1]);
  t.same(ms.trainedRatesOf(m), [1, 0.5], 'duplicates collapse');
});
