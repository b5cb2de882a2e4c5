#!/usr/bin/env node
// Elastic serving under a 10x load spike (issue 7): open-loop Poisson arrivals
// on loopback against ms.serve, in three phases (calm, spike at 10x calm, calm
// again), run twice: with the rate fixed at 1 and with the rate controller.
// Then a closed loop (issue 14): --clients clients, each sending its next
// request as soon as its answer arrives, again fixed at 1 and elastic; rate 1
// meets the SLO there, and the controller must keep it. And with --loads trace, a
// production arrival trace (bench/data/azure_llm_conv_2023.csv, Azure LLM inference,
// CC-BY 4.0: bench/data/README.md) replayed in real time: a window of --trace-window
// seconds (default 300, centred on the hour's busiest 10 s), every arrival sending the same
// number of requests of --trace-inputs-per-request inputs (default --max-batch; fractions carried
// from one arrival to the next), chosen so that the window's busiest 10 s ask for --trace-peak
// (default 4) times rate 1's capacity. Time is never compressed; an arrival's requests are sent
// at its instant. (A trace arrival scaled to 4x capacity is over a thousand inputs at once: as
// requests of 4 they would ask HTTP on these two cores for ~2800 requests a second on average,
// beyond what it carries, so the trace's requests are batch-sized.) The trace has its own SLO
// by the spike's rule (what a lone arrival's last request waits for at rate 1, with 2x margin;
// --trace-slo-ms to set it). Reported: SLO attainment (share of requests answered within the SLO),
// p99, goodput (inputs answered within the SLO per second), rejections, and the accuracy
// delivered (the model's recorded accuracy at each answer's rate) against rate 1's. With
// --loads capacity, the server pinned at the narrowest rate and saturated (wrk when installed,
// else our own closed loop of --clients connections, for --capacity-seconds) against ms.infer
// at batch --max-batch on the same kernel threads, with both processes' CPU seconds.
//
//   npm run bench:serve [-- --quick --json --checkpoint FILE --model resnet20|resnet56
//                          --inputs-per-request N --max-batch N --max-queue N --workers 1,2
//                          --train-epochs 4 --train-limit 20000
//                          --phases 25,25,25 --seed N --loads open,closed,trace,capacity --clients 32
//                          --capacity-seconds 15
//                          --closed-inputs-per-request 1 --closed-seconds 20
//                          --trace-window 300 --trace-start S --trace-peak 4
//                          --trace-inputs-per-request N --trace-slo-ms MS --instances N]
//
// --instances N (N > 1) runs every load against N servers of one worker each (the cores
// shared out between them) behind Debian's HAProxy (least connections, /readyz checked every
// 100 ms), each instance with its own rate controller; capacity and SLO are calibrated as for
// N workers.
//
// The model: --checkpoint FILE (a trained model file: its record gives the input shape and
// the per-rate test accuracy); by default the issue's ResNet-56, trained on Fashion-MNIST
// (1x28x28) by `node examples/train-resnet.mjs --depth 56 --epochs 4 --limit 20000 --out
// runs/serve-resnet56` the first time (about 10 minutes on two cores; needs the Debian package
// dataset-fashion-mnist) and cached there; or a random-weight --model resnet20|resnet56
// (3x32x32), for which no accuracy can be reported. (The ResNet-20 of the example's defaults,
// `--checkpoint runs/train-resnet/resnet.safetensors`, is a third as costly per input: its
// 10x spike asks HTTP for ~4000 requests a second, which these two cores do not carry beside
// the kernels and the client.)
//
// The queue bound is the server's default (what the workers serve in half the SLO at the
// narrowest rate, or at the fixed rate) unless --max-queue sets it.
//
// --workers takes a list: each worker count is profiled and run in turn, and the
// tables stand side by side.
//
// Calibration, from the latency profile measured here at start-up (the same
// profileLatency the server runs, twice, keeping the faster median of each cell):
//   capacity(r)  = workers x maxBatch / latency(r, maxBatch)   inputs per second
//   calm load    = capacity(1) / 2, spike = 10 x calm
//   SLO          = 4 x latency(1, maxBatch): at half load a request waits for at
//                  most the batch in progress and then its own (2 batches); the
//                  other factor 2 absorbs Poisson bursts and machine noise.
// Both servers get this same profile (ServeOptions.latencyProfile), so the two
// runs plan with identical numbers and neither re-profiles.
//
// Why ResNet-56: the rate matters (a batch at r = 0.25 is ~7x cheaper than at r = 1) and a
// pass is heavy enough that HTTP is not the bottleneck. Requests carry
// `--inputs-per-request` inputs (default 4) as raw little-endian float32
// (application/octet-stream): the spike offers 5x what rate 1 can do (about 1100 images
// a second for ResNet-56 here, 3300 for ResNet-20), and one image per request would make
// HTTP on 2 cores, not the model, the bottleneck. The load generator is
// bench/http-client.mjs, which costs half the CPU of node:http's client.
//
// The server runs in a child process (`node -e` with ms.serve): client and server
// then have separate event loops, so the client's timers and response parsing do
// not delay the server's accept/batching loop (and a busy server loop does not
// delay the client's arrivals, which would make the load closed-loop). It is also
// what a deployment looks like. Latency is measured from each request's
// *scheduled* arrival time, so a late send is charged to the system (no
// coordinated omission).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ms from 'modelslice';
import { findHaproxy, haproxyConfig } from '../scripts/haproxy.mjs';
import { HttpClient } from './http-client.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const args = process.argv.slice(2);
const opt = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const quick = args.includes('--quick');
const jsonOut = args.includes('--json');
const servedDir = join(root, 'runs', 'serve-resnet56');
const servedModel = join(servedDir, 'resnet.safetensors');
const checkpoint = opt('checkpoint', args.includes('--model') ? undefined : servedModel);
const modelName = checkpoint === servedModel ? 'resnet56 (Fashion-MNIST)' : checkpoint ? checkpoint.split('/').pop().replace(/\.safetensors$/, '') : opt('model', 'resnet56');
const trainEpochs = Number(opt('train-epochs', '4'));
const trainLimit = Number(opt('train-limit', '20000'));
const inputsPerRequest = Number(opt('inputs-per-request', '4'));
const maxBatch = Number(opt('max-batch', '32'));
const traceInputs = Number(opt('trace-inputs-per-request', String(maxBatch)));
// undefined: the server's default bound.
const maxQueue = args.includes('--max-queue') ? Number(opt('max-queue')) : undefined;
const instances = Number(opt('instances', '1'));
// By default the server's own worker count (src/serve/server.ts, defaultWorkers: one per core, at most 4).
const workerCounts = instances > 1 ? [instances] : opt('workers', String(Math.max(1, Math.min(4, availableParallelism())))).split(',').map(Number);
const loads = opt('loads', 'open,closed').split(',');
const traceWindow = Number(opt('trace-window', quick ? '60' : '300'));
const traceStartArg = opt('trace-start', undefined);
const tracePeak = Number(opt('trace-peak', '4'));
const traceSloArg = args.includes('--trace-slo-ms') ? Number(opt('trace-slo-ms')) : undefined;
const clients = Number(opt('clients', '32'));
const closedInputsPerRequest = Number(opt('closed-inputs-per-request', '1'));
const closedSeconds = Number(opt('closed-seconds', quick ? '4' : '20'));
const capacitySeconds = Number(opt('capacity-seconds', quick ? '4' : '15'));
const seed = Number(opt('seed', '1'));
const phaseSeconds = opt('phases', quick ? '4,5,4' : '25,25,25').split(',').map(Number);
const warmupSeconds = quick ? 1 : 3;
const sloFactor = 4;
const calmFraction = 0.5;
const spikeFactor = 10;
const err = (...a) => console.error(...a);

