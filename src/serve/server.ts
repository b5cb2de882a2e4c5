// The elastic inference server: node:http in front of one or more Predictor
// workers. Requests queue (bounded), go out in dynamic batches whenever a
// worker is free, and each batch runs at the rate the controller chooses so
// that answers arrive within the SLO at the widest rate the load affords.
// serve() is the wiring: it starts the predictors, then joins the controller,
// the batcher (batcher.ts) and the HTTP front (http.ts) with the metrics.
import type { Module } from '../nn/module.js';
import type { LatencyProfile } from '../slicing/select.js';
import { checkRate } from '../nn/width.js';
import { availableParallelism } from 'node:os';
import { Batcher, createBatchMetrics, type ServedBatch } from './batcher.js';
import { usableCores } from './cores.js';
import { RateController, type ControllerOptions } from './controller.js';
import { decodeText, textDataset } from '../data/text.js';
import { HttpError } from './body.js';
import { createHttpMetrics, HttpFront, type TextGenerator } from './http.js';
import { estimateLatencyMs, profileBatchSizes } from './latency.js';
import { Counter, Gauge, Registry } from './metrics.js';
import { Predictor } from './predictor.js';

export type { ServedBatch } from './batcher.js';

export interface ServeOptions {
  /** Latency objective per request (arrival to answer), ms. */
  sloMs: number;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: loopback only). */
  host?: string;
  /** Most inputs per forward pass, and per request (default 32). */
  maxBatch?: number;
  /**
   * Most inputs waiting; beyond it requests get 503 with Retry-After. By default what the
   * workers serve in half the SLO at the narrowest rate they may run (the fixed rate, when
   * one is set) in full batches, by the latency profile, and at least maxBatch: a request
   * queued behind more could not be answered in time even at that rate, and one queued
   * behind fewer is not refused for a bound that has nothing to do with its deadline.
   */
  maxQueue?: number;
  /** Largest request body (default: room for maxBatch inputs as JSON, at least 64 KiB). */
  maxBodyBytes?: number;
  /**
   * Predictor worker threads, each taking whole batches (default: one per core, a cgroup CPU
   * limit counted, at most 4).
   * Several single-threaded workers serve more than one worker whose kernels fork and join
   * over every core, since the event loop's HTTP work shares those cores: ResNet-56 at rate
   * 0.25 under saturation on 2 cores, 4282 against 3010 inputs/s (bench/RESULTS.md). Each
   * worker holds its own copy of the weights.
   */
  workers?: number;
  /** Kernel threads per worker, each worker having its own pool (default: the cores shared out between the workers). */
  threads?: number;
  /** Serve every batch at this rate instead of letting the controller choose. */
  rate?: number;
  /** Input shape without the batch (default: the shape the model records, `model.inputShape`). */
  inputShape?: readonly number[];
  /** Timed repetitions per (batch size, rate) of the start-up profile (default 3). */
  profileRepeats?: number;
  /** Use this latency profile instead of measuring one at start-up. */
  latencyProfile?: LatencyProfile;
  /** Tuning of the rate controller (see controller.ts). */
  controller?: Partial<Omit<ControllerOptions, 'sloMs' | 'rates' | 'latencyMs' | 'maxBatch' | 'workers'>>;
  /** Milliseconds clock (default performance.now); tests inject their own. */
  clock?: () => number;
  /** Awaited before each batch is handed to a worker (tracing, tests). */
  beforeBatch?: (batch: ServedBatch) => void | Promise<void>;
  /** Called after each batch with the worker's milliseconds. */
  onBatch?: (batch: ServedBatch & { ms: number }) => void;
  /** How long close() waits for queued work before answering the rest 503 (default 30000 ms). */
  shutdownTimeoutMs?: number;
  /**
   * How long close() keeps serving with /readyz answering 503 before it stops accepting
   * (default 0): long enough for a load balancer's readiness checks to take the instance
   * out of rotation, so that no request reaches a closed listener.
   */
  drainDelayMs?: number;
}

