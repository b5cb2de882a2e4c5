// ms.save / ms.load: models rebuilt from their files give identical outputs
// (MLP, ResNet-20 with GroupNorm, ResNet-20 with switchable BatchNorm, a
// compact sliced model), keep trainedRates / config / preprocess; foreign or
// inconsistent files are refused; the write is atomic.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { rejectsWith } from '../helpers/files.js';
import { assertBitwise, randn32, rng, type Asserter } from '../helpers/reference.js';

/** Every parameter and buffer set to seeded random values (so nothing is at its default). */
function randomize(model: ms.nn.Module, seed: number): void {
  const gen = rng(seed);
  for (const [name, p] of [...model.namedParameters(), ...model.namedBuffers()]) {
    const v = randn32(gen, p.size, 0.3);
    // Running variances must stay positive.
    if (name.endsWith('running_var')) for (let i = 0; i < v.length; i++) v[i] = 0.5 + Math.abs(v[i]);
    p.data.set(v);
  }
}

function outputs(model: ms.nn.Module, x: ms.Tensor, rate: number): Float32Array {
  model.eval();
  model.setSliceRate(rate);
  return ms.noGrad(() => model.forward(x)).data.slice();
}

/** Loaded and original models agree: outputs at each rate bit for bit, config, trained rates, preprocess. */
function sameModel(t: Asserter & { same(a: unknown, b: unknown, m: string): boolean }, a: ms.nn.Module, b: ms.nn.Module, x: ms.Tensor, rates: number[], label: string): void {
  for (const r of rates) assertBitwise(t, outputs(b, x, r), outputs(a, x, r), `${label}: identical outputs at rate ${r}`);
  t.same(ms.modelRecord(b).config, ms.modelRecord(a).config, `${label}: same config`);
  t.same(ms.trainedRatesOf(b), ms.trainedRatesOf(a), `${label}: same trained rates`);
  t.same(ms.modelRecord(b).preprocess, ms.modelRecord(a).preprocess, `${label}: same preprocess`);
  t.same(Object.keys(b.stateDict()).sort(), Object.keys(a.stateDict()).sort(), `${label}: same state dict names`);
}

t.test('MLP: save / load round trip', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 12, hidden: [16, 8], classes: 3 });
  randomize(model, 1);
  ms.setTrainedRates(model, [1, 0.5, 0.25]);
  model.preprocess = { mean: 0.25, std: 0.5 };
  const path = join(dir, 'mlp.safetensors');
  await ms.save(model, path);
  const loaded = await ms.load(path);
  t.ok(loaded instanceof ms.models.Mlp, 'an Mlp');
  const x = ms.tensor(randn32(rng(2), 4 * 12), [4, 12]);
  sameModel(t, model, loaded, x, [1, 0.75, 0.5, 0.25, 0.1], 'mlp');
  t.same(loaded.trainedRates, [1, 0.5, 0.25], 'trainedRates as set');
  t.same(loaded.preprocess, { mean: 0.25, std: 0.5 }, 'preprocess kept');
  // Independent copies: changing the loaded model leaves the original alone.
  loaded.parameters()[0].data[0] += 1;
  t.not(model.parameters()[0].data[0], loaded.parameters()[0].data[0], 'the loaded model owns its weights');
  // A model without explicit trained rates gets the default ones back.
  const plain = ms.models.mlp({ inputs: 4, hidden: [8], classes: 2, sliceGroups: 4 });
  await ms.save(plain, join(dir, 'plain.safetensors'));
  const plainBack = await ms.load(join(dir, 'plain.safetensors'));
  t.same(ms.trainedRatesOf(plainBack), ms.trainedRatesOf(plain), 'default trained rates');
  t.same(plainBack.config, plain.config, 'sliceGroups in the config');
  t.equal(plainBack.preprocess, undefined, 'no preprocess when none was set');
  // preprocess given to save() wins; loadFile reports it.
  await ms.save(plain, join(dir, 'pre.safetensors'), { preprocess: { mean: 0.1307, std: 0.3081 } });
  const file = await ms.loadFile(join(dir, 'pre.safetensors'));
  t.same(file.preprocess, { mean: 0.1307, std: 0.3081 }, 'loadFile reports the preprocess');
  t.same(file.model.preprocess, { mean: 0.1307, std: 0.3081 }, 'and sets it on the model');
});

