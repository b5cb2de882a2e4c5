// The input a model was built or trained for. Every cost table, latency
// profile, export, compact copy and server needs the shape of one input; a
// model records it (models.* set it, fit overwrites it with the data it
// trained on, the model file keeps it), so none of them has to guess. A model
// with a built-in config also says which shapes it can take (metadata.ts).
import { configInputProblem, configInputShape, modelRecord } from '../metadata.js';
import type { Module } from './module.js';

export function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map(String).join(', ')}]`;
}

/** A positive-integer shape of one input (no batch), or a RangeError naming `name`. */
export function checkShape(op: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1)) {
    throw new RangeError(`${op}: ${name} must be the shape of one input without the batch, e.g. [3, 32, 32], got ${JSON.stringify(shape)}`);
  }
  return [...(shape as number[])];
}

/**
 * Checks that `shape` (one input, no batch) can feed `model`; a RangeError
 * that names both the given shape and the model's own otherwise. Models
 * without a built-in config accept any shape here (their own forward checks).
 */
export function checkModelInput(op: string, model: Module, shape: readonly number[], name = 'inputShape'): number[] {
  const checked = checkShape(op, name, shape);
  const { config, inputShape } = modelRecord(model);
  const why = config === undefined ? null : configInputProblem(config, checked);
  if (why !== null) {
    const own = inputShape ?? configInputShape(config!);
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
  const { config, inputShape } = modelRecord(model);
  if (inputShape !== undefined) return [...inputShape];
  if (config !== undefined) return configInputShape(config);
  throw new TypeError(`${op}: ${name} is required for a model that does not record its input shape`);
}

/** Records the input `model` takes (what models.* and fit call). */
export function setInputShape(op: string, model: Module, shape: readonly number[], name = 'inputShape'): void {
  modelRecord(model).inputShape = checkModelInput(op, model, shape, name);
}
