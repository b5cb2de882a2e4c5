// Tensor, creation functions and the autograd tape.
//
// A tensor is float32, contiguous and row-major. An op that records itself
// attaches a GradFn to its output; backward() walks those in reverse
// topological order. Each op's backward accumulates straight into its inputs'
// gradient buffers (gradSink), which lets a sliced op write only the prefix of
// a full-size weight gradient.
import { captureAllocation, captureTensor, dryCapture } from './capture.js';
import { js } from './js-kernels.js';
import { native } from './native.js';
import { defaultGenerator, Generator } from './random.js';

export type Shape = readonly number[];

/** How an op's output gets its gradient back to the op's inputs. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Accumulates into the inputs' gradient buffers (see gradSink) given the output gradient. */
  backward(grad: Float32Array): void;
}

let gradEnabled = true;

/** Whether ops currently record a graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph and returns its result. */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

const freedGraph: GradFn = {
  name: 'freed',
  inputs: [],
  backward() {
    throw new Error(
      'backward: this graph was already freed by an earlier backward(); ' +
        'pass {retainGraph: true} to the first call to backward through it twice',
    );
  },
};

export interface BackwardOptions {
  /** Keep the graph so backward can run through it again. */
  retainGraph?: boolean;
}

export class Tensor {
  readonly shape: Shape;
  readonly data: Float32Array;
  /** The accumulated gradient of a leaf tensor, filled by backward(). */
  grad: Tensor | null = null;
  requiresGrad: boolean;
  /** The op that produced this tensor, or null for a leaf. */
  gradFn: GradFn | null = null;
  /** Gradient accumulator of a non-leaf tensor during backward. */
  private gradAcc: Float32Array | null = null;

  /** Wraps `data` without copying; use ms.tensor() to copy user data. */
  constructor(data: Float32Array, shape: Shape, requiresGrad = false) {
    if (!(data instanceof Float32Array)) throw new TypeError('Tensor: data must be a Float32Array (use ms.tensor() to convert)');
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`Tensor: shape [${shape.join(', ')}] must hold non-negative integers`);
    }
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new RangeError(`Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${size}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
    captureTensor(data);
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A tensor sharing these values that records no history. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, false);
  }

  /** An independent copy of the values (no history). */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape, false);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) {
      throw new RangeError(`item: tensor of shape [${this.shape.join(', ')}] has ${this.data.length} elements, not 1`);
    }
    return this.data[0];
  }

  /** The values as nested arrays (a number for a scalar). */
  toArray(): NestedArray {
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return this.data[offset];
      const stride = shapeSize(this.shape.slice(dim + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < this.shape[dim]; i++) out.push(build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  /** Sets .grad to null (the next backward allocates it afresh). */
  zeroGrad(): void {
    this.grad = null;
  }

  /**
   * Reverse-mode autodiff from this tensor. Without `grad` the tensor must hold
   * one element and the seed is 1. Leaf gradients accumulate into `.grad`.
   */
  backward(grad?: Tensor | null, options: BackwardOptions = {}): void {
    if (!this.requiresGrad) {
      throw new Error('backward: this tensor does not require grad (no input of its graph has requiresGrad)');
    }
    let seed: Float32Array;
    if (grad === undefined || grad === null) {
      if (this.size !== 1) {
        throw new RangeError(
          `backward: grad must be given for a tensor of shape [${this.shape.join(', ')}] (only one-element tensors default to 1)`,
        );
      }
      seed = new Float32Array([1]);
    } else {
      if (!(grad instanceof Tensor)) throw new TypeError('backward: grad must be a Tensor');
      if (!sameShape(grad.shape, this.shape)) {
        throw new RangeError(
          `backward: grad of shape [${grad.shape.join(', ')}] does not match the tensor's shape [${this.shape.join(', ')}]`,
        );
      }
      seed = grad.data;
    }
    const order = topologicalOrder(this);
    const sink = gradSink(this);
    if (sink === null) return;
    native.axpy(seed.length, 1, seed, sink);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const fn = t.gradFn;
      const acc = t.gradAcc;
      if (fn === null) continue;
      t.gradAcc = null;
      if (acc !== null) fn.backward(acc);
      if (!options.retainGraph) t.gradFn = freedGraph;
    }
  }

  /**
   * @internal The gradient accumulator for this tensor, allocated on first use
   * and zeroed by a kernel (so a plan zeroes it on every replay, or lets the
   * first write overwrite it). A leaf's is its own buffer (.grad), an
   * intermediate's an op output buffer (placed in a plan's arena).
   */
  accumulator(): Float32Array {
    if (this.gradFn === null) {
      if (this.grad === null) {
        const data = new Float32Array(this.size);
        js.fill(data.length, 0, data);
        this.grad = new Tensor(data, this.shape);
      }
      return this.grad.data;
    }
    if (this.gradAcc === null) {
      this.gradAcc = outputBuffer(this.size);
      js.fill(this.gradAcc.length, 0, this.gradAcc);
    }
    return this.gradAcc;
  }
}

export type NestedArray = number | NestedArray[];

/**
 * The buffer an op's backward adds the gradient of `t` into, or null when `t`
 * needs no gradient (so the op can skip that work).
 */
export function gradSink(t: Tensor | null): Float32Array | null {
  if (t === null || !t.requiresGrad) return null;
  return t.accumulator();
}