t.test('ResNet-20 with GroupNorm: round trip', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.resnet({ depth: 20, classes: 5 });
  randomize(model, 3);
  ms.setTrainedRates(model, [1, 0.75, 0.5, 0.25]);
  const path = join(dir, 'resnet.safetensors');
  await ms.save(model, path);
  const loaded = await ms.load(path);
  t.ok(loaded instanceof ms.models.ResNet, 'a ResNet');
  const x = ms.tensor(randn32(rng(4), 2 * 3 * 8 * 8), [2, 3, 8, 8]);
  sameModel(t, model, loaded, x, [1, 0.5, 0.25, 0.6], 'resnet20-gn');
});

t.test('ResNet-20 with switchable BatchNorm: round trip keeps every rate\'s statistics', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.resnet({ depth: 20, classes: 4, norm: 'batch' });
  ms.useSwitchableBatchNorm(model, [1, 0.5]);
  ms.setTrainedRates(model, [1, 0.5]);
  randomize(model, 5);
  // Give each rate its own running statistics through training-mode forwards.
  const gen = rng(6);
  model.train();
  for (const r of [1, 0.5]) {
    model.setSliceRate(r);
    for (let k = 0; k < 2; k++) ms.noGrad(() => model.forward(ms.tensor(randn32(gen, 4 * 3 * 8 * 8), [4, 3, 8, 8])));
  }
  const x = ms.tensor(randn32(gen, 2 * 3 * 8 * 8), [2, 3, 8, 8]);
  const names = Object.keys(model.stateDict());
  t.ok(names.some((n) => n.includes('rate_0_5')), 'the state dict holds the rate-0.5 statistics');
  const path = join(dir, 'resnet-bn.safetensors');
  await ms.save(model, path);
  const loaded = await ms.load(path);
  // 0.75 is untrained (uses rate 1's statistics), 0.25 uses rate 0.5's.
  sameModel(t, model, loaded, x, [1, 0.5, 0.75, 0.25], 'resnet20-bn');
  t.same(loaded.trainedRates, [1, 0.5], 'trained rates [1, 0.5]');
  // A calibrated rate survives the round trip too.
  await ms.calibrateBatchNorm(model, [{ x: ms.tensor(randn32(gen, 4 * 3 * 8 * 8), [4, 3, 8, 8]) }], [0.75]);
  await ms.save(model, path);
  const calibrated = await ms.load(path);
  sameModel(t, model, calibrated, x, [0.75, 1, 0.5], 'resnet20-bn calibrated at 0.75');
});

t.test('compact model from model.slice(0.5): round trip', async (t) => {
  const dir = t.testdir({});
  const full = ms.models.resnet({ depth: 20, classes: 3 });
  randomize(full, 7);
  const compact = full.slice(0.5);
  const x = ms.tensor(randn32(rng(8), 2 * 3 * 8 * 8), [2, 3, 8, 8]);
  assertBitwise(t, outputs(compact, x, 1), outputs(full, x, 0.5), 'slice(0.5) matches the full model at 0.5 (sanity)');
  const path = join(dir, 'compact.safetensors');
  await ms.save(compact, path);
  const loaded = await ms.load(path);
  t.same((loaded.config as { sliceChain?: number[] }).sliceChain, [0.5], 'the config records the slice');
  t.equal(loaded.numParameters(), compact.numParameters(), 'the compact parameter count');
  t.ok(loaded.numParameters() < full.numParameters() / 2, 'smaller than the full model');
  sameModel(t, compact, loaded, x, [1, 0.5], 'compact resnet');
  // An MLP sliced twice.
  const mlp = ms.models.mlp({ inputs: 6, hidden: [16, 16], classes: 2 });
  randomize(mlp, 9);
  const twice = mlp.slice(0.5).slice(0.5);
  await ms.save(twice, join(dir, 'twice.safetensors'));
  const back = await ms.load(join(dir, 'twice.safetensors'));
  const xm = ms.tensor(randn32(rng(10), 3 * 6), [3, 6]);
  sameModel(t, twice, back, xm, [1], 'mlp sliced twice');
  assertBitwise(t, outputs(back, xm, 1), outputs(mlp, xm, 0.25), 'equals the original MLP at 0.25');
});

