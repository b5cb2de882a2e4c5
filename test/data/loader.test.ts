// DataLoader: batching, drop-last, seeded shuffling, resumable state,
// augmentation (zero-padded random crop, horizontal flip) checked pixel by
// pixel; the built-in digits; sample / take / pixelStats / standardize.
import t from 'tap';
import * as ms from '../../src/index.js';
import { throwsWith } from '../helpers/files.js';
import { assertClose } from '../helpers/reference.js';

/** n images of `shape` whose pixel p of image i is i * 1000 + p; label i mod classes. */
function coded(n: number, shape: [number, number, number] = [1, 2, 3], classes = 10): ms.data.Dataset {
  const size = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(n * size);
  for (let i = 0; i < n; i++) for (let p = 0; p < size; p++) images[i * size + p] = i * 1000 + p;
  return ms.data.makeDataset('coded', images, Int32Array.from({ length: n }, (_, i) => i % classes), shape, classes);
}

/** The image ids of a batch of coded images (pixel 0 / 1000), checking each image is intact. */
function ids(b: ms.data.Batch, size: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < b.x.shape[0]; r++) {
    const id = b.x.data[r * size] / 1000;
    for (let p = 0; p < size; p++) if (b.x.data[r * size + p] !== id * 1000 + p) throw new Error(`batch row ${r} is not an intact image`);
    out.push(id);
  }
  return out;
}

function epochIds(loader: ms.data.DataLoader): number[][] {
  const size = loader.dataset.shape[0] * loader.dataset.shape[1] * loader.dataset.shape[2];
  return [...loader].map((b) => ids(b, size));
}

