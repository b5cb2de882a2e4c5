// Layers of a transformer that do not slice: token embeddings and layer norm (d_model stays
// full width at every rate; only attention heads and feed-forward units are groups).
import { embedding } from '../ops/embedding.js';
import { layerNorm } from '../ops/layer-norm.js';
import { checkEps } from '../ops/norm-args.js';
import { ones, Tensor, zeros } from '../tensor.js';
import { defaultGenerator } from '../random.js';
import { Module } from './module.js';

/** A [vocab, dim] table of token vectors, N(0, 0.02^2) at first (as GPT-2 initialises them). */
export class Embedding extends Module {
  readonly vocab: number;
  readonly dim: number;
  weight: Tensor;

  constructor(vocab: number, dim: number) {
    super();
    for (const [name, v] of [['vocab', vocab], ['dim', dim]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`Embedding: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.vocab = vocab;
    this.dim = dim;
    const data = new Float32Array(vocab * dim);
    for (let i = 0; i < data.length; i++) data[i] = 0.02 * defaultGenerator.normal();
    this.weight = this.registerParameter('weight', new Tensor(data, [vocab, dim]))!;
  }

  /** The rows of `ids` (an Int32Array of token ids, `shape` their shape): [...shape, dim]. */
  lookup(ids: Int32Array | readonly number[], shape?: readonly number[]): Tensor {
    return embedding(ids, this.weight, shape);
  }

  /** x holds token ids as numbers (integers in [0, vocab)): [...x.shape, dim]. */
  forward(x: Tensor): Tensor {
    return embedding(x, this.weight);
  }
}

/** Layer norm over the last axis, with a gain and a bias per feature. */
export class LayerNorm extends Module {
  readonly dim: number;
  private epsValue = 1e-5;
  weight: Tensor;
  bias: Tensor;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`LayerNorm: dim must be a positive integer, got ${String(dim)}`);
    this.dim = dim;
    this.eps = options.eps ?? 1e-5;
    this.weight = this.registerParameter('weight', ones([dim]))!;
    this.bias = this.registerParameter('bias', zeros([dim]))!;
  }

  /** Added to the variance; setting it moves the model's structureVersion (plans are rebuilt). */
  get eps(): number {
    return this.epsValue;
  }

  set eps(value: number) {
    this.epsValue = checkEps('LayerNorm', value);
    this.markStructureChanged();
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, { eps: this.epsValue });
  }
}
