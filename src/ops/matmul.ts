// matmul: [M, K] x [K, N], or batched [B, M, K] x [B, K, N].
import { native } from '../native.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkTensor, fmt } from './check.js';

export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  checkTensor(op, 'a', a);
  checkTensor(op, 'b', b);
  if (!((a.rank === 2 && b.rank === 2) || (a.rank === 3 && b.rank === 3))) {
    throw new RangeError(`${op}: expected [M, K] x [K, N] or [B, M, K] x [B, K, N], got ${fmt(a.shape)} x ${fmt(b.shape)}`);
  }
  const batched = a.rank === 3;
  const batch = batched ? a.shape[0] : 1;
  if (batched && b.shape[0] !== batch) {
    throw new RangeError(`${op}: batch sizes differ: a ${fmt(a.shape)}, b ${fmt(b.shape)}`);
  }
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  if (K !== K2) throw new RangeError(`${op}: inner sizes differ: a ${fmt(a.shape)}, b ${fmt(b.shape)}`);
  const outShape = batched ? [batch, M, N] : [M, N];
  const c = outputBuffer(batch * M * N);
  const lda = Math.max(K, 1);
  const ldb = Math.max(N, 1);
  const ldc = Math.max(N, 1);
  for (let i = 0; i < batch; i++) {
    native.gemm(false, false, M, N, K, 1, a.data, i * M * K, lda, b.data, i * K * N, ldb, 0, c, i * M * N, ldc);
  }
  return record(new Tensor(c, outShape), op, [a, b], (g) => {
    const ga = gradSink(a);
    const gb = gradSink(b);
    for (let i = 0; i < batch; i++) {
      // dA = dC B^T, dB = A^T dC
      if (ga !== null) native.gemm(false, true, M, K, N, 1, g, i * M * N, ldc, b.data, i * K * N, ldb, 1, ga, i * M * K, lda);
      if (gb !== null) native.gemm(true, false, K, N, M, 1, a.data, i * M * K, lda, g, i * M * N, ldc, 1, gb, i * K * N, ldb);
    }
  });
}
