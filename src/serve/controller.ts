// The rate controller: before each batch it picks the slice rate from the
// queue and the arrival rate, so that requests finish within the latency SLO
// at the widest rate the load affords.
//
// The rule, for each trained rate r from the widest down:
//   latency(r, b)  the profiled ms of a batch of b inputs at r, scaled by how
//                  much slower r's recent passes ran than profiled (slowdown(r),
//                  1 until r has run; per rate, because a fixed per-pass
//                  overhead weighs far more on a narrow pass than a wide one)
//   drain(r)       ms until the newest queued request is answered: the Q queued
//                  inputs go out in ceil(Q / maxBatch) batches over W workers,
//                  that is ceil(batches / W) rounds of latency(r, min(Q, maxBatch))
//   predicted(r)   max(newest wait + drain(r), oldest wait + latency(r, first batch))
//   load(r)        arrival rate (EWMA, inputs/ms) x latency(r, maxBatch) /
//                  (maxBatch x W): the fraction of capacity r needs at full batches
//   population(r)  ms to answer every outstanding input (P, the recent peak of
//                  queued + running) at r, plus one small pass in progress:
//                  rounds(P) x latency(r, min(P, maxBatch)) + latency(r, 1)
//   burst(r)       load(r) with the arrival rate of the last ~burstTimeConstantMs
//   r fits         predicted(r) <= headroom x SLO, and load(r) <= maxLoad or,
//                  when the load is closed, population(r) <= headroom x SLO; and r is
//                  not overwhelmed: open arrivals in excess of r's capacity by a round
//                  of full batches over the burst window, with predicted(r) +
//                  (burst(r) - 1) x downHoldMs (the newest wait after such arrivals for
//                  the down hold) over headroom x SLO
// Why the population: the load term guards against arrivals that do not wait
// for answers (open loop), which grow the queue without bound once they pass
// capacity. Clients that each wait for their answer (closed loop) arrive as
// fast as they are served, so at any rate the measured load is near 1, and it
// measured at a narrow rate says nothing about a wider one; their queue can
// never exceed their number, so what decides is the latency of serving them
// all. The load counts as closed when P outstanding inputs, cycling at the
// speed of the narrowest rate chosen within four arrival time constants (the
// arrival rate still remembers it), could have produced the arrival rate. An
// open load at steady state looks the same, so a rate entered on the
// population alone is a probe: left again within probeMs, its hold doubles
// (up to maxUpHoldMs), until the load check alone admits it or a probe holds.
// Why the burst: the arrival EWMA takes its time constant to see a spike, and
// meanwhile rate 1's full batches fill the queue (at 5x capacity, 300 inputs a
// worker during one ResNet-56 batch); the short estimate sees it within tens of
// milliseconds, and only a gross excess counts, so Poisson noise in it does not.
// It takes the largest rate that fits (the narrowest when none does), with
// hysteresis: going down happens at once, going up one trained rate at a time,
// and only after the next rate has fitted with stricter margins (upHeadroom,
// upMaxLoad) for upHoldMs without a break.

export interface ControllerOptions {
  /** Latency objective for a request, in ms (arrival to answer). */
  sloMs: number;
  /** Candidate rates (the trained ones). */
  rates: readonly number[];
  /** Profiled ms of one pass of `batchSize` inputs at `rate`. */
  latencyMs: (rate: number, batchSize: number) => number;
  maxBatch: number;
  /** Predictor workers serving batches in parallel (default 1). */
  workers?: number;
  /** Fraction of the SLO a prediction may use (default 0.8; the rest absorbs noise). */
  headroom?: number;
  /** Largest fraction of capacity a rate may need to be chosen (default 0.85). */
  maxLoad?: number;
  /**
   * Stricter margins for raising the rate (defaults 0.5 and 0.7). At a calm load
   * of half the rate-1 capacity, 0.6 kept a busy machine one rate down: its
   * passes ran ~1.2x slower than profiled, so rate 1 needed 0.6 of capacity.
   */
  upHeadroom?: number;
  upMaxLoad?: number;
  /** How long the next wider rate must keep fitting before the rate goes up (default 1000 ms). */
  upHoldMs?: number;
  /** Longest hold of a rate whose population-only probes keep failing (default 16 x upHoldMs). */
  maxUpHoldMs?: number;
  /** A rate entered on the population alone and left within this time was a failed probe (default 5 x upHoldMs). */
  probeMs?: number;
  /** Time constant of the arrival-rate EWMA (default 500 ms). */
  arrivalTimeConstantMs?: number;
  /**
   * Time constant of a second, faster arrival-rate EWMA (default 100 ms): a rate whose capacity
   * it exceeds outright (an open burst; see overwhelmed) is left at once.
   */
  burstTimeConstantMs?: number;
  /** Time constant (in batches at that rate) of the observed/profiled latency ratio (default 20). */
  slowdownBatches?: number;
  /**
   * How long the load alone (the queue still fits) must stay over maxLoad before the rate goes
   * down (default 500 ms). The arrival EWMA and the observed slowdown swing from second to
   * second under a steady Poisson load near the bound; a late queue still lowers the rate at once.
   */
  downHoldMs?: number;
}