t.test('batching: sizes, the last partial batch, dropLast', async (t) => {
  const ds = coded(10);
  const loader = new ms.data.DataLoader(ds, { batchSize: 4 });
  t.equal(loader.length, 3, 'ceil(10 / 4) batches');
  const batches = [...loader];
  t.same(batches.map((b) => b.x.shape), [[4, 1, 2, 3], [4, 1, 2, 3], [2, 1, 2, 3]], 'x shapes [N, C, H, W], last one partial');
  t.same(batches.map((b) => b.y.length), [4, 4, 2], 'label counts');
  t.ok(batches.every((b) => b.y instanceof Int32Array), 'y is an Int32Array');
  t.same(batches.flatMap((b) => ids(b, 6)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'no shuffle: dataset order');
  t.same(batches.flatMap((b) => [...b.y]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'labels follow their images');
  const drop = new ms.data.DataLoader(ds, { batchSize: 4, dropLast: true });
  t.equal(drop.length, 2, 'dropLast: floor(10 / 4)');
  t.same(epochIds(drop), [[0, 1, 2, 3], [4, 5, 6, 7]], 'dropLast drops the partial batch');
  t.same(epochIds(new ms.data.DataLoader(ds, { batchSize: 5, dropLast: true })).map((b) => b.length), [5, 5], 'exact division with dropLast');
  t.same(epochIds(new ms.data.DataLoader(ds, { batchSize: 16 })), [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], 'batch larger than the dataset');
  t.same(epochIds(new ms.data.DataLoader(ds, { batchSize: 16, dropLast: true })), [], 'and dropped with dropLast');
  t.same(epochIds(new ms.data.DataLoader(ds, { batchSize: 1 })).length, 10, 'batch size 1');
  // Batches own their memory: changing one does not touch the dataset or later epochs.
  const first = [...loader][0];
  first.x.data.fill(-1);
  t.equal(ds.images[0], 0, 'the dataset is not aliased by a batch');
  t.same(epochIds(loader)[0], [0, 1, 2, 3], 'the next epoch is intact');
  for (const bs of [0, -1, 1.5, NaN, undefined]) {
    throwsWith(t, () => new ms.data.DataLoader(ds, { batchSize: bs as number }), RangeError, 'DataLoader:', ['batchSize'], `batchSize ${bs} refused`);
  }
  throwsWith(t, () => new ms.data.DataLoader(ds, { batchSize: 2, cropPadding: -1 }), RangeError, 'DataLoader:', ['cropPadding'], 'negative cropPadding refused');
  throwsWith(t, () => new ms.data.DataLoader(ds, { batchSize: 2, cropPadding: 0.5 }), RangeError, 'DataLoader:', ['cropPadding'], 'fractional cropPadding refused');
});

t.test('seeded shuffle: a permutation, reproducible, different per epoch and per seed', async (t) => {
  const ds = coded(37);
  const make = (seed: number): ms.data.DataLoader => new ms.data.DataLoader(ds, { batchSize: 8, shuffle: true, seed });
  const a = make(42);
  const epochsA = [0, 1, 2].map(() => epochIds(a).flat());
  const sorted = Array.from({ length: 37 }, (_, i) => i);
  for (const [e, order] of epochsA.entries()) t.same([...order].sort((p, q) => p - q), sorted, `epoch ${e + 1} is a permutation`);
  t.notSame(epochsA[0], sorted, 'actually shuffled');
  t.notSame(epochsA[0], epochsA[1], 'epochs 1 and 2 differ');
  t.notSame(epochsA[1], epochsA[2], 'epochs 2 and 3 differ');
  const b = make(42);
  const epochsB = [0, 1, 2].map(() => epochIds(b).flat());
  t.same(epochsB, epochsA, 'the same seed gives the same orders');
  const c = make(43);
  t.notSame(epochIds(c).flat(), epochsA[0], 'another seed gives another order');
  // Labels travel with their images.
  const d = make(7);
  let labelsOk = true;
  for (const batch of d) ids(batch, 6).forEach((id, r) => (labelsOk &&= batch.y[r] === id % 10));
  t.ok(labelsOk, 'labels follow their shuffled images');
  // Roughly uniform: over many epochs, each position sees many different images.
  const e = new ms.data.DataLoader(coded(5), { batchSize: 5, shuffle: true, seed: 3 });
  const firstSeen = new Set<number>();
  for (let k = 0; k < 40; k++) firstSeen.add(epochIds(e)[0][0]);
  t.equal(firstSeen.size, 5, 'every image comes first in some epoch');
});

t.test('stateDict / loadStateDict reproduce the next epoch exactly', async (t) => {
  const ds = coded(23);
  const opts = { batchSize: 5, shuffle: true, seed: 11, cropPadding: 1, horizontalFlip: true };
  const a = new ms.data.DataLoader(ds, opts);
  t.equal([...a].length, 5, 'epoch 1: five batches');
  t.equal([...a].length, 5, 'epoch 2: five batches');
  const state = a.stateDict();
  t.equal(state.epoch, 2, 'two epochs started');
  const json = JSON.parse(JSON.stringify(state)) as ms.data.LoaderState;
  const nextA = [...a];
  const b = new ms.data.DataLoader(ds, { ...opts, seed: 999 });
  b.loadStateDict(json);
  t.equal(b.epoch, 2, 'epoch restored');
  const nextB = [...b];
  t.equal(nextB.length, nextA.length, 'same number of batches');
  let same = nextA.length === nextB.length;
  nextA.forEach((batch, i) => {
    same &&= batch.x.data.every((v, k) => Object.is(v, nextB[i].x.data[k])) && batch.y.every((v, k) => v === nextB[i].y[k]);
  });
  t.ok(same, 'identical batches (order and augmentation) after restoring from a JSON round trip');
  t.equal(b.epoch, 3, 'epoch counter advanced');
  // And the epoch after that too.
  const after = [...a];
  const afterB = [...b];
  t.ok(after.every((batch, i) => batch.x.data.every((v, k) => v === afterB[i].x.data[k])), 'the following epoch matches as well');
});

/** A candidate for an augmented image: shift (dy, dx) with zero fill, optionally mirrored first. */
function shifted(src: Float32Array, [c, h, w]: readonly number[], dy: number, dx: number, flip: boolean): Float32Array {
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const si = i + dy;
        const sj = (flip ? w - 1 - j : j) + dx;
        out[(ch * h + i) * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? src[(ch * h + si) * w + sj] : 0;
      }
    }
  }
  return out;
}

/** Which of the candidates each batch row equals exactly (-1 when none). */
function classify(x: ms.Tensor, candidates: Float32Array[]): number[] {
  const size = candidates[0].length;
  const out: number[] = [];
  for (let r = 0; r < x.shape[0]; r++) {
    const row = x.data.subarray(r * size, (r + 1) * size);
    out.push(candidates.findIndex((cand) => cand.every((v, k) => v === row[k])));
  }
  return out;
}

/** n copies of one image. */
function copies(image: number[], shape: [number, number, number], n: number): ms.data.Dataset {
  const images = new Float32Array(n * image.length);
  for (let i = 0; i < n; i++) images.set(image, i * image.length);
  return ms.data.makeDataset('copies', images, new Int32Array(n), shape, 1);
}

