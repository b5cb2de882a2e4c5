import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { Predictor } from '../../src/serve/predictor.js';
import { defaultMaxQueue, serve, type ServedBatch } from '../../src/serve/server.js';
import { checkExposition } from './exposition.js';
import { call, postJson, until } from './http.js';

const PRE = { mean: 0.25, std: 1.5 };

function tinyModel(): ms.nn.Module {
  ms.manualSeed(11);
  const model = ms.models.mlp({ inputs: 16, hidden: [32], classes: 4 });
  ms.setTrainedRates(model, [1, 0.5, 0.25]);
  return model;
}

function directClasses(model: ms.nn.Module, rows: number[][], rate: number): number[] {
  const x = ms.tensor(rows.flat().map((v) => (v - PRE.mean) / PRE.std), [rows.length, 16]);
  model.eval();
  model.setSliceRate(rate);
  const out = ms.noGrad(() => model.forward(x));
  model.setSliceRate(1);
  return Array.from({ length: rows.length }, (_, i) => {
    const row = [...out.data.subarray(i * 4, i * 4 + 4)];
    return row.indexOf(Math.max(...row));
  });
}

function inputs(n: number, seed: number): number[][] {
  const x = ms.randn([n, 16], { seed });
  return Array.from({ length: n }, (_, i) => [...x.data.subarray(i * 16, (i + 1) * 16)].map((v) => 4 * v));
}

/** A gate the tests close to hold batches in beforeBatch, and open to let them run. */
function gate() {
  let open = true;
  let waiters: (() => void)[] = [];
  return {
    close: () => void (open = false),
    open: () => {
      open = true;
      for (const w of waiters.splice(0)) w();
    },
    wait: () => (open ? undefined : new Promise<void>((r) => (waiters = [...waiters, r]))),
  };
}

