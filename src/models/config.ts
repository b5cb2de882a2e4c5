// Architecture configurations: what a checkpoint stores to rebuild a model.
// The types live in metadata.ts, which nn/ can read without knowing models/.
export type { MlpConfig, NormKind, ResNetConfig, TransformerConfig, VggConfig, ModelConfig } from '../metadata.js';

export function positiveInt(op: string, name: string, v: unknown, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`${op}: ${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}
