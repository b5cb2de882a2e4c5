// sum and mean of all elements to a scalar: values and gradients.
import t from 'tap';
import * as ms from '../../src/index.js';
import { assertClose, assertOpError, checkGradients, randn32, refMean, refSum, rng, size } from '../helpers/reference.js';

for (const [name, fn, ref] of [['sum', ms.sum, refSum], ['mean', ms.mean, refMean]] as const) {
  t.test(`${name}: values and gradients`, async (t) => {
    const gen = rng(name === 'sum' ? 81 : 82);
    for (const shape of [[], [1], [7], [3, 4], [2, 3, 5], [1000, 33]]) {
      const x = ms.tensor(randn32(gen, size(shape)), shape, { requiresGrad: true });
      const y = fn(x);
      t.same(y.shape, [], `[${shape}]: a scalar`);
      assertClose(t, y.data, ref(x.data), `[${shape}]: value`, { rtol: 1e-6, atol: 1e-6 * Math.sqrt(size(shape)) });
      checkGradients(t, `${name} [${shape}]`, [x], fn, ([v]) => ref(v), { gen, sample: 16 });
    }
    const empty = fn(ms.zeros([0, 3]));
    t.ok(name === 'sum' ? empty.item() === 0 : Number.isNaN(empty.item()), `${name} of nothing is ${name === 'sum' ? '0' : 'NaN'}`);
    assertOpError(t, () => fn(3 as unknown as ms.Tensor), TypeError, name, ['x'], `${name} of a number`);
  });
}
