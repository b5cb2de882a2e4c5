// Argument checks shared by the ops. Every message begins with the op's name
// and names the argument and the shapes involved.
import { Tensor, type Shape } from '../tensor.js';

export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function checkTensor(op: string, name: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) {
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
  }
  return t;
}

export function checkOptionalTensor(op: string, name: string, t: unknown): Tensor | null {
  if (t === null || t === undefined) return null;
  return checkTensor(op, name, t);
}

export function checkRank(op: string, name: string, t: Tensor, rank: number, meaning: string): void {
  if (t.rank !== rank) {
    throw new RangeError(`${op}: ${name} must be ${rank}-D ${meaning}, got shape ${fmt(t.shape)}`);
  }
}

/**
 * An integer option in [min, max]; `undefined` gives `fallback`. `context`
 * (e.g. "for weight [7, 5]") is appended to the message so it names the shapes.
 */
export function checkInt(
  op: string, name: string, value: unknown, min: number, max: number, fallback?: number, context?: string,
): number {
  if (value === undefined && fallback !== undefined) return fallback;
  const where = context === undefined ? '' : ` ${context}`;
  if (typeof value !== 'number') throw new TypeError(`${op}: ${name} must be an integer${where}, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${op}: ${name} must be an integer in [${min}, ${max}]${where}, got ${value}`);
  }
  return value;
}

export function checkOptions(op: string, options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${op}: options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  return options as Record<string, unknown>;
}

/** A number or an [h, w] pair of integers, each in [min, max]. */
export function checkPair(op: string, name: string, value: unknown, min: number, fallback: number): [number, number] {
  if (value === undefined) return [fallback, fallback];
  const pair = Array.isArray(value) ? value : [value, value];
  if (pair.length !== 2) throw new RangeError(`${op}: ${name} must be a number or an [h, w] pair, got [${pair.join(', ')}]`);
  for (const v of pair) {
    if (typeof v !== 'number') throw new TypeError(`${op}: ${name} must be a number or an [h, w] pair of numbers`);
    if (!Number.isInteger(v) || v < min || v > 2 ** 31 - 1) {
      throw new RangeError(`${op}: ${name} must hold integers >= ${min}, got ${Array.isArray(value) ? `[${value.join(', ')}]` : String(value)}`);
    }
  }
  return [pair[0] as number, pair[1] as number];
}

/** Output size of a window sliding over `size` (with padding and dilation), or -1 if it does not fit. */
export function windowOutSize(size: number, kernel: number, stride: number, pad: number, dilation: number): number {
  const span = dilation * (kernel - 1) + 1;
  const padded = size + 2 * pad;
  return padded < span ? -1 : Math.floor((padded - span) / stride) + 1;
}
