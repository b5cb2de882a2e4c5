// nllLoss: mean over the batch of -logp[i, label_i].
import { js } from '../js-kernels.js';
import { gradSink, outputBuffer, record, Tensor } from '../tensor.js';
import { checkRank, checkTensor } from './check.js';
import { checkLabels } from './labels.js';

export function nllLoss(logp: Tensor, labels: Int32Array | readonly number[]): Tensor {
  const op = 'nllLoss';
  checkTensor(op, 'logp', logp);
  checkRank(op, 'logp', logp, 2, '[N, classes]');
  const [n, c] = logp.shape;
  const y = checkLabels(op, labels, n, c, logp.shape);
  const loss = outputBuffer(1);
  js.nllLoss(n, c, logp.data, y, loss);
  return record(new Tensor(loss, []), op, [logp], (g) => {
    const gl = gradSink(logp);
    if (gl !== null) js.nllLossBackward(n, c, y, g, gl);
  });
}
