// Property tests (fast-check, fixed seed) for the file readers: safetensors,
// IDX and CIFAR-10 batches. Truncated files, forged header lengths and sizes
// (0, 1, 2^31, 2^32 - 1, 2^53, 2^64 - 1), random headers and random bytes must
// either parse into exactly what the bytes say or be refused with a RangeError
// whose message starts with the reader's name: never another error, a hang or
// an allocation sized by a forged field.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import t from 'tap';
import * as ms from '../../src/index.js';
import { randn32, rng, type Asserter } from '../helpers/reference.js';

const SEED = 20260611;

function check<T>(t: Asserter, name: string, property: fc.IProperty<T>, numRuns: number): void {
  const details = fc.check(property, { seed: SEED, numRuns });
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  t.ok(!details.failed, details.failed ? `${name}: ${cause}\n${fc.defaultReportMessage(details)}` : `${name} (${numRuns} cases)`);
}

/**
 * Runs a reader on bytes: returns its result, or null when it refused them with
 * a RangeError starting with `prefix`. Anything else (another error, more than
 * `maxMs`, more than 64 MB of new array buffers) throws.
 */
function readOrRefuse<R>(read: () => R, prefix: string, what: string, maxMs = 500): R | null {
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let result: R | null = null;
  try {
    result = read();
  } catch (e) {
    if (!(e instanceof RangeError) || !e.message.startsWith(prefix)) {
      throw new Error(`${what}: threw ${(e as Error)?.constructor?.name} "${(e as Error)?.message}" instead of a RangeError "${prefix}..."`);
    }
  }
  const ms_ = performance.now() - t0;
  if (ms_ > maxMs) throw new Error(`${what}: took ${ms_.toFixed(0)} ms`);
  const grown = process.memoryUsage().arrayBuffers - before;
  if (grown > 64 * 2 ** 20) throw new Error(`${what}: allocated ${(grown / 2 ** 20).toFixed(0)} MB`);
  return result;
}

/** Sizes and offsets at every boundary a reader must survive. */
const HUGE = [0, 1, 2, 3, 4, 255, 256, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e300];

// -------------------------------------------------------------- safetensors

/** A safetensors file from a header (object or JSON text) and data bytes; `len` forges the length field. */
function stFile(header: unknown, data: Uint8Array, len?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(len ?? BigInt(json.length));
  return Buffer.concat([head, json, data]);
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** Checks a parsed file against its own header: shapes, sizes and F32 values. */
function checkParsed(f: ms.SafetensorsFile, bytes: Uint8Array, what: string): void {
  const n = Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  for (const [name, tensor] of Object.entries(f.tensors)) {
    const e = header[name];
    if (!(tensor instanceof ms.Tensor)) throw new Error(`${what}: ${name} is not a Tensor`);
    if (tensor.shape.join() !== e.shape.join()) throw new Error(`${what}: ${name} has shape [${tensor.shape}], header says [${e.shape}]`);
    if (tensor.size * DTYPE_BYTES[e.dtype] !== e.data_offsets[1] - e.data_offsets[0]) throw new Error(`${what}: ${name} size does not match its byte range`);
    if (e.dtype === 'F32') {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + 8 + n + e.data_offsets[0]);
      for (let i = 0; i < tensor.size; i++) {
        if (!Object.is(tensor.data[i], dv.getFloat32(4 * i, true)) && !Number.isNaN(tensor.data[i])) throw new Error(`${what}: ${name}[${i}] differs from the file`);
      }
    }
  }
}

t.test('safetensors: every truncation of a valid file is refused', async (t) => {
  const good = ms.serializeSafetensors(
    { w: ms.tensor(randn32(rng(3), 6), [2, 3]), b: ms.tensor([1, 2], [2]), e: ms.zeros([0, 4]) },
    { format: 'modelslice/1' },
  );
  t.ok(ms.parseSafetensors(good), 'the whole file parses');
  const bad: string[] = [];
  for (let len = 0; len < good.length; len++) {
    try {
      if (readOrRefuse(() => ms.parseSafetensors(good.subarray(0, len)), 'load:', `first ${len} bytes`) !== null) bad.push(`first ${len} bytes parsed`);
    } catch (e) {
      bad.push((e as Error).message);
    }
  }
  t.same(bad, [], `all ${good.length} proper prefixes refused with RangeError "load:"`);
  // One byte more at the end is trailing data.
  t.throws(() => ms.parseSafetensors(Buffer.concat([good, Buffer.from([0])])), { name: 'RangeError', message: /^load: .*trailing/ });
});

