// groupNorm with {relu: true}: the fused pass equals relu(groupNorm(x)) in
// value and in every gradient.
import t from 'tap';
import * as ms from '../../src/index.js';

t.test('groupNorm {relu: true} equals relu(groupNorm(x)), values and gradients', async (t) => {
  for (const [shape, groups] of [[[2, 8, 5, 5], 4], [[3, 6, 7], 3], [[1, 4, 1, 1], 4]] as [number[], number][]) {
    const c = shape[1];
    const mk = (seed: number) => ms.randn(shape, { seed, requiresGrad: true });
    const x1 = mk(1);
    const x2 = mk(1);
    const g1 = ms.randn([c + 2], { seed: 2, requiresGrad: true });
    const g2 = ms.tensor(g1.data, [c + 2], { requiresGrad: true });
    const b1 = ms.randn([c + 2], { seed: 3, requiresGrad: true });
    const b2 = ms.tensor(b1.data, [c + 2], { requiresGrad: true });
    const w = ms.randn(shape, { seed: 4 });
    const fused = ms.groupNorm(x1, groups, g1, b1, { relu: true });
    const plain = ms.relu(ms.groupNorm(x2, groups, g2, b2));
    t.same(fused.data, plain.data, `values ${JSON.stringify(shape)}`);
    ms.sum(ms.mul(fused, w)).backward();
    ms.sum(ms.mul(plain, w)).backward();
    t.same(x1.grad!.data, x2.grad!.data, 'dx');
    t.same(g1.grad!.data, g2.grad!.data, 'dgamma');
    t.same(b1.grad!.data, b2.grad!.data, 'dbeta');
  }
});