const builders = {
  resnet20: () => ms.models.resnet({ depth: 20, classes: 10 }),
  resnet56: () => ms.models.resnet({ depth: 56, classes: 10 }),
};
if (!checkpoint && !builders[modelName]) throw new RangeError(`--model must be one of ${Object.keys(builders).join(', ')}`);
for (const [name, v] of [
  ['inputs-per-request', inputsPerRequest],
  ['trace-inputs-per-request', traceInputs],
  ['max-batch', maxBatch],
  ...(maxQueue === undefined ? [] : [['max-queue', maxQueue]]),
  ['train-epochs', trainEpochs],
  ['train-limit', trainLimit],
  ...workerCounts.map((w) => ['workers', w]),
  ['clients', clients],
  ['instances', instances],
  ['closed-inputs-per-request', closedInputsPerRequest],
]) {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer`);
}
if (loads.length === 0 || loads.some((l) => !['open', 'closed', 'trace', 'capacity'].includes(l))) throw new RangeError('--loads takes open, closed, trace and capacity, comma-separated');
if (!(traceWindow >= 10 && traceWindow <= 3600)) throw new RangeError('--trace-window must be in [10, 3600] seconds');
if (!(tracePeak > 0)) throw new RangeError('--trace-peak must be positive');
if (traceSloArg !== undefined && !(traceSloArg > 0)) throw new RangeError('--trace-slo-ms must be a positive number of milliseconds');
if (closedInputsPerRequest > maxBatch) throw new RangeError('--closed-inputs-per-request must be at most --max-batch');
if (!(closedSeconds > 0 && closedSeconds <= 600)) throw new RangeError('--closed-seconds must be in (0, 600]');
if (!(capacitySeconds > 0 && capacitySeconds <= 600)) throw new RangeError('--capacity-seconds must be in (0, 600]');
if (inputsPerRequest > maxBatch) throw new RangeError('--inputs-per-request must be at most --max-batch');
if (traceInputs > maxBatch) throw new RangeError('--trace-inputs-per-request must be at most --max-batch');
if (phaseSeconds.length !== 3 || phaseSeconds.some((s) => !(s > 0 && s <= 120))) throw new RangeError('--phases takes three durations in (0, 120] seconds');

// Deterministic randomness (arrival gaps and request bodies).
function mulberry32(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const quantile = (sorted, q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]);
const round = (x, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : 0);

// ---- the model and its latency profile -------------------------------------
const tmp = mkdtempSync(join(tmpdir(), 'modelslice-bench-serve-'));
const cleanup = () => rmSync(tmp, { recursive: true, force: true });
const children = new Set(); // servers and the load balancer still running
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  cleanup();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    err(`bench:serve: ${sig}, stopping`);
    process.exit(130);
  });
}

if (checkpoint === servedModel && !existsSync(servedModel)) {
  // Trained once (a few minutes), then cached: the accuracy delivered needs a trained model.
  const trainArgs = [join(root, 'examples', 'train-resnet.mjs'), '--depth', '56', '--epochs', String(trainEpochs), '--limit', String(trainLimit), '--out', servedDir];
  err(`bench:serve: training the served model once (cached in ${servedDir}): node ${trainArgs.map((a) => a.replace(`${root}/`, '')).join(' ')}`);
  const code = await new Promise((resolve) => spawn(process.execPath, trainArgs, { cwd: root, stdio: ['ignore', 2, 2] }).once('exit', resolve));
  if (code !== 0 || !existsSync(servedModel)) throw new Error(`training the served model failed (exit ${code}); pass --checkpoint FILE or --model resnet56 for random weights`);
}
const model = checkpoint ? await ms.load(checkpoint) : builders[modelName]();
model.eval();
const modelPath = checkpoint ?? join(tmp, `${modelName}.safetensors`);
if (!checkpoint) await ms.save(model, modelPath);
const inputShape = checkpoint ? [...ms.modelRecord(model).inputShape] : [3, 32, 32];
const inputSize = inputShape.reduce((a, b) => a * b, 1);
// Per-rate test accuracy (percent) the model file records; null for random weights.
const recorded = ms.modelRecord(model).accuracy;
const accTable = recorded ? Object.fromEntries(recorded.map((a) => [a.rate, 100 * a.accuracy])) : null;
if (!accTable) err(`bench:serve: ${checkpoint ? `${checkpoint} records no accuracy` : `random-weight ${modelName}`}: no accuracy can be reported (train one: node examples/train-resnet.mjs)`);
// Set by calibrate() for the worker count being run; the runs below read them.
let workers;
let threads;
let profile;
let rates;
let fullBatchMs;
let sloMs;
let calmInputs;
let calmRps;
let spikeRps;
let phases;
let sloReason;
const capacity = (r) => (workers * maxBatch * 1000) / profile.byBatch[maxBatch][r]; // inputs/s at full batches
const batchSizes = [];
for (let b = 1; b < maxBatch; b *= 2) batchSizes.push(b);
batchSizes.push(maxBatch);

function calibrate(workerCount) {
  workers = workerCount;
  // The server gives each of several workers its share of the cores; profile with the same thread count.
  threads = workers > 1 ? Math.max(1, Math.floor(availableParallelism() / workers)) : ms.getNumThreads();
  const previousThreads = ms.getNumThreads();
  ms.setNumThreads(threads);
  err(`bench:serve: profiling ${modelName} (batch sizes ${batchSizes.join(', ')}, ${threads} kernel threads)...`);
  const t0 = performance.now();
  const profiles = [0, 1].map(() => ms.profileLatency(model, { inputShape, batchSizes, repeats: quick ? 3 : 5 })); // a fresh object each time
  ms.setNumThreads(previousThreads);
  rates = Object.keys(profiles[0].byBatch[batchSizes[0]])
    .map(Number)
    .sort((a, b) => b - a);
  // Keep the faster median of each cell (other jobs only ever slow a pass down), then make
  // the table monotone (a bigger batch or a wider rate never costs less): noise must not
  // make the controller believe a wider rate or a bigger batch is cheaper.
  profile = { byBatch: {} };
  for (const b of batchSizes) {
    profile.byBatch[b] = {};
    for (const r of rates) profile.byBatch[b][r] = Math.min(profiles[0].byBatch[b][r], profiles[1].byBatch[b][r]);
  }
  for (let i = 1; i < batchSizes.length; i++) for (const r of rates) profile.byBatch[batchSizes[i]][r] = Math.max(profile.byBatch[batchSizes[i]][r], profile.byBatch[batchSizes[i - 1]][r]);
  for (const b of batchSizes) for (let j = rates.length - 2; j >= 0; j--) profile.byBatch[b][rates[j]] = Math.max(profile.byBatch[b][rates[j]], profile.byBatch[b][rates[j + 1]]);
  err(`bench:serve: profiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  fullBatchMs = profile.byBatch[maxBatch][1];
  sloMs = round(sloFactor * fullBatchMs, 1);
  calmInputs = calmFraction * capacity(1);
  calmRps = calmInputs / inputsPerRequest;
  spikeRps = spikeFactor * calmRps;
  phases = [
    { name: 'calm', seconds: phaseSeconds[0], rps: calmRps },
    { name: 'spike', seconds: phaseSeconds[1], rps: spikeRps },
    { name: 'calm', seconds: phaseSeconds[2], rps: calmRps },
  ];
  sloReason = `${sloFactor} x ${fullBatchMs.toFixed(1)} ms, the profiled rate-1 latency of one batch of ${maxBatch} (a calm request waits for at most the batch in progress and its own: 2 batches, plus 2x margin)`;
}

