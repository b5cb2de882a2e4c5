// sliceModel is model.slice under its public function name.
import t from 'tap';
import * as ms from '../../src/index.js';

t.test('sliceModel(model, r) is model.slice(r)', async (t) => {
  ms.manualSeed(2);
  const model = ms.models.mlp({ inputs: 6, hidden: [8], classes: 3 });
  const x = ms.randn([2, 6], { seed: 3 });
  const a = ms.sliceModel(model, 0.5);
  const b = model.slice(0.5);
  t.ok(a instanceof ms.models.Mlp);
  t.same(
    a.namedParameters().map(([n, p]) => [n, p.shape, [...p.data]]),
    b.namedParameters().map(([n, p]) => [n, p.shape, [...p.data]]),
  );
  t.same([...ms.noGrad(() => a.forward(x)).data], [...ms.noGrad(() => b.forward(x)).data]);
  t.same(a.config, b.config);
  t.throws(() => ms.sliceModel(model, 0.5, { inputShape: [7] }), /slice: options.inputShape \[7\] does not fit the model/);
  t.throws(() => ms.sliceModel({} as ms.nn.Module, 0.5), { name: 'TypeError', message: 'slice: model must be a Module' });
});
