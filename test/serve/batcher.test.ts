// The batcher alone: fake predictors whose passes finish when the test says
// so, and a fake controller that records what it was asked. No HTTP, no
// worker threads, no clock but a number the tests set.
import t from 'tap';
import { Batcher, createBatchMetrics, type BatchAnswer, type BatchController, type BatcherOptions, type ServedBatch } from '../../src/serve/batcher.js';
import { HttpError } from '../../src/serve/body.js';
import type { Decision, QueueState } from '../../src/serve/controller.js';
import { Registry } from '../../src/serve/metrics.js';

const INPUT_SIZE = 2;
const CLASSES = 3;

interface Call {
  data: Float32Array;
  shape: number[];
  rate: number;
  resolve: (p: { classes: Int32Array; logits: Float32Array; rate: number; ms: number }) => void;
  reject: (e: Error) => void;
}

/** A predictor whose passes wait until the test answers them. */
class FakePredictor {
  readonly calls: Call[] = [];
  predict(data: Float32Array, options: { shape: number[]; rate: number }) {
    return new Promise<{ classes: Int32Array; logits: Float32Array; rate: number; ms: number }>((resolve, reject) => {
      this.calls.push({ data, shape: options.shape, rate: options.rate, resolve, reject });
    });
  }

  /** Answers pass `i`: each input's class is its first value; `poison` rows get NaN logits. */
  answer(i: number, poison: number[] = []): void {
    const call = this.calls[i];
    const n = call.shape[0];
    const classes = new Int32Array(n);
    const logits = new Float32Array(n * CLASSES);
    for (let r = 0; r < n; r++) {
      classes[r] = call.data[r * INPUT_SIZE];
      logits[r * CLASSES + classes[r]] = 1;
      if (poison.includes(r)) logits[r * CLASSES + 1] = NaN;
    }
    call.resolve({ classes, logits, rate: call.rate, ms: 1 });
  }
}

/** A controller that answers a fixed rate and records every question. */
class FakeController implements BatchController {
  rate = 1;
  readonly decisions: QueueState[] = [];
  readonly arrivals: { inputs: number; outstanding: number | undefined }[] = [];
  readonly observed: { rate: number; size: number }[] = [];
  decide(q: QueueState): Decision {
    this.decisions.push(q);
    return { rate: this.rate, reason: 'fits', estimates: [] };
  }
  observeArrival(inputs: number, _now: number, outstanding?: number): void {
    this.arrivals.push({ inputs, outstanding });
  }
  observeBatch(rate: number, size: number): void {
    this.observed.push({ rate, size });
  }
}

