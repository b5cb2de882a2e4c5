// Every kernel, declared once: the addon's entry points and the few computed
// in JavaScript (js-kernels.ts). A declaration gives the arguments in call
// order, each an attribute (an integer size, a flag or a number), a group of
// named integer attributes passed as one array (a convolution's params), a
// variable-length index list (a shape or strides), or a buffer with how the
// kernel uses it: reads it, writes it (every element it covers, without
// reading it first) or accumulates into it (adds to what is there). A buffer
// also says how many elements the call touches, and from which offset, as an
// expression of the attributes (kernel-expr.ts); a kernel may name derived
// sizes (`lets`) and the conditions its attributes must meet (`checks`).
//
// Four readers (DESIGN.md, "Kernel calls are records"): ops call the kernels
// through native.ts and js-kernels.ts, eagerly or into a capture; plan passes
// find a call's buffers and attributes by role (`arg(step, 'y')`,
// `attr(step, 'params', 'groups')`), never by argument position, and know
// which buffers a call writes; the addon's argument checks (lengths, offsets,
// overflow, read/write overlap) are generated from these declarations
// (scripts/kernel-checks.ts writes native/kernel_checks.h; a test keeps it
// current); and `checkCall` applies the same checks to the JavaScript kernels.
import { evaluate, parseExpr, type Expr, type ExprValue } from './kernel-expr.js';

/** How a kernel uses a buffer: reads it, writes all of it it covers, or adds to it. */
export type Access = 'read' | 'write' | 'accumulate';

type Attrs = Readonly<Record<string, unknown>>;
type Decided = (attrs: Attrs) => 'write' | 'accumulate';

/** An attribute's type: a non-negative integer (a size, offset or enum), a flag, or any number. */
export type AttrType = 'int' | 'bool' | 'float';

export type ArgDecl =
  | {
      readonly name: string;
      readonly kind: 'attr';
      readonly type: AttrType;
      /** A trailing flag the caller may leave out. */
      readonly default?: boolean;
      /** Largest value an int may take (an enum's last, a size the kernel indexes with 32 bits). */
      readonly max?: number;
    }
  | { readonly name: string; readonly kind: 'fields'; readonly fields: readonly string[]; readonly max: number }
  | { readonly name: string; readonly kind: 'indices'; readonly maxLength: number }
  | {
      readonly name: string;
      readonly kind: 'buffer';
      /**
       * Fixed, or decided by the call's attributes between writing and accumulating (gemm's
       * beta, a convolution's accumulate flag): a decided buffer is written either way.
       */
      readonly access: Access | Decided;
      /** null allowed (a missing bias, a gradient nobody needs). */
      readonly optional?: boolean;
      /** Holds int32 values (labels) instead of float32. */
      readonly int32?: boolean;
      /** Elements the call touches, from `offset`. */
      readonly size: Expr;
      /** First element the call touches (0 unless said). */
      readonly offset?: Expr;
      /** A written buffer that may be exactly one of the inputs (elementwise kernels work in place). */
      readonly inPlace?: boolean;
    };

export interface KernelDecl {
  readonly name: string;
  /** Where it computes: the addon, or JavaScript (js-kernels.ts). */
  readonly runs: 'native' | 'js';
  readonly args: readonly ArgDecl[];
  /** Argument index by name. */
  readonly index: ReadonlyMap<string, number>;
  /** Derived sizes, in order; each may use the attributes and the lets before it. */
  readonly lets: readonly { readonly name: string; readonly expr: Expr }[];
  /** Conditions on the attributes, in order, each with the message a failing call gets. */
  readonly checks: readonly { readonly expr: Expr; readonly message: string }[];
}

type BufferOptions = { optional?: boolean; offset?: string; inPlace?: boolean };

