// The only module that imports the addon. It finds a prebuilt binary for this
// platform or the local build (node-gyp-build decides) and types its functions.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureNative } from './capture.js';

/** The raw kernel entry points. Arguments are validated again on the C++ side. */
export interface NativeAddon {
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, aOffset: number, lda: number,
    B: Float32Array, bOffset: number, ldb: number,
    beta: number, C: Float32Array, cOffset: number, ldc: number,
  ): void;
  /** op 0 = add, 1 = mul; element strides with 0 on broadcast axes. */
  binary(op: 0 | 1, shape: number[], a: Float32Array, aStrides: number[],
    b: Float32Array, bStrides: number[], out: Float32Array): void;
  sumTo(shape: number[], g: Float32Array, scale: number, acc: Float32Array, accStrides: number[]): void;
  mulGrad(shape: number[], g: Float32Array, other: Float32Array, otherStrides: number[],
    acc: Float32Array, accStrides: number[]): void;
  relu(x: Float32Array, y: Float32Array): void;
  reluBackward(x: Float32Array, gy: Float32Array, gx: Float32Array): void;
  axpy(n: number, alpha: number, x: Float32Array, y: Float32Array): void;
  copy(n: number, src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number): void;
  addRowBias(rows: number, cols: number, bias: Float32Array, y: Float32Array, ldy: number): void;
  columnSums(rows: number, cols: number, g: Float32Array, ldg: number, acc: Float32Array): void;
  softmax(rows: number, cols: number, x: Float32Array, y: Float32Array, log: boolean): void;
  softmaxBackward(rows: number, cols: number, y: Float32Array, gy: Float32Array, gx: Float32Array,
    log: boolean): void;
  attentionForward(batch: number, heads: number, Tq: number, Tk: number, d: number, scale: number, causal: boolean,
    q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, out: Float32Array): void;
  attentionBackward(batch: number, heads: number, Tq: number, Tk: number, d: number, scale: number, causal: boolean,
    q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, gout: Float32Array,
    gq: Float32Array | null, gk: Float32Array | null, gv: Float32Array | null): void;
  layerNormForward(rows: number, dim: number, x: Float32Array, gamma: Float32Array | null, beta: Float32Array | null,
    eps: number, y: Float32Array, mean: Float32Array, rstd: Float32Array): void;
  layerNormBackward(rows: number, dim: number, x: Float32Array, gy: Float32Array, gamma: Float32Array | null,
    mean: Float32Array, rstd: Float32Array, gx: Float32Array | null, ggamma: Float32Array | null, gbeta: Float32Array | null): void;
  /** params: [N, C, H, W, O, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW, groups, weightInPerGroup] */
  /**
   * With inCenter/inScale/inShift (one value per image and input channel), the convolution
   * reads (x - inCenter) * inScale + inShift, then ReLU with inRelu: a folded group norm.
   */
  conv2dForward(params: number[], x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, accumulate?: boolean,
    inCenter?: Float32Array | null, inScale?: Float32Array | null, inShift?: Float32Array | null, inRelu?: boolean,
    residual?: Float32Array | null): void;
  /** conv2dForward, then groupNormStats over its output y (an inference plan's fused form). */
  conv2dForwardNormStats(params: number[], x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array,
    accumulate: boolean, inCenter: Float32Array | null, inScale: Float32Array | null, inShift: Float32Array | null,
    inRelu: boolean, normGroups: number, gamma: Float32Array | null, beta: Float32Array | null, eps: number,
    mean: Float32Array, rstd: Float32Array, center: Float32Array, scale: Float32Array, shift: Float32Array): void;
  /** accumulate false: writes gx without reading it (default true: adds to it). */
  conv2dBackwardInput(params: number[], gy: Float32Array, w: Float32Array, gx: Float32Array, accumulate?: boolean): void;
  /** With inCenter/inScale/inShift (and inRelu), x is read through the map as in conv2dForward. */
  conv2dBackwardWeight(params: number[], gy: Float32Array, x: Float32Array, gw: Float32Array,
    inCenter?: Float32Array | null, inScale?: Float32Array | null, inShift?: Float32Array | null, inRelu?: boolean): void;
  conv2dBackwardBias(params: number[], gy: Float32Array, gb: Float32Array): void;
  /** kind 0 = max, 1 = average; params: [planes, H, W, kh, kw, strideH, strideW, padH, padW] */
  poolForward(kind: 0 | 1, params: number[], x: Float32Array, y: Float32Array): void;
  poolBackward(kind: 0 | 1, params: number[], x: Float32Array, gy: Float32Array, gx: Float32Array): void;
  globalAvgPool(planes: number, size: number, x: Float32Array, y: Float32Array): void;
  globalAvgPoolBackward(planes: number, size: number, gy: Float32Array, gx: Float32Array): void;
  groupNormForward(batch: number, channels: number, spatial: number, groups: number, x: Float32Array,
    gamma: Float32Array | null, beta: Float32Array | null, eps: number, y: Float32Array, mean: Float32Array,
    rstd: Float32Array, relu?: boolean): void;
  /** Group norm's mean/rstd per (image, group) and its map per (image, channel), without its output. */
  groupNormStats(batch: number, channels: number, spatial: number, groups: number, x: Float32Array,
    gamma: Float32Array | null, beta: Float32Array | null, eps: number, mean: Float32Array, rstd: Float32Array,
    center: Float32Array, scale: Float32Array, shift: Float32Array): void;
  groupNormBackward(batch: number, channels: number, spatial: number, groups: number, x: Float32Array,
    gy: Float32Array, gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array,
    gx: Float32Array | null, ggamma: Float32Array | null, gbeta: Float32Array | null,
    reluOut?: Float32Array | null, gxAccumulate?: boolean,
    reluCenter?: Float32Array | null, reluScale?: Float32Array | null, reluShift?: Float32Array | null): void;
  channelMoments(batch: number, channels: number, spatial: number, x: Float32Array, mean: Float32Array,
    variance: Float32Array): void;
  channelAffine(batch: number, channels: number, spatial: number, x: Float32Array, scale: Float32Array,
    shift: Float32Array, y: Float32Array): void;
  batchNormBackward(batch: number, channels: number, spatial: number, x: Float32Array, gy: Float32Array,
    mean: Float32Array, rstd: Float32Array, gamma: Float32Array | null, training: boolean,
    gx: Float32Array | null, ggamma: Float32Array | null, gbeta: Float32Array | null): void;
  /** The calling thread's kernel thread count (each worker thread has its own). */
  getNumThreads(): number;
  setNumThreads(n: number): void;
  kernelInfo(): { gemm: string; threads: number; maxThreads: number };
  /** OS thread ids that ran the shares of the calling thread's last parallel kernel section. */
  lastParallelThreads(): number[];
  /** The path ('direct', 'implicit', 'im2col', 'pointwise', 'depthwise') of the calling thread's last convolution of each pass. */
  convPaths(): { forward: string; backwardInput: string; backwardWeight: string };
  /** For tests: a two-thread job whose second share throws a C++ exception of this kind. */
  testThrowInKernel(kind: 'bad_alloc' | 'system_error' | 'logic_error' | 'int'): void;
  /** Binds (and checks) kernel calls once: a program planRun runs (src/program.ts). */
  planCompile(calls: [string, unknown[]][]): unknown;
  /** Runs calls [from, to) of a compiled program. */
  planRun(program: unknown, from: number, to: number): void;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What is known about this process when the addon fails to load (see {@link loadFailureMessage}). */
