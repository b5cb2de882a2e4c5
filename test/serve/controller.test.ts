import t from 'tap';
import { RateController } from '../../src/serve/controller.js';

// A synthetic machine: a pass costs a fixed part plus a part per input, both falling with the rate.
const COST: Record<number, [number, number]> = { 1: [2, 0.5], 0.5: [1, 0.15], 0.25: [0.5, 0.05] };
const latencyMs = (rate: number, batch: number) => COST[rate][0] + COST[rate][1] * batch;
const MAX_BATCH = 32;
const SLO = 50;

function controller(extra = {}): RateController {
  return new RateController({ sloMs: SLO, rates: [0.25, 1, 0.5], latencyMs, maxBatch: MAX_BATCH, ...extra });
}

interface Sim {
  rates: { t: number; rate: number }[];
  latencies: { t: number; ms: number }[];
}

interface Load {
  /** Open-loop inputs per second at time t, arriving evenly whatever the server does. */
  rps?: (t: number) => number;
  /** Closed-loop clients: each sends one input, waits for its answer, and sends the next CLIENT_RTT_MS later. */
  clients?: number;
  workers?: number;
}

const CLIENT_RTT_MS = 0.5;

/**
 * A deterministic server on a fake clock: whenever a worker is free it takes up
 * to MAX_BATCH queued inputs, asks for a rate (unless fixed) and is busy for
 * the profiled latency.
 */
function simulate(c: RateController | null, load: Load | ((t: number) => number), endMs: number): Sim {
  const { rps, clients = 0, workers = 1 } = typeof load === 'function' ? { rps: load } : load;
  const sim: Sim = { rates: [], latencies: [] };
  const queue: { arrived: number; closed: boolean }[] = [];
  const freeAt = new Array<number>(workers).fill(0);
  const running = new Array<number>(workers).fill(0);
  let resend: number[] = new Array<number>(clients).fill(0);
  let owed = 0;
  const arrive = (t: number, closed: boolean) => {
    queue.push({ arrived: t, closed });
    c?.observeArrival(1, t, queue.length + running.reduce((a, b) => a + b, 0));
  };
  for (let t = 0; t < endMs; t += 0.25) {
    owed += ((rps?.(t) ?? 0) / 1000) * 0.25;
    while (owed >= 1) {
      owed -= 1;
      arrive(t, false);
    }
    const later: number[] = [];
    for (const at of resend) if (at <= t) arrive(t, true);
    else later.push(at);
    resend = later;
    for (let w = 0; w < workers; w++) {
      if (t < freeAt[w]) continue;
      running[w] = 0;
      if (queue.length === 0) continue;
      const size = Math.min(MAX_BATCH, queue.length);
      const inFlightInputs = running.reduce((a, b) => a + b, 0);
      const q = { queuedInputs: queue.length, batchInputs: size, oldestWaitMs: t - queue[0].arrived, newestWaitMs: t - queue[queue.length - 1].arrived, inFlightInputs };
      const rate = c === null ? 1 : c.decide(q, t).rate;
      const ms = latencyMs(rate, size);
      c?.observeBatch(rate, size, ms);
      for (const item of queue.splice(0, size)) {
        sim.latencies.push({ t, ms: t + ms - item.arrived });
        if (item.closed) resend.push(t + ms + CLIENT_RTT_MS);
      }
      sim.rates.push({ t, rate });
      freeAt[w] = t + ms;
      running[w] = size;
    }
  }
  return sim;
}

const p99 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(0.99 * s.length))];
};

// Rate 1 serves at most 32 inputs per 18 ms = 1778/s; calm is 300/s, the spike 10x that.
const load = (t: number) => (t >= 3000 && t < 6000 ? 3000 : 300);

