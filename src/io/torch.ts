// Importing PyTorch weights. The built-in models use the parameter names of
// the model-slicing reference code (bearpaw's CIFAR layouts), so a PyTorch
// state_dict maps one to one, with these rules:
//   - `*.num_batches_tracked` buffers are dropped (modelslice keeps no counter);
//   - every other name must exist in the model with the same shape (strict).
// The README shows a json + struct snippet that writes a state_dict as safetensors.
import { readFile } from 'node:fs/promises';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { parseSafetensors } from './safetensors.js';

export interface TorchImportOptions {
  /** Refuse names the model lacks, or model tensors the file lacks (default true). */
  strict?: boolean;
  /** Tensors in the file that are not weights (inputs, expected outputs) to leave alone. */
  ignore?: readonly string[];
}

/** Maps PyTorch state_dict names onto the model's and loads the values. */
export function loadTorchStateDict(model: Module, tensors: Record<string, Tensor>, options: TorchImportOptions = {}): void {
  const ignore = new Set(options.ignore ?? []);
  const mapped: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (ignore.has(name) || name.endsWith('.num_batches_tracked')) continue;
    mapped[name] = t;
  }
  try {
    model.loadStateDict(mapped, { strict: options.strict ?? true });
  } catch (err) {
    throw new RangeError(`loadTorchWeights: the weights do not fit the model: ${(err as Error).message.replace(/^loadStateDict: /, '')}`);
  }
}

/** Reads a safetensors file written from a PyTorch state_dict into the model. */
export async function loadTorchWeights(model: Module, path: string, options: TorchImportOptions = {}): Promise<Record<string, Tensor>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`loadTorchWeights: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const { tensors } = parseSafetensors(bytes, path);
  loadTorchStateDict(model, tensors, options);
  return tensors;
}
