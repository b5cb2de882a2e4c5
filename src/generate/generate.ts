// Text generation from a sliced transformer: a key/value cache per rate, sampling with
// temperature and top-k, and speculative decoding in which a narrow slice drafts tokens and
// the full model verifies them in one pass.
//
// Each text keeps a key/value cache per rate (decode.ts) and feeds only its new tokens. When a
// sequence would outgrow the model's context, its cache is rebuilt from the last half
// context of tokens (the positions the model learned), as a crop of the text would be.
//
// Speculative decoding (Leviathan et al. 2023, Chen et al. 2023): the draft proposes k tokens
// from its distribution q; one full-rate pass gives the target's p at each of them; token i is
// kept with probability min(1, p/q), and the first refused one is replaced by a draw from
// max(0, p - q) renormalised (all kept: one more from p). The tokens so produced follow the
// full model's distribution exactly; at temperature 0 they are its greedy tokens.
import type { Transformer } from '../models/transformer.js';
import { checkRate } from '../nn/width.js';
import { Generator } from '../random.js';
import type { Tensor } from '../tensor.js';
import { decode, KVCache } from './decode.js';

export interface SamplingOptions {
  /** 0 picks the most likely token (greedy); 1 samples the model's distribution (default 1). */
  temperature?: number;
  /** Sample only among the k most likely tokens (default: all). */
  topK?: number;
}

/** The distribution sampling draws from: softmax(logits / temperature) over the top k (float64). */
export function samplingDistribution(logits: ArrayLike<number>, options: SamplingOptions = {}): Float64Array {
  const temperature = options.temperature ?? 1;
  const V = logits.length;
  const p = new Float64Array(V);
  let best = 0;
  for (let j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
  if (temperature === 0) {
    p[best] = 1;
    return p;
  }
  let cut = -Infinity;
  const k = options.topK ?? V;
  if (k < V) cut = Array.from(logits).sort((a, b) => b - a)[k - 1];
  let sum = 0;
  for (let j = 0; j < V; j++) {
    if (logits[j] < cut) continue;
    p[j] = Math.exp((logits[j] - logits[best]) / temperature);
    sum += p[j];
  }
  for (let j = 0; j < V; j++) p[j] /= sum;
  return p;
}

/** A draw from a distribution (float64 probabilities summing to 1). */
export function drawFrom(p: ArrayLike<number>, gen: Generator): number {
  let u = gen.uniform();
  let last = 0;
  for (let j = 0; j < p.length; j++) {
    if (p[j] <= 0) continue;
    last = j;
    u -= p[j];
    if (u < 0) return j;
  }
  return last; // rounding left a sliver of u
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate (after the prompt). */
  maxTokens: number;
  /** Rate to generate at (default 1). */
  rate?: number;
  seed?: number;
  /** Stops once any of these id sequences has been generated (it is kept in the output). */
  stop?: readonly (readonly number[])[];
  /** Called with each new token id as it is produced. */
  onToken?: (id: number) => void;
}

export interface GenerateStats {
  /** Full-rate passes (target passes, for speculative decoding). */
  passes: number;
  /** Draft tokens proposed and kept (speculative decoding). */
  drafted: number;
  accepted: number;
}

function checkGenerate(op: string, model: Transformer, prompt: ArrayLike<number>, options: GenerateOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const { maxTokens, temperature, topK } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new RangeError(`${op}: maxTokens must be a non-negative integer, got ${String(maxTokens)}`);
  if (temperature !== undefined && !(temperature >= 0 && Number.isFinite(temperature))) throw new RangeError(`${op}: temperature must be a finite number >= 0, got ${String(temperature)}`);
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) throw new RangeError(`${op}: topK must be a positive integer, got ${String(topK)}`);
  const { vocab } = model.config;
  if (prompt.length < 1) throw new RangeError(`${op}: the prompt must hold at least one token`);
  for (let i = 0; i < prompt.length; i++) {
    if (!Number.isInteger(prompt[i]) || prompt[i] < 0 || prompt[i] >= vocab) throw new RangeError(`${op}: prompt[${i}] = ${prompt[i]} is not a token id in [0, ${vocab})`);
  }
}

function stopped(out: readonly number[], stop: readonly (readonly number[])[] | undefined): boolean {
  if (stop === undefined) return false;
  return stop.some((s) => s.length > 0 && s.length <= out.length && s.every((t, i) => out[out.length - s.length + i] === t));
}