export interface ServerMetrics {
  /** Requests answered, by route and status code, e.g. {'predict 200': 10}. */
  requests: Record<string, number>;
  /** Predictions answered 200. */
  served: number;
  /** Predictions refused because the queue was full. */
  rejected: number;
  /** Predictions answered 200 at a rate the client pinned ("rate" or X-Slice-Rate). */
  pinned: number;
  /** Inputs whose forward pass gave NaN or infinite logits (their requests were answered 500). */
  nonFinite: number;
  /** The rate of the latest batch (the controller's current choice). */
  rate: number;
  /** Requests and inputs waiting. */
  queueLength: number;
  queuedInputs: number;
  inFlightBatches: number;
  batches: number;
  /** Arrival rate estimate, inputs per second. */
  arrivalRate: number;
  /** Observed / profiled batch latency at the current rate. */
  slowdown: number;
  /**
   * The arrival rate over what the workers could serve at the widest rate in full batches
   * (its profiled latency, scaled by the observed slowdown there): above 1 the server is
   * lowering the rate to keep up. What an autoscaler should hold below 1.
   */
  utilization: number;
  /** Inputs answered with a class, by rate (e.g. {'0.5': 40}). */
  answeredByRate: Record<string, number>;
  /**
   * The accuracy delivered so far: the model's recorded test accuracy at each answered
   * input's rate, averaged over the answered inputs (a fraction). Undefined when the model
   * file records no accuracy for some trained rate (ms.evaluate writes the table), or
   * before the first answer.
   */
  accuracy?: number;
}

export interface ServerHandle {
  url: string;
  port: number;
  /** The latency profile the controller uses. */
  latencyProfile: LatencyProfile;
  sloMs: number;
  /** Most inputs waiting before requests are refused (ServeOptions.maxQueue, or its default). */
  maxQueue: number;
  /**
   * Turns readiness off and serves on for drainDelayMs, then stops accepting, finishes
   * queued work and stops the workers. Idempotent.
   */
  close(): Promise<void>;
  /** Whether /readyz answers 200 (false from the moment close() is called). */
  readonly ready: boolean;
  /** Whether POST /generate is served (the model is a language model). */
  readonly generates: boolean;
  metrics(): ServerMetrics;
  /** The /metrics text (Prometheus exposition, prom-client's default process metrics included). */
  metricsText(): Promise<string>;
}

