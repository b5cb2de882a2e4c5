// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight
// decay), as torch.optim.Adam / AdamW.
import type { Tensor } from '../tensor.js';
import { checkHyper, Optimizer } from './optimizer.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class Adam extends Optimizer {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  protected readonly decoupled: boolean = false;

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}, name = 'Adam', defaultDecay = 0) {
    super(name, params, options.lr ?? 1e-3);
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    this.beta1 = checkHyper(name, 'betas[0]', b1, 0, 0.999999);
    this.beta2 = checkHyper(name, 'betas[1]', b2, 0, 0.999999);
    this.eps = checkHyper(name, 'eps', options.eps ?? 1e-8, 0, Infinity);
    this.weightDecay = checkHyper(name, 'weightDecay', options.weightDecay ?? defaultDecay, 0, Infinity);
  }

  protected update(p: Float32Array, g: Float32Array, index: number): void {
    const { lr, beta1, beta2, eps, weightDecay: wd } = this;
    const m = this.buffer(index, 'exp_avg');
    const v = this.buffer(index, 'exp_avg_sq');
    const t = this.paramSteps[index];
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    const stepSize = lr / c1;
    const sqrtC2 = Math.sqrt(c2);
    for (let i = 0; i < p.length; i++) {
      let d = g[i];
      if (this.decoupled) p[i] *= 1 - lr * wd;
      else d += wd * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * d;
      v[i] = beta2 * v[i] + (1 - beta2) * d * d;
      p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtC2 + eps);
    }
  }
}

export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super(params, options, 'AdamW', 1e-2);
  }
}
