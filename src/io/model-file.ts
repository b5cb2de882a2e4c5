// save / load: a model's state dict as safetensors, with its architecture,
// trained rates and (for checkpoints) training state in the header metadata,
// so loading rebuilds the model without the caller restating its config.
import { readFile } from 'node:fs/promises';
import { buildModel, leastParameters, type BuiltModel } from '../models/build.js';
import type { ModelConfig } from '../models/config.js';
import { checkVocabulary } from '../models/transformer.js';
import { modelRecord, type RateAccuracy } from '../metadata.js';
import { modelInputShape, setInputShape } from '../nn/input-shape.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/norm.js';
import { useSwitchableBatchNorm } from '../slicing/calibrate.js';
import { setTrainedRates, trainedRatesOf } from '../slicing/select.js';
import type { Tensor } from '../tensor.js';
import { parseSafetensors, serializeSafetensors, writeFileAtomic } from './safetensors.js';

export const FORMAT = 'modelslice/1';

export interface SaveOptions {
  /** More tensors to store (optimizer buffers of a checkpoint), by name. */
  extraTensors?: Record<string, Tensor>;
  /** JSON-serializable training state of a checkpoint. */
  training?: unknown;
  /** Input standardisation the model expects: (x - mean) / std. */
  preprocess?: Preprocess;
}

export interface Preprocess {
  mean: number;
  std: number;
}

function hasBatchNorm(model: Module): boolean {
  return model.modules().some((m) => m instanceof BatchNorm2d);
}

/** Writes the model (and optional checkpoint state) to `path` atomically. */
export async function save(model: Module, path: string, options: SaveOptions = {}): Promise<void> {
  const record = modelRecord(model);
  const { config } = record;
  if (config === undefined) throw new TypeError('save: the model has no config (build it with ms.models.* to save it)');
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('save: path must be a non-empty string');
  const tensors: Record<string, Tensor> = { ...model.stateDict() };
  for (const [name, t] of Object.entries(options.extraTensors ?? {})) {
    if (!name.startsWith('optimizer.')) throw new RangeError(`save: extra tensor ${name} must be named optimizer.* (checkpoint state)`);
    if (name in tensors) throw new RangeError(`save: extra tensor ${name} clashes with a model tensor`);
    tensors[name] = t;
  }
  const metadata: Record<string, string> = {
    format: FORMAT,
    config: JSON.stringify(config),
    trainedRates: JSON.stringify(trainedRatesOf(model)),
  };
  const calibrated = model.modules().flatMap((m) => (m instanceof BatchNorm2d ? m.calibratedRates : []));
  if (calibrated.length > 0) metadata.calibratedRates = JSON.stringify([...new Set(calibrated)]);
  if (options.training !== undefined) metadata.training = JSON.stringify(options.training);
  const preprocess = options.preprocess ?? record.preprocess;
  if (preprocess !== undefined) metadata.preprocess = JSON.stringify(preprocess);
  metadata.inputShape = JSON.stringify(modelInputShape('save', model));
  if (record.dataset !== undefined) metadata.dataset = record.dataset;
  if (record.accuracy !== undefined) metadata.accuracy = JSON.stringify(record.accuracy);
  if (record.vocabulary !== undefined) metadata.vocabulary = JSON.stringify(record.vocabulary);
  try {
    await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`save: cannot write ${path}${code ? ` (${code})` : `: ${(err as Error).message}`}`);
  }
}

export interface LoadedFile {
  model: BuiltModel;
  /** Stored tensors that are not the model's (a checkpoint's optimizer state). */
  extraTensors: Record<string, Tensor>;
  training: unknown;
  preprocess?: Preprocess;
}

function parseJson(path: string, key: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new RangeError(`load: ${path} has malformed ${key} metadata`);
  }
}

/** The accuracy table a file records, checked entry by entry (a forged file must not reach the server's metrics). */
function checkAccuracyTable(path: string, table: unknown): RateAccuracy[] {
  const bad = (why: string): never => {
    throw new RangeError(`load: ${path} has unusable accuracy metadata: ${why}`);
  };
  if (!Array.isArray(table)) return bad('not a list of {rate, accuracy, examples}');
  return table.map((row: unknown, i) => {
    const { rate, accuracy, examples } = (row ?? {}) as Record<string, unknown>;
    if (typeof rate !== 'number' || !(rate > 0 && rate <= 1)) bad(`entry ${i} has rate ${JSON.stringify(rate)}, not in (0, 1]`);
    if (typeof accuracy !== 'number' || !(accuracy >= 0 && accuracy <= 1)) bad(`entry ${i} has accuracy ${JSON.stringify(accuracy)}, not in [0, 1]`);
    if (typeof examples !== 'number' || !Number.isInteger(examples) || examples < 0) bad(`entry ${i} has examples ${JSON.stringify(examples)}, not a count`);
    return { rate, accuracy, examples } as RateAccuracy;
  });
}