function positiveInt(op: string, name: string, v: unknown, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** The default worker count: one per core this process may use (a cgroup CPU limit counted), at most 4. */
export function defaultWorkers(): number {
  return Math.min(4, usableCores());
}

/**
 * The default queue bound: the inputs `workers` serve in half of `sloMs` at `rate` in full
 * batches of `maxBatch` by the profile (the other half is for the request's own batch and its
 * trip through HTTP), at least maxBatch.
 */
export function defaultMaxQueue(profile: LatencyProfile, rate: number, maxBatch: number, workers: number, sloMs: number): number {
  const batchMs = estimateLatencyMs(profile, rate, maxBatch);
  if (batchMs === undefined || !(batchMs > 0)) return Math.max(maxBatch, 256);
  return Math.max(maxBatch, Math.floor(((sloMs / 2) * workers * maxBatch) / batchMs));
}

/**
 * Serves a model over HTTP: POST /predict, GET /healthz, GET /readyz, GET /metrics.
 * `modelOrPath` is a file written by ms.save or a built-in model.
 */
export async function serve(modelOrPath: string | Module, options: ServeOptions): Promise<ServerHandle> {
  const op = 'serve';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object with sloMs`);
  const sloMs = options.sloMs;
  if (typeof sloMs !== 'number' || !Number.isFinite(sloMs) || sloMs <= 0) throw new RangeError(`${op}: sloMs must be a positive number, got ${String(sloMs)}`);
  const port = positiveInt(op, 'port', options.port, 0, 0);
  if (port > 65535) throw new RangeError(`${op}: port must be in [0, 65535], got ${port}`);
  const host = options.host ?? '127.0.0.1';
  const maxBatch = positiveInt(op, 'maxBatch', options.maxBatch, 32);
  const givenMaxQueue = positiveInt(op, 'maxQueue', options.maxQueue, 0);
  const workerCount = positiveInt(op, 'workers', options.workers, defaultWorkers());
  const fixedRate = options.rate === undefined ? undefined : checkRate(op, options.rate);
  const shutdownTimeoutMs = positiveInt(op, 'shutdownTimeoutMs', options.shutdownTimeoutMs, 30000, 0);
  const drainDelayMs = positiveInt(op, 'drainDelayMs', options.drainDelayMs, 0, 0);
  // Several workers share the cores out; one worker keeps the addon's default (all cores, or
  // MODELSLICE_NUM_THREADS) unless a cgroup limit allows fewer cores than it would see.
  const cores = usableCores();
  const threads = options.threads ?? (workerCount > 1 || cores < availableParallelism() ? Math.max(1, Math.floor(cores / workerCount)) : undefined);
  const clock = options.clock ?? (() => performance.now());

  // The first worker measures the profile the controller plans with; the others only serve.
  // Every worker builds the inference plans of the batches it will run before it serves: the
  // profile's sizes are powers of two and maxBatch, which every batch's slices are made of.
  const batchSizes = profileBatchSizes(maxBatch);
  const first = await Predictor.create(modelOrPath, {
    threads,
    inputShape: options.inputShape,
    profile: options.latencyProfile ? false : { batchSizes, repeats: options.profileRepeats ?? 3 },
    ...(options.latencyProfile ? { warm: batchSizes } : {}),
  });
  const predictors = [first];
  // From here on a failure (a bad option, a port in use) stops the workers started so far.
  try {
    const rest = await Promise.allSettled(
      Array.from({ length: workerCount - 1 }, () => Predictor.create(modelOrPath, { threads, inputShape: options.inputShape, profile: false, warm: batchSizes })),
    );
    for (const r of rest) if (r.status === 'fulfilled') predictors.push(r.value);
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const profile = options.latencyProfile ?? first.latencyProfile!;
    const inputSize = first.inputSize;
    const maxBodyBytes = positiveInt(op, 'maxBodyBytes', options.maxBodyBytes, Math.max(64 * 1024, maxBatch * inputSize * 32 + 1024));
    const rates = first.trainedRates.filter((r) => estimateLatencyMs(profile, r, 1) !== undefined);
    if (rates.length === 0) {
      throw new RangeError(`${op}: the latency profile has no row for any trained rate (${first.trainedRates.join(', ')})`);
    }
    const maxQueue = givenMaxQueue > 0 ? givenMaxQueue : defaultMaxQueue(profile, fixedRate ?? rates[rates.length - 1], maxBatch, predictors.length, sloMs);
    const controller = new RateController({
      ...options.controller,
      sloMs,
      rates,
      maxBatch,
      workers: workerCount,
      latencyMs: (r, b) => estimateLatencyMs(profile, r, b)!,
    });

    // Metrics, registered in the order of their families in the /metrics text.
    const registry = new Registry({ processMetrics: true });
    const httpMetrics = createHttpMetrics(registry, sloMs);
    const batchMetrics = createBatchMetrics(registry, maxBatch);
    // The recorded accuracy per rate, when it covers every rate the server may run.
    const table = first.accuracy;
    const accuracyAt = table !== undefined && first.trainedRates.every((r) => table.some((a) => a.rate === r)) ? new Map(table.map((a) => [a.rate, a.accuracy])) : undefined;
    const deliveredAccuracy = (): number | undefined => {
      if (accuracyAt === undefined) return undefined;
      let n = 0;
      let sum = 0;
      for (const [rate, count] of Object.entries(batchMetrics.answeredByRate.byLabel('rate'))) {
        n += count;
        sum += count * (accuracyAt.get(Number(rate)) ?? NaN);
      }
      return n > 0 ? sum / n : undefined;
    };
    const batcher = new Batcher({
      predictors,
      inputShape: first.inputShape,
      maxBatch,
      maxQueue,
      controller,
      fixedRate,
      clock,
      retryAfterSeconds: (queuedInputs) => {
        const smallest = rates[rates.length - 1];
        const drainMs = (Math.ceil(queuedInputs / maxBatch) / predictors.length) * estimateLatencyMs(profile, smallest, maxBatch)! * controller.slowdownAt(smallest);
        return Math.max(1, Math.ceil(drainMs / 1000));
      },
      beforeBatch: options.beforeBatch,
      onBatch: options.onBatch,
      metrics: batchMetrics,
    });
    registry.add(new Gauge('modelslice_slice_rate', 'Slice rate of the latest forward pass whose rate the server chose (pinned requests aside).', () => batcher.rate));
    registry.add(new Gauge('modelslice_queue_length', 'Requests waiting for a forward pass.', () => batcher.queueLength));
    registry.add(new Gauge('modelslice_queue_inputs', 'Inputs waiting for a forward pass.', () => batcher.queuedInputs));
    registry.add(new Gauge('modelslice_inflight_batches', 'Forward passes running.', () => batcher.inFlightBatches));
    registry.add(new Gauge('modelslice_arrival_rate', 'Arrival rate estimate (EWMA), inputs per second.', () => controller.arrivalRate(clock())));
    registry.add(new Gauge('modelslice_latency_slowdown', 'Observed over profiled forward-pass latency at the current rate (EWMA).', () => controller.slowdown));
    registry.add(new Gauge('modelslice_slo_seconds', 'The latency objective.', () => sloMs / 1000));
    registry.add(new Gauge('modelslice_workers', 'Predictor worker threads.', () => predictors.length));
    const widestCapacity = () => (predictors.length * maxBatch * 1000) / (estimateLatencyMs(profile, rates[0], maxBatch)! * controller.slowdownAt(rates[0]));
    const utilization = () => controller.arrivalRate(clock()) / widestCapacity();
    registry.add(
      new Gauge(
        'modelslice_full_width_utilization',
        'Arrival rate over the inputs per second the workers serve at the widest rate in full batches: above 1 slicing absorbs the excess (the autoscaling signal).',
        utilization,
      ),
    );
    if (accuracyAt !== undefined) {
      // With modelslice_answered_inputs_total{rate}, the accuracy delivered over any window:
      // sum(rate(answered[1m]) * on(rate) group_left modelslice_model_accuracy) / sum(rate(answered[1m])).
      registry.add(
        new Gauge('modelslice_model_accuracy', 'Test accuracy the model file records at each trained slice rate (a fraction; ms.evaluate measured it).', () => [...accuracyAt].map(([rate, value]) => ({ labels: { rate: String(rate) }, value })), ['rate']),
      );
      registry.add(new Gauge('modelslice_accuracy_delivered', 'Recorded accuracy at the rate of each answered input, averaged over the inputs answered since start (NaN before the first).', () => deliveredAccuracy() ?? NaN));
    }

    // A language model also answers POST /generate: its text in token ids, on the least busy
    // worker, at the rate pinned or else the one the server runs at when the request starts.
    const vocabulary = first.vocabulary;
    let generator: TextGenerator | undefined;
    if (vocabulary !== undefined) {
      const generated = registry.add(new Counter('modelslice_generated_tokens_total', 'Tokens POST /generate produced, by the slice rate the request ran at.', ['rate']));
      const encode = (text: string, what: string): number[] => {
        try {
          return [...textDataset(text, { vocabulary }).ids];
        } catch (err) {
          throw new HttpError(400, `${what}: ${(err as Error).message.replace(/^textDataset: /, '')}`);
        }
      };
      generator = {
        generate: async (request, onText, signal) => {
          const prompt = encode(request.prompt, '"prompt"');
          const stop = request.stop?.map((s) => encode(s, '"stop"'));
          const rate = request.rate ?? fixedRate ?? batcher.rate;
          const load = (p: Predictor) => p.pending + (p.busy ? 1 : 0);
          const predictor = predictors.reduce((a, b) => (load(b) < load(a) ? b : a));
          const g = await predictor.generate(prompt, {
            maxTokens: request.maxTokens,
            temperature: request.temperature,
            topK: request.topK,
            seed: request.seed,
            stop,
            rate,
            signal,
            onToken: (id) => onText(vocabulary[id]),
          });
          generated.inc({ rate: String(g.rate) }, g.tokens.length);
          return { text: decodeText(g.tokens, vocabulary), tokens: g.tokens.length, rate: g.rate, ms: g.ms };
        },
      };
    }

    const front = new HttpFront({
      generator,
      batcher,
      inputSize,
      maxInputs: maxBatch,
      maxBodyBytes,
      trainedRates: first.trainedRates,
      metrics: httpMetrics,
      metricsText: () => registry.render(),
      health: () => ({ rate: batcher.rate, queue: batcher.queueLength, workers: predictors.length, sloMs, maxQueue }),
      clock,
    });
    const address = await front.listen(port, host).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`${op}: cannot listen on ${host}:${port} (${err.code ?? err.message})`);
    });

    let closed: Promise<void> | null = null;
    const close = () => {
      if (closed !== null) return closed;
      front.startDraining();
      closed = (async () => {
        // Not ready, still serving, while the balancer notices; then finish what is queued
        // (bounded by shutdownTimeoutMs; the rest is answered 503) and stop the workers.
        if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
        await front.close(() => batcher.drain(shutdownTimeoutMs));
        await Promise.all(predictors.map((p) => p.close()));
      })();
      return closed;
    };

    const metrics = (): ServerMetrics => {
      const accuracy = deliveredAccuracy();
      const { requests, pinnedRequests } = httpMetrics;
      const byCode = requests.snapshot();
      const readable: Record<string, number> = {};
      for (const [key, v] of Object.entries(byCode)) {
        const m = /route="([^"]*)",code="([^"]*)"/.exec(key);
        readable[m ? `${m[1]} ${m[2]}` : key] = v;
      }
      return {
        requests: readable,
        served: requests.get({ route: 'predict', code: '200' }),
        rejected: requests.get({ route: 'predict', code: '503' }),
        pinned: Object.entries(pinnedRequests.snapshot())
          .filter(([key]) => key.includes('code="200"'))
          .reduce((n, [, v]) => n + v, 0),
        nonFinite: Object.values(batchMetrics.nonFinite.snapshot()).reduce((n, v) => n + v, 0),
        rate: batcher.rate,
        queueLength: batcher.queueLength,
        queuedInputs: batcher.queuedInputs,
        inFlightBatches: batcher.inFlightBatches,
        batches: batchMetrics.batchSizes.count,
        arrivalRate: controller.arrivalRate(clock()),
        slowdown: controller.slowdown,
        utilization: utilization(),
        answeredByRate: batchMetrics.answeredByRate.byLabel('rate'),
        ...(accuracy !== undefined ? { accuracy } : {}),
      };
    };

    return {
      url: address.url,
      port: address.port,
      latencyProfile: profile,
      sloMs,
      maxQueue,
      close,
      generates: generator !== undefined,
      get ready() {
        return front.isReady;
      },
      metrics,
      metricsText: () => registry.render(),
    };
  } catch (err) {
    await Promise.all(predictors.map((p) => p.close()));
    throw err;
  }
}
