// safetensors: round trip, the byte layout of the format, hand-written F16 /
// BF16 / F64 entries, hostile files (each refused with a RangeError "load:",
// never a crash or a huge allocation) and a mutation fuzz loop.
import t from 'tap';
import * as ms from '../../src/index.js';
import { throwsWith } from '../helpers/files.js';
import { assertBitwise, randn32, rng } from '../helpers/reference.js';

/** A safetensors file from a header (object or raw JSON text) and data bytes; `len` forges the length field. */
function file(header: unknown, data: ArrayLike<number> = [], len?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(len ?? BigInt(json.length));
  return Buffer.concat([head, json, Buffer.from(Uint8Array.from(data))]);
}

const f32 = (values: number[]): number[] => [...new Uint8Array(Float32Array.from(values).buffer)];

function headerOf(buf: Buffer): { n: number; header: Record<string, unknown>; text: string } {
  const n = Number(buf.readBigUInt64LE(0));
  const text = buf.subarray(8, 8 + n).toString('utf8');
  return { n, header: JSON.parse(text) as Record<string, unknown>, text };
}

function sampleTensors(): Record<string, ms.Tensor> {
  const gen = rng(21);
  return {
    'layer.0.weight': ms.tensor(randn32(gen, 6), [2, 3]),
    'layer.0.bias': ms.tensor(randn32(gen, 5), [5]),
    scalar: ms.tensor([3.5], []),
    empty: ms.tensor([], [0, 4]),
    odd: ms.tensor(randn32(gen, 3), [1, 3, 1]),
    special: ms.tensor([-0, Infinity, -Infinity, 1e-40, 3.4028234663852886e38, NaN], [6]),
  };
}

t.test('round trip of several tensors and metadata', async (t) => {
  const tensors = sampleTensors();
  const metadata = { format: 'test', json: '{"a":[1,2]}', unicode: 'héllo ✓ 模型', empty: '' };
  const bytes = ms.serializeSafetensors(tensors, metadata);
  const back = ms.parseSafetensors(bytes);
  t.same(Object.keys(back.tensors).sort(), Object.keys(tensors).sort(), 'same tensor names');
  for (const [name, x] of Object.entries(tensors)) {
    const y = back.tensors[name];
    t.same(y.shape, x.shape, `${name}: shape`);
    if (name === 'special') {
      assertBitwise(t, y.data.subarray(0, 5), x.data.subarray(0, 5), `${name}: -0, infinities, a subnormal, the largest float bit for bit`);
      t.ok(Number.isNaN(y.data[5]), `${name}: NaN stays NaN`);
    } else {
      assertBitwise(t, y.data, x.data, `${name}: values bit for bit`);
    }
    t.not(y.data, x.data, `${name}: a fresh array`);
  }
  t.same(back.metadata, metadata, 'metadata round trip (unicode included)');
  // No metadata: the header has no __metadata__ and reads back empty.
  const plain = ms.serializeSafetensors({ a: ms.tensor([1, 2], [2]) });
  t.notOk('__metadata__' in headerOf(plain).header, 'no __metadata__ when there is none');
  t.same(ms.parseSafetensors(plain).metadata, {}, 'empty metadata');
  t.same(ms.parseSafetensors(ms.serializeSafetensors({})).tensors, {}, 'no tensors at all');
  // A view at an odd offset of a larger buffer (unaligned data) parses the same.
  const shifted = Buffer.concat([Buffer.from([1, 2, 3]), bytes]).subarray(3);
  const viaView = ms.parseSafetensors(new Uint8Array(shifted.buffer, shifted.byteOffset, shifted.length));
  assertBitwise(t, viaView.tensors['layer.0.weight'].data, tensors['layer.0.weight'].data, 'an unaligned view parses');
});

