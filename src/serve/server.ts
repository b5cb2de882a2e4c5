// The elastic inference server: node:http in front of one or more Predictor
// workers. Requests queue (bounded), go out in dynamic batches whenever a
// worker is free, and each batch runs at the rate the controller chooses so
// that answers arrive within the SLO at the widest rate the load affords.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Module } from '../nn/module.js';
import type { LatencyProfile } from '../slicing/select.js';
import { checkRate } from '../slicing/width.js';
import { checkRequestedRate, HttpError, parseJsonInputs, parseRawInputs, readBody, type Inputs } from './body.js';
import { RateController, type ControllerOptions, type Decision } from './controller.js';
import { estimateLatencyMs, profileBatchSizes } from './latency.js';
import { Counter, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE, Registry } from './metrics.js';
import { Predictor } from './predictor.js';

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

export interface ServeOptions {
  /** Latency objective per request (arrival to answer), ms. */
  sloMs: number;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: loopback only). */
  host?: string;
  /** Most inputs per forward pass, and per request (default 32). */
  maxBatch?: number;
  /** Most inputs waiting; beyond it requests get 503 with Retry-After (default 256). */
  maxQueue?: number;
  /** Largest request body (default: room for maxBatch inputs as JSON, at least 64 KiB). */
  maxBodyBytes?: number;
  /** Predictor worker threads, each taking whole batches (default 1). */
  workers?: number;
  /** Kernel threads per worker, each worker having its own pool (default: the cores shared out between the workers). */
  threads?: number;
  /** Serve every batch at this rate instead of letting the controller choose. */
  rate?: number;
  /** Input shape without the batch (default from the model's config). */
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
}

export interface ServerHandle {
  url: string;
  port: number;
  /** The latency profile the controller uses. */
  latencyProfile: LatencyProfile;
  sloMs: number;
  /** Stops accepting, finishes queued work, then stops the workers. Idempotent. */
  close(): Promise<void>;
  metrics(): ServerMetrics;
  /** The /metrics text. */
  metricsText(): string;
}

interface Pending {
  data: Float32Array;
  count: number;
  /** The trained rate the client pinned; undefined lets the controller choose. */
  pinned: number | undefined;
  arrived: number;
  cancelled: boolean;
  resolve: (r: { classes: number[]; rate: number }) => void;
  reject: (e: Error) => void;
}

/** The code nginx uses for a client that closed its connection before the answer; no answer is sent. */
const CLIENT_CLOSED = '499';

