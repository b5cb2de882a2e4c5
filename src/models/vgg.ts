// CIFAR-style VGG: 3x3 convolutions (padding 1) with norm and ReLU, max pooling
// between stages, then a linear classifier on the 512 pooled features.
// Names follow the common CIFAR code: features.N.*, classifier.*.
import { Conv2d } from '../nn/conv2d.js';
import { kaimingNormalFanOut } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, GroupNorm } from '../nn/norm.js';
import { markSliceBoundaries } from '../nn/sliceable.js';
import { globalAvgPool2d } from '../ops/global-avg-pool2d.js';
import type { Tensor } from '../tensor.js';
import { positiveInt, type NormKind, type VggConfig } from './config.js';
import { configInputShape } from '../metadata.js';
import { setInputShape } from '../nn/input-shape.js';
import { imageChannels } from './input-shape.js';

const M = 'M' as const;
const layouts: Record<11 | 13 | 16 | 19, (number | typeof M)[]> = {
  11: [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
  13: [64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
  16: [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
  19: [64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M],
};

export interface VggOptions {
  depth: number;
  classes: number;
  inChannels?: number;
  /** Shape of one input without the batch, `[inChannels, H, W]`; default `[inChannels, 32, 32]`. */
  inputShape?: number[];
  norm?: NormKind;
  sliceGroups?: number;
  normGroups?: number;
}

export class Vgg extends Model {
  declare readonly config: VggConfig;
  readonly features: Sequential;
  readonly classifier: Linear;

  constructor(config: VggConfig) {
    super();
    this.config = config;
    const layers: Module[] = [];
    let inC = config.inChannels;
    for (const v of layouts[config.depth]) {
      if (v === M) {
        layers.push(new MaxPool2d(2));
        continue;
      }
      // Biased convolutions, as the reference code's VGG has them (so its weights import as they are).
      const c = new Conv2d(inC, v, 3, { padding: 1, sliceGroups: config.sliceGroups });
      c.weight.data.set(kaimingNormalFanOut([v, inC, 3, 3], 9 * v).data);
      const norm = config.norm === 'batch' ? new BatchNorm2d(v) : new GroupNorm(Math.min(config.normGroups, v), v);
      layers.push(c, norm, new ReLU());
      inC = v;
    }
    this.features = this.registerModule('features', new Sequential(...layers));
    this.classifier = this.registerModule('classifier', new Linear(inC, config.classes, { sliceGroups: config.sliceGroups }));
    this.inputShape = configInputShape(config);
    markSliceBoundaries(this);
  }

  forward(x: Tensor): Tensor {
    return this.classifier.forward(globalAvgPool2d(this.features.forward(x)));
  }

}

/** A VGG depth (11, 13, 16 or 19), or a RangeError. */
export function vggDepth(op: string, depth: unknown): 11 | 13 | 16 | 19 {
  if (depth !== 11 && depth !== 13 && depth !== 16 && depth !== 19) {
    throw new RangeError(`${op}: depth must be 11, 13, 16 or 19, got ${String(depth)}`);
  }
  return depth;
}

export function vgg(options: VggOptions): Vgg {
  const op = 'vgg';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const depth = vggDepth(op, options.depth);
  const norm = options.norm ?? 'group';
  if (norm !== 'group' && norm !== 'batch') throw new RangeError(`${op}: norm must be 'group' or 'batch', got ${String(norm)}`);
  const model = new Vgg({
    kind: 'vgg',
    depth,
    classes: positiveInt(op, 'classes', options.classes),
    inChannels: positiveInt(op, 'inChannels', imageChannels(op, options, 3)),
    norm,
    sliceGroups: positiveInt(op, 'sliceGroups', options.sliceGroups, 8),
    normGroups: positiveInt(op, 'normGroups', options.normGroups, 8),
  });
  if (options.inputShape !== undefined) setInputShape(op, model, options.inputShape);
  return model;
}
