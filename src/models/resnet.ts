// The CIFAR pre-activation ResNet (He et al., "Identity Mappings in Deep
// Residual Networks"), laid out and named like the model-slicing reference
// code: conv1, layer1..3 of blocks (bn1, conv1, bn2, conv2[, bn3, conv3],
// downsample.0), then bn, ReLU, global average pooling and fc.
import { Conv2d } from '../nn/conv2d.js';
import { kaimingNormalFanOut } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, GroupNorm } from '../nn/norm.js';
import { markSliceBoundaries } from '../nn/sliceable.js';
import { add } from '../ops/add.js';
import { globalAvgPool2d } from '../ops/global-avg-pool2d.js';
import { relu } from '../ops/relu.js';
import type { Tensor } from '../tensor.js';
import { positiveInt, type NormKind, type ResNetConfig } from './config.js';
import { configInputShape } from '../metadata.js';
import { setInputShape } from '../nn/input-shape.js';
import { imageChannels } from './input-shape.js';

/** Shared settings of the blocks of one ResNet (norm kind and group counts). */
export interface BlockContext {
  norm: NormKind;
  sliceGroups: number;
  normGroups: number;
}

function makeNorm(ctx: BlockContext, channels: number): Module {
  if (ctx.norm === 'batch') return new BatchNorm2d(channels);
  return new GroupNorm(Math.min(ctx.normGroups, channels), channels);
}

/** relu(norm(x)), fused into one pass for GroupNorm. */
function normRelu(norm: Module, x: Tensor): Tensor {
  return norm instanceof GroupNorm ? norm.forwardRelu(x) : relu(norm.forward(x));
}

function conv(ctx: BlockContext, inC: number, outC: number, k: number, stride = 1): Conv2d {
  const c = new Conv2d(inC, outC, k, { stride, padding: (k - 1) >> 1, bias: false, sliceGroups: ctx.sliceGroups });
  c.weight.data.set(kaimingNormalFanOut([outC, inC, k, k], k * k * outC).data);
  return c;
}

export class PreActBasicBlock extends Module {
  static readonly expansion = 1;
  readonly bn1: Module;
  readonly conv1: Conv2d;
  readonly bn2: Module;
  readonly conv2: Conv2d;
  readonly downsample: Sequential | null;

  constructor(ctx: BlockContext, inPlanes: number, planes: number, stride: number) {
    super();
    this.bn1 = this.registerModule('bn1', makeNorm(ctx, inPlanes));
    this.conv1 = this.registerModule('conv1', conv(ctx, inPlanes, planes, 3, stride));
    this.bn2 = this.registerModule('bn2', makeNorm(ctx, planes));
    this.conv2 = this.registerModule('conv2', conv(ctx, planes, planes, 3));
    const needsProjection = stride !== 1 || inPlanes !== planes;
    this.downsample = needsProjection ? this.registerModule('downsample', new Sequential(conv(ctx, inPlanes, planes, 1, stride))) : null;
  }

  forward(x: Tensor): Tensor {
    let out = normRelu(this.bn1, x);
    out = this.conv1.forward(out);
    out = normRelu(this.bn2, out);
    out = this.conv2.forward(out);
    const residual = this.downsample ? this.downsample.forward(x) : x;
    return add(out, residual);
  }
}

export class PreActBottleneck extends Module {
  static readonly expansion = 4;
  readonly bn1: Module;
  readonly conv1: Conv2d;
  readonly bn2: Module;
  readonly conv2: Conv2d;
  readonly bn3: Module;
  readonly conv3: Conv2d;
  readonly downsample: Sequential | null;

  constructor(ctx: BlockContext, inPlanes: number, planes: number, stride: number) {
    super();
    const outPlanes = planes * PreActBottleneck.expansion;
    this.bn1 = this.registerModule('bn1', makeNorm(ctx, inPlanes));
    this.conv1 = this.registerModule('conv1', conv(ctx, inPlanes, planes, 1));
    this.bn2 = this.registerModule('bn2', makeNorm(ctx, planes));
    this.conv2 = this.registerModule('conv2', conv(ctx, planes, planes, 3, stride));
    this.bn3 = this.registerModule('bn3', makeNorm(ctx, planes));
    this.conv3 = this.registerModule('conv3', conv(ctx, planes, outPlanes, 1));
    const needsProjection = stride !== 1 || inPlanes !== outPlanes;
    this.downsample = needsProjection ? this.registerModule('downsample', new Sequential(conv(ctx, inPlanes, outPlanes, 1, stride))) : null;
  }

