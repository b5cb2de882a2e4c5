// Every kernel, declared once: the addon's entry points and the few computed
// in JavaScript (js-kernels.ts). A declaration gives the arguments in call
// order, each an attribute (a number or flag), a group of named attributes
// passed as one array (a convolution's params), a variable-length index list
// (a shape or strides), or a buffer with how the kernel uses it: reads it,
// writes it (every element it covers, without reading it first) or accumulates
// into it (adds to what is there).
//
// Ops call the kernels through native.ts and js-kernels.ts; what the
// declarations add is meaning for the records a capture keeps. Plan passes find a call's buffers
// and attributes by role (`arg(step, 'y')`, `attr(step, 'params', 'groups')`),
// never by argument position, and know which buffers a call writes, which is
// what liveness, arena placement and fusions need. (DESIGN.md, "Kernel calls
// are records"; the binding's own checks are still written out in binding.cc.)

/** How a kernel uses a buffer: reads it, writes all of it it covers, or adds to it. */
export type Access = 'read' | 'write' | 'accumulate';

type Attrs = Readonly<Record<string, unknown>>;

export type ArgDecl =
  | { readonly name: string; readonly kind: 'attr' }
  | { readonly name: string; readonly kind: 'fields'; readonly fields: readonly string[] }
  | { readonly name: string; readonly kind: 'indices' }
  | {
      readonly name: string;
      readonly kind: 'buffer';
      /** Fixed, or decided by the call's attributes (gemm's beta, a convolution's accumulate flag). */
      readonly access: Access | ((attrs: Attrs) => Access);
      /** null allowed (a missing bias, a gradient nobody needs). */
      readonly optional?: boolean;
      /** Holds int32 values (labels) instead of float32. */
      readonly int32?: boolean;
    };

export interface KernelDecl {
  readonly name: string;
  /** Where it computes: the addon, or JavaScript (js-kernels.ts). */
  readonly runs: 'native' | 'js';
  readonly args: readonly ArgDecl[];
  /** Argument index by name. */
  readonly index: ReadonlyMap<string, number>;
}

const value = (name: string): ArgDecl => ({ name, kind: 'attr' });
const indices = (name: string): ArgDecl => ({ name, kind: 'indices' });
const fields = (name: string, names: readonly string[]): ArgDecl => ({ name, kind: 'fields', fields: names });
const reads = (name: string, optional = false): ArgDecl => ({ name, kind: 'buffer', access: 'read', optional });
const writes = (name: string, optional = false): ArgDecl => ({ name, kind: 'buffer', access: 'write', optional });
const readsInts = (name: string): ArgDecl => ({ name, kind: 'buffer', access: 'read', int32: true });
const writesInts = (name: string): ArgDecl => ({ name, kind: 'buffer', access: 'write', int32: true });
const accumulates = (name: string, optional = false): ArgDecl => ({ name, kind: 'buffer', access: 'accumulate', optional });

function kernel(name: string, args: ArgDecl[], runs: 'native' | 'js' = 'native'): KernelDecl {
  return { name, runs, args, index: new Map(args.map((a, i) => [a.name, i])) };
}

const CONV_PARAMS = ['N', 'C', 'H', 'W', 'O', 'kh', 'kw', 'strideH', 'strideW', 'padH', 'padW', 'dilationH', 'dilationW', 'groups', 'weightInPerGroup'];
const POOL_PARAMS = ['planes', 'H', 'W', 'kh', 'kw', 'strideH', 'strideW', 'padH', 'padW'];
const NORM_SIZES = [value('batch'), value('channels'), value('spatial')];

