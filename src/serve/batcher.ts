// The batcher: requests wait in one bounded queue and go out in dynamic
// batches whenever a predictor is free. A pass runs at one rate, so a batch is
// the oldest request's group (requests pinned to one trained rate, or those
// that leave the rate to the controller), asked of the controller just before
// it runs. It knows nothing of HTTP beyond the status its errors carry.
import { checkShape } from '../nn/input-shape.js';
import { HttpError } from './body.js';
import type { Decision, RateController } from './controller.js';
import { Counter, Histogram, type Registry } from './metrics.js';
import { profileBatchSizes } from './latency.js';
import type { Prediction } from './predictor.js';

export interface ServedBatch {
  /** Inputs in the batch. */
  size: number;
  /** Requests in the batch. */
  requests: number;
  rate: number;
  /** Index of the predictor worker running it. */
  worker: number;
  /** The controller's decision (absent when the rate is fixed). */
  decision?: Decision;
}

/** What the batcher needs of a predictor (a Predictor, or a fake in tests). */
export interface BatchPredictor {
  predict(data: Float32Array, options: { shape: number[]; rate: number; transfer?: boolean }): Promise<Pick<Prediction, 'classes' | 'logits' | 'rate' | 'ms'>>;
}

/** What the batcher needs of the rate controller. */
export type BatchController = Pick<RateController, 'rate' | 'decide' | 'observeArrival' | 'observeBatch'>;

/** The instruments the batcher updates (registered by createBatchMetrics). */
export interface BatchMetrics {
  nonFinite: Counter;
  batchSizes: Histogram;
  batchesByRate: Counter;
  inputsByRate: Counter;
  /** Inputs answered with a class (200), by rate. */
  answeredByRate: Counter;
}

export function createBatchMetrics(registry: Registry, maxBatch: number): BatchMetrics {
  return {
    nonFinite: registry.add(new Counter('modelslice_nonfinite_outputs_total', 'Inputs whose logits came out NaN or infinite (answered 500), by slice rate.', ['rate'])),
    batchSizes: registry.add(new Histogram('modelslice_batch_size', 'Inputs per forward pass.', profileBatchSizes(maxBatch))),
    batchesByRate: registry.add(new Counter('modelslice_batches_total', 'Forward passes, by slice rate.', ['rate'])),
    inputsByRate: registry.add(new Counter('modelslice_inputs_total', 'Inputs predicted, by slice rate.', ['rate'])),
    answeredByRate: registry.add(new Counter('modelslice_answered_inputs_total', 'Inputs answered with a class (status 200), by slice rate.', ['rate'])),
  };
}

export interface BatcherOptions {
  /** One per worker; each runs one batch at a time. */
  predictors: readonly BatchPredictor[];
  /** Shape of one input (without the batch). */
  inputShape: readonly number[];
  /** Most inputs per batch. */
  maxBatch: number;
  /** Most inputs waiting; beyond it submit() refuses with 503. */
  maxQueue: number;
  controller: BatchController;
  /** Run every unpinned batch at this rate instead of asking the controller. */
  fixedRate?: number;
  /** Milliseconds clock (default performance.now). */
  clock?: () => number;
  /** The Retry-After seconds of a 503 for a full queue, given the inputs waiting (default 1). */
  retryAfterSeconds?: (queuedInputs: number) => number;
  /** Awaited before each batch is handed to a predictor. */
  beforeBatch?: (batch: ServedBatch) => void | Promise<void>;
  /** Called after each batch with the predictor's milliseconds. */
  onBatch?: (batch: ServedBatch & { ms: number }) => void;
  metrics?: BatchMetrics;
}

export interface BatchRequest {
  data: Float32Array;
  /** Inputs in `data`, at most maxBatch. */
  count: number;
  /** The trained rate the client pinned; undefined lets the controller choose. */
  pinned?: number;
  /** Aborted when the client went away: a request still queued is then dropped, not computed. */
  signal?: AbortSignal;
}

export interface BatchAnswer {
  classes: number[];
  rate: number;
}

interface Pending {
  data: Float32Array;
  count: number;
  pinned: number | undefined;
  arrived: number;
  signal: AbortSignal | undefined;
  resolve: (r: BatchAnswer) => void;
  reject: (e: Error) => void;
}