t.test('safetensors: forged header lengths', async (t) => {
  const data = new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer);
  const header = { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
  const exact = BigInt(JSON.stringify(header).length);
  const lenArb = fc.oneof(
    fc.constantFrom(0n, 1n, 2n, exact - 1n, exact, exact + 1n, exact + 16n, exact + 17n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  );
  check(t, 'header length field', fc.property(lenArb, (len) => {
    const bytes = stFile(header, data, len);
    const f = readOrRefuse(() => ms.parseSafetensors(bytes, 'forged.safetensors'), 'load: forged.safetensors', `length ${len}`);
    if (f !== null && len !== exact) throw new Error(`length ${len} parsed (the true length is ${exact})`);
    if (f === null && len === exact) throw new Error('the true length was refused');
  }), 200);
});

t.test('safetensors: random headers with sizes and offsets at every boundary', async (t) => {
  const num = fc.oneof(fc.constantFrom<unknown>(...HUGE), fc.integer({ min: 0, max: 40 }), fc.constantFrom<unknown>(-1, 1.5, '4', null, [], {}, true));
  const entry = fc.record({
    dtype: fc.oneof({ arbitrary: fc.constantFrom<unknown>('F32', 'F16', 'BF16', 'F64'), weight: 6 }, { arbitrary: fc.constantFrom<unknown>('I8', 'f32', '', null, 4, 'toString', '__proto__'), weight: 1 }),
    shape: fc.oneof({ arbitrary: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), weight: 4 }, { arbitrary: fc.array(num, { maxLength: 9 }), weight: 2 }, { arbitrary: num, weight: 1 }),
    offsets: fc.oneof({ arbitrary: fc.constant<unknown>('tile'), weight: 6 }, { arbitrary: fc.array(num, { maxLength: 3 }), weight: 2 }, { arbitrary: num, weight: 1 }),
  });
  const arb = fc.record({
    names: fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'layer.0.weight', '__proto__', 'constructor', ''), { minLength: 0, maxLength: 3 }),
    entries: fc.array(entry, { minLength: 3, maxLength: 3 }),
    metadata: fc.oneof(fc.constant<unknown>(undefined), fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom<unknown>(1, null, {})), { maxKeys: 3 })),
    extraData: fc.integer({ min: -3, max: 3 }),
    seed: fc.integer({ min: 1, max: 1000 }),
  });
  let parsed = 0;
  check(t, 'random headers', fc.property(arb, (c) => {
    // Well-formed entries tile the data in order; the rest carry whatever they were given.
    const header: Record<string, unknown> = {};
    if (c.metadata !== undefined) header.__metadata__ = c.metadata;
    let at = 0;
    c.names.forEach((name, i) => {
      const e = c.entries[i];
      const shape = e.shape;
      let offsets = e.offsets;
      if (offsets === 'tile') {
        const count = Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? (shape as number[]).reduce((p, d) => p * d, 1) : 1;
        const bytes = count * (typeof e.dtype === 'string' && e.dtype in DTYPE_BYTES ? DTYPE_BYTES[e.dtype] : 4);
        offsets = [at, at + bytes];
        at += bytes;
      }
      Object.defineProperty(header, name, { value: { dtype: e.dtype, shape, data_offsets: offsets }, enumerable: true });
    });
    const dataLen = Math.max(0, Math.min(at + c.extraData, 4096));
    const data = new Uint8Array(randn32(rng(c.seed), Math.ceil(dataLen / 4)).buffer).subarray(0, dataLen);
    const bytes = stFile(header, data);
    const what = `header ${JSON.stringify(header)} with ${dataLen} data bytes`;
    const f = readOrRefuse(() => ms.parseSafetensors(bytes, 'random.safetensors'), 'load: random.safetensors', what);
    if (f !== null) {
      parsed++;
      checkParsed(f, bytes, what);
      if (Object.getPrototypeOf(f.tensors) !== Object.prototype) throw new Error(`${what}: the tensors object lost its prototype`);
    }
  }), 400);
  t.ok(parsed > 20, `some random headers are valid files (${parsed} parsed)`);
  t.equal(({} as Record<string, unknown>).dtype, undefined, 'Object.prototype untouched');
});

t.test('safetensors: random bytes', async (t) => {
  const arb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // A plausible length field in front of random bytes reaches the JSON parser.
    fc.uint8Array({ minLength: 2, maxLength: 200 }).map((body) => stFile(Buffer.from(body).toString('latin1'), new Uint8Array(0))),
    fc.json({ maxDepth: 3 }).map((text) => stFile(text, new Uint8Array(0))),
  );
  check(t, 'random bytes', fc.property(arb, (bytes) => {
    const f = readOrRefuse(() => ms.parseSafetensors(bytes), 'load:', `${bytes.length} random bytes`);
    if (f !== null) checkParsed(f, bytes, 'random bytes');
  }), 400);
});

