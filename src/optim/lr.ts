// Learning-rate schedules. Each maps a (possibly fractional) epoch to a factor
// of the optimizer's base rate; step() advances one epoch like PyTorch's
// schedulers, setEpoch(t) lets a training loop update every batch.
import { checkHyper, type Optimizer } from './optimizer.js';

export interface LrScheduleState {
  epoch: number;
  baseLr: number;
}

export abstract class LrSchedule {
  readonly optimizer: Optimizer;
  baseLr: number;
  epoch = 0;

  constructor(optimizer: Optimizer) {
    this.optimizer = optimizer;
    this.baseLr = optimizer.lr;
  }

  /** Multiplier of the base rate at epoch t. */
  abstract factor(t: number): number;

  /** The learning rate at epoch t. */
  lrAt(t: number): number {
    return this.baseLr * this.factor(t);
  }

  setEpoch(t: number): void {
    this.epoch = t;
    this.optimizer.lr = this.lrAt(t);
  }

  step(): void {
    this.setEpoch(Math.floor(this.epoch) + 1);
  }

  stateDict(): LrScheduleState {
    return { epoch: this.epoch, baseLr: this.baseLr };
  }

  loadStateDict(state: LrScheduleState): void {
    this.baseLr = checkHyper('LrSchedule.loadStateDict', 'baseLr', state.baseLr, 0, Infinity);
    this.setEpoch(checkHyper('LrSchedule.loadStateDict', 'epoch', state.epoch, 0, Infinity));
  }
}

/** lr x gamma at each milestone epoch passed. */
export class MultiStepLR extends LrSchedule {
  readonly milestones: number[];
  readonly gamma: number;

  constructor(optimizer: Optimizer, options: { milestones: number[]; gamma?: number }) {
    super(optimizer);
    if (!Array.isArray(options?.milestones) || options.milestones.some((m) => !Number.isInteger(m) || m < 0)) {
      throw new RangeError('MultiStepLR: milestones must be an array of non-negative integer epochs');
    }
    this.milestones = [...options.milestones].sort((a, b) => a - b);
    this.gamma = checkHyper('MultiStepLR', 'gamma', options.gamma ?? 0.1, 0, Infinity);
    this.setEpoch(0); // like PyTorch, the epoch-0 rate applies from construction
  }

  factor(t: number): number {
    const passed = this.milestones.filter((m) => Math.floor(t + 1e-9) >= m).length;
    return this.gamma ** passed;
  }
}

/** Cosine annealing from the base rate to minLr over totalEpochs. */
export class CosineLR extends LrSchedule {
  readonly totalEpochs: number;
  readonly minLr: number;

  constructor(optimizer: Optimizer, options: { totalEpochs: number; minLr?: number }) {
    super(optimizer);
    this.totalEpochs = checkHyper('CosineLR', 'totalEpochs', options?.totalEpochs, 1e-9, Infinity);
    this.minLr = checkHyper('CosineLR', 'minLr', options.minLr ?? 0, 0, Infinity);
    this.setEpoch(0);
  }

  factor(t: number): number {
    const p = Math.min(1, Math.max(0, t / this.totalEpochs));
    const minFactor = this.baseLr > 0 ? this.minLr / this.baseLr : 0;
    return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * p));
  }
}

/** Linear warm-up over warmupEpochs, then another schedule (or a constant rate). */
export class WarmupLR extends LrSchedule {
  readonly warmupEpochs: number;
  readonly after: LrSchedule | null;

  constructor(optimizer: Optimizer, options: { warmupEpochs: number; after?: LrSchedule }) {
    super(optimizer);
    this.warmupEpochs = checkHyper('WarmupLR', 'warmupEpochs', options?.warmupEpochs, 0, Infinity);
    this.after = options.after ?? null;
    if (this.after) this.baseLr = this.after.baseLr;
    this.setEpoch(0); // the first epoch already warms up
  }

  factor(t: number): number {
    const ramp = this.warmupEpochs > 0 ? Math.min(1, (t + 1 / 64) / this.warmupEpochs) : 1;
    return ramp * (this.after ? this.after.factor(t) : 1);
  }
}
