// Module: parameters, buffers and children with PyTorch-style dotted names, a
// training flag, and one slice rate that drives every sliceable layer below it.
import { modelRecord, type SavedConfig } from '../metadata.js';
import { Tensor } from '../tensor.js';
import { modelInputShape } from './input-shape.js';
import { traceAtRate } from './trace.js';
import { checkRate } from './width.js';

export type { SavedConfig };

export type StateDict = Record<string, Tensor>;

export interface LoadStateDictOptions {
  /** Refuse missing or unexpected keys (default true). */
  strict?: boolean;
}

// Stamps come from one process-wide clock, so the largest stamp in a tree
// grows with every change anywhere in it, replaced children included (a sum or
// per-module counters could come back to an earlier value).
let structureClock = 0;

export abstract class Module {
  training = true;
  private rate = 1;
  private structureStamp = ++structureClock;
  // Not readonly: copyStructure gives a copy maps of its own.
  private params = new Map<string, Tensor | null>();
  private buffers = new Map<string, Tensor>();
  private children_ = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /**
   * Changes whenever what this module or any module below it computes may
   * have changed: a child, parameter or buffer registered or replaced, or a
   * setter of a layer attribute the forward pass reads (sliceOutput, eps,
   * momentum, stride, padding, dilation, a pool's size). Plans captured from
   * the model are keyed on it and rebuilt when it moves. The slice rate and
   * the training flag are not part of it (plan keys carry them on their own),
   * nor are parameter values, which plans read in place.
   */
  get structureVersion(): number {
    let v = this.structureStamp;
    for (const child of this.children_.values()) v = Math.max(v, child.structureVersion);
    return v;
  }

  /** Moves structureVersion on; a custom module calls it when it changes what its forward computes. */
  markStructureChanged(): void {
    this.structureStamp = ++structureClock;
  }

  /** Registers (or replaces) a parameter; it will require grad. */
  protected registerParameter(name: string, t: Tensor | null): Tensor | null {
    if (t !== null) t.requiresGrad = true;
    this.params.set(name, t);
    this.markStructureChanged();
    return t;
  }

