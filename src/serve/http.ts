// The HTTP front of the server: routes, methods and media types, body limits,
// status codes and headers, /healthz (liveness), /readyz (readiness), /metrics, and a
// graceful close that can first drain (not ready, still serving) so that a load balancer
// stops sending before the listener goes. What
// a prediction means is the batcher's business: the front parses a request
// into inputs and a pinned rate, submits them and answers with the result.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BatchAnswer, BatchRequest } from './batcher.js';
import { checkRequestedRate, HttpError, parseJsonInputs, parseRawInputs, readBody, type Inputs } from './body.js';
import { Counter, Histogram, PROMETHEUS_CONTENT_TYPE, type Registry } from './metrics.js';

/** What the front needs of the batcher. */
export interface PredictQueue {
  submit(request: BatchRequest): Promise<BatchAnswer>;
}

/** A POST /generate request, checked: the prompt and stop strings as text. */
export interface TextRequest {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK?: number;
  stop?: string[];
  seed?: number;
  /** A rate the client pinned (snapped to a trained rate); otherwise the server picks when the request starts. */
  rate?: number;
}

export interface TextAnswer {
  text: string;
  tokens: number;
  rate: number;
  ms: number;
}

/** What the front needs of a language model's server. */
export interface TextGenerator {
  generate(request: TextRequest, onText: (piece: string) => void, signal: AbortSignal): Promise<TextAnswer>;
}

/** Most tokens one POST /generate may ask for. */
export const MAX_GENERATE_TOKENS = 4096;

/** The instruments the front updates (registered by createHttpMetrics). */
export interface HttpMetrics {
  requests: Counter;
  latency: Histogram;
  pinnedRequests: Counter;
}

/** The code nginx uses for a client that closed its connection before the answer; no answer is sent. */
const CLIENT_CLOSED = '499';

const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createHttpMetrics(registry: Registry, sloMs: number): HttpMetrics {
  return {
    requests: registry.add(new Counter('modelslice_requests_total', `HTTP requests answered, by route and status code (${CLIENT_CLOSED}: the client closed the connection first).`, ['route', 'code'])),
    latency: registry.add(
      new Histogram(
        'modelslice_request_duration_seconds',
        'Time from arrival to answer of POST /predict requests, in seconds, by status code (the SLO is one bucket bound).',
        [...LATENCY_BUCKETS_S, sloMs / 1000],
        ['code'],
      ),
    ),
    pinnedRequests: registry.add(new Counter('modelslice_pinned_requests_total', 'POST /predict requests that pinned their slice rate, by the trained rate they ran at and status code.', ['rate', 'code'])),
  };
}

export interface HttpFrontOptions {
  batcher: PredictQueue;
  /** Values per input. */
  inputSize: number;
  /** Most inputs per request. */
  maxInputs: number;
  /** Largest request body. */
  maxBodyBytes: number;
  /** The model's trained rates, widest first: a rate a client asks for runs at the nearest at or above it. */
  trainedRates: readonly number[];
  metrics: HttpMetrics;
  /** The /metrics text. */
  metricsText: () => Promise<string>;
  /** The fields of /healthz after its status. */
  health: () => Record<string, unknown>;
  /** Milliseconds clock (default performance.now). */
  clock?: () => number;
  /** Serves POST /generate (a language model). */
  generator?: TextGenerator;
}

export class HttpFront {
  private readonly server: Server;
  private readonly clock: () => number;
  private closing = false;
  private draining = false;
  private closed: Promise<void> | null = null;

  constructor(private readonly options: HttpFrontOptions) {
    this.clock = options.clock ?? (() => performance.now());
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.requestTimeout = 30000; // a slow client cannot hold a connection forever
    this.server.headersTimeout = 10000;
  }

