import t from 'tap';
import * as ms from '../../src/index.js';

t.test('infer equals a whole-batch eval forward, slice by slice', async (t) => {
  ms.manualSeed(2);
  const net = ms.models.resnet({ depth: 8, classes: 10 });
  const x = ms.randn([11, 3, 8, 8], { seed: 3 });
  net.train();
  net.setSliceRate(0.75);
  for (const [rate, sliceSize] of [[1, 4], [0.5, 3], [0.25, 11], [0.5, 100]] as [number, number][]) {
    const got = ms.infer(net, x, { rate, sliceSize });
    net.eval();
    net.setSliceRate(rate);
    const want = ms.noGrad(() => net.forward(x));
    net.train();
    net.setSliceRate(0.75);
    t.same(got.shape, [11, 10]);
    let worst = 0;
    for (let i = 0; i < got.size; i++) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
    t.ok(worst < 1e-6, `rate ${rate}, slices of ${sliceSize}: largest difference ${worst}`);
    t.equal(got.requiresGrad, false);
  }
  t.equal(net.sliceRate, 0.75, 'rate restored');
  t.equal(net.training, true, 'mode restored');
  const mlp = ms.models.mlp({ inputs: 5, hidden: [7], classes: 2 });
  t.same(ms.infer(mlp, ms.randn([3, 5], { seed: 1 })).shape, [3, 2], 'non-image input: one slice');
  t.throws(() => ms.infer(net, ms.zeros([0, 3, 8, 8])), /infer: x must have a non-empty batch axis/);
  t.throws(() => ms.infer(net, x, { sliceSize: 0 }), /infer: sliceSize must be a positive integer/);
  t.throws(() => ms.infer(net, x, { rate: 2 }), /infer: slice rate/);
  t.throws(() => ms.infer(net, 'x' as never), /infer: x must be a Tensor/);
});
