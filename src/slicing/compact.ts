// Cost tables and compact sub-models, both read off one traced forward pass
// at the rate in question: each sliceable layer reports its active widths.
// The compact copy itself is the layers' business (Module.slice walks them).
import { Module } from '../nn/module.js';
import { SliceableLayer } from '../nn/sliceable.js';
import { traceAtRate } from '../nn/trace.js';
import { activeGroups, checkRate } from '../nn/width.js';
import { modelInputShape } from '../nn/input-shape.js';

/** One row of a cost table. */
export interface CostRow {
  /** The rate as asked. */
  rate: number;
  /** Fraction of units used: k / G. */
  width: number;
  /** Multiply-accumulates of convolutions and linear layers per input. */
  macs: number;
  /** Parameters (norms and biases included) of the compact model at this rate. */
  params: number;
}

function sliceGroupsOf(model: Module): number {
  const layer = model.modules().find((m): m is SliceableLayer => m instanceof SliceableLayer);
  return layer?.sliceGroups ?? 8;
}

/**
 * Per-rate multiply-accumulates per input and compact-model parameter counts,
 * from the shapes each layer actually uses at that rate.
 */
export function costs(model: Module, inputShape?: readonly number[], rates: readonly number[] = [1, 0.75, 0.5, 0.25]): CostRow[] {
  const op = 'costs';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module`);
  const shape = modelInputShape(op, model, inputShape);
  if (!Array.isArray(rates) || rates.length === 0) throw new RangeError(`${op}: rates must be a non-empty array`);
  const groups = sliceGroupsOf(model);
  return rates.map((rate) => {
    checkRate(op, rate);
    const uses = traceAtRate(model, rate, shape);
    return {
      rate,
      width: activeGroups(rate, groups) / groups,
      macs: uses.reduce((n, u) => n + u.macs, 0),
      params: uses.reduce((n, u) => n + u.params, 0),
    };
  });
}

export interface SliceOptions {
  /** Shape of one input without the batch; needed only for models that do not know it. */
  inputShape?: readonly number[];
}

/**
 * A new, independent model holding copies of the prefix weights used at rate
 * r: its full width is the sliced width and its rate is 1. The source model is
 * unchanged. The same as model.slice(rate, options).
 */
export function sliceModel<M extends Module>(model: M, rate: number, options: SliceOptions = {}): M {
  if (!(model instanceof Module)) throw new TypeError('slice: model must be a Module');
  return model.slice(rate, options);
}