t.test('checkpoint extras: extra tensors and training state', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 3, hidden: [4], classes: 2 });
  const path = join(dir, 'ckpt.safetensors');
  const buf = ms.tensor([1, 2, 3, 4], [4]);
  await ms.save(model, path, { extraTensors: { 'optimizer.0.exp_avg': buf }, training: { epoch: 3, note: 'x' } });
  const f = await ms.loadFile(path);
  t.same(Object.keys(f.extraTensors), ['optimizer.0.exp_avg'], 'extra tensors returned apart from the model');
  t.same([...f.extraTensors['optimizer.0.exp_avg'].data], [1, 2, 3, 4]);
  t.same(f.training, { epoch: 3, note: 'x' }, 'training state');
  await rejectsWith(t, ms.save(model, path, { extraTensors: { '0.weight': buf } }), RangeError, 'save:', ['0.weight'], 'an extra tensor clashing with a model tensor');
});

/** Rewrites a saved file with changed tensors and/or metadata. */
async function rewrite(path: string, out: string, edit: (f: ms.SafetensorsFile) => void): Promise<void> {
  const f = ms.parseSafetensors(await readFile(path));
  edit(f);
  await writeFile(out, ms.serializeSafetensors(f.tensors, f.metadata));
}

t.test('inconsistent or foreign files are refused', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 5, hidden: [8], classes: 3 });
  const path = join(dir, 'good.safetensors');
  await ms.save(model, path);
  const p = (name: string): string => join(dir, name);

  await rewrite(path, p('shapes.safetensors'), (f) => {
    f.metadata.config = JSON.stringify({ ...JSON.parse(f.metadata.config), hidden: [6] });
  });
  await rejectsWith(t, ms.load(p('shapes.safetensors')), RangeError, 'load:', ['shapes.safetensors', '0.weight'], 'tensor shapes not matching the config');
  await rewrite(path, p('inputs.safetensors'), (f) => {
    f.metadata.config = JSON.stringify({ ...JSON.parse(f.metadata.config), inputs: 7 });
  });
  await rejectsWith(t, ms.load(p('inputs.safetensors')), RangeError, 'load:', ['0.weight'], 'input width not matching the config');
  await rewrite(path, p('missing.safetensors'), (f) => {
    delete f.tensors['0.bias'];
  });
  await rejectsWith(t, ms.load(p('missing.safetensors')), RangeError, 'load:', ['0.bias'], 'a model tensor missing from the file');
  await rewrite(path, p('stray.safetensors'), (f) => {
    f.tensors['ghost.weight'] = ms.zeros([2]);
  });
  await rejectsWith(t, ms.load(p('stray.safetensors')), RangeError, 'load:', ['ghost.weight'], 'a tensor the model does not have');
  await writeFile(p('foreign.safetensors'), ms.serializeSafetensors({ 'encoder.weight': ms.zeros([2, 2]) }));
  await rejectsWith(t, ms.load(p('foreign.safetensors')), RangeError, 'load:', ['not a modelslice file', 'metadata.format'], 'a safetensors file without metadata.format');
  await writeFile(p('other.safetensors'), ms.serializeSafetensors({ w: ms.zeros([1]) }, { format: 'pt' }));
  await rejectsWith(t, ms.load(p('other.safetensors')), RangeError, 'load:', ['not a modelslice file', '"pt"'], 'another format');
  await rewrite(path, p('badjson.safetensors'), (f) => {
    f.metadata.config = '{"kind": "mlp",';
  });
  await rejectsWith(t, ms.load(p('badjson.safetensors')), RangeError, 'load:', ['config'], 'malformed config JSON');
  await rewrite(path, p('kind.safetensors'), (f) => {
    f.metadata.config = JSON.stringify({ kind: 'lstm' });
  });
  await rejectsWith(t, ms.load(p('kind.safetensors')), RangeError, 'load:', ['config', 'lstm'], 'an unknown model kind');
  await writeFile(p('garbage.safetensors'), Buffer.from('this is not a model file at all'));
  await rejectsWith(t, ms.load(p('garbage.safetensors')), RangeError, 'load:', ['garbage.safetensors'], 'a file that is not safetensors');
  await rejectsWith(t, ms.load(p('nothing-here.safetensors')), Error, 'load:', ['nothing-here.safetensors', 'ENOENT'], 'a missing file');
  await rejectsWith(t, ms.load(''), TypeError, 'load:', ['path'], 'an empty path');
  // The original still loads.
  t.ok((await ms.load(path)) instanceof ms.models.Mlp, 'the untouched file loads');
});

