// A sliceable decoder-only transformer (GPT-style, pre-norm): token embeddings plus learned
// positions, `layers` blocks of causal self-attention and a feed-forward layer
// (nn/transformer.ts), a final layer norm and a linear head over the vocabulary. The residual
// stream, the embeddings and the head stay dModel wide at every rate; a rate keeps the first
// heads of each attention and the first units of each feed-forward hidden layer, so the
// cost falls about linearly in r. Input: token ids [batch, T] (T <= context) as the values
// of a tensor; output: next-token logits [batch, T, vocab].
import { Embedding, LayerNorm } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { TransformerBlock } from '../nn/transformer.js';
import { add } from '../ops/add.js';
import { embedding } from '../ops/embedding.js';
import { defaultGenerator } from '../random.js';
import type { Tensor } from '../tensor.js';
import { configInputShape } from '../metadata.js';
import { formatShape } from '../nn/input-shape.js';
import { positiveInt, type TransformerConfig } from './config.js';

export interface TransformerOptions {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  /** Feed-forward hidden units (default 4 x dModel). */
  ffn?: number;
  /** Slice groups of the feed-forward hidden layer (default 8). */
  ffnGroups?: number;
  /** Longest sequence the model takes. */
  context: number;
  /** Tokens by id, saved with the model (a character model's characters). */
  vocabulary?: string[];
}

export class Transformer extends Model {
  declare readonly config: TransformerConfig;
  readonly tokens: Embedding;
  readonly positions: Embedding;
  readonly blocks: Sequential;
  readonly norm: LayerNorm;
  readonly head: Linear;
  private readonly positionIds: Int32Array;

  constructor(config: TransformerConfig) {
    super();
    const { vocab, dModel, heads, layers, ffn, ffnGroups, context } = config;
    this.config = config;
    this.tokens = this.registerModule('tokens', new Embedding(vocab, dModel));
    this.positions = this.registerModule('positions', new Embedding(context, dModel));
    const blocks: TransformerBlock[] = [];
    for (let i = 0; i < layers; i++) blocks.push(new TransformerBlock({ dModel, heads, ffn, ffnGroups }));
    this.blocks = this.registerModule('blocks', new Sequential(...blocks));
    this.norm = this.registerModule('norm', new LayerNorm(dModel));
    this.head = this.registerModule('head', new Linear(dModel, vocab, { slice: false }));
    // GPT-2's initialisation: weights N(0, 0.02^2), biases zero, and the projections that add
    // into the residual stream scaled down by sqrt(2 x layers) so its variance does not grow with depth.
    for (const [name, p] of this.namedParameters()) {
      if (p.rank !== 2 || name.startsWith('tokens.') || name.startsWith('positions.')) {
        if (name.endsWith('.bias')) p.data.fill(0);
        continue;
      }
      const residual = name.endsWith('attention.output.weight') || name.endsWith('.project.weight');
      const std = residual ? 0.02 / Math.sqrt(2 * layers) : 0.02;
      for (let i = 0; i < p.size; i++) p.data[i] = std * defaultGenerator.normal();
    }
    this.positionIds = Int32Array.from({ length: context }, (_, i) => i);
    this.inputShape = configInputShape(config);
  }

  /** x: token ids [batch, T] (T <= context) -> logits [batch, T, vocab]. */
  forward(x: Tensor): Tensor {
    const { context } = this.config;
    if (x.rank !== 2 || x.shape[1] < 1 || x.shape[1] > context) {
      throw new RangeError(`Transformer: x must be token ids [batch, T] with 1 <= T <= context ${context}, got shape ${formatShape(x.shape)}`);
    }
    const T = x.shape[1];
    const h = add(this.tokens.forward(x), embedding(this.positionIds.subarray(0, T), this.positions.weight));
    return this.head.forward(this.norm.forward(this.blocks.forward(h)));
  }
}

export function transformer(options: TransformerOptions): Transformer {
  const op = 'transformer';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const dModel = positiveInt(op, 'dModel', options.dModel);
  const heads = positiveInt(op, 'heads', options.heads);
  if (dModel % heads !== 0) throw new RangeError(`${op}: heads ${heads} must divide dModel ${dModel}`);
  const vocab = positiveInt(op, 'vocab', options.vocab ?? options.vocabulary?.length);
  const model = new Transformer({
    kind: 'transformer',
    vocab,
    dModel,
    heads,
    layers: positiveInt(op, 'layers', options.layers),
    ffn: positiveInt(op, 'ffn', options.ffn, 4 * dModel),
    ffnGroups: positiveInt(op, 'ffnGroups', options.ffnGroups, 8),
    context: positiveInt(op, 'context', options.context),
  });
  if (options.vocabulary !== undefined) model.vocabulary = checkVocabulary(op, options.vocabulary, vocab);
  return model;
}

/** A vocabulary of `vocab` distinct strings (tokens by id), or a RangeError naming what is wrong. */
export function checkVocabulary(op: string, vocabulary: unknown, vocab: number): string[] {
  if (!Array.isArray(vocabulary) || vocabulary.some((t) => typeof t !== 'string')) {
    throw new TypeError(`${op}: vocabulary must be an array of strings (tokens by id)`);
  }
  if (vocabulary.length !== vocab) throw new RangeError(`${op}: vocabulary holds ${vocabulary.length} tokens but vocab is ${vocab}`);
  const seen = new Set<string>();
  for (const [i, t] of (vocabulary as string[]).entries()) {
    if (seen.has(t)) throw new RangeError(`${op}: vocabulary[${i}] = ${JSON.stringify(t)} appears twice`);
    seen.add(t);
  }
  return [...(vocabulary as string[])];
}