t.test('under a 10x spike the controller lowers the rate, keeps p99 within the SLO, and returns to 1', async (t) => {
  const c = controller();
  const sim = simulate(c, load, 10000);
  const ratesIn = (a: number, b: number) => sim.rates.filter((r) => r.t >= a && r.t < b).map((r) => r.rate);
  const latIn = (a: number, b: number) => sim.latencies.filter((l) => l.t >= a && l.t < b).map((l) => l.ms);
  t.ok(ratesIn(0, 3000).every((r) => r === 1), 'calm: full width throughout');
  // Steady open arrivals look like clients that wait for answers, so rate 1 may be tried
  // once in a while (a probe, see controller.ts); it must stay rare and brief.
  const spike = sim.rates.filter((r) => r.t >= 3500 && r.t < 6000);
  const atFull = spike.filter((r) => r.rate === 1).length;
  t.ok(atFull <= 0.05 * spike.length, `spike (after the first 0.5 s): a lower rate (${atFull} of ${spike.length} batches at rate 1)`);
  t.ok(p99(latIn(3000, 6000)) <= SLO, `spike p99 ${p99(latIn(3000, 6000)).toFixed(1)} ms within the ${SLO} ms SLO`);
  t.ok(p99(latIn(0, 10000)) <= SLO, 'p99 over the whole run within the SLO');
  t.equal(sim.rates[sim.rates.length - 1].rate, 1, 'calm again: back to full width');
  t.ok(ratesIn(8000, 10000).every((r) => r === 1), 'and it stays there');
  // No flapping: a handful of changes over the run, not one per batch.
  const changes = sim.rates.filter((r, i) => i > 0 && r.rate !== sim.rates[i - 1].rate).length;
  t.ok(changes <= 6, `${changes} rate changes in ${sim.rates.length} batches`);

  // The same load at a fixed rate 1: the queue grows without bound during the spike.
  const fixed = simulate(null, load, 10000);
  const fixedSpike = fixed.latencies.filter((l) => l.t >= 3000 && l.t < 7000).map((l) => l.ms);
  t.ok(p99(fixedSpike) > 10 * SLO, `fixed rate 1: spike p99 ${p99(fixedSpike).toFixed(0)} ms, far past the SLO`);
});

const ratesBetween = (sim: Sim, a: number, b: number) => sim.rates.filter((r) => r.t >= a && r.t < b).map((r) => r.rate);
const latenciesBetween = (sim: Sim, a: number, b: number) => sim.latencies.filter((l) => l.t >= a && l.t < b).map((l) => l.ms);

t.test('32 clients that each wait for their answer: rate 1 meets the SLO, and the controller keeps it', async (t) => {
  // At rate 1 the 32 clients' inputs go out in about one batch per pass: ~20 ms against 50.
  const fixed = simulate(null, { clients: 32 }, 5000);
  t.ok(p99(latenciesBetween(fixed, 1000, 5000)) <= 0.8 * SLO, `fixed rate 1: p99 ${p99(latenciesBetween(fixed, 1000, 5000)).toFixed(1)} ms`);
  // Every input is answered and sent again, so the measured arrival rate is whatever the
  // server delivers: load(1) is near 1 at rate 1, and far above it at a narrower rate.
  const c = controller();
  const sim = simulate(c, { clients: 32 }, 10000);
  const late = ratesBetween(sim, 1000, 10000);
  t.ok(late.every((r) => r === 1), `settles at rate 1 (${[...new Set(late)].join(', ')})`);
  t.ok(p99(latenciesBetween(sim, 0, 10000)) <= SLO, `p99 ${p99(latenciesBetween(sim, 0, 10000)).toFixed(1)} ms within the SLO`);

  // Two workers, 64 clients: the same, per worker.
  const two = controller({ workers: 2 });
  const sim2 = simulate(two, { clients: 64, workers: 2 }, 6000);
  t.ok(ratesBetween(sim2, 1000, 6000).every((r) => r === 1), 'two workers: rate 1 too');
});

t.test('closed-loop clients under an open 10x burst: down within 1 s, back to 1 after', async (t) => {
  const c = controller();
  // 32 waiting clients throughout; from 3 s to 6 s, 3000 inputs/s more that do not wait.
  const sim = simulate(c, { clients: 32, rps: (t) => (t >= 3000 && t < 6000 ? 3000 : 0) }, 16000);
  t.ok(ratesBetween(sim, 1000, 3000).every((r) => r === 1), 'before the burst: rate 1');
  const firstDown = sim.rates.find((r) => r.t >= 3000 && r.rate < 1);
  t.ok(firstDown !== undefined && firstDown.t < 4000, `down within 1 s of the burst (at ${firstDown?.t} ms)`);
  const burst = sim.rates.filter((r) => r.t >= 3500 && r.t < 6000);
  t.ok(burst.filter((r) => r.rate === 1).length <= 0.05 * burst.length, 'the burst runs narrower');
  t.ok(p99(latenciesBetween(sim, 3000, 6000)) <= SLO, `burst p99 ${p99(latenciesBetween(sim, 3000, 6000)).toFixed(1)} ms within the SLO`);
  const back = sim.rates.find((r) => r.t >= 6000 && r.rate === 1);
  t.ok(back !== undefined && back.t < 12000, `back to rate 1 after the burst (at ${back?.t} ms)`);
  t.ok(ratesBetween(sim, 13000, 16000).every((r) => r === 1), 'and it stays there');
});