export interface QueueState {
  /** Inputs waiting, including those about to form the batch. */
  queuedInputs: number;
  /** Inputs in the batch about to run. */
  batchInputs: number;
  /** How long the oldest and the newest queued request have waited, ms. */
  oldestWaitMs: number;
  newestWaitMs: number;
  /** Inputs in passes running now, on any worker (default 0). */
  inFlightInputs?: number;
}

export interface RateEstimate {
  rate: number;
  predictedMs: number;
  load: number;
  /** ms to answer every outstanding input at this rate (the bound that matters for a closed load). */
  populationMs: number;
  /** Whether the arrivals look closed (see the top of this file); then populationMs may stand in for the load. */
  closed: boolean;
  /** Fraction of capacity the arrivals of the last ~burstTimeConstantMs need at this rate. */
  burstLoad: number;
  /**
   * Whether recent arrivals exceed all this rate can serve (burstLoad over 1) by at least a
   * round of full batches and by enough to make the queue late within downHoldMs, and could not
   * come from the outstanding inputs alone: an open burst. Such a rate does not fit, and the
   * rate leaves it without a hold.
   */
  overwhelmed: boolean;
  fits: boolean;
}

export interface Decision {
  rate: number;
  /** Why: 'fits', 'down', 'up', 'hold' (a wider rate fits but not yet long enough), 'floor' (nothing fits). */
  reason: 'fits' | 'down' | 'up' | 'hold' | 'floor';
  estimates: RateEstimate[];
}

/** How far the arrival rate may exceed what the outstanding inputs could produce and still count as closed. */
const CLOSED_SLACK = 1.25;

export class RateController {
  readonly sloMs: number;
  readonly rates: number[];
  private readonly opts: Required<Omit<ControllerOptions, 'sloMs' | 'rates' | 'latencyMs'>>;
  private readonly latencyMs: (rate: number, batchSize: number) => number;
  private current: number;
  private upSince: number | null = null;
  /** Since when the current rate has failed on its load alone (its queue prediction fitting). */
  private overSince: number | null = null;
  private arrivals = 0; // exponentially decayed count of arrived inputs
  private burst = 0; // the same with burstTimeConstantMs
  private lastArrival = 0;
  private population = 0; // recent peak of outstanding inputs, decaying
  private lastPopulation = 0;
  /** The rate entered last on the population bound alone, and when. */
  private probe: { rate: number; at: number } | null = null;
  private readonly probeHolds = new Map<number, number>();
  private readonly lastChosen = new Map<number, number>(); // rate -> when it was last chosen
  private readonly slowdowns = new Map<number, number>();

