// Choosing a rate under a budget: the largest trained rate whose cost (from
// the cost table) or measured latency (from the model's latency profile) fits.
import { modelRecord, type LatencyProfile } from '../metadata.js';
import type { Module } from '../nn/module.js';
import { modelInputShape } from '../nn/input-shape.js';
import { randn, zeros } from '../tensor.js';
import { costs } from './compact.js';
import { infer } from './infer.js';
import { checkRate } from '../nn/width.js';

// The type sits with the other things a model carries (metadata.ts); it is
// named here too, where profiles are made.
export type { LatencyProfile } from '../metadata.js';

export const DEFAULT_RATES = [1, 0.75, 0.5, 0.25];

export function trainedRatesOf(model: Module): number[] {
  const rates = modelRecord(model).trainedRates;
  return [...(rates ?? DEFAULT_RATES)].sort((a, b) => b - a);
}

/** Records the rates a model was trained at (used by selectRate and BatchNorm models). */
export function setTrainedRates(model: Module, rates: readonly number[]): void {
  if (!Array.isArray(rates) || rates.length === 0) throw new RangeError('setTrainedRates: rates must be a non-empty array of slice rates');
  modelRecord(model).trainedRates = [...new Set(rates.map((r) => checkRate('setTrainedRates', r)))].sort((a, b) => b - a);
}

export interface ProfileOptions {
  /** Shape of one input without the batch; by default the model's own (`model.inputShape`). */
  inputShape?: readonly number[];
  batchSizes?: number[];
  rates?: number[];
  /** Timed repetitions per (batch, rate); the median is kept. */
  repeats?: number;
}

/** Measures each rate's inference latency (ms.infer, as served) per batch size on this machine and keeps it with the model. */
export function profileLatency(model: Module, options: ProfileOptions = {}): LatencyProfile {
  const inputShape = modelInputShape('profileLatency', model, options.inputShape, 'options.inputShape');
  const rates = options.rates ?? trainedRatesOf(model);
  const batchSizes = options.batchSizes ?? [1];
  const repeats = options.repeats ?? 5;
  // infer sets eval mode and the rate for each pass and restores both.
  const profile: LatencyProfile = { byBatch: {} };
  for (const b of batchSizes) {
    // A language model takes token ids: any valid ones cost the same.
    const x = modelRecord(model).config?.kind === 'transformer' ? zeros([b, ...inputShape]) : randn([b, ...inputShape], { seed: 1 });
    profile.byBatch[b] = {};
    for (const rate of rates) {
      infer(model, x, { rate }); // warm-up (and builds the inference plan)
      const times: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const t0 = performance.now();
        infer(model, x, { rate });
        times.push(performance.now() - t0);
      }
      times.sort((p, q) => p - q);
      profile.byBatch[b][rate] = times[Math.floor(times.length / 2)];
    }
  }
  modelRecord(model).latencyProfile = profile;
  return profile;
}

export type RateBudget = { budgetMacs: number; inputShape?: readonly number[] } | { budgetMs: number; batchSize?: number };

/**
 * The largest trained rate that fits the budget; the narrowest trained rate
 * when none does.
 */
export function selectRate(model: Module, budget: RateBudget): number {
  const op = 'selectRate';
  const rates = trainedRatesOf(model);
  if (budget !== null && typeof budget === 'object' && 'budgetMacs' in budget) {
    if (!(budget.budgetMacs >= 0)) throw new RangeError(`${op}: budgetMacs must be a non-negative number, got ${String(budget.budgetMacs)}`);
    const table = costs(model, budget.inputShape, rates);
    return table.find((row) => row.macs <= budget.budgetMacs)?.rate ?? rates[rates.length - 1];
  }
  if (budget !== null && typeof budget === 'object' && 'budgetMs' in budget) {
    if (!(budget.budgetMs >= 0)) throw new RangeError(`${op}: budgetMs must be a non-negative number, got ${String(budget.budgetMs)}`);
    const profile = modelRecord(model).latencyProfile;
    const batch = budget.batchSize ?? 1;
    const row = profile?.byBatch[batch];
    if (!row) {
      throw new RangeError(`${op}: the model has no latency profile for batch size ${batch}; run profileLatency(model, {inputShape, batchSizes: [${batch}]}) first`);
    }
    return rates.find((r) => row[r] !== undefined && row[r] <= budget.budgetMs) ?? rates[rates.length - 1];
  }
  throw new TypeError(`${op}: budget must be {budgetMacs} or {budgetMs, batchSize?}`);
}