t.test('steady open overload of rate 1: each failed probe of rate 1 doubles its hold', async (t) => {
  const c = controller();
  const sim = simulate(c, () => 3000, 30000); // 3000/s: beyond rate 1 (1778/s), within 0.5
  const probes = sim.rates.filter((r, i) => i > 0 && r.rate === 1 && sim.rates[i - 1].rate !== 1).map((r) => r.t);
  // Holds of 1, 2, 4, 8 and 16 s between probes: five in 30 s, not one a second.
  t.ok(probes.length >= 2 && probes.length <= 5, `${probes.length} probes of rate 1 at ${probes.map((p) => (p / 1000).toFixed(1)).join(', ')} s`);
  const gaps = probes.slice(1).map((p, i) => p - probes[i]);
  t.ok(
    gaps.every((g, i) => i === 0 || g > 1.5 * gaps[i - 1]),
    `the gaps grow: ${gaps.map((g) => (g / 1000).toFixed(1)).join(', ')} s`,
  );
  const atFull = sim.rates.filter((r) => r.t >= 1000 && r.rate === 1).length;
  t.ok(atFull <= 0.01 * sim.rates.length, `${atFull} of ${sim.rates.length} batches at rate 1`);
  t.ok(p99(sim.latencies.map((l) => l.ms)) <= SLO, 'p99 within the SLO');
});

t.test('down at once, up one step at a time after the hold', async (t) => {
  const c = controller({ upHoldMs: 1000 });
  t.equal(c.rate, 1, 'starts at the widest rate');
  const calm = { queuedInputs: 1, batchInputs: 1, oldestWaitMs: 0, newestWaitMs: 0 };
  t.same(c.decide(calm, 0).rate, 1);
  t.equal(c.decide(calm, 0).reason, 'fits');
  // A deep queue: rate 1 would need 4 rounds of 18 ms, 0.5 four of 5.8 ms.
  const deep = { queuedInputs: 128, batchInputs: 32, oldestWaitMs: 5, newestWaitMs: 0 };
  const d = c.decide(deep, 10);
  t.equal(d.rate, 0.5);
  t.equal(d.reason, 'down');
  t.same(d.estimates.map((e) => e.rate), [1, 0.5, 0.25]);
  t.ok(d.estimates[0].predictedMs > 0.8 * SLO && d.estimates[1].fits);
  // Nothing fits: the narrowest rate.
  const hopeless = { queuedInputs: 10000, batchInputs: 32, oldestWaitMs: 100, newestWaitMs: 0 };
  const h = c.decide(hopeless, 20);
  t.same([h.rate, h.reason], [0.25, 'floor']);
  // Calm again: the wider rate must keep fitting for upHoldMs, then one step.
  t.same([c.decide(calm, 5000).rate, c.decide(calm, 5000).reason], [0.25, 'hold']);
  t.equal(c.decide(calm, 5999).rate, 0.25, 'not before the hold');
  const up = c.decide(calm, 6000);
  t.same([up.rate, up.reason], [0.5, 'up']);
  t.equal(c.decide(calm, 6500).rate, 0.5, 'the next step needs its own hold');
  t.equal(c.decide(calm, 7000).rate, 1);
  // A break in the hold restarts it.
  c.decide(deep, 7001);
  t.equal(c.rate, 0.5);
  c.decide(calm, 7500);
  c.decide(deep, 8000); // 0.5 still fits this queue, but 1 does not: the hold breaks
  t.equal(c.rate, 0.5);
  t.equal(c.decide(calm, 8600).reason, 'hold', 'the hold restarted at 8600');
  t.equal(c.decide(calm, 9600).rate, 1);
});