  constructor(options: ControllerOptions) {
    const op = 'RateController';
    if (!(options.sloMs > 0) || !Number.isFinite(options.sloMs)) throw new RangeError(`${op}: sloMs must be a positive number, got ${String(options.sloMs)}`);
    if (!Array.isArray(options.rates) || options.rates.length === 0) throw new RangeError(`${op}: rates must be a non-empty array`);
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`${op}: maxBatch must be a positive integer, got ${String(options.maxBatch)}`);
    if (options.workers !== undefined && !(Number.isInteger(options.workers) && options.workers >= 1)) {
      throw new RangeError(`${op}: workers must be a positive integer, got ${String(options.workers)}`);
    }
    for (const name of ['headroom', 'maxLoad', 'upHeadroom', 'upMaxLoad'] as const) {
      const v = options[name];
      if (v !== undefined && !(typeof v === 'number' && v > 0 && v <= 1)) throw new RangeError(`${op}: ${name} must be a fraction in (0, 1], got ${String(v)}`);
    }
    for (const name of ['upHoldMs', 'maxUpHoldMs', 'probeMs', 'arrivalTimeConstantMs', 'burstTimeConstantMs', 'slowdownBatches', 'downHoldMs'] as const) {
      const v = options[name];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new RangeError(`${op}: ${name} must be a positive number, got ${String(v)}`);
    }
    this.sloMs = options.sloMs;
    this.rates = [...new Set(options.rates)].sort((a, b) => b - a);
    this.latencyMs = options.latencyMs;
    this.opts = {
      maxBatch: options.maxBatch,
      workers: options.workers ?? 1,
      headroom: options.headroom ?? 0.8,
      maxLoad: options.maxLoad ?? 0.85,
      upHeadroom: options.upHeadroom ?? 0.5,
      upMaxLoad: options.upMaxLoad ?? 0.7,
      upHoldMs: options.upHoldMs ?? 1000,
      maxUpHoldMs: options.maxUpHoldMs ?? 16 * (options.upHoldMs ?? 1000),
      probeMs: options.probeMs ?? 5 * (options.upHoldMs ?? 1000),
      arrivalTimeConstantMs: options.arrivalTimeConstantMs ?? 500,
      burstTimeConstantMs: options.burstTimeConstantMs ?? 100,
      slowdownBatches: options.slowdownBatches ?? 20,
      downHoldMs: options.downHoldMs ?? 500,
    };
    this.current = this.rates[0];
  }

  /** The rate chosen last (the widest before any decision). */
  get rate(): number {
    return this.current;
  }

  /** Observed over profiled batch latency at the current rate (EWMA, clamped to [0.5, 20]; 1 before any batch). */
  get slowdown(): number {
    return this.slowdownAt(this.current);
  }

  /** Observed over profiled batch latency at `rate`. */
  slowdownAt(rate: number): number {
    return this.slowdowns.get(rate) ?? 1;
  }

  /**
   * Records `inputs` arriving at time `now` (ms), with the inputs outstanding
   * (queued or running, these included) if known: a client that waits for its
   * answer is seen here, while the batch it will join is still running.
   */
  observeArrival(inputs: number, now: number, outstanding?: number): void {
    this.burst = this.decayed(now, this.burst, this.opts.burstTimeConstantMs) + inputs;
    this.arrivals = this.decayed(now) + inputs;
    this.lastArrival = now;
    if (outstanding !== undefined) this.observePopulation(outstanding, now);
  }

  /** Arrival rate in inputs per second (EWMA with the configured time constant). */
  arrivalRate(now: number): number {
    return (this.decayed(now) / this.opts.arrivalTimeConstantMs) * 1000;
  }

  /** Arrival rate in inputs per second over the last ~burstTimeConstantMs. */
  burstRate(now: number): number {
    return (this.decayed(now, this.burst, this.opts.burstTimeConstantMs) / this.opts.burstTimeConstantMs) * 1000;
  }

  /** Records a finished batch, so estimates follow a machine that got slower (or faster) than at start-up. */
  observeBatch(rate: number, batchSize: number, ms: number): void {
    const profiled = this.latencyMs(rate, batchSize);
    if (!(profiled > 0) || !(ms >= 0)) return;
    const ratio = Math.min(20, Math.max(0.5, ms / profiled));
    const alpha = 1 / this.opts.slowdownBatches;
    const old = this.slowdownAt(rate);
    this.slowdowns.set(rate, old + alpha * (ratio - old));
  }

  /** The prediction for one rate given the queue. */
  estimate(rate: number, q: QueueState, now: number, headroom = this.opts.headroom, maxLoad = this.opts.maxLoad): RateEstimate {
    const { maxBatch, workers } = this.opts;
    const slowdown = this.slowdownAt(rate);
    const lat = (b: number) => this.latencyMs(rate, Math.max(1, b)) * slowdown;
    const rounds = (n: number) => Math.ceil(Math.ceil(n / maxBatch) / workers);
    const queued = Math.max(q.queuedInputs, q.batchInputs, 1);
    const drain = rounds(queued) * lat(Math.min(queued, maxBatch));
    const predictedMs = Math.max(q.newestWaitMs + drain, q.oldestWaitMs + lat(q.batchInputs));
    const arrivalsPerMs = this.arrivalRate(now) / 1000;
    const load = (arrivalsPerMs * lat(maxBatch)) / (maxBatch * workers);
    const p = Math.max(1, this.populationAt(now));
    const populationMs = rounds(p) * lat(Math.min(p, maxBatch)) + lat(1);
    const closed = this.closedLoad(arrivalsPerMs, now);
    const fitsLoad = load <= maxLoad || (closed && populationMs <= this.opts.headroom * this.sloMs);
    const burstPerMs = this.burstRate(now) / 1000;
    const burstLoad = (burstPerMs * lat(maxBatch)) / (maxBatch * workers);
    // Open arrivals beyond capacity grow the newest request's wait by (burstLoad - 1) ms a ms:
    // overwhelmed when, kept up for downHoldMs, they would make the queue late, and when their
    // excess over the window is at least a full round of batches (a few requests arriving
    // together are a clump the queue term sees, not a rate).
    const excessInputs = (burstLoad - 1) * (this.opts.burstTimeConstantMs / lat(maxBatch)) * maxBatch * workers;
    const overwhelmed =
      excessInputs >= maxBatch * workers && predictedMs + (burstLoad - 1) * this.opts.downHoldMs > this.opts.headroom * this.sloMs && !this.closedLoad(burstPerMs, now);
    return { rate, predictedMs, load, populationMs, closed, burstLoad, overwhelmed, fits: predictedMs <= headroom * this.sloMs && fitsLoad && !overwhelmed };
  }

  /** Chooses the rate of the batch about to run. */
  decide(q: QueueState, now: number): Decision {
    const decision = this.choose(q, now);
    this.lastChosen.set(decision.rate, now);
    return decision;
  }

  private choose(q: QueueState, now: number): Decision {
    this.observePopulation(q.queuedInputs + (q.inFlightInputs ?? 0), now);
    const estimates = this.rates.map((r) => this.estimate(r, q, now));
    const best = estimates.find((e) => e.fits)?.rate;
    const floor = this.rates[this.rates.length - 1];
    const here = estimates.find((e) => e.rate === this.current);
    // The hold is for a load near its bound; an open burst beyond all the rate serves grows the
    // queue for as long as it lasts: no hold then.
    if (here === undefined || here.fits || here.overwhelmed || here.predictedMs > this.opts.headroom * this.sloMs) this.overSince = null;
    else if (this.overSince === null) this.overSince = now;
    if ((best === undefined || best < this.current) && this.overSince !== null && now - this.overSince < this.opts.downHoldMs) {
      this.upSince = null;
      return { rate: this.current, reason: 'hold', estimates };
    }
    if (best === undefined || best < this.current) {
      this.overSince = null;
      this.leave(now);
      this.upSince = null;
      this.current = best ?? floor;
      return { rate: this.current, reason: best === undefined ? 'floor' : 'down', estimates };
    }
    if (this.probe !== null && now - this.probe.at >= this.opts.probeMs) {
      this.probeHolds.delete(this.probe.rate); // the probe held: the rate suits this load
      this.probe = null;
    }
    const i = this.rates.indexOf(this.current);
    if (i <= 0) return { rate: this.current, reason: 'fits', estimates };
    const next = this.rates[i - 1];
    const strict = this.estimate(next, q, now, this.opts.upHeadroom, this.opts.upMaxLoad);
    if (!strict.fits) {
      this.upSince = null;
      return { rate: this.current, reason: 'fits', estimates };
    }
    const onPopulationOnly = strict.load > this.opts.upMaxLoad;
    if (!onPopulationOnly) this.probeHolds.delete(next);
    const hold = onPopulationOnly ? (this.probeHolds.get(next) ?? this.opts.upHoldMs) : this.opts.upHoldMs;
    if (this.upSince === null) this.upSince = now;
    if (now - this.upSince < hold) return { rate: this.current, reason: 'hold', estimates };
    this.current = next;
    this.upSince = now; // the next step up needs its own hold
    this.probe = onPopulationOnly ? { rate: next, at: now } : null;
    return { rate: next, reason: 'up', estimates };
  }

  /** Going down: a rate entered on the population alone and left soon after waits longer next time. */
  private leave(now: number): void {
    const probe = this.probe;
    this.probe = null;
    if (probe === null || probe.rate !== this.current || now - probe.at >= this.opts.probeMs) return;
    const hold = this.probeHolds.get(probe.rate) ?? this.opts.upHoldMs;
    this.probeHolds.set(probe.rate, Math.min(2 * hold, this.opts.maxUpHoldMs));
  }

  /**
   * Whether `arrivalsPerMs` could come from the recent outstanding inputs
   * alone, each sent again as soon as it is answered at the recent speed.
   */
  private closedLoad(arrivalsPerMs: number, now: number): boolean {
    const p = this.populationAt(now);
    if (!(p >= 1) || !(arrivalsPerMs > 0)) return false;
    const { maxBatch, workers, arrivalTimeConstantMs } = this.opts;
    let fastest = this.current;
    for (const [rate, at] of this.lastChosen) if (rate < fastest && now - at <= 4 * arrivalTimeConstantMs) fastest = rate;
    // The fastest they can come back: all at once, shared out over the workers. CLOSED_SLACK absorbs timing noise.
    const cycleMs = this.latencyMs(fastest, Math.min(Math.ceil(p / workers), maxBatch)) * this.slowdownAt(fastest);
    return arrivalsPerMs <= (CLOSED_SLACK * Math.min(p, maxBatch * workers)) / cycleMs;
  }

  private observePopulation(outstanding: number, now: number): void {
    this.population = Math.max(outstanding, this.populationAt(now));
    this.lastPopulation = now;
  }

  private populationAt(now: number): number {
    return this.population * Math.exp(-Math.max(0, now - this.lastPopulation) / this.opts.arrivalTimeConstantMs);
  }

  /** `count` (last updated at lastArrival) decayed to `now` with time constant tauMs. */
  private decayed(now: number, count = this.arrivals, tauMs = this.opts.arrivalTimeConstantMs): number {
    return count * Math.exp(-Math.max(0, now - this.lastArrival) / tauMs);
  }
}
