// klDiv: mean over the batch of sum_j q (log q - logp), with 0 log 0 = 0. No
// gradient flows into q: it is the teacher's (detached) distribution in
// in-place distillation.
import { captureUnsupported } from '../capture.js';
import { gradSink, record, sameShape, Tensor } from '../tensor.js';
import { checkRank, checkTensor, fmt } from './check.js';

export function klDiv(logp: Tensor, q: Tensor): Tensor {
  const op = 'klDiv';
  checkTensor(op, 'logp', logp);
  checkTensor(op, 'q', q);
  checkRank(op, 'logp', logp, 2, '[N, classes]');
  if (!sameShape(logp.shape, q.shape)) {
    throw new RangeError(`${op}: q of shape ${fmt(q.shape)} must match logp of shape ${fmt(logp.shape)}`);
  }
  const n = logp.shape[0];
  captureUnsupported(op);
  let total = 0;
  for (let i = 0; i < q.size; i++) {
    const qi = q.data[i];
    if (qi > 0) total += qi * (Math.log(qi) - logp.data[i]);
  }
  const value = n === 0 ? NaN : total / n;
  return record(new Tensor(new Float32Array([value]), []), op, [logp], (g) => {
    const gl = gradSink(logp);
    if (gl === null) return;
    const scale = g[0] / n;
    for (let i = 0; i < q.size; i++) gl[i] -= scale * q.data[i];
  });
}