const int = (name: string, max?: number): ArgDecl => ({ name, kind: 'attr', type: 'int', ...(max === undefined ? {} : { max }) });
const flag = (name: string, dflt?: boolean): ArgDecl => ({ name, kind: 'attr', type: 'bool', ...(dflt === undefined ? {} : { default: dflt }) });
const float = (name: string): ArgDecl => ({ name, kind: 'attr', type: 'float' });
const indices = (name: string, maxLength = MAX_DIMS): ArgDecl => ({ name, kind: 'indices', maxLength });
const fields = (name: string, names: readonly string[], max: number): ArgDecl => ({ name, kind: 'fields', fields: names, max });
function buffer(name: string, access: Access | Decided, size: string, o: BufferOptions & { int32?: boolean } = {}): ArgDecl {
  return {
    name,
    kind: 'buffer',
    access,
    size: parseExpr(size),
    ...(o.optional ? { optional: true } : {}),
    ...(o.int32 ? { int32: true } : {}),
    ...(o.offset === undefined ? {} : { offset: parseExpr(o.offset) }),
    ...(o.inPlace ? { inPlace: true } : {}),
  };
}
const reads = (name: string, size: string, o?: BufferOptions): ArgDecl => buffer(name, 'read', size, o);
const writes = (name: string, size: string, o?: BufferOptions): ArgDecl => buffer(name, 'write', size, o);
const accumulates = (name: string, size: string, o?: BufferOptions): ArgDecl => buffer(name, 'accumulate', size, o);
const readsInts = (name: string, size: string): ArgDecl => buffer(name, 'read', size, { int32: true });
const writesInts = (name: string, size: string): ArgDecl => buffer(name, 'write', size, { int32: true });

interface KernelExtras {
  runs?: 'native' | 'js';
  lets?: [string, string][];
  checks?: [string, string][];
}

function kernel(name: string, args: ArgDecl[], extras: KernelExtras = {}): KernelDecl {
  return {
    name,
    runs: extras.runs ?? 'native',
    args,
    index: new Map(args.map((a, i) => [a.name, i])),
    lets: (extras.lets ?? []).map(([n, e]) => ({ name: n, expr: parseExpr(e) })),
    checks: (extras.checks ?? []).map(([e, message]) => ({ expr: parseExpr(e), message })),
  };
}
const computedInJs = (args: ArgDecl[], extras: KernelExtras = {}): [ArgDecl[], KernelExtras] => [args, { ...extras, runs: 'js' }];

/** Most dimensions a broadcast shape may have (the addon's kMaxDims). */
export const MAX_DIMS = 8;
/** Largest size a convolution or pool takes in each of its params (the kernels index with 32-bit products). */
const PARAM_MAX = 2 ** 31;

const CONV_PARAMS = ['N', 'C', 'H', 'W', 'O', 'kh', 'kw', 'strideH', 'strideW', 'padH', 'padW', 'dilationH', 'dilationW', 'groups', 'weightInPerGroup'];
const CONV: KernelExtras = {
  lets: [
    ['outH', 'convOut(H, kh, strideH, padH, dilationH)'],
    ['outW', 'convOut(W, kw, strideW, padW, dilationW)'],
  ],
  checks: [
    ['kh >= 1 && kw >= 1 && strideH >= 1 && strideW >= 1 && dilationH >= 1 && dilationW >= 1 && groups >= 1 && weightInPerGroup >= 1',
      'kernel, stride, dilation and groups must be >= 1'],
    ['C % groups == 0 && O % groups == 0', 'channels must be divisible by groups ({C} in, {O} out, {groups} groups)'],
    ['C / groups <= weightInPerGroup', 'more input channels per group ({C} / {groups}) than the weight has ({weightInPerGroup})'],
    ['outH >= 0 && outW >= 0', 'kernel larger than the padded input'],
  ],
};
// Plane sizes are bounded on their own: the kernels compute them even for an empty batch.
const CONV_X = 'N * C * (H * W)';
const CONV_Y = 'N * O * (outH * outW)';
// Filters are weightInPerGroup wide (a sliced call reads a prefix of each).
const CONV_W = 'O == 0 ? 0 : (O - 1) * (weightInPerGroup * kh * kw) + C / groups * kh * kw';

