// A sliceable multi-layer perceptron: Linear + ReLU per hidden layer, then a
// full-width classifier. Parameter names follow nn.Sequential: 0.weight, 2.weight, ...
import { Linear } from '../nn/linear.js';
import { ReLU, Sequential } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { markSliceBoundaries } from '../nn/sliceable.js';
import { flatten } from '../ops/reshape.js';
import type { Tensor } from '../tensor.js';
import { positiveInt, type MlpConfig } from './config.js';
import { configInputShape, type ModelRecord } from '../metadata.js';
import { showModelRecord } from '../nn/model.js';
import { checkShape, setInputShape } from '../nn/input-shape.js';

export interface MlpOptions {
  /** Input features; may be left out when `inputShape` is given (its product). */
  inputs?: number;
  /** Shape of one input without the batch (default `[inputs]`); images are flattened. */
  inputShape?: number[];
  hidden: number[];
  classes: number;
  sliceGroups?: number;
}

// Mlp is a Sequential (its parameter names are nn.Sequential's) that shows its model record.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface Mlp extends ModelRecord {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Mlp extends Sequential {
  declare readonly config: MlpConfig;

  constructor(config: MlpConfig) {
    const layers: Module[] = [];
    let inF = config.inputs;
    for (const h of config.hidden) {
      layers.push(new Linear(inF, h, { sliceGroups: config.sliceGroups }), new ReLU());
      inF = h;
    }
    layers.push(new Linear(inF, config.classes, { sliceGroups: config.sliceGroups }));
    super(...layers);
    this.config = config;
    this.inputShape = configInputShape(config);
    markSliceBoundaries(this);
  }

  override forward(x: Tensor): Tensor {
    // Images arrive as [N, C, H, W]; the MLP sees their pixels as features.
    return super.forward(x.rank > 2 ? flatten(x) : x);
  }
}
showModelRecord(Mlp);

export function mlp(options: MlpOptions): Mlp {
  const op = 'mlp';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const hidden = options.hidden ?? [];
  if (!Array.isArray(hidden)) throw new TypeError(`${op}: hidden must be an array of layer sizes`);
  const shape = options.inputShape === undefined ? undefined : checkShape(op, 'inputShape', options.inputShape);
  const implied = shape?.reduce((a, b) => a * b, 1);
  if (shape !== undefined && options.inputs !== undefined && options.inputs !== implied) {
    throw new RangeError(`${op}: inputs ${String(options.inputs)} disagrees with inputShape [${shape.join(', ')}] (${implied} values)`);
  }
  const model = new Mlp({
    kind: 'mlp',
    inputs: positiveInt(op, 'inputs', options.inputs ?? implied),
    hidden: hidden.map((h, i) => positiveInt(op, `hidden[${i}]`, h)),
    classes: positiveInt(op, 'classes', options.classes),
    sliceGroups: positiveInt(op, 'sliceGroups', options.sliceGroups, 8),
  });
  if (shape !== undefined) setInputShape(op, model, shape);
  return model;
}
