// The HTTP front alone, in front of a fake batcher: what reaches the batcher,
// what the client gets back, what is counted, and the graceful close. No model
// and no worker threads.
import { request } from 'node:http';
import t, { type Test } from 'tap';
import type { BatchAnswer, BatchRequest } from '../../src/serve/batcher.js';
import { HttpError } from '../../src/serve/body.js';
import { createHttpMetrics, HttpFront, type HttpFrontOptions, type PredictQueue } from '../../src/serve/http.js';
import { Registry } from '../../src/serve/metrics.js';
import { call, postJson, until } from './http.js';

class FakeBatcher implements PredictQueue {
  readonly requests: BatchRequest[] = [];
  /** By default each input's class is its index, at the pinned rate or 0.75. */
  reply: (r: BatchRequest) => Promise<BatchAnswer> = (r) => Promise.resolve({ classes: Array.from({ length: r.count }, (_, i) => i), rate: r.pinned ?? 0.75 });
  submit(r: BatchRequest): Promise<BatchAnswer> {
    this.requests.push(r);
    return this.reply(r);
  }
}

async function start(t: Test, overrides: Partial<HttpFrontOptions> = {}) {
  const registry = new Registry();
  const metrics = createHttpMetrics(registry, 1000);
  const batcher = new FakeBatcher();
  const clock = { now: 0, calls: 0 };
  const front = new HttpFront({
    batcher,
    inputSize: 4,
    maxInputs: 3,
    maxBodyBytes: 256,
    trainedRates: [1, 0.5, 0.25],
    metrics,
    metricsText: () => registry.render(),
    health: () => ({ rate: 0.5, queue: 2 }),
    clock: () => (clock.calls++, clock.now),
    ...overrides,
  });
  const { url, port } = await front.listen(0, '127.0.0.1');
  t.teardown(() => front.close(() => Promise.resolve(true)));
  return { front, batcher, metrics, registry, clock, url, port };
}

const ROWS = [
  [1, 2, 3, 4],
  [5, 6, 7, 8],
];

t.test("a prediction is parsed, handed to the batcher and answered with the batcher's result", async (t) => {
  const { batcher, metrics, clock, url } = await start(t);
  const reply = batcher.reply;
  batcher.reply = (r) => ((clock.now += 250), reply(r)); // each prediction takes 250 ms of the injected clock
  const json = await postJson(`${url}/predict`, { inputs: ROWS });
  t.equal(json.status, 200, json.text);
  t.same(json.json(), { classes: [0, 1], rate: 0.75 });
  t.equal(json.headers['content-type'], 'application/json; charset=utf-8');
  const [first] = batcher.requests;
  t.same([Array.from(first.data), first.count, first.pinned], [ROWS.flat(), 2, undefined], 'the inputs, unpinned');
  t.ok(first.signal instanceof AbortSignal && !first.signal.aborted, 'with a signal for the client going away');

  const raw = await call(`${url}/predict`, { method: 'POST', body: Buffer.from(Float32Array.from(ROWS[1]).buffer), headers: { 'Content-Type': 'application/octet-stream', 'X-Slice-Rate': '0.3' } });
  t.same(raw.json(), { classes: [0], rate: 0.5 }, 'X-Slice-Rate 0.3 runs at 0.5, the nearest trained rate at or above it');
  t.same([Array.from(batcher.requests[1].data), batcher.requests[1].pinned], [ROWS[1], 0.5]);
  const pinned = await call(`${url}/predict`, { method: 'POST', body: JSON.stringify({ inputs: ROWS, rate: 0.25 }), headers: { 'Content-Type': 'Application/JSON; charset=utf-8' } });
  t.same(pinned.json(), { classes: [0, 1], rate: 0.25 }, 'a "rate" field; the media type with parameters and any case');

  t.equal(metrics.requests.get({ route: 'predict', code: '200' }), 3);
  t.same(metrics.pinnedRequests.snapshot(), { '{rate="0.5",code="200"}': 1, '{rate="0.25",code="200"}': 1 });
  t.same([metrics.latency.count, metrics.latency.sum], [3, 0.75], 'arrival to answer on the injected clock, in seconds');
});