export class Batcher {
  private readonly predictors: readonly BatchPredictor[];
  private readonly inputShape: number[];
  private readonly inputSize: number;
  private readonly maxBatch: number;
  private readonly maxQueue: number;
  private readonly controller: BatchController;
  private readonly fixedRate: number | undefined;
  private readonly clock: () => number;
  private readonly options: BatcherOptions;
  private readonly queue: Pending[] = [];
  private readonly busy: boolean[];
  private nextWorker = 0;
  private queued = 0;
  private inFlight = 0;
  private currentRate: number;
  private closing = false;
  private drainWaiters: (() => void)[] = [];

  constructor(options: BatcherOptions) {
    const op = 'Batcher';
    if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
    if (!Array.isArray(options.predictors) || options.predictors.length === 0) throw new RangeError(`${op}: predictors must be a non-empty array`);
    for (const name of ['maxBatch', 'maxQueue'] as const) {
      const v = options[name];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be an integer >= 1, got ${String(v)}`);
    }
    this.options = options;
    this.predictors = options.predictors;
    this.inputShape = checkShape(op, 'inputShape', options.inputShape);
    this.inputSize = this.inputShape.reduce((a, b) => a * b, 1);
    this.maxBatch = options.maxBatch;
    this.maxQueue = options.maxQueue;
    this.controller = options.controller;
    this.fixedRate = options.fixedRate;
    this.clock = options.clock ?? (() => performance.now());
    this.busy = this.predictors.map(() => false);
    this.currentRate = this.fixedRate ?? this.controller.rate;
  }

  /** The rate of the latest batch whose rate the batcher chose (pinned batches aside). */
  get rate(): number {
    return this.currentRate;
  }

  /** Requests waiting. */
  get queueLength(): number {
    return this.queue.length;
  }

  /** Inputs waiting (requests dropped by their client count until a batch forms past them). */
  get queuedInputs(): number {
    return this.queued;
  }

  /** Inputs in batches running now. */
  get inFlightInputs(): number {
    return this.inFlight;
  }

  get inFlightBatches(): number {
    return this.busy.filter(Boolean).length;
  }

  /**
   * Queues a request; the answer is its own rows of the batch's result. Refuses
   * with a 503 HttpError when the queue is full or the batcher is draining.
   */
  submit(request: BatchRequest): Promise<BatchAnswer> {
    if (this.closing) return Promise.reject(new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' }));
    const now = this.clock();
    this.controller.observeArrival(request.count, now, this.queued + this.inFlight + request.count); // offered load, refused or not, pinned or not
    if (this.queued + request.count > this.maxQueue) {
      const retryAfter = this.options.retryAfterSeconds?.(this.queued) ?? 1;
      return Promise.reject(new HttpError(503, `the queue is full (${this.queued} inputs waiting, at most ${this.maxQueue})`, { 'Retry-After': String(retryAfter) }));
    }
    return new Promise<BatchAnswer>((resolve, reject) => {
      this.queue.push({ data: request.data, count: request.count, pinned: request.pinned, arrived: now, signal: request.signal, resolve, reject });
      this.queued += request.count;
      this.pump();
    });
  }

  /**
   * Refuses new requests and waits for the queue to empty and the batches to
   * finish, at most `timeoutMs`; then answers what still waits 503. Resolves
   * whether everything finished in time.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<boolean>((resolve) => {
      this.drainWaiters.push(() => resolve(true));
      timer = setTimeout(() => resolve(false), timeoutMs);
      this.notifyDrained();
    });
    const finished = await drained;
    clearTimeout(timer);
    if (!finished) {
      for (const item of this.queue.splice(0)) item.reject(new HttpError(503, 'the server shut down before this request ran', { 'Retry-After': '1' }));
      this.queued = 0;
    }
    return finished;
  }

  private idle(): boolean {
    return this.queue.length === 0 && !this.busy.some(Boolean);
  }

  private notifyDrained(): void {
    if (!this.idle()) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Forgets a request whose client went away before its batch formed. */
  private drop(item: Pending): void {
    this.queued -= item.count;
    item.reject(new Error('the client closed the connection'));
  }

  /**
   * Takes from the queue, in arrival order, the requests of one group (`inGroup`)
   * that fit in `room` inputs; stops at the first that does not fit, so a large
   * request is not passed over forever.
   */
  private take(inGroup: (item: Pending) => boolean, room: number): { items: Pending[]; size: number } {
    const items: Pending[] = [];
    const rest: Pending[] = [];
    let size = 0;
    let full = false;
    for (const item of this.queue) {
      if (full || !inGroup(item)) rest.push(item);
      else if (item.signal?.aborted) this.drop(item);
      else if (size + item.count > room) {
        full = true;
        rest.push(item);
      } else {
        items.push(item);
        size += item.count;
      }
    }
    this.queue.splice(0, this.queue.length, ...rest);
    return { items, size };
  }

  /** Hands batches to free workers (least loaded first: only idle ones take work; round-robin among them). */
  private pump(): void {
    const queue = this.queue;
    for (;;) {
      while (queue.length > 0 && queue[0].signal?.aborted) this.drop(queue.shift()!);
      if (queue.length === 0) break;
      let w = -1;
      for (let k = 0; k < this.predictors.length; k++) {
        const i = (this.nextWorker + k) % this.predictors.length;
        if (!this.busy[i]) {
          w = i;
          break;
        }
      }
      if (w < 0) break;
      this.nextWorker = (w + 1) % this.predictors.length;
      const now = this.clock();
      // A pass runs at one rate, so a batch is the oldest request's group: requests
      // pinned to its rate, or requests that leave the rate to the server.
      const pinned = queue[0].pinned;
      const newest = queue[queue.length - 1];
      const { items, size: groupSize } = this.take((item) => item.pinned === pinned, this.maxBatch);
      if (items.length === 0) continue;
      let size = groupSize;
      let rate: number;
      let decision: Decision | undefined;
      if (pinned !== undefined) rate = pinned;
      else if (this.fixedRate !== undefined) rate = this.fixedRate;
      else {
        // Pinned requests still waiting are load like any other: they are in queuedInputs.
        decision = this.controller.decide(
          { queuedInputs: this.queued, batchInputs: size, oldestWaitMs: now - items[0].arrived, newestWaitMs: now - newest.arrived, inFlightInputs: this.inFlight },
          now,
        );
        rate = decision.rate;
      }
      if (pinned === undefined) {
        this.currentRate = rate;
        // Room left: requests pinned to the very rate chosen ride along.
        if (size < this.maxBatch) {
          const extra = this.take((item) => item.pinned === rate, this.maxBatch - size);
          items.push(...extra.items);
          size += extra.size;
        }
      }
      this.queued -= size;
      this.inFlight += size;
      this.busy[w] = true;
      void this.runBatch(w, items, size, { size, requests: items.length, rate, worker: w, decision });
    }
    this.notifyDrained();
  }

  private async runBatch(w: number, items: Pending[], size: number, info: ServedBatch): Promise<void> {
    const metrics = this.options.metrics;
    try {
      const data = new Float32Array(size * this.inputSize);
      let offset = 0;
      for (const item of items) {
        data.set(item.data, offset);
        offset += item.data.length;
      }
      if (this.options.beforeBatch) await this.options.beforeBatch(info);
      // The batch's array is ours alone: the worker takes its buffer without a copy.
      const result = await this.predictors[w].predict(data, { shape: [size, ...this.inputShape], rate: info.rate, transfer: true });
      this.controller.observeBatch(info.rate, size, result.ms);
      metrics?.batchSizes.observe(size);
      metrics?.batchesByRate.inc({ rate: String(info.rate) });
      metrics?.inputsByRate.inc({ rate: String(info.rate) }, size);
      const classes = result.logits.length / size;
      let row = 0;
      for (const item of items) {
        // The argmax of NaN logits is class 0: an answer that looks fine and means nothing.
        const bad = firstNonFinite(result.logits, row * classes, (row + item.count) * classes);
        if (bad < 0) {
          item.resolve({ classes: Array.from(result.classes.subarray(row, row + item.count)), rate: result.rate });
          metrics?.answeredByRate.inc({ rate: String(result.rate) }, item.count);
        } else {
          metrics?.nonFinite.inc({ rate: String(info.rate) }, countNonFiniteRows(result.logits, row, item.count, classes));
          const input = Math.floor(bad / classes) - row;
          item.reject(new HttpError(500, `the model produced non-finite logits (NaN or Infinity) for input ${input} of this request at rate ${info.rate}; no class is given`));
        }
        row += item.count;
      }
      this.options.onBatch?.({ ...info, ms: result.ms });
    } catch (err) {
      for (const item of items) item.reject(err as Error);
    } finally {
      this.inFlight -= size;
      this.busy[w] = false;
      this.pump();
    }
  }
}

/** Index of the first NaN or infinite value in values[from, to), or -1. */
function firstNonFinite(values: Float32Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

function countNonFiniteRows(values: Float32Array, firstRow: number, rows: number, cols: number): number {
  let n = 0;
  for (let r = firstRow; r < firstRow + rows; r++) if (firstNonFinite(values, r * cols, (r + 1) * cols) >= 0) n++;
  return n;
}
