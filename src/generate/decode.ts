// Decoding with a key/value cache: a step feeds each sequence's new tokens through the model at
// the cache's rate, appends their keys and values, and returns their next-token logits.
//
// The cache of a rate holds, for every layer and sequence, the keys and values of the tokens
// seen so far, only for the heads that rate uses (the rate-0.25 cache of an 8-head model holds
// 2 heads). Each step feeds only the new tokens: their queries attend to every cached key.
//
// A step of a few tokens is replayed as a plan (DESIGN.md, "Kernel calls are records"): at batch
// 1 a token is about 90 kernel calls, and through the ops each cost several microseconds of
// argument checks, tensors and module walks, as much as a narrow slice's kernels. A step is
// captured once per cache and token count, dry, with every sequence's cache taken as full; the
// calls that depend on how much a sequence holds (the copy of new keys and values into the
// cache, and the attention over them) are found by the cache buffers they name and are given
// each step's lengths before it runs, from JavaScript. Everything else (the projections, norms,
// feed-forward and head) replays as captured, its intermediates in one arena, bound once in
// the addon as a program (program.ts).
import { captureCalls, type CapturedStep } from '../capture.js';
import { native } from '../native.js';
import { arg } from '../kernels.js';
import type { Transformer } from '../models/transformer.js';
import { Module } from '../nn/module.js';
import type { TransformerBlock } from '../nn/transformer.js';
import { checkRate, sliceWidth } from '../nn/width.js';
import { add } from '../ops/add.js';
import { attention } from '../ops/attention.js';
import { embedding } from '../ops/embedding.js';
import { relu } from '../ops/relu.js';
import { Program } from '../program.js';
import { ArenaLayout, bindSteps, placeInArena } from '../slicing/arena.js';
import { InferencePlan, StateSnapshot } from '../slicing/plan.js';
import { noGrad, outputBuffer, Tensor } from '../tensor.js';

/** Steps of at most this many new tokens per sequence are replayed as plans. */
export const PLANNED_TOKENS = 16;

/** Keys and values of the tokens a sequence has seen, per layer, for the heads of one rate. */
export class KVCache {
  readonly rate: number;
  /** Columns per position: the active heads x head size. */
  readonly width: number;
  readonly heads: number;
  readonly capacity: number;
  /** Positions held per sequence. */
  readonly lengths: number[];
  /** [layer][sequence]: capacity x width values, the first lengths[sequence] rows filled. */
  readonly keys: Float32Array[][];
  readonly values: Float32Array[][];

  constructor(model: Transformer, options: { rate?: number; sequences?: number } = {}) {
    const rate = checkRate('KVCache', options.rate ?? 1);
    const sequences = options.sequences ?? 1;
    if (!Number.isInteger(sequences) || sequences < 1) throw new RangeError(`KVCache: sequences must be a positive integer, got ${String(sequences)}`);
    const { layers, context } = model.config;
    this.rate = rate;
    // The query projection's width at this rate, as the layer computes it (a compact slice's
    // layers hold fewer heads than its config's full model).
    const query = (model.blocks.at(0) as TransformerBlock).attention.query;
    const headDim = (model.blocks.at(0) as TransformerBlock).attention.headDim;
    this.width = sliceWidth(query.outFeatures, rate, query.sliceGroups);
    this.heads = this.width / headDim;
    if (!Number.isInteger(this.heads)) throw new RangeError(`KVCache: rate ${rate} keeps ${this.width} query columns, not a whole number of heads of ${headDim}`);
    this.capacity = context;
    this.lengths = new Array<number>(sequences).fill(0);
    const make = () => Array.from({ length: layers }, () => Array.from({ length: sequences }, () => new Float32Array(context * this.width)));
    this.keys = make();
    this.values = make();
  }

  get sequences(): number {
    return this.lengths.length;
  }

  private listed: { model: Transformer; version: number; modules: Module[]; state: Tensor[] } | null = null;
  /** Plans by new tokens per sequence, for the model and structure `listed` names (or why none). */
  private readonly plans = new Map<number, DecodePlan | string>();

  /** @internal The model's modules, listed again only when its structure changes (which drops the plans). */
  modulesOf(model: Transformer): Module[] {
    return this.listing(model).modules;
  }

  private listing(model: Transformer): { modules: Module[]; state: Tensor[] } {
    const version = model.structureVersion;
    if (this.listed === null || this.listed.model !== model || this.listed.version !== version) {
      this.listed = { model, version, modules: model.modules(), state: InferencePlan.state(model) };
      this.plans.clear();
    }
    return this.listed;
  }