t.test('save is atomic and validates its arguments', async (t) => {
  const root = t.testdir({ main: {}, empty: {}, busy: { 'm.safetensors': {} } });
  const dir = join(root, 'main');
  const model = ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 });
  const path = join(dir, 'm.safetensors');
  await ms.save(model, path);
  t.same(await readdir(dir), ['m.safetensors'], 'after save only the target file is in the folder');
  // Overwriting replaces the content, still without leftovers.
  const other = ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 });
  randomize(other, 11);
  await ms.save(other, path);
  t.same(await readdir(dir), ['m.safetensors'], 'an overwrite leaves no temp file');
  const x = ms.tensor(randn32(rng(12), 2 * 4), [2, 4]);
  assertBitwise(t, outputs(await ms.load(path), x, 1), outputs(other, x, 1), 'the overwrite holds the new model');

  // The target directory does not exist: save rejects and creates nothing.
  const sub = join(root, 'empty');
  await rejectsWith(t, ms.save(model, join(sub, 'missing', 'm.safetensors')), Error, [''], [], 'save into a missing directory rejects');
  t.same(await readdir(sub), [], 'nothing left behind');
  // The target is a directory: the rename fails and the temp file is removed.
  const busy = join(root, 'busy');
  await rejectsWith(t, ms.save(model, join(busy, 'm.safetensors')), Error, [''], [], 'save over a directory rejects');
  t.same(await readdir(busy), ['m.safetensors'], 'no temp file left after a failed rename');

  const plain = new ms.nn.Linear(3, 2);
  await rejectsWith(t, ms.save(plain, join(dir, 'plain.safetensors')), TypeError, 'save:', ['config'], 'a plain module without config');
  await rejectsWith(t, ms.save(model, ''), TypeError, 'save:', ['path'], 'an empty path');
  await rejectsWith(t, ms.save(model, 42 as never), TypeError, 'save:', ['path'], 'a non-string path');
  t.same((await readdir(dir)).sort(), ['m.safetensors'], 'refused saves wrote nothing');
  await mkdir(join(dir, 'nested'));
  await ms.save(model, join(dir, 'nested', 'n.safetensors'));
  t.same(await readdir(join(dir, 'nested')), ['n.safetensors'], 'save into an existing sub-folder');
});