t.test('byte layout follows the safetensors spec', async (t) => {
  const tensors = { b: ms.tensor([1, 2, 3, 4, 5, 6], [2, 3]), a: ms.tensor([-1.5], [1]), z: ms.tensor([], [0]) };
  const bytes = ms.serializeSafetensors(tensors, { k: 'v' });
  const { n, header, text } = headerOf(bytes);
  t.ok(n > 0 && 8 + n <= bytes.length, 'an 8-byte little-endian header length that fits');
  t.equal((8 + n) % 8, 0, 'the data starts 8-byte aligned');
  t.match(text, /^\{.*\} *$/s, 'the header is a JSON object padded with spaces only');
  t.same(header.__metadata__, { k: 'v' }, '__metadata__ holds the metadata');
  t.same(header.b, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, 'entry b: dtype F32, shape, data_offsets');
  t.same(header.a, { dtype: 'F32', shape: [1], data_offsets: [24, 28] }, 'entry a follows b');
  t.same(header.z, { dtype: 'F32', shape: [0], data_offsets: [28, 28] }, 'an empty tensor spans no bytes');
  t.equal(bytes.length, 8 + n + 28, 'the file ends with the data');
  const data = bytes.subarray(8 + n);
  t.same([...data.subarray(0, 24)], f32([1, 2, 3, 4, 5, 6]), "b's data: little-endian float32, row-major");
  t.same([...data.subarray(24, 28)], [0x00, 0x00, 0xc0, 0xbf], "a's data: -1.5 as LE float32");
  t.equal(bytes.readFloatLE(8 + n + 4), 2, 'reads as LE float32');
  // Every header size gets padded correctly.
  for (let k = 0; k < 9; k++) {
    const b = ms.serializeSafetensors({ ['x'.repeat(k + 1)]: ms.tensor([1], [1]) });
    t.equal((8 + headerOf(b).n) % 8, 0, `name of ${k + 1} chars: aligned`);
  }
  throwsWith(t, () => ms.serializeSafetensors({ __metadata__: ms.tensor([1], [1]) }), RangeError, 'save:', ['__metadata__'], 'a tensor named __metadata__ is refused');
  throwsWith(t, () => ms.serializeSafetensors({ a: [1, 2] as never }), TypeError, 'save:', ['a'], 'a non-tensor is refused');
});

t.test('reading F16, BF16 and F64 entries written by hand', async (t) => {
  const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x7e00, 0x3555];
  const f16Expected = [1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity, -0, NaN, 0.333251953125];
  const bf16 = [0x3f80, 0xc000, 0x4049, 0x0001, 0x7f80, 0xff80, 0x8000];
  const bf16Expected = [1, -2, 3.140625, 9.183549615799121e-41, Infinity, -Infinity, -0];
  const f64 = [1 / 3, -2.5, 1e-300, 1e300, 123456789.123];
  const f64Expected = f64.map((v) => Math.fround(v));
  const bytes: number[] = [];
  const u16 = (v: number): void => void bytes.push(v & 0xff, v >> 8);
  f16.forEach(u16);
  bf16.forEach(u16);
  const b64 = Buffer.alloc(8 * f64.length);
  f64.forEach((v, i) => b64.writeDoubleLE(v, 8 * i));
  bytes.push(...b64);
  const h = 2 * f16.length;
  const hb = h + 2 * bf16.length;
  const parsed = ms.parseSafetensors(
    file(
      {
        __metadata__: { source: 'hand' },
        f64: { dtype: 'F64', shape: [5, 1], data_offsets: [hb, hb + 40] },
        half: { dtype: 'F16', shape: [f16.length], data_offsets: [0, h] },
        brain: { dtype: 'BF16', shape: [1, bf16.length], data_offsets: [h, hb] },
      },
      bytes,
    ),
  );
  const check = (name: string, expected: number[], shape: number[]): void => {
    const x = parsed.tensors[name];
    t.same(x.shape, shape, `${name}: shape`);
    const ok = expected.every((e, i) => Object.is(x.data[i], e) || (Number.isNaN(e) && Number.isNaN(x.data[i])));
    t.ok(ok, `${name}: ${[...x.data].join(', ')} equals ${expected.join(', ')}`);
  };
  check('half', f16Expected, [f16.length]);
  check('brain', bf16Expected, [1, bf16.length]);
  check('f64', f64Expected, [5, 1]);
  t.ok(parsed.tensors.f64.data instanceof Float32Array, 'converted to float32 tensors');
  t.same(parsed.metadata, { source: 'hand' });
});

