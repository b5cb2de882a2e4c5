// CIFAR-10 binary batches written by the test: records of a label byte and
// 3072 channel-major pixel bytes; values, labels, order and layout round-trip;
// malformed folders are refused with "readCifar:" errors.
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { rejectsWith, throwsWith } from '../helpers/files.js';
import type { Asserter } from '../helpers/reference.js';

const RECORD = 3073;

/** Byte of image `id` at channel c, row y, column x: distinct per channel and position. */
function pixelByte(id: number, c: number, y: number, x: number): number {
  return (id * 7 + c * 85 + y * 3 + x * 5) % 256;
}

/** A batch file of records with the given ids and labels. */
function batch(ids: number[], labels: number[]): Buffer {
  const buf = Buffer.alloc(ids.length * RECORD);
  ids.forEach((id, r) => {
    buf[r * RECORD] = labels[r];
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) buf[r * RECORD + 1 + c * 1024 + y * 32 + x] = pixelByte(id, c, y, x);
  });
  return buf;
}

/** Five train batches of 2, 1, 3, 1, 2 records (ids 0..8) and a test batch of 3 (ids 100..102). */
function folder(): { files: Record<string, Buffer>; trainIds: number[]; trainLabels: number[]; testIds: number[]; testLabels: number[] } {
  const sizes = [2, 1, 3, 1, 2];
  const files: Record<string, Buffer> = {};
  const trainIds: number[] = [];
  const trainLabels: number[] = [];
  let id = 0;
  sizes.forEach((n, b) => {
    const ids = Array.from({ length: n }, () => id++);
    const labels = ids.map((i) => (i * 7 + 3) % 10);
    files[`data_batch_${b + 1}.bin`] = batch(ids, labels);
    trainIds.push(...ids);
    trainLabels.push(...labels);
  });
  const testIds = [100, 101, 102];
  const testLabels = [9, 0, 5];
  files['test_batch.bin'] = batch(testIds, testLabels);
  return { files, trainIds, trainLabels, testIds, testLabels };
}

function checkImages(t: Asserter, ds: ms.data.Dataset, ids: number[], label: string): void {
  let wrong = -1;
  ids.forEach((id, n) => {
    for (let c = 0; c < 3 && wrong < 0; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          // NCHW: image n, channel c, row y, column x.
          const v = ds.images[n * 3072 + c * 1024 + y * 32 + x];
          if (v !== Math.fround(pixelByte(id, c, y, x) / 255)) wrong = n * 3072 + c * 1024 + y * 32 + x;
        }
      }
    }
  });
  t.ok(wrong < 0, wrong < 0 ? `${label}: every pixel is byte / 255 in channel-major NCHW order` : `${label}: pixel [${wrong}] is wrong (${ds.images[wrong]})`);
}

t.test('readCifar10 reads the five train batches in order and the test batch', async (t) => {
  const f = folder();
  const dir = t.testdir(f.files);
  const train = await ms.data.readCifar10(dir, 'train');
  t.equal(train.length, 9, 'train: the records of all five batches');
  t.same(train.shape, [3, 32, 32]);
  t.equal(train.classes, 10);
  t.equal(train.images.length, 9 * 3072);
  t.same([...train.labels], f.trainLabels, 'train labels in batch order');
  checkImages(t, train, f.trainIds, 'train');
  const test = await ms.data.readCifar10(dir, 'test');
  t.equal(test.length, 3, 'test: test_batch.bin');
  t.same([...test.labels], f.testLabels, 'test labels');
  checkImages(t, test, f.testIds, 'test');
  // Through the registry.
  const viaRegistry = await ms.data.loadDataset('cifar10', 'test', { dataDir: dir });
  t.same([...viaRegistry.labels], f.testLabels, "loadDataset('cifar10', 'test', {dataDir})");
  t.same(viaRegistry.images, test.images, 'same pixels through loadDataset');
});

t.test('parseCifarBatch: channel-major layout and extremes', async (t) => {
  const buf = Buffer.alloc(2 * RECORD);
  buf[0] = 0;
  buf[RECORD] = 9;
  // Image 0: red channel all 255, green 0, blue a ramp along x; image 1: top-left of each channel marked.
  for (let p = 0; p < 1024; p++) {
    buf[1 + p] = 255;
    buf[1 + 2048 + p] = p % 32;
  }
  buf[RECORD + 1] = 10;
  buf[RECORD + 1 + 1024] = 20;
  buf[RECORD + 1 + 2048] = 30;
  const { pixels, labels } = ms.data.parseCifarBatch(buf);
  t.same([...labels], [0, 9]);
  t.ok(pixels.subarray(0, 1024).every((v) => v === 1), 'image 0 red channel is 1');
  t.ok(pixels.subarray(1024, 2048).every((v) => v === 0), 'image 0 green channel is 0');
  t.equal(pixels[2048 + 5 * 32 + 7], Math.fround(7 / 255), 'image 0 blue at (5, 7) is 7/255');
  t.same([pixels[3072], pixels[3072 + 1024], pixels[3072 + 2048]], [10, 20, 30].map((v) => Math.fround(v / 255)), 'image 1: (0, 0) of each channel');
});

t.test('malformed CIFAR folders are refused', async (t) => {
  const f = folder();
  const withFile = (name: string, content: Buffer): Record<string, Buffer> => ({ ...f.files, [name]: content });
  const missing = { ...f.files };
  delete missing['data_batch_4.bin'];
  const dir = t.testdir({
    short: withFile('data_batch_3.bin', f.files['data_batch_3.bin'].subarray(0, 2 * RECORD + 100)),
    long: withFile('test_batch.bin', Buffer.concat([f.files['test_batch.bin'], Buffer.from([1])])),
    empty: withFile('data_batch_1.bin', Buffer.alloc(0)),
    label: withFile('data_batch_2.bin', batch([50, 51], [3, 10])),
    label255: withFile('test_batch.bin', batch([50], [255])),
    missing,
    none: {},
  });
  const prefix = 'readCifar:';
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'short'), 'train'), RangeError, prefix, ['data_batch_3.bin', String(2 * RECORD + 100), '3073'], 'size not a multiple of 3073');
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'long'), 'test'), RangeError, prefix, ['test_batch.bin', '3073'], 'one trailing byte');
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'empty'), 'train'), RangeError, prefix, ['data_batch_1.bin', '0 bytes'], 'an empty batch file');
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'label'), 'train'), RangeError, prefix, ['data_batch_2.bin', 'record 1', 'label 10'], 'a label above 9');
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'label255'), 'test'), RangeError, prefix, ['label 255'], 'label 255');
  await rejectsWith(t, ms.data.readCifar10(join(dir, 'missing'), 'train'), Error, prefix, ['data_batch_4.bin', 'ENOENT'], 'a missing batch file');
  t.equal((await ms.data.readCifar10(join(dir, 'missing'), 'test')).length, 3, 'the test split does not need the train batches');
  await rejectsWith(t, ms.data.loadDataset('cifar10', 'test', { dataDir: join(dir, 'none') }), Error, prefix, ['test_batch.bin'], 'loadDataset on an empty folder');
  throwsWith(t, () => ms.data.parseCifarBatch(new Uint8Array(RECORD - 1)), RangeError, prefix, ['3072'], 'parseCifarBatch of a short buffer');
});
