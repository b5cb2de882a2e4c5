// Inference plans: one forward pass of a model, at one slice rate and one input
// shape, captured as the list of kernel calls it makes (capture.ts) and
// replayed with every intermediate placed in one preallocated arena. Buffers
// whose lifetimes do not overlap share arena space, so a replay allocates
// nothing, touches a working set the size of the few activations alive at a
// time (cache-resident for slices of a few images), and skips the argument
// checks, shape arithmetic and tensor objects of the eager path. Residual adds
// are folded into the convolution before them (fuseResidualAdds), group norms
// (+ ReLU) into the convolutions after them (foldNormsIntoConvs), and their
// statistics into the convolutions before them (statsIntoConvs).
import { captureCalls, enterModule, exitModule, type Capture, type CapturedStep } from '../capture.js';
import { buffers } from '../kernels.js';
import type { Module } from '../nn/module.js';
import { Program } from '../program.js';
import { noGrad, Tensor } from '../tensor.js';
import { allocatedBytes, ArenaLayout, bindSteps, placeInArena } from './arena.js';
import { foldNormsIntoConvs, fuseResidualAdds, statsIntoConvs } from './passes.js';

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
  /** Group norms (+ ReLU) folded into the convolutions that read them. */
  readonly foldedNorms: number;
  /** Of those, norms whose statistics the convolution writing their input computes. */
  readonly statsInConvs: number;
  private readonly program: Program;
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
    foldedNorms: number;
    statsInConvs: number;
    state: StateSnapshot;
  }) {
    this.fusedAdds = init.fusedAdds;
    this.foldedNorms = init.foldedNorms;
    this.statsInConvs = init.statsInConvs;
    this.rate = init.rate;
    this.inputShape = init.inputShape;
    this.outputShape = init.outputShape;
    this.arenaBytes = init.arenaBytes;
    this.eagerBytes = init.eagerBytes;
    // Its native calls bound once in the addon (program.ts): a replay is then a few N-API calls.
    this.program = new Program(init.steps);
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
    const folded = foldNormsIntoConvs(fused.steps, capture.allocated, fused.output);
    const withStats = statsIntoConvs(folded.steps);
    const allocated = new Set([...capture.allocated, ...folded.added.map((m) => m.buffer)]);
    const { offsets, arenaBytes } = placeInArena(withStats.steps, allocated, [fused.output]);
    const eagerBytes = allocatedBytes(capture.allocated);
    const layout = new ArenaLayout(offsets);
    const arena = new ArrayBuffer(arenaBytes);
    const steps = bindSteps(layout.template(withStats.steps), arena);
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
      foldedNorms: folded.count,
      statsInConvs: withStats.count,
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
    this.program.run();
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