/** Every kernel by name, in the argument order of `NativeAddon` (native.ts) or `JsKernels` (js-kernels.ts). */
export const KERNELS: ReadonlyMap<string, KernelDecl> = new Map(
  [
    kernel('gemm', [
      value('transA'), value('transB'), value('M'), value('N'), value('K'), value('alpha'),
      reads('A'), value('aOffset'), value('lda'),
      reads('B'), value('bOffset'), value('ldb'),
      value('beta'),
      { name: 'C', kind: 'buffer', access: (a) => (a.beta === 0 ? 'write' : 'accumulate') },
      value('cOffset'), value('ldc'),
    ]),
    kernel('binary', [value('op'), indices('shape'), reads('a'), indices('aStrides'), reads('b'), indices('bStrides'), writes('out')]),
    kernel('sumTo', [indices('shape'), reads('g'), value('scale'), accumulates('acc'), indices('accStrides')]),
    kernel('mulGrad', [indices('shape'), reads('g'), reads('other'), indices('otherStrides'), accumulates('acc'), indices('accStrides')]),
    kernel('relu', [reads('x'), writes('y')]),
    kernel('reluBackward', [reads('x'), reads('gy'), accumulates('gx')]),
    kernel('axpy', [value('n'), value('alpha'), reads('x'), accumulates('y')]),
    kernel('addRowBias', [value('rows'), value('cols'), reads('bias'), accumulates('y'), value('ldy')]),
    kernel('columnSums', [value('rows'), value('cols'), reads('g'), value('ldg'), accumulates('acc')]),
    kernel('softmax', [value('rows'), value('cols'), reads('x'), writes('y'), value('log')]),
    kernel('softmaxBackward', [value('rows'), value('cols'), reads('y'), reads('gy'), accumulates('gx'), value('log')]),
    kernel('conv2dForward', [
      fields('params', CONV_PARAMS), reads('x'), reads('w'), reads('bias', true),
      { name: 'y', kind: 'buffer', access: (a) => (a.accumulate === true ? 'accumulate' : 'write') },
      value('accumulate'),
    ]),
    kernel('conv2dBackwardInput', [
      fields('params', CONV_PARAMS), reads('gy'), reads('w'),
      { name: 'gx', kind: 'buffer', access: (a) => (a.accumulate === false ? 'write' : 'accumulate') },
      value('accumulate'),
    ]),
    kernel('conv2dBackwardWeight', [fields('params', CONV_PARAMS), reads('gy'), reads('x'), accumulates('gw')]),
    kernel('conv2dBackwardBias', [fields('params', CONV_PARAMS), reads('gy'), accumulates('gb')]),
    kernel('poolForward', [value('kind'), fields('params', POOL_PARAMS), reads('x'), writes('y')]),
    kernel('poolBackward', [value('kind'), fields('params', POOL_PARAMS), reads('x'), reads('gy'), accumulates('gx')]),
    kernel('globalAvgPool', [value('planes'), value('size'), reads('x'), writes('y')]),
    kernel('globalAvgPoolBackward', [value('planes'), value('size'), reads('gy'), accumulates('gx')]),
    kernel('groupNormForward', [
      ...NORM_SIZES, value('groups'), reads('x'), reads('gamma', true), reads('beta', true), value('eps'),
      writes('y'), writes('mean'), writes('rstd'), value('relu'),
    ]),
    kernel('groupNormBackward', [
      ...NORM_SIZES, value('groups'), reads('x'), reads('gy'), reads('gamma', true), reads('mean'), reads('rstd'),
      { name: 'gx', kind: 'buffer', access: (a) => (a.gxAccumulate === false ? 'write' : 'accumulate'), optional: true },
      accumulates('ggamma', true), accumulates('gbeta', true), reads('reluOut', true), value('gxAccumulate'),
    ]),
    kernel('channelMoments', [...NORM_SIZES, reads('x'), writes('mean'), writes('variance')]),
    kernel('channelAffine', [...NORM_SIZES, reads('x'), reads('scale'), reads('shift'), writes('y')]),
    kernel('batchNormBackward', [
      ...NORM_SIZES, reads('x'), reads('gy'), reads('mean'), reads('rstd'), reads('gamma', true), value('training'),
      accumulates('gx', true), accumulates('ggamma', true), accumulates('gbeta', true),
    ]),
    // Computed in JavaScript.
    kernel('fill', [value('n'), value('value'), writes('y')], 'js'),
    kernel('copyLabels', [value('n'), readsInts('src'), writesInts('dst')], 'js'),
    kernel('nllLoss', [value('rows'), value('cols'), reads('logp'), readsInts('labels'), writes('loss')], 'js'),
    kernel('nllLossBackward', [value('rows'), value('cols'), readsInts('labels'), reads('g'), accumulates('glogp')], 'js'),
    kernel('klDiv', [value('rows'), value('cols'), reads('logp'), reads('q'), writes('loss')], 'js'),
    kernel('klDivBackward', [value('rows'), value('cols'), reads('q'), reads('g'), accumulates('glogp')], 'js'),
    kernel('sum', [value('n'), value('scale'), reads('x'), writes('out')], 'js'),
    kernel('sumBackward', [value('n'), value('scale'), reads('g'), accumulates('gx')], 'js'),
    kernel('batchNormAffine', [
      value('channels'), value('eps'), reads('mean'), reads('variance'), reads('gamma', true), reads('beta', true),
      writes('rstd'), writes('scale'), writes('shift'),
    ], 'js'),
    kernel('batchNormRunningStats', [
      value('channels'), value('momentum'), value('unbias'), reads('mean'), reads('variance'),
      accumulates('runningMean'), accumulates('runningVar'),
    ], 'js'),
  ].map((k) => [k.name, k]),
);