  /** Starts listening; resolves the address, or rejects with the listen error. */
  listen(port: number, host: string): Promise<{ url: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address() as AddressInfo;
        const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        resolve({ url: `http://${urlHost}:${address.port}`, port: address.port });
      });
    });
  }

  /** Whether close() has begun: predictions get 503 and /healthz says so. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Whether /readyz says 200: not draining and not closing. */
  get isReady(): boolean {
    return !this.draining && !this.closing;
  }

  /**
   * Turns readiness off (/readyz answers 503) while predictions are still served, so a
   * load balancer polling /readyz stops sending before close() stops the listener.
   */
  startDraining(): void {
    this.draining = true;
  }

  /**
   * Stops accepting connections and predictions, awaits `drain` (the queued
   * work; it resolves whether all of it finished), then closes the connections:
   * idle ones at once, busy ones after a second's grace, or at once when the
   * drain gave up. Idempotent.
   */
  close(drain: () => Promise<boolean>): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.closing = true;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.closed = (async () => {
      const finished = await drain();
      this.server.closeIdleConnections();
      const forced = setTimeout(() => this.server.closeAllConnections(), finished ? 1000 : 0);
      await serverClosed;
      clearTimeout(forced);
    })();
    return this.closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (path === '/predict' || path === '/generate') {
      const route = path.slice(1);
      if (method !== 'POST') this.send(req, res, route, 405, JSON.stringify({ error: `${method} is not allowed on ${path}; use POST` }), { Allow: 'POST' });
      else void (route === 'predict' ? this.predictRoute(req, res) : this.generateRoute(req, res));
      return;
    }
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
      const route = path.slice(1);
      if (method !== 'GET' && method !== 'HEAD') this.send(req, res, route, 405, JSON.stringify({ error: `${method} is not allowed on ${path}; use GET` }), { Allow: 'GET, HEAD' });
      else if (route === 'metrics') {
        this.options.metricsText().then(
          (text) => this.send(req, res, route, 200, text, { 'Content-Type': PROMETHEUS_CONTENT_TYPE }),
          (err: Error) => this.send(req, res, route, 500, JSON.stringify({ error: `collecting metrics failed: ${err.message}` })),
        );
      }
      else {
        const status = this.closing ? 'shutting down' : this.draining ? 'draining' : route === 'readyz' ? 'ready' : 'ok';
        // Liveness fails only once the listener is closing; readiness already while draining.
        const up = route === 'readyz' ? this.isReady : !this.closing;
        this.send(req, res, route, up ? 200 : 503, JSON.stringify({ status, ...this.options.health() }));
      }
      return;
    }
    this.send(req, res, 'other', 404, JSON.stringify({ error: `no route ${path}; try POST ${this.options.generator ? '/generate' : '/predict'}, GET /healthz, GET /readyz or GET /metrics` }));
  }

  /** Answers and counts the answer; false when the client is gone and nothing was sent. */
  private send(req: IncomingMessage, res: ServerResponse, route: string, status: number, body: string, headers: Record<string, string> = {}): boolean {
    if (res.headersSent || res.destroyed) return false;
    const h: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8', ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
    if (this.closing || status === 413) h.Connection = 'close';
    res.writeHead(status, h);
    res.end(req.method === 'HEAD' ? undefined : body);
    this.options.metrics.requests.inc({ route, code: String(status) });
    return true;
  }

  /** The widest trained rate a client's requested rate needs: the nearest at or above it (BatchNorm statistics exist only there). */
  private snapRate(requested: number, where: string): number {
    const trained = this.options.trainedRates;
    const atOrAbove = trained.filter((r) => r >= requested - 1e-9);
    if (atOrAbove.length === 0) throw new HttpError(400, `${where} ${requested} is above the widest trained rate ${trained[0]}`);
    return atOrAbove[atOrAbove.length - 1];
  }

  /** The trained rate a request pins by its body's "rate" (already checked) or X-Slice-Rate, or undefined. */
  private requestedRate(req: IncomingMessage, inputs: { rate?: number }): number | undefined {
    const header = req.headers['x-slice-rate'];
    if (header === undefined) return inputs.rate === undefined ? undefined : this.snapRate(inputs.rate, '"rate"');
    const fromHeader = checkRequestedRate(header, 'X-Slice-Rate', true);
    if (inputs.rate !== undefined && inputs.rate !== fromHeader) throw new HttpError(400, `"rate" ${inputs.rate} and X-Slice-Rate ${fromHeader} disagree; give one of them`);
    return this.snapRate(fromHeader, 'X-Slice-Rate');
  }

  private async predictRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { metrics, inputSize, maxInputs } = this.options;
    const arrived = this.clock();
    let pinned: number | undefined;
    const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
      const code = this.send(req, res, 'predict', status, body, headers) ? String(status) : CLIENT_CLOSED;
      if (code === CLIENT_CLOSED) metrics.requests.inc({ route: 'predict', code });
      metrics.latency.observe((this.clock() - arrived) / 1000, { code });
      if (pinned !== undefined) metrics.pinnedRequests.inc({ rate: String(pinned), code });
    };
    try {
      if (this.closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
      // A class per input means nothing for a language model (it would be the argmax of a
      // sequence's logits at every position at once): its answers are text.
      if (this.options.generator !== undefined) throw new HttpError(404, 'this model is a language model (models.transformer): its answers are text, POST /generate');
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const raw = type === 'application/octet-stream';
      if (!raw && type !== '' && type !== 'application/json') {
        throw new HttpError(415, `unsupported Content-Type ${JSON.stringify(type)}; send application/json or application/octet-stream (little-endian float32)`);
      }
      const body = await readBody(req, this.options.maxBodyBytes);
      const inputs: Inputs = raw ? parseRawInputs(body, inputSize, maxInputs) : parseJsonInputs(body, inputSize, maxInputs);
      pinned = this.requestedRate(req, inputs);
      if (this.closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
      const gone = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) gone.abort(); // the client went away: do not compute for it
      });
      const result = await this.options.batcher.submit({ data: inputs.data, count: inputs.count, pinned, signal: gone.signal });
      answer(200, JSON.stringify(result));
    } catch (err) {
      answer(...errorReply(err));
      if (err instanceof HttpError && err.status === 413) req.resume(); // let the connection close cleanly
    }
  }

  /**
   * POST /generate: continues the prompt at the rate pinned ("rate" or X-Slice-Rate) or else
   * the rate the server runs at when the request starts, which holds for the whole request.
   * With "stream": true the answer is NDJSON, {"token": "..."} per token as it is made and
   * then {"done": true, ...}; otherwise one JSON object {"text", "tokens", "rate", "ms"}.
   */
  private async generateRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const generator = this.options.generator;
    const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
      if (!this.send(req, res, 'generate', status, body, headers)) this.options.metrics.requests.inc({ route: 'generate', code: CLIENT_CLOSED });
    };
    try {
      if (generator === undefined) throw new HttpError(404, 'this model is not a language model (models.transformer): POST /predict');
      if (this.closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      // curl -d sends its default form type with a JSON body: take the body as JSON either way.
      if (type !== '' && type !== 'application/json' && type !== 'application/x-www-form-urlencoded') {
        throw new HttpError(415, `unsupported Content-Type ${JSON.stringify(type)}; send application/json`);
      }
      const request = parseTextRequest(await readBody(req, this.options.maxBodyBytes));
      request.rate = this.requestedRate(req, request);
      const gone = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) gone.abort();
      });
      if (!request.stream) {
        const result = await generator.generate(request, () => {}, gone.signal);
        answer(200, JSON.stringify(result));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-cache', ...(this.closing ? { Connection: 'close' } : {}) });
      try {
        const result = await generator.generate(request, (piece) => void res.write(`${JSON.stringify({ token: piece })}\n`), gone.signal);
        res.end(`${JSON.stringify({ done: true, ...result })}\n`);
        this.options.metrics.requests.inc({ route: 'generate', code: '200' });
      } catch (err) {
        // The status line has gone: the failure is the stream's last line.
        res.end(`${JSON.stringify({ error: (err as Error).message })}\n`);
        this.options.metrics.requests.inc({ route: 'generate', code: gone.signal.aborted ? CLIENT_CLOSED : '500' });
      }
    } catch (err) {
      answer(...errorReply(err));
      if (err instanceof HttpError && err.status === 413) req.resume();
    }
  }
}