  /** @internal The plan for steps of `n` new tokens per sequence, or why there is none. */
  planFor(model: Transformer, n: number): DecodePlan | string {
    const { modules, state } = this.listing(model);
    let plan = this.plans.get(n);
    if (plan instanceof DecodePlan && !plan.state.matches(state)) plan = undefined;
    if (plan === undefined) {
      plan = DecodePlan.build(model, this, n, modules, state);
      this.plans.set(n, plan);
    }
    return plan;
  }

  /** Keeps the first `length` positions of a sequence (a speculative step's refused tokens go). */
  truncate(sequence: number, length: number): void {
    if (!(length >= 0 && length <= this.lengths[sequence])) throw new RangeError(`KVCache.truncate: length ${length} is outside [0, ${this.lengths[sequence]}]`);
    this.lengths[sequence] = length;
  }
}

/**
 * One step through the model with the modules already at the cache's rate: `ids` and
 * `positions` are [sequences, n] (as float tensors, converted by a kernel), `lengths` the
 * positions each sequence held before it (not updated here). Every value is computed by a
 * kernel, so the step can be captured.
 */
function decodePass(model: Transformer, cache: KVCache, ids: Tensor, positions: Tensor, n: number, lengths: readonly number[]): Tensor {
  const B = cache.sequences;
  const w = cache.width;
  let h = add(model.tokens.forward(ids), embedding(positions, model.positions.weight));
  for (let l = 0; l < model.blocks.length; l++) {
    const block = model.blocks.at(l) as TransformerBlock;
    const a = block.norm1.forward(h);
    const att = block.attention;
    const q = att.query.forward(a);
    const k = att.key.forward(a);
    const v = att.value.forward(a);
    const mixed = B === 1 ? null : outputBuffer(B * n * w);
    let o: Tensor | null = null;
    for (let r = 0; r < B; r++) {
      const start = lengths[r];
      const keys = cache.keys[l][r];
      const values = cache.values[l][r];
      native.copy(n * w, k.data, r * n * w, keys, start * w);
      native.copy(n * w, v.data, r * n * w, values, start * w);
      const total = start + n;
      o = attention(
        new Tensor(B === 1 ? q.data : q.data.subarray(r * n * w, (r + 1) * n * w), [1, n, w]),
        new Tensor(keys.subarray(0, total * w), [1, total, w]),
        new Tensor(values.subarray(0, total * w), [1, total, w]),
        { heads: cache.heads, causal: true },
      );
      if (mixed !== null) native.copy(n * w, o.data, 0, mixed, r * n * w);
    }
    h = add(h, att.output.forward(mixed === null ? o! : new Tensor(mixed, [B, n, w])));
    h = add(h, block.project.forward(relu(block.hidden.forward(block.norm2.forward(h)))));
  }
  return model.head.forward(model.norm.forward(h));
}

/** A call argument set from a sequence's length before each replay: args[at] = lengths[sequence] * scale + offset. */
interface LengthPatch {
  readonly args: unknown[];
  readonly at: number;
  readonly sequence: number;
  readonly scale: number;
  readonly offset: number;
}

/** A decode step of `n` new tokens per sequence, captured for one cache, replayed without allocation. */
export class DecodePlan {
  private readonly program: Program;

  private constructor(
    steps: readonly CapturedStep[],
    private readonly patches: readonly LengthPatch[],
    private readonly ids: Float32Array,
    private readonly positions: Float32Array,
    private readonly output: Float32Array,
    private readonly outputShape: readonly number[],
    /** @internal The parameters and buffers it reads in place, as they were when it was built. */
    readonly state: StateSnapshot,
    readonly n: number,
    /** Bytes of the intermediates' arena. */
    readonly arenaBytes: number,
    patched: ReadonlySet<CapturedStep>,
  ) {
    // The calls a step's lengths change run from JavaScript; the rest are bound once.
    this.program = new Program(steps, patched);
  }