t.test('the arrival rate is an EWMA that decays when requests stop', async (t) => {
  const c = controller({ arrivalTimeConstantMs: 500 });
  for (let i = 0; i < 5000; i++) c.observeArrival(1, i); // 1000/s for 5 s
  t.ok(Math.abs(c.arrivalRate(4999) - 1000) < 15, `steady 1000/s estimated as ${c.arrivalRate(4999).toFixed(1)}`);
  t.ok(c.arrivalRate(5499) < 400, 'a time constant later it has decayed to about 1/e');
  t.ok(c.arrivalRate(10000) < 1, 'and keeps decaying without arrivals');
  // A high arrival rate alone makes rate 1 unaffordable, even with an empty queue, once it
  // has lasted downHoldMs (500 ms): a load that is over the bound for an instant holds.
  // latency(1, 32) = 18 ms: 1700 inputs/s is load 0.96, over the bound 0.85, within capacity.
  const empty = { queuedInputs: 1, batchInputs: 1, oldestWaitMs: 0, newestWaitMs: 0 };
  for (let i = 0; i < 5000; i++) c.observeArrival(1.7, 10000 + i);
  const held = c.decide(empty, 14999);
  t.ok(held.estimates[0].load > 0.85 && held.estimates[0].load < 1, `load at rate 1 = ${held.estimates[0].load.toFixed(2)}`);
  t.notOk(held.estimates[0].overwhelmed, 'within capacity: not overwhelmed');
  t.same([held.rate, held.reason], [1, 'hold'], 'the first decision over the bound holds rate 1');
  for (let i = 5000; i < 5499; i++) c.observeArrival(1.7, 10000 + i);
  t.equal(c.decide(empty, 15498).rate, 1, 'still within 500 ms');
  c.observeArrival(1.7, 15499);
  const d = c.decide(empty, 15499);
  t.same([d.rate, d.reason], [0.5, 'down'], '500 ms later it goes down');
});

t.test('an open burst beyond capacity lowers the rate at once, tens of milliseconds in', async (t) => {
  // Calm at 500 inputs/s, then 5000/s (2.8x rate 1's 1778/s) arriving one input at a time.
  const c = controller();
  const empty = { queuedInputs: 1, batchInputs: 1, oldestWaitMs: 0, newestWaitMs: 0 };
  for (let i = 0; i < 5000; i++) c.observeArrival(1, 2 * i, 1);
  t.equal(c.decide(empty, 9999).rate, 1, 'calm: rate 1');
  let now = 10000;
  for (; now < 10050; now += 0.2) c.observeArrival(1, now, 1);
  const d = c.decide(empty, now);
  const e1 = d.estimates.find((e) => e.rate === 1)!;
  t.ok(e1.load < 0.85, `the 500 ms EWMA has not seen it yet (load ${e1.load.toFixed(2)})`);
  t.ok(e1.overwhelmed && e1.burstLoad > 1.2, `the 100 ms one has (burst load ${e1.burstLoad.toFixed(2)})`);
  t.same([d.rate, d.reason], [0.5, 'down'], 'down at once, 50 ms into the burst');
  // A clump of 140 inputs at one instant on the calm load is what the queue term is for: its
  // excess over rate 1's capacity in the window is less than a batch.
  const clump = controller();
  for (let i = 0; i < 5000; i++) clump.observeArrival(1, 2 * i, 1);
  clump.observeArrival(140, 10000, 141);
  const ce = clump.decide({ queuedInputs: 140, batchInputs: 32, oldestWaitMs: 0, newestWaitMs: 0 }, 10000).estimates.find((e) => e.rate === 1)!;
  t.ok(ce.burstLoad > 1 && !ce.overwhelmed, `a clump is not a burst (burst load ${ce.burstLoad.toFixed(2)})`);
  // 2200/s steady (burst load 1.24: 42 inputs over capacity in the window, late within the
  // hold if open): from 64 outstanding inputs, which one worker at 18 ms a batch of 32 could
  // cycle at up to 2222/s, it may be a closed loop and is not a burst; from 8 outstanding
  // inputs (at most 1667/s) it must be open.
  const steady = (outstanding: number) => {
    const k = controller();
    for (let n = 0; n < 2000; n += 0.5) k.observeArrival(1.1, n, outstanding);
    const q = { queuedInputs: outstanding / 2, batchInputs: outstanding / 2, oldestWaitMs: 0, newestWaitMs: 0, inFlightInputs: outstanding / 2 };
    return k.decide(q, 2000).estimates.find((e) => e.rate === 1)!;
  };
  const many = steady(64);
  const few = steady(8);
  t.ok(many.burstLoad > 1 && !many.overwhelmed, `64 outstanding: not overwhelmed (burst load ${many.burstLoad.toFixed(2)})`);
  t.ok(few.overwhelmed, `8 outstanding: overwhelmed (burst load ${few.burstLoad.toFixed(2)})`);
});

