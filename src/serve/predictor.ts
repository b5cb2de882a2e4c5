// Predictor: forward passes of a sliceable model on a worker thread, so the
// event loop of the caller (a server) stays responsive while kernels run.
// Requests wait in a queue on the caller's side and go to the worker one at a
// time; a request aborted before it starts is simply dropped from the queue.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Preprocess } from '../io/model-file.js';
import { save } from '../io/model-file.js';
import { modelRecord, type RateAccuracy } from '../metadata.js';
import { checkShape } from '../nn/input-shape.js';
import { Module } from '../nn/module.js';
import type { LatencyProfile } from '../slicing/select.js';
import { checkRate } from '../nn/width.js';
import { shapeSize, Tensor } from '../tensor.js';
import { checkThreadCount } from '../threads.js';
import { estimateLatencyMs, monotoneProfile, rateForBudget } from './latency.js';
import { deserializeError, type GenerateRequest, type PredictRequest, type ReadyMessage, type WorkerInit, type WorkerMessage } from './protocol.js';

export interface PredictorOptions {
  /** Kernel threads of this predictor's worker thread, which has a pool of its own. */
  threads?: number;
  /**
   * Latency profile measured in the worker at start-up (each trained rate at
   * each batch size); `false` measures none. By default batch size 1 is
   * measured, unless the model passed in already carries a profile.
   */
  profile?: { batchSizes?: number[]; inputShape?: readonly number[]; repeats?: number } | false;
  /** Input shape without the batch; by default from the model's config (conv models: 32x32 images). */
  inputShape?: readonly number[];
  /**
   * Batch sizes whose inference plans the worker builds at start, at every trained rate (a
   * plan is otherwise built, at several times a pass's cost, the first time its shape runs).
   * A batch runs in slices of powers of two, so the powers of two up to the largest batch
   * cover every size. Profiling builds the plans of the sizes it measures.
   */
  warm?: readonly number[];
}

export interface PredictOptions {
  /** Slice rate of this pass (default 1). */
  rate?: number;
  /** Latency budget: the largest trained rate whose profiled latency for this batch size fits. */
  budgetMs?: number;
  /** Aborting removes the request if it has not started (it then rejects with an AbortError). */
  signal?: AbortSignal;
  /** Shape [N, ...] of a Float32Array input; by default [length / inputSize, ...inputShape]. */
  shape?: readonly number[];
  /**
   * Hand a Float32Array input's buffer to the worker instead of copying it (default false): the
   * array is detached (length 0) once predict returns. Only for an array that alone owns its
   * whole ArrayBuffer (byteOffset 0, the buffer's full length); otherwise it is copied anyway.
   */
  transfer?: boolean;
}

export interface Prediction {
  /** The predicted class of each input (argmax of its logits). */
  classes: Int32Array;
  /** Row-major [N, classes]. */
  logits: Float32Array;
  /** The slice rate the whole pass ran at. */
  rate: number;
  /** Milliseconds the worker spent on the pass (standardisation included). */
  ms: number;
}

export interface GenerateJobOptions {
  maxTokens: number;
  /** 0 is greedy (default 1). */
  temperature?: number;
  topK?: number;
  seed?: number;
  /** Token id sequences that end the continuation. */
  stop?: number[][];
  /** Slice rate of the whole continuation (default 1). */
  rate?: number;
  signal?: AbortSignal;
  /** Each token id as the worker makes it. */
  onToken?: (id: number) => void;
}

export interface Generation {
  tokens: number[];
  rate: number;
  /** Forward passes (one per token after the prompt's). */
  passes: number;
  /** Milliseconds the worker spent. */
  ms: number;
}

