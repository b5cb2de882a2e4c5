// What travels with a model besides its layers: the architecture a checkpoint
// rebuilds it from (and the inputs that architecture can take), the input it
// takes, the rates it was trained at, its preprocessing, measured latency and
// accuracy per rate. This is the model's record, kept beside the model (not
// on every layer): `modelRecord(m)`. It sits outside nn/, models/ and
// slicing/ because all three read it.

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

export interface TransformerConfig {
  kind: 'transformer';
  /** Tokens in the vocabulary (rows of the embedding, columns of the output head). */
  vocab: number;
  /** Width of the residual stream (full at every rate). */
  dModel: number;
  /** Attention heads per layer: the slice groups of the attention. */
  heads: number;
  layers: number;
  /** Hidden units of each feed-forward block. */
  ffn: number;
  /** Slice groups of the feed-forward hidden layer. */
  ffnGroups: number;
  /** Longest sequence (learned positions). */
  context: number;
}

/** Architecture configurations: what a checkpoint stores to rebuild a model. */
export type ModelConfig = MlpConfig | ResNetConfig | VggConfig | TransformerConfig;

/** A model's architecture, plus the slices that made a compact model from it. */
export type SavedConfig = ModelConfig & { sliceChain?: number[] };

export interface LatencyProfile {
  /** Milliseconds per forward pass, by batch size, then by rate. */
  byBatch: Record<number, Record<number, number>>;
}

/** Accuracy measured at one rate (set by evaluate, saved in the model file). */
export interface RateAccuracy {
  rate: number;
  /** Fraction in [0, 1]. */
  accuracy: number;
  /** Examples it was measured on. */
  examples: number;
}

/** The model-level record: what a model file stores besides the weights. */
export interface ModelRecord {
  /** Architecture of a built-in model (what a checkpoint stores to rebuild it). */
  config?: SavedConfig;
  /**
   * Shape of one input (without the batch) the model was built or trained for:
   * set by models.*, overwritten by fit with its data's shape. Cost tables,
   * profiles, exports and servers use it by default.
   */
  inputShape?: number[];
  /** Rates the model was trained at, widest first (set by fit). */
  trainedRates?: number[];
  /** Input standardisation the model expects, (x - mean) / std. */
  preprocess?: { mean: number; std: number };
  /** Measured forward latency per batch size and rate (set by profileLatency). */
  latencyProfile?: LatencyProfile;
  /** Accuracy per rate from the last evaluate() (widest first). */
  accuracy?: RateAccuracy[];
  /** Name of the dataset the model was trained on (set by the CLI). */
  dataset?: string;
  /** A language model's tokens by id (a character-level model: one character each). */
  vocabulary?: string[];
}

const records = new WeakMap<object, ModelRecord>();

/**
 * The record of `model` (any module used as a model), made empty on first use.
 * Built-in models (and custom models that extend nn.Model) also show its
 * fields as properties: `model.preprocess = stats` is `modelRecord(model).preprocess = stats`.
 */
export function modelRecord(model: object): ModelRecord {
  let record = records.get(model);
  if (record === undefined) {
    record = {};
    records.set(model, record);
  }
  return record;
}

/** Max-pools of 2 in a built-in VGG: its spatial size must survive halving this many times. */
export const VGG_POOLS = 5;

/**
 * The shape of one input a config implies when nothing better is known: what
 * models were assumed to take before they recorded their input (32x32 images
 * for the CIFAR-style networks).
 */
export function configInputShape(config: ModelConfig): number[] {
  if (config.kind === 'mlp') return [config.inputs];
  if (config.kind === 'transformer') return [config.context];
  return [config.inChannels, 32, 32];
}

/** Why `shape` (one input, no batch) cannot feed a model of this config, or null when it can. */
export function configInputProblem(config: ModelConfig, shape: readonly number[]): string | null {
  const size = shape.reduce((a, b) => a * b, 1);
  if (config.kind === 'mlp') {
    return size === config.inputs ? null : `an MLP of ${config.inputs} inputs takes ${config.inputs} values per input, not ${size}`;
  }
  if (config.kind === 'transformer') {
    if (shape.length !== 1) return 'a transformer takes sequences of token ids [T]';
    return shape[0] <= config.context ? null : `a transformer of context ${config.context} takes at most ${config.context} tokens, not ${shape[0]}`;
  }
  if (shape.length !== 3) return `a ${config.kind} takes images [channels, height, width]`;
  if (shape[0] !== config.inChannels) return `a ${config.kind} built for ${config.inChannels} input channel${config.inChannels === 1 ? '' : 's'} cannot take ${shape[0]}`;
  if (config.kind === 'vgg' && (shape[1] < 2 ** VGG_POOLS || shape[2] < 2 ** VGG_POOLS)) {
    return `a VGG's ${VGG_POOLS} max-pools of 2 need images of at least ${2 ** VGG_POOLS}x${2 ** VGG_POOLS}`;
  }
  return null;
}
