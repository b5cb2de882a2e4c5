// Capture of one forward pass as a replayable list of kernel calls, the
// machinery behind inference plans (slicing/plan.ts). While a capture is open,
// every native kernel call is recorded with its arguments, every op output
// buffer allocated is noted, and ops whose forward computes in JavaScript
// either register that computation as a step of its own (batchNorm's
// per-channel scale and shift) or mark the capture as unusable (sum, losses).
// Every tensor made during a capture is noted with the module whose forward
// was running (when the caller says which, see enterModule), so work a custom
// module did in JavaScript, whose values a replay would freeze, can be found
// and named. A capture records; it never changes what the pass computes.

import { KERNELS, type KernelCall } from './kernels.js';

/** A recorded kernel call: fn(...args), with its declaration (kernels.ts) to read the args by role. */
export interface NativeStep extends KernelCall {
  readonly kind: 'native';
  readonly name: string;
  readonly fn: (...args: unknown[]) => unknown;
  readonly args: unknown[];
}

/** A recorded JavaScript computation over buffers that are not op outputs. */
export interface JsStep {
  readonly kind: 'js';
  readonly run: () => void;
}

export type CapturedStep = NativeStep | JsStep;

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
}

let active: Capture | null = null;

/** @internal Runs fn with a capture open and returns what it recorded. */
export function captureCalls<T>(fn: () => T): { result: T; capture: Capture } {
  if (active !== null) throw new Error('captureCalls: a capture is already open');
  const capture = new Capture();
  active = capture;
  try {
    return { result: fn(), capture };
  } finally {
    active = null;
  }
}

/** @internal Called by the native wrapper for every kernel call. */
export function captureNative(name: string, fn: (...args: unknown[]) => unknown, args: unknown[]): void {
  if (active === null) return;
  const decl = KERNELS.get(name);
  // Entry points that are not kernels (thread counts, queries) compute nothing a replay needs.
  if (decl === undefined) return;
  for (const a of args) {
    const plain = a === null || a === undefined || typeof a === 'number' || typeof a === 'boolean' || ArrayBuffer.isView(a) || Array.isArray(a);
    if (!plain) active.unsupported ??= `kernel ${name} takes an argument the capture cannot relocate`;
  }
  active.steps.push({ kind: 'native', name, fn, args, decl });
}

/** @internal Called by ops for a JS computation that replays must repeat. */
export function captureJs(run: () => void): void {
  active?.steps.push({ kind: 'js', run });
}

/** @internal Called by ops whose forward pass cannot be replayed. */
export function captureUnsupported(op: string): void {
  if (active !== null) active.unsupported ??= `${op} computes in JavaScript`;
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