t.test('valid but unusual files are accepted', async (t) => {
  const four = f32([1, 2, 3, 4]);
  t.same(ms.parseSafetensors(file('{}')).tensors, {}, 'header {} and no data');
  t.same(ms.parseSafetensors(file({ __metadata__: { a: 'b' } })).metadata, { a: 'b' }, 'metadata only');
  const padded = ms.parseSafetensors(file(`${JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } })}       `, four));
  t.same([...padded.tensors.x.data], [1, 2, 3, 4], 'a header padded with spaces');
  const reordered = ms.parseSafetensors(
    file({ second: { dtype: 'F32', shape: [2], data_offsets: [8, 16] }, first: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four),
  );
  t.same([...reordered.tensors.first.data, ...reordered.tensors.second.data], [1, 2, 3, 4], 'entries listed out of offset order');
  // As in the reference implementation (entries sorted by (start, end)), an empty
  // tensor may sit at the start offset of a non-empty one, whatever the listing order.
  for (const [label, header] of [
    ['empty listed after', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, e: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } }],
    ['empty listed before', { e: { dtype: 'F32', shape: [0], data_offsets: [0, 0] }, a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }],
    ['empty at the end', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, e: { dtype: 'F16', shape: [3, 0], data_offsets: [16, 16] } }],
  ] as const) {
    let parsed: ms.SafetensorsFile | undefined;
    try {
      parsed = ms.parseSafetensors(file(header, four));
    } catch (e) {
      t.fail(`${label}: refused (${(e as Error).message})`);
    }
    if (parsed) t.ok(parsed.tensors.e.size === 0 && parsed.tensors.a.data[3] === 4, `${label}: parsed`);
  }
  const zeroDims = ms.parseSafetensors(file({ z: { dtype: 'F32', shape: [1e15, 0], data_offsets: [0, 0] } }));
  t.same(zeroDims.tensors.z.shape, [1e15, 0], 'a huge dimension times zero is an empty tensor (nothing allocated)');
});