interface Job {
  id: number;
  data: Float32Array;
  shape: number[];
  rate: number;
  /** A continuation instead of a forward pass. */
  generate?: Omit<GenerateJobOptions, 'signal' | 'onToken' | 'rate'> & { prompt: number[] };
  onToken?: (id: number) => void;
  resolveGeneration?: (g: Generation) => void;
  resolve: (p: Prediction) => void;
  reject: (e: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** An error named AbortError (like Node's own), carrying the signal's reason as its cause. */
export function abortError(signal?: AbortSignal): Error {
  const err = new Error('The operation was aborted', signal?.reason !== undefined ? { cause: signal.reason } : undefined);
  err.name = 'AbortError';
  (err as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return err;
}

function workerUrl(): URL {
  // Run from the TypeScript sources (tests) the worker is a .ts file beside this one.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./worker${ext}`, import.meta.url);
}

export class Predictor {
  /** Rates the model was trained at, widest first. */
  readonly trainedRates: number[];
  /** Input shape without the batch. */
  readonly inputShape: number[];
  /** Values per input. */
  readonly inputSize: number;
  /** Output width. */
  readonly classes: number;
  readonly preprocess?: Preprocess;
  /** Measured in the worker: ms per pass by batch size, then rate. */
  readonly latencyProfile?: LatencyProfile;
  /** The test accuracy per rate the model file records (ms.evaluate wrote it), widest first. */
  readonly accuracy?: RateAccuracy[];
  /** A language model's tokens by id and its context (undefined for other models). */
  readonly vocabulary?: string[];
  readonly context?: number;
  /** The inference plans the worker built before it was ready (rate|shape), by profiling or `warm`. */
  readonly plans: readonly string[];
  private readonly worker: Worker;
  private readonly queue: Job[] = [];
  private inFlight: Job | null = null;
  private nextId = 1;
  private closed = false;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  private constructor(worker: Worker, ready: ReadyMessage) {
    this.worker = worker;
    this.trainedRates = [...ready.trainedRates].sort((a, b) => b - a);
    this.inputShape = ready.inputShape;
    this.inputSize = shapeSize(ready.inputShape);
    this.classes = ready.classes;
    if (ready.preprocess !== undefined) this.preprocess = ready.preprocess;
    if (ready.latencyProfile !== undefined) this.latencyProfile = monotoneProfile(ready.latencyProfile);
    if (ready.accuracy !== undefined) this.accuracy = ready.accuracy;
    if (ready.vocabulary !== undefined) this.vocabulary = ready.vocabulary;
    if (ready.context !== undefined) this.context = ready.context;
    this.plans = ready.plans;
    worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    worker.on('error', (err) => this.fail(new Error(`Predictor: the worker failed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`Predictor: the worker exited unexpectedly (code ${code})`));
    });
    worker.unref(); // an idle predictor does not keep the process alive
  }

  /**
   * Starts a worker holding the model. `modelOrPath` is a file written by
   * ms.save, or a built-in model (saved to a temporary file the worker reads,
   * since modules cannot cross threads; later changes to it are not seen).
   */
  static async create(modelOrPath: string | Module, options: PredictorOptions = {}): Promise<Predictor> {
    const op = 'Predictor.create';
    if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
    // Checked here, before a worker starts, against the limit its setNumThreads will apply.
    if (options.threads !== undefined) checkThreadCount(op, 'threads', options.threads);
    const profile = options.profile;
    const givenShape = profile ? (profile.inputShape ?? options.inputShape) : options.inputShape;
    const inputShape = givenShape === undefined ? undefined : checkShape(op, 'inputShape', givenShape);
    let batchSizes: number[] = [];
    if (profile !== false) {
      batchSizes = profile?.batchSizes ?? (modelOrPath instanceof Module && modelRecord(modelOrPath).latencyProfile !== undefined ? [] : [1]);
      if (!Array.isArray(batchSizes) || batchSizes.some((b) => !Number.isInteger(b) || b < 1)) {
        throw new RangeError(`${op}: profile.batchSizes must be positive integers, got ${JSON.stringify(batchSizes)}`);
      }
    }
    let path: string;
    let tempDir: string | null = null;
    if (typeof modelOrPath === 'string') {
      if (modelOrPath.length === 0) throw new TypeError(`${op}: the checkpoint path must be a non-empty string`);
      path = modelOrPath;
    } else if (modelOrPath instanceof Module) {
      if (modelRecord(modelOrPath).config === undefined) throw new TypeError(`${op}: the model has no config (build it with ms.models.* or pass a checkpoint path)`);
      tempDir = await mkdtemp(join(tmpdir(), 'modelslice-predictor-'));
      path = join(tempDir, 'model.safetensors');
      await save(modelOrPath, path);
    } else {
      throw new TypeError(`${op}: expected a checkpoint path or a model, got ${modelOrPath === null ? 'null' : typeof modelOrPath}`);
    }
    const init: WorkerInit = { path, profileBatchSizes: batchSizes };
    if (options.warm !== undefined) {
      if (!Array.isArray(options.warm) || options.warm.some((b) => !Number.isInteger(b) || b < 1)) {
        throw new RangeError(`${op}: warm must be positive integer batch sizes, got ${JSON.stringify(options.warm)}`);
      }
      init.warmBatchSizes = [...options.warm];
    }
    const known = modelOrPath instanceof Module ? modelRecord(modelOrPath).latencyProfile : undefined;
    if (options.threads !== undefined) init.threads = options.threads;
    if (inputShape !== undefined) init.inputShape = inputShape;
    if (profile && profile.repeats !== undefined) init.profileRepeats = profile.repeats;
    if (known !== undefined) init.latencyProfile = known;
    // A profile measured before stands in for profiling, and so do the plans of its sizes.
    if (known !== undefined && batchSizes.length === 0 && init.warmBatchSizes === undefined) {
      init.warmBatchSizes = Object.keys(known.byBatch).map(Number);
    }
    // Workers inherit the process's Node flags (loaders stay useful), but some are
    // refused in workers: `node --input-type=module -e ...` would fail to start them.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type') && a !== '-e' && a !== '--eval');
    const worker = new Worker(workerUrl(), { workerData: init, execArgv });
    try {
      const ready = await new Promise<ReadyMessage>((resolve, reject) => {
        const onMessage = (m: WorkerMessage) => {
          cleanup();
          if (m.type === 'ready') resolve(m);
          else if (m.type === 'init-failed') reject(deserializeError(m.error));
          else reject(new Error(`${op}: unexpected message ${m.type} from the worker`));
        };
        const onError = (err: Error) => {
          cleanup();
          reject(new Error(`${op}: the worker failed to start: ${err.message}`));
        };
        const onExit = (code: number) => {
          cleanup();
          reject(new Error(`${op}: the worker exited during start-up (code ${code})`));
        };
        const cleanup = () => {
          worker.off('message', onMessage);
          worker.off('error', onError);
          worker.off('exit', onExit);
        };
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.on('exit', onExit);
      });
      return new Predictor(worker, ready);
    } catch (err) {
      await worker.terminate();
      throw err;
    } finally {
      if (tempDir !== null) await rm(tempDir, { recursive: true, force: true });
    }
  }

  /** Requests waiting for the worker (not yet started). */
  get pending(): number {
    return this.queue.length;
  }

  /** Whether a pass is running. */
  get busy(): boolean {
    return this.inFlight !== null;
  }

  /** Estimated ms of one pass of `batchSize` inputs at `rate` (from the profile), or undefined. */
  estimateMs(rate: number, batchSize: number): number | undefined {
    return estimateLatencyMs(this.latencyProfile, rate, batchSize);
  }

  /** The largest trained rate whose profiled latency for `batchSize` fits `budgetMs` (the narrowest when none does). */
  selectRate(budgetMs: number, batchSize = 1): number {
    return rateForBudget('Predictor.selectRate', this.latencyProfile, this.trainedRates, budgetMs, batchSize);
  }

  /**
   * Runs one forward pass over a batch: a Tensor [N, ...], or a Float32Array
   * (with `shape`, or N inputs of the model's input size). The input is copied.
   */
  predict(input: Tensor | Float32Array, options: PredictOptions = {}): Promise<Prediction> {
    const op = 'Predictor.predict';
    let job: Job;
    try {
      if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
      if (this.failure !== null) throw this.failure;
      if (this.closed) throw new Error(`${op}: the predictor is closed`);
      const { data, shape } = this.checkInput(op, input, options.shape, options.transfer === true);
      if (options.rate !== undefined && options.budgetMs !== undefined) throw new TypeError(`${op}: give rate or budgetMs, not both`);
      const rate =
        options.budgetMs !== undefined
          ? rateForBudget(op, this.latencyProfile, this.trainedRates, options.budgetMs, shape[0])
          : options.rate !== undefined
            ? checkRate(op, options.rate)
            : 1;
      const signal = options.signal;
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError(`${op}: signal must be an AbortSignal`);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      job = { id: this.nextId++, data, shape, rate, resolve: () => {}, reject: () => {}, signal };
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const promise = new Promise<Prediction>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    this.enqueue(job);
    return promise;
  }

  private enqueue(job: Job): void {
    if (job.signal !== undefined) {
      job.onAbort = () => {
        const i = this.queue.indexOf(job);
        if (i < 0) return; // already running: it completes normally
        this.queue.splice(i, 1);
        this.settle(job);
        job.reject(abortError(job.signal));
      };
      job.signal.addEventListener('abort', job.onAbort, { once: true });
    }
    this.queue.push(job);
    this.dispatch();
  }

  /**
   * Continues `prompt` (token ids) with a language model at one rate, in the worker; each token
   * goes to onToken as it is made. Queued with the forward passes, one job at a time.
   */
  generate(prompt: readonly number[], options: GenerateJobOptions): Promise<Generation> {
    const op = 'Predictor.generate';
    let job: Job;
    try {
      if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
      if (this.failure !== null) throw this.failure;
      if (this.closed) throw new Error(`${op}: the predictor is closed`);
      if (this.vocabulary === undefined) throw new TypeError(`${op}: the model is not a language model`);
      if (!Array.isArray(prompt)) throw new TypeError(`${op}: prompt must be an array of token ids`);
      const signal = options.signal;
      if (signal?.aborted) return Promise.reject(abortError(signal));
      const { maxTokens, temperature = 1, topK, seed, stop } = options;
      job = {
        id: this.nextId++,
        data: new Float32Array(0),
        shape: [],
        rate: checkRate(op, options.rate ?? 1),
        generate: { prompt: [...prompt], maxTokens, temperature, topK, seed, stop },
        onToken: options.onToken,
        resolve: () => {},
        reject: () => {},
        signal,
      };
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const promise = new Promise<Generation>((resolve, reject) => {
      job.resolveGeneration = resolve;
      job.reject = reject;
    });
    this.enqueue(job);
    return promise;
  }

  /** Terminates the worker; requests not yet answered reject. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      const err = new Error('Predictor.close: the predictor was closed before the request was answered');
      this.rejectAll(err);
      this.closing = this.worker.terminate().then(() => undefined);
    }
    return this.closing;
  }

  private checkInput(op: string, input: Tensor | Float32Array, shapeOption: readonly number[] | undefined, transfer: boolean): { data: Float32Array; shape: number[] } {
    let data: Float32Array;
    let shape: number[];
    if (input instanceof Tensor) {
      if (shapeOption !== undefined) throw new TypeError(`${op}: shape is only for Float32Array inputs`);
      data = input.data.slice();
      shape = [...input.shape];
    } else if (input instanceof Float32Array) {
      if (shapeOption === undefined) {
        if (input.length === 0 || input.length % this.inputSize !== 0) {
          throw new RangeError(`${op}: a Float32Array of ${input.length} values is not a whole number of inputs of ${this.inputSize} values; pass shape`);
        }
        shape = [input.length / this.inputSize, ...this.inputShape];
      } else {
        if (!Array.isArray(shapeOption) || shapeOption.some((d) => !Number.isSafeInteger(d) || d < 0)) {
          throw new TypeError(`${op}: shape must be an array of non-negative integers`);
        }
        shape = [...shapeOption];
        if (shapeSize(shape) !== input.length) throw new RangeError(`${op}: shape [${shape.join(', ')}] needs ${shapeSize(shape)} values, got ${input.length}`);
      }
      const owns = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength && input.buffer instanceof ArrayBuffer;
      data = transfer && owns ? input : input.slice();
    } else {
      throw new TypeError(`${op}: input must be a Tensor or a Float32Array`);
    }
    if (shape.length < 2 || shape[0] < 1) throw new RangeError(`${op}: input must have shape [N, ...] with N >= 1, got [${shape.join(', ')}]`);
    const rest = shape.slice(1);
    // An MLP takes exactly its input size; a conv model takes any image size with its channel count.
    const fits = this.inputShape.length === 1 ? rest.length === 1 && rest[0] === this.inputShape[0] : rest.length === this.inputShape.length && rest[0] === this.inputShape[0];
    if (!fits) throw new RangeError(`${op}: input shape [${shape.join(', ')}] does not fit the model's input [N, ${this.inputShape.join(', ')}]`);
    return { data, shape };
  }

  private dispatch(): void {
    if (this.inFlight !== null || this.queue.length === 0 || this.closed) return;
    const job = this.queue.shift()!;
    this.inFlight = job;
    this.worker.ref();
    if (job.generate !== undefined) {
      const msg: GenerateRequest = { type: 'generate', id: job.id, rate: job.rate, ...job.generate, temperature: job.generate.temperature ?? 1 };
      this.worker.postMessage(msg);
      return;
    }
    const msg: PredictRequest = { type: 'predict', id: job.id, data: job.data, shape: job.shape, rate: job.rate };
    this.worker.postMessage(msg, [job.data.buffer as ArrayBuffer]);
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type !== 'result' && m.type !== 'failed' && m.type !== 'token' && m.type !== 'generated') return;
    const job = this.inFlight;
    if (job === null || job.id !== m.id) return;
    if (m.type === 'token') {
      job.onToken?.(m.token);
      return;
    }
    this.inFlight = null;
    this.settle(job);
    if (m.type === 'result') job.resolve({ classes: m.classes, logits: m.logits, rate: m.rate, ms: m.ms });
    else if (m.type === 'generated') job.resolveGeneration?.({ tokens: m.tokens, rate: m.rate, passes: m.passes, ms: m.ms });
    else job.reject(deserializeError(m.error));
    if (this.queue.length === 0) this.worker.unref();
    this.dispatch();
  }

  private settle(job: Job): void {
    if (job.onAbort !== undefined) job.signal!.removeEventListener('abort', job.onAbort);
  }

  private rejectAll(err: Error): void {
    const jobs = [...(this.inFlight ? [this.inFlight] : []), ...this.queue.splice(0)];
    this.inFlight = null;
    for (const job of jobs) {
      this.settle(job);
      job.reject(err);
    }
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.closed = true;
    this.rejectAll(err);
  }
}