/** The fields of a POST /generate body, checked by name. */
function parseTextRequest(body: Buffer): TextRequest & { stream: boolean } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body must be JSON: {"prompt": "...", "maxTokens"?: n, "temperature"?: t, "topK"?: k, "stop"?: [...], "seed"?: n, "rate"?: r, "stream"?: true}');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new HttpError(400, 'the body must be a JSON object with a "prompt"');
  const b = json as Record<string, unknown>;
  const known = ['prompt', 'maxTokens', 'temperature', 'topK', 'stop', 'seed', 'rate', 'stream'];
  const unknown = Object.keys(b).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown field ${JSON.stringify(unknown[0])}; use ${known.join(', ')}`);
  if (typeof b.prompt !== 'string' || b.prompt.length === 0) throw new HttpError(400, `"prompt" must be a non-empty string, got ${JSON.stringify(b.prompt)}`);
  const int = (name: string, v: unknown, min: number, max: number): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new HttpError(400, `"${name}" must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v;
  };
  const temperature = b.temperature ?? 1;
  if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= 100)) throw new HttpError(400, `"temperature" must be a number in [0, 100], got ${JSON.stringify(b.temperature)}`);
  const stop = typeof b.stop === 'string' ? [b.stop] : b.stop;
  if (stop !== undefined && (!Array.isArray(stop) || stop.some((x) => typeof x !== 'string' || x.length === 0))) throw new HttpError(400, '"stop" must be a non-empty string or an array of them');
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw new HttpError(400, `"stream" must be true or false, got ${JSON.stringify(b.stream)}`);
  return {
    prompt: b.prompt,
    maxTokens: int('maxTokens', b.maxTokens, 0, MAX_GENERATE_TOKENS) ?? 128,
    temperature,
    topK: int('topK', b.topK, 1, 2 ** 31 - 1),
    stop: stop as string[] | undefined,
    seed: int('seed', b.seed, 0, Number.MAX_SAFE_INTEGER),
    rate: b.rate === undefined ? undefined : checkRequestedRate(b.rate, '"rate"'),
    stream: b.stream === true,
  };
}

function errorReply(err: unknown): [number, string, Record<string, string>] {
  return err instanceof HttpError ? [err.status, JSON.stringify({ error: err.message }), err.headers] : [500, JSON.stringify({ error: `internal error: ${(err as Error)?.message ?? String(err)}` }), {}];
}