t.test('server end to end: predictions, validation, routes, health and metrics', async (t) => {
  const model = tinyModel();
  const path = join(t.testdir(), 'tiny.safetensors');
  await ms.save(model, path, { preprocess: PRE });
  const g = gate();
  const batches: ServedBatch[] = [];
  // A generous SLO: the batches held below must not move the rate in this test.
  const server = await ms.serve(path, { workers: 1, port: 0, sloMs: 60000, maxBatch: 8, maxQueue: 64, maxBodyBytes: 4096, beforeBatch: () => g.wait(), onBatch: (b) => void batches.push(b) });
  t.teardown(() => server.close());
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default, a free port');
  t.same(Object.keys(server.latencyProfile.byBatch).map(Number), [1, 2, 4, 8], 'profiled at powers of two up to max-batch');

  // JSON and raw bodies give the model's own classes (calm: rate 1).
  const rows = inputs(6, 5);
  const want = directClasses(model, rows, 1);
  t.ok(new Set(want).size > 1, `the inputs fall in different classes (${want.join(', ')})`);
  const j = await postJson(`${server.url}/predict`, { inputs: rows });
  t.equal(j.status, 200, j.text);
  t.same(j.json(), { classes: want, rate: 1 });
  const raw = await call(`${server.url}/predict`, { method: 'POST', body: Buffer.from(Float32Array.from(rows.flat()).buffer), headers: { 'Content-Type': 'application/octet-stream' } });
  t.equal(raw.status, 200, raw.text);
  t.same(raw.json(), { classes: want, rate: 1 });
  const noType = await call(`${server.url}/predict`, { method: 'POST', body: JSON.stringify({ inputs: rows.slice(0, 1) }) });
  t.same(noType.json(), { classes: want.slice(0, 1), rate: 1 }, 'JSON when no Content-Type is given');

  // Dynamic batching: while one batch is held, later requests queue and go out together.
  g.close();
  const held = postJson(`${server.url}/predict`, { inputs: inputs(1, 1) });
  t.ok(await until(() => server.metrics().inFlightBatches === 1), 'the first request is in flight');
  const queued = [2, 3, 4].map((s) => postJson(`${server.url}/predict`, { inputs: inputs(2, s) }));
  t.ok(await until(() => server.metrics().queueLength === 3), 'three requests queued behind it');
  t.equal(server.metrics().queuedInputs, 6);
  g.open();
  const answers = await Promise.all([held, ...queued]);
  t.same(answers.map((a) => a.status), [200, 200, 200, 200]);
  t.same(answers.slice(1).map((a) => (a.json() as { classes: number[] }).classes), [2, 3, 4].map((s) => directClasses(model, inputs(2, s), 1)), 'each request gets its own rows back');
  t.same(batches.slice(-2).map((b) => [b.size, b.requests]), [[1, 1], [6, 3]], 'the three queued requests ran as one batch of 6');

  // A client that goes away while queued is dropped, not computed.
  g.close();
  const held2 = postJson(`${server.url}/predict`, { inputs: inputs(1, 1) });
  t.ok(await until(() => server.metrics().inFlightBatches === 1));
  const gone = new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port: new URL(server.url).port, path: '/predict', method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } });
    req.on('error', () => resolve());
    req.end(JSON.stringify({ inputs: inputs(2, 9) }));
    void until(() => server.metrics().queueLength === 1).then(() => req.destroy());
  });
  await gone;
  const after = postJson(`${server.url}/predict`, { inputs: inputs(1, 2) });
  t.ok(await until(() => server.metrics().queuedInputs === 1), 'the new request queued; the abandoned one was dropped on the way');
  g.open();
  t.same((await Promise.all([held2, after])).map((a) => a.status), [200, 200]);
  t.same(batches.slice(-2).map((b) => b.size), [1, 1], 'the abandoned request was left out of the batch');
  t.equal(server.metrics().queuedInputs, 0);

  // Validation: 400 with a reason.
  const bad = async (body: string | Buffer, type: string, status: number, pattern: RegExp, what: string) => {
    const r = await call(`${server.url}/predict`, { method: 'POST', body, headers: { 'Content-Type': type } });
    t.equal(r.status, status, `${what}: ${r.status}`);
    t.match((r.json() as { error: string }).error, pattern, what);
  };
  await bad('{"inputs": [', 'application/json', 400, /not valid JSON/, 'malformed JSON');
  await bad('[1, 2]', 'application/json', 400, /must be a JSON object/, 'not an object');
  await bad('{"x": 1}', 'application/json', 400, /"inputs" must be an array/, 'no inputs');
  await bad('{"inputs": []}', 'application/json', 400, /empty/, 'no inputs at all');
  await bad('{"inputs": [1, 2]}', 'application/json', 400, /inputs\[0\] must be an array of 16 numbers/, 'a flat array');
  await bad(JSON.stringify({ inputs: [new Array(15).fill(0)] }), 'application/json', 400, /inputs\[0\] has 15 values; the model takes 16/, 'wrong length');
  await bad(JSON.stringify({ inputs: [[...new Array(15).fill(0), 'x']] }), 'application/json', 400, /inputs\[0\]\[15\] must be a finite number/, 'a string value');
  // Finite as a double, Infinity as the float32 the model takes.
  await bad(`{"inputs": [[0, 1e39${', 0'.repeat(14)}]]}`, 'application/json', 400, /inputs\[0\]\[1\] = 1e\+39 is beyond the float32 range/, 'a number beyond float32');
  await bad(`{"inputs": [[-3.5e38${', 0'.repeat(15)}]]}`, 'application/json', 400, /inputs\[0\]\[0\] = -3\.5e\+38 is beyond the float32 range/, 'a negative one');
  await bad(Buffer.alloc(20), 'application/octet-stream', 400, /not a whole number of inputs of 16 float32 values/, 'raw size');
  await bad(Buffer.alloc(0), 'application/octet-stream', 400, /empty/, 'empty raw body');
  await bad(Buffer.from(Float32Array.from([NaN, ...new Array(15).fill(0)]).buffer), 'application/octet-stream', 400, /value 0 .* not finite/, 'NaN in a raw body');
  await bad('x=1', 'text/plain', 415, /unsupported Content-Type/, 'another media type');
  // 413: too large, or more inputs than a batch.
  await bad(Buffer.alloc(8192), 'application/octet-stream', 413, /exceeds the limit of 4096 bytes/, 'a body over --max-body-bytes');
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: new URL(server.url).port, path: '/predict', method: 'POST', agent: false, headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } });
    req.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.write(Buffer.alloc(3000));
    req.end(Buffer.alloc(3000));
  });
  t.equal(chunked, 413, 'a chunked body that outgrows the limit');
  await bad(JSON.stringify({ inputs: inputs(9, 1) }), 'application/json', 413, /9 inputs; at most 8/, 'more inputs than max-batch');
  // Routes and methods.
  const notFound = await call(`${server.url}/nope`);
  t.equal(notFound.status, 404);
  const getPredict = await call(`${server.url}/predict`);
  t.equal(getPredict.status, 405);
  t.equal(getPredict.headers.allow, 'POST');
  const postHealth = await call(`${server.url}/healthz`, { method: 'POST', body: '' });
  t.equal(postHealth.status, 405);
  t.equal(postHealth.headers.allow, 'GET, HEAD');
  const health = await call(`${server.url}/healthz?verbose=1`);
  t.equal(health.status, 200);
  t.match(health.json(), { status: 'ok', rate: 1, queue: 0, workers: 1, sloMs: 60000 });
  const head = await call(`${server.url}/healthz`, { method: 'HEAD' });
  t.same([head.status, head.text], [200, ''], 'HEAD: headers only');

  // Prometheus text.
  const m = await call(`${server.url}/metrics`);
  t.equal(m.status, 200);
  t.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const lines = m.text.trim().split('\n');
  const value = (name: string) => Number(lines.find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
  t.ok(lines.includes('# TYPE modelslice_requests_total counter'));
  t.ok(lines.includes('modelslice_requests_total{route="predict",code="200"} 9'), '9 predictions answered 200');
  t.ok(lines.includes('modelslice_requests_total{route="predict",code="400"} 12'), 'twelve answered 400');
  t.ok(lines.includes('modelslice_requests_total{route="predict",code="499"} 1'), 'the client that went away: 499');
  t.ok(lines.includes('modelslice_requests_total{route="predict",code="415"} 1'));
  t.ok(lines.includes('modelslice_requests_total{route="predict",code="413"} 3'));
  t.ok(lines.includes('modelslice_requests_total{route="other",code="404"} 1'));
  t.ok(lines.includes('# TYPE modelslice_request_duration_seconds histogram'));
  const samples = checkExposition(m.text); // one HELP/TYPE per family, cumulative buckets ending at +Inf
  const durations = samples.filter((x) => x.name === 'modelslice_request_duration_seconds_count');
  t.same(
    Object.fromEntries(durations.map((x) => [x.labels.code, x.value])),
    { 200: 9, 400: 12, 413: 3, 415: 1, 499: 1 },
    'every POST /predict observed, by status code (the abandoned one too)',
  );
  const sloBucket = samples.find((x) => x.name === 'modelslice_request_duration_seconds_bucket' && x.labels.code === '200' && x.labels.le === '60');
  t.equal(sloBucket?.value, 9, 'the SLO (60 s) is a bucket bound');
  t.equal(value('modelslice_slice_rate'), 1);
  t.equal(value('modelslice_queue_length'), 0);
  t.equal(value('modelslice_batch_size_count'), batches.length);
  t.equal(value('modelslice_batch_size_sum'), 6 + 6 + 1 + 1 + 6 + 1 + 1);
  t.ok(lines.includes(`modelslice_batches_total{rate="1"} ${batches.length}`));
  t.equal(value('modelslice_slo_seconds'), 60);
  t.match(await server.metricsText(), /modelslice_requests_total\{route="metrics",code="200"\} 1\n/, 'metricsText() counts the scrape just made');
  const snap = server.metrics();
  t.equal(snap.served, 9);
  t.equal(snap.requests['predict 400'], 12);
  t.equal(snap.requests['other 404'], 1);
  t.ok(snap.arrivalRate > 0);
});