// ---- the server, in a child process ----------------------------------------
// CommonJS `-e` with a dynamic import rather than `--input-type=module`: the predictor's
// worker threads inherit the process's execArgv, and a worker refuses --input-type.
const childCode = `
import('modelslice').then(async (ms) => {
  const o = JSON.parse(process.env.MODELSLICE_BENCH_SERVE);
  const server = await ms.serve(o.path, o.options);
  process.send({ type: 'ready', url: server.url, maxQueue: server.maxQueue });
  process.on('disconnect', () => process.exit(1)); // the benchmark went away
  process.on('message', async (m) => {
    if (m.type !== 'close') return;
    const metrics = server.metrics();
    await server.close();
    process.send({ type: 'closed', metrics }, () => process.exit(0));
  });
}).catch((e) => { console.error(e); process.exit(1); });
`;

function startServer(serveOptions) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, MODELSLICE_BENCH_SERVE: JSON.stringify({ path: modelPath, options: serveOptions }) };
    // stdout of the child goes to our stderr, so that with --json our stdout ends with the JSON line.
    const proc = spawn(process.execPath, ['-e', childCode], { cwd: root, env, stdio: ['ignore', 2, 2, 'ipc'] });
    children.add(proc);
    proc.once('exit', () => children.delete(proc));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error('the server did not start within 120 s'));
    }, 120000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with code ${code} before it was ready`));
    });
    proc.once('message', (m) => {
      clearTimeout(timer);
      resolve({
        url: new URL(m.url),
        maxQueue: m.maxQueue,
        pids: [proc.pid],
        close: () =>
          new Promise((res) => {
            const kill = setTimeout(() => {
              proc.kill('SIGKILL');
              res(null);
            }, 40000);
            proc.on('message', (msg) => {
              if (msg.type === 'closed') {
                clearTimeout(kill);
                res(msg.metrics);
              }
            });
            proc.send({ type: 'close' });
          }),
        exited: new Promise((res) => (proc.exitCode !== null ? res() : proc.once('exit', () => res()))),
      });
    });
  });
}

// ---- several instances behind HAProxy ---------------------------------------
/**
 * `instances` servers (one worker each, its share of the cores) behind Debian's HAProxy:
 * least-connections, health checks on GET /readyz every 100 ms. Each instance has its own
 * controller. Resolves like startServer, with the balancer's address; close() stops the
 * servers, then HAProxy, and sums the servers' metrics.
 */
async function startCluster(serveOptions) {
  const haproxy = findHaproxy();
  if (!haproxy) throw new Error('--instances needs haproxy (apt-get install haproxy)');
  const servers = await Promise.all(Array.from({ length: instances }, () => startServer({ ...serveOptions, workers: 1 })));
  const port = await new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const p = probe.address().port;
      probe.close(() => resolve(p));
    });
  });
  const config = join(tmp, `haproxy-${port}.cfg`);
  writeFileSync(config, haproxyConfig({ port, servers: servers.map((sv) => sv.url.host) }));
  const lb = spawn(haproxy, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 2] });
  children.add(lb);
  lb.once('exit', () => children.delete(lb));
  const url = new URL(`http://127.0.0.1:${port}`);
  for (let i = 0; ; i++) {
    const up = await new Promise((resolve) => {
      const req = request({ host: url.hostname, port: url.port, path: '/readyz', agent: false }, (res) => (res.resume(), resolve(res.statusCode === 200)));
      req.on('error', () => resolve(false));
      req.end();
    });
    if (up) break;
    if (i > 200) throw new Error('HAProxy did not start forwarding within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const lbExited = new Promise((res) => (lb.exitCode !== null ? res() : lb.once('exit', () => res())));
  return {
    url,
    maxQueue: servers[0].maxQueue, // each instance's
    pids: [...servers.flatMap((sv) => sv.pids), lb.pid],
    close: async () => {
      const each = await Promise.all(servers.map((sv) => sv.close()));
      lb.kill('SIGTERM');
      if (each.some((m) => m === null)) return null;
      const sum = (k) => each.reduce((n, m) => n + m[k], 0);
      return { served: sum('served'), rejected: sum('rejected'), batches: sum('batches'), instances: each };
    },
    exited: Promise.all([...servers.map((sv) => sv.exited), lbExited]),
  };
}

const topology = () => (instances > 1 ? `${instances} instances behind HAProxy, each 1 worker x ${threads} kernel threads` : `${workers} worker(s) x ${threads} kernel threads`);
const startTarget = (serveOptions) => (instances > 1 ? startCluster(serveOptions) : startServer(serveOptions));

// ---- the load generator ----------------------------------------------------
const rand = mulberry32(seed);
/** Request bodies of `inputs` standard-normal inputs each, raw float32. */
const makeBodies = (inputs) =>
  Array.from({ length: 16 }, () => {
    const x = new Float32Array(inputs * inputSize);
    for (let i = 0; i < x.length; i++) x[i] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    return Buffer.from(x.buffer, x.byteOffset, x.byteLength); // little-endian on every platform Node runs on
  });
const bodies = makeBodies(inputsPerRequest);

/** The Poisson arrivals of the calm / spike / calm phases (after a calm warm-up, phase -1). */
function poissonPlan() {
  const arrivalRand = mulberry32(seed + 1000); // the same arrival sequence in both runs
  const schedule = [{ name: 'warmup', seconds: warmupSeconds, rps: calmRps, index: -1 }, ...phases.map((p, i) => ({ ...p, index: i }))];
  let offset = -warmupSeconds * 1000;
  for (const p of schedule) {
    p.from = offset;
    p.to = offset + p.seconds * 1000;
    offset = p.to;
  }
  const arrivals = [];
  let k = 0;
  for (let t = -warmupSeconds * 1000; ; ) {
    while (k < schedule.length && t >= schedule[k].to) k++;
    if (k === schedule.length) break;
    arrivals.push({ t, phase: schedule[k].index });
    t += (-Math.log(1 - arrivalRand()) / schedule[k].rps) * 1000; // exponential gap at this phase's rate
  }
  return { arrivals, endMs: offset, phases, warmupMs: warmupSeconds * 1000 };
}

/**
 * Replays `plan.arrivals` ({t: ms from the first counted phase, phase; phase -1 is the
 * uncounted warm-up}) open-loop against a fresh server, each at its scheduled time.
 */
async function runLoad(name, serveOptions, plan) {
  err(`bench:serve: ${name} run: starting the server${instances > 1 ? `s (${instances}, behind HAProxy)` : ''}...`);
  const server = await startTarget(serveOptions);
  const client = new HttpClient({ host: server.url.hostname, port: server.url.port, maxSockets: 256 });
  const records = []; // {t: scheduled ms from the measured start, phase, status, ms, rate}
  let outstanding = 0;
  let errors = 0;
  let lost = 0;
  let lastDone = null;
  const finished = () => {
    if (outstanding === 0 && lastDone) lastDone();
  };

  const send = (scheduled, start, phase) => {
    outstanding++;
    const rec = { t: scheduled - start, phase, status: 0, ms: NaN, rate: NaN };
    const pool = plan.bodies ?? bodies;
    const body = pool[records.length % pool.length];
    if (phase >= 0) records.push(rec);
    let done = false;
    const complete = (status, text) => {
      if (done) return;
      done = true;
      rec.status = status;
      rec.ms = performance.now() - scheduled;
      if (status === 200) {
        try {
          rec.rate = JSON.parse(text).rate;
        } catch {
          rec.status = -1;
        }
      }
      if (status <= 0 && phase >= 0) errors++;
      outstanding--;
      finished();
    };
    client.post('/predict', 'application/octet-stream', body, complete);
  };

  const { arrivals, endMs, warmupMs } = plan;
  const start = performance.now() + warmupMs + 50; // t = 0 is the start of the first counted phase
  let i = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < arrivals.length && start + arrivals[i].t <= now) {
        send(start + arrivals[i].t, start, arrivals[i].phase);
        i++;
      }
      if (i === arrivals.length) return resolve();
      const next = start + arrivals[i].t;
      setTimeout(tick, Math.max(0, Math.min(5, next - now - 0.5)));
    };
    setTimeout(tick, Math.max(0, start + (arrivals[0]?.t ?? 0) - performance.now()));
  });
  // Bounded drain: whatever is still unanswered 30 s after the last arrival is counted lost.
  if (outstanding > 0) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 30000);
      lastDone = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  for (const r of records) if (r.status === 0) lost++;
  client.destroy();
  const serverMetrics = await server.close();
  await server.exited;
  const run = summarize(name, records, { errors, lost, serverMetrics, endMs }, plan.phases);
  run.maxQueue = server.maxQueue;
  return run;
}