/** Reads a file written by save(): the rebuilt model plus any checkpoint state. */
export async function loadFile(path: string): Promise<LoadedFile> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('load: path must be a non-empty string');
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`load: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const { tensors, metadata } = parseSafetensors(bytes, path);
  if (metadata.format !== FORMAT) {
    throw new RangeError(`load: ${path} is not a modelslice file (metadata.format is ${JSON.stringify(metadata.format)}); import foreign weights with loadStateDict`);
  }
  const config = parseJson(path, 'config', metadata.config) as ModelConfig & { sliceChain?: number[] };
  const rates = parseJson(path, 'trainedRates', metadata.trainedRates) as number[] | undefined;
  const calibrated = (parseJson(path, 'calibratedRates', metadata.calibratedRates) as number[] | undefined) ?? [];
  if (config === null || typeof config !== 'object') throw new RangeError(`load: ${path} has no model config object`);
  // A forged config could make us build a model far larger than the file
  // before its weights are checked. A compact sub-model at rate r holds at
  // least about r^2 of the full model's parameters.
  const { sliceChain: chain, ...declared } = config;
  let held = 0;
  for (const [name, t] of Object.entries(tensors)) if (!name.startsWith('optimizer.')) held += t.size;
  const shrink = (Array.isArray(chain) ? chain : []).reduce((p, r) => p * (typeof r === 'number' && r > 0 ? r * r : 1), 1);
  const least = leastParameters(declared as ModelConfig) * shrink;
  if (least > 2 * held + 1024) {
    throw new RangeError(`load: ${path} declares a model of at least ${Math.round(least)} parameters but holds only ${held} values`);
  }
  let model: BuiltModel;
  try {
    // Switchable batch norm must exist before slicing or loading its statistics.
    const { sliceChain, ...full } = config;
    model = buildModel(full);
    if (rates) setTrainedRates(model, rates);
    // Only when the file holds per-rate statistics: a model given trained rates
    // without switchable batch norm (setTrainedRates alone) saves one set.
    const switchable = Object.keys(tensors).some((n) => /(^|\.)rate_[0-9_]+\./.test(n));
    if (hasBatchNorm(model) && rates && rates.length > 1 && switchable) useSwitchableBatchNorm(model, rates);
    for (const r of calibrated) for (const m of model.modules()) if (m instanceof BatchNorm2d) m.beginCalibration(r);
    for (const r of sliceChain ?? []) model = model.slice(r);
  } catch (err) {
    throw new RangeError(`load: ${path} has an unusable model config: ${(err as Error).message}`);
  }
  const own = new Set([...model.namedParameters(), ...model.namedBuffers()].map(([n]) => n));
  const modelTensors: Record<string, Tensor> = {};
  const extraTensors: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) (own.has(name) ? modelTensors : extraTensors)[name] = t;
  const stray = Object.keys(extraTensors).filter((n) => !n.startsWith('optimizer.'));
  if (stray.length > 0) throw new RangeError(`load: ${path} holds tensors the model does not have: ${stray.slice(0, 5).join(', ')}`);
  try {
    model.loadStateDict(modelTensors);
  } catch (err) {
    throw new RangeError(`load: ${path} does not match its model config: ${(err as Error).message}`);
  }
  const preprocess = parseJson(path, 'preprocess', metadata.preprocess) as Preprocess | undefined;
  const record = modelRecord(model);
  if (preprocess !== undefined) record.preprocess = preprocess;
  const inputShape = parseJson(path, 'inputShape', metadata.inputShape);
  if (inputShape !== undefined) {
    try {
      setInputShape('load', model, inputShape as number[]);
    } catch (err) {
      throw new RangeError(`load: ${path} has unusable inputShape metadata: ${(err as Error).message}`);
    }
  } else {
    // Files from before models recorded their input: the config's guess, said out loud.
    process.emitWarning(
      `${path} does not record its input shape (saved by an older modelslice); assuming [${record.inputShape!.join(', ')}]. ` +
        'Set model.inputShape (or pass inputShape / --input-shape) if it was trained on other inputs, and save it again to record it.',
      { code: 'MODELSLICE_NO_INPUT_SHAPE' },
    );
  }
  if (typeof metadata.dataset === 'string') record.dataset = metadata.dataset;
  const accuracy = parseJson(path, 'accuracy', metadata.accuracy);
  if (accuracy !== undefined) record.accuracy = checkAccuracyTable(path, accuracy);
  const vocabulary = parseJson(path, 'vocabulary', metadata.vocabulary);
  if (vocabulary !== undefined) {
    try {
      record.vocabulary = checkVocabulary('load', vocabulary, config.kind === 'transformer' ? config.vocab : NaN);
    } catch (err) {
      throw new RangeError(`load: ${path} has unusable vocabulary metadata: ${(err as Error).message}`);
    }
  }
  return { model, extraTensors, training: parseJson(path, 'training', metadata.training), preprocess };
}

/** Reads a model written by save(). */
export async function load(path: string): Promise<BuiltModel> {
  return (await loadFile(path)).model;
}
