// IDX files (MNIST / Fashion-MNIST), raw and gzip-compressed: synthetic files
// written into a tap testdir, malformed files refused with clear errors, and
// the real Fashion-MNIST test split when it is installed.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import * as ms from '../../src/index.js';
import { rejectsWith, throwsWith } from '../helpers/files.js';

/** An IDX file: magic 0 0 type rank, big-endian u32 dims, then the bytes. */
function idx(dims: number[], values: ArrayLike<number>, options: { type?: number; magic?: [number, number] } = {}): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  const [m0, m1] = options.magic ?? [0, 0];
  head[0] = m0;
  head[1] = m1;
  head[2] = options.type ?? 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d >>> 0, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(Uint8Array.from(values))]);
}

/** N images of H x W with pixel (n, y, x) = (n * 37 + y * 11 + x * 5) mod 256 (the first two 255 and 0), and labels 3n mod 10. */
function synthetic(n: number, h: number, w: number): { images: Buffer; labels: Buffer; pixels: Uint8Array; labelValues: Uint8Array } {
  const pixels = new Uint8Array(n * h * w);
  for (let k = 0; k < n; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) pixels[(k * h + y) * w + x] = (k * 37 + y * 11 + x * 5) % 256;
  pixels[0] = 255; // the extremes appear
  pixels[1] = 0;
  const labelValues = Uint8Array.from({ length: n }, (_, k) => (k * 3) % 10);
  return { images: idx([n, h, w], pixels), labels: idx([n], labelValues), pixels, labelValues };
}

t.test('parseIdx reads dims and values of every rank 1-4', async (t) => {
  const one = ms.data.parseIdx(idx([3], [7, 8, 9]));
  t.same(one.dims, [3]);
  t.same([...one.values], [7, 8, 9]);
  const values = Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => (i * 7) % 256);
  const four = ms.data.parseIdx(idx([2, 3, 2, 2], values));
  t.same(four.dims, [2, 3, 2, 2]);
  t.same([...four.values], values);
  const empty = ms.data.parseIdx(idx([0, 28, 28], []));
  t.same(empty.dims, [0, 28, 28], 'zero images is a valid file');
  t.equal(empty.values.length, 0);
});