t.test('a full queue answers 503 with Retry-After; shutdown finishes queued work', async (t) => {
  const g = gate();
  const server = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 4, maxQueue: 2, beforeBatch: () => g.wait(), profileRepeats: 1 });
  g.close();
  const one = [0.5, ...new Array(15).fill(0)];
  const first = postJson(`${server.url}/predict`, { inputs: [one] });
  t.ok(await until(() => server.metrics().inFlightBatches === 1), 'first request held in its batch');
  const queued = [postJson(`${server.url}/predict`, { inputs: [one] }), postJson(`${server.url}/predict`, { inputs: [one] })];
  t.ok(await until(() => server.metrics().queuedInputs === 2), 'the queue is full');
  const refused = await postJson(`${server.url}/predict`, { inputs: [one] });
  t.equal(refused.status, 503);
  t.match((refused.json() as { error: string }).error, /queue is full \(2 inputs waiting, at most 2\)/);
  t.ok(Number(refused.headers['retry-after']) >= 1, `Retry-After: ${String(refused.headers['retry-after'])}`);
  t.equal(server.metrics().rejected, 1);

  // Shut down with three requests accepted: they are answered, then the server stops.
  let closed = false;
  const closing = server.close().then(() => (closed = true));
  t.equal(server.close(), server.close(), 'close is idempotent');
  await t.rejects(postJson(`${server.url}/predict`, { inputs: [one] }), { code: 'ECONNREFUSED' }, 'no new connections');
  t.notOk(closed, 'still draining');
  g.open();
  const answers = await Promise.all([first, ...queued]);
  t.same(answers.map((a) => a.status), [200, 200, 200], 'queued requests finished');
  t.same(answers.map((a) => a.headers.connection), ['close', 'close', 'close']);
  await closing;
  t.ok(closed);
});

