// The input a model was built or trained for. Every cost table, latency
// profile, export and server needs the shape of one input; a model records it
// (models.* set it, fit overwrites it with the data it trained on, the model
// file keeps it), so none of them has to guess.
import { checkShape } from '../nn/input-shape.js';
import type { Module } from '../nn/module.js';
import type { ModelConfig } from './config.js';

export { checkShape };

/** Max-pools of 2 in a built-in VGG: its spatial size must survive halving this many times. */
export const VGG_POOLS = 5;

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map(String).join(', ')}]`;
}

/**
 * The shape a config implies when nothing better is known: what models were
 * assumed to take before they recorded their input (32x32 images for the
 * CIFAR-style networks).
 */
export function configInputShape(config: ModelConfig): number[] {
  if (config.kind === 'mlp') return [config.inputs];
  return [config.inChannels, 32, 32];
}

/** Why `shape` cannot feed a model of this config, or null when it can. */
function disagreement(config: ModelConfig, shape: readonly number[]): string | null {
  const size = shape.reduce((a, b) => a * b, 1);
  if (config.kind === 'mlp') {
    return size === config.inputs ? null : `an MLP of ${config.inputs} inputs takes ${config.inputs} values per input, not ${size}`;
  }
  if (shape.length !== 3) return `a ${config.kind} takes images [channels, height, width]`;
  if (shape[0] !== config.inChannels) return `a ${config.kind} built for ${config.inChannels} input channel${config.inChannels === 1 ? '' : 's'} cannot take ${shape[0]}`;
  if (config.kind === 'vgg' && (shape[1] < 2 ** VGG_POOLS || shape[2] < 2 ** VGG_POOLS)) {
    return `a VGG's ${VGG_POOLS} max-pools of 2 need images of at least ${2 ** VGG_POOLS}x${2 ** VGG_POOLS}`;
  }
  return null;
}

/**
 * Checks that `shape` (one input, no batch) can feed `model`; a RangeError
 * that names both the given shape and the model's own otherwise. Models
 * without a built-in config accept any shape here (their own forward checks).
 */
export function checkModelInput(op: string, model: Module, shape: readonly number[], name = 'inputShape'): number[] {
  const checked = checkShape(op, name, shape);
  const config = model.config;
  if (config === undefined) return checked;
  const why = disagreement(config, checked);
  if (why !== null) {
    const own = model.inputShape ?? configInputShape(config);
    throw new RangeError(`${op}: ${name} ${formatShape(checked)} does not fit the model, which takes ${formatShape(own)}: ${why}`);
  }
  return checked;
}

/**
 * The input shape an operation should use: the one given (checked against the
 * model), else the model's own. A model with neither is a TypeError naming the
 * option to pass.
 */
export function modelInputShape(op: string, model: Module, given?: readonly number[] | null, name = 'inputShape'): number[] {
  if (given !== undefined && given !== null) return checkModelInput(op, model, given, name);
  if (model.inputShape !== undefined) return [...model.inputShape];
  if (model.config !== undefined) return configInputShape(model.config);
  throw new TypeError(`${op}: ${name} is required for a model that does not record its input shape`);
}

/** Records the input `model` takes (what models.* and fit call). */
export function setInputShape(op: string, model: Module, shape: readonly number[], name = 'inputShape'): void {
  model.inputShape = checkModelInput(op, model, shape, name);
}

/**
 * The input channels of an image model from its options: `inChannels`, or the
 * first dimension of `inputShape`, which must agree when both are given.
 */
export function imageChannels(op: string, options: { inChannels?: number; inputShape?: number[] }, fallback: number): number {
  if (options.inputShape === undefined) return options.inChannels ?? fallback;
  const shape = checkShape(op, 'inputShape', options.inputShape);
  if (shape.length !== 3) throw new RangeError(`${op}: inputShape must be [channels, height, width], got ${JSON.stringify(options.inputShape)}`);
  if (options.inChannels !== undefined && options.inChannels !== shape[0]) {
    throw new RangeError(`${op}: inChannels ${String(options.inChannels)} disagrees with inputShape ${formatShape(shape)}`);
  }
  return shape[0];
}