t.test('cropPadding: shifts with zero fill, exact pixels', async (t) => {
  // A 3 x 3 image 1..9: hand-written expectations for two shifts.
  const img = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const ds = copies(img, [1, 3, 3], 300);
  const loader = new ms.data.DataLoader(ds, { batchSize: 300, cropPadding: 1, seed: 5 });
  const [batch] = [...loader];
  const rows: number[][] = [];
  for (let r = 0; r < 300; r++) rows.push([...batch.x.data.subarray(r * 9, r * 9 + 9)]);
  const has = (arr: number[]): boolean => rows.some((row) => row.every((v, k) => v === arr[k]));
  t.ok(has([1, 2, 3, 4, 5, 6, 7, 8, 9]), 'the unshifted image occurs');
  t.ok(has([5, 6, 0, 8, 9, 0, 0, 0, 0]), 'crop at the bottom-right of the padded image: content moves up-left, zeros enter');
  t.ok(has([0, 0, 0, 0, 1, 2, 0, 4, 5]), 'crop at the top-left: content moves down-right');
  t.ok(has([0, 0, 0, 1, 2, 3, 4, 5, 6]), 'a vertical-only shift');
  t.ok(has([2, 3, 0, 5, 6, 0, 8, 9, 0]), 'a horizontal-only shift');
  const src = Float32Array.from(img);
  const candidates: Float32Array[] = [];
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) candidates.push(shifted(src, [1, 3, 3], dy, dx, false));
  const kinds = classify(batch.x, candidates);
  t.ok(kinds.every((k) => k >= 0), 'every augmented image is one of the 9 zero-filled shifts');
  t.equal(new Set(kinds).size, 9, 'all 9 shifts occur');
  t.same([...ds.images.subarray(0, 9)], img, 'the dataset is not modified');

  // Several channels share one shift; a non-square image; padding 2.
  const shape: [number, number, number] = [2, 3, 4];
  const multi = Array.from({ length: 24 }, (_, p) => 1 + p);
  const big = new ms.data.DataLoader(copies(multi, shape, 400), { batchSize: 100, cropPadding: 2, seed: 6 });
  const cands: Float32Array[] = [];
  for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) cands.push(shifted(Float32Array.from(multi), shape, dy, dx, false));
  const seen = new Set<number>();
  let allMatch = true;
  for (const b of big) {
    t.same(b.x.shape, [100, 2, 3, 4], 'augmented batch keeps the image shape');
    for (const k of classify(b.x, cands)) {
      if (k < 0) allMatch = false;
      seen.add(k);
    }
  }
  t.ok(allMatch, 'two channels, 3 x 4, padding 2: every image is a whole-image shift (same for both channels)');
  t.equal(seen.size, 25, 'all 25 shifts occur');
  // Padding larger than the image: a shift can empty it entirely.
  const huge = new ms.data.DataLoader(copies([1, 2, 3, 4], [1, 2, 2], 200), { batchSize: 200, cropPadding: 3, seed: 1 });
  const [hb] = [...huge];
  const hc: Float32Array[] = [];
  for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) hc.push(shifted(Float32Array.from([1, 2, 3, 4]), [1, 2, 2], dy, dx, false));
  t.ok(classify(hb.x, hc).every((k) => k >= 0), 'padding 3 on a 2 x 2 image: shifts with zero fill');
  t.ok([...Array(200).keys()].some((r) => hb.x.data.subarray(r * 4, r * 4 + 4).every((v) => v === 0)), 'some images are shifted out completely');
});

t.test('horizontalFlip mirrors left-right, about half the time', async (t) => {
  const img = [1, 2, 3, 4, 5, 6];
  const ds = copies(img, [1, 2, 3], 200);
  const [batch] = [...new ms.data.DataLoader(ds, { batchSize: 200, horizontalFlip: true, seed: 9 })];
  const kinds = classify(batch.x, [Float32Array.from(img), Float32Array.from([3, 2, 1, 6, 5, 4])]);
  t.ok(kinds.every((k) => k >= 0), 'every image is either unchanged or mirrored row by row');
  const flipped = kinds.filter((k) => k === 1).length;
  t.ok(flipped > 60 && flipped < 140, `about half are mirrored (${flipped} of 200)`);
  // Flip plus crop: mirrored or not, then shifted.
  const shape: [number, number, number] = [2, 2, 3];
  const two = Array.from({ length: 12 }, (_, p) => 1 + p);
  const [both] = [...new ms.data.DataLoader(copies(two, shape, 300), { batchSize: 300, horizontalFlip: true, cropPadding: 1, seed: 10 })];
  const cands: Float32Array[] = [];
  for (const flip of [false, true]) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) cands.push(shifted(Float32Array.from(two), shape, dy, dx, flip));
  const k2 = classify(both.x, cands);
  t.ok(k2.every((k) => k >= 0), 'flip + crop: each image is a shift of the image or of its mirror');
  t.ok(k2.some((k) => k >= 9) && k2.some((k) => k < 9 && k >= 0), 'both mirrored and unmirrored occur');
  t.same([...ds.images.subarray(0, 6)], img, 'the dataset is not modified');
});

