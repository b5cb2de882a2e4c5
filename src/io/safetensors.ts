// safetensors: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data.
// Parsing trusts nothing: the header length against the file size, every
// offset inside the data, sizes against shapes, no overlaps and no gaps, and
// no allocation sized by an unchecked field.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { Tensor } from '../tensor.js';

/** Largest header accepted (the format's reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function serializeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    if (!(t instanceof Tensor)) throw new TypeError(`save: ${name} is not a Tensor`);
    if (name === '__metadata__') throw new RangeError('save: a tensor may not be named __metadata__');
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + t.size * 4] };
    offset += t.size * 4;
  }
  let json = JSON.stringify(header);
  // Pad the header so the data starts 8-byte aligned, as the format recommends.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors[name];
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (isLittleEndian) out.set(bytes, at);
    else for (let i = 0; i < t.size; i++) out.writeFloatLE(t.data[i], at + 4 * i);
    at += t.size * 4;
  }
  return out;
}

function fail(source: string, msg: string): never {
  throw new RangeError(`load: ${source} is not a valid safetensors file: ${msg}`);
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** obj[key] = value as an own property, even for a key such as "__proto__" (names come from the file). */
function ownEntry<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function parseSafetensors(buf: Uint8Array, source = 'data'): SafetensorsFile {
  if (buf.length < 8) fail(source, `${buf.length} bytes is shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`);
  const n = Number(headerLen);
  if (n < 2 || 8 + n > buf.length) fail(source, `header length ${n} does not fit a file of ${buf.length} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'));
  } catch (err) {
    fail(source, `header is not JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(source, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: [string, HeaderEntry][] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(source, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(source, `__metadata__.${k} is not a string`);
        ownEntry(metadata, k, v);
      }
      continue;
    }
    const e = value as HeaderEntry;
    if (e === null || typeof e !== 'object') fail(source, `entry ${name} is not an object`);
    if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) fail(source, `tensor ${name} has dtype ${String(e.dtype)}; supported: ${Object.keys(DTYPE_BYTES).join(', ')}`);
    if (!Array.isArray(e.shape) || e.shape.length > 8 || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(source, `tensor ${name} has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]) {
      fail(source, `tensor ${name} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    if (offs[1] > dataLen) fail(source, `tensor ${name} ends at byte ${offs[1]} past the ${dataLen} data bytes`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (count * DTYPE_BYTES[e.dtype] !== offs[1] - offs[0]) {
      fail(source, `tensor ${name} of shape [${e.shape.join(', ')}] needs ${count * DTYPE_BYTES[e.dtype]} bytes but spans ${offs[1] - offs[0]}`);
    }
    entries.push([name, e]);
  }
  // The byte ranges must tile the data exactly: no overlaps, no gaps.
  // Sorted by (start, end) as the reference implementation does, so an empty
  // tensor may share the start offset of the next one.
  const sorted = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0] || a[1].data_offsets[1] - b[1].data_offsets[1]);
  let expect = 0;
  for (const [name, e] of sorted) {
    if (e.data_offsets[0] !== expect) fail(source, `tensor ${name} starts at byte ${e.data_offsets[0]}, expected ${expect} (overlap or gap)`);
    expect = e.data_offsets[1];
  }
  if (expect !== dataLen) fail(source, `${dataLen - expect} trailing bytes after the last tensor`);
  const tensors: Record<string, Tensor> = {};
  for (const [name, e] of entries) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    const at = dataStart + e.data_offsets[0];
    const values = new Float32Array(count);
    const dv = new DataView(buf.buffer, buf.byteOffset + at, e.data_offsets[1] - e.data_offsets[0]);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') values[i] = dv.getFloat32(4 * i, true);
      else if (e.dtype === 'F64') values[i] = dv.getFloat64(8 * i, true);
      else if (e.dtype === 'F16') values[i] = halfToFloat(dv.getUint16(2 * i, true));
      else values[i] = new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0];
    }
    ownEntry(tensors, name, new Tensor(values, e.shape));
  }
  return { tensors, metadata };
}

/** Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then renamed over. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