/** `count` inputs of INPUT_SIZE values, each starting with its class (0, 1 or 2). */
function request(classes: number[], pinned?: number, signal?: AbortSignal) {
  const data = new Float32Array(classes.length * INPUT_SIZE);
  classes.forEach((c, i) => (data[i * INPUT_SIZE] = c));
  return { data, count: classes.length, pinned, signal };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(options: Partial<BatcherOptions> & { workers?: number } = {}) {
  const predictors = Array.from({ length: options.workers ?? 1 }, () => new FakePredictor());
  const controller = new FakeController();
  const batches: (ServedBatch & { ms: number })[] = [];
  const batcher = new Batcher({ predictors, inputShape: [INPUT_SIZE], maxBatch: 4, maxQueue: 64, controller, clock: () => 0, onBatch: (b) => void batches.push(b), ...options });
  return { batcher, predictors, controller, batches };
}

/** The answer or the error; taken at once, so that a rejection is never left unhandled. */
function outcome(p: Promise<BatchAnswer>): Promise<BatchAnswer | Error> {
  return p.then(
    (a) => a,
    (e: Error) => e,
  );
}

t.test('batches never exceed maxBatch; a large request is not passed over; each request gets its own rows', async (t) => {
  const { batcher, predictors } = setup({ maxBatch: 4 });
  const [p] = predictors;
  const held = batcher.submit(request([1]));
  t.equal(p.calls.length, 1, 'the first request goes out at once');
  const sizes = [[2, 2, 2], [0, 1], [2], [1, 1, 1], [0, 0, 0, 0], [1], [2]];
  const queued = sizes.map((c) => batcher.submit(request(c)));
  t.equal(batcher.queuedInputs, 15);
  for (let i = 0; p.calls.length > i; i++) {
    p.answer(i);
    await settle();
  }
  t.ok(
    p.calls.every((c) => c.shape[0] <= 4 && c.shape[1] === INPUT_SIZE && c.data.length === c.shape[0] * INPUT_SIZE),
    'no pass over maxBatch',
  );
  // [2,2,2] alone (the next, [0,1], does not fit); then [0,1] + [2]; then the three ones
  // ([0,0,0,0] does not fit behind them); then [0,0,0,0]; then [1] + [2].
  t.same(
    p.calls.map((c) => c.shape[0]),
    [1, 3, 3, 3, 4, 2],
    'arrival order, stopping at the first request that does not fit',
  );
  t.same(await held, { classes: [1], rate: 1 });
  t.same(
    (await Promise.all(queued)).map((a) => a.classes),
    sizes,
    'each request answered with its own rows',
  );
  t.same([batcher.queuedInputs, batcher.inFlightInputs, batcher.inFlightBatches, batcher.queueLength], [0, 0, 0, 0]);
});

t.test("a pinned rate's requests run in passes of that rate only; unpinned ones ask the controller", async (t) => {
  const { batcher, predictors, controller, batches } = setup({ maxBatch: 8 });
  const [p] = predictors;
  controller.rate = 1;
  const held = batcher.submit(request([0]));
  t.equal(controller.decisions.length, 1, 'the controller chose the first pass');
  const queued = [
    batcher.submit(request([1])),
    batcher.submit(request([2], 0.5)),
    batcher.submit(request([0], 0.25)),
    batcher.submit(request([1])),
    batcher.submit(request([2], 0.5)),
    batcher.submit(request([0], 1)),
  ];
  p.answer(0);
  await settle();
  t.equal(controller.decisions.length, 2, 'asked again before the next unpinned pass');
  t.same(controller.decisions[1], { queuedInputs: 6, batchInputs: 2, oldestWaitMs: 0, newestWaitMs: 0, inFlightInputs: 0 }, 'pinned requests waiting count as load');
  for (let i = 1; i < 4; i++) {
    p.answer(i);
    await settle();
  }
  t.same(
    batches.map((b) => [b.rate, b.requests, b.size]),
    [
      [1, 1, 1],
      [1, 3, 3],
      [0.5, 2, 2],
      [0.25, 1, 1],
    ],
    'the unpinned with the one pinned at the chosen rate, then 0.5, then 0.25',
  );
  t.same(
    p.calls.map((c) => c.rate),
    [1, 1, 0.5, 0.25],
    'each pass ran at its batch rate',
  );
  t.equal(controller.decisions.length, 2, 'pinned passes do not ask the controller');
  t.same(
    (await Promise.all([held, ...queued])).map((a) => a.rate),
    [1, 1, 0.5, 0.25, 1, 0.5, 1],
  );
  t.equal(batcher.rate, 1, 'the rate reported is the last one chosen, pinned passes aside');
});

t.test('a fixed rate is used without asking the controller; pinned passes keep their own', async (t) => {
  const { batcher, predictors, controller } = setup({ fixedRate: 0.5 });
  const [p] = predictors;
  t.equal(batcher.rate, 0.5);
  const a = batcher.submit(request([1]));
  const b = batcher.submit(request([2], 0.25));
  p.answer(0);
  await settle();
  p.answer(1);
  t.same(
    (await Promise.all([a, b])).map((x) => x.rate),
    [0.5, 0.25],
  );
  t.equal(controller.decisions.length, 0);
  t.same(controller.observed, [
    { rate: 0.5, size: 1 },
    { rate: 0.25, size: 1 },
  ]);
});

t.test('a full queue sheds with 503 and Retry-After; the refused request still counts as offered load', async (t) => {
  const seen: number[] = [];
  const { batcher, predictors, controller } = setup({ maxQueue: 3, retryAfterSeconds: (q) => (seen.push(q), 7) });
  const held = batcher.submit(request([0, 0]));
  const queued = [batcher.submit(request([1, 1])), batcher.submit(request([2]))];
  t.equal(batcher.queuedInputs, 3, 'running inputs do not count against the queue');
  const refused = batcher.submit(request([1]));
  await t.rejects(refused, { name: 'HttpError', status: 503, message: 'the queue is full (3 inputs waiting, at most 3)', headers: { 'Retry-After': '7' } });
  t.same(seen, [3], 'Retry-After is asked with the inputs waiting');
  t.same(
    controller.arrivals.map((x) => [x.inputs, x.outstanding]),
    [
      [2, 2],
      [2, 4],
      [1, 5],
      [1, 6],
    ],
    'every arrival observed with the inputs outstanding, the refused one too',
  );
  t.equal(batcher.queueLength, 2, 'the refused request was not queued');
  predictors[0].answer(0);
  await settle();
  predictors[0].answer(1);
  t.same(
    (await Promise.all([held, ...queued])).map((a) => a.classes),
    [[0, 0], [1, 1], [2]],
  );
  const again = batcher.submit(request([1]));
  t.equal(predictors[0].calls.length, 3, 'room again: accepted, and sent out at once');
  predictors[0].answer(2);
  t.same(await again, { classes: [1], rate: 1 });
});

t.test('in-flight counts follow the passes on several workers', async (t) => {
  const { batcher, predictors, controller } = setup({ workers: 2, maxBatch: 2 });
  const replies = [batcher.submit(request([0, 1])), batcher.submit(request([2])), batcher.submit(request([1]))];
  t.same(
    predictors.map((p) => p.calls.length),
    [1, 1],
    'one pass per worker',
  );
  t.same([batcher.inFlightBatches, batcher.inFlightInputs, batcher.queuedInputs, batcher.queueLength], [2, 3, 1, 1]);
  t.same(
    controller.decisions.map((d) => d.inFlightInputs),
    [0, 2],
    "the second pass's decision saw the first in flight",
  );
  predictors[1].answer(0);
  await settle();
  t.same([batcher.inFlightBatches, batcher.inFlightInputs, batcher.queuedInputs], [2, 3, 0], 'the freed worker took the waiting request');
  t.equal(predictors[1].calls.length, 2);
  t.equal(controller.decisions[2].inFlightInputs, 2);
  predictors[0].answer(0);
  predictors[1].answer(1);
  t.same(
    (await Promise.all(replies)).map((a) => a.classes),
    [[0, 1], [2], [1]],
  );
  t.same([batcher.inFlightBatches, batcher.inFlightInputs], [0, 0]);
});

t.test('a failed pass rejects exactly its own requests, and the worker goes on', async (t) => {
  const { batcher, predictors, controller } = setup({ maxBatch: 2 });
  const [p] = predictors;
  const before = outcome(batcher.submit(request([0])));
  const failing = [outcome(batcher.submit(request([1]))), outcome(batcher.submit(request([2])))];
  const after = outcome(batcher.submit(request([1])));
  p.answer(0);
  await settle();
  t.equal(p.calls[1].shape[0], 2, 'the second pass holds two requests');
  const failure = new Error('the worker crashed');
  p.calls[1].reject(failure);
  await settle();
  t.equal(p.calls.length, 3, 'the worker of the failed pass took the next one');
  p.answer(2);
  const results = await Promise.all([before, ...failing, after]);
  t.same(results[0], { classes: [0], rate: 1 }, 'the pass before is answered');
  t.equal(results[1], failure, 'the first request of the failed pass has its error');
  t.equal(results[2], failure, 'the second too');
  t.same(results[3], { classes: [1], rate: 1 }, 'the pass after is answered');
  t.same(
    controller.observed.map((o) => o.size),
    [1, 1],
    'only the passes that ran are observed',
  );
  t.same([batcher.inFlightBatches, batcher.inFlightInputs, batcher.queuedInputs], [0, 0, 0]);
});

t.test('non-finite logits answer 500 for their request only, and are counted', async (t) => {
  const registry = new Registry();
  const metrics = createBatchMetrics(registry, 4);
  const { batcher, predictors } = setup({ metrics });
  const held = batcher.submit(request([0]));
  const queued = [outcome(batcher.submit(request([1, 2]))), outcome(batcher.submit(request([0])))];
  predictors[0].answer(0);
  await settle();
  predictors[0].answer(1, [1]); // the second input of the first queued request
  const results = await Promise.all([held, ...queued]);
  t.same(results[0], { classes: [0], rate: 1 });
  t.type(results[1], HttpError);
  t.match(results[1], { status: 500, message: /non-finite logits \(NaN or Infinity\) for input 1 of this request at rate 1; no class is given/ });
  t.same(results[2], { classes: [0], rate: 1 }, 'the other request of the same pass is answered');
  t.same(metrics.nonFinite.snapshot(), { '{rate="1"}': 1 });
  t.same([metrics.batchSizes.count, metrics.batchSizes.sum], [2, 4]);
  t.same(metrics.inputsByRate.snapshot(), { '{rate="1"}': 4 });
  t.match(await registry.render(), /modelslice_batches_total\{rate="1"\} 2\n/);
});

t.test('a request whose client went away is dropped before its pass, not computed', async (t) => {
  const { batcher, predictors } = setup();
  const held = batcher.submit(request([0]));
  const first = new AbortController();
  const middle = new AbortController();
  const droppedFirst = outcome(batcher.submit(request([1], undefined, first.signal)));
  const kept = batcher.submit(request([2]));
  const droppedMiddle = outcome(batcher.submit(request([1, 1], undefined, middle.signal)));
  const keptToo = batcher.submit(request([0]));
  first.abort();
  middle.abort();
  t.equal(batcher.queuedInputs, 5, 'counted until a pass forms past them');
  predictors[0].answer(0);
  await settle();
  t.same(predictors[0].calls[1].shape, [2, INPUT_SIZE], 'the next pass holds only the requests still wanted');
  t.same(Array.from(predictors[0].calls[1].data), [2, 0, 0, 0]);
  t.equal(batcher.queuedInputs, 0);
  predictors[0].answer(1);
  const results = await Promise.all([held, droppedFirst, kept, droppedMiddle, keptToo]);
  t.match(results[1], { message: 'the client closed the connection' }, 'the first in the queue');
  t.match(results[3], { message: 'the client closed the connection' }, 'one further back');
  t.same([results[2], results[4]], [
    { classes: [2], rate: 1 },
    { classes: [0], rate: 1 },
  ]);
});

t.test('beforeBatch is awaited before the pass is handed to a worker', async (t) => {
  let release = () => {};
  const seen: ServedBatch[] = [];
  const { batcher, predictors } = setup({
    beforeBatch: (b) => {
      seen.push(b);
      return new Promise<void>((r) => (release = r));
    },
  });
  const reply = batcher.submit(request([2]));
  await settle();
  t.same(seen, [{ size: 1, requests: 1, rate: 1, worker: 0, decision: { rate: 1, reason: 'fits', estimates: [] } }]);
  t.equal(predictors[0].calls.length, 0, 'held');
  t.equal(batcher.inFlightBatches, 1, 'a held pass occupies its worker');
  release();
  await settle();
  predictors[0].answer(0);
  t.same(await reply, { classes: [2], rate: 1 });
});

t.test('drain refuses new requests and finishes what is queued', async (t) => {
  const { batcher, predictors } = setup({ maxBatch: 1 });
  const replies = [batcher.submit(request([0])), batcher.submit(request([1])), batcher.submit(request([2]))];
  let drained: boolean | undefined;
  const draining = batcher.drain(60000).then((d) => (drained = d));
  await t.rejects(batcher.submit(request([1])), { name: 'HttpError', status: 503, message: 'the server is shutting down', headers: { 'Retry-After': '1' } });
  for (let i = 0; i < 3; i++) {
    await settle();
    t.equal(drained, undefined, `still draining with ${3 - i} passes to go`);
    predictors[0].answer(i);
  }
  await draining;
  t.equal(drained, true);
  t.same(
    (await Promise.all(replies)).map((a) => a.classes),
    [[0], [1], [2]],
    'every queued request answered',
  );
});

t.test('drain of an idle batcher is immediate; one that gives up answers what waits 503', async (t) => {
  t.equal(await setup().batcher.drain(60000), true, 'nothing queued');
  const { batcher, predictors } = setup({ maxBatch: 1 });
  const running = batcher.submit(request([0]));
  const waiting = [outcome(batcher.submit(request([1]))), outcome(batcher.submit(request([2])))];
  t.equal(await batcher.drain(0), false, 'the running pass did not finish in time');
  const refused = await Promise.all(waiting);
  for (const r of refused) t.match(r, { name: 'HttpError', status: 503, message: 'the server shut down before this request ran', headers: { 'Retry-After': '1' } });
  t.same([batcher.queueLength, batcher.queuedInputs], [0, 0]);
  predictors[0].answer(0);
  t.same(await running, { classes: [0], rate: 1 }, 'the running pass still answers');
});

t.test('bad batcher options', (t) => {
  const controller = new FakeController();
  const ok = { predictors: [new FakePredictor()], inputShape: [INPUT_SIZE], maxBatch: 4, maxQueue: 8, controller };
  t.throws(() => new Batcher(null as never), { name: 'TypeError', message: /^Batcher: options must be an object/ });
  t.throws(() => new Batcher({ ...ok, predictors: [] }), { name: 'RangeError', message: /^Batcher: predictors must be a non-empty array/ });
  t.throws(() => new Batcher({ ...ok, maxBatch: 0 }), { name: 'RangeError', message: /^Batcher: maxBatch must be an integer >= 1, got 0/ });
  t.throws(() => new Batcher({ ...ok, maxQueue: 1.5 }), { name: 'RangeError', message: /^Batcher: maxQueue must be an integer >= 1, got 1\.5/ });
  t.throws(() => new Batcher({ ...ok, inputShape: [2, 0] }), { name: 'RangeError', message: /^Batcher: inputShape must be the shape of one input without the batch, e\.g\. \[3, 32, 32\], got \[2,0\]/ });
  t.end();
});