t.test('the built-in digits', async (t) => {
  const train = await ms.data.readDigits('train');
  const test = await ms.data.readDigits('test');
  t.equal(train.length, 8004, '8004 training digits');
  t.equal(test.length, 1996, '1996 test digits');
  for (const ds of [train, test]) {
    t.same(ds.shape, [1, 28, 28], `${ds.name}: [1, 28, 28]`);
    t.equal(ds.classes, 10);
    t.equal(ds.images.length, ds.length * 784);
    let min = Infinity;
    let max = -Infinity;
    for (const v of ds.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    t.ok(min >= 0 && max <= 1 && max > 0.5, `${ds.name}: values in [0, 1] (min ${min}, max ${max})`);
    const counts = new Array<number>(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    t.ok(counts.every((c) => c > ds.length / 20), `${ds.name}: every class present (${counts.join(' ')})`);
  }
  const viaRegistry = await ms.data.loadDataset('mnist', 'test');
  t.equal(viaRegistry.length, 1996, "loadDataset('mnist', 'test') without a data dir is the built-in test digits");
  t.same(viaRegistry.labels, test.labels);
});

t.test('sample, take, pixelStats, standardize', async (t) => {
  const ds = coded(20, [1, 2, 2]);
  const s = ms.data.sample(ds, 8, 1);
  t.equal(s.length, 8, 'sample size');
  const sIds = ids({ x: ms.tensor(s.images, [8, 1, 2, 2]), y: s.labels }, 4);
  t.equal(new Set(sIds).size, 8, 'drawn without replacement');
  t.ok(sIds.every((id, i) => s.labels[i] === id % 10), 'labels follow their images');
  t.same(ids({ x: ms.tensor(ms.data.sample(ds, 8, 1).images, [8, 1, 2, 2]), y: s.labels }, 4), sIds, 'the same seed gives the same sample');
  t.notSame(ids({ x: ms.tensor(ms.data.sample(ds, 8, 2).images, [8, 1, 2, 2]), y: s.labels }, 4), sIds, 'another seed gives another sample');
  s.images.fill(-5);
  t.equal(ds.images[4], 1000, 'a sample is a copy');
  const all = ms.data.sample(ds, 100, 3);
  t.equal(all.length, 20, 'count above the length is clamped');
  t.same([...all.labels].length, 20);
  t.equal(ms.data.sample(ds, 0, 3).length, 0, 'count 0');

  const first = ms.data.take(ds, 5);
  t.equal(first.length, 5);
  t.same([...first.labels], [0, 1, 2, 3, 4], 'the first five');
  t.equal(first.images.length, 20);
  t.equal(first.images.buffer, ds.images.buffer, 'take is a view');
  t.equal(ms.data.take(ds, 50).length, 20, 'take clamps to the length');
  t.equal(ms.data.take(ds, -3).length, 0, 'negative take is empty');
  t.equal(ms.data.take(ds, 2.7).length, 2, 'fractional count floored');

  const gen = new ms.Generator(4);
  const px = new Float32Array(3 * 16);
  for (let i = 0; i < px.length; i++) px[i] = gen.uniform();
  const img = ms.data.makeDataset('u', px, new Int32Array(3), [1, 4, 4], 1);
  const stats = ms.data.pixelStats(img);
  let mean = 0;
  for (const v of px) mean += v;
  mean /= px.length;
  let vr = 0;
  for (const v of px) vr += (v - mean) ** 2;
  const std = Math.sqrt(vr / px.length);
  assertClose(t, [stats.mean, stats.std], [mean, std], 'pixelStats: population mean and std', { rtol: 1e-9, atol: 1e-12 });
  const z = ms.data.standardize(img, stats);
  t.not(z.images, img.images, 'standardize returns a copy');
  t.equal(img.images[0], px[0], 'the source is unchanged');
  assertClose(t, z.images, [...px].map((v) => (v - mean) / std), 'standardize: (x - mean) / std', { rtol: 1e-5, atol: 1e-6 });
  const zs = ms.data.pixelStats(z);
  assertClose(t, [zs.mean, zs.std], [0, 1], 'standardized data has mean 0 and std 1', { rtol: 1e-5, atol: 1e-6 });
  t.same([z.length, z.shape, z.classes], [img.length, img.shape, img.classes], 'metadata kept');
  const constant = ms.data.pixelStats(ms.data.makeDataset('c', new Float32Array(8).fill(0.5), new Int32Array(2), [1, 2, 2], 1));
  t.ok(constant.std > 0 && Number.isFinite(1 / constant.std), 'a constant dataset gets a positive std (no division by zero)');
  throwsWith(t, () => ms.data.makeDataset('bad', new Float32Array(5), new Int32Array(2), [1, 2, 2], 2), RangeError, 'bad:', ['5'], 'makeDataset refuses a size mismatch');
  throwsWith(t, () => ms.data.makeDataset('bad', new Float32Array(4), Int32Array.of(3), [1, 2, 2], 2), RangeError, 'bad:', ['label 3'], 'makeDataset refuses a label out of range');
});
