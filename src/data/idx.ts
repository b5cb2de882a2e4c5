// IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed. Every header field
// is checked against the file's size before anything is allocated from it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { makeDataset, type Dataset } from './dataset.js';

// Decompressed size cap: far above any real IDX file (Fashion-MNIST train is 47 MB),
// low enough that a hostile .gz cannot force a huge allocation.
const MAX_BYTES = 512 * 1024 * 1024;

async function readMaybeGzip(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`readIdx: cannot read ${path}${code ? ` (${code})` : ''}`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw, { maxOutputLength: MAX_BYTES });
    } catch (err) {
      throw new Error(`readIdx: ${path} is not a valid gzip file (${(err as Error).message})`);
    }
  }
  return raw;
}

/** Parses an unsigned-byte IDX file: its dimensions and values. */
export function parseIdx(buf: Uint8Array, name = 'IDX data'): { dims: number[]; values: Uint8Array } {
  if (buf.length < 4) throw new RangeError(`readIdx: ${name} is ${buf.length} bytes, too short for an IDX header`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new RangeError(`readIdx: ${name} does not start with an IDX magic number`);
  if (buf[2] !== 0x08) throw new RangeError(`readIdx: ${name} holds type 0x${buf[2].toString(16)}; only unsigned bytes (0x08) are supported`);
  const rank = buf[3];
  if (rank < 1 || rank > 4) throw new RangeError(`readIdx: ${name} has ${rank} dimensions; expected 1 to 4`);
  const headerBytes = 4 + 4 * rank;
  if (buf.length < headerBytes) throw new RangeError(`readIdx: ${name} is truncated inside its header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (buf.length - headerBytes !== count) {
    throw new RangeError(`readIdx: ${name} declares [${dims.join(', ')}] = ${count} values but holds ${buf.length - headerBytes}`);
  }
  return { dims, values: buf.subarray(headerBytes) };
}

export async function readIdxFile(path: string): Promise<{ dims: number[]; values: Uint8Array }> {
  return parseIdx(await readMaybeGzip(path), path);
}

/** Reads an images file and a labels file into a dataset with pixels in [0, 1]. */
export async function readIdxDataset(imagesPath: string, labelsPath: string, name: string, classes = 10): Promise<Dataset> {
  const images = await readIdxFile(imagesPath);
  const labels = await readIdxFile(labelsPath);
  if (images.dims.length !== 3) throw new RangeError(`readIdx: ${imagesPath} has shape [${images.dims.join(', ')}]; expected [N, H, W]`);
  if (labels.dims.length !== 1) throw new RangeError(`readIdx: ${labelsPath} has shape [${labels.dims.join(', ')}]; expected [N]`);
  if (images.dims[0] !== labels.dims[0]) {
    throw new RangeError(`readIdx: ${imagesPath} has ${images.dims[0]} images but ${labelsPath} has ${labels.dims[0]} labels`);
  }
  const bad = labels.values.findIndex((l) => l >= classes);
  if (bad >= 0) throw new RangeError(`readIdx: ${labelsPath} has label ${labels.values[bad]} at index ${bad}; expected 0 to ${classes - 1}`);
  const pixels = new Float32Array(images.values.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.values[i] / 255;
  return makeDataset(name, pixels, Int32Array.from(labels.values), [1, images.dims[1], images.dims[2]], classes);
}

/** Finds `base` or `base.gz` in dir. */
export async function findIdx(dir: string, base: string): Promise<string> {
  const { access } = await import('node:fs/promises');
  for (const candidate of [join(dir, base), join(dir, `${base}.gz`)]) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw new Error(`readIdx: neither ${base} nor ${base}.gz found in ${dir}`);
}
