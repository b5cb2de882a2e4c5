// PyTorch weights of the reference code's pre-activation ResNet load into
// ms.models.resnet unchanged and give PyTorch's outputs (fixtures written once
// by tools/make-torch-fixture.py with Debian's python3-torch 1.13).
import t from 'tap';
import * as ms from '../../src/index.js';

const fixture = (kind: string) => new URL(`../fixtures/torch-preresnet8-${kind}.safetensors`, import.meta.url).pathname;

for (const norm of ['group', 'batch'] as const) {
  t.test(`PyTorch pre-activation ResNet-8 (${norm} norm) imports and matches within 1e-4`, async (t) => {
    const model = ms.models.resnet({ depth: 8, classes: 10, norm });
    const tensors = await ms.loadTorchWeights(model, fixture(norm), { ignore: ['input', 'expected_logits'] });
    model.eval();
    const logits = ms.noGrad(() => model.forward(tensors.input));
    const expected = tensors.expected_logits;
    t.same(logits.shape, expected.shape);
    let worst = 0;
    for (let i = 0; i < logits.size; i++) worst = Math.max(worst, Math.abs(logits.data[i] - expected.data[i]));
    t.ok(worst < 1e-4, `largest difference ${worst.toExponential(2)}`);
    t.equal(model.namedParameters().find(([n]) => n === 'layer2.0.downsample.0.weight')![1].shape.join(), '32,16,1,1');
  });
}

t.test('weights that do not fit are refused with the names involved', async (t) => {
  const model = ms.models.resnet({ depth: 14, classes: 10 });
  await t.rejects(ms.loadTorchWeights(model, fixture('group'), { ignore: ['input', 'expected_logits'] }), /loadTorchWeights: the weights do not fit the model: .*missing: layer1\.1\./);
  const wrongClasses = ms.models.resnet({ depth: 8, classes: 5 });
  await t.rejects(ms.loadTorchWeights(wrongClasses, fixture('group'), { ignore: ['input', 'expected_logits'] }), /fc\.weight has shape \[10, 64\] but the model expects \[5, 64\]/);
  await t.rejects(ms.loadTorchWeights(model, '/nonexistent/file.safetensors'), /loadTorchWeights: cannot read/);
});
