// klDiv: mean over the batch of sum_j q (log q - logp), with 0 log 0 = 0. No
// gradient flows into q: it is the teacher's (detached) distribution in
// in-place distillation.
import { js } from '../js-kernels.js';
import { gradSink, outputBuffer, record, sameShape, Tensor } from '../tensor.js';
import { checkRank, checkTensor, fmt } from './check.js';

export function klDiv(logp: Tensor, q: Tensor): Tensor {
  const op = 'klDiv';
  checkTensor(op, 'logp', logp);
  checkTensor(op, 'q', q);
  checkRank(op, 'logp', logp, 2, '[N, classes]');
  if (!sameShape(logp.shape, q.shape)) {
    throw new RangeError(`${op}: q of shape ${fmt(q.shape)} must match logp of shape ${fmt(logp.shape)}`);
  }
  const [n, c] = logp.shape;
  const loss = outputBuffer(1);
  js.klDiv(n, c, logp.data, q.data, loss);
  return record(new Tensor(loss, []), op, [logp], (g) => {
    const gl = gradSink(logp);
    if (gl !== null) js.klDivBackward(n, c, q.data, g, gl);
  });
}
