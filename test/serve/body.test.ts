import t from 'tap';
import { parseRawInputs } from '../../src/serve/body.js';

t.test('raw float32 bodies: a view when aligned, a copy when not, the same values either way', async (t) => {
  const values = Float32Array.from({ length: 8 }, (_, i) => i * 0.5 - 1);
  const bytes = Buffer.from(values.buffer);
  const aligned = parseRawInputs(bytes, 4, 2);
  t.same([...aligned.data], [...values]);
  t.equal(aligned.count, 2);
  t.equal(aligned.data.buffer, bytes.buffer, 'aligned: a view of the body, no copy');
  const backing = Buffer.alloc(bytes.length + 1);
  bytes.copy(backing, 1);
  const odd = backing.subarray(1); // byteOffset 1: a Float32Array cannot view it
  const copied = parseRawInputs(odd, 4, 2);
  t.same([...copied.data], [...values]);
  t.not(copied.data.buffer, backing.buffer, 'unaligned: copied');
  t.throws(() => parseRawInputs(bytes.subarray(0, 12), 8, 2), /not a whole number of inputs/);
  const nan = Buffer.from(Float32Array.of(1, NaN, 2, 3).buffer);
  t.throws(() => parseRawInputs(nan, 4, 1), /value 1 of the body \(input 0\) is not finite/);
});
