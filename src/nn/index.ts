export { Module, type StateDict, type LoadStateDictOptions, type SavedConfig } from './module.js';
export { Model } from './model.js';
export { Linear, type LinearLayerOptions } from './linear.js';
export { Conv2d, type Conv2dLayerOptions } from './conv2d.js';
export { GroupNorm, BatchNorm2d, BatchNormState, scaledNormGroups, type GroupNormLayerOptions, type BatchNormLayerOptions } from './norm.js';
export { ReLU, Identity, Flatten, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Sequential } from './layers.js';
export { SliceableLayer, markSliceBoundaries, type SliceOptions } from './sliceable.js';
export { Embedding, LayerNorm } from './embedding.js';
export { CausalSelfAttention, TransformerBlock, type TransformerBlockOptions } from './transformer.js';