// ---------------------------------------------------------------------- IDX

/** An IDX file with the given header bytes and dims, then `bodyLen` bytes. */
function idxFile(magic: [number, number], type: number, rankByte: number, dims: number[], bodyLen: number): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[0] = magic[0];
  head[1] = magic[1];
  head[2] = type;
  head[3] = rankByte;
  dims.forEach((d, i) => head.writeUInt32BE(d >>> 0, 4 + 4 * i));
  const body = Buffer.alloc(bodyLen);
  for (let i = 0; i < bodyLen; i++) body[i] = (i * 31 + 7) & 255;
  return Buffer.concat([head, body]);
}

t.test('IDX: random headers, forged dims and body lengths', async (t) => {
  const dim = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 6 }), weight: 6 }, { arbitrary: fc.constantFrom(60000, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1), weight: 1 });
  const arb = fc.record({
    magic: fc.oneof({ arbitrary: fc.constant<[number, number]>([0, 0]), weight: 8 }, { arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })), weight: 1 }),
    type: fc.oneof({ arbitrary: fc.constant(8), weight: 8 }, { arbitrary: fc.constantFrom(0, 9, 0x0b, 0x0c, 0x0d, 0x0e, 255), weight: 1 }),
    dims: fc.array(dim, { minLength: 0, maxLength: 5 }),
    /** The rank byte: the true rank, or forged. */
    rank: fc.oneof({ arbitrary: fc.constant<number | null>(null), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 }),
    /** Body length relative to the product of the dims. */
    body: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.constantFrom(-1, 1, -100, 5), weight: 2 }),
  });
  let parsed = 0;
  check(t, 'parseIdx', fc.property(arb, (c) => {
    const rankByte = c.rank ?? c.dims.length;
    const product = c.dims.reduce((p, d) => p * d, 1);
    // A product too large to hold is written with a short body instead (the header alone must refuse it).
    const bodyLen = product > 4096 ? 3 : Math.max(0, product + c.body);
    const bytes = idxFile(c.magic, c.type, rankByte, c.dims, bodyLen);
    const what = `magic ${c.magic} type ${c.type} rank byte ${rankByte} dims [${c.dims}] body ${bodyLen}`;
    const r = readOrRefuse(() => ms.data.parseIdx(bytes, 'fuzz.idx'), 'readIdx: fuzz.idx', what);
    // The reader reads `rankByte` dims from the header: a forged rank that still fits is a different file.
    const valid = c.magic[0] === 0 && c.magic[1] === 0 && c.type === 8 && rankByte >= 1 && rankByte <= 4 && rankByte === c.dims.length && bodyLen === product;
    if (r === null) {
      if (valid) throw new Error(`${what}: a valid file was refused`);
      return;
    }
    parsed++;
    if (rankByte === c.dims.length && !valid) throw new Error(`${what}: an invalid file parsed`);
    const count = r.dims.reduce((p, d) => p * d, 1);
    if (r.dims.length !== rankByte || r.values.length !== count || r.values.length !== bytes.length - 4 - 4 * rankByte) {
      throw new Error(`${what}: parsed dims [${r.dims}] with ${r.values.length} values`);
    }
  }), 400);
  t.ok(parsed > 50, `valid files occur (${parsed} parsed)`);

  // Every truncation of a valid file is refused.
  const good = idxFile([0, 0], 8, 3, [2, 3, 4], 24);
  const bad: string[] = [];
  for (let len = 0; len < good.length; len++) {
    try {
      if (readOrRefuse(() => ms.data.parseIdx(good.subarray(0, len)), 'readIdx:', `first ${len} bytes`) !== null) bad.push(`first ${len} bytes parsed`);
    } catch (e) {
      bad.push((e as Error).message);
    }
  }
  t.same(bad, [], `all ${good.length} proper prefixes refused`);
});

