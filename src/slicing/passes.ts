// Plan passes: rewrites of a captured list of kernel calls that read the calls
// by kernel and role (kernels.ts), never by argument position. Each keeps what
// the pass computes, up to rounding where it says so.
import type { CapturedStep } from '../capture.js';
import { arg, argOrDefault, attr, buffers, KERNELS, withArgs } from '../kernels.js';
import { native } from '../native.js';

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
 * Folds `add(conv(x), r)` into the convolution as its residual when only the add reads the
 * convolution's output: the convolution writes the add's output, y = conv(x) + r, as it
 * stores (conv2dForward's residual), and neither the convolution's own output nor the add's
 * pass over three tensors is left. Unlike fuseResidualAdds it keeps r, which a training step's
 * backward pass still reads (a pre-activation block's input feeds its first norm). The sum is
 * the same bit for bit: the convolution's value, then the one add. r must not be written
 * between the two steps, since the convolution now reads it first.
 */
/** @internal */
export function residualIntoConvs(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
): { steps: CapturedStep[]; count: number } {
  const uses = bufferUses(steps);
  const out: CapturedStep[] = [...steps];
  const dropped = new Set<number>();
  let count = 0;
  const writes = (k: number, b: ArrayBufferLike) => buffers(out[k]).some((u) => u.view.buffer === b && u.access !== 'read');
  steps.forEach((s, j) => {
    if (s.name !== 'binary' || attr(s, 'op') !== 0) return;
    const [a, b, o] = [arg(s, 'a'), arg(s, 'b'), arg(s, 'out')] as Float32Array[];
    const shape = arg(s, 'shape') as number[];
    const flat = String(contiguousStrides(shape));
    if (String(arg(s, 'aStrides')) !== flat || String(arg(s, 'bStrides')) !== flat) return;
    if (a.length !== o.length || b.length !== o.length || !allocated.has(o.buffer) || !isWhole(o)) return;
    if ((uses.get(o.buffer) ?? [])[0] !== j) return;
    for (const [y, r] of [
      [a, b],
      [b, a],
    ]) {
      if (!allocated.has(y.buffer) || !isWhole(y) || y.buffer === r.buffer || y.buffer === o.buffer || r.buffer === o.buffer) continue;
      const yUses = uses.get(y.buffer) ?? [];
      if (yUses.length !== 2 || yUses[1] !== j) continue;
      const i = yUses[0];
      const conv = out[i];
      if (conv.name !== 'conv2dForward' || arg(conv, 'y') !== y) continue;
      if ((arg(conv, 'accumulate') ?? false) !== false || (arg(conv, 'residual') ?? null) !== null) continue;
      let between = false;
      for (let k = i + 1; k < j && !between; k++) between = writes(k, r.buffer);
      if (between) continue;
      out[i] = { ...conv, args: withArgs(conv, { y: o, residual: r }) };
      dropped.add(j);
      count++;
      break;
    }
  });
  return { steps: out.filter((_, k) => !dropped.has(k)), count };
}

/** Whether a step in [from, to] writes any of the buffers. */
function writesAnyOf(steps: readonly CapturedStep[], from: number, to: number, bufs: readonly ArrayBufferLike[]): boolean {
  for (let k = from; k <= to; k++) {
    if (buffers(steps[k]).some((b) => b.access !== 'read' && bufs.includes(b.view.buffer))) return true;
  }
  return false;
}

/**
 * Replaces the groupNormForward step at i by groupNormStats (the same statistics, and the
 * per-(image, channel) map instead of the output) and returns the map's new buffers (center,
 * scale, shift), also pushed to `added`.
 */
function foldedNormMap(steps: CapturedStep[], i: number, added: Float32Array[]): [Float32Array, Float32Array, Float32Array] {
  const s = steps[i];
  const [batch, channels, spatial] = ['batch', 'channels', 'spatial'].map((n) => attr(s, n) as number);
  const map = [0, 1, 2].map(() => new Float32Array(batch * channels)) as [Float32Array, Float32Array, Float32Array];
  added.push(...map);
  const stats = KERNELS.get('groupNormStats')!;
  steps[i] = {
    name: stats.name,
    decl: stats,
    fn: native.groupNormStats as (...a: unknown[]) => unknown,
    args: [batch, channels, spatial, attr(s, 'groups'), arg(s, 'x'), arg(s, 'gamma'), arg(s, 'beta'), attr(s, 'eps'), arg(s, 'mean'), arg(s, 'rstd'), ...map],
  };
  return map;
}

/**
 * Folds a group norm (+ ReLU) into the convolutions that read its output, when
 * only convolutions read it (a pre-activation block's norm feeds its next
 * convolution, and in a stage's first block the projection shortcut too): the
 * norm computes only its statistics and per-(image, channel) map
 * (groupNormStats), and each convolution applies the map as it reads the norm's
 * input (conv2dForward's inCenter / inScale / inShift / inRelu). The normalized
 * activation is never written or read back: a pass over it saved per
 * consumer and a write per norm. A ReLU step of its own right after a norm
 * without one (VGG's layers) is folded with it. The result is the same bit for bit (the map
 * rounds as the norm does). Run after fuseResidualAdds, whose accumulations
 * into a block's input are then visible: a norm is folded only when nothing
 * writes its input before its last consumer has read it.
 */
/** @internal */
export function foldNormsIntoConvs(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
  output: Float32Array,
): { steps: CapturedStep[]; count: number; added: Float32Array[] } {
  const uses = bufferUses(steps);
  const out: CapturedStep[] = [...steps];
  const added: Float32Array[] = [];
  let count = 0;
  const dropped = new Set<number>();
  // The steps reading buffer b (whole, allocated, not the output) after step i, when there are some.
  const readersOf = (b: Float32Array, i: number): number[] | null => {
    if (!allocated.has(b.buffer) || !isWhole(b) || b.buffer === output.buffer) return null;
    const readers = (uses.get(b.buffer) ?? []).filter((k) => k !== i);
    return readers.length === 0 || readers.some((k) => k < i) ? null : readers;
  };
  steps.forEach((s, i) => {
    if (s.name !== 'groupNormForward') return;
    const x = arg(s, 'x') as Float32Array;
    let y = arg(s, 'y') as Float32Array;
    let relu = attr(s, 'relu') === true;
    let readers = readersOf(y, i);
    if (readers === null) return;
    // A separate ReLU module (VGG's) after a norm without one: fold it too.
    let reluStep = -1;
    if (!relu && readers.length === 1 && out[readers[0]].name === 'relu' && arg(out[readers[0]], 'x') === y) {
      reluStep = readers[0];
      const z = arg(out[reluStep], 'y') as Float32Array;
      if (z.length !== y.length || z.buffer === y.buffer) return;
      readers = readersOf(z, reluStep);
      if (readers === null) return;
      y = z;
      relu = true;
    }
    const [batch, channels, spatial] = ['batch', 'channels', 'spatial'].map((n) => attr(s, n) as number);
    const convs = readers.every((k) => {
      const c = out[k];
      if (c.name !== 'conv2dForward' || arg(c, 'x') !== y || (arg(c, 'inScale') ?? null) !== null) return false;
      if (buffers(c).some((b) => b.view.buffer === y.buffer && b.name !== 'x')) return false;
      const [n, ch, h, w] = ['N', 'C', 'H', 'W'].map((f) => attr(c, 'params', f) as number);
      return n === batch && ch === channels && h * w === spatial;
    });
    if (!convs) return;
    // The norm's input must hold its values until the last convolution has read them.
    if (writesAnyOf(out, i + 1, readers[readers.length - 1], [x.buffer])) return;
    const [center, scale, shift] = foldedNormMap(out, i, added);
    if (reluStep >= 0) dropped.add(reluStep);
    for (const k of readers) {
      const c = out[k];
      out[k] = { ...c, args: withArgs(c, { x, inCenter: center, inScale: scale, inShift: shift, inRelu: relu }) };
    }
    count++;
  });
  return { steps: out.filter((_, k) => !dropped.has(k)), count, added };
}

/**
 * The training form of foldNormsIntoConvs: a group norm (+ fused ReLU) whose output only
 * convolutions read, in the forward pass (conv2dForward) and in their weight gradients
 * (conv2dBackwardWeight), and the norm's own backward pass for its ReLU mask
 * (groupNormBackward's reluOut). The norm computes its statistics and map only
 * (groupNormStats); each convolution and weight gradient reads the norm's input through
 * the map, and the backward pass recomputes the mask from the input through the map
 * (reluCenter / reluScale / reluShift). The normalized activation is never written: a
 * write and a read saved per norm in every step, and its memory in the arena. The values
 * are the same bit for bit (the map rounds as the norm does, and each kernel sums in the
 * same order). The norm's input must hold its values until the last of those reads it,
 * which in a training step is the norm's backward pass.
 */
/** @internal */
export function foldNormsForTraining(
  steps: readonly CapturedStep[],
  allocated: ReadonlySet<ArrayBufferLike>,
  outputs: readonly ArrayBufferView[],
): { steps: CapturedStep[]; count: number; added: Float32Array[] } {
  const uses = bufferUses(steps);
  const outs = new Set(outputs.map((o) => o.buffer));
  const out: CapturedStep[] = [...steps];
  const added: Float32Array[] = [];
  let count = 0;
  steps.forEach((s, i) => {
    if (s.name !== 'groupNormForward') return;
    const x = arg(s, 'x') as Float32Array;
    const y = arg(s, 'y') as Float32Array;
    if (!allocated.has(y.buffer) || !isWhole(y) || outs.has(y.buffer) || y.buffer === x.buffer) return;
    const readers = (uses.get(y.buffer) ?? []).filter((k) => k !== i);
    if (readers.length === 0 || readers.some((k) => k < i)) return;
    const relu = attr(s, 'relu') === true;
    const [batch, channels, spatial] = ['batch', 'channels', 'spatial'].map((n) => attr(s, n) as number);
    let convs = 0;
    const fits = readers.every((k) => {
      const c = out[k];
      // y only in the role named, and nowhere else in the call.
      const onlyAs = (role: string) => arg(c, role) === y && buffers(c).every((b) => b.view.buffer !== y.buffer || b.name === role);
      if (c.name === 'groupNormBackward') {
        return relu && onlyAs('reluOut') && arg(c, 'x') === x && arg(c, 'mean') === arg(s, 'mean') && arg(c, 'rstd') === arg(s, 'rstd');
      }
      if (c.name !== 'conv2dForward' && c.name !== 'conv2dBackwardWeight') return false;
      if (!onlyAs('x') || (arg(c, 'inScale') ?? null) !== null) return false;
      const [n, ch, h, w] = ['N', 'C', 'H', 'W'].map((f) => attr(c, 'params', f) as number);
      if (n !== batch || ch !== channels || h * w !== spatial) return false;
      if (c.name === 'conv2dForward') convs++;
      return true;
    });
    if (!fits || convs === 0) return;
    // The norm's input, and its statistics, must hold their values until the last reader.
    const kept = [x, arg(s, 'mean'), arg(s, 'rstd')].map((v) => (v as Float32Array).buffer);
    if (writesAnyOf(out, i + 1, readers[readers.length - 1], kept)) return;
    const [center, scale, shift] = foldedNormMap(out, i, added);
    for (const k of readers) {
      const c = out[k];
      out[k] =
        c.name === 'groupNormBackward'
          ? { ...c, args: withArgs(c, { reluOut: null, reluCenter: center, reluScale: scale, reluShift: shift }) }
          : { ...c, args: withArgs(c, { x, inCenter: center, inScale: scale, inShift: shift, inRelu: relu }) };
    }
    count++;
  });
  return { steps: out, count, added };
}

/**
 * Computes a folded norm's statistics in the convolution that writes its input: a
 * groupNormStats step (foldNormsIntoConvs's) whose input is the whole output of a
 * convolution before it, with nothing writing that output in between and nothing touching
 * the statistics' buffers before the norm's own place, becomes part of that convolution's
 * call (conv2dForwardNormStats). The convolution computes each image's statistics while the
 * image is in cache instead of a pass over the whole output later; the values are the same
 * bit for bit. Run after foldNormsIntoConvs.
 */
/** @internal */
export function statsIntoConvs(steps: readonly CapturedStep[]): { steps: CapturedStep[]; count: number } {
  const decl = KERNELS.get('conv2dForwardNormStats')!;
  const out: CapturedStep[] = [...steps];
  const dropped = new Set<number>();
  let count = 0;
  const touches = (k: number, b: ArrayBufferLike, writesOnly: boolean) =>
    buffers(out[k]).some((u) => u.view.buffer === b && (!writesOnly || u.access !== 'read'));
  steps.forEach((s, j) => {
    if (s.name !== 'groupNormStats') return;
    const x = arg(s, 'x') as Float32Array;
    if (!isWhole(x)) return;
    let i = j - 1;
    while (i >= 0 && !touches(i, x.buffer, true)) i--;
    if (i < 0) return;
    const c = out[i];
    if (c.name !== 'conv2dForward') return;
    const y = arg(c, 'y') as Float32Array;
    if (y.buffer !== x.buffer || !isWhole(y)) return;
    const [batch, channels, spatial] = ['batch', 'channels', 'spatial'].map((n) => attr(s, n) as number);
    const [n, o] = ['N', 'O'].map((f) => attr(c, 'params', f) as number);
    if (n !== batch || o !== channels || n * o * spatial !== x.length) return;
    // The statistics are written at i instead of j: nothing between may read or write them.
    const written = ['mean', 'rstd', 'center', 'scale', 'shift'].map((r) => (arg(s, r) as Float32Array).buffer);
    for (let k = i + 1; k < j; k++) if (written.some((b) => touches(k, b, false))) return;
    // Each argument by its role: the convolution's (a trailing one it left out takes its
    // declared default, or null), the norm's groups, and the norm's statistics and map.
    const args = decl.args.map((a) => {
      if (a.name === 'normGroups') return attr(s, 'groups');
      return c.decl.index.has(a.name) ? argOrDefault(c, a.name) : arg(s, a.name);
    });
    out[i] = { name: decl.name, decl, fn: native.conv2dForwardNormStats as (...a: unknown[]) => unknown, args };
    dropped.add(j);
    count++;
  });
  return { steps: out.filter((_, k) => !dropped.has(k)), count };
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