t.test('parseIdx refuses malformed buffers with RangeError "readIdx:"', async (t) => {
  const good = idx([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  throwsWith(t, () => ms.data.parseIdx(new Uint8Array(0)), RangeError, 'readIdx:', ['short'], 'empty buffer');
  throwsWith(t, () => ms.data.parseIdx(good.subarray(0, 3)), RangeError, 'readIdx:', ['short'], '3 bytes');
  throwsWith(t, () => ms.data.parseIdx(good.subarray(0, 9)), RangeError, 'readIdx:', ['truncated', 'header'], 'truncated inside the dims');
  throwsWith(t, () => ms.data.parseIdx(good.subarray(0, 15)), RangeError, 'readIdx:', ['truncated'], 'truncated one byte before the data');
  throwsWith(t, () => ms.data.parseIdx(idx([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8], { magic: [0x1f, 0x00] })), RangeError, 'readIdx:', ['magic'], 'wrong magic');
  throwsWith(t, () => ms.data.parseIdx(idx([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8], { magic: [0x00, 0x01] })), RangeError, 'readIdx:', ['magic'], 'wrong second magic byte');
  throwsWith(t, () => ms.data.parseIdx(idx([2], [1, 2, 3, 4, 5, 6, 7, 8], { type: 0x0d })), RangeError, 'readIdx:', ['0xd', 'type'], 'float type byte');
  throwsWith(t, () => ms.data.parseIdx(idx([2], [1, 2], { type: 0x09 })), RangeError, 'readIdx:', ['0x9'], 'signed byte type');
  throwsWith(t, () => ms.data.parseIdx(idx([], [1, 2])), RangeError, 'readIdx:', ['0 dimensions'], 'rank 0');
  throwsWith(t, () => ms.data.parseIdx(idx([1, 1, 1, 1, 1], [1])), RangeError, 'readIdx:', ['5 dimensions'], 'rank 5');
  throwsWith(t, () => ms.data.parseIdx(idx([2, 2, 2], [1, 2, 3, 4, 5, 6, 7])), RangeError, 'readIdx:', ['[2, 2, 2]', '8 values', 'holds 7'], 'one byte short of the declared dims');
  throwsWith(t, () => ms.data.parseIdx(idx([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9])), RangeError, 'readIdx:', ['holds 9'], 'one byte more than the declared dims');
  // Forged huge dims: refused from the header, nothing allocated from them.
  throwsWith(t, () => ms.data.parseIdx(idx([0xffffffff, 0xffffffff, 0xffffffff], [1, 2, 3])), RangeError, 'readIdx:', ['4294967295'], 'dims of 2^32 - 1');
  throwsWith(t, () => ms.data.parseIdx(idx([60000, 28, 28], [1, 2, 3])), RangeError, 'readIdx:', ['60000'], 'MNIST-sized header on 3 bytes');
  // A view into a bigger buffer works (byteOffset honoured).
  const padded = Buffer.concat([Buffer.from([9, 9, 9]), good]);
  const view = ms.data.parseIdx(padded.subarray(3));
  t.same(view.dims, [2, 2, 2], 'a subarray view parses');
  t.same([...view.values], [1, 2, 3, 4, 5, 6, 7, 8]);
});

t.test('readIdxDataset reads raw and gzip files, pixels scaled to [0, 1]', async (t) => {
  const { images, labels, pixels, labelValues } = synthetic(6, 4, 3);
  const dir = t.testdir({ 'img-raw': images, 'lab-raw': labels, 'img.gz': gzipSync(images), 'lab.gz': gzipSync(labels) });
  for (const [img, lab] of [['img-raw', 'lab-raw'], ['img.gz', 'lab.gz'], ['img.gz', 'lab-raw']]) {
    const ds = await ms.data.readIdxDataset(join(dir, img), join(dir, lab), 'synthetic');
    t.equal(ds.length, 6, `${img}: 6 images`);
    t.same(ds.shape, [1, 4, 3], `${img}: shape [1, H, W]`);
    t.equal(ds.classes, 10);
    t.equal(ds.name, 'synthetic');
    t.same([...ds.labels], [...labelValues], `${img}: labels`);
    t.ok(ds.labels instanceof Int32Array, 'labels are an Int32Array');
    t.ok(ds.images instanceof Float32Array && ds.images.length === 6 * 12, 'images are float32 NCHW');
    let exact = true;
    for (let i = 0; i < pixels.length; i++) if (ds.images[i] !== Math.fround(pixels[i] / 255)) exact = false;
    t.ok(exact, `${img}: every pixel is byte / 255`);
    t.ok(ds.images.some((v) => v === 1) && ds.images.some((v) => v === 0), `${img}: 255 maps to 1 and 0 to 0`);
  }
  // readIdxFile on a gzip file gives the same bytes.
  const raw = await ms.data.readIdxFile(join(dir, 'img.gz'));
  t.same(raw.dims, [6, 4, 3]);
  t.same([...raw.values], [...pixels], 'gzip file decompressed');
});

t.test("loadDataset('fashion-mnist', split, {dataDir}) finds IDX files by their standard names", async (t) => {
  const train = synthetic(5, 28, 28);
  const test = synthetic(3, 28, 28);
  const dir = t.testdir({
    'train-images-idx3-ubyte.gz': gzipSync(train.images),
    'train-labels-idx1-ubyte': train.labels,
    't10k-images-idx3-ubyte': test.images,
    't10k-labels-idx1-ubyte.gz': gzipSync(test.labels),
  });
  const tr = await ms.data.loadDataset('fashion-mnist', 'train', { dataDir: dir });
  t.equal(tr.length, 5, 'train split: 5 images');
  t.same(tr.shape, [1, 28, 28]);
  t.same([...tr.labels], [...train.labelValues]);
  t.equal(tr.images[1], Math.fround(train.pixels[1] / 255));
  const te = await ms.data.loadDataset('fashion-mnist', 'test', { dataDir: dir });
  t.equal(te.length, 3, 'test split (t10k-*): 3 images');
  t.same([...te.labels], [...test.labelValues]);
  const mn = await ms.data.loadDataset('mnist', 'test', { dataDir: dir });
  t.equal(mn.length, 3, 'mnist with a data dir reads the same IDX names');
});

t.test('malformed IDX files give clear errors, never a crash', async (t) => {
  const { images, labels } = synthetic(4, 5, 5);
  const other = synthetic(3, 5, 5);
  const garbageGz = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(40, 0x5a)]);
  const gz = gzipSync(images);
  const dir = t.testdir({
    good: { 'train-images-idx3-ubyte': images, 'train-labels-idx1-ubyte': labels },
    counts: { 'train-images-idx3-ubyte': images, 'train-labels-idx1-ubyte': other.labels },
    badgz: { 'train-images-idx3-ubyte.gz': garbageGz, 'train-labels-idx1-ubyte': labels },
    cutgz: { 'train-images-idx3-ubyte.gz': gz.subarray(0, gz.length >> 1), 'train-labels-idx1-ubyte': labels },
    header: { 'train-images-idx3-ubyte': images.subarray(0, 10), 'train-labels-idx1-ubyte': labels },
    magic: { 'train-images-idx3-ubyte': idx([4, 5, 5], new Uint8Array(100), { magic: [0x42, 0x4d] }), 'train-labels-idx1-ubyte': labels },
    type: { 'train-images-idx3-ubyte': idx([4, 5, 5], new Uint8Array(100), { type: 0x0b }), 'train-labels-idx1-ubyte': labels },
    dims: { 'train-images-idx3-ubyte': idx([4, 5, 6], new Uint8Array(100)), 'train-labels-idx1-ubyte': labels },
    huge: { 'train-images-idx3-ubyte': idx([0x7fffffff, 0x10000, 0x10000], new Uint8Array(100)), 'train-labels-idx1-ubyte': labels },
    swapped: { 'train-images-idx3-ubyte': labels, 'train-labels-idx1-ubyte': images },
    badlabel: { 'train-images-idx3-ubyte': images, 'train-labels-idx1-ubyte': idx([4], [1, 2, 10, 3]) },
    nolabels: { 'train-images-idx3-ubyte': images },
    empty: {},
  });
  const load = (sub: string): Promise<ms.data.Dataset> => ms.data.loadDataset('fashion-mnist', 'train', { dataDir: join(dir, sub) });
  const prefixes = ['readIdx:', 'loadDataset'];
  t.equal((await load('good')).length, 4, 'the well-formed folder loads');
  await rejectsWith(t, load('counts'), Error, prefixes, ['4 images', '3 labels'], 'images/labels count mismatch');
  await rejectsWith(t, load('badgz'), Error, prefixes, ['gzip'], 'invalid gzip');
  await rejectsWith(t, load('cutgz'), Error, prefixes, ['gzip'], 'truncated gzip');
  await rejectsWith(t, load('header'), Error, prefixes, ['truncated'], 'truncated header');
  await rejectsWith(t, load('magic'), Error, prefixes, ['magic'], 'wrong magic');
  await rejectsWith(t, load('type'), Error, prefixes, ['0xb'], 'wrong type byte');
  await rejectsWith(t, load('dims'), Error, prefixes, ['[4, 5, 6]', '120', '100'], 'declared dims do not match the size');
  await rejectsWith(t, load('huge'), Error, prefixes, ['2147483647'], 'forged huge dims');
  await rejectsWith(t, load('swapped'), Error, prefixes, ['expected [N, H, W]'], 'a labels file where the images belong');
  await rejectsWith(t, load('badlabel'), Error, prefixes, ['label 10'], 'a label outside the 10 classes');
  await rejectsWith(t, load('nolabels'), Error, prefixes, ['train-labels-idx1-ubyte'], 'missing labels file');
  await rejectsWith(t, load('empty'), Error, prefixes, ['train-images-idx3-ubyte'], 'missing images file');
  await rejectsWith(t, load('no-such-folder'), Error, prefixes, ['train-images-idx3-ubyte'], 'missing folder');
  await rejectsWith(t, ms.data.readIdxFile(join(dir, 'empty', 'nothing')), Error, ['readIdx:'], ['cannot read', 'ENOENT'], 'readIdxFile of a missing file');
  await rejectsWith(t, ms.data.readIdxDataset(join(dir, 'good', 'train-images-idx3-ubyte'), join(dir, 'nope'), 'x'), Error, ['readIdx:'], ['nope'], 'readIdxDataset with a missing labels file');
  await rejectsWith(t, ms.data.loadDataset('imagenet' as never, 'train'), RangeError, ['loadDataset:'], ['imagenet'], 'unknown dataset name');
  await rejectsWith(t, ms.data.loadDataset('cifar10', 'train'), RangeError, ['loadDataset:'], ['data'], 'cifar10 without a data dir');
});

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const fashionSkip = existsSync(FASHION_DIR) ? false : `${FASHION_DIR} is not installed (apt-get install dataset-fashion-mnist)`;

t.test('the real Fashion-MNIST test split', { skip: fashionSkip }, async (t) => {
  const dir = FASHION_DIR;
  const ds = await ms.data.loadDataset('fashion-mnist', 'test', { dataDir: dir });
  t.equal(ds.length, 10000, '10,000 test images');
  t.same(ds.shape, [1, 28, 28], 'images of 1x28x28');
  t.equal(ds.classes, 10, '10 classes');
  t.equal(ds.images.length, 10000 * 784);
  const counts = new Array<number>(10).fill(0);
  for (const l of ds.labels) counts[l]++;
  t.same(counts, new Array(10).fill(1000), 'labels balanced, 1000 per class');
  let min = Infinity;
  let max = -Infinity;
  for (const v of ds.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  t.ok(min === 0 && max === 1, `pixels span [0, 1] (min ${min}, max ${max})`);
  const { mean } = ms.data.pixelStats(ds);
  t.ok(mean > 0.2 && mean < 0.4, `mean pixel ${mean.toFixed(4)} is Fashion-MNIST's (about 0.286)`);
});