t.test('IDX files on disk: gzip with forged headers, corrupt and truncated streams', async (t) => {
  const good = idxFile([0, 0], 8, 1, [5], 5);
  const gz = gzipSync(good);
  const files: Record<string, Buffer> = {
    'forged-dims.gz': gzipSync(idxFile([0, 0], 8, 3, [2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1], 16)),
    'truncated.gz': gz.subarray(0, gz.length - 6),
    'header-only.gz': gz.subarray(0, 10),
    'magic-only.gz': Buffer.from([0x1f, 0x8b]),
    'garbage.gz': Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(64, 0xa5)]),
  };
  for (let i = 0; i < gz.length; i += 3) files[`flip-${i}.gz`] = Buffer.from(gz.map((b, j) => (j === i ? b ^ 0x55 : b)));
  const dir = t.testdir({ ...files, 'good.gz': gz });
  t.same([...(await ms.data.readIdxFile(join(dir, 'good.gz'))).values], [...good.subarray(8)], 'the intact file reads');
  const bad: string[] = [];
  for (const name of Object.keys(files)) {
    const before = process.memoryUsage().arrayBuffers;
    try {
      const r = await ms.data.readIdxFile(join(dir, name));
      // A flipped byte in gzip's header flags or mtime can leave the content intact.
      if (!name.startsWith('flip-') || r.values.length !== 5) bad.push(`${name}: parsed [${r.dims}]`);
    } catch (e) {
      const msg = (e as Error).message;
      if (!msg.startsWith(`readIdx: ${join(dir, name)}`)) bad.push(`${name}: ${(e as Error).constructor.name} "${msg}"`);
    }
    if (process.memoryUsage().arrayBuffers - before > 64 * 2 ** 20) bad.push(`${name}: allocated more than 64 MB`);
  }
  t.same(bad, [], `${Object.keys(files).length} corrupt gzip files refused with "readIdx: <path>"`);
});

// ------------------------------------------------------------------- CIFAR

t.test('CIFAR batches: lengths around whole records, labels 0-255', async (t) => {
  const RECORD = 3073;
  const arb = fc.record({
    records: fc.integer({ min: 0, max: 3 }),
    delta: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.constantFrom(-1, 1, -RECORD + 1, 2), weight: 1 }),
    labels: fc.array(fc.oneof({ arbitrary: fc.integer({ min: 0, max: 9 }), weight: 9 }, { arbitrary: fc.integer({ min: 10, max: 255 }), weight: 1 }), { minLength: 3, maxLength: 3 }),
    seed: fc.integer({ min: 0, max: 255 }),
  });
  let parsed = 0;
  check(t, 'parseCifarBatch', fc.property(arb, (c) => {
    const len = Math.max(0, c.records * RECORD + c.delta);
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) bytes[i] = (i * 13 + c.seed) & 255;
    for (let r = 0; r < c.records; r++) if (r * RECORD < len) bytes[r * RECORD] = c.labels[r];
    const what = `${len} bytes, labels ${c.labels.slice(0, c.records)}`;
    const out = readOrRefuse(() => ms.data.parseCifarBatch(bytes, 'fuzz.bin'), 'readCifar: fuzz.bin', what);
    const whole = len > 0 && len % RECORD === 0;
    const n = len / RECORD;
    const labelsOk = whole && c.labels.slice(0, n).every((l) => l <= 9);
    if (out === null) {
      if (labelsOk) throw new Error(`${what}: a valid batch was refused`);
      return;
    }
    parsed++;
    if (!labelsOk) throw new Error(`${what}: an invalid batch parsed`);
    if (out.labels.length !== n || out.pixels.length !== n * 3072) throw new Error(`${what}: ${out.labels.length} labels, ${out.pixels.length} pixels`);
    for (let r = 0; r < n; r++) {
      if (out.labels[r] !== bytes[r * RECORD]) throw new Error(`${what}: label ${r}`);
      for (const p of [0, 1, 1024, 3071]) {
        if (out.pixels[r * 3072 + p] !== Math.fround(bytes[r * RECORD + 1 + p] / 255)) throw new Error(`${what}: pixel ${r}/${p}`);
      }
    }
  }), 150);
  t.ok(parsed > 20, `valid batches occur (${parsed} parsed)`);
});

t.test('readCifar10: a folder of hostile batch files is refused with the file named', async (t) => {
  const RECORD = 3073;
  const ok = new Uint8Array(RECORD);
  const dir = t.testdir({
    'test_batch.bin': Buffer.from(new Uint8Array(RECORD * 2 - 1)),
  });
  await t.rejects(ms.data.readCifar10(dir, 'test'), { name: 'RangeError', message: new RegExp(`^readCifar: ${join(dir, 'test_batch.bin')}`) });
  writeFileSync(join(dir, 'test_batch.bin'), Buffer.concat([ok, Buffer.from([10]), Buffer.alloc(RECORD - 1)]));
  await t.rejects(ms.data.readCifar10(dir, 'test'), { name: 'RangeError', message: /record 1 has label 10/ });
  writeFileSync(join(dir, 'test_batch.bin'), ok);
  t.equal((await ms.data.readCifar10(dir, 'test')).length, 1, 'one whole record reads');
});
