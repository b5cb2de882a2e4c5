// Inference plans: one forward pass of a model, at one slice rate and one input
// shape, captured as the list of kernel calls it makes (capture.ts) and
// replayed with every intermediate placed in one preallocated arena. Buffers
// whose lifetimes do not overlap share arena space, so a replay allocates
// nothing, touches a working set the size of the few activations alive at a
// time (cache-resident for slices of a few images), and skips the argument
// checks, shape arithmetic and tensor objects of the eager path. Residual adds
// are folded into the convolution before them (fuseResidualAdds).
import { captureCalls, enterModule, exitModule, type Capture, type CapturedStep } from '../capture.js';
import { arg, attr, buffers, withArgs } from '../kernels.js';
import type { Module } from '../nn/module.js';
import { noGrad, Tensor } from '../tensor.js';

// Arena offsets are aligned to a cache line.
const ALIGN = 64;

/**
 * @internal The tensors a plan reads in place (a model's parameters and
 * buffers) and their arrays when it was built: a plan is valid while the same
 * tensors hold the same arrays.
 */
export class StateSnapshot {
  private readonly tensors: readonly Tensor[];
  private readonly arrays: readonly Float32Array[];

  constructor(now: readonly Tensor[]) {
    this.tensors = [...now];
    this.arrays = now.map((t) => t.data);
  }

  /** False once a tensor was replaced, its array replaced, or the set changed. */
  matches(now: readonly Tensor[]): boolean {
    if (now.length !== this.tensors.length) return false;
    return now.every((t, i) => t === this.tensors[i] && t.data === this.arrays[i]);
  }
}

/** A forward pass at a fixed rate and input shape, replayable without allocation. */
export class InferencePlan {
  readonly rate: number;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  /** Bytes of the intermediate arena. */
  readonly arenaBytes: number;
  /** Bytes the same intermediates take when each has its own buffer (the eager pass). */
  readonly eagerBytes: number;
  /** Residual adds folded into the convolution before them. */
  readonly fusedAdds: number;
  private readonly steps: CapturedStep[];
  private readonly input: Float32Array;
  private readonly output: Float32Array;
  private readonly state: StateSnapshot;

  private constructor(init: {
    rate: number;
    inputShape: number[];
    outputShape: number[];
    arenaBytes: number;
    eagerBytes: number;
    steps: CapturedStep[];
    input: Float32Array;
    output: Float32Array;
    fusedAdds: number;
    state: StateSnapshot;
  }) {
    this.fusedAdds = init.fusedAdds;
    this.rate = init.rate;
    this.inputShape = init.inputShape;
    this.outputShape = init.outputShape;
    this.arenaBytes = init.arenaBytes;
    this.eagerBytes = init.eagerBytes;
    this.steps = init.steps;
    this.input = init.input;
    this.output = init.output;
    this.state = init.state;
  }

  /**
   * Captures model.forward at the model's current rate for inputs of
   * `inputShape` (the model must be in eval mode), dry: recorded, not run,
   * so building a plan changes nothing in the model. Returns the reason, as a
   * string, when the pass computes something a replay cannot repeat: an op
   * that computes in JavaScript, or a module whose forward made a tensor
   * outside the kernels (its values would be replayed as captured).
   */
  static build(model: Module, inputShape: readonly number[]): InferencePlan | string {
    const size = inputShape.reduce((a, b) => a * b, 1);
    const input = new Float32Array(size);
    const { result: out, capture } = captureCalls(
      () => withModuleLabels(model, () => noGrad(() => model.forward(new Tensor(input, [...inputShape])))),
      true,
    );
    if (capture.unsupported !== null) return capture.unsupported;
    if (!(out instanceof Tensor)) return 'forward did not return a Tensor';
    const refused = jsWork(model, capture, input, out.data);
    if (refused !== null) return refused;
    const fused = fuseResidualAdds(capture.steps, capture.allocated, out.data);
    const { offsets, arenaBytes, eagerBytes } = placeInArena(fused.steps, capture.allocated, [fused.output]);
    const layout = new ArenaLayout(offsets);
    const arena = new ArrayBuffer(arenaBytes);
    const steps = bindSteps(layout.template(fused.steps), arena);
    const output = layout.bind(layout.ref(fused.output), arena) as Float32Array;
    const state = new StateSnapshot(InferencePlan.state(model));
    return new InferencePlan({
      rate: model.sliceRate,
      inputShape: [...inputShape],
      outputShape: [...out.shape],
      arenaBytes,
      eagerBytes,
      steps,
      input,
      output,
      fusedAdds: fused.count,
      state,
    });
  }