// ---- the production trace --------------------------------------------------
/** Arrival times (seconds from the trace's first) of bench/data/azure_llm_conv_2023.csv. */
function readTrace() {
  const lines = readFileSync(join(here, 'data', 'azure_llm_conv_2023.csv'), 'utf8').trim().split('\n');
  if (lines[0].split(',')[0] !== 'TIMESTAMP') throw new Error('bench/data/azure_llm_conv_2023.csv: no TIMESTAMP header');
  const times = lines.slice(1).map((l) => {
    const [date, time] = l.split(',')[0].split(' ');
    const [h, m, sec] = time.split(':');
    return Date.parse(`${date}T00:00:00Z`) / 1000 + Number(h) * 3600 + Number(m) * 60 + Number(sec);
  });
  times.sort((a, b) => a - b);
  return times.map((t) => t - times[0]);
}

/** The busiest `span` seconds of sorted times within [from, to): its start and count. */
function busiest(times, from, to, span) {
  let best = { start: from, count: 0 };
  let j = 0;
  const inside = times.filter((t) => t >= from && t < to);
  for (let i = 0; i < inside.length; i++) {
    while (j < inside.length && inside[j] < inside[i] + span) j++;
    if (j - i > best.count) best = { start: inside[i], count: j - i };
  }
  return best;
}

/**
 * The trace window as arrivals: every trace arrival becomes `perArrival` requests (a
 * fraction carried over from one arrival to the next, so the window's total is exact), at the
 * arrival's own time; the warm-up replays the seconds before the window the same way.
 */
function tracePlan() {
  const times = readTrace();
  const hour = times[times.length - 1];
  const peakOfHour = busiest(times, 0, hour, 10);
  const from = traceStartArg !== undefined ? Number(traceStartArg) : Math.max(0, Math.min(hour - traceWindow, peakOfHour.start + 5 - traceWindow / 2));
  if (!(from >= 0 && from + traceWindow <= hour + 1)) throw new RangeError(`--trace-start must put the window inside the trace's ${hour.toFixed(0)} s`);
  const to = from + traceWindow;
  const peak = busiest(times, from, to, 10);
  // Requests per arrival so that the busiest 10 s ask for tracePeak x rate 1's capacity.
  const perArrival = (tracePeak * capacity(1) * 10) / (peak.count * traceInputs);
  const arrivals = [];
  let carry = 0;
  for (const t of times) {
    if (t < from - warmupSeconds || t >= to) continue;
    carry += perArrival;
    const n = Math.floor(carry);
    carry -= n;
    for (let k = 0; k < n; k++) arrivals.push({ t: (t - from) * 1000, phase: t < from ? -1 : 0 });
  }
  const counted = times.filter((t) => t >= from && t < to).length;
  return {
    arrivals,
    bodies: makeBodies(traceInputs),
    endMs: traceWindow * 1000,
    warmupMs: warmupSeconds * 1000,
    phases: [{ name: 'trace', seconds: traceWindow, rps: (counted * perArrival) / traceWindow }],
    from,
    peak: { start: (peak.start - from) * 1000, count: peak.count }, // ms from the window's start
    perArrival,
    traceArrivals: counted,
    meanRps: (counted * perArrival) / traceWindow,
  };
}

/** POSTs one body; resolves {status, text} (status -1 on a connection error). */
function postOnce(client, body) {
  return new Promise((resolve) => client.post('/predict', 'application/octet-stream', body, (status, text) => resolve({ status, text })));
}

/**
 * Closed loop: `clients` clients, each sending its next request as soon as the
 * previous answer arrives (after a 503 or an error it waits 10 ms, so a refusing
 * server is not hammered). Arrivals then follow the server's own speed.
 */
async function runClosed(name, serveOptions) {
  err(`bench:serve: closed-loop ${name} run: starting the server${instances > 1 ? `s (${instances}, behind HAProxy)` : ''}...`);
  const server = await startTarget(serveOptions);
  const http = new HttpClient({ host: server.url.hostname, port: server.url.port, maxSockets: clients });
  const bodyRand = mulberry32(seed + 2000);
  const closedBodies = Array.from({ length: 16 }, () => {
    const x = new Float32Array(closedInputsPerRequest * inputSize);
    for (let i = 0; i < x.length; i++) x[i] = Math.sqrt(-2 * Math.log(1 - bodyRand())) * Math.cos(2 * Math.PI * bodyRand());
    return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  });
  const start = performance.now() + warmupSeconds * 1000;
  const end = start + closedSeconds * 1000;
  const records = [];
  let errors = 0;
  const client = async (k) => {
    let n = k;
    while (performance.now() < end) {
      const t0 = performance.now();
      const { status, text } = await postOnce(http, closedBodies[n++ % closedBodies.length]);
      const t1 = performance.now();
      let rate = NaN;
      if (status === 200) rate = JSON.parse(text).rate;
      if (t0 >= start && t1 <= end) records.push({ t: t0 - start, status, ms: t1 - t0, rate });
      if (status !== 200) {
        if (status <= 0 && t0 >= start) errors++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, k) => client(k)));
  http.destroy();
  const serverMetrics = await server.close();
  await server.exited;
  const served = records.filter((r) => r.status === 200);
  const lat = served.map((r) => r.ms).sort((a, b) => a - b);
  const byRate = {};
  for (const r of served) byRate[r.rate] = (byRate[r.rate] ?? 0) + 1;
  return {
    name,
    served: served.length,
    servedPerSecond: round(served.length / closedSeconds, 1),
    rejected: records.filter((r) => r.status === 503).length,
    timedOut: served.filter((r) => r.ms > sloMs).length,
    errors,
    p50Ms: round(quantile(lat, 0.5), 1),
    p99Ms: round(quantile(lat, 0.99), 1),
    meanRate: round(served.length === 0 ? 0 : served.reduce((s, r) => s + r.rate, 0) / served.length, 3),
    byRate,
    serverMetrics,
    // Mean rate of the answers to requests sent in each second: how the controller moved.
    rateBySecond: Array.from({ length: Math.ceil(closedSeconds) }, (_, k) => {
      const sv = served.filter((r) => r.t >= k * 1000 && r.t < (k + 1) * 1000);
      return sv.length === 0 ? null : round(sv.reduce((s, r) => s + r.rate, 0) / sv.length, 2);
    }),
  };
}

// ---- capacity at the narrowest rate -------------------------------------------
/** CPU seconds (user + system) the processes have used so far, from /proc; null elsewhere. */
function cpuSeconds(pids) {
  try {
    let ticks = 0;
    for (const pid of pids) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the state on
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    }
    return ticks / 100; // USER_HZ: 100 on Linux
  } catch {
    return null;
  }
}

/** wrk's path, or null when it is not installed (apt-get install wrk). */
function findWrk() {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'wrk'))) return join(dir, 'wrk');
  return null;
}

/**
 * Capacity at the narrowest rate: the server pinned there and saturated by `clients`
 * connections for --capacity-seconds (wrk when installed, else this process's own closed
 * loop), against ms.infer at batch --max-batch in this process on all the server's kernel
 * threads (workers x threads). The load generator shares the cores with the server: its CPU
 * seconds are reported beside the server's.
 */