t.test('a machine slower than its profile lowers the rate sooner', async (t) => {
  const c = controller({ slowdownBatches: 1 });
  const q = { queuedInputs: 64, batchInputs: 32, oldestWaitMs: 0, newestWaitMs: 0 };
  t.equal(c.decide(q, 0).rate, 1, '2 rounds of 18 ms fit 40 ms');
  c.observeBatch(1, 32, 36); // passes at rate 1 now take twice the profiled time
  t.equal(c.slowdown, 2, 'the current rate');
  t.equal(c.decide(q, 1).rate, 0.5);
  t.equal(c.slowdown, 1, 'rate 0.5 has not been observed yet');
  t.equal(c.slowdownAt(1), 2);
  c.observeBatch(1, 32, 1e6);
  t.equal(c.slowdownAt(1), 20, 'clamped');
  c.observeBatch(1, 32, NaN);
  t.equal(c.slowdownAt(1), 20, 'nonsense ignored');
  c.observeBatch(0.5, 32, 0);
  t.equal(c.slowdownAt(0.5), 0.5, 'clamped below too');
});

t.test('several workers share the queue', async (t) => {
  const one = controller();
  const two = controller({ workers: 2 });
  const q = { queuedInputs: 96, batchInputs: 32, oldestWaitMs: 0, newestWaitMs: 0 };
  t.equal(one.decide(q, 0).rate, 0.5, 'one worker: 3 rounds of 18 ms do not fit');
  t.equal(two.decide(q, 0).rate, 1, 'two workers: 2 rounds fit');
});

t.test('bad options', async (t) => {
  t.throws(() => controller({ sloMs: 0 }), { name: 'RangeError', message: /sloMs/ });
  t.throws(() => controller({ headroom: -1 }), { name: 'RangeError', message: /RateController: headroom must be a fraction in \(0, 1\], got -1/ });
  t.throws(() => controller({ maxLoad: 1.5 }), { name: 'RangeError', message: /maxLoad must be a fraction/ });
  t.throws(() => controller({ upHoldMs: Number.NaN }), { name: 'RangeError', message: /upHoldMs must be a positive number/ });
  t.throws(() => controller({ workers: 0 }), { name: 'RangeError', message: /workers must be a positive integer/ });
  t.throws(() => controller({ rates: [] }), { name: 'RangeError', message: /rates/ });
  t.throws(() => controller({ maxBatch: 0 }), { name: 'RangeError', message: /maxBatch/ });
});

t.test('a load over the bound for less than downHoldMs keeps the rate; a late queue lowers it at once', async (t) => {
  // latency(1, 32) = 18 ms: 1000 inputs/s is load 0.56, 1700/s is 0.96, 2000/s is 1.1.
  const c = controller({ arrivalTimeConstantMs: 100 });
  const empty = { queuedInputs: 1, batchInputs: 1, oldestWaitMs: 0, newestWaitMs: 0 };
  let now = 0;
  const arrive = (perSecond: number, ms: number) => {
    for (let i = 0; i < ms; i++) c.observeArrival(perSecond / 1000, now++);
  };
  arrive(1000, 1000);
  t.equal(c.decide(empty, now).rate, 1, 'steady at load 0.56');
  const seen = new Set<number>();
  for (let k = 0; k < 3; k++) {
    arrive(1700, 400); // over the bound (load 0.96), within capacity, shorter than downHoldMs
    seen.add(c.decide(empty, now).rate);
    arrive(1000, 600);
    seen.add(c.decide(empty, now).rate);
  }
  t.same([...seen], [1], 'bursts of 400 ms over the bound never lower the rate');
  // The queue is late: 4 full batches wait and the newest has waited 30 ms (4 x 18 + 30 > 40).
  arrive(2000, 50);
  const d = c.decide({ queuedInputs: 128, batchInputs: 32, oldestWaitMs: 40, newestWaitMs: 30 }, now);
  t.ok(d.rate < 1 && (d.reason === 'down' || d.reason === 'floor'), `a late queue lowers the rate without waiting (${d.reason}, ${d.rate})`);
});
