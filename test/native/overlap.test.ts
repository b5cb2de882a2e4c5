// The binding refuses a call whose output shares memory with one of its inputs
// (or another output): typed arrays that view one ArrayBuffer can do that, and a
// blocked, multi-threaded kernel would then read values it had already
// overwritten. Elementwise kernels may work exactly in place.
import t from 'tap';
import { native } from '../../src/native.js';

const overlapError = (out: string, input: string) => new RegExp(`shares memory with ${input}|${input} shares memory with ${out}`);

t.test('gemm: C may not overlap A or B, but disjoint regions of one buffer are fine', async (t) => {
  const buf = new Float32Array(64).map((_, i) => (i % 7) - 3);
  // A: 2x3 at 0; B: 3x2 at 8; C: 2x2 at 4 overlaps A's second row (3..5).
  t.throws(() => native.gemm(false, false, 2, 2, 3, 1, buf, 0, 3, buf, 8, 2, 0, buf, 4, 2), { name: 'RangeError', message: /^gemm: C shares memory with A/ });
  t.throws(() => native.gemm(false, false, 2, 2, 3, 1, buf, 0, 3, buf, 8, 2, 0, buf, 12, 2), { name: 'RangeError', message: /^gemm: C shares memory with B/ });
  // C at 20, after both: allowed, and equal to the same product on separate arrays.
  const a = buf.slice(0, 6);
  const b = buf.slice(8, 14);
  const c = new Float32Array(4);
  native.gemm(false, false, 2, 2, 3, 1, a, 0, 3, b, 0, 2, 0, c, 0, 2);
  native.gemm(false, false, 2, 2, 3, 1, buf, 0, 3, buf, 8, 2, 0, buf, 20, 2);
  t.same([...buf.subarray(20, 24)], [...c]);
  // Views of the same buffer with interleaved regions count by the memory they touch.
  const view = new Float32Array(buf.buffer, 4 * 2, 10);
  t.doesNotThrow(() => native.gemm(false, false, 2, 2, 3, 1, buf, 0, 3, view, 0, 2, 0, buf, 40, 2), 'inputs may share memory with each other');
  t.throws(() => native.gemm(false, false, 2, 2, 3, 1, buf, 0, 3, view, 0, 2, 0, view, 1, 2), { message: /^gemm: C shares memory with (A|B)/ });
});

t.test('convolution: y may not share memory with x or w', async (t) => {
  const params = [1, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2];
  const buf = new Float32Array(200).fill(0.5);
  const x = buf.subarray(0, 32);
  const w = buf.subarray(32, 68);
  const yOverX = buf.subarray(16, 48);
  t.throws(() => native.conv2dForward(params, x, w, null, yOverX), { name: 'RangeError', message: overlapError('y', 'x') });
  t.throws(() => native.conv2dForward(params, x, w, null, buf.subarray(60, 92)), { message: /conv2dForward: y shares memory with w/ });
  const y = buf.subarray(100, 132);
  native.conv2dForward(params, x, w, null, y);
  t.ok(y.every((v) => Number.isFinite(v) && v > 0), 'disjoint views of one buffer compute');
  t.throws(() => native.conv2dBackwardWeight(params, y, x, buf.subarray(90, 126)), { message: /conv2dBackwardWeight: gw shares memory with gy/ });
});

t.test('norms: outputs may not overlap inputs or each other', async (t) => {
  const buf = new Float32Array(100).fill(1);
  const x = buf.subarray(0, 16);
  const y = buf.subarray(16, 32);
  t.throws(() => native.groupNormForward(1, 4, 4, 2, x, null, null, 1e-5, y, buf.subarray(30, 32), buf.subarray(40, 42)), { message: /groupNormForward: y shares memory with mean/ });
  t.throws(() => native.groupNormForward(1, 4, 4, 2, x, null, null, 1e-5, y, buf.subarray(10, 12), buf.subarray(40, 42)), { message: /groupNormForward: mean shares memory with x/ });
  t.doesNotThrow(() => native.groupNormForward(1, 4, 4, 2, x, null, null, 1e-5, y, buf.subarray(40, 42), buf.subarray(42, 44)));
});

t.test('elementwise kernels work exactly in place, never partly', async (t) => {
  const buf = new Float32Array([-1, 2, -3, 4, -5, 6, -7, 8]);
  native.relu(buf, buf);
  t.same([...buf], [0, 2, 0, 4, 0, 6, 0, 8], 'relu in place');
  t.throws(() => native.relu(buf.subarray(0, 4), buf.subarray(2, 6)), { message: /relu: y shares memory with x/ });
  const acc = new Float32Array([1, 1, 1, 1]);
  native.axpy(4, 2, acc, acc);
  t.same([...acc], [3, 3, 3, 3], 'axpy onto itself');
  t.throws(() => native.axpy(3, 1, acc.subarray(0, 3), acc.subarray(1, 4)), { message: /axpy: y shares memory with x/ });
  const m = new Float32Array(12);
  t.throws(() => native.softmax(2, 3, m.subarray(0, 6), m.subarray(0, 6), false), { message: /softmax: y shares memory with x/ }, 'softmax reads a row several times: not even exactly in place');
});
