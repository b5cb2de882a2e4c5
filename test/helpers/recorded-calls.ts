// Kernel calls as the ops really make them: the forward and backward passes of
// small models of every kind and of the ops they leave out, recorded by a
// capture (the kernels run too). Tests read them to hold the declarations of
// src/kernels.ts against real use.
import { captureCalls, type CapturedStep } from '../../src/capture.js';
import * as ms from '../../src/index.js';
import { native } from '../../src/native.js';

export function recordPass(run: () => void): CapturedStep[] {
  return captureCalls(run).capture.steps;
}

export function recordedCalls(): CapturedStep[] {
  ms.manualSeed(5);
  const calls: CapturedStep[] = [];
  const models: [ms.nn.Module, number[]][] = [
    [ms.models.resnet({ depth: 8, classes: 5, inputShape: [3, 12, 12] }), [2, 3, 12, 12]],
    [ms.models.resnet({ depth: 11, classes: 5, block: 'bottleneck', norm: 'batch', inputShape: [3, 8, 8] }), [2, 3, 8, 8]],
    [ms.models.mlp({ inputs: 12, hidden: [16, 8], classes: 3 }), [4, 12]],
  ];
  for (const [model, shape] of models) {
    model.train();
    model.setSliceRate(0.5);
    const x = ms.randn(shape, { seed: 1 });
    calls.push(...recordPass(() => ms.crossEntropy(model.forward(x), new Int32Array(shape[0])).backward()));
  }
  // Ops the models do not use: pools, softmax, broadcasting mul and add, matmul, a convolution's
  // bias, the distillation loss.
  const a = ms.randn([2, 3, 6, 6], { seed: 2, requiresGrad: true });
  const s = ms.randn([1, 3, 1, 1], { seed: 3, requiresGrad: true });
  const w = ms.randn([3, 3, 3, 3], { seed: 4, requiresGrad: true });
  const bias = ms.randn([3], { seed: 5, requiresGrad: true });
  calls.push(
    ...recordPass(() => {
      const p = ms.add(ms.maxPool2d(ms.mul(a, s), 2), ms.avgPool2d(ms.conv2d(a, w, bias, { padding: 1 }), 2));
      const logits = ms.matmul(ms.reshape(ms.globalAvgPool2d(p), [2, 3]), ms.randn([3, 4], { seed: 4 }));
      ms.add(ms.sum(ms.softmax(logits)), ms.klDiv(ms.logSoftmax(logits), ms.softmax(ms.randn([2, 4], { seed: 6 })))).backward();
    }),
  );
  // The transformer's layers: token embeddings and layer norm.
  const table = ms.randn([7, 4], { seed: 9, requiresGrad: true });
  calls.push(
    ...recordPass(() => {
      // Ids as labels are given, and as a model's input (a tensor of token ids).
      const ids = ms.add(ms.embedding(Int32Array.from([6, 0, 3, 3]), table, [2, 2]), ms.embedding(ms.tensor([1, 2, 3, 4], [2, 2]), table));
      const x = ms.layerNorm(ids, null, null);
      ms.sum(ms.add(ms.attention(x, x, x, { heads: 2 }), ms.attention(x, x, x, { heads: 1, causal: false }))).backward();
    }),
  );
  // What only plans call: a group norm's statistics and map, and a convolution applying it
  // (the calls foldNormsIntoConvs makes of a group norm and its reader), and a convolution
  // computing the statistics of its output (statsIntoConvs).
  calls.push(
    ...recordPass(() => {
      const [n, c, hw] = [2, 4, 36];
      const x = ms.randn([n, c, 6, 6], { seed: 7 }).data;
      const [center, scale, shift] = [0, 1, 2].map(() => new Float32Array(n * c));
      native.groupNormStats(n, c, hw, 2, x, null, null, 1e-5, new Float32Array(n * 2), new Float32Array(n * 2), center, scale, shift);
      const w = ms.randn([3, c, 3, 3], { seed: 8 }).data;
      native.conv2dForward([n, c, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, c], x, w, null, new Float32Array(n * 3 * hw), false, center, scale, shift, true);
      const y = new Float32Array(n * 3 * hw);
      const [m3, r3, c3, s3, h3] = [n, n, n * 3, n * 3, n * 3].map((k) => new Float32Array(k));
      native.conv2dForwardNormStats([n, c, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, c], x, w, null, y, false, center, scale, shift, true, 1, null, null, 1e-5, m3, r3, c3, s3, h3);
    }),
  );
  // A decode step of a transformer with a key/value cache (its keys and values copied in).
  calls.push(
    ...recordPass(() => {
      ms.manualSeed(3);
      const m = ms.models.transformer({ vocab: 5, dModel: 8, heads: 2, layers: 1, ffn: 8, context: 4 }).eval();
      ms.decode(m, new ms.KVCache(m, { rate: 0.5, sequences: 2 }), Int32Array.from([1, 2, 3, 4]), 2, { plan: false });
    }),
  );
  return calls;
}