/**
 * Where the window of positions the model sees begins when `index` is the last token fed: 0
 * while the text fits the context c, then a multiple of c/2 at most c - 1 before it. A
 * function of the index alone, so plain and speculative decoding see the same windows.
 */
function windowStart(index: number, context: number): number {
  const s = Math.max(1, context >> 1);
  return index < context ? 0 : (Math.floor(index / s) - 1) * s;
}

/** The first index after `index` whose window starts elsewhere. */
function windowEnd(index: number, context: number): number {
  const s = Math.max(1, context >> 1);
  return index < context ? context : (Math.floor(index / s) + 1) * s;
}

/**
 * A cache per model and rate kept from one generation to the next: a cache holds its decode
 * plans (decode.ts), whose capture takes milliseconds, and a server generates for one request
 * after another. Generation is synchronous, so a cache is used by one generation at a time; a
 * generation started inside another's onToken finds none spare and makes its own.
 */
const spareCaches = new WeakMap<Transformer, Map<number, { version: number; cache: KVCache }>>();

/** A text's tokens in a cache: it keeps what it fed and feeds only what changed. */
class CachedText {
  readonly cache: KVCache;
  private start = 0;
  private readonly fed: number[] = [];

  constructor(
    private readonly model: Transformer,
    rate: number,
  ) {
    const spare = spareCaches.get(model)?.get(rate);
    if (spare !== undefined && spare.version === model.structureVersion) {
      spareCaches.get(model)!.delete(rate);
      this.cache = spare.cache;
      this.cache.truncate(0, 0);
    } else {
      this.cache = new KVCache(model, { rate });
    }
  }

  /** Keeps the cache (and its plans) for the model's next generation at this rate. */
  release(): void {
    let spares = spareCaches.get(this.model);
    if (spares === undefined) spareCaches.set(this.model, (spares = new Map()));
    spares.set(this.cache.rate, { version: this.model.structureVersion, cache: this.cache });
  }

  /** Next-token logits at positions [from, to) of `text` (rows of a [1, n, vocab] tensor, n >= to - from: the last rows). */
  logits(text: readonly number[], from: number, to: number): Tensor {
    const ws = windowStart(to - 1, this.cache.capacity);
    if (ws !== this.start || from < ws) {
      this.start = Math.min(ws, from);
      this.fed.length = 0;
    }
    let common = 0;
    const limit = Math.min(this.fed.length, from - this.start);
    while (common < limit && this.fed[common] === text[this.start + common]) common++;
    this.fed.length = common;
    this.cache.truncate(0, common);
    const fresh = text.slice(this.start + common, to);
    this.fed.push(...fresh);
    return decode(this.model, this.cache, Int32Array.from(fresh), fresh.length);
  }
}

/** The draft's probability of token x: its sampling distribution's, or at temperature 0 its softmax. */
function draftProbability(logits: ArrayLike<number>, dist: Float64Array, x: number, options: SamplingOptions): number {
  if ((options.temperature ?? 1) !== 0) return dist[x];
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp(logits[j] - max);
  return Math.exp(logits[x] - max) / sum;
}

/** The row of position `at` in logits that end at position `to` - 1. */
function rowAt(logits: Tensor, vocab: number, to: number, at: number): Float32Array {
  const rows = logits.size / vocab;
  const r = rows - (to - at);
  return logits.data.subarray(r * vocab, (r + 1) * vocab);
}

/** Continues `prompt` (token ids) by up to maxTokens tokens at one rate, with a key/value cache. */
export function generate(model: Transformer, prompt: ArrayLike<number>, options: GenerateOptions): { tokens: number[]; stats: GenerateStats } {
  const op = 'generate';
  checkGenerate(op, model, prompt, options);
  const seq = new CachedText(model, checkRate(op, options.rate ?? 1));
  const gen = new Generator(options.seed ?? Generator.freshSeed());
  const text = Array.from(prompt);
  const out: number[] = [];
  const vocab = model.config.vocab;
  let passes = 0;
  try {
    while (out.length < options.maxTokens && !stopped(out, options.stop)) {
      const at = text.length - 1;
      const logits = seq.logits(text, at, at + 1);
      passes++;
      const id = drawFrom(samplingDistribution(rowAt(logits, vocab, at + 1, at), options), gen);
      out.push(id);
      text.push(id);
      options.onToken?.(id);
    }
  } finally {
    seq.release();
  }
  return { tokens: out, stats: { passes, drafted: 0, accepted: 0 } };
}