  /**
   * False once the model's parameters or buffers (`InferencePlan.state(model)`,
   * taken once per call by callers checking several plans) were replaced by
   * new arrays, or the set changed.
   */
  validFor(now: readonly Tensor[]): boolean {
    return this.state.matches(now);
  }

  /** The tensors a plan reads in place: the model's parameters and buffers. */
  static state(model: Module): Tensor[] {
    return [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)];
  }

  /** Runs the pass on x (inputShape elements from x[xOffset]) and copies the output to out[outOffset]. */
  run(x: Float32Array, xOffset: number, out: Float32Array, outOffset: number): void {
    this.input.set(x.subarray(xOffset, xOffset + this.input.length));
    for (const s of this.steps) s.fn(...s.args);
    out.set(this.output, outOffset);
  }
}


/**
 * @internal Runs fn with every module's forward announcing itself to the capture, so a
 * tensor made during the pass can be traced to the module that made it.
 */
export function withModuleLabels<T>(model: Module, fn: () => T): T {
  const restore: (() => void)[] = [];
  const seen = new Set<Module>();
  try {
    for (const [name, m] of model.namedModules()) {
      if (seen.has(m)) continue;
      seen.add(m);
      const label = `${m.constructor.name} (${name === '' ? 'the model' : `module '${name}'`})`;
      const own = Object.getOwnPropertyDescriptor(m, 'forward');
      const original = m.forward;
      m.forward = function (this: Module, x: Tensor): Tensor {
        enterModule(label);
        try {
          return original.call(this, x);
        } finally {
          exitModule();
        }
      };
      restore.push(() => {
        if (own !== undefined) Object.defineProperty(m, 'forward', own);
        else delete (m as { forward?: unknown }).forward;
      });
    }
    return fn();
  } finally {
    for (const undo of restore.reverse()) undo();
  }
}

/**
 * Why a captured pass cannot be replayed because part of it ran in
 * JavaScript, or null. A replay repeats kernel calls only, so a value computed
 * in JavaScript during the capture would come back unchanged for every input:
 * the output must be an op's output that a kernel wrote (or the input itself),
 * and no kernel may read a tensor made during the capture outside the ops.
 */
function jsWork(model: Module, capture: Capture, input: Float32Array, output: Float32Array): string | null {
  const state = new Set(InferencePlan.state(model).map((t) => t.data.buffer));
  const maker = (buf: ArrayBufferLike) => capture.made.get(buf) || `${model.constructor.name} (the model)`;
  const outBuf = output.buffer;
  if (outBuf !== input.buffer) {
    const written = capture.steps.some((s) => buffers(s).some((b) => b.access !== 'read' && b.view.buffer === outBuf));
    if (!capture.allocated.has(outBuf) || !written) {
      return `${maker(outBuf)} computes in JavaScript: the output was not written by a kernel, so a replay would return the captured values for every input`;
    }
  }
  return readsMadeTensor(model, capture, new Set([...state, input.buffer]), false);
}

/**
 * @internal Why a captured pass cannot be replayed because a kernel reads a
 * tensor made during the capture outside the kernels (its values would be
 * replayed as captured), or null. `allowed`: buffers a replay reads as they are
 * then (parameters, the inputs). With `stepCode`, tensors made outside every
 * module's forward (a training step's own constants) are allowed.
 */
