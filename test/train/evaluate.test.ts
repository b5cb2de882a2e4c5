import t from 'tap';
import * as ms from '../../src/index.js';

function toy(n: number): ms.data.Dataset {
  const gen = new ms.Generator(3);
  const images = new Float32Array(n * 16);
  for (let i = 0; i < images.length; i++) images[i] = gen.normal();
  return ms.data.makeDataset('toy', images, Int32Array.from({ length: n }, (_, i) => i % 3), [1, 4, 4], 3);
}

t.test('evaluate reports the inputs done after each batch', async (t) => {
  const model = ms.models.mlp({ inputs: 16, hidden: [8], classes: 3 });
  const seen: number[] = [];
  const rows = await ms.evaluate(model, new ms.data.DataLoader(toy(30), { batchSize: 7 }), { rates: [1, 0.5], onProgress: (n) => seen.push(n) });
  t.same(seen, [7, 14, 21, 28, 30], 'cumulative, once per batch, ending at the whole set');
  t.equal(rows.length, 2);
  // @ts-expect-error: not a function
  await t.rejects(ms.evaluate(model, [], { onProgress: 5 }), { name: 'TypeError', message: /^evaluate: onProgress must be a function/ });
});
