// Normalization layers whose behaviour does not depend on the active width:
// GroupNorm keeps its channels per group constant as the width shrinks, and
// BatchNorm2d can keep private statistics per trained rate (switchable BN).
import { batchNorm } from '../ops/batch-norm.js';
import { groupNorm } from '../ops/group-norm.js';
import { checkEps } from '../ops/norm-args.js';
import { ones, Tensor, zeros } from '../tensor.js';
import { Module } from './module.js';
import { reportUse, tracing } from './trace.js';

/** Group count at `channels` active channels for a norm of `full` channels in `groups` groups. */
export function scaledNormGroups(full: number, groups: number, channels: number): number {
  const perGroup = full / groups;
  if (Number.isInteger(perGroup) && channels % perGroup === 0) return Math.max(1, channels / perGroup);
  // Channels per group cannot stay exact: use the divisor of `channels` nearest that ratio.
  const target = Math.max(1, Math.round(channels / perGroup));
  for (let d = 0; d <= channels; d++) {
    for (const g of [target - d, target + d]) if (g >= 1 && g <= channels && channels % g === 0) return g;
  }
  return 1;
}

export interface GroupNormLayerOptions {
  eps?: number;
  affine?: boolean;
}

export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  private epsValue = 1e-5;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(numGroups: number, numChannels: number, options: GroupNormLayerOptions = {}) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || !Number.isInteger(numChannels) || numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: numGroups ${String(numGroups)} must divide numChannels ${String(numChannels)}`);
    }
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones([numChannels])) : null;
    this.bias = affine ? this.registerParameter('bias', zeros([numChannels])) : null;
  }

  /** Added to the variance; setting it moves the model's structureVersion (plans are rebuilt). */
  get eps(): number {
    return this.epsValue;
  }

  set eps(value: number) {
    this.epsValue = checkEps('GroupNorm', value);
    this.markStructureChanged();
  }

  forward(x: Tensor): Tensor {
    return this.normalize(x, false);
  }

  /** relu(forward(x)) in one pass. */
  forwardRelu(x: Tensor): Tensor {
    return this.normalize(x, true);
  }

  private normalize(x: Tensor, relu: boolean): Tensor {
    const channels = x.rank >= 2 ? x.shape[1] : 0;
    const groups = scaledNormGroups(this.numChannels, this.numGroups, channels);
    if (tracing()) reportUse({ module: this, macs: 0, params: this.weight ? 2 * channels : 0, widths: { channels, groups } });
    return groupNorm(x, groups, this.weight, this.bias, { eps: this.eps, relu });
  }

  /** A GroupNorm of the channels and groups this one reported in a trace, with their affine parameters. */
  override compact(widths?: Readonly<Record<string, number>>): GroupNorm {
    const channels = widths?.channels ?? this.numChannels;
    const copy = new GroupNorm(widths?.groups ?? this.numGroups, channels, { eps: this.eps, affine: this.weight !== null });
    copy.training = this.training;
    if (this.weight !== null && copy.weight !== null) copy.weight.data.set(this.weight.data.subarray(0, channels));
    if (this.bias !== null && copy.bias !== null) copy.bias.data.set(this.bias.data.subarray(0, channels));
    return copy;
  }
}

export interface BatchNormLayerOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
}

function rateName(rate: number): string {
  return String(rate).replace('.', '_');
}

/** One set of BatchNorm statistics (and affine parameters), kept per trained rate by a switchable BatchNorm2d. */
export class BatchNormState extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;

  constructor(channels: number, affine: boolean) {
    super();
    this.weight = affine ? this.registerParameter('weight', ones([channels])) : null;
    this.bias = affine ? this.registerParameter('bias', zeros([channels])) : null;
    this.runningMean = this.registerBuffer('running_mean', zeros([channels]));
    this.runningVar = this.registerBuffer('running_var', ones([channels]));
  }

  forward(x: Tensor): Tensor {
    return x;
  }

  /** Copies the leading channels of `other` (all of them when both have as many). */
  copyFrom(other: BatchNormState): void {
    const channels = this.runningMean.size;
    if (this.weight && other.weight) this.weight.data.set(other.weight.data.subarray(0, channels));
    if (this.bias && other.bias) this.bias.data.set(other.bias.data.subarray(0, channels));
    this.runningMean.data.set(other.runningMean.data.subarray(0, channels));
    this.runningVar.data.set(other.runningVar.data.subarray(0, channels));
  }

  override compact(): BatchNormState {
    const copy = new BatchNormState(this.runningMean.size, this.weight !== null);
    copy.training = this.training;
    copy.copyFrom(this);
    return copy;
  }
}

/**
 * BatchNorm over channels. With a single set of statistics it behaves like
 * PyTorch's BatchNorm2d on the active prefix. After setTrainedRates() it keeps
 * a private set per trained rate (switchable BN); an untrained rate uses the
 * nearest trained rate above it until calibrated.
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number;
  private epsValue = 1e-5;
  private momentumValue = 0.1;
  private readonly affine: boolean;
  private rates: number[] = [1];
  private states: BatchNormState[];
  /** Rates calibrated after training (own statistics though not trained). */
  private calibrated = new Map<number, BatchNormState>();

  constructor(numFeatures: number, options: BatchNormLayerOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1) {
      throw new RangeError(`BatchNorm2d: numFeatures must be a positive integer, got ${String(numFeatures)}`);
    }
    this.numFeatures = numFeatures;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.affine = options.affine ?? true;
    this.states = [new BatchNormState(numFeatures, this.affine)];
    this.replaceChildren();
  }

  /** Added to the variance; setting it moves the model's structureVersion (plans are rebuilt). */
  get eps(): number {
    return this.epsValue;
  }

  set eps(value: number) {
    this.epsValue = checkEps('BatchNorm2d', value);
    this.markStructureChanged();
  }

  /** How far one training batch moves the running statistics; setting it moves structureVersion. */
  get momentum(): number {
    return this.momentumValue;
  }

  set momentum(value: number) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new RangeError(`BatchNorm2d: momentum must be a number in [0, 1], got ${String(value)}`);
    }
    this.momentumValue = value;
    this.markStructureChanged();
  }

  /** The trained rates, widest first; one set of statistics each. */
  get statRates(): readonly number[] {
    return this.rates;
  }

  /** Gives every rate in `rates` its own statistics and affine parameters (copied from the current widest). */
  setTrainedRates(rates: readonly number[]): void {
    const sorted = [...new Set(rates)].sort((a, b) => b - a);
    if (sorted.length === 0) throw new RangeError('BatchNorm2d.setTrainedRates: need at least one rate');
    const template = this.states[0];
    const next = sorted.map((r) => {
      const i = this.rates.indexOf(r);
      if (i >= 0) return this.states[i];
      const s = new BatchNormState(this.numFeatures, this.affine);
      s.copyFrom(template);
      return s;
    });
    this.rates = sorted;
    this.states = next;
    this.replaceChildren();
  }

  // The widest rate's tensors are this layer's own (PyTorch's names: weight,
  // bias, running_mean, running_var); other rates are children named by rate.
  private replaceChildren(): void {
    this.clearRegistrations();
    const widest = this.states[0];
    if (widest.weight) this.registerParameter('weight', widest.weight);
    if (widest.bias) this.registerParameter('bias', widest.bias);
    this.registerBuffer('running_mean', widest.runningMean);
    this.registerBuffer('running_var', widest.runningVar);
    this.states.slice(1).forEach((s, i) => this.registerModule(`rate_${rateName(this.rates[i + 1])}`, s));
    for (const [r, s] of this.calibrated) this.registerModule(`calibrated_${rateName(r)}`, s);
  }

  /** Rates that have calibrated statistics of their own. */
  get calibratedRates(): number[] {
    return [...this.calibrated.keys()];
  }

  /** The statistics the current rate uses. */
  stateForRate(rate: number): BatchNormState {
    const exact = this.rates.indexOf(rate);
    if (exact >= 0) return this.states[exact];
    const cal = this.calibrated.get(rate);
    if (cal) return cal;
    // Nearest trained rate above (rates are sorted widest first).
    for (let i = this.rates.length - 1; i >= 0; i--) if (this.rates[i] >= rate) return this.states[i];
    return this.states[0];
  }

  /** @internal Prepares a calibration set for `rate`, starting from reset statistics. */
  beginCalibration(rate: number): BatchNormState {
    const source = this.stateForRate(rate);
    const exact = this.rates.indexOf(rate);
    const s = exact >= 0 ? this.states[exact] : new BatchNormState(this.numFeatures, this.affine);
    if (exact < 0) {
      s.copyFrom(source);
      this.calibrated.set(rate, s);
      this.replaceChildren();
    }
    s.runningMean.data.fill(0);
    s.runningVar.data.fill(1);
    return s;
  }

  forward(x: Tensor): Tensor {
    const s = this.stateForRate(this.sliceRate);
    const channels = x.rank >= 2 ? x.shape[1] : 0;
    if (tracing()) reportUse({ module: this, macs: 0, params: s.weight ? 2 * channels : 0, widths: { channels } });
    return batchNorm(x, s.runningMean, s.runningVar, s.weight, s.bias, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }

  /**
   * A BatchNorm2d of the channels this one reported in a trace with one set of
   * statistics: those of the current rate (which slice() sets while copying).
   */
  override compact(widths?: Readonly<Record<string, number>>): BatchNorm2d {
    const channels = widths?.channels ?? this.numFeatures;
    const state = this.stateForRate(this.sliceRate);
    const copy = new BatchNorm2d(channels, { eps: this.eps, momentum: this.momentum, affine: state.weight !== null });
    copy.training = this.training;
    copy.states[0].copyFrom(state);
    return copy;
  }
}
