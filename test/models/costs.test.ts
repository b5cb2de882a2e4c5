import t from 'tap';
import * as ms from '../../src/index.js';

const rates = [1, 0.75, 0.5, 0.25];

function millions(rows: ms.CostRow[]): string[] {
  return rows.map((r) => (r.macs / 1e6).toFixed(2));
}

t.test('ResNet-164 cost table matches the analytic counts', async (t) => {
  const model = ms.models.resnet({ depth: 164, classes: 10 });
  t.equal(model.config.block, 'bottleneck');
  const rows = ms.costs(model, [3, 32, 32], rates);
  t.same(millions(rows), ['247.65', '139.38', '62.02', '15.56']);
  t.equal(Math.round(rows[0].params / 1e4) / 100, 1.7);
  t.same(rows.map((r) => r.width), [1, 0.75, 0.5, 0.25]);
  t.same(rows.map((r) => r.rate), rates);
});

t.test('ResNet-20 cost table matches the analytic counts', async (t) => {
  const model = ms.models.resnet({ depth: 20, classes: 10 });
  t.equal(model.config.block, 'basic');
  const rows = ms.costs(model, [3, 32, 32], rates);
  t.same(millions(rows), ['40.81', '23.04', '10.31', '2.63']);
  t.equal(Math.round(rows[0].params / 1e4) / 100, 0.27);
  t.equal(rows[0].params, model.numParameters(), 'params at rate 1 are every parameter');
});

t.test('cost table params equal the compact model parameter count at every rate', async (t) => {
  const model = ms.models.resnet({ depth: 20, classes: 10 });
  for (const row of ms.costs(model, [3, 32, 32], [1, 0.6, 0.25, 0.1])) {
    t.equal(model.slice(row.rate).numParameters(), row.params, `rate ${row.rate}`);
  }
});

t.test('MLP costs count linear multiply-accumulates', async (t) => {
  const model = ms.models.mlp({ inputs: 784, hidden: [1024, 1024], classes: 10 });
  const [full, half] = ms.costs(model, [784], [1, 0.5]);
  t.equal(full.macs, 784 * 1024 + 1024 * 1024 + 1024 * 10);
  t.equal(half.macs, 784 * 512 + 512 * 512 + 512 * 10);
  t.equal(full.params, 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 10240 + 10);
  t.same(ms.costs(model).map((r) => r.rate), rates, 'default input shape and rates');
});

t.test('VGG builds at every depth and slices its features', async (t) => {
  for (const depth of [11, 13, 16, 19] as const) {
    const model = ms.models.vgg({ depth, classes: 10 });
    const rows = ms.costs(model, [3, 32, 32], [1, 0.5]);
    t.ok(rows[1].macs < rows[0].macs * 0.3, `VGG-${depth} at 0.5 costs about a quarter`);
  }
  t.throws(() => ms.models.vgg({ depth: 12, classes: 10 }), /vgg: depth must be 11, 13, 16 or 19/);
});

t.test('model constructors refuse bad configurations', async (t) => {
  t.throws(() => ms.models.resnet({ depth: 21, classes: 10 }), /resnet: a basic-block ResNet needs depth = 6n \+ 2/);
  t.throws(() => ms.models.resnet({ depth: 165, classes: 10 }), /resnet: a bottleneck ResNet needs depth = 9n \+ 2/);
  t.throws(() => ms.models.resnet({ depth: 20, classes: 0 }), /resnet: classes must be a positive integer/);
  t.throws(() => ms.models.resnet({ depth: 20, classes: 10, norm: 'layer' as never }), /resnet: norm must be/);
  t.throws(() => ms.models.mlp({ inputs: 10, hidden: [0], classes: 2 }), /mlp: hidden\[0\] must be a positive integer/);
  t.throws(() => ms.costs(ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 }), [4], [0]), /costs: slice rate must be a finite number in \(0, 1\]/);
  t.throws(() => ms.costs(ms.models.mlp({ inputs: 4, hidden: [8], classes: 2 }), [], [1]), /costs: inputShape/);
});
