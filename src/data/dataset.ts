import { Generator } from '../random.js';

// An in-memory image classification dataset: images as float32 NCHW in
// [0, 1] (or normalised), labels as class indices.
export interface Dataset {
  /** [length, C, H, W] values, row-major. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
  /** One image's shape [C, H, W]. */
  readonly shape: readonly [number, number, number];
  readonly classes: number;
  readonly length: number;
  readonly name: string;
}

export function makeDataset(name: string, images: Float32Array, labels: Int32Array, shape: [number, number, number], classes: number): Dataset {
  const size = shape[0] * shape[1] * shape[2];
  if (images.length !== labels.length * size) {
    throw new RangeError(`${name}: ${images.length} pixel values do not make ${labels.length} images of [${shape.join(', ')}]`);
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= classes) throw new RangeError(`${name}: label ${labels[i]} at index ${i} is outside [0, ${classes})`);
  }
  return { images, labels, shape, classes, length: labels.length, name };
}

/** The first `count` examples (a view, no copy). */
export function take(ds: Dataset, count: number): Dataset {
  const n = Math.max(0, Math.min(ds.length, Math.floor(count)));
  const size = ds.shape[0] * ds.shape[1] * ds.shape[2];
  return { ...ds, images: ds.images.subarray(0, n * size), labels: ds.labels.subarray(0, n), length: n };
}

/** `count` examples drawn without replacement by a seeded generator (copied, in random order). */
export function sample(ds: Dataset, count: number, seed: number): Dataset {
  const n = Math.max(0, Math.min(ds.length, Math.floor(count)));
  const gen = new Generator(seed);
  const order = new Int32Array(ds.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  for (let i = 0; i < n; i++) {
    const j = i + gen.int(order.length - i);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const size = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    images.set(ds.images.subarray(order[i] * size, (order[i] + 1) * size), i * size);
    labels[i] = ds.labels[order[i]];
  }
  return { ...ds, images, labels, length: n };
}

/** Global mean and standard deviation of every pixel value (the training set's, for standardising). */
export function pixelStats(ds: Dataset): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  const v = ds.images;
  for (let i = 0; i < v.length; i++) {
    sum += v[i];
    sq += v[i] * v[i];
  }
  const n = Math.max(1, v.length);
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(1e-12, sq / n - mean * mean)) };
}

/** A copy with (x - mean) / std applied to every value. */
export function standardize(ds: Dataset, stats: { mean: number; std: number }): Dataset {
  const out = new Float32Array(ds.images.length);
  const inv = 1 / stats.std;
  for (let i = 0; i < out.length; i++) out[i] = (ds.images[i] - stats.mean) * inv;
  return { ...ds, images: out };
}