const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function positiveInt(op: string, name: string, v: unknown, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/**
 * Serves a model over HTTP: POST /predict, GET /healthz, GET /metrics.
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
  const maxQueue = positiveInt(op, 'maxQueue', options.maxQueue, 256);
  const workerCount = positiveInt(op, 'workers', options.workers, 1);
  const fixedRate = options.rate === undefined ? undefined : checkRate(op, options.rate);
  const shutdownTimeoutMs = positiveInt(op, 'shutdownTimeoutMs', options.shutdownTimeoutMs, 30000, 0);
  const threads = options.threads ?? (workerCount > 1 ? Math.max(1, Math.floor(availableParallelism() / workerCount)) : undefined);
  const clock = options.clock ?? (() => performance.now());

  // The first worker measures the profile the controller plans with; the others only serve.
  const first = await Predictor.create(modelOrPath, {
    threads,
    inputShape: options.inputShape,
    profile: options.latencyProfile ? false : { batchSizes: profileBatchSizes(maxBatch), repeats: options.profileRepeats ?? 3 },
  });
  const predictors = [first];
  try {
    const rest = await Promise.all(
      Array.from({ length: workerCount - 1 }, () => Predictor.create(modelOrPath, { threads, inputShape: options.inputShape, profile: false })),
    );
    predictors.push(...rest);
  } catch (err) {
    await Promise.all(predictors.map((p) => p.close()));
    throw err;
  }
  const profile = options.latencyProfile ?? first.latencyProfile!;
  const inputSize = first.inputSize;
  const maxBodyBytes = positiveInt(op, 'maxBodyBytes', options.maxBodyBytes, Math.max(64 * 1024, maxBatch * inputSize * 32 + 1024));
  const rates = first.trainedRates.filter((r) => estimateLatencyMs(profile, r, 1) !== undefined);
  if (rates.length === 0) {
    await Promise.all(predictors.map((p) => p.close()));
    throw new RangeError(`${op}: the latency profile has no row for any trained rate (${first.trainedRates.join(', ')})`);
  }
  const controller = new RateController({
    ...options.controller,
    sloMs,
    rates,
    maxBatch,
    workers: workerCount,
    latencyMs: (r, b) => estimateLatencyMs(profile, r, b)!,
  });

  // Metrics.
  const registry = new Registry();
  const requests = registry.add(new Counter('modelslice_requests_total', `HTTP requests answered, by route and status code (${CLIENT_CLOSED}: the client closed the connection first).`));
  const latency = registry.add(
    new Histogram(
      'modelslice_request_duration_seconds',
      'Time from arrival to answer of POST /predict requests, in seconds, by status code (the SLO is one bucket bound).',
      [...LATENCY_BUCKETS_S, sloMs / 1000],
      ['code'],
    ),
  );
  const pinnedRequests = registry.add(new Counter('modelslice_pinned_requests_total', 'POST /predict requests that pinned their slice rate, by the trained rate they ran at and status code.'));
  const nonFinite = registry.add(new Counter('modelslice_nonfinite_outputs_total', 'Inputs whose logits came out NaN or infinite (answered 500), by slice rate.'));
  const batchSizes = registry.add(new Histogram('modelslice_batch_size', 'Inputs per forward pass.', profileBatchSizes(maxBatch)));
  const batchesByRate = registry.add(new Counter('modelslice_batches_total', 'Forward passes, by slice rate.'));
  const inputsByRate = registry.add(new Counter('modelslice_inputs_total', 'Inputs predicted, by slice rate.'));
  let currentRate = fixedRate ?? controller.rate;
  const queue: Pending[] = [];
  let queuedInputs = 0;
  let inFlightInputs = 0;
  const busy = predictors.map(() => false);
  let nextWorker = 0;
  registry.add(new Gauge('modelslice_slice_rate', 'Slice rate of the latest forward pass whose rate the server chose (pinned requests aside).', () => currentRate));
  registry.add(new Gauge('modelslice_queue_length', 'Requests waiting for a forward pass.', () => queue.length));
  registry.add(new Gauge('modelslice_queue_inputs', 'Inputs waiting for a forward pass.', () => queuedInputs));
  registry.add(new Gauge('modelslice_inflight_batches', 'Forward passes running.', () => busy.filter(Boolean).length));
  registry.add(new Gauge('modelslice_arrival_rate', 'Arrival rate estimate (EWMA), inputs per second.', () => controller.arrivalRate(clock())));
  registry.add(new Gauge('modelslice_latency_slowdown', 'Observed over profiled forward-pass latency at the current rate (EWMA).', () => controller.slowdown));
  registry.add(new Gauge('modelslice_slo_seconds', 'The latency objective.', () => sloMs / 1000));
  registry.add(new Gauge('modelslice_workers', 'Predictor worker threads.', () => predictors.length));

  let closing = false;
  let drainWaiters: (() => void)[] = [];
  const idle = () => queue.length === 0 && !busy.some(Boolean);
  const notifyDrained = () => {
    if (!idle()) return;
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const w of waiters) w();
  };

  /** Forgets a request whose client went away before its batch formed. */
  const drop = (item: Pending) => {
    queuedInputs -= item.count;
    item.reject(new Error('the client closed the connection'));
  };

  /**
   * Takes from the queue, in arrival order, the requests of one group (`inGroup`)
   * that fit in `room` inputs; stops at the first that does not fit, so a large
   * request is not passed over forever.
   */
  const take = (inGroup: (item: Pending) => boolean, room: number): { items: Pending[]; size: number } => {
    const items: Pending[] = [];
    const rest: Pending[] = [];
    let size = 0;
    let full = false;
    for (const item of queue) {
      if (full || !inGroup(item)) rest.push(item);
      else if (item.cancelled) drop(item);
      else if (size + item.count > room) {
        full = true;
        rest.push(item);
      } else {
        items.push(item);
        size += item.count;
      }
    }
    queue.splice(0, queue.length, ...rest);
    return { items, size };
  };

  /** Hands batches to free workers (least loaded first: only idle ones take work; round-robin among them). */
  const pump = () => {
    for (;;) {
      while (queue.length > 0 && queue[0].cancelled) drop(queue.shift()!);
      if (queue.length === 0) break;
      let w = -1;
      for (let k = 0; k < predictors.length; k++) {
        const i = (nextWorker + k) % predictors.length;
        if (!busy[i]) {
          w = i;
          break;
        }
      }
      if (w < 0) break;
      nextWorker = (w + 1) % predictors.length;
      const now = clock();
      // A pass runs at one rate, so a batch is the oldest request's group: requests
      // pinned to its rate, or requests that leave the rate to the server.
      const pinned = queue[0].pinned;
      const newest = queue[queue.length - 1];
      const { items, size: groupSize } = take((item) => item.pinned === pinned, maxBatch);
      if (items.length === 0) continue;
      let size = groupSize;
      let rate: number;
      let decision: Decision | undefined;
      if (pinned !== undefined) rate = pinned;
      else if (fixedRate !== undefined) rate = fixedRate;
      else {
        // Pinned requests still waiting are load like any other: they are in queuedInputs.
        decision = controller.decide({ queuedInputs, batchInputs: size, oldestWaitMs: now - items[0].arrived, newestWaitMs: now - newest.arrived, inFlightInputs }, now);
        rate = decision.rate;
      }
      if (pinned === undefined) {
        currentRate = rate;
        // Room left: requests pinned to the very rate chosen ride along.
        if (size < maxBatch) {
          const extra = take((item) => item.pinned === rate, maxBatch - size);
          items.push(...extra.items);
          size += extra.size;
        }
      }
      queuedInputs -= size;
      inFlightInputs += size;
      busy[w] = true;
      void runBatch(w, items, size, { size, requests: items.length, rate, worker: w, decision });
    }
    notifyDrained();
  };

  const runBatch = async (w: number, items: Pending[], size: number, info: ServedBatch) => {
    try {
      const data = new Float32Array(size * inputSize);
      let offset = 0;
      for (const item of items) {
        data.set(item.data, offset);
        offset += item.data.length;
      }
      if (options.beforeBatch) await options.beforeBatch(info);
      const result = await predictors[w].predict(data, { shape: [size, ...first.inputShape], rate: info.rate });
      controller.observeBatch(info.rate, size, result.ms);
      batchSizes.observe(size);
      batchesByRate.inc({ rate: String(info.rate) });
      inputsByRate.inc({ rate: String(info.rate) }, size);
      const classes = result.logits.length / size;
      let row = 0;
      for (const item of items) {
        // The argmax of NaN logits is class 0: an answer that looks fine and means nothing.
        const bad = firstNonFinite(result.logits, row * classes, (row + item.count) * classes);
        if (bad < 0) item.resolve({ classes: Array.from(result.classes.subarray(row, row + item.count)), rate: result.rate });
        else {
          nonFinite.inc({ rate: String(info.rate) }, countNonFiniteRows(result.logits, row, item.count, classes));
          const input = Math.floor(bad / classes) - row;
          item.reject(new HttpError(500, `the model produced non-finite logits (NaN or Infinity) for input ${input} of this request at rate ${info.rate}; no class is given`));
        }
        row += item.count;
      }
      options.onBatch?.({ ...info, ms: result.ms });
    } catch (err) {
      for (const item of items) item.reject(err as Error);
    } finally {
      inFlightInputs -= size;
      busy[w] = false;
      pump();
    }
  };

  /** Answers and counts the answer; false when the client is gone and nothing was sent. */
  const send = (req: IncomingMessage, res: ServerResponse, route: string, status: number, body: string, headers: Record<string, string> = {}): boolean => {
    if (res.headersSent || res.destroyed) return false;
    const h: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8', ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
    if (closing || status === 413) h.Connection = 'close';
    res.writeHead(status, h);
    res.end(req.method === 'HEAD' ? undefined : body);
    requests.inc({ route, code: String(status) });
    return true;
  };
  const errorReply = (err: unknown): [number, string, Record<string, string>] =>
    err instanceof HttpError ? [err.status, JSON.stringify({ error: err.message }), err.headers] : [500, JSON.stringify({ error: `internal error: ${(err as Error)?.message ?? String(err)}` }), {}];

  /** The widest trained rate a client's requested rate needs: the nearest at or above it (BatchNorm statistics exist only there). */
  const snapRate = (requested: number, where: string): number => {
    const atOrAbove = first.trainedRates.filter((r) => r >= requested - 1e-9);
    if (atOrAbove.length === 0) throw new HttpError(400, `${where} ${requested} is above the widest trained rate ${first.trainedRates[0]}`);
    return atOrAbove[atOrAbove.length - 1];
  };
  const requestedRate = (req: IncomingMessage, inputs: Inputs): number | undefined => {
    const header = req.headers['x-slice-rate'];
    if (header === undefined) return inputs.rate === undefined ? undefined : snapRate(inputs.rate, '"rate"');
    const fromHeader = checkRequestedRate(header, 'X-Slice-Rate', true);
    if (inputs.rate !== undefined && inputs.rate !== fromHeader) throw new HttpError(400, `"rate" ${inputs.rate} and X-Slice-Rate ${fromHeader} disagree; give one of them`);
    return snapRate(fromHeader, 'X-Slice-Rate');
  };

  const retryAfterSeconds = () => {
    const smallest = rates[rates.length - 1];
    const drainMs = (Math.ceil(queuedInputs / maxBatch) / predictors.length) * estimateLatencyMs(profile, smallest, maxBatch)! * controller.slowdownAt(smallest);
    return String(Math.max(1, Math.ceil(drainMs / 1000)));
  };

  const predictRoute = async (req: IncomingMessage, res: ServerResponse) => {
    const arrived = clock();
    let pinned: number | undefined;
    const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
      const code = send(req, res, 'predict', status, body, headers) ? String(status) : CLIENT_CLOSED;
      if (code === CLIENT_CLOSED) requests.inc({ route: 'predict', code });
      latency.observe((clock() - arrived) / 1000, { code });
      if (pinned !== undefined) pinnedRequests.inc({ rate: String(pinned), code });
    };
    try {
      if (closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const raw = type === 'application/octet-stream';
      if (!raw && type !== '' && type !== 'application/json') {
        throw new HttpError(415, `unsupported Content-Type ${JSON.stringify(type)}; send application/json or application/octet-stream (little-endian float32)`);
      }
      const body = await readBody(req, maxBodyBytes);
      const inputs: Inputs = raw ? parseRawInputs(body, inputSize, maxBatch) : parseJsonInputs(body, inputSize, maxBatch);
      pinned = requestedRate(req, inputs);
      if (closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
      const now = clock();
      controller.observeArrival(inputs.count, now, queuedInputs + inFlightInputs + inputs.count); // offered load, refused or not, pinned or not
      if (queuedInputs + inputs.count > maxQueue) {
        throw new HttpError(503, `the queue is full (${queuedInputs} inputs waiting, at most ${maxQueue})`, { 'Retry-After': retryAfterSeconds() });
      }
      const result = await new Promise<{ classes: number[]; rate: number }>((resolve, reject) => {
        const item: Pending = { data: inputs.data, count: inputs.count, pinned, arrived: now, cancelled: false, resolve, reject };
        res.on('close', () => {
          if (!res.writableFinished) item.cancelled = true; // the client went away: do not compute for it
        });
        queue.push(item);
        queuedInputs += item.count;
        pump();
      });
      answer(200, JSON.stringify(result));
    } catch (err) {
      answer(...errorReply(err));
      if (err instanceof HttpError && err.status === 413) req.resume(); // let the connection close cleanly
    }
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (path === '/predict') {
      if (method !== 'POST') return send(req, res, 'predict', 405, JSON.stringify({ error: `${method} is not allowed on /predict; use POST` }), { Allow: 'POST' });
      void predictRoute(req, res);
      return;
    }
    if (path === '/healthz' || path === '/metrics') {
      const route = path.slice(1);
      if (method !== 'GET' && method !== 'HEAD') return send(req, res, route, 405, JSON.stringify({ error: `${method} is not allowed on ${path}; use GET` }), { Allow: 'GET, HEAD' });
      if (route === 'metrics') return send(req, res, route, 200, registry.render(), { 'Content-Type': PROMETHEUS_CONTENT_TYPE });
      const health = { status: closing ? 'shutting down' : 'ok', rate: currentRate, queue: queue.length, workers: predictors.length, sloMs };
      return send(req, res, route, closing ? 503 : 200, JSON.stringify(health));
    }
    send(req, res, 'other', 404, JSON.stringify({ error: `no route ${path}; try POST /predict, GET /healthz or GET /metrics` }));
  };

  const server: Server = createServer(handler);
  server.requestTimeout = 30000; // a slow client cannot hold a connection forever
  server.headersTimeout = 10000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await Promise.all(predictors.map((p) => p.close()));
    throw new Error(`${op}: cannot listen on ${host}:${port} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | null = null;
  const close = () => {
    if (closed !== null) return closed;
    closing = true;
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    closed = (async () => {
      // Finish what is queued (bounded by shutdownTimeoutMs), then refuse the rest.
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<boolean>((resolve) => {
        drainWaiters.push(() => resolve(true));
        timer = setTimeout(() => resolve(false), shutdownTimeoutMs);
        notifyDrained();
      });
      const finished = await drained;
      clearTimeout(timer);
      if (!finished) {
        for (const item of queue.splice(0)) item.reject(new HttpError(503, 'the server shut down before this request ran', { 'Retry-After': '1' }));
        queuedInputs = 0;
      }
      server.closeIdleConnections();
      const forced = setTimeout(() => server.closeAllConnections(), finished ? 1000 : 0);
      await serverClosed;
      clearTimeout(forced);
      await Promise.all(predictors.map((p) => p.close()));
    })();
    return closed;
  };

  const metrics = (): ServerMetrics => {
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
      nonFinite: Object.values(nonFinite.snapshot()).reduce((n, v) => n + v, 0),
      rate: currentRate,
      queueLength: queue.length,
      queuedInputs,
      inFlightBatches: busy.filter(Boolean).length,
      batches: batchSizes.count,
      arrivalRate: controller.arrivalRate(clock()),
      slowdown: controller.slowdown,
    };
  };

  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    latencyProfile: profile,
    sloMs,
    close,
    metrics,
    metricsText: () => registry.render(),
  };
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