t.test('the controller lowers the rate under a burst and climbs back when calm (injected clock and profile)', async (t) => {
  let now = 0;
  const g = gate();
  // Rate 1 at a batch of 8 is profiled at 2000 ms: a full batch does not fit 0.8 x 1000 ms
  // (even when the slowdown estimate falls to its floor of 0.5, real passes being far faster).
  const latencyProfile = { byBatch: { 1: { 1: 100, 0.5: 30, 0.25: 10 }, 8: { 1: 2000, 0.5: 250, 0.25: 80 } } };
  const batches: ServedBatch[] = [];
  const server = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 8, latencyProfile, clock: () => now, beforeBatch: () => g.wait(), onBatch: (b) => void batches.push(b), controller: { upHoldMs: 1000 } });
  t.teardown(() => server.close());
  const calm = async () => (await postJson(`${server.url}/predict`, { inputs: inputs(1, 1) })).json() as { rate: number };
  t.equal((await calm()).rate, 1, 'calm: full width');
  // Five seconds later (the arrival-rate estimate has decayed) a burst: one request held
  // in its batch while eight more arrive at the same instant.
  now = 5000;
  g.close();
  const held = calm();
  t.ok(await until(() => server.metrics().inFlightBatches === 1));
  const burst = Array.from({ length: 8 }, () => calm());
  t.ok(await until(() => server.metrics().queueLength === 8), 'eight requests queued');
  g.open();
  t.equal((await held).rate, 1, 'the held request ran at full width');
  const rates = (await Promise.all(burst)).map((r) => r.rate);
  t.same(rates, new Array(8).fill(0.5), 'the burst ran at 0.5 (8 inputs at rate 1 would take 2000 ms)');
  t.equal(server.metrics().rate, 0.5);
  t.equal(batches[batches.length - 1].decision?.reason, 'down');
  const busy = server.metrics().utilization;
  t.ok(busy > 1, `more arriving than full width serves: utilization ${busy.toFixed(2)}`);
  t.match(await server.metricsText(), /^modelslice_full_width_utilization \d/m);
  // Calm again, one request at a time with the clock moving on: up one step per hold.
  now = 20000;
  t.equal((await calm()).rate, 0.5, 'the hold starts');
  t.equal(batches[batches.length - 1].decision?.reason, 'hold');
  now = 30000;
  t.equal((await calm()).rate, 1, 'after the hold: back to full width');
  t.equal(batches[batches.length - 1].decision?.reason, 'up');
  t.equal(server.metrics().rate, 1);
  t.ok(server.metrics().utilization < busy, `and less once calm (${server.metrics().utilization.toFixed(2)})`);
});

