// Rebuilds a model from its configuration (as stored in a checkpoint),
// including compact sub-models: the full model, then the recorded slices.
import type { ModelConfig } from './config.js';
import { Mlp } from './mlp.js';
import { ResNet } from './resnet.js';
import { Transformer } from './transformer.js';
import { Vgg } from './vgg.js';

/** A built-in model: it shows its model record as properties (config, trainedRates, preprocess, ...). */
export type BuiltModel = Mlp | ResNet | Vgg | Transformer;

export function buildModel(config: ModelConfig & { sliceChain?: number[] }): BuiltModel {
  if (config === null || typeof config !== 'object') throw new TypeError('buildModel: config must be an object');
  const { sliceChain, ...base } = config;
  let model: BuiltModel;
  switch (base.kind) {
    case 'mlp':
      model = new Mlp(base);
      break;
    case 'resnet':
      model = new ResNet(base);
      break;
    case 'vgg':
      model = new Vgg(base);
      break;
    case 'transformer':
      model = new Transformer(base);
      break;
    default:
      throw new RangeError(`buildModel: unknown model kind ${JSON.stringify((base as { kind?: unknown }).kind)}`);
  }
  for (const rate of sliceChain ?? []) model = model.slice(rate);
  return model;
}

/**
 * A lower bound on the parameters `config` builds (NaN when a field is not a
 * number; buildModel then reports the field). A model file must hold at least
 * these many values, so a loader can refuse a forged config before building a
 * model far larger than the file (a 552-byte file declaring hidden [2^20]).
 */
export function leastParameters(config: ModelConfig): number {
  const c = config as unknown as Record<string, unknown>;
  const num = (k: string) => (typeof c[k] === 'number' ? (c[k] as number) : NaN);
  switch (config.kind) {
    case 'mlp': {
      const sizes = [num('inputs'), ...(Array.isArray(c.hidden) ? (c.hidden as unknown[]).map((h) => (typeof h === 'number' ? h : NaN)) : [NaN]), num('classes')];
      let n = 0;
      for (let i = 1; i < sizes.length; i++) n += sizes[i - 1] * sizes[i];
      return n;
    }
    case 'resnet': {
      // Every block holds a 3x3 convolution of at least 16 * widen channels in and out.
      const w = 16 * num('widen');
      const perStage = (num('depth') - 2) / (c.block === 'bottleneck' ? 9 : 6);
      return 9 * num('inChannels') * w + 3 * Math.max(0, Math.floor(perStage)) * 9 * w * w + 4 * w * num('classes');
    }
    case 'vgg':
      return 9 * num('inChannels') * 64 + 512 * num('classes');
    case 'transformer': {
      // Embeddings, the head, and per layer the four attention projections and the feed-forward pair.
      const d = num('dModel');
      return (num('vocab') * 2 + num('context')) * d + num('layers') * (4 * d * d + 2 * d * num('ffn'));
    }
    default:
      return NaN;
  }
}
