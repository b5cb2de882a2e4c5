// Arena placement and binding: where each intermediate of a plan lives in one
// preallocated buffer (by the lifetimes of the buffers in the calls), and the
// calls as a template that holds no captured buffer, bound to an arena when a
// plan runs (and rebound when an arena it shares grows).
import type { CapturedStep } from '../capture.js';
import { buffers } from '../kernels.js';

// Arena offsets are aligned to a cache line.
const ALIGN = 64;

/** @internal What an eager pass allocates: every op output of the capture, those the plan passes removed included. */
export function allocatedBytes(allocated: ReadonlySet<ArrayBufferLike>): number {
  let bytes = 0;
  for (const b of allocated) bytes += b.byteLength;
  return bytes;
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
): { offsets: Map<ArrayBufferLike, number>; arenaBytes: number } {
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
  for (let i = 0; i <= end; i++) {
    for (const buf of byFirst.get(i) ?? []) {
      offsets.set(buf, place(rounded(buf)));
      arenaBytes = Math.max(arenaBytes, top);
    }
    for (const buf of byLast.get(i) ?? []) release(offsets.get(buf)!, rounded(buf));
  }
  return { offsets, arenaBytes };
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
