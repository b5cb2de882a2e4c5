// Batches from an in-memory dataset: seeded shuffling, drop-last, and image
// augmentation (random crop with zero padding, horizontal flip). Its state
// (epochs started and the generator) taken between epochs lets a run resume
// with exactly the same data order; fit checkpoints there.
import { Generator, type GeneratorState } from '../random.js';
import { Tensor } from '../tensor.js';
import type { Dataset } from './dataset.js';

export interface Batch {
  x: Tensor;
  y: Int32Array;
}

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  dropLast?: boolean;
  seed?: number;
  /** Random crop after zero-padding by this many pixels (0 = off). */
  cropPadding?: number;
  /** Flip images left-right with probability 1/2. */
  horizontalFlip?: boolean;
}

export interface LoaderState {
  epoch: number;
  generator: GeneratorState;
}

export class DataLoader implements Iterable<Batch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly cropPadding: number;
  readonly horizontalFlip: boolean;
  /** Epochs started so far. */
  epoch = 0;
  private readonly gen: Generator;

  constructor(dataset: Dataset, options: LoaderOptions) {
    if (!Number.isInteger(options?.batchSize) || options.batchSize < 1) {
      throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${String(options?.batchSize)}`);
    }
    this.dataset = dataset;
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    this.cropPadding = options.cropPadding ?? 0;
    this.horizontalFlip = options.horizontalFlip ?? false;
    if (!Number.isInteger(this.cropPadding) || this.cropPadding < 0) throw new RangeError('DataLoader: cropPadding must be a non-negative integer');
    this.gen = new Generator(options.seed ?? Generator.freshSeed());
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  stateDict(): LoaderState {
    return { epoch: this.epoch, generator: this.gen.getState() };
  }

  loadStateDict(state: LoaderState): void {
    this.epoch = state.epoch;
    this.gen.setState(state.generator);
  }

  *[Symbol.iterator](): Iterator<Batch> {
    this.epoch++;
    const n = this.dataset.length;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (this.shuffle) {
      for (let i = n - 1; i > 0; i--) {
        const j = this.gen.int(i + 1);
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
    }
    const batches = this.length;
    for (let b = 0; b < batches; b++) {
      const idx = order.subarray(b * this.batchSize, Math.min(n, (b + 1) * this.batchSize));
      yield this.makeBatch(idx);
    }
  }

  private makeBatch(idx: Int32Array): Batch {
    const [c, h, w] = this.dataset.shape;
    const size = c * h * w;
    const x = new Float32Array(idx.length * size);
    const y = new Int32Array(idx.length);
    const pad = this.cropPadding;
    for (let r = 0; r < idx.length; r++) {
      const src = this.dataset.images.subarray(idx[r] * size, (idx[r] + 1) * size);
      y[r] = this.dataset.labels[idx[r]];
      const dy = pad > 0 ? this.gen.int(2 * pad + 1) - pad : 0;
      const dx = pad > 0 ? this.gen.int(2 * pad + 1) - pad : 0;
      const flip = this.horizontalFlip && this.gen.uniform() < 0.5;
      if (dy === 0 && dx === 0 && !flip) {
        x.set(src, r * size);
        continue;
      }
      // Output pixel (i, j) reads input (i + dy, j' + dx) where j' is j mirrored when flipped; zero outside.
      for (let ch = 0; ch < c; ch++) {
        for (let i = 0; i < h; i++) {
          const si = i + dy;
          for (let j = 0; j < w; j++) {
            const sj = (flip ? w - 1 - j : j) + dx;
            x[r * size + (ch * h + i) * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? src[(ch * h + si) * w + sj] : 0;
          }
        }
      }
    }
    return { x: new Tensor(x, [idx.length, c, h, w]), y };
  }
}
