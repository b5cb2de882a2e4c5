// SGD with momentum, Nesterov momentum and L2 weight decay, as torch.optim.SGD.
import type { Tensor } from '../tensor.js';
import { checkHyper, Optimizer } from './optimizer.js';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;

  constructor(params: Iterable<Tensor>, options: SgdOptions) {
    super('SGD', params, options?.lr);
    this.momentum = checkHyper('SGD', 'momentum', options.momentum ?? 0, 0, 1);
    this.dampening = checkHyper('SGD', 'dampening', options.dampening ?? 0, 0, 1);
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = checkHyper('SGD', 'weightDecay', options.weightDecay ?? 0, 0, Infinity);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new RangeError('SGD: Nesterov momentum requires a momentum > 0 and zero dampening');
    }
  }

  protected update(p: Float32Array, g: Float32Array, index: number): void {
    const { lr, momentum, dampening, nesterov, weightDecay: wd } = this;
    if (momentum === 0) {
      for (let i = 0; i < p.length; i++) p[i] -= lr * (g[i] + wd * p[i]);
      return;
    }
    const fresh = !this.buffers[index].has('momentum_buffer');
    const buf = this.buffer(index, 'momentum_buffer');
    for (let i = 0; i < p.length; i++) {
      const d = g[i] + wd * p[i];
      const b = fresh ? d : momentum * buf[i] + (1 - dampening) * d;
      buf[i] = b;
      p[i] -= lr * (nesterov ? d + momentum * b : b);
    }
  }
}