t.test('a forward pass with non-finite logits answers 500 and is counted, never a class', async (t) => {
  const model = tinyModel();
  const params = model.namedParameters();
  const [name, bias] = params[params.length - 1];
  t.match(name, /bias/, `the output layer's bias (${name})`);
  bias.data[0] = Infinity; // class 0's logit is +Inf for every input: its argmax would say 0
  const server = await ms.serve(model, { workers: 1, sloMs: 60000, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => server.close());
  const r = await postJson(`${server.url}/predict`, { inputs: inputs(2, 3) });
  t.equal(r.status, 500, r.text);
  t.match((r.json() as { error: string }).error, /the model produced non-finite logits \(NaN or Infinity\) for input 0 of this request at rate 1; no class is given/);
  const text = (await call(`${server.url}/metrics`)).text;
  t.match(text, /modelslice_requests_total\{route="predict",code="500"\} 1\n/);
  t.match(text, /modelslice_nonfinite_outputs_total\{rate="1"\} 2\n/, 'both inputs counted');
  t.match(text, /modelslice_request_duration_seconds_count\{code="500"\} 1\n/);
  t.same([server.metrics().served, server.metrics().nonFinite], [0, 2]);
});

t.test('a client can pin the rate: snapped up to a trained rate, batched apart, refused when bad, counted apart', async (t) => {
  const model = tinyModel(); // trained at 1, 0.5 and 0.25
  const path = join(t.testdir(), 'tiny.safetensors');
  await ms.save(model, path, { preprocess: PRE });
  const g = gate();
  const batches: ServedBatch[] = [];
  const server = await ms.serve(path, { workers: 1, sloMs: 60000, maxBatch: 8, maxQueue: 6, profileRepeats: 1, beforeBatch: () => g.wait(), onBatch: (b) => void batches.push(b) });
  t.teardown(() => server.close());
  const rows = inputs(3, 21);
  const pinnedJson = await postJson(`${server.url}/predict`, { inputs: rows, rate: 0.3 });
  t.equal(pinnedJson.status, 200, pinnedJson.text);
  t.same(pinnedJson.json(), { classes: directClasses(model, rows, 0.5), rate: 0.5 }, '0.3 runs at 0.5, the nearest trained rate at or above it');
  const raw = (rate: string) =>
    call(`${server.url}/predict`, { method: 'POST', body: Buffer.from(Float32Array.from(rows.flat()).buffer), headers: { 'Content-Type': 'application/octet-stream', 'X-Slice-Rate': rate } });
  const pinnedRaw = await raw('0.25');
  t.same(pinnedRaw.json(), { classes: directClasses(model, rows, 0.25), rate: 0.25 }, 'X-Slice-Rate for raw bodies');
  t.same((await postJson(`${server.url}/predict`, { inputs: rows, rate: 1 })).json(), { classes: directClasses(model, rows, 1), rate: 1 });

  // Bad values: 400 naming them.
  const refuse = async (r: Promise<{ status: number; json: () => unknown }>, pattern: RegExp, what: string) => {
    const reply = await r;
    t.equal(reply.status, 400, what);
    t.match((reply.json() as { error: string }).error, pattern, what);
  };
  await refuse(postJson(`${server.url}/predict`, { inputs: rows, rate: 0 }), /"rate" must be a slice rate in \(0, 1\], got 0/, 'rate 0');
  await refuse(postJson(`${server.url}/predict`, { inputs: rows, rate: 1.5 }), /"rate" must be a slice rate in \(0, 1\], got 1\.5/, 'rate above 1');
  await refuse(postJson(`${server.url}/predict`, { inputs: rows, rate: '0.5' }), /"rate" must be a slice rate in \(0, 1\], got "0\.5"/, 'a string in JSON');
  await refuse(postJson(`${server.url}/predict`, { inputs: rows, rate: null }), /"rate" must be a slice rate/, 'null');
  await refuse(raw('abc'), /X-Slice-Rate must be a slice rate in \(0, 1\], got "abc"/, 'a header that is not a number');
  await refuse(raw('Infinity'), /X-Slice-Rate must be a slice rate/, 'Infinity');
  await refuse(
    call(`${server.url}/predict`, { method: 'POST', body: JSON.stringify({ inputs: rows, rate: 0.5 }), headers: { 'Content-Type': 'application/json', 'X-Slice-Rate': '1' } }),
    /"rate" 0\.5 and X-Slice-Rate 1 disagree/,
    'field and header disagree',
  );

  // A pass runs at one rate: queued requests go out grouped by rate, oldest group first;
  // requests pinned to the rate the server chose ride along with the unpinned.
  g.close();
  const held = postJson(`${server.url}/predict`, { inputs: inputs(1, 1) });
  t.ok(await until(() => server.metrics().inFlightBatches === 1));
  const before = batches.length + 1;
  const queued = [
    postJson(`${server.url}/predict`, { inputs: inputs(1, 2) }),
    postJson(`${server.url}/predict`, { inputs: inputs(1, 3), rate: 0.5 }),
    postJson(`${server.url}/predict`, { inputs: inputs(1, 4), rate: 0.2 }),
    postJson(`${server.url}/predict`, { inputs: inputs(1, 5) }),
    postJson(`${server.url}/predict`, { inputs: inputs(1, 6), rate: 0.5 }),
    postJson(`${server.url}/predict`, { inputs: inputs(1, 7), rate: 1 }),
  ];
  t.ok(await until(() => server.metrics().queuedInputs === 6), 'six inputs queued');
  const shed = await postJson(`${server.url}/predict`, { inputs: inputs(1, 8), rate: 0.25 });
  t.equal(shed.status, 503, 'a pinned request is shed like any other when the queue is full');
  g.open();
  const answers = await Promise.all([held, ...queued]);
  t.same(answers.map((a) => (a.json() as { rate: number }).rate), [1, 1, 0.5, 0.25, 1, 0.5, 1]);
  t.same(
    batches.slice(before).map((b) => [b.rate, b.requests]),
    [
      [1, 3],
      [0.5, 2],
      [0.25, 1],
    ],
    'three passes: the unpinned with the one pinned at 1, then 0.5, then 0.25',
  );

  const text = (await call(`${server.url}/metrics`)).text;
  checkExposition(text);
  t.match(text, /modelslice_pinned_requests_total\{rate="0\.5",code="200"\} 3\n/);
  t.match(text, /modelslice_pinned_requests_total\{rate="0\.25",code="200"\} 2\n/);
  t.match(text, /modelslice_pinned_requests_total\{rate="1",code="200"\} 2\n/);
  t.match(text, /modelslice_pinned_requests_total\{rate="0\.25",code="503"\} 1\n/);
  t.equal(server.metrics().pinned, 7);
});

t.test('several workers share the batches', async (t) => {
  const g = gate();
  const seen = new Set<number>();
  const server = await ms.serve(tinyModel(), { sloMs: 1000, maxBatch: 2, workers: 2, threads: 1, profileRepeats: 1, beforeBatch: (b) => (seen.add(b.worker), g.wait()) });
  t.teardown(async () => {
    await server.close();
    ms.setNumThreads(2);
  });
  g.close();
  const replies = Array.from({ length: 6 }, (_, i) => postJson(`${server.url}/predict`, { inputs: inputs(1, i) }));
  t.ok(await until(() => server.metrics().inFlightBatches === 2), 'two batches in flight at once');
  g.open();
  t.same((await Promise.all(replies)).map((r) => r.status), new Array(6).fill(200));
  t.same([...seen].sort(), [0, 1], 'both workers took batches');
  const health = (await call(`${server.url}/healthz`)).json() as { workers: number };
  t.equal(health.workers, 2);
});

t.test('drainDelayMs: close() first turns readiness off and keeps serving, then closes', async (t) => {
  const server = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 4, profileRepeats: 1, drainDelayMs: 400 });
  const one = [0.5, ...new Array(15).fill(0)];
  t.ok(server.ready, 'ready once listening');
  t.equal((await call(`${server.url}/readyz`)).status, 200);
  let closed = false;
  const closing = server.close().then(() => (closed = true));
  t.notOk(server.ready, 'not ready from the moment close() is called');
  const readyz = await call(`${server.url}/readyz`);
  t.same([readyz.status, (readyz.json() as { status: string }).status], [503, 'draining'], '/readyz: 503, draining');
  t.equal((await call(`${server.url}/healthz`)).status, 200, '/healthz: still alive');
  const during = await postJson(`${server.url}/predict`, { inputs: [one] });
  t.equal(during.status, 200, 'a prediction during the drain delay is answered');
  t.notOk(closed, 'still within the delay');
  await closing;
  await t.rejects(call(`${server.url}/healthz`), { code: 'ECONNREFUSED' }, 'then the listener is gone');
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, drainDelayMs: -1 }), { name: 'RangeError', message: /drainDelayMs must be an integer >= 0/ });
});

