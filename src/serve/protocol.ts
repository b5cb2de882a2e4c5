// Messages between a Predictor (main thread) and its worker. Modules cannot
// cross threads, so the worker loads the model itself from a file; inputs and
// results cross as Float32Arrays whose buffers are transferred, not copied.
import type { Preprocess } from '../io/model-file.js';
import type { RateAccuracy } from '../metadata.js';
import type { LatencyProfile } from '../slicing/select.js';

export interface WorkerInit {
  /** A file written by ms.save (a checkpoint or a model). */
  path: string;
  /** Kernel threads of the worker thread (each has its own pool). */
  threads?: number;
  /** Input shape without the batch; the model's own (`model.inputShape`) when absent. */
  inputShape?: number[];
  /** Batch sizes to profile at start-up; none when empty. */
  profileBatchSizes: number[];
  profileRepeats?: number;
  /** A profile measured before (kept instead of measuring when no batch sizes are asked). */
  latencyProfile?: LatencyProfile;
  /** Batch sizes whose inference plans are built at start, at every trained rate. */
  warmBatchSizes?: number[];
}

export interface ReadyMessage {
  type: 'ready';
  trainedRates: number[];
  inputShape: number[];
  /** The output width (number of classes). */
  classes: number;
  preprocess?: Preprocess;
  latencyProfile?: LatencyProfile;
  /** The model record's test accuracy per rate, when the model was evaluated. */
  accuracy?: RateAccuracy[];
  /** A language model's tokens by id and context (what POST /generate needs). */
  vocabulary?: string[];
  context?: number;
  /** The inference plans built before serving (rate|shape keys), by profiling or warming. */
  plans: string[];
}

export interface PredictRequest {
  type: 'predict';
  id: number;
  data: Float32Array;
  shape: number[];
  rate: number;
}

/** Continue a prompt (token ids) with a language model at one rate, streaming each token back. */
export interface GenerateRequest {
  type: 'generate';
  id: number;
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topK?: number;
  seed?: number;
  stop?: number[][];
  rate: number;
}

export interface SerializedError {
  name: string;
  message: string;
}

export type ResultMessage =
  | { type: 'result'; id: number; logits: Float32Array; classes: Int32Array; shape: number[]; rate: number; ms: number }
  | { type: 'token'; id: number; token: number }
  | { type: 'generated'; id: number; tokens: number[]; rate: number; passes: number; ms: number }
  | { type: 'failed'; id: number; error: SerializedError };

export type WorkerMessage = ReadyMessage | ResultMessage | { type: 'init-failed'; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

/** Rebuilds an error of the same built-in type (TypeError, RangeError, ...) on this side. */
export function deserializeError(e: SerializedError): Error {
  const Ctor = e.name === 'TypeError' ? TypeError : e.name === 'RangeError' ? RangeError : Error;
  const err = new Ctor(e.message);
  if (Ctor === Error && e.name !== 'Error') err.name = e.name;
  return err;
}

/** Index of the largest value of each row (the first on ties). */
export function argmaxRows(logits: Float32Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    let bestValue = logits[i * cols];
    for (let j = 1; j < cols; j++) {
      const v = logits[i * cols + j];
      if (v > bestValue) {
        bestValue = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}
