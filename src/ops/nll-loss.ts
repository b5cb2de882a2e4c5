// nllLoss: mean over the batch of -logp[i, label_i].
import { captureUnsupported } from '../capture.js';
import { gradSink, record, Tensor } from '../tensor.js';
import { checkRank, checkTensor } from './check.js';
import { checkLabels } from './labels.js';

export function nllLoss(logp: Tensor, labels: Int32Array | readonly number[]): Tensor {
  const op = 'nllLoss';
  checkTensor(op, 'logp', logp);
  checkRank(op, 'logp', logp, 2, '[N, classes]');
  const [n, c] = logp.shape;
  const y = checkLabels(op, labels, n, c, logp.shape);
  captureUnsupported(op);
  let total = 0;
  for (let i = 0; i < n; i++) total -= logp.data[i * c + y[i]];
  const value = n === 0 ? NaN : total / n;
  return record(new Tensor(new Float32Array([value]), []), op, [logp], (g) => {
    const gl = gradSink(logp);
    if (gl === null) return;
    const scale = g[0] / n;
    for (let i = 0; i < n; i++) gl[i * c + y[i]] -= scale;
  });
}