async function runCapacity(common) {
  const r = rates[rates.length - 1];
  const before = { rate: model.sliceRate, threads: ms.getNumThreads() };
  ms.setNumThreads(workers * threads);
  model.setSliceRate(r);
  const x = ms.randn([maxBatch, ...inputShape], { seed });
  for (let i = 0; i < 5; i++) ms.infer(model, x);
  let batchMs = Infinity;
  for (let round = 0; round < 3; round++) {
    const n = quick ? 10 : 40;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) ms.infer(model, x);
    batchMs = Math.min(batchMs, (performance.now() - t0) / n);
  }
  model.setSliceRate(before.rate);
  ms.setNumThreads(before.threads);
  const inferInputs = (maxBatch * 1000) / batchMs;
  err(`bench:serve: capacity: ms.infer at r=${r}, batch ${maxBatch}, ${workers * threads} kernel threads: ${batchMs.toFixed(2)} ms = ${inferInputs.toFixed(0)} inputs/s; starting the server pinned at r=${r}...`);
  const server = await startTarget({ ...common, rate: r, maxQueue: Math.max(maxQueue ?? 0, 2 * clients * inputsPerRequest) });
  const wrk = findWrk();
  const cpu0 = cpuSeconds(server.pids);
  let requests = 0;
  let failed = 0;
  let generatorCpu = null;
  const wallStart = performance.now();
  if (wrk) {
    const bodyFile = join(tmp, 'capacity-body.bin');
    writeFileSync(bodyFile, bodies[0]);
    const script = join(tmp, 'capacity.lua');
    writeFileSync(script, `local f = io.open(${JSON.stringify(bodyFile)}, "rb")\nwrk.method = "POST"\nwrk.body = f:read("*all")\nf:close()\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
    // bash's `times` prints the CPU time of the shell's finished children (wrk) last.
    const out = await new Promise((resolve, reject) => {
      const proc = spawn('bash', ['-c', `"$0" -t1 -c${clients} -d${capacitySeconds}s -s "$1" "$2" && times`, wrk, script, `${server.url.origin}/predict`], { stdio: ['ignore', 'pipe', 2] });
      const chunks = [];
      proc.stdout.on('data', (c) => chunks.push(c));
      proc.once('error', reject);
      proc.once('exit', (code) => (code === 0 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`wrk exited with code ${code}`))));
    });
    requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1).reduce((a, b) => a + Number(b), 0) ?? 0);
    const times = out.trim().split('\n').pop().split(/\s+/).map((t) => {
      const m = /^(\d+)m([\d.]+)s$/.exec(t);
      return m ? 60 * Number(m[1]) + Number(m[2]) : NaN;
    });
    if (times.length === 2 && times.every(Number.isFinite)) generatorCpu = times[0] + times[1];
  } else {
    const http = new HttpClient({ host: server.url.hostname, port: server.url.port, maxSockets: clients });
    const cpuStart = process.cpuUsage();
    const end = performance.now() + capacitySeconds * 1000;
    await Promise.all(
      Array.from({ length: clients }, async (_, k) => {
        for (let n = k; performance.now() < end; n++) {
          const { status } = await postOnce(http, bodies[n % bodies.length]);
          if (status === 200) requests++;
          else failed++;
        }
      }),
    );
    const cpu = process.cpuUsage(cpuStart);
    generatorCpu = (cpu.user + cpu.system) / 1e6;
    http.destroy();
  }
  const wallS = (performance.now() - wallStart) / 1000;
  const cpu1 = cpuSeconds(server.pids);
  await server.close();
  await server.exited;
  const served = requests - (wrk ? failed : 0);
  const inputsPerSecond = (served * inputsPerRequest) / wallS;
  return {
    rate: r,
    generator: wrk ? 'wrk' : 'modelslice bench (closed loop)',
    seconds: round(wallS, 1),
    requestsPerSecond: round(served / wallS, 1),
    inputsPerSecond: round(inputsPerSecond, 0),
    failed,
    inferInputsPerSecond: round(inferInputs, 0),
    ratio: round(inputsPerSecond / inferInputs, 3),
    serverCpuSeconds: cpu0 === null || cpu1 === null ? null : round(cpu1 - cpu0, 1),
    generatorCpuSeconds: generatorCpu === null ? null : round(generatorCpu, 1),
  };
}

function reportCapacity(c) {
  console.log(`modelslice serve at full load, pinned at r=${c.rate}: ${inputsPerRequest} inputs/request as raw float32, ${topology()}, ${clients} connections from ${c.generator} for ${c.seconds} s`);
  console.log(`served ${c.requestsPerSecond} requests/s = ${c.inputsPerSecond} inputs/s (${c.failed} failed); ms.infer at batch ${maxBatch} on the same ${workers * threads} kernel threads: ${c.inferInputsPerSecond} inputs/s; ratio ${c.ratio}`);
  const cores = availableParallelism();
  console.log(`CPU over the run (${cores} cores x ${c.seconds} s = ${(cores * c.seconds).toFixed(1)} s): server ${c.serverCpuSeconds ?? 'unknown'} s, load generator ${c.generatorCpuSeconds ?? 'unknown'} s`);
  console.log(`target (the server delivers at least 0.8 of ms.infer's inputs/s): ${c.ratio >= 0.8 ? 'met' : 'missed'}`);
  console.log('');
}

function summarize(name, records, extra, runPhases) {
  const servedRecs = records.filter((r) => r.status === 200);
  const lat = servedRecs.map((r) => r.ms).sort((a, b) => a - b);
  const meanRateOf = (rs) => (rs.length === 0 ? 0 : rs.reduce((s, r) => s + r.rate, 0) / rs.length);
  const phaseStats = runPhases.map((p, i) => {
    const all = records.filter((r) => r.phase === i);
    const served = all.filter((r) => r.status === 200);
    const l = served.map((r) => r.ms).sort((a, b) => a - b);
    return {
      name: p.name,
      offeredRps: round(all.length / p.seconds, 1),
      served: served.length,
      p99Ms: round(quantile(l, 0.99), 1),
      meanRate: round(meanRateOf(served), 3),
      // not in the JSON line:
      targetRps: p.rps,
      rejected: all.filter((r) => r.status === 503).length,
      timedOut: served.filter((r) => r.ms > sloMs).length,
      p50Ms: round(quantile(l, 0.5), 1),
      other: all.filter((r) => r.status !== 200 && r.status !== 503).length,
    };
  });
  // Per-second timeline of the counted phases (by scheduled arrival time).
  const seconds = Math.ceil(extra.endMs / 1000);
  const timeline = Array.from({ length: seconds }, (_, s) => {
    const rs = records.filter((r) => r.t >= s * 1000 && r.t < (s + 1) * 1000);
    const sv = rs.filter((r) => r.status === 200);
    return {
      s,
      offered: rs.length,
      served: sv.length,
      rejected: rs.filter((r) => r.status === 503).length,
      late: sv.filter((r) => r.ms > sloMs).length,
      rate: sv.length ? meanRateOf(sv) : null,
      p99: sv.length ? quantile(sv.map((r) => r.ms).sort((a, b) => a - b), 0.99) : null,
    };
  });
  const byRate = {};
  for (const r of servedRecs) byRate[r.rate] = (byRate[r.rate] ?? 0) + 1;
  return {
    name,
    served: servedRecs.length,
    rejected: records.filter((r) => r.status === 503).length,
    timedOut: servedRecs.filter((r) => r.ms > sloMs).length,
    p50Ms: round(quantile(lat, 0.5), 1),
    p99Ms: round(quantile(lat, 0.99), 1),
    meanRate: round(meanRateOf(servedRecs), 3),
    phases: phaseStats,
    timeline,
    byRate,
    ...extra,
  };
}

// ---- the SVG timeline ------------------------------------------------------
function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/** opts: {title, subtitle, shadeFrom, shadeTo} (seconds; the shaded span). */
function timelineSvg(runs, opts) {
  const W = 980;
  const colW = 450;
  const rowH = 150;
  const top = 56;
  const left = 58;
  const H = top + 3 * (rowH + 36) + 30;
  const seconds = Math.max(...runs.map((r) => r.timeline.length));
  const maxOffered = Math.max(1, ...runs.flatMap((r) => r.timeline.map((b) => b.offered)));
  const maxP99 = Math.max(sloMs * 1.5, ...runs.flatMap((r) => r.timeline.map((b) => b.p99 ?? 0)));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`,
  );
  out.push(`<text x="${W / 2}" y="38" text-anchor="middle" fill="#555">${esc(opts.subtitle)}</text>`);
  const rows = [
    { title: 'requests per second: offered (grey), served (blue), rejected 503 (red)', max: maxOffered, unit: '' },
    { title: 'slice rate of the answers (mean)', max: 1, unit: '' },
    { title: `p99 latency (ms); dashed: SLO ${sloMs} ms`, max: maxP99, unit: '' },
  ];
  runs.forEach((run, c) => {
    const x0 = left + c * (colW + 40);
    const plotW = colW - 20;
    const X = (s) => x0 + (s / seconds) * plotW;
    out.push(`<text x="${x0 + plotW / 2}" y="${top - 2}" text-anchor="middle" font-size="13" font-weight="bold">${esc(run.name === 'fixed' ? 'rate fixed at 1' : 'elastic (rate controller)')}</text>`);
    rows.forEach((row, i) => {
      const y0 = top + 14 + i * (rowH + 36);
      const Y = (v) => y0 + rowH - (Math.min(v, row.max) / row.max) * rowH;
      out.push(`<rect x="${X(opts.shadeFrom)}" y="${y0}" width="${X(opts.shadeTo) - X(opts.shadeFrom)}" height="${rowH}" fill="#fff1dc"/>`);
      out.push(`<rect x="${x0}" y="${y0}" width="${plotW}" height="${rowH}" fill="none" stroke="#999"/>`);
      out.push(`<text x="${x0}" y="${y0 - 4}" fill="#333">${esc(row.title)}</text>`);
      for (const f of [0, 0.5, 1]) {
        const v = row.max * f;
        out.push(`<text x="${x0 - 4}" y="${Y(v) + 4}" text-anchor="end" fill="#555">${row.max === 1 ? v.toFixed(2) : Math.round(v)}</text>`);
      }
      for (let s = 0; s <= seconds; s += seconds > 120 ? 60 : 10) out.push(`<text x="${X(s)}" y="${y0 + rowH + 12}" text-anchor="middle" fill="#555">${s}s</text>`);
      const line = (vals, color, dash = '') => {
        const pts = [];
        const segs = [];
        vals.forEach((v, s) => {
          if (v === null) {
            if (pts.length) segs.push(pts.splice(0));
            return;
          }
          pts.push(`${X(s + 0.5).toFixed(1)},${Y(v).toFixed(1)}`);
        });
        if (pts.length) segs.push(pts);
        for (const p of segs) out.push(`<polyline points="${p.join(' ')}" fill="none" stroke="${color}" stroke-width="1.6"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
      };
      if (i === 0) {
        line(run.timeline.map((b) => b.offered), '#888');
        line(run.timeline.map((b) => b.served), '#1f5fbf');
        line(run.timeline.map((b) => b.rejected), '#d0302a');
      } else if (i === 1) {
        line(run.timeline.map((b) => b.rate), '#2a8a3a');
      } else {
        out.push(`<line x1="${x0}" x2="${x0 + plotW}" y1="${Y(sloMs)}" y2="${Y(sloMs)}" stroke="#d0302a" stroke-dasharray="5,4"/>`);
        line(run.timeline.map((b) => b.p99), '#7b3fb0');
      }
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

// ---- run -------------------------------------------------------------------
const impliedAccuracy = (run) => {
  if (!accTable) return null;
  let n = 0;
  let s = 0;
  for (const [r, count] of Object.entries(run.byRate)) {
    if (accTable[r] === undefined) return null;
    s += accTable[r] * count;
    n += count;
  }
  return n ? s / n : null;
};
const pad = (v, w) => String(v).padStart(w);
const rateMix = (run) =>
  Object.entries(run.byRate)
    .sort((a, b) => Number(b[0]) - Number(a[0]))
    .map(([r, n]) => `r=${r}: ${((100 * n) / Math.max(1, run.served)).toFixed(1)}%`)
    .join(', ');

function reportOpen(fixed, elastic) {
  mkdirSync(join(here, 'results'), { recursive: true });
  const svgPath = join(here, 'results', instances > 1 ? `serve-timeline-i${instances}.svg` : workers === workerCounts[0] ? 'serve-timeline.svg' : `serve-timeline-w${workers}.svg`);
  const tmpSvg = `${svgPath}.${process.pid}.tmp`;
  writeFileSync(
    tmpSvg,
    timelineSvg([fixed, elastic], {
      title: `modelslice serve, ${modelName}, ${inputsPerRequest} inputs/request: calm ${calmRps.toFixed(0)} req/s, spike ${spikeRps.toFixed(0)} req/s, SLO ${sloMs} ms`,
      subtitle: 'per second of scheduled arrival; shaded: the spike',
      shadeFrom: phases[0].seconds,
      shadeTo: phases[0].seconds + phases[1].seconds,
    }),
  );
  renameSync(tmpSvg, svgPath);

  console.log(`modelslice serve under a ${spikeFactor}x spike: ${modelName}${checkpoint ? '' : ' (random weights)'}, ${inputsPerRequest} inputs/request as raw float32, maxBatch ${maxBatch}, maxQueue ${fixed.maxQueue} (fixed) / ${elastic.maxQueue} (elastic) inputs${maxQueue === undefined ? " (the server's default: half the SLO at the narrowest rate it may run)" : ''}, ${topology()}`);
  console.log(`profile (ms per batch of ${maxBatch}): ${rates.map((r) => `r=${r}: ${profile.byBatch[maxBatch][r].toFixed(1)}`).join(', ')}`);
  console.log(`SLO ${sloMs} ms = ${sloReason}`);
  console.log(`load: calm ${calmRps.toFixed(1)} req/s (${calmInputs.toFixed(0)} inputs/s = ${calmFraction} x rate-1 capacity ${capacity(1).toFixed(0)}/s), spike ${spikeRps.toFixed(1)} req/s (rate-0.25 capacity ${capacity(rates[rates.length - 1]).toFixed(0)} inputs/s)`);
  console.log('');
  console.log('run      phase   secs  offered/s  served  rejected  timedOut  p50 ms   p99 ms  mean rate');
  for (const run of [fixed, elastic]) {
    for (const p of run.phases) {
      console.log(
        `${run.name.padEnd(8)} ${p.name.padEnd(6)} ${pad(phases[run.phases.indexOf(p)].seconds, 5)} ${pad(p.offeredRps.toFixed(1), 10)} ${pad(p.served, 7)} ${pad(p.rejected, 9)} ${pad(p.timedOut, 9)} ${pad(p.p50Ms.toFixed(1), 7)} ${pad(p.p99Ms.toFixed(1), 8)} ${pad(p.meanRate.toFixed(3), 10)}`,
      );
    }
    console.log(
      `${run.name.padEnd(8)} ${'all'.padEnd(6)} ${pad(phaseSeconds.reduce((a, b) => a + b, 0), 5)} ${pad('', 10)} ${pad(run.served, 7)} ${pad(run.rejected, 9)} ${pad(run.timedOut, 9)} ${pad(run.p50Ms.toFixed(1), 7)} ${pad(run.p99Ms.toFixed(1), 8)} ${pad(run.meanRate.toFixed(3), 10)}`,
    );
  }
  console.log('');
  for (const run of [fixed, elastic]) {
    const acc = impliedAccuracy(run);
    const sm = run.serverMetrics;
    console.log(
      `${run.name}: answers by rate ${rateMix(run) || '-'}${acc === null ? '' : `; implied accuracy ${acc.toFixed(2)}%`}; client errors ${run.errors}, unanswered ${run.lost}` +
        (sm ? `; server counted served ${sm.served} rejected ${sm.rejected} in ${sm.batches} batches (warm-up included)` : '; server metrics unavailable'),
    );
  }
  const ok = (run) => run.rejected === 0 && run.timedOut === 0 && run.phases.every((p) => p.p99Ms <= sloMs) && run.errors === 0 && run.lost === 0;
  console.log(`target (p99 within the SLO in every phase, nothing rejected or timed out): fixed ${ok(fixed) ? 'meets it' : 'misses it'}, elastic ${ok(elastic) ? 'meets it' : 'misses it'}`);
  const st = steadiness(elastic);
  elastic.steadiness = st;
  console.log(`elastic rate by second: ${elastic.timeline.map((b) => (b.rate === null ? '-' : b.rate.toFixed(2))).join(' ')}`);
  for (const run of [fixed, elastic]) {
    const late = run.timeline.map((b) => b.rejected + b.late);
    if (late.some((n) => n > 0)) console.log(`${run.name} refused + answered after the SLO, by second: ${late.join(' ')}`);
  }
  console.log(
    `controller (calm seconds at rate >= 0.95, a drop within 1 s of the spike, back within 5 s after it): ${st.calmSecondsBelow95} calm second(s) below 0.95; drop after ${st.dropWithinS ?? 'never'} s; back after ${st.recoverWithinS ?? 'never'} s: ${st.calmSecondsBelow95 === 0 && st.dropWithinS !== null && st.dropWithinS <= 1 && st.recoverWithinS !== null && st.recoverWithinS <= 5 ? 'met' : 'missed'}`,
  );
  console.log(`timeline: ${svgPath}`);
  console.log('');
}

/**
 * How the elastic controller moved, from the per-second timeline (mean rate of the answers to
 * requests scheduled in each second): calm seconds of the first calm phase below 0.95, seconds
 * from the spike's start until the rate first drops below 1, and seconds from the spike's end
 * until every later second stays at 0.95 or more (the issue asks at most 1 and 5).
 */
function steadiness(run) {
  const spikeFrom = phases[0].seconds;
  const spikeTo = spikeFrom + phases[1].seconds;
  const rateAt = (s) => run.timeline[s]?.rate ?? null;
  let calmLow = 0;
  for (let s = 0; s < spikeFrom; s++) if (rateAt(s) !== null && rateAt(s) < 0.95) calmLow++;
  let dropS = null;
  for (let s = spikeFrom; s < spikeTo; s++) {
    if (rateAt(s) !== null && rateAt(s) < 1) {
      dropS = s - spikeFrom;
      break;
    }
  }
  let recoverS = null;
  for (let k = 0; spikeTo + k < run.timeline.length; k++) {
    let ok = true;
    for (let s = spikeTo + k; s < run.timeline.length; s++) if (rateAt(s) !== null && rateAt(s) < 0.95) ok = false;
    if (ok) {
      recoverS = k;
      break;
    }
  }
  return { calmSecondsBelow95: calmLow, dropWithinS: dropS, recoverWithinS: recoverS };
}

function reportClosed(fixed, elastic) {
  console.log(`modelslice serve, closed loop: ${clients} clients each waiting for its answer, ${closedInputsPerRequest} input(s)/request, ${closedSeconds} s, ${topology()}, SLO ${sloMs} ms`);
  console.log('run      served/s  rejected  timedOut  p50 ms   p99 ms  mean rate  answers by rate');
  for (const run of [fixed, elastic]) {
    console.log(
      `${run.name.padEnd(8)} ${pad(run.servedPerSecond.toFixed(1), 9)} ${pad(run.rejected, 9)} ${pad(run.timedOut, 9)} ${pad(run.p50Ms.toFixed(1), 7)} ${pad(run.p99Ms.toFixed(1), 8)} ${pad(run.meanRate.toFixed(3), 10)}  ${rateMix(run) || '-'}`,
    );
  }
  console.log(`elastic rate by second: ${elastic.rateBySecond.map((r) => (r === null ? '-' : r.toFixed(2))).join(' ')}`);
  const meets = (run) => run.p99Ms <= sloMs && run.rejected === 0 && run.errors === 0;
  const keeps = meets(fixed) ? (elastic.meanRate >= 0.99 ? 'keeps rate 1' : `drops to a mean rate of ${elastic.meanRate.toFixed(3)} although rate 1 meets the SLO`) : 'rate 1 misses the SLO here';
  console.log(`target (the elastic server keeps the widest rate that meets the SLO): fixed p99 ${fixed.p99Ms.toFixed(1)} ms ${meets(fixed) ? 'meets' : 'misses'} the SLO; elastic ${keeps}`);
  console.log('');
}

function peakP99(seconds) {
  if (seconds.some((b) => b.served + b.rejected < b.offered)) return null;
  return round(Math.max(0, ...seconds.map((b) => b.p99 ?? 0)), 1);
}

/** The trace runs: SLO attainment, p99, goodput, rejections and accuracy delivered. */
function traceStats(run, plan) {
  const all = run.phases[0];
  // Every request scheduled in the window: answered, refused, or neither (a connection error,
  // or still unanswered at the end: lost, which `other` already counts).
  const sent = run.served + run.rejected + all.other;
  const withinSlo = run.served - run.timedOut;
  return {
    requests: sent,
    sloAttainment: sent === 0 ? 0 : withinSlo / sent,
    p99Ms: run.p99Ms,
    goodputInputsPerSecond: round((withinSlo * traceInputs) / traceWindow, 1),
    rejected: run.rejected,
    timedOut: run.timedOut,
    unanswered: run.lost,
    meanRate: run.meanRate,
    accuracy: impliedAccuracy(run),
    // The worst second's p99 over the busiest 10 s; null when some of their requests were never answered.
    peakP99Ms: peakP99(run.timeline.slice(Math.floor(plan.peak.start / 1000), Math.ceil((plan.peak.start + 10000) / 1000))),
  };
}

function reportTrace(fixed, elastic, plan) {
  mkdirSync(join(here, 'results'), { recursive: true });
  const svgPath = join(here, 'results', instances > 1 ? `serve-trace-timeline-i${instances}.svg` : workers === workerCounts[0] ? 'serve-trace-timeline.svg' : `serve-trace-timeline-w${workers}.svg`);
  const tmpSvg = `${svgPath}.${process.pid}.tmp`;
  const peakS = plan.peak.start / 1000;
  writeFileSync(
    tmpSvg,
    timelineSvg([fixed, elastic], {
      title: `modelslice serve, ${modelName}: Azure LLM trace, ${traceWindow} s from ${plan.from.toFixed(0)} s, ${plan.perArrival.toFixed(2)} requests of ${traceInputs} per arrival, SLO ${sloMs} ms`,
      subtitle: `per second of scheduled arrival; shaded: the busiest 10 s (${tracePeak}x rate 1's capacity)`,
      shadeFrom: peakS,
      shadeTo: peakS + 10,
    }),
  );
  renameSync(tmpSvg, svgPath);
  const f = traceStats(fixed, plan);
  const e = traceStats(elastic, plan);
  console.log(`modelslice serve on a production trace (bench/data/azure_llm_conv_2023.csv, Azure Public Dataset, CC-BY 4.0): ${modelName}, ${topology()}, maxBatch ${maxBatch}, maxQueue ${plan.maxQueue} inputs`);
  console.log(
    `window ${traceWindow} s from ${plan.from.toFixed(1)} s of the hour, replayed in real time: ${plan.traceArrivals} arrivals x ${plan.perArrival.toFixed(2)} requests of ${traceInputs} inputs (mean ${(plan.meanRps * traceInputs).toFixed(0)} inputs/s = ${((plan.meanRps * traceInputs) / capacity(1)).toFixed(2)} x rate-1 capacity ${capacity(1).toFixed(0)}/s; busiest 10 s at ${peakS.toFixed(0)} s: ${tracePeak}x)`,
  );
  console.log(`SLO ${sloMs} ms = ${sloReason}`);
  console.log('');
  console.log('run      requests  within SLO  p99 ms  peak-10s p99  goodput inputs/s  rejected  timedOut  mean rate  accuracy');
  for (const [run, t] of [
    [fixed, f],
    [elastic, e],
  ]) {
    console.log(
      `${run.name.padEnd(8)} ${pad(t.requests, 8)} ${pad(`${(100 * t.sloAttainment).toFixed(2)}%`, 11)} ${pad(t.p99Ms.toFixed(1), 7)} ${pad(t.peakP99Ms === null ? 'unanswered' : t.peakP99Ms.toFixed(1), 13)} ${pad(t.goodputInputsPerSecond.toFixed(1), 17)} ${pad(t.rejected, 9)} ${pad(t.timedOut, 9)} ${pad(t.meanRate.toFixed(3), 10)}  ${t.accuracy === null ? 'unknown (random weights)' : `${t.accuracy.toFixed(2)}%`}`,
    );
  }
  if (accTable) console.log(`accuracy delivered: elastic ${e.accuracy.toFixed(2)}% against rate 1's ${accTable[1].toFixed(2)}% (the model's recorded test accuracy at each answer's rate)`);
  console.log(`target (elastic >= 99.9% within the SLO and nothing rejected; fixed rate 1 < 99%): elastic ${e.sloAttainment >= 0.999 && e.rejected === 0 ? 'meets it' : 'misses it'}, fixed ${(100 * f.sloAttainment).toFixed(2)}%`);
  console.log(`timeline: ${svgPath}`);
  console.log('');
  return { fixed: f, elastic: e };
}

const results = [];
for (const w of workerCounts) {
  calibrate(w);
  const common = { port: 0, host: '127.0.0.1', sloMs, maxBatch, ...(maxQueue === undefined ? {} : { maxQueue }), workers, threads, latencyProfile: profile };
  err(`bench:serve: ${workers} worker(s): SLO ${sloMs} ms = ${sloReason}`);
  err(`bench:serve: capacity at full batches: ${rates.map((r) => `r=${r} ${capacity(r).toFixed(0)}/s`).join(', ')} inputs`);
  const result = { workers, sloMs };
  if (loads.includes('open')) {
    err(`bench:serve: calm ${calmRps.toFixed(1)} req/s (${calmInputs.toFixed(0)} inputs/s), spike ${spikeRps.toFixed(1)} req/s; phases ${phaseSeconds.join('/')} s after ${warmupSeconds} s of warm-up`);
    const plan = poissonPlan();
    const fixed = await runLoad('fixed', { ...common, rate: 1 }, plan);
    const elastic = await runLoad('elastic', common, plan);
    reportOpen(fixed, elastic);
    result.open = { fixed, elastic };
  }
  if (loads.includes('trace')) {
    const plan = tracePlan();
    // The trace's own SLO, by the rule of the spike's (what a lone request waits for at rate 1,
    // with 2x margin): a lone arrival's last request waits for the batch in progress and all of
    // the arrival's batches, shared among the workers. The spike's SLO, 4 batches, is less than
    // one scaled arrival takes at the narrowest rate.
    const spikeSlo = [sloMs, sloReason];
    const batches = Math.ceil((plan.perArrival * traceInputs) / maxBatch);
    const perWorker = Math.ceil(batches / (workers * instances));
    sloMs = traceSloArg !== undefined ? traceSloArg : round(2 * (1 + perWorker) * fullBatchMs, 1);
    sloReason =
      traceSloArg !== undefined
        ? 'given by --trace-slo-ms'
        : `2 x (1 + ${perWorker}) x ${fullBatchMs.toFixed(1)} ms: a lone arrival's last request waits for the batch in progress and the arrival's ${batches} batches of ${maxBatch} over ${workers * instances} worker(s) at rate 1, plus 2x margin`;
    try {
      // A trace arrival brings its requests at one instant: size the queue by what the narrowest
      // rate drains within the SLO (unless --max-queue says otherwise), not by a spike's worth.
      plan.maxQueue = maxQueue ?? Math.ceil((capacity(rates[rates.length - 1]) * sloMs) / 1000);
      err(`bench:serve: trace window ${traceWindow} s from ${plan.from.toFixed(0)} s, ${plan.perArrival.toFixed(2)} requests per arrival (${plan.arrivals.length} requests with the warm-up), SLO ${sloMs} ms, max queue ${plan.maxQueue} inputs`);
      const fixed = await runLoad('fixed', { ...common, sloMs, maxQueue: plan.maxQueue, rate: 1 }, plan);
      const elastic = await runLoad('elastic', { ...common, sloMs, maxQueue: plan.maxQueue }, plan);
      result.trace = { plan: { from: plan.from, window: traceWindow, perArrival: plan.perArrival, peakStartS: plan.peak.start / 1000, maxQueue: plan.maxQueue, sloMs }, ...reportTrace(fixed, elastic, plan) };
    } finally {
      [sloMs, sloReason] = spikeSlo;
    }
  }
  if (loads.includes('capacity')) {
    result.capacity = await runCapacity(common);
    reportCapacity(result.capacity);
  }
  if (loads.includes('closed')) {
    const fixed = await runClosed('fixed', { ...common, rate: 1 });
    const elastic = await runClosed('elastic', common);
    reportClosed(fixed, elastic);
    result.closed = { fixed, elastic };
  }
  results.push(result);
}

if (jsonOut) {
  const phaseJson = (p) => ({ name: p.name, offeredRps: p.offeredRps, served: p.served, p99Ms: p.p99Ms, meanRate: p.meanRate });
  const runJson = (run, withRate) => ({
    maxQueue: run.maxQueue,
    served: run.served,
    rejected: run.rejected,
    timedOut: run.timedOut,
    p50Ms: run.p50Ms,
    p99Ms: run.p99Ms,
    phases: run.phases.map(phaseJson),
    ...(withRate ? { meanRate: run.meanRate, steadiness: run.steadiness } : {}),
    accuracy: impliedAccuracy(run),
  });
  const closedJson = (run) => ({ servedPerSecond: run.servedPerSecond, rejected: run.rejected, timedOut: run.timedOut, p50Ms: run.p50Ms, p99Ms: run.p99Ms, meanRate: run.meanRate });
  const one = (r) => ({
    workers: r.workers,
    sloMs: r.sloMs,
    ...(r.open ? { fixed: runJson(r.open.fixed, false), elastic: runJson(r.open.elastic, true) } : {}),
    ...(r.closed ? { closed: { clients, fixed: closedJson(r.closed.fixed), elastic: closedJson(r.closed.elastic) } } : {}),
    ...(r.trace ? { trace: r.trace } : {}),
    ...(r.capacity ? { capacity: r.capacity } : {}),
  });
  // One worker count: the shape earlier results have ({sloMs, fixed, elastic}, now with closed); several: a list.
  console.log(JSON.stringify(results.length === 1 ? one(results[0]) : { byWorkers: results.map(one) }));
}
