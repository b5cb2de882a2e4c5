// Programs: a plan's native kernel calls bound once by the addon (planCompile) and run in
// ranges (planRun). A replay through JavaScript pays, on every call, N-API's reading of up to
// 16 arguments and the generated checks: about a microsecond, as much as a narrow kernel at
// batch 1, where a pass is a hundred calls. A program checks each call once, when it is
// compiled, and then runs a whole range of them in one N-API call.
//
// Calls a program cannot hold run as before, in order, between its ranges: kernels computed
// in JavaScript, and calls whose arguments change from run to run (a decode step's cache
// length). The closures in the addon hold the buffers' data pointers, so the program keeps
// every array it names, and before each run checks that none of their ArrayBuffers has been
// detached (transferred to another thread) or resized since it was compiled: a stale pointer
// is refused, never followed. While a kernel profile is recorded, a program runs call by call,
// so the profile still sees every kernel.
import type { CapturedStep } from './capture.js';
import { native, profiling } from './native.js';

type Segment = { readonly from: number; readonly to: number } | { readonly step: CapturedStep };

export class Program {
  private readonly handle: unknown;
  private readonly segments: readonly Segment[];
  private readonly buffers: readonly ArrayBufferLike[];
  private readonly byteLengths: readonly number[];
  /** Calls the addon holds bound. */
  readonly compiled: number;

  /**
   * Binds `steps` (a plan's calls, in order) except those in `dynamic` (their arguments change
   * between runs) and the JavaScript kernels. The addon checks each call as it would when
   * called, so a bad call is refused here, by name.
   */
  constructor(
    private readonly steps: readonly CapturedStep[],
    dynamic: ReadonlySet<CapturedStep> = new Set(),
  ) {
    const calls: [string, unknown[]][] = [];
    const segments: Segment[] = [];
    for (const s of steps) {
      if (s.decl.runs !== 'native' || dynamic.has(s)) {
        segments.push({ step: s });
        continue;
      }
      const last = segments[segments.length - 1];
      if (last !== undefined && 'to' in last && last.to === calls.length) segments[segments.length - 1] = { from: last.from, to: calls.length + 1 };
      else segments.push({ from: calls.length, to: calls.length + 1 });
      calls.push([s.name, s.args]);
    }
    this.handle = native.planCompile(calls);
    this.segments = segments;
    this.compiled = calls.length;
    const seen = new Set<ArrayBufferLike>();
    for (const [, args] of calls) for (const a of args) if (ArrayBuffer.isView(a)) seen.add(a.buffer);
    this.buffers = [...seen];
    this.byteLengths = this.buffers.map((b) => b.byteLength);
  }

  /** Runs every call in order. */
  run(): void {
    if (profiling()) {
      for (const s of this.steps) s.fn(...s.args);
      return;
    }
    for (let i = 0; i < this.buffers.length; i++) {
      if (this.buffers[i].byteLength !== this.byteLengths[i]) {
        throw new Error(
          `plan: an array it computes with was detached or resized (an ArrayBuffer of ${this.byteLengths[i]} bytes now has ${this.buffers[i].byteLength}); the plan must be built again`,
        );
      }
    }
    for (const seg of this.segments) {
      if ('step' in seg) seg.step.fn(...seg.step.args);
      else native.planRun(this.handle, seg.from, seg.to);
    }
  }
}