t.test('a forged config declaring a model far larger than the file is refused before building', async (t) => {
  const { parseSafetensors, serializeSafetensors } = await import('../../src/io/safetensors.js');
  const { leastParameters } = await import('../../src/models/build.js');
  const dir = mkdtempSync(join(tmpdir(), 'ms-forged-'));
  try {
    const model = ms.models.mlp({ inputs: 4, hidden: [3], classes: 2 });
    const good = join(dir, 'good.safetensors');
    await ms.save(model, good);
    const { tensors, metadata } = parseSafetensors(readFileSync(good));
    const config = JSON.parse(metadata.config);
    const forged = join(dir, 'forged.safetensors');
    writeFileSync(forged, serializeSafetensors(tensors, { ...metadata, config: JSON.stringify({ ...config, hidden: [2 ** 20] }) }));
    await t.rejects(ms.load(forged), /load: .* declares a model of at least 6291456 parameters but holds only 23 values/);
    t.ok((await ms.load(good)) instanceof ms.nn.Module, 'the honest file still loads');
    // The bound holds for every built-in kind, and for compact sub-models.
    for (const m of [model, ms.models.resnet({ depth: 20, classes: 10 }), ms.models.resnet({ depth: 29, block: 'bottleneck', classes: 10, widen: 2 }), ms.models.vgg({ depth: 11, classes: 10 })]) {
      t.ok(leastParameters(m.config!) <= m.numParameters(), `${m.config!.kind}: the bound ${leastParameters(m.config!)} <= ${m.numParameters()}`);
    }
    const small = join(dir, 'small.safetensors');
    await ms.save(ms.models.resnet({ depth: 20, classes: 10 }).slice(0.25), small);
    t.ok((await ms.load(small)) instanceof ms.nn.Module, 'a compact sub-model at rate 0.25 loads');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('a batch-norm model with trained rates but one set of statistics loads back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bn-'));
  try {
    const model = ms.models.resnet({ depth: 8, classes: 3, norm: 'batch' });
    ms.setTrainedRates(model, [1, 0.5]);
    const file = join(dir, 'bn.safetensors');
    await ms.save(model, file);
    const back = await ms.load(file);
    t.same(ms.trainedRatesOf(back), [1, 0.5]);
    const x = ms.randn([2, 3, 8, 8], { seed: 1 });
    for (const rate of [1, 0.5]) {
      assertBitwise(t, ms.infer(back, x, { rate }).data, ms.infer(model, x, { rate }).data, `rate ${rate}: same outputs`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('the model record: built-in models show it, evaluate records accuracy, the file keeps it', async (t) => {
  const { parseSafetensors, serializeSafetensors } = await import('../../src/io/safetensors.js');
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 6, hidden: [8], classes: 3, sliceGroups: 4 });
  model.preprocess = { mean: 0.5, std: 2 };
  t.equal(ms.modelRecord(model).preprocess, model.preprocess, 'a property of a built-in model is its record');
  t.notOk('preprocess' in model.modules()[1], 'its layers carry no record');
  // A custom model shows it by extending nn.Model; any module has one through modelRecord.
  class Custom extends ms.nn.Model {
    readonly fc = this.registerModule('fc', new ms.nn.Linear(6, 3));
    forward(x: ms.Tensor): ms.Tensor {
      return this.fc.forward(x);
    }
  }
  const custom = new Custom();
  custom.inputShape = [6];
  t.same(ms.modelRecord(custom).inputShape, [6], 'nn.Model subclasses show the record too');
  t.same(ms.costs(custom).length, 4, 'and the library reads it (costs needs the input shape)');

  t.equal(model.accuracy, undefined, 'no accuracy before an evaluation');
  const gen = rng(5);
  const x = ms.tensor(randn32(gen, 20 * 6), [20, 6]);
  const y = Int32Array.from({ length: 20 }, (_, i) => i % 3);
  const rows = await ms.evaluate(model, [{ x, y }], { rates: [0.5, 1] });
  t.same(
    model.accuracy,
    [1, 0.5].map((rate) => ({ rate, accuracy: rows.find((r) => r.rate === rate)!.accuracy, examples: 20 })),
    'evaluate records accuracy per rate, widest first, with the examples it saw',
  );
  const path = join(dir, 'evaluated.safetensors');
  await ms.save(model, path);
  const back = await ms.load(path);
  t.same(back.accuracy, model.accuracy, 'the file keeps the accuracy table');
  t.same(back.slice(0.5).accuracy, undefined, 'a compact copy has not been evaluated');

  const { tensors, metadata } = parseSafetensors(readFileSync(path));
  for (const [accuracy, why] of [
    ['{}', /load: .* has unusable accuracy metadata: not a list/],
    ['[{"rate":1.5,"accuracy":0.5,"examples":3}]', /entry 0 has rate 1.5, not in \(0, 1\]/],
    ['[{"rate":1,"accuracy":2,"examples":3}]', /entry 0 has accuracy 2, not in \[0, 1\]/],
    ['[{"rate":1,"accuracy":0.5,"examples":-1}]', /entry 0 has examples -1, not a count/],
    ['[1', /load: .* has malformed accuracy metadata/],
  ] as const) {
    const forged = join(dir, 'forged.safetensors');
    writeFileSync(forged, serializeSafetensors(tensors, { ...metadata, accuracy }));
    await t.rejects(ms.load(forged), why, `refused: ${accuracy}`);
  }
});