/**
 * Attaches `backward` to `out` when grad mode is on and an input requires grad.
 * Returns `out` for convenience.
 */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly (Tensor | null)[],
  backward: (grad: Float32Array) => void,
): Tensor {
  if (!gradEnabled) return out;
  const tracked = inputs.filter((t): t is Tensor => t !== null && t.requiresGrad);
  if (tracked.length === 0) return out;
  out.requiresGrad = true;
  out.gradFn = { name, inputs: tracked, backward };
  return out;
}

// Iterative depth-first search: residual networks are deep enough to overflow
// a recursive walk.
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, next] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (next < inputs.length) {
      top[1] = next + 1;
      const child = inputs[next];
      if (!visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

/**
 * @internal A new buffer of n floats that is not zero-filled, for op outputs
 * the kernels overwrite completely: zeroing a large activation costs a pass over
 * memory. Each buffer is its own allocation (never a slice of a shared pool).
 */
export function outputBuffer(n: number): Float32Array {
  let data: Float32Array;
  if (n < 1024 && !dryCapture()) {
    data = new Float32Array(n);
  } else {
    // Not zero-filled: the kernels overwrite it, or in a dry capture nothing touches it (so its
    // pages take no memory).
    const bytes = Buffer.allocUnsafeSlow(n * 4);
    data = new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  captureAllocation(data);
  return data;
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks a user-supplied shape and returns a copy. */
export function checkShape(op: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: ${name} must be an array of sizes, got ${typeof shape}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${op}: ${name} [${shape.join(', ')}] must hold non-negative integers`);
    }
  }
  const size = shapeSize(shape as number[]);
  if (size > 2 ** 31 - 1) throw new RangeError(`${op}: ${name} [${shape.join(', ')}] has more than 2^31 - 1 elements`);
  return [...(shape as number[])];
}

export interface TensorOptions {
  requiresGrad?: boolean;
}

function flattenNested(data: unknown, out: number[], shape: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) {
      // Once a number has been seen the depth of the leaves is fixed: an array there is ragged.
      if (out.length > 0) throw new RangeError('tensor: nested arrays are ragged');
      shape.push(data.length);
    } else if (shape[depth] !== data.length) throw new RangeError('tensor: nested arrays are ragged');
    for (const v of data) flattenNested(v, out, shape, depth + 1);
  } else {
    if (shape.length !== depth) throw new RangeError('tensor: nested arrays are ragged');
    out.push(data as number);
  }
}

/**
 * A new tensor holding a copy of `data` (an array-like, nested arrays or a
 * Float32Array). Without `shape` the shape is read from nesting.
 */
export function tensor(data: ArrayLike<number> | NestedArray, shape?: Shape, options: TensorOptions = {}): Tensor {
  let values: Float32Array;
  let inferred: number[];
  if (data instanceof Float32Array || ArrayBuffer.isView(data)) {
    values = Float32Array.from(data as ArrayLike<number>);
    inferred = [values.length];
  } else if (typeof data === 'number') {
    values = new Float32Array([data]);
    inferred = [];
  } else if (Array.isArray(data)) {
    const flat: number[] = [];
    inferred = [];
    flattenNested(data, flat, inferred, 0);
    for (const v of flat) {
      if (typeof v !== 'number') throw new TypeError(`tensor: data must hold numbers, found ${typeof v}`);
    }
    values = Float32Array.from(flat);
  } else if (data !== null && typeof data === 'object' && typeof (data as ArrayLike<number>).length === 'number') {
    values = Float32Array.from(data as ArrayLike<number>);
    inferred = [values.length];
  } else {
    throw new TypeError(`tensor: data must be an array, array-like or Float32Array, got ${data === null ? 'null' : typeof data}`);
  }
  const finalShape = shape === undefined ? inferred : checkShape('tensor', 'shape', shape);
  if (shapeSize(finalShape) !== values.length) {
    throw new RangeError(
      `tensor: data has ${values.length} elements but shape [${finalShape.join(', ')}] needs ${shapeSize(finalShape)}`,
    );
  }
  return new Tensor(values, finalShape, options.requiresGrad ?? false);
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  const s = checkShape('zeros', 'shape', shape);
  return new Tensor(new Float32Array(shapeSize(s)), s, options.requiresGrad ?? false);
}

export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  checkShape('ones', 'shape', shape); // so a bad shape is reported as ones's, not full's
  return full(shape, 1, options);
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  const s = checkShape('full', 'shape', shape);
  return new Tensor(new Float32Array(shapeSize(s)).fill(value), s, options.requiresGrad ?? false);
}

export interface RandomOptions extends TensorOptions {
  /** Seed for a private generator; without it the default generator is used. */
  seed?: number;
  generator?: Generator;
}

function pickGenerator(op: string, options: RandomOptions): Generator {
  if (options.generator !== undefined) return options.generator;
  if (options.seed !== undefined) {
    if (!Number.isFinite(options.seed)) throw new RangeError(`${op}: seed must be a finite number, got ${options.seed}`);
    return new Generator(options.seed);
  }
  return defaultGenerator;
}

/** Standard normal values. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  const s = checkShape('randn', 'shape', shape);
  const gen = pickGenerator('randn', options);
  const data = new Float32Array(shapeSize(s));
  for (let i = 0; i < data.length; i++) data[i] = gen.normal();
  return new Tensor(data, s, options.requiresGrad ?? false);
}

/** Uniform values in [low, high). */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const s = checkShape('rand', 'shape', shape);
  const gen = pickGenerator('rand', options);
  const low = options.low ?? 0;
  const high = options.high ?? 1;
  const data = new Float32Array(shapeSize(s));
  for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * gen.uniform();
  return new Tensor(data, s, options.requiresGrad ?? false);
}
