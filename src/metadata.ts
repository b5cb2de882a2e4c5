// Types of what travels with a model besides its layers: the architecture a
// checkpoint rebuilds it from and its measured latency. They sit outside nn/,
// models/ and slicing/ because Module carries them and all three read them.

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

/** Architecture configurations: what a checkpoint stores to rebuild a model. */
export type ModelConfig = MlpConfig | ResNetConfig | VggConfig;

/** A model's architecture, plus the slices that made a compact model from it. */
export type SavedConfig = ModelConfig & { sliceChain?: number[] };

export interface LatencyProfile {
  /** Milliseconds per forward pass, by batch size, then by rate. */
  byBatch: Record<number, Record<number, number>>;
}
