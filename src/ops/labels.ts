// Class-index labels, checked against a batch size and class count.
import { captureUnsupported } from '../capture.js';
import { js } from '../js-kernels.js';
import { fmt } from './check.js';

export function checkLabels(
  op: string,
  labels: unknown,
  batch: number,
  classes: number,
  logitsShape: readonly number[],
  name = 'labels',
  what = 'a class index',
  against = 'logits',
): Int32Array {
  if (!(labels instanceof Int32Array) && !Array.isArray(labels)) {
    throw new TypeError(`${op}: ${name} must be an Int32Array or number[], got ${labels === null ? 'null' : typeof labels}`);
  }
  if (labels.length !== batch) {
    throw new RangeError(`${op}: ${labels.length} ${name} for ${against} of shape ${fmt(logitsShape)} (batch ${batch})`);
  }
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= classes) {
      throw new RangeError(`${op}: ${name}[${i}] = ${String(v)} is not ${what} in [0, ${classes}) for ${against} of shape ${fmt(logitsShape)}`);
    }
  }
  // A private copy: the backward pass reads the labels after the caller may have reused its array.
  // Copied by a kernel, so a plan copies the labels of each replay.
  const out = new Int32Array(labels.length);
  if (!(labels instanceof Int32Array)) captureUnsupported(`${op} with ${name} in a number[] (a plan reads ${name} from an Int32Array)`);
  js.copyLabels(labels.length, labels instanceof Int32Array ? labels : Int32Array.from(labels), out);
  return out;
}