t.test('routes, methods, media types and body limits', async (t) => {
  const { batcher, metrics, url, port } = await start(t);
  const refused = async (status: number, reply: Promise<{ status: number; headers: Record<string, unknown>; json: () => unknown }>, pattern: RegExp, what: string) => {
    const r = await reply;
    t.equal(r.status, status, what);
    t.match((r.json() as { error: string }).error, pattern, what);
    return r;
  };
  // The client asks to keep its connection: only the server's own reasons close it.
  const keepAlive = { Connection: 'keep-alive' };
  const notFound = await refused(404, call(`${url}/nope?x=1`, { headers: keepAlive }), /no route \/nope; try POST \/predict/, 'an unknown path');
  t.equal(notFound.headers.connection, 'keep-alive', 'a 404 keeps the connection');
  const getPredict = await refused(405, call(`${url}/predict`), /GET is not allowed on \/predict; use POST/, 'GET /predict');
  t.equal(getPredict.headers.allow, 'POST');
  const putHealth = await refused(405, call(`${url}/healthz`, { method: 'PUT', body: '' }), /PUT is not allowed on \/healthz; use GET/, 'PUT /healthz');
  t.equal(putHealth.headers.allow, 'GET, HEAD');
  t.equal((await call(`${url}/metrics`, { method: 'DELETE' })).status, 405, 'DELETE /metrics');
  await refused(415, call(`${url}/predict`, { method: 'POST', body: 'x=1', headers: { 'Content-Type': 'text/plain' } }), /unsupported Content-Type "text\/plain"/, 'another media type');

  const big = await refused(
    413,
    call(`${url}/predict`, { method: 'POST', body: Buffer.alloc(300), headers: { 'Content-Type': 'application/octet-stream', ...keepAlive } }),
    /body of 300 bytes exceeds the limit of 256 bytes/,
    'a declared body over the limit',
  );
  t.equal(big.headers.connection, 'close', '413 closes the connection');
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/predict', method: 'POST', agent: false, headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } });
    req.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.write(Buffer.alloc(200));
    req.end(Buffer.alloc(200));
  });
  t.equal(chunked, 413, 'a chunked body that outgrows the limit');
  await refused(413, postJson(`${url}/predict`, { inputs: [...ROWS, ...ROWS] }), /4 inputs; at most 3/, 'more inputs than a request may hold');
  await refused(400, postJson(`${url}/predict`, { inputs: [[1, 2, 3]] }), /inputs\[0\] has 3 values; the model takes 4/, 'a bad body');
  await refused(400, call(`${url}/predict`, { method: 'POST', body: JSON.stringify({ inputs: ROWS }), headers: { 'X-Slice-Rate': '2' } }), /X-Slice-Rate must be a slice rate in \(0, 1\]/, 'a bad header');
  t.equal(batcher.requests.length, 0, 'nothing refused reached the batcher');

  const health = await call(`${url}/healthz`);
  t.same([health.status, health.json()], [200, { status: 'ok', rate: 0.5, queue: 2 }], "/healthz: the status, then the wiring's fields");
  const head = await call(`${url}/healthz`, { method: 'HEAD' });
  t.same([head.status, head.text], [200, ''], 'HEAD: headers only');
  const m = await call(`${url}/metrics`);
  t.same([m.status, m.headers['content-type']], [200, 'text/plain; version=0.0.4; charset=utf-8']);
  t.match(m.text, /modelslice_requests_total\{route="predict",code="413"\} 3\n/, 'the text of metricsText(), with the counts so far');
  t.same(
    [404, 405, 415, 413, 400].map((code) => metrics.requests.get({ route: code === 404 ? 'other' : 'predict', code: String(code) })),
    [1, 1, 1, 3, 2],
  );
  t.same([metrics.requests.get({ route: 'healthz', code: '405' }), metrics.requests.get({ route: 'healthz', code: '200' })], [1, 2]);
});

t.test("the batcher's refusals keep their status and headers; other errors answer 500", async (t) => {
  const { batcher, metrics, url } = await start(t);
  batcher.reply = () => Promise.reject(new HttpError(503, 'the queue is full (9 inputs waiting, at most 9)', { 'Retry-After': '4' }));
  const full = await postJson(`${url}/predict`, { inputs: ROWS, rate: 0.5 });
  t.same([full.status, full.headers['retry-after'], full.json()], [503, '4', { error: 'the queue is full (9 inputs waiting, at most 9)' }]);
  t.same(metrics.pinnedRequests.snapshot(), { '{rate="0.5",code="503"}': 1 }, 'a refused pinned request is counted with its code');
  batcher.reply = () => Promise.reject(new Error('the worker crashed'));
  const crashed = await postJson(`${url}/predict`, { inputs: ROWS });
  t.same([crashed.status, crashed.json()], [500, { error: 'internal error: the worker crashed' }]);
});