// A group norm (+ ReLU) folded in: the convolution reads (x - inCenter) * inScale + inShift
// (then ReLU with inRelu), one map per (image, channel). See groupNormStats.
const INPUT_MAP_ARGS: ArgDecl[] = [
  reads('inCenter', 'N * C', { optional: true }), reads('inScale', 'N * C', { optional: true }),
  reads('inShift', 'N * C', { optional: true }), flag('inRelu', false),
];
const INPUT_MAP_TOGETHER: [string, string] = ['has(inCenter) == has(inScale) && has(inScale) == has(inShift)', 'inCenter, inScale and inShift go together'];
const CONV_FORWARD_ARGS: ArgDecl[] = [
  fields('params', CONV_PARAMS, PARAM_MAX), reads('x', CONV_X), reads('w', CONV_W), reads('bias', 'O', { optional: true }),
  buffer('y', (a) => (a.accumulate === true ? 'accumulate' : 'write'), CONV_Y),
  flag('accumulate', false),
  ...INPUT_MAP_ARGS,
];
const CONV_FORWARD: KernelExtras = {
  ...CONV,
  checks: [...CONV.checks!, ['!accumulate || (groups == 1 && !has(bias))', 'accumulate needs groups 1 and no bias'], INPUT_MAP_TOGETHER],
};

const POOL_PARAMS = ['planes', 'H', 'W', 'kh', 'kw', 'strideH', 'strideW', 'padH', 'padW'];
const POOL: KernelExtras = {
  lets: [
    ['outH', 'convOut(H, kh, strideH, padH, 1)'],
    ['outW', 'convOut(W, kw, strideW, padW, 1)'],
  ],
  checks: [
    ['kh >= 1 && kw >= 1 && strideH >= 1 && strideW >= 1', 'kernel and stride must be >= 1'],
    ['padH * 2 <= kh && padW * 2 <= kw', 'padding must be at most half the kernel'],
    ['outH >= 0 && outW >= 0', 'kernel larger than the padded input'],
  ],
};

const NORM_SIZES = [int('batch'), int('channels'), int('spatial')];
const NORM_TOTAL = 'batch * channels * spatial';
const GROUPS_DIVIDE: [string, string] = ['groups >= 1 && channels % groups == 0', 'groups must divide channels ({channels} channels, {groups} groups)'];
const CAUSAL: [string, string] = ['!causal || Tk >= Tq', 'causal attention needs Tk >= Tq'];
const LD = (ld: string, cols: string, what: string): [string, string] => [`${ld} >= ${cols} && ${ld} >= 1`, `${what} leading dimension {${ld}} is smaller than its {${cols}} columns`];

