// Rate schedules for training: each yields the rates of the next batch, widest
// first (so the widest pass can teach the others in in-place distillation).
// Gradients of all passes in a batch are summed before one optimizer step.
import { Generator, type GeneratorState } from '../random.js';
import { checkRate } from '../nn/width.js';

export type ScheduleName = 'random' | 'random_min_max' | 'round_robin' | 'uniform';

export interface RateSchedule {
  readonly name: ScheduleName;
  /** The rates this schedule draws from (widest first). */
  readonly rates: readonly number[];
  /** The rates of the next batch, widest first. */
  next(): number[];
  stateDict(): { generator: GeneratorState };
  loadStateDict(state: { generator: GeneratorState }): void;
}

export interface ScheduleOptions {
  /** Random rates per batch (besides the widest and narrowest for random_min_max and uniform). Default 1. */
  k?: number;
  /** Sampling weights for `random`, one per rate. */
  probabilities?: number[];
  seed?: number;
  generator?: Generator;
}

function checkRates(op: string, rates: unknown): number[] {
  if (!Array.isArray(rates) || rates.length === 0) throw new RangeError(`${op}: rates must be a non-empty array of slice rates`);
  const out = [...new Set(rates.map((r) => checkRate(op, r)))];
  return out.sort((a, b) => b - a);
}

/** Draws `k` distinct indices from `weights` without replacement. */
function drawDistinct(gen: Generator, weights: number[], k: number): number[] {
  const w = [...weights];
  const picked: number[] = [];
  for (let n = 0; n < k; n++) {
    const total = w.reduce((a, b) => a + b, 0);
    if (total <= 0) break;
    let u = gen.uniform() * total;
    let i = 0;
    while (i < w.length - 1 && (u >= w[i] || w[i] === 0)) {
      u -= w[i];
      i++;
    }
    picked.push(i);
    w[i] = 0;
  }
  return picked;
}

export function rateSchedule(name: ScheduleName, rates: readonly number[], options: ScheduleOptions = {}): RateSchedule {
  const op = 'rateSchedule';
  const sorted = checkRates(op, rates);
  const k = options.k ?? 1;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`${op}: k must be a non-negative integer, got ${String(k)}`);
  const gen = options.generator ?? new Generator(options.seed ?? Generator.freshSeed());
  const widest = sorted[0];
  const narrowest = sorted[sorted.length - 1];
  let draw: () => number[];
  switch (name) {
    case 'random': {
      const probs = options.probabilities ?? sorted.map(() => 1);
      if (probs.length !== sorted.length || probs.some((p) => typeof p !== 'number' || !(p >= 0 && p < Infinity)) || probs.every((p) => p === 0)) {
        throw new RangeError(`${op}: probabilities must hold ${sorted.length} finite non-negative weights, not all zero`);
      }
      // Probabilities are given in the caller's rate order; map them onto the sorted rates.
      const byRate = new Map((rates as number[]).map((r, i) => [r, probs[i]]));
      const weights = sorted.map((r) => byRate.get(r) ?? 0);
      draw = () => drawDistinct(gen, weights, Math.max(1, k)).map((i) => sorted[i]);
      break;
    }
    case 'random_min_max': {
      const middle = sorted.slice(1, -1);
      draw = () => {
        const picked = drawDistinct(gen, middle.map(() => 1), Math.min(k, middle.length)).map((i) => middle[i]);
        return sorted.length === 1 ? [widest] : [widest, ...picked, narrowest];
      };
      break;
    }
    case 'round_robin':
      draw = () => [...sorted];
      break;
    case 'uniform':
      draw = () => {
        const picked: number[] = [];
        for (let i = 0; i < k; i++) picked.push(narrowest + (widest - narrowest) * gen.uniform());
        return widest === narrowest ? [widest] : [widest, ...picked, narrowest];
      };
      break;
    default:
      throw new RangeError(`${op}: unknown schedule ${String(name)}; use random, random_min_max, round_robin or uniform`);
  }
  return {
    name,
    rates: sorted,
    next: () => draw().sort((a, b) => b - a),
    stateDict: () => ({ generator: gen.getState() }),
    loadStateDict: (state) => gen.setState(state.generator),
  };
}
