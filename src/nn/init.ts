// Parameter initialisation, PyTorch's defaults: U(-1/sqrt(fanIn), 1/sqrt(fanIn))
// for weights and biases of linear and convolution layers (kaiming_uniform with
// a = sqrt(5)), and He-normal where a model asks for it.
import { defaultGenerator, type Generator } from '../random.js';
import { Tensor } from '../tensor.js';

export function uniformInit(shape: number[], bound: number, gen: Generator = defaultGenerator): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = (2 * gen.uniform() - 1) * bound;
  return new Tensor(data, shape);
}

/** N(0, 2 / fanOut): He initialisation in fan-out mode, as ResNets use for convolutions. */
export function kaimingNormalFanOut(shape: number[], fanOut: number, gen: Generator = defaultGenerator): Tensor {
  const std = Math.sqrt(2 / fanOut);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = gen.normal() * std;
  return new Tensor(data, shape);
}

/**
 * Runs `build` (a layer's constructor) and puts the default generator back
 * where it was. A compact copy overwrites the random weights its constructor
 * draws; drawing them must not shift the seeded sequence that later
 * initialisation, shuffling and resumed training follow.
 */
export function withoutDrawing<T>(build: () => T): T {
  const state = defaultGenerator.getState();
  try {
    return build();
  } finally {
    defaultGenerator.setState(state);
  }
}
