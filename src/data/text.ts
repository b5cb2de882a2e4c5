// Text for character-level language models: a vocabulary of the characters a text holds,
// the text as token ids, a train/validation split, and batches of windows. A batch is
// x = token ids [batch, T] (as a tensor's values, what a transformer takes) and y = the
// next token after each position (batch x T labels, in x's order), so fit and evaluate
// report the mean loss per character (nats) and next-character accuracy.
import { Generator, type GeneratorState } from '../random.js';
import { Tensor } from '../tensor.js';
import type { Batch } from './loader.js';

export interface TextDataset {
  /** The text as token ids. */
  readonly ids: Int32Array;
  /** Tokens by id (here one character each). */
  readonly vocabulary: readonly string[];
  readonly name: string;
}

/** The distinct characters of `text` (whole code points), sorted: a character vocabulary. */
export function charVocabulary(text: string): string[] {
  if (typeof text !== 'string') throw new TypeError(`charVocabulary: text must be a string, got ${typeof text}`);
  return [...new Set(text)].sort();
}

/** `text` as ids in `vocabulary` (default: its own characters); a character outside it is a RangeError naming it. */
export function textDataset(text: string, options: { vocabulary?: readonly string[]; name?: string } = {}): TextDataset {
  const op = 'textDataset';
  if (typeof text !== 'string') throw new TypeError(`${op}: text must be a string, got ${typeof text}`);
  const vocabulary = options.vocabulary ?? charVocabulary(text);
  const index = new Map(vocabulary.map((c, i) => [c, i]));
  const chars = [...text];
  const ids = new Int32Array(chars.length);
  chars.forEach((c, i) => {
    const id = index.get(c);
    if (id === undefined) throw new RangeError(`${op}: character ${JSON.stringify(c)} at position ${i} is not in the vocabulary of ${vocabulary.length} tokens`);
    ids[i] = id;
  });
  return { ids, vocabulary: [...vocabulary], name: options.name ?? 'text' };
}

/** Ids back to text. */
export function decodeText(ids: ArrayLike<number>, vocabulary: readonly string[]): string {
  let out = '';
  for (let i = 0; i < ids.length; i++) {
    const t = vocabulary[ids[i]];
    if (t === undefined) throw new RangeError(`decodeText: ids[${i}] = ${ids[i]} is not in the vocabulary of ${vocabulary.length} tokens`);
    out += t;
  }
  return out;
}

/** The first (1 - validation) of the text to train on and the rest to validate on (as nanoGPT splits: 0.1). */
export function splitText(ds: TextDataset, validation = 0.1): { train: TextDataset; valid: TextDataset } {
  if (!(validation > 0 && validation < 1)) throw new RangeError(`splitText: validation must be a fraction in (0, 1), got ${String(validation)}`);
  const at = Math.round(ds.ids.length * (1 - validation));
  return {
    train: { ...ds, ids: ds.ids.subarray(0, at), name: `${ds.name}-train` },
    valid: { ...ds, ids: ds.ids.subarray(at), name: `${ds.name}-valid` },
  };
}

export interface TextLoaderOptions {
  /** Tokens per window (the model's context, or less). */
  context: number;
  batchSize: number;
  /**
   * Random windows (seeded) for training, `batchesPerEpoch` batches an epoch (default: as
   * many as cover the text once). Without, the text in order: non-overlapping windows, all
   * of them, for evaluation.
   */
  shuffle?: boolean;
  batchesPerEpoch?: number;
  seed?: number;
}

/** Batches of windows of a text: x [batch, context] token ids, y the next token at every position. */
export class TextLoader implements Iterable<Batch> {
  readonly dataset: TextDataset;
  readonly context: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  /** Epochs started so far. */
  epoch = 0;
  private readonly batches: number;
  private readonly gen: Generator;

  constructor(dataset: TextDataset, options: TextLoaderOptions) {
    const op = 'TextLoader';
    for (const name of ['context', 'batchSize'] as const) {
      const v = options?.[name];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.dataset = dataset;
    this.context = options.context;
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle ?? false;
    const windows = Math.floor((dataset.ids.length - 1) / this.context);
    if (windows < 1) throw new RangeError(`${op}: ${dataset.name} holds ${dataset.ids.length} tokens, too few for one window of ${this.context} and its next token`);
    if (options.batchesPerEpoch !== undefined && (!Number.isInteger(options.batchesPerEpoch) || options.batchesPerEpoch < 1)) {
      throw new RangeError(`${op}: batchesPerEpoch must be a positive integer, got ${String(options.batchesPerEpoch)}`);
    }
    this.batches = this.shuffle ? (options.batchesPerEpoch ?? Math.max(1, Math.floor(windows / this.batchSize))) : Math.ceil(windows / this.batchSize);
    this.gen = new Generator(options.seed ?? Generator.freshSeed());
  }

  /** Batches per epoch. */
  get length(): number {
    return this.batches;
  }

  /** Positions predicted per epoch (labels). */
  get tokens(): number {
    return this.shuffle ? this.batches * this.batchSize * this.context : Math.floor((this.dataset.ids.length - 1) / this.context) * this.context;
  }

  stateDict(): { epoch: number; generator: GeneratorState } {
    return { epoch: this.epoch, generator: this.gen.getState() };
  }

  loadStateDict(state: { epoch: number; generator: GeneratorState }): void {
    this.epoch = state.epoch;
    this.gen.setState(state.generator);
  }

  *[Symbol.iterator](): Iterator<Batch> {
    this.epoch++;
    const { ids } = this.dataset;
    const T = this.context;
    const windows = Math.floor((ids.length - 1) / T);
    for (let b = 0; b < this.batches; b++) {
      const n = this.shuffle ? this.batchSize : Math.min(this.batchSize, windows - b * this.batchSize);
      const x = new Float32Array(n * T);
      const y = new Int32Array(n * T);
      for (let r = 0; r < n; r++) {
        const at = this.shuffle ? this.gen.int(ids.length - T) : (b * this.batchSize + r) * T;
        for (let j = 0; j < T; j++) x[r * T + j] = ids[at + j];
        y.set(ids.subarray(at + 1, at + T + 1), r * T);
      }
      yield { x: new Tensor(x, [n, T]), y };
    }
  }
}