export interface LoadFailureContext {
  platform: string;
  arch: string;
  /** 'glibc 2.36', 'musl', or null off Linux. */
  libc: string | null;
  node: string;
  /** The Node-API version this Node provides. */
  napi: string | undefined;
  /** The prebuilds/ folders the installed package ships, e.g. ['darwin-arm64', 'linux-x64 (glibc, musl)']. */
  prebuilds: string[];
}

/** The Node-API version the addon is compiled for (NAPI_VERSION in binding.gyp). */
export const ADDON_NAPI_VERSION = 8;

function currentContext(root: string): LoadFailureContext {
  let libc: string | null = null;
  if (process.platform === 'linux') {
    try {
      const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
      libc = header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'musl';
    } catch {
      libc = 'unknown libc';
    }
  }
  const prebuilds: string[] = [];
  try {
    for (const dir of readdirSync(join(root, 'prebuilds')).sort()) {
      const libcs = readdirSync(join(root, 'prebuilds', dir))
        .map((f) => /\.(glibc|musl)\./.exec(f)?.[1])
        .filter((l): l is string => l !== undefined);
      prebuilds.push(libcs.length > 0 ? `${dir} (${libcs.sort().join(', ')})` : dir);
    }
  } catch {
    // a source checkout or a package without prebuilds
  }
  return {
    platform: process.platform,
    arch: process.arch,
    libc,
    node: process.versions.node,
    napi: process.versions.napi,
    prebuilds,
  };
}

