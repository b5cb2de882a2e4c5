// Reading a latency profile: the measured milliseconds of one forward pass per
// (batch size, rate), with batch sizes between or beyond the measured ones
// estimated from their neighbours.
import type { LatencyProfile } from '../slicing/select.js';

/**
 * Estimated milliseconds of one forward pass of `batchSize` inputs at `rate`,
 * or undefined when the profile has no row for that rate. Between two measured
 * batch sizes the latency is interpolated linearly; below the smallest it is
 * taken as the smallest's (a pass has a fixed cost); above the largest it grows
 * in proportion to the batch (work is linear in the batch once the kernels are
 * saturated).
 */
export function estimateLatencyMs(profile: LatencyProfile | undefined, rate: number, batchSize: number): number | undefined {
  if (profile === undefined) return undefined;
  const sizes = Object.keys(profile.byBatch)
    .map(Number)
    .filter((b) => profile.byBatch[b]?.[rate] !== undefined)
    .sort((a, b) => a - b);
  if (sizes.length === 0) return undefined;
  const at = (b: number) => profile.byBatch[b][rate];
  if (batchSize <= sizes[0]) return at(sizes[0]);
  const last = sizes[sizes.length - 1];
  if (batchSize >= last) return (at(last) * batchSize) / last;
  let hi = 1;
  while (sizes[hi] < batchSize) hi++;
  const b0 = sizes[hi - 1];
  const b1 = sizes[hi];
  return at(b0) + ((at(b1) - at(b0)) * (batchSize - b0)) / (b1 - b0);
}

/**
 * The largest of `rates` whose estimated latency for `batchSize` fits
 * `budgetMs`; the narrowest rate when none fits. Throws when the profile has
 * no row for any rate.
 */
export function rateForBudget(op: string, profile: LatencyProfile | undefined, rates: readonly number[], budgetMs: number, batchSize: number): number {
  if (typeof budgetMs !== 'number' || !(budgetMs >= 0)) throw new RangeError(`${op}: budgetMs must be a non-negative number, got ${String(budgetMs)}`);
  const sorted = [...rates].sort((a, b) => b - a);
  const known = sorted.filter((r) => estimateLatencyMs(profile, r, batchSize) !== undefined);
  if (known.length === 0) {
    throw new RangeError(`${op}: no latency profile to choose a rate for budgetMs; create the predictor with {profile: {batchSizes, inputShape}}`);
  }
  return known.find((r) => estimateLatencyMs(profile, r, batchSize)! <= budgetMs) ?? known[known.length - 1];
}

/**
 * A copy of a measured profile made consistent with what is physically true:
 * a wider rate is never cheaper than a narrower one at the same batch size, and
 * a larger batch never cheaper than a smaller one at the same rate. Timing
 * noise on a busy machine can measure either the other way round, which would
 * let the controller pick a wider rate for a tighter budget.
 */
export function monotoneProfile(profile: LatencyProfile): LatencyProfile {
  const byBatch: Record<number, Record<number, number>> = {};
  const sizes = Object.keys(profile.byBatch).map(Number).sort((a, b) => a - b);
  for (const b of sizes) {
    byBatch[b] = { ...profile.byBatch[b] };
    const rates = Object.keys(byBatch[b]).map(Number).sort((x, y) => x - y);
    for (let i = 1; i < rates.length; i++) byBatch[b][rates[i]] = Math.max(byBatch[b][rates[i]], byBatch[b][rates[i - 1]]);
  }
  for (let i = 1; i < sizes.length; i++) {
    const prev = byBatch[sizes[i - 1]];
    const row = byBatch[sizes[i]];
    for (const r of Object.keys(row).map(Number)) if (prev[r] !== undefined) row[r] = Math.max(row[r], prev[r]);
  }
  return { byBatch };
}

/** Batch sizes worth profiling for batches of up to `maxBatch`: powers of two and maxBatch itself. */
export function profileBatchSizes(maxBatch: number): number[] {
  const sizes: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) sizes.push(b);
  sizes.push(maxBatch);
  return sizes;
}