t.test('accuracy delivered: the recorded accuracy at each answer\'s rate, averaged over answered inputs, in /metrics and metrics()', async (t) => {
  const model = tinyModel();
  ms.modelRecord(model).accuracy = [
    { rate: 1, accuracy: 0.9, examples: 1000 },
    { rate: 0.5, accuracy: 0.8, examples: 1000 },
    { rate: 0.25, accuracy: 0.6, examples: 1000 },
  ];
  const server = await ms.serve(model, { workers: 1, sloMs: 5000, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => server.close());
  t.equal(server.metrics().accuracy, undefined, 'nothing answered yet');
  const one = [0.5, ...new Array(15).fill(0)];
  const pin = (rate: number, n: number) => call(`${server.url}/predict`, { method: 'POST', body: JSON.stringify({ inputs: new Array(n).fill(one), rate }), headers: { 'Content-Type': 'application/json' } });
  t.same((await Promise.all([pin(1, 3), pin(0.25, 1)])).map((r) => r.status), [200, 200]);
  const m = server.metrics();
  t.same(m.answeredByRate, { '1': 3, '0.25': 1 });
  t.ok(Math.abs(m.accuracy! - (3 * 0.9 + 0.6) / 4) < 1e-12, `accuracy delivered ${m.accuracy} = (3 x 0.9 + 0.6) / 4`);
  const text = await server.metricsText();
  const samples = checkExposition(text);
  const value = (name: string, rate?: string) => samples.find((s) => s.name === name && s.labels.rate === rate)?.value;
  t.same([value('modelslice_model_accuracy', '1'), value('modelslice_model_accuracy', '0.5'), value('modelslice_model_accuracy', '0.25')], [0.9, 0.8, 0.6], 'the recorded table');
  t.same([value('modelslice_answered_inputs_total', '1'), value('modelslice_answered_inputs_total', '0.25')], [3, 1]);
  t.ok(Math.abs(value('modelslice_accuracy_delivered')! - 0.825) < 1e-9, 'modelslice_accuracy_delivered');
  t.match(text, /^process_cpu_user_seconds_total \d/m, "prom-client's default process metrics");

  // Without a recorded table: no accuracy, no accuracy metrics.
  const plain = await ms.serve(tinyModel(), { workers: 1, sloMs: 5000, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => plain.close());
  t.equal((await postJson(`${plain.url}/predict`, { inputs: [one] })).status, 200);
  t.equal(plain.metrics().accuracy, undefined);
  t.notMatch(await plain.metricsText(), /modelslice_(model_accuracy|accuracy_delivered)/);
});

t.test('the default queue bound is what the narrowest rate serves in half the SLO, and it refuses past it', async (t) => {
  const latencyProfile = { byBatch: { 1: { 1: 10, 0.25: 2 }, 8: { 1: 400, 0.25: 40 } } };
  // Half of 1000 ms at 40 ms a batch of 8: 12.5 batches a worker, so 100 inputs on one, 200 on two.
  t.equal(defaultMaxQueue(latencyProfile, 0.25, 8, 1, 1000), 100);
  t.equal(defaultMaxQueue(latencyProfile, 0.25, 8, 2, 1000), 200);
  t.equal(defaultMaxQueue(latencyProfile, 1, 8, 1, 1000), 10, 'at a fixed rate 1: 1.25 batches');
  t.equal(defaultMaxQueue(latencyProfile, 1, 8, 1, 100), 8, 'never below one full batch');
  const elastic = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 8, latencyProfile });
  t.teardown(() => elastic.close());
  t.equal(elastic.maxQueue, 100, 'elastic: the narrowest trained rate sets it');
  t.equal(((await call(`${elastic.url}/healthz`)).json() as { maxQueue: number }).maxQueue, 100, '/healthz says it');
  const fixed = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 8, latencyProfile, rate: 1 });
  t.teardown(() => fixed.close());
  t.equal(fixed.maxQueue, 10, 'a fixed rate sets it');
  const given = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 8, latencyProfile, maxQueue: 3 });
  t.teardown(() => given.close());
  t.equal(given.maxQueue, 3, 'maxQueue wins');

  // The bound holds: a held batch, then the queue filled to exactly 10 inputs, then one more refused.
  const g = gate();
  g.close();
  const held = await ms.serve(tinyModel(), { workers: 1, sloMs: 1000, maxBatch: 8, latencyProfile, rate: 1, beforeBatch: () => g.wait() });
  t.teardown(() => held.close());
  const first = postJson(`${held.url}/predict`, { inputs: inputs(1, 1) });
  t.ok(await until(() => held.metrics().inFlightBatches === 1));
  const queued = [postJson(`${held.url}/predict`, { inputs: inputs(8, 2) }), postJson(`${held.url}/predict`, { inputs: inputs(2, 3) })];
  t.ok(await until(() => held.metrics().queuedInputs === 10), 'ten inputs queued');
  const refused = await postJson(`${held.url}/predict`, { inputs: inputs(1, 4) });
  t.equal(refused.status, 503);
  t.match((refused.json() as { error: string }).error, /at most 10\)/);
  g.open();
  t.same((await Promise.all([first, ...queued])).map((a) => a.status), [200, 200, 200]);
});