/** The error text for an addon that would not load: where, why, and how to build it. */
export function loadFailureMessage(reason: string, ctx: LoadFailureContext): string {
  const where = `${ctx.platform}-${ctx.arch}${ctx.libc ? ` (${ctx.libc})` : ''}`;
  const shipped = ctx.prebuilds.length > 0 ? ctx.prebuilds.join(', ') : 'none';
  const napiTooOld = ctx.napi !== undefined && Number(ctx.napi) < ADDON_NAPI_VERSION;
  return [
    `modelslice: could not load its native kernels on ${where}, Node ${ctx.node}, ` +
      `Node-API ${ctx.napi ?? 'unknown'} (the addon needs >= ${ADDON_NAPI_VERSION}` +
      `${napiTooOld ? ': upgrade Node to >= 20.19' : ''}).`,
    `Prebuilt binaries in this package: ${shipped}. Without one that loads here, the kernels must be built ` +
      `from source by the package's install script, which npm 11 and pnpm 10 run only once you allow it.`,
    `Underlying error: ${reason}`,
    'To build from source (needs Python 3 and a C++17 compiler: make and g++ or clang, or Visual Studio on Windows):',
    '  npm:  npm install-scripts approve modelslice && npm rebuild modelslice --build-from-source',
    '        (global or npx: npm install -g modelslice --allow-scripts=modelslice --build-from-source)',
    '  pnpm: pnpm approve-builds (select modelslice), then pnpm rebuild modelslice',
    '  or set npm_config_build_from_source=true in the environment of the install or rebuild.',
  ].join('\n');
}

/** Loads the addon of the package at `root` (this one by default); throws {@link loadFailureMessage}'s text. */
export function loadAddon(root: string = packageRoot): NativeAddon {
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  try {
    return nodeGypBuild(root) as NativeAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(loadFailureMessage(reason, currentContext(root)), { cause: err });
  }
}

/** Calls and milliseconds per kernel entry point while profiling is on. */
export type KernelProfile = Record<string, { calls: number; ms: number }>;

let profile: KernelProfile | null = null;

/**
 * @internal Wraps each function of a kernel table (the addon's, or the
 * JavaScript kernels of js-kernels.ts) once, so a capture records its calls and
 * a profile times them; while neither is open the wrapper is two early returns.
 */
export function instrumentKernels<T extends object>(table: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(table as unknown as Record<string, unknown>)) {
    if (typeof fn !== 'function') {
      wrapped[name] = fn;
      continue;
    }
    const f = fn as (...a: unknown[]) => unknown;
    // A replay calls the wrapper too, so profiling still sees replayed kernels.
    const w = (...a: unknown[]): unknown => {
      if (captureNative(name, w, a)) return undefined;
      if (profile === null) return f(...a);
      const t0 = performance.now();
      try {
        return f(...a);
      } finally {
        const entry = (profile[name] ??= { calls: 0, ms: 0 });
        entry.calls++;
        entry.ms += performance.now() - t0;
      }
    };
    wrapped[name] = w;
  }
  return wrapped as unknown as T;
}

/** The values MODELSLICE_ISA accepts (any case); each caps the kernels' instruction set. */
export const ISA_NAMES: readonly string[] = ['avx512', 'avx2', 'generic'];

/**
 * Refuses a MODELSLICE_ISA that names no instruction set: the addon would
 * ignore it and run its fastest kernels, so a typo meant to test another path
 * would go unnoticed. Unset or empty means no cap.
 */
export function checkIsaSetting(value: string | undefined = process.env.MODELSLICE_ISA): void {
  if (value === undefined || value === '' || ISA_NAMES.includes(value.toLowerCase())) return;
  throw new RangeError(
    `MODELSLICE_ISA: ${JSON.stringify(value)} names no instruction set; accepted: ${ISA_NAMES.join(', ')} (any case), or unset`,
  );
}

checkIsaSetting();
export const native: NativeAddon = instrumentKernels(loadAddon());

/** @internal Whether a kernel profile is being recorded (plans then run call by call, so it sees each). */
export function profiling(): boolean {
  return profile !== null;
}

/** Starts recording time per kernel entry point (for finding where time goes). */
export function startKernelProfile(): void {
  profile = {};
}

/** Stops recording and returns calls and milliseconds per kernel. */
export function stopKernelProfile(): KernelProfile {
  const p = profile ?? {};
  profile = null;
  return p;
}