  /** Captures a step (dry: nothing runs, the cache is untouched), or says why it cannot be replayed. */
  static build(model: Transformer, cache: KVCache, n: number, modules: readonly Module[], state: readonly Tensor[]): DecodePlan | string {
    const B = cache.sequences;
    if (n > cache.capacity) return `${n} new tokens exceed the context ${cache.capacity}`;
    const ids = new Float32Array(B * n);
    const positions = new Float32Array(B * n);
    // Every sequence taken as full: the buffers that grow with the length (attention's
    // probabilities) are sized for the longest step.
    const full = new Array<number>(B).fill(cache.capacity - n);
    const { result, capture } = Module.withState(modules, cache.rate, false, () =>
      captureCalls(() => noGrad(() => decodePass(model, cache, new Tensor(ids, [B, n]), new Tensor(positions, [B, n]), n, full)), true),
    );
    if (capture.unsupported !== null) return capture.unsupported;
    const { offsets, arenaBytes } = placeInArena(capture.steps, capture.allocated, [result.data]);
    const layout = new ArenaLayout(offsets);
    const arena = new ArrayBuffer(arenaBytes);
    const steps = bindSteps(layout.template(capture.steps), arena);
    const output = layout.bind(layout.ref(result.data), arena) as Float32Array;
    // The calls that name a sequence's cache: a copy into it starts at its length (dstOffset =
    // length x width), attention reads its length plus the new tokens (Tk = length + n).
    const owner = new Map<ArrayBufferLike, number>();
    for (const layer of [...cache.keys, ...cache.values]) layer.forEach((buf, r) => owner.set(buf.buffer, r));
    const lengthArgs = new Map([
      ['copy', { buffer: 'dst', at: 'dstOffset', scale: cache.width, offset: 0 }],
      ['attentionForward', { buffer: 'k', at: 'Tk', scale: 1, offset: n }],
    ]);
    const patches: LengthPatch[] = [];
    const patched = new Set<CapturedStep>();
    for (const s of steps) {
      const la = lengthArgs.get(s.name);
      const r = la === undefined ? undefined : owner.get((arg(s, la.buffer) as Float32Array).buffer);
      if (la === undefined || r === undefined) continue;
      patches.push({ args: s.args, at: s.decl.index.get(la.at)!, sequence: r, scale: la.scale, offset: la.offset });
      patched.add(s);
    }
    const expected = 3 * B * model.blocks.length;
    if (patches.length !== expected) return `a decode step names the cache in ${patches.length} calls where ${expected} were expected`;
    return new DecodePlan(steps, patches, ids, positions, output, [...result.shape], new StateSnapshot(state), n, arenaBytes, patched);
  }

  /** Runs the step on `ids` (sequences x n) with the cache's current lengths; returns the logits. */
  run(cache: KVCache, ids: Int32Array): Tensor {
    const n = this.n;
    for (let i = 0; i < ids.length; i++) this.ids[i] = ids[i];
    const lengths = cache.lengths;
    for (let r = 0; r < lengths.length; r++) for (let j = 0; j < n; j++) this.positions[r * n + j] = lengths[r] + j;
    for (const p of this.patches) p.args[p.at] = lengths[p.sequence] * p.scale + p.offset;
    this.program.run();
    return new Tensor(this.output.slice(), [...this.outputShape]);
  }
}

export interface DecodeOptions {
  /** Replay the step as a plan when it can be (default true); false runs the ops one by one. */
  plan?: boolean;
}

/**
 * Feeds `n` new tokens of each sequence (ids, sequence-major: sequences x n) through the model
 * at the cache's rate, appending their keys and values; returns the next-token logits at each
 * new position, [sequences, n, vocab].
 */
export function decode(model: Transformer, cache: KVCache, ids: Int32Array, n: number, options: DecodeOptions = {}): Tensor {
  const op = 'decode';
  const B = cache.sequences;
  if (!Number.isInteger(n) || n < 1 || ids.length !== B * n) throw new RangeError(`${op}: ${ids.length} ids for ${B} sequences of ${n} new tokens`);
  const { vocab } = model.config;
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab) throw new RangeError(`${op}: ids[${i}] = ${ids[i]} is not a token id in [0, ${vocab})`);
  }
  for (let r = 0; r < B; r++) {
    if (cache.lengths[r] + n > cache.capacity) throw new RangeError(`${op}: sequence ${r} holds ${cache.lengths[r]} positions; ${n} more exceed the context ${cache.capacity}`);
  }
  const plan = (options.plan ?? true) && n <= PLANNED_TOKENS ? cache.planFor(model, n) : null;
  let logits: Tensor;
  if (plan instanceof DecodePlan) {
    logits = plan.run(cache, ids);
  } else {
    // The modules are listed once per cache: walking the tree twice a token cost more than a
    // narrow slice's kernels.
    const positions = new Float32Array(B * n);
    for (let r = 0; r < B; r++) for (let j = 0; j < n; j++) positions[r * n + j] = cache.lengths[r] + j;
    logits = Module.withState(cache.modulesOf(model), cache.rate, false, () =>
      noGrad(() => decodePass(model, cache, new Tensor(Float32Array.from(ids), [B, n]), new Tensor(positions, [B, n]), n, cache.lengths)),
    );
  }
  for (let r = 0; r < B; r++) cache.lengths[r] += n;
  return logits;
}
