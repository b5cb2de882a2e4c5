export { mlp, Mlp, type MlpOptions } from './mlp.js';
export { resnet, ResNet, PreActBasicBlock, PreActBottleneck, type BlockContext, type ResNetOptions } from './resnet.js';
export { vgg, Vgg, type VggOptions } from './vgg.js';
export { transformer, Transformer, type TransformerOptions } from './transformer.js';
export type { ModelConfig, MlpConfig, ResNetConfig, VggConfig, TransformerConfig, NormKind } from './config.js';
export { buildModel, type BuiltModel } from './build.js';
