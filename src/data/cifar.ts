// CIFAR-10 binary batches: records of 1 label byte and 3072 pixel bytes
// (3 x 32 x 32, channel-major).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDataset, type Dataset } from './dataset.js';

const RECORD = 1 + 3 * 32 * 32;

export function parseCifarBatch(buf: Uint8Array, name = 'CIFAR batch'): { pixels: Float32Array; labels: Int32Array } {
  if (buf.length === 0 || buf.length % RECORD !== 0) {
    throw new RangeError(`readCifar: ${name} is ${buf.length} bytes, not a whole number of ${RECORD}-byte records`);
  }
  const n = buf.length / RECORD;
  const pixels = new Float32Array(n * 3072);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = buf[i * RECORD];
    if (label > 9) throw new RangeError(`readCifar: ${name} record ${i} has label ${label}; CIFAR-10 labels are 0-9`);
    labels[i] = label;
    for (let p = 0; p < 3072; p++) pixels[i * 3072 + p] = buf[i * RECORD + 1 + p] / 255;
  }
  return { pixels, labels };
}

/** Reads data_batch_1..5.bin (train) or test_batch.bin (test) from dir. */
export async function readCifar10(dir: string, split: 'train' | 'test'): Promise<Dataset> {
  const files = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const parts: { pixels: Float32Array; labels: Int32Array }[] = [];
  for (const f of files) {
    const path = join(dir, f);
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch (err) {
      throw new Error(`readCifar: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); --data-dir must hold the CIFAR-10 binary version`);
    }
    parts.push(parseCifarBatch(buf, path));
  }
  const n = parts.reduce((a, p) => a + p.labels.length, 0);
  const pixels = new Float32Array(n * 3072);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    pixels.set(p.pixels, at * 3072);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  return makeDataset(`cifar10-${split}`, pixels, labels, [3, 32, 32], 10);
}