export function readsMadeTensor(model: Module, capture: Capture, allowed: ReadonlySet<ArrayBufferLike>, stepCode: boolean): string | null {
  for (const s of capture.steps) {
    for (const { view, access } of buffers(s)) {
      const buf = view.buffer;
      if (access === 'write' || !capture.made.has(buf) || capture.allocated.has(buf) || allowed.has(buf)) continue;
      const label = capture.made.get(buf)!;
      if (stepCode && label === '') continue;
      return `${label || `${model.constructor.name} (the model)`} computes in JavaScript: kernel ${s.name} reads a tensor made outside the kernels, which a replay would not recompute`;
    }
  }
  return null;
}

const isWhole = (v: ArrayBufferView) => v.byteOffset === 0 && v.byteLength === v.buffer.byteLength;

/** Row-major element strides of a shape. */
function contiguousStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i];
  }
  return out;
}

/** Steps (ascending, each once) that use each buffer. */
function bufferUses(steps: readonly CapturedStep[]): Map<ArrayBufferLike, number[]> {
  const uses = new Map<ArrayBufferLike, number[]>();
  steps.forEach((s, i) => {
    for (const { view } of buffers(s)) {
      const list = uses.get(view.buffer) ?? [];
      if (list[list.length - 1] !== i) list.push(i);
      uses.set(view.buffer, list);
    }
  });
  return uses;
}

/** Buffers a pass merged into others: each one's root, and calls moved onto the roots. */
class Aliases {
  private readonly to = new Map<ArrayBufferLike, ArrayBufferLike>();

  root(b: ArrayBufferLike): ArrayBufferLike {
    while (this.to.has(b)) b = this.to.get(b)!;
    return b;
  }

  has(b: ArrayBufferLike): boolean {
    return this.to.has(b);
  }

  set(from: ArrayBufferLike, to: ArrayBufferLike): void {
    this.to.set(from, to);
  }

  /** A view of a merged buffer as the same view of its root; anything else unchanged. */
  move = (v: unknown): unknown => {
    if (!(v instanceof Float32Array) || !this.to.has(v.buffer)) return v;
    return new Float32Array(this.root(v.buffer) as ArrayBuffer, v.byteOffset, v.length);
  };

  /** The steps without the dropped ones, their buffers moved onto the roots. */
  rewrite(steps: readonly CapturedStep[], dropped: ReadonlySet<number>): CapturedStep[] {
    return steps.filter((_, k) => !dropped.has(k)).map((s) => ({ ...s, args: s.args.map(this.move) }));
  }
}

/**
 * Folds `add(conv(x), r)` into the convolution when nothing else reads the
 * convolution's output and r is not read again: the convolution accumulates
 * into r's buffer (kernels add to what is there), and the add's output becomes
 * that buffer. A pre-activation residual block ends this way, so this saves one
 * pass over each block's output. The sum is the same up to rounding (the
 * convolution's partial sums meet r in another order).
 */