  /** Registers state that is saved and loaded but not trained (running statistics). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.buffers.set(name, t);
    this.markStructureChanged();
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children_.set(name, m);
    this.markStructureChanged();
    return m;
  }

  /** Forgets every registered parameter, buffer and child (for layers that rebuild their state). */
  protected clearRegistrations(): void {
    this.params.clear();
    this.buffers.clear();
    this.children_.clear();
    this.markStructureChanged();
  }

  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    return [...this.children_.entries()];
  }

  /** This module and all below it, depth first, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children_) out.push(...child.namedModules(prefix === '' ? name : `${prefix}.${name}`));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [name, p] of m.params) {
        if (p === null || seen.has(p)) continue;
        seen.add(p);
        out.push([modName === '' ? name : `${modName}.${name}`, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [name, b] of m.buffers) out.push([modName === '' ? name : `${modName}.${name}`, b]);
    }
    return out;
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers by dotted name; the tensors are detached views of the live values. */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [name, p] of this.namedParameters()) out[name] = p.detach();
    for (const [name, b] of this.namedBuffers()) out[name] = b.detach();
    return out;
  }

  /** Copies values in by name; shapes must match exactly. */
  loadStateDict(state: StateDict, options: LoadStateDictOptions = {}): void {
    if (state === null || typeof state !== 'object') throw new TypeError('loadStateDict: state must be an object of tensors');
    const strict = options.strict ?? true;
    const targets = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const missing = [...targets.keys()].filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !targets.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      throw new RangeError(
        `loadStateDict: keys do not match the model` +
          (missing.length > 0 ? `; missing: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}` : '') +
          (unexpected.length > 0 ? `; unexpected: ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', ...' : ''}` : ''),
      );
    }
    // Check every shape before writing anything, so a bad dict changes nothing.
    for (const [name, target] of targets) {
      const src = state[name];
      if (src === undefined) continue;
      if (!(src instanceof Tensor)) throw new TypeError(`loadStateDict: ${name} must be a Tensor`);
      if (src.shape.length !== target.shape.length || src.shape.some((d, i) => d !== target.shape[i])) {
        throw new RangeError(`loadStateDict: ${name} has shape [${src.shape.join(', ')}] but the model expects [${target.shape.join(', ')}]`);
      }
    }
    for (const [name, target] of targets) {
      const src = state[name];
      if (src !== undefined && src.data !== target.data) target.data.set(src.data);
    }
  }

  /** The slice rate every sliceable layer below this module follows. */
  get sliceRate(): number {
    return this.rate;
  }

  /** Sets the slice rate of this module and everything below it; r in (0, 1]. */
  setSliceRate(r: number): this {
    checkRate('setSliceRate', r);
    for (const m of this.modules()) m.rate = r;
    return this;
  }

  /**
   * @internal Runs fn with `modules` (a model's modules(), listed once by the caller) at `rate`
   * and in `training` mode, then gives each its own rate and mode back: what a decoding step
   * does, without walking the tree.
   */
  static withState<T>(modules: readonly Module[], rate: number, training: boolean, fn: () => T): T {
    const previous = modules.map((m) => [m.rate, m.training] as const);
    for (const m of modules) {
      m.rate = rate;
      m.training = training;
    }
    try {
      return fn();
    } finally {
      modules.forEach((m, i) => {
        [m.rate, m.training] = previous[i];
      });
    }
  }

  /**
   * A new, independent model holding copies of the prefix weights used at rate
   * r (its full width is that width, its rate 1); the same outputs as
   * setSliceRate(r) on this one, which stays unchanged.
   */
  slice(rate: number, options: { inputShape?: readonly number[] } = {}): this {
    const op = 'slice';
    checkRate(op, rate);
    const shape = modelInputShape(op, this, options.inputShape, 'options.inputShape');
    const widths = new Map(traceAtRate(this, rate, shape).map((u) => [u.module, u.widths]));
    const compactChild = (m: Module): Module => m.compact(widths.get(m), compactChild);
    const previous = this.sliceRate;
    this.setSliceRate(rate); // BatchNorm copies read the statistics of this rate
    let compact: Module;
    try {
      compact = compactChild(this);
    } finally {
      this.setSliceRate(previous);
    }
    compact.setSliceRate(1);
    // The model's record travels with its copy, whatever module the copy's root is;
    // the copy is trained (only) at its own full width, and has been neither profiled nor evaluated.
    const { config, preprocess, dataset, vocabulary } = modelRecord(this);
    const record = modelRecord(compact);
    record.trainedRates = [1];
    record.inputShape = shape;
    if (preprocess !== undefined) record.preprocess = { ...preprocess };
    if (dataset !== undefined) record.dataset = dataset;
    if (vocabulary !== undefined) record.vocabulary = [...vocabulary];
    if (config !== undefined) record.config = { ...config, sliceChain: [...(config.sliceChain ?? []), rate] };
    return compact as this;
  }

  /**
   * This module's copy in a compact model. `widths` is what it reported in a
   * trace at the rate (undefined if it reported nothing: the copy keeps its
   * full size); `compactChild` makes a child's copy (by default the child's
   * own compact()). Layers whose parameters narrow override it; this default
   * suits containers and modules whose own tensors keep their size.
   */
  compact(_widths?: Readonly<Record<string, number>>, compactChild: (child: Module) => Module = (child) => child.compact()): Module {
    return this.copyStructure(compactChild);
  }

  /**
   * A copy of this module of the same class and fields, with copies of its own
   * parameters and buffers and compactChild(child) in place of each child.
   * Fields that pointed at a child, at a module below one or at an own tensor
   * (or at arrays of them) point at the copy's counterpart, so a model's named
   * fields (a ResNet's layer1, a Sequential's layer list) follow.
   */
  protected copyStructure(compactChild: (child: Module) => Module): this {
    const copy = Object.create(Object.getPrototypeOf(this) as object) as this;
    Object.assign(copy, this);
    copy.params = new Map();
    copy.buffers = new Map();
    copy.children_ = new Map();
    copy.markStructureChanged();
    const counterpart = new Map<unknown, unknown>();
    for (const [name, p] of this.params) {
      const c = p === null ? null : new Tensor(p.data.slice(), p.shape, true);
      copy.params.set(name, c);
      if (p !== null) counterpart.set(p, c);
    }
    for (const [name, b] of this.buffers) {
      const c = new Tensor(b.data.slice(), b.shape);
      copy.buffers.set(name, c);
      counterpart.set(b, c);
    }
    for (const [name, child] of this.children_) {
      const c = compactChild(child);
      copy.children_.set(name, c);
      // A copy may hold fewer modules than its source (a BatchNorm keeps one rate): match by name.
      const copied = new Map(c.namedModules());
      for (const [path, m] of child.namedModules()) if (copied.has(path)) counterpart.set(m, copied.get(path));
    }
    for (const [key, v] of Object.entries(copy)) {
      if (counterpart.has(v)) Reflect.set(copy, key, counterpart.get(v));
      else if (Array.isArray(v) && v.some((x) => counterpart.has(x))) Reflect.set(copy, key, v.map((x) => (counterpart.has(x) ? counterpart.get(x) : x)));
    }
    return copy;
  }

  /** Sets .grad of every parameter to null. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Number of parameter values (at full width). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }
}
