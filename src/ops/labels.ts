// Class-index labels, checked against a batch size and class count.
import { fmt } from './check.js';

export function checkLabels(op: string, labels: unknown, batch: number, classes: number, logitsShape: readonly number[]): Int32Array {
  if (!(labels instanceof Int32Array) && !Array.isArray(labels)) {
    throw new TypeError(`${op}: labels must be an Int32Array or number[], got ${labels === null ? 'null' : typeof labels}`);
  }
  if (labels.length !== batch) {
    throw new RangeError(`${op}: ${labels.length} labels for logits of shape ${fmt(logitsShape)} (batch ${batch})`);
  }
  // A private copy: the backward pass reads the labels after the caller may have reused its array.
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= classes) {
      throw new RangeError(`${op}: labels[${i}] = ${String(v)} is not a class index in [0, ${classes}) for logits of shape ${fmt(logitsShape)}`);
    }
    out[i] = v;
  }
  return out;
}
