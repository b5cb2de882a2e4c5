// Architecture configurations: what a checkpoint stores to rebuild a model.
export interface MlpConfig {
  kind: 'mlp';
  inputs: number;
  hidden: number[];
  classes: number;
  sliceGroups: number;
}

export type NormKind = 'group' | 'batch';

export interface ResNetConfig {
  kind: 'resnet';
  depth: number;
  classes: number;
  inChannels: number;
  widen: number;
  block: 'basic' | 'bottleneck';
  norm: NormKind;
  sliceGroups: number;
  normGroups: number;
}

export interface VggConfig {
  kind: 'vgg';
  depth: 11 | 13 | 16 | 19;
  classes: number;
  inChannels: number;
  norm: NormKind;
  sliceGroups: number;
  normGroups: number;
}

export type ModelConfig = MlpConfig | ResNetConfig | VggConfig;

export function positiveInt(op: string, name: string, v: unknown, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`${op}: ${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}
