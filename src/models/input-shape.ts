// The input shape among a model's build options: `inChannels`, `inputShape`,
// or both, which must agree. The rules for a shape a model records or is given
// live in nn/input-shape.ts and metadata.ts.
import { checkShape, formatShape } from '../nn/input-shape.js';

/**
 * The input channels of an image model from its options: `inChannels`, or the
 * first dimension of `inputShape`, which must agree when both are given.
 */
export function imageChannels(op: string, options: { inChannels?: number; inputShape?: number[] }, fallback: number): number {
  if (options.inputShape === undefined) return options.inChannels ?? fallback;
  const shape = checkShape(op, 'inputShape', options.inputShape);
  if (shape.length !== 3) throw new RangeError(`${op}: inputShape must be [channels, height, width], got ${JSON.stringify(options.inputShape)}`);
  if (options.inChannels !== undefined && options.inChannels !== shape[0]) {
    throw new RangeError(`${op}: inChannels ${String(options.inChannels)} disagrees with inputShape ${formatShape(shape)}`);
  }
  return shape[0];
}