/** A call as a capture records it: the declared kernel and its arguments in call order. */
export interface KernelCall {
  readonly decl: KernelDecl;
  readonly args: readonly unknown[];
}

function indexOf(call: KernelCall, name: string): number {
  const i = call.decl.index.get(name);
  if (i === undefined) throw new RangeError(`kernel ${call.decl.name} has no argument '${name}'`);
  return i;
}

/** The argument called `name` (a buffer, an attribute or an array). */
export function arg(call: KernelCall, name: string): unknown {
  return call.args[indexOf(call, name)];
}

/** One named attribute: a plain one, or a field of a group (`attr(call, 'params', 'groups')`). */
export function attr(call: KernelCall, name: string, field?: string): unknown {
  const i = indexOf(call, name);
  const decl = call.decl.args[i];
  if (field === undefined) return call.args[i];
  if (decl.kind !== 'fields') throw new RangeError(`kernel ${call.decl.name}: '${name}' is not a group of attributes`);
  const f = decl.fields.indexOf(field);
  if (f < 0) throw new RangeError(`kernel ${call.decl.name}: '${name}' has no field '${field}'`);
  return (call.args[i] as readonly unknown[])[f];
}

/** The same call with some arguments replaced by name. */
export function withArgs(call: KernelCall, changes: Readonly<Record<string, unknown>>): unknown[] {
  const args = [...call.args];
  for (const [name, value] of Object.entries(changes)) args[indexOf(call, name)] = value;
  return args;
}

function attributes(call: KernelCall): Attrs {
  const out: Record<string, unknown> = {};
  call.decl.args.forEach((a, i) => {
    if (a.kind === 'attr') out[a.name] = call.args[i];
  });
  return out;
}

export interface BufferUse {
  readonly name: string;
  /** Float32Array, or Int32Array for labels. */
  readonly view: Float32Array | Int32Array;
  readonly access: Access;
}

/** The buffers a call passes (null optional ones left out), with how it uses each. */
export function buffers(call: KernelCall): BufferUse[] {
  const out: BufferUse[] = [];
  let attrs: Attrs | null = null;
  call.decl.args.forEach((a, i) => {
    if (a.kind !== 'buffer') return;
    const v = call.args[i];
    if (!(v instanceof Float32Array || v instanceof Int32Array)) return;
    let access: Access;
    if (typeof a.access === 'function') {
      attrs ??= attributes(call);
      access = a.access(attrs);
    } else {
      access = a.access;
    }
    out.push({ name: a.name, view: v, access });
  });
  return out;
}
