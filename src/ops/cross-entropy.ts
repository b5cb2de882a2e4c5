// crossEntropy: a composite, nllLoss(logSoftmax(logits)), as PyTorch defines it.
import type { Tensor } from '../tensor.js';
import { checkRank, checkTensor } from './check.js';
import { checkLabels } from './labels.js';
import { logSoftmax } from './log-softmax.js';
import { nllLoss } from './nll-loss.js';

/** Mean over the batch of -log softmax(logits)[label]; shape []. */
export function crossEntropy(logits: Tensor, labels: Int32Array | readonly number[]): Tensor {
  const op = 'crossEntropy';
  checkTensor(op, 'logits', logits);
  checkRank(op, 'logits', logits, 2, '[N, classes]');
  const y = checkLabels(op, labels, logits.shape[0], logits.shape[1], logits.shape);
  return nllLoss(logSoftmax(logits), y);
}
