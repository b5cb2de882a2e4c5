// Capture of a pass (a forward pass, or a whole training step) as a
// replayable list of kernel calls, the machinery behind plans
// (slicing/plan.ts, slicing/train-plan.ts). While a capture is open, every
// kernel call, native or JavaScript (kernels.ts declares both), is recorded
// with its arguments and every op output buffer allocated is noted; ops
// compute nothing outside kernels, so the list is the whole computation.
// Every tensor made during a capture is noted with the module whose forward
// was running (when the caller says which, see enterModule), so work a custom
// module did in JavaScript, whose values a replay would freeze, can be found
// and named. A capture records; it never changes what the pass computes.

import { KERNELS, type KernelCall } from './kernels.js';

/** A recorded kernel call: fn(...args), with its declaration (kernels.ts) to read the args by role. */
export interface CapturedStep extends KernelCall {
  readonly name: string;
  readonly fn: (...args: unknown[]) => unknown;
  readonly args: unknown[];
}

export class Capture {
  readonly steps: CapturedStep[] = [];
  /** Buffers of op outputs allocated during the capture (safe to relocate). */
  readonly allocated = new Set<ArrayBufferLike>();
  /** Buffers of tensors made during the capture, with the module running then ('' when unknown). */
  readonly made = new Map<ArrayBufferLike, string>();
  /** Why the pass cannot be replayed, or null. */
  unsupported: string | null = null;
  /** The modules whose forward is running, innermost last. */
  readonly moduleStack: string[] = [];
  /**
   * A dry capture records the calls without running them: nothing is
   * computed, no state changes, and op outputs are zero-filled allocations no
   * kernel touches (so they take address space, not memory). A plan is built
   * from one and then run.
   */
  constructor(readonly dry = false) {}
}

let active: Capture | null = null;

/**
 * @internal Runs fn with a capture open and returns what it recorded; with
 * `dry`, kernels are recorded and not run (fn's results hold no values).
 */
export function captureCalls<T>(fn: () => T, dry = false): { result: T; capture: Capture } {
  if (active !== null) throw new Error('captureCalls: a capture is already open');
  const capture = new Capture(dry);
  active = capture;
  try {
    return { result: fn(), capture };
  } finally {
    active = null;
  }
}

/**
 * @internal Called by the kernel wrapper for every call; true when the call
 * must not run (a kernel in a dry capture).
 */
export function captureNative(name: string, fn: (...args: unknown[]) => unknown, args: unknown[]): boolean {
  if (active === null) return false;
  const decl = KERNELS.get(name);
  // Entry points that are not kernels (thread counts, queries) compute nothing a replay needs.
  if (decl === undefined) return false;
  for (const a of args) {
    const plain = a === null || a === undefined || typeof a === 'number' || typeof a === 'boolean' || ArrayBuffer.isView(a) || Array.isArray(a);
    if (!plain) active.unsupported ??= `kernel ${name} takes an argument the capture cannot relocate`;
  }
  active.steps.push({ name, fn, args, decl });
  return active.dry;
}

/** @internal Whether a dry capture is open (op outputs then need no real memory). */
export function dryCapture(): boolean {
  return active !== null && active.dry;
}

/** @internal Called by an op that read something a replay could not read again (why, in a phrase). */
export function captureUnsupported(why: string): void {
  if (active !== null) active.unsupported ??= why;
}

/** @internal Called by outputBuffer for every op output allocation. */
export function captureAllocation(data: Float32Array): void {
  active?.allocated.add(data.buffer);
}

/** @internal Notes that `label`'s forward starts (when a capture is open). */
export function enterModule(label: string): void {
  active?.moduleStack.push(label);
}

/** @internal Notes that the innermost forward returned. */
export function exitModule(): void {
  active?.moduleStack.pop();
}

/** @internal Called by the Tensor constructor. */
export function captureTensor(data: Float32Array): void {
  if (active === null || active.made.has(data.buffer)) return;
  active.made.set(data.buffer, active.moduleStack[active.moduleStack.length - 1] ?? '');
}
