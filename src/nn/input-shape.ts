// The shape of one input (no batch) as a module records or is given it.
// What a built-in model's config adds to the check lives in models/input-shape.ts.

/** A positive-integer shape of one input (no batch), or a RangeError naming `name`. */
export function checkShape(op: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1)) {
    throw new RangeError(`${op}: ${name} must be the shape of one input without the batch, e.g. [3, 32, 32], got ${JSON.stringify(shape)}`);
  }
  return [...(shape as number[])];
}