/** @internal */
export function fuseResidualAdds(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
  output: Float32Array,
): { steps: CapturedStep[]; output: Float32Array; count: number } {
  const alias = new Aliases();
  const root = (b: ArrayBufferLike) => alias.root(b);
  const uses = bufferUses(steps);
  const out: CapturedStep[] = [...steps];
  const dropped = new Set<number>();
  let count = 0;
  steps.forEach((s, j) => {
    if (s.name !== 'binary' || attr(s, 'op') !== 0) return;
    const [a, b, o] = [arg(s, 'a'), arg(s, 'b'), arg(s, 'out')] as Float32Array[];
    if (a.length !== o.length || b.length !== o.length || !allocated.has(o.buffer) || !isWhole(o)) return;
    for (const [y, r] of [
      [a, b],
      [b, a],
    ]) {
      const yUses = uses.get(root(y.buffer)) ?? [];
      if (!allocated.has(y.buffer) || alias.has(y.buffer) || yUses.length !== 2 || yUses[1] !== j) continue;
      const i = yUses[0];
      const conv = out[i];
      if (conv.name !== 'conv2dForward' || arg(conv, 'y') !== y || arg(conv, 'bias') !== null) continue;
      if (attr(conv, 'params', 'groups') !== 1) continue;
      const rb = root(r.buffer);
      const rUses = uses.get(rb) ?? [];
      if (!allocated.has(r.buffer) || !isWhole(r) || rb === root(output.buffer)) continue;
      if (rUses[rUses.length - 1] !== j || rUses.some((k) => k >= i && k < j)) continue;
      const oUses = uses.get(o.buffer) ?? [];
      if (oUses[0] !== j || o.length !== r.length) continue;
      out[i] = { ...conv, args: withArgs(conv, { y: r, accumulate: true }) };
      dropped.add(j);
      alias.set(o.buffer, rb);
      uses.set(rb, [...new Set([...rUses.filter((k) => k !== j), i, ...oUses.filter((k) => k !== j)])].sort((p, q) => p - q));
      uses.delete(o.buffer);
      count++;
      break;
    }
  });
  if (count === 0) return { steps: [...steps], output, count };
  return { steps: alias.rewrite(out, dropped), output: alias.move(output) as Float32Array, count };
}

/**
 * @internal Arena offsets for the buffers allocated during a pass (a linear
 * scan over their lifetimes in steps; `outputs` live to the end): at each step
 * place the buffers first used there, then release those last used there, so a
 * step's inputs and outputs never share space, reusing the lowest free range
 * that fits.
 */
export function placeInArena(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
  outputs: readonly ArrayBufferView[],
): { offsets: Map<ArrayBufferLike, number>; arenaBytes: number; eagerBytes: number } {
  const first = new Map<ArrayBufferLike, number>();
  const last = new Map<ArrayBufferLike, number>();
  const note = (v: unknown, i: number) => {
    if (!ArrayBuffer.isView(v) || !allocated.has(v.buffer)) return;
    if (!first.has(v.buffer)) first.set(v.buffer, i);
    last.set(v.buffer, i);
  };
  steps.forEach((s, i) => {
    for (const { view } of buffers(s)) note(view, i);
  });
  const end = steps.length;
  for (const o of outputs) note(o, end);
  const byFirst = new Map<number, ArrayBufferLike[]>();
  const byLast = new Map<number, ArrayBufferLike[]>();
  for (const [buf, i] of first) (byFirst.get(i) ?? byFirst.set(i, []).get(i)!).push(buf);
  for (const [buf, i] of last) (byLast.get(i) ?? byLast.set(i, []).get(i)!).push(buf);

  const free: [number, number][] = []; // [offset, bytes], sorted by offset
  let top = 0;
  const place = (bytes: number): number => {
    for (let k = 0; k < free.length; k++) {
      const [at, len] = free[k];
      if (len < bytes) continue;
      if (len === bytes) free.splice(k, 1);
      else free[k] = [at + bytes, len - bytes];
      return at;
    }
    top += bytes;
    return top - bytes;
  };
  const release = (at: number, bytes: number) => {
    let k = 0;
    while (k < free.length && free[k][0] < at) k++;
    free.splice(k, 0, [at, bytes]);
    // Merge with the neighbours.
    if (k + 1 < free.length && free[k][0] + free[k][1] === free[k + 1][0]) {
      free[k][1] += free[k + 1][1];
      free.splice(k + 1, 1);
    }
    if (k > 0 && free[k - 1][0] + free[k - 1][1] === free[k][0]) {
      free[k - 1][1] += free[k][1];
      free.splice(k, 1);
    }
    // A free range at the top lowers the top.
    const tail = free[free.length - 1];
    if (tail !== undefined && tail[0] + tail[1] === top) {
      top = tail[0];
      free.pop();
    }
  };
  const offsets = new Map<ArrayBufferLike, number>();
  const rounded = (buf: ArrayBufferLike) => Math.ceil(buf.byteLength / ALIGN) * ALIGN;
  let arenaBytes = 0;
  let eagerBytes = 0;
  for (let i = 0; i <= end; i++) {
    for (const buf of byFirst.get(i) ?? []) {
      offsets.set(buf, place(rounded(buf)));
      eagerBytes += buf.byteLength;
      arenaBytes = Math.max(arenaBytes, top);
    }
    for (const buf of byLast.get(i) ?? []) release(offsets.get(buf)!, rounded(buf));
  }
  return { offsets, arenaBytes, eagerBytes };
}

