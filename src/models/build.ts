// Rebuilds a model from its configuration (as stored in a checkpoint),
// including compact sub-models: the full model, then the recorded slices.
import type { Module } from '../nn/module.js';
import type { ModelConfig } from './config.js';
import { Mlp } from './mlp.js';
import { ResNet } from './resnet.js';
import { Vgg } from './vgg.js';

export function buildModel(config: ModelConfig & { sliceChain?: number[] }): Module {
  if (config === null || typeof config !== 'object') throw new TypeError('buildModel: config must be an object');
  const { sliceChain, ...base } = config;
  let model: Module;
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
    default:
      throw new RangeError(`buildModel: unknown model kind ${JSON.stringify((base as { kind?: unknown }).kind)}`);
  }
  for (const rate of sliceChain ?? []) model = model.slice(rate);
  return model;
}