t.test('bad serve options', async (t) => {
  await t.rejects(serve(tinyModel(), { workers: 1,} as never), { name: 'RangeError', message: /sloMs/ });
  await t.rejects(serve(tinyModel(), null as never), { name: 'TypeError' });
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, maxBatch: 0 }), { name: 'RangeError', message: /maxBatch/ });
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, maxQueue: 0 }), { name: 'RangeError', message: /maxQueue must be an integer >= 1/ });
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, port: 70000 }), { name: 'RangeError', message: /port/ });
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, rate: 2 }), { name: 'RangeError', message: /slice rate/ });
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, latencyProfile: { byBatch: { 1: { 0.3: 1 } } } }), { name: 'RangeError', message: /no row for any trained rate/ });
});

t.test('options refused after the workers started stop those workers', async (t) => {
  const closed: Predictor[] = [];
  const close = Predictor.prototype.close;
  Predictor.prototype.close = function (this: Predictor) {
    closed.push(this);
    return close.call(this);
  };
  t.teardown(() => void (Predictor.prototype.close = close));
  const profile = { byBatch: { 1: { 1: 1, 0.5: 0.5, 0.25: 0.3 } } };
  await t.rejects(serve(tinyModel(), { sloMs: 10, workers: 2, latencyProfile: profile, maxBodyBytes: 0 }), { name: 'RangeError', message: /maxBodyBytes/ });
  t.equal(closed.length, 2, 'both workers were closed');
  await t.rejects(serve(tinyModel(), { workers: 1, sloMs: 10, latencyProfile: profile, controller: { headroom: -1 } }), { name: 'RangeError' });
  t.equal(closed.length, 3, 'and the one worker of a refused controller option');
});