type ViewCtor = new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView;

/** Where a view of an arena buffer lives: bound to an arena's ArrayBuffer when a plan runs. */
class ArenaRef {
  constructor(
    readonly ctor: ViewCtor,
    readonly byteOffset: number,
    readonly length: number,
  ) {}
}

/**
 * @internal The arena offsets of a captured pass, turning its steps into a
 * template that holds no captured buffer (arena views become ArenaRefs), so a
 * plan can be bound to any arena big enough, and rebound when one it shares
 * grows.
 */
export class ArenaLayout {
  private readonly refs = new Map<ArrayBufferView, ArenaRef>();
  constructor(private readonly offsets: ReadonlyMap<ArrayBufferLike, number>) {}

  /** The ArenaRef of a view of an arena buffer; any other value unchanged. */
  ref(v: unknown): unknown {
    if (!ArrayBuffer.isView(v) || !this.offsets.has(v.buffer)) return v;
    let r = this.refs.get(v);
    if (r === undefined) {
      const per = (v as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      r = new ArenaRef(v.constructor as ViewCtor, this.offsets.get(v.buffer)! + v.byteOffset, v.byteLength / per);
      this.refs.set(v, r);
    }
    return r;
  }

  template(steps: readonly CapturedStep[]): CapturedStep[] {
    return steps.map((s) => ({ ...s, args: s.args.map((a) => this.ref(a)) }));
  }

  /** A view of `arena` for an ArenaRef (`seen` shares one view per ref); any other value unchanged. */
  bind(v: unknown, arena: ArrayBuffer, seen = new Map<ArenaRef, ArrayBufferView>()): unknown {
    return v instanceof ArenaRef ? bindRef(v, arena, seen) : v;
  }
}

/** @internal A template's steps with their ArenaRefs bound to views of `arena`. */
export function bindSteps(template: readonly CapturedStep[], arena: ArrayBuffer, seen = new Map<ArenaRef, ArrayBufferView>()): CapturedStep[] {
  return template.map((s) => ({ ...s, args: s.args.map((a) => (a instanceof ArenaRef ? bindRef(a, arena, seen) : a)) }));
}

function bindRef(r: ArenaRef, arena: ArrayBuffer, seen: Map<ArenaRef, ArrayBufferView>): ArrayBufferView {
  let view = seen.get(r);
  if (view === undefined) seen.set(r, (view = new r.ctor(arena, r.byteOffset, r.length)));
  return view;
}

/**
 * @internal Gradient pass-through: an add's backward sums its output's
 * gradient g into each input's gradient buffer, which for same-shape inputs is
 * a copy into a buffer just zeroed. When that buffer's first use is the zero
 * fill and g is only read from then until the buffer's next use, the buffer
 * can be g itself: both the fill and the sum go, and later contributions add
 * into g once its last reader is done (while the buffer is only read, both
 * hold g's values). A residual block's add backward costs
 * nothing this way.
 */
export function aliasGradientSums(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
  outputs: readonly ArrayBufferView[],
): { steps: CapturedStep[]; count: number } {
  const alias = new Aliases();
  const root = (b: ArrayBufferLike) => alias.root(b);
  const uses = bufferUses(steps);
  const readsOnly = (i: number, buf: ArrayBufferLike) =>
    buffers(steps[i]).every((b) => root(b.view.buffer) !== buf || b.access === 'read');
  const outs = new Set(outputs.map((o) => o.buffer));
  const dropped = new Set<number>();
  let count = 0;
  steps.forEach((s, j) => {
    if (s.name !== 'sumTo' || attr(s, 'scale') !== 1) return;
    const g = arg(s, 'g') as Float32Array;
    const acc = arg(s, 'acc') as Float32Array;
    const shape = arg(s, 'shape') as number[];
    if (!allocated.has(g.buffer) || !allocated.has(acc.buffer) || !isWhole(g) || !isWhole(acc) || g.length !== acc.length) return;
    if (alias.has(acc.buffer) || outs.has(acc.buffer) || outs.has(root(g.buffer))) return;
    if (String(arg(s, 'accStrides')) !== String(contiguousStrides(shape))) return;
    const accUses = uses.get(acc.buffer)!;
    const fill = accUses[0];
    if (accUses[1] !== j || steps[fill].name !== 'fill' || dropped.has(fill) || arg(steps[fill], 'value') !== 0) return;
    // g must only be read from here on, and only before acc is next added to.
    const gb = root(g.buffer);
    const next = accUses.slice(2).find((k) => !readsOnly(k, acc.buffer)) ?? Infinity;
    const gUses = uses.get(gb)!;
    if (gUses.some((k) => k > j && (k >= next || !readsOnly(k, gb)))) return;
    alias.set(acc.buffer, gb);
    dropped.add(fill);
    dropped.add(j);
    uses.set(gb, [...new Set([...gUses, ...accUses])].filter((k) => !dropped.has(k)).sort((p, q) => p - q));
    uses.delete(acc.buffer);
    count++;
  });
  return { steps: count === 0 ? [...steps] : alias.rewrite(steps, dropped), count };
}

/**
 * @internal First writes overwrite: a gradient buffer is zeroed by a fill
 * before its first contribution is added. Where that first call can write
 * instead of add (a convolution's or group norm's input gradient, a GEMM
 * with beta 1) over the whole buffer, it is switched to writing and the fill
 * goes, saving a pass over the buffer.
 */
export function overwriteFirstWrites(steps: readonly CapturedStep[]): { steps: CapturedStep[]; count: number } {
  const pending = new Map<ArrayBufferLike, number>(); // buffer -> its fill, not yet followed by a use
  const out: CapturedStep[] = [...steps];
  const dropped = new Set<number>();
  steps.forEach((s, j) => {
    if (s.name === 'fill') {
      const y = arg(s, 'y') as Float32Array;
      if (arg(s, 'value') === 0 && isWhole(y) && arg(s, 'n') === y.length) pending.set(y.buffer, j);
      return;
    }
    for (const use of buffers(s)) {
      const fill = pending.get(use.view.buffer);
      if (fill === undefined) continue;
      pending.delete(use.view.buffer);
      if (!isWhole(use.view)) continue;
      let changes: Record<string, unknown> | null = null;
      if (s.name === 'conv2dBackwardInput' && use.name === 'gx') changes = { accumulate: false };
      else if (s.name === 'groupNormBackward' && use.name === 'gx') changes = { gxAccumulate: false };
      else if (s.name === 'gemm' && use.name === 'C' && attr(s, 'beta') === 1 && attr(s, 'cOffset') === 0) {
        const [m, n, ldc] = [attr(s, 'M'), attr(s, 'N'), attr(s, 'ldc')] as number[];
        if (ldc === n && m * n === use.view.length) changes = { beta: 0 };
      }
      if (changes === null) continue;
      out[j] = { ...s, args: withArgs(s, changes) };
      dropped.add(fill);
    }
  });
  return { steps: out.filter((_, k) => !dropped.has(k)), count: dropped.size };
}
