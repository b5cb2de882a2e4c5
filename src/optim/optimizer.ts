// The optimizer base: a flat list of parameters, a mutable learning rate that
// schedules drive, per-parameter state, and state dicts for exact resume.
import { Tensor } from '../tensor.js';

export interface OptimizerState {
  lr: number;
  stepCount: number;
  /** Updates each parameter has received (parameters without a gradient skip a step). */
  paramSteps: number[];
  /** Per-parameter buffers by "<index>.<name>". */
  buffers: Record<string, Tensor>;
}

export abstract class Optimizer {
  readonly params: Tensor[];
  lr: number;
  /** Steps taken. */
  stepCount = 0;
  protected paramSteps: number[];
  protected readonly buffers: Map<string, Float32Array>[];

  constructor(op: string, params: Iterable<Tensor>, lr: unknown) {
    if (params === null || typeof (params as Iterable<Tensor>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${op}: params must be an iterable of tensors (model.parameters())`);
    }
    this.params = [...params];
    this.params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new TypeError(`${op}: params[${i}] is not a Tensor`);
    });
    this.lr = checkHyper(op, 'lr', lr, 0, Infinity);
    this.buffers = this.params.map(() => new Map());
    this.paramSteps = this.params.map(() => 0);
  }

  /** Adds parameters created after the optimizer (switchable batch norm's per-rate ones), with fresh state. */
  addParams(params: Iterable<Tensor>): void {
    for (const p of params) {
      if (!(p instanceof Tensor)) throw new TypeError('addParams: every parameter must be a Tensor');
      if (this.params.includes(p)) continue;
      this.params.push(p);
      this.paramSteps.push(0);
      this.buffers.push(new Map());
    }
  }

  /** Applies one update from the parameters' .grad (parameters without a gradient are skipped). */
  step(): void {
    this.stepCount++;
    this.params.forEach((p, i) => {
      if (p.grad === null) return;
      this.paramSteps[i]++;
      this.update(p.data, p.grad.data, i);
    });
  }

  protected abstract update(param: Float32Array, grad: Float32Array, index: number): void;

  /** A zero-initialised buffer named `name` for parameter `index`. */
  protected buffer(index: number, name: string): Float32Array {
    let b = this.buffers[index].get(name);
    if (b === undefined) {
      b = new Float32Array(this.params[index].size);
      this.buffers[index].set(name, b);
    }
    return b;
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  stateDict(): OptimizerState {
    const buffers: Record<string, Tensor> = {};
    this.buffers.forEach((m, i) => {
      for (const [name, b] of m) buffers[`${i}.${name}`] = new Tensor(b.slice(), this.params[i].shape);
    });
    return { lr: this.lr, stepCount: this.stepCount, paramSteps: [...this.paramSteps], buffers };
  }

  loadStateDict(state: OptimizerState): void {
    if (state === null || typeof state !== 'object') throw new TypeError('loadStateDict: optimizer state must be an object');
    const parsed: [number, string, Tensor][] = [];
    for (const [key, t] of Object.entries(state.buffers ?? {})) {
      const dot = key.indexOf('.');
      const index = Number(key.slice(0, dot));
      const p = this.params[index];
      if (dot < 1 || !Number.isInteger(index) || p === undefined) throw new RangeError(`loadStateDict: optimizer buffer ${key} names no parameter`);
      if (!(t instanceof Tensor) || t.size !== p.size) throw new RangeError(`loadStateDict: optimizer buffer ${key} does not match parameter ${index} of shape [${p.shape.join(', ')}]`);
      parsed.push([index, key.slice(dot + 1), t]);
    }
    this.lr = checkHyper('loadStateDict', 'lr', state.lr, 0, Infinity);
    this.stepCount = state.stepCount ?? 0;
    const steps = state.paramSteps ?? this.params.map(() => this.stepCount);
    if (!Array.isArray(steps) || steps.length !== this.params.length) {
      throw new RangeError(`loadStateDict: optimizer state is for ${Array.isArray(steps) ? steps.length : '?'} parameters, this optimizer has ${this.params.length}`);
    }
    this.paramSteps = steps.map((n) => Number(n) || 0);
    this.buffers.forEach((m) => m.clear());
    for (const [i, name, t] of parsed) this.buffers[i].set(name, t.data.slice());
  }
}

export function checkHyper(op: string, name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`${op}: ${name} must be a finite number in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}
