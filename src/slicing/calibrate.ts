// Switchable batch norm: private statistics per trained rate, and
// re-estimation of a rate's running statistics from a few training batches
// (the statistics of a narrower network differ from the full one's).
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/norm.js';
import { noGrad, type Tensor } from '../tensor.js';
import { checkRate } from '../nn/width.js';

/** Gives every BatchNorm2d in the model private statistics for each of `rates`. */
export function useSwitchableBatchNorm(model: Module, rates: readonly number[]): void {
  for (const m of model.modules()) if (m instanceof BatchNorm2d) m.setTrainedRates(rates);
}

export interface CalibrateOptions {
  /** Batches to read per rate (default 20). */
  batches?: number;
}

/**
 * Re-estimates the running statistics of every BatchNorm2d at each rate from
 * `data` (batches of {x}): statistics are reset, then averaged over the
 * batches (a cumulative average, not an exponential one). Untrained rates get
 * their own calibrated statistics.
 */
export async function calibrateBatchNorm(
  model: Module,
  data: Iterable<{ x: Tensor }> | AsyncIterable<{ x: Tensor }>,
  rates: readonly number[],
  options: CalibrateOptions = {},
): Promise<void> {
  const limit = options.batches ?? 20;
  const norms = model.modules().filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
  if (norms.length === 0) return;
  const previousRate = model.sliceRate;
  const flags = model.modules().map((m) => m.training);
  const momenta = norms.map((n) => n.momentum);
  try {
    for (const rate of rates) {
      checkRate('calibrateBatchNorm', rate);
      model.setSliceRate(rate);
      model.train();
      norms.forEach((n) => n.beginCalibration(rate));
      let seen = 0;
      for await (const batch of data as AsyncIterable<{ x: Tensor }>) {
        if (seen >= limit) break;
        seen++;
        // momentum 1/seen turns the running update into a cumulative mean.
        norms.forEach((n) => (n.momentum = 1 / seen));
        noGrad(() => model.forward(batch.x));
      }
      if (seen === 0) throw new RangeError('calibrateBatchNorm: data yielded no batches');
    }
  } finally {
    norms.forEach((n, i) => (n.momentum = momenta[i]));
    model.setSliceRate(previousRate);
    model.modules().forEach((m, i) => (m.training = flags[i]));
  }
}
