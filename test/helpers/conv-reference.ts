// Plain float64 references for conv2d, the pools and the normalizations, with
// the prefix rule of modelslice, plus small helpers for their tests.
// Not a test file (tap only runs test/**/*.test.ts).
import * as ms from '../../src/index.js';
import type { Asserter } from './reference.js';

export interface ConvRefArgs {
  /** x [N, C, H, W] */
  xShape: readonly number[];
  /** weight [outFull, inPerGroupFull, kh, kw] */
  wShape: readonly number[];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
  outWidth: number;
}

export function convOutSize(size: number, kernel: number, stride: number, pad: number, dilation: number): number {
  const span = dilation * (kernel - 1) + 1;
  const padded = size + 2 * pad;
  return padded < span ? -1 : Math.floor((padded - span) / stride) + 1;
}

/**
 * conv2d on the prefix, naive loops in float64: filter o < outWidth belongs to
 * group g = floor(o / (outWidth / groups)) and reads input channels
 * g * cg + c (cg = C / groups) through weight channel c.
 */
export function refConv2d(
  x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, a: ConvRefArgs,
): { data: Float64Array; shape: number[] } {
  const [n, c, h, wd] = a.xShape;
  const [, ipg, kh, kw] = a.wShape;
  const [sh, sw] = a.stride;
  const [ph, pw] = a.padding;
  const [dh, dw] = a.dilation;
  const oh = convOutSize(h, kh, sh, ph, dh);
  const ow = convOutSize(wd, kw, sw, pw, dw);
  if (oh < 0 || ow < 0) throw new Error('refConv2d: kernel does not fit');
  const cg = c / a.groups;
  const og = a.outWidth / a.groups;
  const y = new Float64Array(n * a.outWidth * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < a.outWidth; o++) {
      const g = Math.floor(o / og);
      for (let yh = 0; yh < oh; yh++) {
        for (let yw = 0; yw < ow; yw++) {
          let s = bias === null ? 0 : bias[o];
          for (let ci = 0; ci < cg; ci++) {
            const xc = ((b * c + g * cg + ci) * h) * wd;
            const wc = (o * ipg + ci) * kh * kw;
            for (let i = 0; i < kh; i++) {
              const ih = yh * sh - ph + i * dh;
              if (ih < 0 || ih >= h) continue;
              for (let j = 0; j < kw; j++) {
                const iw = yw * sw - pw + j * dw;
                if (iw < 0 || iw >= wd) continue;
                s += x[xc + ih * wd + iw] * w[wc + i * kw + j];
              }
            }
          }
          y[((b * a.outWidth + o) * oh + yh) * ow + yw] = s;
        }
      }
    }
  }
  return { data: y, shape: [n, a.outWidth, oh, ow] };
}

/** Flat indices of a weight [outFull, ipgFull, kh, kw] outside the used prefix (o < outWidth, c < cg). */
export function convWeightOutsidePrefix(wShape: readonly number[], outWidth: number, cg: number): number[] {
  const [outFull, ipg, kh, kw] = wShape;
  const out: number[] = [];
  for (let o = 0; o < outFull; o++) {
    for (let c = 0; c < ipg; c++) {
      if (o < outWidth && c < cg) continue;
      for (let k = 0; k < kh * kw; k++) out.push((o * ipg + c) * kh * kw + k);
    }
  }
  return out;
}

/** A contiguous copy of weight[:outWidth, :cg] (the dense equivalent of a sliced weight). */
export function copySubWeight(w: ms.Tensor, outWidth: number, cg: number): ms.Tensor {
  const [, ipg, kh, kw] = w.shape;
  const taps = kh * kw;
  const data = new Float32Array(outWidth * cg * taps);
  for (let o = 0; o < outWidth; o++) {
    for (let c = 0; c < cg; c++) {
      for (let k = 0; k < taps; k++) data[(o * cg + c) * taps + k] = w.data[(o * ipg + c) * taps + k];
    }
  }
  return ms.tensor(data, [outWidth, cg, kh, kw]);
}

export interface PoolRefArgs {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
}

