// A sliceable transformer block (pre-norm): causal multi-head self-attention whose heads are
// its slice groups, and a feed-forward block whose hidden units are, each added back to a
// residual stream that stays d_model wide at every rate. At rate r the query, key and value
// projections compute only the first ceil(r x heads) heads' columns, attention runs on those
// heads alone, and the output projection reads only their rows of its weight; the feed-forward
// block keeps the first units of its hidden layer the same way. Cost falls about linearly in r.
import { add } from '../ops/add.js';
import { attention } from '../ops/attention.js';
import { relu } from '../ops/relu.js';
import type { Tensor } from '../tensor.js';
import { LayerNorm } from './embedding.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { reportUse, tracing } from './trace.js';

export interface TransformerBlockOptions {
  /** Width of the residual stream. */
  dModel: number;
  /** Attention heads (the slice groups of the attention); dModel must be a multiple. */
  heads: number;
  /** Hidden units of the feed-forward block (default 4 x dModel). */
  ffn?: number;
  /** Slice groups of the feed-forward hidden layer (default 8). */
  ffnGroups?: number;
}

export class CausalSelfAttention extends Module {
  readonly heads: number;
  readonly headDim: number;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;

  constructor(dModel: number, heads: number) {
    super();
    if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(dModel) || dModel % heads !== 0) {
      throw new RangeError(`CausalSelfAttention: heads ${String(heads)} must divide dModel ${String(dModel)}`);
    }
    this.heads = heads;
    this.headDim = dModel / heads;
    // One slice group per head: a rate keeps whole heads.
    this.query = this.registerModule('query', new Linear(dModel, dModel, { sliceGroups: heads, slice: true }));
    this.key = this.registerModule('key', new Linear(dModel, dModel, { sliceGroups: heads, slice: true }));
    this.value = this.registerModule('value', new Linear(dModel, dModel, { sliceGroups: heads, slice: true }));
    // Reads the active heads' columns, writes the full residual width.
    this.output = this.registerModule('output', new Linear(dModel, dModel, { slice: false }));
  }

  /** x: [batch, T, dModel] -> [batch, T, dModel]. */
  forward(x: Tensor): Tensor {
    const q = this.query.forward(x);
    const heads = q.shape[q.rank - 1] / this.headDim;
    if (tracing()) {
      // Q K^T and P V: T x T x width multiply-accumulates each per sequence (nothing to hold).
      const [, T, width] = q.shape;
      reportUse({ module: this, macs: 2 * T * T * width, params: 0, widths: { heads } });
    }
    return this.output.forward(attention(q, this.key.forward(x), this.value.forward(x), { heads, causal: true }));
  }
}

export class TransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attention: CausalSelfAttention;
  readonly norm2: LayerNorm;
  readonly hidden: Linear;
  readonly project: Linear;

  constructor(options: TransformerBlockOptions) {
    super();
    const { dModel, heads } = options;
    const ffn = options.ffn ?? 4 * dModel;
    if (!Number.isInteger(ffn) || ffn < 1) throw new RangeError(`TransformerBlock: ffn must be a positive integer, got ${String(ffn)}`);
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel));
    this.attention = this.registerModule('attention', new CausalSelfAttention(dModel, heads));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel));
    this.hidden = this.registerModule('hidden', new Linear(dModel, ffn, { sliceGroups: options.ffnGroups ?? 8, slice: true }));
    this.project = this.registerModule('project', new Linear(ffn, dModel, { slice: false }));
  }

  /** x: [batch, T, dModel] -> [batch, T, dModel]. */
  forward(x: Tensor): Tensor {
    const a = add(x, this.attention.forward(this.norm1.forward(x)));
    return add(a, this.project.forward(relu(this.hidden.forward(this.norm2.forward(a)))));
  }
}
