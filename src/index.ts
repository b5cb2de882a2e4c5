// modelslice: neural networks whose width can be cut at run time.
export {
  Tensor,
  tensor,
  zeros,
  ones,
  full,
  randn,
  rand,
  noGrad,
  isGradEnabled,
  type Shape,
  type NestedArray,
  type TensorOptions,
  type RandomOptions,
  type BackwardOptions,
  type GradFn,
} from './tensor.js';
export { Generator, manualSeed, type GeneratorState } from './random.js';
export * from './ops/index.js';
export { setNumThreads, getNumThreads, kernelInfo, startKernelProfile, stopKernelProfile, type KernelProfile } from './threads.js';
export { modelRecord, type ModelRecord, type RateAccuracy } from './metadata.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * from './slicing/index.js';
export * as optim from './optim/index.js';
export * as data from './data/index.js';
export * from './train/index.js';
export * from './generate/index.js';
export * from './io/index.js';
export * from './serve/index.js';
