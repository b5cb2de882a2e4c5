// Parameter-free layers and containers.
import { avgPool2d } from '../ops/avg-pool2d.js';
import { globalAvgPool2d } from '../ops/global-avg-pool2d.js';
import { maxPool2d } from '../ops/max-pool2d.js';
import type { Pool2dOptions } from '../ops/pool2d.js';
import { relu } from '../ops/relu.js';
import { flatten } from '../ops/reshape.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return flatten(x);
  }
}

// A pool's size and options are frozen copies (an in-place write would change
// what it computes without moving structureVersion); assigning new ones moves it.
abstract class Pool extends Module {
  private size: number | [number, number];
  private opts: Pool2dOptions;

  constructor(kernelSize: number | [number, number], options: Pool2dOptions = {}) {
    super();
    this.size = Pool.frozen(kernelSize);
    this.opts = Pool.frozenOptions(options);
  }

  get kernelSize(): number | [number, number] {
    return this.size;
  }

  set kernelSize(k: number | [number, number]) {
    this.size = Pool.frozen(k);
    this.markStructureChanged();
  }

  get options(): Pool2dOptions {
    return this.opts;
  }

  set options(o: Pool2dOptions) {
    this.opts = Pool.frozenOptions(o);
    this.markStructureChanged();
  }

  private static frozen<T>(v: T): T {
    return (Array.isArray(v) ? Object.freeze([...v]) : v) as T;
  }

  private static frozenOptions(o: Pool2dOptions): Pool2dOptions {
    if (o === null || typeof o !== 'object') return o;
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) copy[k] = Pool.frozen(v);
    return Object.freeze(copy) as Pool2dOptions;
  }
}

export class MaxPool2d extends Pool {
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Pool {
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

export class GlobalAvgPool2d extends Module {
  forward(x: Tensor): Tensor {
    return globalAvgPool2d(x);
  }
}

/** Runs its children in order; they are named '0', '1', ... */
export class Sequential extends Module {
  private readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => {
      if (!(m instanceof Module)) throw new TypeError(`Sequential: argument ${i} is not a Module`);
      this.registerModule(String(i), m);
    });
  }

  get length(): number {
    return this.layers.length;
  }

  at(i: number): Module {
    return this.layers[i];
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this.layers) h = m.forward(h);
    return h;
  }
}
