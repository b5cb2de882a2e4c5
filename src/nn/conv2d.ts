// Conv2d layer; at rate r it applies the first outWidth filters to the
// channels that arrive, reading the full OIHW weight in place. A depthwise
// layer (groups = in = out channels) narrows its groups with its channels.
import { conv2d } from '../ops/conv2d.js';
import { defaultGenerator } from '../random.js';
import type { Tensor } from '../tensor.js';
import { uniformInit, withoutDrawing } from './init.js';
import { SliceableLayer, type SliceOptions } from './sliceable.js';
import { reportUse, tracing } from './trace.js';

export interface Conv2dLayerOptions extends SliceOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
  bias?: boolean;
}

function pair(v: number | [number, number] | undefined, fallback: number): [number, number] {
  if (v === undefined) return [fallback, fallback];
  return Array.isArray(v) ? [v[0], v[1]] : [v, v];
}

// A frozen copy: writing one entry in place would change the layer without
// moving its structureVersion, so it throws instead; assign a new value.
function frozenPair(name: string, v: number | [number, number], min: number): [number, number] {
  const p = pair(v, min);
  if (!Array.isArray(p) || p.length !== 2 || p.some((n) => !Number.isInteger(n) || n < min)) {
    throw new RangeError(`Conv2d: ${name} must be an integer >= ${min} or a pair of them, got ${String(v)}`);
  }
  return Object.freeze(p) as [number, number];
}

export class Conv2d extends SliceableLayer {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  private strideValue: [number, number] = [1, 1];
  private paddingValue: [number, number] = [0, 0];
  private dilationValue: [number, number] = [1, 1];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: Conv2dLayerOptions = {}) {
    super('Conv2d', options);
    for (const [name, v] of [['inChannels', inChannels], ['outChannels', outChannels]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`Conv2d: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = Object.freeze(pair(kernelSize, 1)) as [number, number];
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.dilation = options.dilation ?? 1;
    this.groups = options.groups ?? 1;
    if (!Number.isInteger(this.groups) || this.groups < 1 || inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(`Conv2d: groups ${String(this.groups)} must divide inChannels ${inChannels} and outChannels ${outChannels}`);
    }
    if (this.groups > 1 && !this.isDepthwise()) {
      // Slicing grouped (non-depthwise) convolutions would break their group structure.
      this.sliceOutput = false;
    }
    const [kh, kw] = this.kernelSize;
    const fanIn = (inChannels / this.groups) * kh * kw;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.registerParameter('weight', uniformInit([outChannels, inChannels / this.groups, kh, kw], bound, defaultGenerator))!;
    this.bias = (options.bias ?? true) ? this.registerParameter('bias', uniformInit([outChannels], bound, defaultGenerator)) : null;
  }

  // Each setter moves the model's structureVersion, so plans are rebuilt.
  get stride(): [number, number] {
    return this.strideValue;
  }

  set stride(v: number | [number, number]) {
    this.strideValue = frozenPair('stride', v, 1);
    this.markStructureChanged();
  }

  get padding(): [number, number] {
    return this.paddingValue;
  }

  set padding(v: number | [number, number]) {
    this.paddingValue = frozenPair('padding', v, 0);
    this.markStructureChanged();
  }

  get dilation(): [number, number] {
    return this.dilationValue;
  }

  set dilation(v: number | [number, number]) {
    this.dilationValue = frozenPair('dilation', v, 1);
    this.markStructureChanged();
  }

  isDepthwise(): boolean {
    return this.groups > 1 && this.groups === this.inChannels && this.groups === this.outChannels;
  }

  forward(x: Tensor): Tensor {
    const inWidth = x.rank === 4 ? x.shape[1] : 0;
    const depthwise = this.isDepthwise();
    const groups = depthwise ? inWidth : this.groups;
    const outWidth = depthwise ? inWidth : this.outWidth(this.outChannels);
    const y = conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups,
      outWidth,
    });
    if (tracing()) {
      const [kh, kw] = this.kernelSize;
      const taps = (inWidth / groups) * kh * kw;
      reportUse({
        module: this,
        macs: outWidth * y.shape[2] * y.shape[3] * taps,
        params: outWidth * taps + (this.bias ? outWidth : 0),
        widths: { inWidth, outWidth, groups },
      });
    }
    return y;
  }

  /**
   * A layer of the widths this one reported in a trace (inWidth, outWidth and
   * groups, which a depthwise layer narrows), holding copies of its prefix filters.
   */
  override compact(widths?: Readonly<Record<string, number>>): Conv2d {
    const inWidth = widths?.inWidth ?? this.inChannels;
    const outWidth = widths?.outWidth ?? this.outChannels;
    const options: Conv2dLayerOptions = {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: widths?.groups ?? this.groups,
      bias: this.bias !== null,
      sliceGroups: this.sliceGroups,
    };
    return this.filledCopy(withoutDrawing(() => new Conv2d(inWidth, outWidth, this.kernelSize, options)));
  }
}