  forward(x: Tensor): Tensor {
    let out = normRelu(this.bn1, x);
    out = this.conv1.forward(out);
    out = normRelu(this.bn2, out);
    out = this.conv2.forward(out);
    out = normRelu(this.bn3, out);
    out = this.conv3.forward(out);
    const residual = this.downsample ? this.downsample.forward(x) : x;
    return add(out, residual);
  }
}

export interface ResNetOptions {
  depth: number;
  classes: number;
  inChannels?: number;
  /** Shape of one input without the batch, `[inChannels, H, W]`; default `[inChannels, 32, 32]`. */
  inputShape?: number[];
  widen?: number;
  block?: 'basic' | 'bottleneck';
  norm?: NormKind;
  sliceGroups?: number;
  normGroups?: number;
}

export class ResNet extends Model {
  declare readonly config: ResNetConfig;
  readonly conv1: Conv2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly bn: Module;
  readonly fc: Linear;

  constructor(config: ResNetConfig) {
    super();
    this.config = config;
    const ctx: BlockContext = { norm: config.norm, sliceGroups: config.sliceGroups, normGroups: config.normGroups };
    const Block = config.block === 'basic' ? PreActBasicBlock : PreActBottleneck;
    const perStage = config.block === 'basic' ? (config.depth - 2) / 6 : (config.depth - 2) / 9;
    let inPlanes = 16;
    this.conv1 = this.registerModule('conv1', conv(ctx, config.inChannels, 16, 3));
    const stage = (name: string, planes: number, stride: number): Sequential => {
      const blocks: Module[] = [];
      for (let i = 0; i < perStage; i++) {
        blocks.push(new Block(ctx, inPlanes, planes, i === 0 ? stride : 1));
        inPlanes = planes * Block.expansion;
      }
      return this.registerModule(name, new Sequential(...blocks));
    };
    this.layer1 = stage('layer1', 16 * config.widen, 1);
    this.layer2 = stage('layer2', 32 * config.widen, 2);
    this.layer3 = stage('layer3', 64 * config.widen, 2);
    this.bn = this.registerModule('bn', makeNorm(ctx, inPlanes));
    this.fc = this.registerModule('fc', new Linear(inPlanes, config.classes, { sliceGroups: config.sliceGroups }));
    this.inputShape = configInputShape(config);
    markSliceBoundaries(this);
  }

  forward(x: Tensor): Tensor {
    let h = this.conv1.forward(x);
    h = this.layer3.forward(this.layer2.forward(this.layer1.forward(h)));
    h = normRelu(this.bn, h);
    return this.fc.forward(globalAvgPool2d(h));
  }

}

/**
 * The block kind of a ResNet of this depth (basic up to 110, bottleneck above,
 * unless `block` says), or a RangeError when the depth does not fit it.
 */
export function resnetBlock(op: string, depth: number, block?: 'basic' | 'bottleneck'): 'basic' | 'bottleneck' {
  const kind = block ?? (depth <= 110 ? 'basic' : 'bottleneck');
  if (kind !== 'basic' && kind !== 'bottleneck') throw new RangeError(`${op}: block must be 'basic' or 'bottleneck', got ${String(kind)}`);
  if (kind === 'basic' && (depth - 2) % 6 !== 0) {
    throw new RangeError(`${op}: a basic-block ResNet needs depth = 6n + 2 (20, 32, 44, 56, 110, ...), got ${depth}`);
  }
  if (kind === 'bottleneck' && (depth - 2) % 9 !== 0) {
    throw new RangeError(`${op}: a bottleneck ResNet needs depth = 9n + 2 (29, 56, 164, ...), got ${depth}`);
  }
  return kind;
}

export function resnet(options: ResNetOptions): ResNet {
  const op = 'resnet';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const depth = positiveInt(op, 'depth', options.depth);
  const block = resnetBlock(op, depth, options.block);
  const norm = options.norm ?? 'group';
  if (norm !== 'group' && norm !== 'batch') throw new RangeError(`${op}: norm must be 'group' or 'batch', got ${String(norm)}`);
  const model = new ResNet({
    kind: 'resnet',
    depth,
    classes: positiveInt(op, 'classes', options.classes),
    inChannels: positiveInt(op, 'inChannels', imageChannels(op, options, 3)),
    widen: positiveInt(op, 'widen', options.widen, 1),
    block,
    norm,
    sliceGroups: positiveInt(op, 'sliceGroups', options.sliceGroups, 8),
    normGroups: positiveInt(op, 'normGroups', options.normGroups, 8),
  });
  if (options.inputShape !== undefined) setInputShape(op, model, options.inputShape);
  return model;
}