/** Every kernel by name, in the argument order of `NativeAddon` (native.ts) or `JsKernels` (js-kernels.ts). */
export const KERNELS: ReadonlyMap<string, KernelDecl> = new Map(
  [
    kernel('gemm', [
      flag('transA'), flag('transB'), int('M'), int('N'), int('K'), float('alpha'),
      reads('A', 'span(aRows, aCols, lda)', { offset: 'aOffset' }), int('aOffset'), int('lda'),
      reads('B', 'span(bRows, bCols, ldb)', { offset: 'bOffset' }), int('bOffset'), int('ldb'),
      float('beta'),
      buffer('C', (a) => (a.beta === 0 ? 'write' : 'accumulate'), 'span(M, N, ldc)', { offset: 'cOffset' }),
      int('cOffset'), int('ldc'),
    ], {
      lets: [['aRows', 'transA ? K : M'], ['aCols', 'transA ? M : K'], ['bRows', 'transB ? N : K'], ['bCols', 'transB ? K : N']],
      checks: [LD('lda', 'aCols', 'A'), LD('ldb', 'bCols', 'B'), LD('ldc', 'N', 'C')],
    }),
    kernel('binary', [
      int('op', 1), indices('shape'), reads('a', 'extent(shape, aStrides)'), indices('aStrides'),
      reads('b', 'extent(shape, bStrides)'), indices('bStrides'), writes('out', 'prod(shape)', { inPlace: true }),
    ], { checks: [['len(aStrides) == len(shape) && len(bStrides) == len(shape)', 'strides must have one entry per dimension']] }),
    kernel('sumTo', [indices('shape'), reads('g', 'prod(shape)'), float('scale'), accumulates('acc', 'extent(shape, accStrides)'), indices('accStrides')],
      { checks: [['len(accStrides) == len(shape)', 'accStrides must have one entry per dimension']] }),
    kernel('mulGrad', [
      indices('shape'), reads('g', 'prod(shape)'), reads('other', 'extent(shape, otherStrides)'), indices('otherStrides'),
      accumulates('acc', 'extent(shape, accStrides)'), indices('accStrides'),
    ], { checks: [['len(otherStrides) == len(shape) && len(accStrides) == len(shape)', 'strides must have one entry per dimension']] }),
    // The buffer x says how many elements: a shorter y or gradient is refused.
    kernel('relu', [reads('x', 'len(x)'), writes('y', 'len(x)', { inPlace: true })]),
    kernel('reluBackward', [reads('x', 'len(x)'), reads('gy', 'len(x)'), accumulates('gx', 'len(x)', { inPlace: true })]),
    kernel('axpy', [int('n'), float('alpha'), reads('x', 'n'), accumulates('y', 'n', { inPlace: true })]),
    // n values from src[srcOffset] to dst[dstOffset] (a decode step's keys and values into its cache).
    kernel('copy', [int('n'), reads('src', 'n', { offset: 'srcOffset' }), int('srcOffset'), writes('dst', 'n', { offset: 'dstOffset' }), int('dstOffset')]),
    kernel('addRowBias', [int('rows'), int('cols'), reads('bias', 'cols'), accumulates('y', 'span(rows, cols, ldy)'), int('ldy')],
      { checks: [LD('ldy', 'cols', 'y')] }),
    kernel('columnSums', [int('rows'), int('cols'), reads('g', 'span(rows, cols, ldg)'), int('ldg'), accumulates('acc', 'cols')],
      { checks: [LD('ldg', 'cols', 'g')] }),
    kernel('softmax', [int('rows'), int('cols'), reads('x', 'rows * cols'), writes('y', 'rows * cols'), flag('log')]),
    kernel('softmaxBackward', [int('rows'), int('cols'), reads('y', 'rows * cols'), reads('gy', 'rows * cols'), accumulates('gx', 'rows * cols'), flag('log')]),
    // Multi-head attention over q [batch, Tq, heads * d] and k, v [batch, Tk, heads * d], every
    // (sequence, head) in one call, the causal mask in the kernel; probs [batch, heads, Tq, Tk].
    kernel('attentionForward', [
      int('batch'), int('heads'), int('Tq'), int('Tk'), int('d'), float('scale'), flag('causal'),
      reads('q', 'batch * Tq * heads * d'), reads('k', 'batch * Tk * heads * d'), reads('v', 'batch * Tk * heads * d'),
      writes('probs', 'batch * heads * Tq * Tk'), writes('out', 'batch * Tq * heads * d'),
    ], { checks: [CAUSAL] }),
    kernel('attentionBackward', [
      int('batch'), int('heads'), int('Tq'), int('Tk'), int('d'), float('scale'), flag('causal'),
      reads('q', 'batch * Tq * heads * d'), reads('k', 'batch * Tk * heads * d'), reads('v', 'batch * Tk * heads * d'),
      reads('probs', 'batch * heads * Tq * Tk'), reads('gout', 'batch * Tq * heads * d'),
      accumulates('gq', 'batch * Tq * heads * d', { optional: true }), accumulates('gk', 'batch * Tk * heads * d', { optional: true }),
      accumulates('gv', 'batch * Tk * heads * d', { optional: true }),
    ], { checks: [CAUSAL] }),
    // Layer norm of each row of `dim` values, and its gradients.
    kernel('layerNormForward', [
      int('rows'), int('dim'), reads('x', 'rows * dim'), reads('gamma', 'dim', { optional: true }), reads('beta', 'dim', { optional: true }),
      float('eps'), writes('y', 'rows * dim'), writes('mean', 'rows'), writes('rstd', 'rows'),
    ]),
    kernel('layerNormBackward', [
      int('rows'), int('dim'), reads('x', 'rows * dim'), reads('gy', 'rows * dim'), reads('gamma', 'dim', { optional: true }),
      reads('mean', 'rows'), reads('rstd', 'rows'), accumulates('gx', 'rows * dim', { optional: true }),
      accumulates('ggamma', 'dim', { optional: true }), accumulates('gbeta', 'dim', { optional: true }),
    ]),
    // With residual (laid out as y): y = conv + bias + residual, bit for bit as the convolution
    // and then the add (a training plan's residual block, residualIntoConvs).
    kernel('conv2dForward', [...CONV_FORWARD_ARGS, reads('residual', CONV_Y, { optional: true })], {
      ...CONV_FORWARD,
      checks: [...CONV_FORWARD.checks!, ['!accumulate || !has(residual)', 'a residual needs accumulate false']],
    }),
    // The same convolution, then the statistics of the group norm that reads its output next
    // (groupNormStats's outputs over y, after any accumulation): an inference plan's fused
    // form, which computes each image's while the image is in cache (conv.h, OutputStats).
    kernel('conv2dForwardNormStats', [
      ...CONV_FORWARD_ARGS, int('normGroups'), reads('gamma', 'O', { optional: true }), reads('beta', 'O', { optional: true }),
      float('eps'), writes('mean', 'N * normGroups'), writes('rstd', 'N * normGroups'),
      writes('center', 'N * O'), writes('scale', 'N * O'), writes('shift', 'N * O'),
    ], {
      ...CONV_FORWARD,
      checks: [...CONV_FORWARD.checks!, ['normGroups >= 1 && O % normGroups == 0', 'normGroups must divide the output channels ({O} channels, {normGroups} groups)']],
    }),
    kernel('conv2dBackwardInput', [
      fields('params', CONV_PARAMS, PARAM_MAX), reads('gy', CONV_Y), reads('w', CONV_W),
      buffer('gx', (a) => (a.accumulate === false ? 'write' : 'accumulate'), CONV_X),
      flag('accumulate', true),
    ], CONV),
    // With inCenter / inScale / inShift (and inRelu), x is read through the map, as in
    // conv2dForward: the weight gradient of a convolution a training plan folded a norm into.
    kernel('conv2dBackwardWeight', [
      fields('params', CONV_PARAMS, PARAM_MAX), reads('gy', CONV_Y), reads('x', CONV_X), accumulates('gw', CONV_W), ...INPUT_MAP_ARGS,
    ], { ...CONV, checks: [...CONV.checks!, INPUT_MAP_TOGETHER] }),
    kernel('conv2dBackwardBias', [fields('params', CONV_PARAMS, PARAM_MAX), reads('gy', CONV_Y), accumulates('gb', 'O')], CONV),
    kernel('poolForward', [int('kind', 1), fields('params', POOL_PARAMS, PARAM_MAX), reads('x', 'planes * (H * W)'), writes('y', 'planes * (outH * outW)')], POOL),
    kernel('poolBackward', [
      int('kind', 1), fields('params', POOL_PARAMS, PARAM_MAX), reads('x', 'planes * (H * W)'), reads('gy', 'planes * (outH * outW)'),
      accumulates('gx', 'planes * (H * W)'),
    ], POOL),
    kernel('globalAvgPool', [int('planes'), int('size'), reads('x', 'planes * size'), writes('y', 'planes')],
      { checks: [['size >= 1', 'planes must not be empty']] }),
    kernel('globalAvgPoolBackward', [int('planes'), int('size'), reads('gy', 'planes'), accumulates('gx', 'planes * size')],
      { checks: [['size >= 1', 'planes must not be empty']] }),
    kernel('groupNormForward', [
      ...NORM_SIZES, int('groups'), reads('x', NORM_TOTAL), reads('gamma', 'channels', { optional: true }), reads('beta', 'channels', { optional: true }),
      float('eps'), writes('y', NORM_TOTAL), writes('mean', 'batch * groups'), writes('rstd', 'batch * groups'), flag('relu', false),
    ], { checks: [GROUPS_DIVIDE] }),
    // Group norm's statistics and its per-(image, channel) map, without its output: what a
    // convolution the norm is folded into needs (conv2dForward's inCenter, inScale, inShift).
    kernel('groupNormStats', [
      ...NORM_SIZES, int('groups'), reads('x', NORM_TOTAL), reads('gamma', 'channels', { optional: true }), reads('beta', 'channels', { optional: true }),
      float('eps'), writes('mean', 'batch * groups'), writes('rstd', 'batch * groups'),
      writes('center', 'batch * channels'), writes('scale', 'batch * channels'), writes('shift', 'batch * channels'),
    ], { checks: [GROUPS_DIVIDE] }),
    kernel('groupNormBackward', [
      ...NORM_SIZES, int('groups'), reads('x', NORM_TOTAL), reads('gy', NORM_TOTAL), reads('gamma', 'channels', { optional: true }),
      reads('mean', 'batch * groups'), reads('rstd', 'batch * groups'),
      buffer('gx', (a) => (a.gxAccumulate === false ? 'write' : 'accumulate'), NORM_TOTAL, { optional: true }),
      accumulates('ggamma', 'channels', { optional: true }), accumulates('gbeta', 'channels', { optional: true }),
      reads('reluOut', NORM_TOTAL, { optional: true }), flag('gxAccumulate', true),
      // A fused ReLU's mask recomputed from x through the norm's map (groupNormStats's center,
      // scale, shift) instead of read from reluOut: a norm a training plan folded into its
      // convolutions, whose output was never written.
      reads('reluCenter', 'batch * channels', { optional: true }), reads('reluScale', 'batch * channels', { optional: true }),
      reads('reluShift', 'batch * channels', { optional: true }),
    ], {
      checks: [
        GROUPS_DIVIDE,
        ['has(reluCenter) == has(reluScale) && has(reluScale) == has(reluShift)', 'reluCenter, reluScale and reluShift go together'],
        ['!has(reluOut) || !has(reluCenter)', 'the ReLU mask comes from reluOut or from the map, not both'],
      ],
    }),
    kernel('channelMoments', [...NORM_SIZES, reads('x', NORM_TOTAL), writes('mean', 'channels'), writes('variance', 'channels')],
      { checks: [['batch * spatial >= 1', 'no values per channel']] }),
    kernel('channelAffine', [
      ...NORM_SIZES, reads('x', NORM_TOTAL), reads('scale', 'channels'), reads('shift', 'channels'), writes('y', NORM_TOTAL, { inPlace: true }),
    ]),
    kernel('batchNormBackward', [
      ...NORM_SIZES, reads('x', NORM_TOTAL), reads('gy', NORM_TOTAL), reads('mean', 'channels'), reads('rstd', 'channels'),
      reads('gamma', 'channels', { optional: true }), flag('training'),
      accumulates('gx', NORM_TOTAL, { optional: true }), accumulates('ggamma', 'channels', { optional: true }), accumulates('gbeta', 'channels', { optional: true }),
    ]),
    // Computed in JavaScript.
    kernel('fill', ...computedInJs([int('n'), float('value'), writes('y', 'n')])),
    kernel('copyLabels', ...computedInJs([int('n'), readsInts('src', 'n'), writesInts('dst', 'n')])),
    kernel('nllLoss', ...computedInJs([int('rows'), int('cols'), reads('logp', 'rows * cols'), readsInts('labels', 'rows'), writes('loss', '1')])),
    kernel('nllLossBackward', ...computedInJs([int('rows'), int('cols'), readsInts('labels', 'rows'), reads('g', '1'), accumulates('glogp', 'rows * cols')])),
    kernel('klDiv', ...computedInJs([int('rows'), int('cols'), reads('logp', 'rows * cols'), reads('q', 'rows * cols'), writes('loss', '1')])),
    kernel('klDivBackward', ...computedInJs([int('rows'), int('cols'), reads('q', 'rows * cols'), reads('g', '1'), accumulates('glogp', 'rows * cols')])),
    kernel('sum', ...computedInJs([int('n'), float('scale'), reads('x', 'n'), writes('out', '1')])),
    kernel('sumBackward', ...computedInJs([int('n'), float('scale'), reads('g', '1'), accumulates('gx', 'n')])),
    kernel('batchNormAffine', ...computedInJs([
      int('channels'), float('eps'), reads('mean', 'channels'), reads('variance', 'channels'),
      reads('gamma', 'channels', { optional: true }), reads('beta', 'channels', { optional: true }),
      writes('rstd', 'channels'), writes('scale', 'channels'), writes('shift', 'channels'),
    ])),
    // Token ids given as the values of a float tensor (a model's input), checked and converted:
    // a value that is not an integer in [0, vocab) stops the call with a RangeError.
    kernel('tokenIds', ...computedInJs([int('count'), int('vocab'), reads('x', 'count'), writesInts('ids', 'count')])),
    // Rows of a [vocab, dim] table picked by integer ids (token embeddings), and their gradient.
    kernel('embeddingGather', ...computedInJs([
      int('count'), int('vocab'), int('dim'), readsInts('ids', 'count'), reads('weight', 'vocab * dim'), writes('out', 'count * dim'),
    ])),
    kernel('embeddingScatter', ...computedInJs([
      int('count'), int('vocab'), int('dim'), readsInts('ids', 'count'), reads('g', 'count * dim'), accumulates('gweight', 'vocab * dim'),
    ])),
    kernel('batchNormRunningStats', ...computedInJs([
      int('channels'), float('momentum'), float('unbias'), reads('mean', 'channels'), reads('variance', 'channels'),
      accumulates('runningMean', 'channels'), accumulates('runningVar', 'channels'),
    ])),
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

/** The argument called `name`, or what the kernel takes when a call leaves it out (trailing optional arguments): its declared default, else null. */
export function argOrDefault(call: KernelCall, name: string): unknown {
  const i = indexOf(call, name);
  const v = call.args[i];
  if (v !== undefined) return v;
  const d = call.decl.args[i];
  return d.kind === 'attr' ? (d.default ?? null) : null;
}

/** The same call with some arguments replaced by name (every argument written out, left-out ones at their defaults). */
export function withArgs(call: KernelCall, changes: Readonly<Record<string, unknown>>): unknown[] {
  for (const name of Object.keys(changes)) indexOf(call, name);
  return call.decl.args.map((d) => (Object.hasOwn(changes, d.name) ? changes[d.name] : argOrDefault(call, d.name)));
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

/** A buffer region a call touches: `size` elements of `view` from `offset`. */
export interface Region {
  readonly name: string;
  readonly view: Float32Array | Int32Array;
  readonly offset: number;
  readonly size: number;
  readonly written: boolean;
  readonly inPlace: boolean;
}

/**
 * What a call's declaration says about it, evaluated: its scope (attributes,
 * fields, lists, buffers and lets by name), after its checks. Throws the
 * RangeError the addon would: `<kernel>: <message>`.
 */
function evaluateCall(decl: KernelDecl, args: readonly unknown[]): Map<string, ExprValue> {
  const scope = new Map<string, ExprValue>();
  decl.args.forEach((a, i) => {
    const v = args[i];
    if (a.kind === 'fields') (v as readonly number[]).forEach((f, j) => scope.set(a.fields[j], f));
    else if (a.kind === 'attr' && v === undefined && a.default !== undefined) scope.set(a.name, a.default);
    else scope.set(a.name, v as ExprValue);
  });
  const lookup = (name: string): ExprValue => {
    if (!scope.has(name)) throw new RangeError(`${decl.name}: its declaration reads '${name}', which it does not have`);
    return scope.get(name);
  };
  const value = (e: Expr): number => {
    try {
      return evaluate(e, lookup);
    } catch (err) {
      if (err instanceof RangeError && !err.message.startsWith(`${decl.name}:`)) throw new RangeError(`${decl.name}: ${err.message}`);
      throw err;
    }
  };
  for (const l of decl.lets) scope.set(l.name, value(l.expr));
  for (const c of decl.checks) {
    if (value(c.expr) === 0) {
      const message = c.message.replace(/\{(\w+)\}/g, (_, n: string) => String(lookup(n)));
      throw new RangeError(`${decl.name}: ${message}`);
    }
  }
  return scope;
}

/** The regions a call's buffers cover by its declaration (after its checks; null optional buffers left out). */
export function callRegions(decl: KernelDecl, args: readonly unknown[]): Region[] {
  const scope = evaluateCall(decl, args);
  const lookup = (name: string): ExprValue => scope.get(name);
  const out: Region[] = [];
  decl.args.forEach((a, i) => {
    if (a.kind !== 'buffer') return;
    const view = args[i];
    if (!(view instanceof Float32Array || view instanceof Int32Array)) return;
    // A decided access writes or accumulates: written either way.
    const written = typeof a.access === 'function' || a.access !== 'read';
    const offset = a.offset === undefined ? 0 : evaluate(a.offset, lookup);
    out.push({ name: a.name, view, offset, size: evaluate(a.size, lookup), written, inPlace: a.inPlace === true });
  });
  return out;
}

/**
 * Checks a call against its declaration as the addon's generated checks do:
 * the attribute conditions, every buffer long enough for the region it
 * covers, and no written region sharing memory with another region (except a
 * written buffer declared in place that is exactly one of the inputs).
 * Throws a RangeError naming the kernel and the buffer.
 */
export function checkCall(decl: KernelDecl, args: readonly unknown[]): void {
  const regions = callRegions(decl, args);
  for (const r of regions) {
    if (r.offset + r.size > r.view.length) {
      throw new RangeError(
        `${decl.name}: ${r.name} has ${r.view.length} elements, needs ${r.offset + r.size}` + (r.offset > 0 ? ` (${r.size} from offset ${r.offset})` : ''),
      );
    }
  }
  const bytes = (r: Region): [ArrayBufferLike, number, number] => {
    const start = r.view.byteOffset + r.offset * r.view.BYTES_PER_ELEMENT;
    return [r.view.buffer, start, start + r.size * r.view.BYTES_PER_ELEMENT];
  };
  regions.forEach((w, i) => {
    if (!w.written || w.size === 0) return;
    const [wb, ws, we] = bytes(w);
    regions.forEach((o, j) => {
      if (i === j || o.size === 0 || (o.written && j < i)) return;
      const [ob, os, oe] = bytes(o);
      if (wb !== ob || os >= we || ws >= oe) return;
      if (w.inPlace && !o.written && os === ws && oe === we) return;
      throw new RangeError(`${decl.name}: ${w.name} shares memory with ${o.name}; a kernel's outputs must not overlap its inputs or each other`);
    });
  });
}