t.test('hostile files are refused with RangeError "load:"', async (t) => {
  const four = f32([1, 2, 3, 4]);
  const ok4 = { dtype: 'F32', shape: [4], data_offsets: [0, 16] };
  const cases: [string, Buffer, (string | RegExp)[]][] = [
    ['empty file', Buffer.alloc(0), ['0 bytes']],
    ['7 bytes', Buffer.alloc(7), ['7 bytes']],
    ['header length larger than the file', file({ x: ok4 }, four, 1000n), ['1000']],
    ['header length one past the file', file({ x: ok4 }, [], BigInt(JSON.stringify({ x: ok4 }).length + 1)), ['header length']],
    ['forged header length 2^63', file({ x: ok4 }, four, 2n ** 63n), ['9223372036854775808']],
    ['forged header length 2^64 - 1', file({ x: ok4 }, four, 2n ** 64n - 1n), ['header length']],
    ['forged header length 2^53 + 1', file({ x: ok4 }, four, 2n ** 53n + 1n), ['header length']],
    ['header length 0', file('', four), ['header length 0']],
    ['header length 1', file('{', four), ['header length 1']],
    ['non-JSON header', file('{"x": nope}', four), ['JSON']],
    ['truncated JSON', file('{"x": {"dtype": "F32"', four), ['JSON']],
    ['header is an array', file('[1, 2, 3]', four), ['not a JSON object']],
    ['header is a number', file('1234', four), ['not a JSON object']],
    ['header is null', file('null', four), ['not a JSON object']],
    ['header is a string', file('"tensors"', four), ['not a JSON object']],
    ['entry not an object', file({ x: 5 }, four), ['x']],
    ['entry null', file({ x: null }, four), ['x']],
    ['unknown dtype I8', file({ x: { ...ok4, dtype: 'I8' } }, four), ['I8']],
    ['lower-case dtype', file({ x: { ...ok4, dtype: 'f32' } }, four), ['f32']],
    ['dtype toString (an Object.prototype key)', file({ x: { ...ok4, dtype: 'toString' } }, four), ['dtype toString']],
    ['dtype __proto__', file({ x: { ...ok4, dtype: '__proto__' } }, four), ['dtype __proto__']],
    ['dtype not a string', file({ x: { ...ok4, dtype: ['F32'] } }, four), ['dtype']],
    ['missing dtype', file({ x: { shape: [4], data_offsets: [0, 16] } }, four), ['dtype']],
    ['negative shape entry', file({ x: { ...ok4, shape: [-4] } }, four), ['shape']],
    ['negative shape pair', file({ x: { ...ok4, shape: [-2, -2] } }, four), ['shape']],
    ['fractional shape entry', file({ x: { ...ok4, shape: [2.5, 1.6] } }, four), ['shape']],
    ['string shape entry', file({ x: { ...ok4, shape: ['4'] } }, four), ['shape']],
    ['shape not an array', file({ x: { ...ok4, shape: 4 } }, four), ['shape']],
    ['huge shape entry 2^53', file({ x: { ...ok4, shape: [2 ** 53] } }, four), ['shape']],
    ['huge shape entry 1e300', file({ x: { ...ok4, shape: [1e300] } }, four), ['shape']],
    ['huge shape product', file({ x: { ...ok4, shape: [4294967296, 4294967296, 4] } }, four), ['x']],
    ['huge shape matching nothing', file({ x: { ...ok4, shape: [1e15, 1e15] } }, four), ['x']],
    ['data_offsets past the data', file({ x: { ...ok4, data_offsets: [0, 32] } }, four), ['32']],
    ['data_offsets far past the data', file({ x: { ...ok4, shape: [2 ** 40], data_offsets: [0, 2 ** 42] } }, four), ['x']],
    ['negative data_offsets', file({ x: { ...ok4, data_offsets: [-16, 0] } }, four), ['data_offsets']],
    ['reversed data_offsets', file({ x: { ...ok4, data_offsets: [16, 0] } }, four), ['data_offsets']],
    ['fractional data_offsets', file({ x: { ...ok4, data_offsets: [0.5, 16.5] } }, four), ['data_offsets']],
    ['string data_offsets', file({ x: { ...ok4, data_offsets: ['0', '16'] } }, four), ['data_offsets']],
    ['one data_offset', file({ x: { ...ok4, data_offsets: [16] } }, four), ['data_offsets']],
    ['missing data_offsets', file({ x: { dtype: 'F32', shape: [4] } }, four), ['data_offsets']],
    ['offsets not matching the shape size', file({ x: { ...ok4, shape: [3] } }, four), ['12', '16']],
    ['offsets not matching the dtype size', file({ x: { ...ok4, dtype: 'F16' } }, four), ['8', '16']],
    [
      'overlapping tensors',
      file({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four),
      ['overlap'],
    ],
    [
      'the same bytes twice',
      file({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, [...four, ...four]),
      ['b'],
    ],
    [
      'a gap between tensors',
      file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four),
      ['gap'],
    ],
    ['a gap before the first tensor', file({ a: { dtype: 'F32', shape: [3], data_offsets: [4, 16] } }, four), ['gap']],
    ['trailing bytes', file({ x: ok4 }, [...four, 0, 0, 0, 0]), ['4 trailing bytes']],
    ['data without tensors', file({}, four), ['16 trailing bytes']],
    ['__metadata__ with a number', file({ __metadata__: { a: 'x', b: 1 }, x: ok4 }, four), ['__metadata__.b']],
    ['__metadata__ with null', file({ __metadata__: { a: null }, x: ok4 }, four), ['__metadata__']],
    ['__metadata__ with an object', file({ __metadata__: { a: { nested: 'x' } }, x: ok4 }, four), ['__metadata__']],
    ['__metadata__ an array', file({ __metadata__: ['a'], x: ok4 }, four), ['__metadata__']],
    ['__metadata__ a string', file({ __metadata__: 'a', x: ok4 }, four), ['__metadata__']],
    ['rank 9 tensor', file({ x: { ...ok4, shape: [1, 1, 1, 1, 1, 1, 1, 1, 4] } }, four), ['shape']],
  ];
  for (const [label, bytes, patterns] of cases) {
    throwsWith(t, () => ms.parseSafetensors(bytes, 'hostile.safetensors'), RangeError, 'load:', ['hostile.safetensors', ...patterns], label);
  }
});

t.test('a tensor named __proto__ is kept as data or refused, never pollutes objects', async (t) => {
  // (An object literal with __proto__ would set the prototype, so the header is written by hand.)
  const raw = file('{"__proto__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', f32([7]));
  let parsed: ms.SafetensorsFile | undefined;
  try {
    parsed = ms.parseSafetensors(raw);
  } catch (e) {
    t.ok(e instanceof RangeError && (e as Error).message.startsWith('load:'), `refused with RangeError (${(e as Error).message})`);
  }
  if (parsed) {
    t.equal(Object.getPrototypeOf(parsed.tensors), Object.prototype, 'the tensors object keeps its prototype');
    t.ok(Object.keys(parsed.tensors).includes('__proto__'), 'the tensor is an own entry');
  }
  t.equal(({} as Record<string, unknown>).dtype, undefined, 'Object.prototype untouched');
  const meta = file('{"__metadata__": {"__proto__": "x", "a": "b"}}');
  let m: ms.SafetensorsFile | undefined;
  try {
    m = ms.parseSafetensors(meta);
  } catch (e) {
    t.ok(e instanceof RangeError, 'metadata __proto__ refused with RangeError');
  }
  if (m) t.equal(Object.getPrototypeOf(m.metadata), Object.prototype, 'metadata keeps its prototype');
});

t.test('fuzz: 300 mutations of a valid file parse or throw RangeError', async (t) => {
  const base = ms.serializeSafetensors(
    { w: ms.tensor(randn32(rng(1), 12), [3, 4]), b: ms.tensor([1, 2, 3], [3]), s: ms.tensor([5], []) },
    { format: 'modelslice/1', config: '{"kind":"mlp"}' },
  );
  const n = Number(base.readBigUInt64LE(0));
  const gen = rng(2024);
  let parsed = 0;
  let refused = 0;
  const bad: string[] = [];
  for (let i = 0; i < 300; i++) {
    let m = Buffer.from(base);
    const kind = i % 6;
    if (kind === 0) {
      m = m.subarray(0, gen.int(m.length)); // truncate
    } else if (kind === 1) {
      const k = 8 + gen.int(n); // one header byte to a random value
      m[k] = gen.int(256);
    } else if (kind === 2) {
      const k = 8 + gen.int(n); // a header byte to a JSON-significant character
      m[k] = '{}[]",:-0123456789.eE tfn'.charCodeAt(gen.int(25));
    } else if (kind === 3) {
      m[gen.int(8)] = gen.int(256); // the length field
    } else if (kind === 4) {
      for (let r = 0; r < 4; r++) m[gen.int(m.length)] ^= 1 << gen.int(8); // bit flips anywhere
    } else {
      const k = gen.int(m.length); // insert or delete a byte
      m = gen.uniform() < 0.5 ? Buffer.concat([m.subarray(0, k), Buffer.from([gen.int(256)]), m.subarray(k)]) : Buffer.concat([m.subarray(0, k), m.subarray(k + 1)]);
    }
    try {
      const f = ms.parseSafetensors(m);
      for (const x of Object.values(f.tensors)) if (!(x instanceof ms.Tensor)) bad.push(`#${i}: a non-tensor entry`);
      for (const v of Object.values(f.metadata)) if (typeof v !== 'string') bad.push(`#${i}: non-string metadata`);
      parsed++;
    } catch (e) {
      if (e instanceof RangeError && e.message.startsWith('load:')) refused++;
      else bad.push(`#${i} (kind ${kind}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    }
  }
  t.same(bad, [], 'no error other than RangeError "load:"');
  t.ok(parsed > 10 && refused > 100, `both outcomes occur (${parsed} parsed, ${refused} refused)`);
});