t.test('a client that goes away aborts its signal and is counted 499, with no answer sent', async (t) => {
  const { batcher, metrics, port } = await start(t);
  let fail = (_: Error) => {};
  batcher.reply = () => new Promise<BatchAnswer>((_, reject) => (fail = reject));
  const req = request({ host: '127.0.0.1', port, path: '/predict', method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } });
  const gone = new Promise<void>((resolve) => req.on('error', () => resolve()));
  req.end(JSON.stringify({ inputs: ROWS }));
  t.ok(await until(() => batcher.requests.length === 1), 'submitted');
  req.destroy();
  await gone;
  t.ok(await until(() => batcher.requests[0].signal!.aborted), 'the signal is aborted');
  fail(new Error('the client closed the connection')); // as the batcher drops it
  t.ok(await until(() => metrics.requests.get({ route: 'predict', code: '499' }) === 1), 'counted 499');
  t.equal(metrics.latency.count, 1, 'and its duration observed');
});

t.test('close: in-flight answers say Connection: close, a body finished after it is refused, and close waits for the drain', async (t) => {
  const { front, batcher, clock, url, port } = await start(t);
  let answerHeld = (_: BatchAnswer) => {};
  const reply = batcher.reply;
  batcher.reply = (r) => (batcher.requests.length === 1 ? new Promise<BatchAnswer>((resolve) => (answerHeld = resolve)) : reply(r));
  const held = postJson(`${url}/predict`, { inputs: ROWS });
  t.ok(await until(() => batcher.requests.length === 1), 'one prediction waits in the batcher');

  let drainCalls = 0;
  let finishDrain = (_: boolean) => {};
  const drain = () => new Promise<boolean>((resolve) => (finishDrain = resolve));
  let closing: Promise<void> | undefined;
  // A second request whose body is still arriving when close begins (its handler has read the clock).
  const body = JSON.stringify({ inputs: ROWS });
  const late = new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/predict', method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) } });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.write(body.slice(0, 10));
    void until(() => clock.calls === 2).then(() => {
      drainCalls++;
      closing = front.close(drain);
      req.end(body.slice(10));
    });
  });
  const refused = await late;
  t.ok(front.isClosing);
  t.equal(front.close(() => Promise.resolve(true)), closing, 'close is idempotent');
  t.same([refused.status, refused.headers['retry-after'], refused.headers.connection], [503, '1', 'close']);
  t.match(refused.text, /the server is shutting down/);
  t.equal(batcher.requests.length, 1, 'the late request did not reach the batcher');
  await t.rejects(call(`${url}/healthz`), { code: 'ECONNREFUSED' }, 'no new connections');

  answerHeld({ classes: [2, 1], rate: 1 });
  const answered = await held;
  t.same([answered.status, answered.json(), answered.headers.connection], [200, { classes: [2, 1], rate: 1 }, 'close'], 'the waiting prediction is answered');
  let closed = false;
  void closing!.then(() => (closed = true));
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.notOk(closed, 'close waits for the drain');
  finishDrain(true);
  await closing;
  t.equal(drainCalls, 1);
});

t.test('draining: /readyz answers 503 while predictions and /healthz still answer 200', async (t) => {
  const { front, batcher, metrics, url } = await start(t);
  const ready = await call(`${url}/readyz`);
  t.same([ready.status, ready.json()], [200, { status: 'ready', rate: 0.5, queue: 2 }], '/readyz while serving');
  t.ok(front.isReady);
  const post = await call(`${url}/readyz`, { method: 'POST', body: '' });
  t.same([post.status, post.headers.allow], [405, 'GET, HEAD']);

  front.startDraining();
  t.notOk(front.isReady, 'not ready once draining');
  t.notOk(front.isClosing, 'but not closing');
  const notReady = await call(`${url}/readyz`);
  t.same([notReady.status, notReady.json()], [503, { status: 'draining', rate: 0.5, queue: 2 }], '/readyz says draining');
  const alive = await call(`${url}/healthz`);
  t.same([alive.status, (alive.json() as { status: string }).status], [200, 'draining'], '/healthz: alive, draining');
  const served = await postJson(`${url}/predict`, { inputs: ROWS });
  t.same([served.status, served.json()], [200, { classes: [0, 1], rate: 0.75 }], 'a prediction while draining is served');
  t.equal(batcher.requests.length, 1);
  t.same([metrics.requests.get({ route: 'readyz', code: '200' }), metrics.requests.get({ route: 'readyz', code: '503' })], [1, 1], 'readiness answers are counted by route');

  const closing = front.close(() => Promise.resolve(true));
  t.ok(front.isClosing && !front.isReady, 'closing: neither live for new work nor ready');
  await closing;
});
