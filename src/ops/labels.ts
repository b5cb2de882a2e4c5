// Class-index labels, checked against a batch size and class count.
import { captureUnsupported } from '../capture.js';
import { js } from '../js-kernels.js';
import { fmt } from './check.js';

export function checkLabels(op: string, labels: unknown, batch: number, classes: number, logitsShape: readonly number[]): Int32Array {
  if (!(labels instanceof Int32Array) && !Array.isArray(labels)) {
    throw new TypeError(`${op}: labels must be an Int32Array or number[], got ${labels === null ? 'null' : typeof labels}`);
  }
  if (labels.length !== batch) {
    throw new RangeError(`${op}: ${labels.length} labels for logits of shape ${fmt(logitsShape)} (batch ${batch})`);
  }
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= classes) {
      throw new RangeError(`${op}: labels[${i}] = ${String(v)} is not a class index in [0, ${classes}) for logits of shape ${fmt(logitsShape)}`);
    }
  }
  // A private copy: the backward pass reads the labels after the caller may have reused its array.
  // Copied by a kernel, so a plan copies the labels of each replay.
  const out = new Int32Array(labels.length);
  if (!(labels instanceof Int32Array)) captureUnsupported(`${op} with labels in a number[] (a plan reads labels from an Int32Array)`);
  js.copyLabels(labels.length, labels instanceof Int32Array ? labels : Int32Array.from(labels), out);
  return out;
}