export interface SpeculativeOptions extends GenerateOptions {
  /** Rate of the draft slice (default 0.25). */
  draftRate?: number;
  /** Most tokens the draft proposes per full-rate pass (default 6). */
  draftTokens?: number;
  /**
   * The draft stops proposing after a token it gave less than this probability (default 0.3):
   * such a token is seldom kept, and each proposal costs a draft step and a row of the full
   * pass. The probability is the draft's sampling distribution's, or its softmax at
   * temperature 0. 0 always proposes draftTokens. The tokens' distribution does not depend on it.
   */
  draftMinProbability?: number;
}

/**
 * Generates as generate() at rate 1 would (the same distribution; at temperature 0 the same
 * tokens), with the draft slice proposing up to `draftTokens` tokens (fewer once it is unsure:
 * draftMinProbability) that one full pass verifies.
 */
export function speculativeGenerate(model: Transformer, prompt: ArrayLike<number>, options: SpeculativeOptions): { tokens: number[]; stats: GenerateStats } {
  const op = 'speculativeGenerate';
  checkGenerate(op, model, prompt, options);
  const draftRate = checkRate(op, options.draftRate ?? 0.25);
  const k = options.draftTokens ?? 6;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`${op}: draftTokens must be a positive integer, got ${String(k)}`);
  const minProbability = options.draftMinProbability ?? 0.3;
  if (!(typeof minProbability === 'number' && minProbability >= 0 && minProbability <= 1)) {
    throw new RangeError(`${op}: draftMinProbability must be a number in [0, 1], got ${String(minProbability)}`);
  }
  if (options.rate !== undefined && options.rate !== 1) throw new RangeError(`${op}: verifies at rate 1; got rate ${String(options.rate)}`);
  const { vocab, context } = model.config;
  const target = new CachedText(model, 1);
  const draft = new CachedText(model, draftRate);
  const gen = new Generator(options.seed ?? Generator.freshSeed());
  const text = Array.from(prompt);
  const out: number[] = [];
  const stats: GenerateStats = { passes: 0, drafted: 0, accepted: 0 };
  const emit = (id: number): boolean => {
    out.push(id);
    text.push(id);
    options.onToken?.(id);
    return out.length >= options.maxTokens || stopped(out, options.stop);
  };
  try {
    while (out.length < options.maxTokens && !stopped(out, options.stop)) {
      const at = text.length - 1;
      // Proposals stay within one window of positions (and within maxTokens): the target then
      // sees each of them as plain decoding would.
      const room = Math.min(k, options.maxTokens - out.length - 1, windowEnd(at, context) - at - 1);
      const proposals: number[] = [];
      const q: Float64Array[] = [];
      for (let i = 0; i < room; i++) {
        const seq = [...text, ...proposals];
        const to = seq.length;
        const row = rowAt(draft.logits(seq, to - 1, to), vocab, to, to - 1);
        const dist = samplingDistribution(row, options);
        const x = drawFrom(dist, gen);
        proposals.push(x);
        q.push(dist);
        // Whether to propose more depends on the draft alone, so every position's token still
        // follows the full model (the checks below are unchanged).
        if (minProbability > 0 && draftProbability(row, dist, x, options) < minProbability) break;
      }
      stats.drafted += proposals.length;
      // One full-rate pass gives p after the last token and after each proposal.
      const seq = [...text, ...proposals];
      const logits = target.logits(seq, at, seq.length);
      stats.passes++;
      const pAt = (i: number) => samplingDistribution(rowAt(logits, vocab, seq.length, at + i), options);
      let next = -1;
      let i = 0;
      for (; i < proposals.length; i++) {
        const p = pAt(i);
        const x = proposals[i];
        if (gen.uniform() < Math.min(1, p[x] / q[i][x])) continue;
        // Refused: a draw from max(0, p - q), renormalised.
        const residual = new Float64Array(vocab);
        let sum = 0;
        for (let j = 0; j < vocab; j++) sum += residual[j] = Math.max(0, p[j] - q[i][j]);
        for (let j = 0; j < vocab; j++) residual[j] /= sum;
        next = drawFrom(residual, gen);
        break;
      }
      stats.accepted += i;
      let done = false;
      for (let j = 0; j < i && !done; j++) done = emit(proposals[j]);
      if (!done) emit(next >= 0 ? next : drawFrom(pAt(proposals.length), gen));
    }
  } finally {
    target.release();
    draft.release();
  }
  return { tokens: out, stats };
}