/** max (padding = -inf) or average (padding counted, divisor kh * kw) pooling. */
export function refPool2d(
  kind: 'max' | 'avg', x: ArrayLike<number>, xShape: readonly number[], a: PoolRefArgs,
): { data: Float64Array; shape: number[] } {
  const [n, c, h, wd] = xShape;
  const [kh, kw] = a.kernel;
  const [sh, sw] = a.stride;
  const [ph, pw] = a.padding;
  const oh = convOutSize(h, kh, sh, ph, 1);
  const ow = convOutSize(wd, kw, sw, pw, 1);
  const y = new Float64Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let yh = 0; yh < oh; yh++) {
      for (let yw = 0; yw < ow; yw++) {
        let m = -Infinity;
        let s = 0;
        for (let i = 0; i < kh; i++) {
          const ih = yh * sh - ph + i;
          if (ih < 0 || ih >= h) continue;
          for (let j = 0; j < kw; j++) {
            const iw = yw * sw - pw + j;
            if (iw < 0 || iw >= wd) continue;
            const v = x[(p * h + ih) * wd + iw];
            if (v > m) m = v;
            s += v;
          }
        }
        y[(p * oh + yh) * ow + yw] = kind === 'max' ? m : s / (kh * kw);
      }
    }
  }
  return { data: y, shape: [n, c, oh, ow] };
}

/** [N, C, H, W] -> [N, C] plane means. */
export function refGlobalAvgPool(x: ArrayLike<number>, xShape: readonly number[]): Float64Array {
  const [n, c, h, w] = xShape;
  const plane = h * w;
  const y = new Float64Array(n * c);
  for (let p = 0; p < n * c; p++) {
    let s = 0;
    for (let i = 0; i < plane; i++) s += x[p * plane + i];
    y[p] = s / plane;
  }
  return y;
}

function normDims(xShape: readonly number[]): [number, number, number] {
  let spatial = 1;
  for (let d = 2; d < xShape.length; d++) spatial *= xShape[d];
  return [xShape[0], xShape[1], spatial];
}

/** groupNorm in float64: biased variance per (image, group), then gamma[:C], beta[:C]. */
export function refGroupNorm(
  x: ArrayLike<number>, xShape: readonly number[], groups: number,
  gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, eps: number,
): Float64Array {
  const [n, c, sp] = normDims(xShape);
  const cpg = c / groups;
  const count = cpg * sp;
  const y = new Float64Array(n * c * sp);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const base = (b * c + g * cpg) * sp;
      let s = 0;
      for (let i = 0; i < count; i++) s += x[base + i];
      const mu = s / count;
      let q = 0;
      for (let i = 0; i < count; i++) q += (x[base + i] - mu) ** 2;
      const r = 1 / Math.sqrt(q / count + eps);
      for (let ci = 0; ci < cpg; ci++) {
        const ch = g * cpg + ci;
        const gm = gamma === null ? 1 : gamma[ch];
        const bt = beta === null ? 0 : beta[ch];
        for (let i = 0; i < sp; i++) {
          const k = base + ci * sp + i;
          y[k] = (x[k] - mu) * r * gm + bt;
        }
      }
    }
  }
  return y;
}

/** Per-channel batch mean and biased variance of x [N, C, ...] in float64. */
export function refChannelMoments(x: ArrayLike<number>, xShape: readonly number[]): { mean: Float64Array; variance: Float64Array } {
  const [n, c, sp] = normDims(xShape);
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  const count = n * sp;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < sp; i++) s += x[(b * c + ch) * sp + i];
    const mu = s / count;
    let q = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < sp; i++) q += (x[(b * c + ch) * sp + i] - mu) ** 2;
    mean[ch] = mu;
    variance[ch] = q / count;
  }
  return { mean, variance };
}

/**
 * batchNorm in float64. With `stats` null the batch statistics normalize
 * (training); otherwise the given running mean/var do (evaluation).
 */
export function refBatchNorm(
  x: ArrayLike<number>, xShape: readonly number[],
  stats: { mean: ArrayLike<number>; variance: ArrayLike<number> } | null,
  gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, eps: number,
): Float64Array {
  const [n, c, sp] = normDims(xShape);
  const st = stats ?? refChannelMoments(x, xShape);
  const y = new Float64Array(n * c * sp);
  for (let ch = 0; ch < c; ch++) {
    const r = 1 / Math.sqrt(st.variance[ch] + eps);
    const gm = gamma === null ? 1 : gamma[ch];
    const bt = beta === null ? 0 : beta[ch];
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < sp; i++) {
        const k = (b * c + ch) * sp + i;
        y[k] = (x[k] - st.mean[ch]) * r * gm + bt;
      }
    }
  }
  return y;
}

/** Quiet wrapper: collects failing assertions only (for loops over many cases). */
export function quiet(t: Asserter): { sink: Asserter; flush(): number } {
  const failures: string[] = [];
  return {
    sink: {
      ok(cond, message) {
        if (!cond) failures.push(message ?? '');
        return Boolean(cond);
      },
    },
    flush() {
      for (const f of failures.slice(0, 20)) t.ok(false, f);
      if (failures.length > 20) t.ok(false, `... and ${failures.length - 20} more failures`);
      return failures.length;
    },
  };
}

/** Indices [from, to) as an array. */
export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** Calls fn and returns what it threw (undefined if nothing). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}
