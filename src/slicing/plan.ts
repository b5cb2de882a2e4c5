// Inference plans: one forward pass of a model, at one slice rate and one input
// shape, captured as the list of kernel calls it makes (capture.ts) and
// replayed with every intermediate placed in one preallocated arena. Buffers
// whose lifetimes do not overlap share arena space, so a replay allocates
// nothing, touches a working set the size of the few activations alive at a
// time (cache-resident for slices of a few images), and skips the argument
// checks, shape arithmetic and tensor objects of the eager path.
import { captureCalls, type CapturedStep } from '../capture.js';
import type { Module } from '../nn/module.js';
import { noGrad, outputBuffer, Tensor } from '../tensor.js';

// Arena offsets are aligned to a cache line.
const ALIGN = 64;

type Step = { kind: 'native'; fn: (...args: unknown[]) => unknown; args: unknown[] } | { kind: 'js'; run: () => void };

/** A forward pass at a fixed rate and input shape, replayable without allocation. */
export class InferencePlan {
  readonly rate: number;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  /** Bytes of the intermediate arena. */
  readonly arenaBytes: number;
  /** Bytes the same intermediates take when each has its own buffer (the eager pass). */
  readonly eagerBytes: number;
  private readonly steps: Step[];
  private readonly input: Float32Array;
  private readonly output: Float32Array;
  private readonly state: { tensor: Tensor; data: Float32Array }[];

  private constructor(init: {
    rate: number;
    inputShape: number[];
    outputShape: number[];
    arenaBytes: number;
    eagerBytes: number;
    steps: Step[];
    input: Float32Array;
    output: Float32Array;
    state: { tensor: Tensor; data: Float32Array }[];
  }) {
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
   * `inputShape` (the model must be in eval mode). Returns null, with the
   * reason, when the pass computes something a replay cannot repeat.
   */
  static build(model: Module, inputShape: readonly number[]): InferencePlan | string {
    const size = inputShape.reduce((a, b) => a * b, 1);
    const input = outputBuffer(size);
    input.fill(0);
    const { result: out, capture } = captureCalls(() => noGrad(() => model.forward(new Tensor(input, [...inputShape]))));
    if (capture.unsupported !== null) return capture.unsupported;
    if (!(out instanceof Tensor)) return 'forward did not return a Tensor';

    // Lifetimes, in steps, of every buffer allocated during the pass.
    const first = new Map<ArrayBufferLike, number>();
    const last = new Map<ArrayBufferLike, number>();
    const note = (v: unknown, i: number) => {
      if (!ArrayBuffer.isView(v) || !capture.allocated.has(v.buffer)) return;
      if (!first.has(v.buffer)) first.set(v.buffer, i);
      last.set(v.buffer, i);
    };
    capture.steps.forEach((s, i) => {
      if (s.kind === 'native') for (const a of s.args) note(a, i);
    });
    const end = capture.steps.length;
    if (capture.allocated.has(out.data.buffer)) {
      if (!first.has(out.data.buffer)) first.set(out.data.buffer, end);
      last.set(out.data.buffer, end);
    }

    // Linear-scan placement: at each step place the buffers first used there,
    // then release those last used there (so a step's inputs and outputs never
    // share space), reusing the lowest free range that fits.
    const offsets = new Map<ArrayBufferLike, number>();
    const free: [number, number][] = []; // [offset, bytes], sorted by offset
    let top = 0;
    let eagerBytes = 0;
    const byFirst = new Map<number, ArrayBufferLike[]>();
    const byLast = new Map<number, ArrayBufferLike[]>();
    for (const [buf, i] of first) (byFirst.get(i) ?? byFirst.set(i, []).get(i)!).push(buf);
    for (const [buf, i] of last) (byLast.get(i) ?? byLast.set(i, []).get(i)!).push(buf);
    const place = (bytes: number): number => {
      for (let k = 0; k < free.length; k++) {
        const [at, len] = free[k];
        if (len < bytes) continue;
        if (len === bytes) free.splice(k, 1);
        else free[k] = [at + bytes, len - bytes];
        return at;
      }
      const at = top;
      top += bytes;
      return at;
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
      // A free range at the top shrinks the arena's high-water mark candidate.
      const tail = free[free.length - 1];
      if (tail !== undefined && tail[0] + tail[1] === top) {
        top = tail[0];
        free.pop();
      }
    };
    let arenaBytes = 0;
    const rounded = (buf: ArrayBufferLike) => Math.ceil(buf.byteLength / ALIGN) * ALIGN;
    for (let i = 0; i <= end; i++) {
      for (const buf of byFirst.get(i) ?? []) {
        offsets.set(buf, place(rounded(buf)));
        eagerBytes += buf.byteLength;
        arenaBytes = Math.max(arenaBytes, top);
      }
      for (const buf of byLast.get(i) ?? []) release(offsets.get(buf)!, rounded(buf));
    }

    const arena = new ArrayBuffer(arenaBytes);
    const views = new Map<ArrayBufferView, ArrayBufferView>();
    const relocate = (v: unknown): unknown => {
      if (!ArrayBuffer.isView(v) || !offsets.has(v.buffer)) return v;
      let moved = views.get(v);
      if (moved === undefined) {
        const Ctor = v.constructor as new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView;
        const per = (v as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
        moved = new Ctor(arena, offsets.get(v.buffer)! + v.byteOffset, v.byteLength / per);
        views.set(v, moved);
      }
      return moved;
    };
    const steps: Step[] = capture.steps.map((s: CapturedStep) => (s.kind === 'native' ? { kind: 'native', fn: s.fn, args: s.args.map(relocate) } : s));
    const state = stateTensors(model).map((tensor) => ({ tensor, data: tensor.data }));
    return new InferencePlan({
      rate: model.sliceRate,
      inputShape: [...inputShape],
      outputShape: [...out.shape],
      arenaBytes,
      eagerBytes,
      steps,
      input,
      output: relocate(out.data) as Float32Array,
      state,
    });
  }

  /** False once the model's parameters or buffers were replaced by new arrays (or the set changed). */
  validFor(model: Module): boolean {
    const now = stateTensors(model);
    if (now.length !== this.state.length) return false;
    for (let i = 0; i < now.length; i++) {
      if (now[i] !== this.state[i].tensor || now[i].data !== this.state[i].data) return false;
    }
    return true;
  }

  /** Runs the pass on x (inputShape elements from x[xOffset]) and copies the output to out[outOffset]. */
  run(x: Float32Array, xOffset: number, out: Float32Array, outOffset: number): void {
    this.input.set(x.subarray(xOffset, xOffset + this.input.length));
    for (const s of this.steps) {
      if (s.kind === 'native') s.fn(...s.args);
      else s.run();
    }
    out.set(this.output, outOffset);
  }
}

function stateTensors(model: Module): Tensor[] {
  return [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)];
}
