#!/usr/bin/env node
// Trains one sliceable character-level language model on Shakespeare (bench/data/
// tinyshakespeare.txt: the first 90% to learn from, the last 10% to validate on), prints the
// validation loss (nats per character) and cost at each slice rate, and continues a prompt at
// each rate and with speculative decoding (the rate-0.25 slice drafts, rate 1 verifies).
//
//   node examples/train-charlm.mjs [--steps 300] [--layers 4] [--d-model 256] [--heads 8]
//                                  [--context 128] [--batch 32] [--out DIR] [--json]
//
// Every attention head is a slice group and the feed-forward hidden layer has 8; at rate r a
// pass uses the first heads and units (the residual stream, the embeddings and the output head
// stay full), so the cost falls about linearly in r. Each step sums the gradients of rates 1,
// 0.5 and 0.25 (the sandwich rule), each learning from the text itself: in-place distillation
// from rate 1 slowed this model's start badly (bench/RESULTS.md, "A sliceable transformer").
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ms from 'modelslice';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    layers: { type: 'string', default: '4' },
    'd-model': { type: 'string', default: '256' },
    heads: { type: 'string', default: '8' },
    context: { type: 'string', default: '128' },
    batch: { type: 'string', default: '32' },
    lr: { type: 'string', default: '1e-3' },
    seed: { type: 'string', default: '1' },
    'data-file': { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'data', 'tinyshakespeare.txt') },
    out: { type: 'string', default: 'runs/train-charlm' },
    json: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const context = Number(values.context);
const seed = Number(values.seed);
const rates = [1, 0.5, 0.25];
const log = values.json ? () => {} : console.log;

ms.manualSeed(seed);
const text = readFileSync(values['data-file'], 'utf8');
const { train, valid } = ms.data.splitText(ms.data.textDataset(text, { name: 'tinyshakespeare' }));
// Steps are counted in batches: one "epoch" of fit is the whole run.
const loader = new ms.data.TextLoader(train, { context, batchSize: Number(values.batch), shuffle: true, batchesPerEpoch: steps, seed });
// A fixed slice of the validation text keeps the evaluation short.
const validSet = { ...valid, ids: valid.ids.subarray(0, 64 * context * 4 + 1) };
const validLoader = new ms.data.TextLoader(validSet, { context, batchSize: 64 });

const model = ms.models.transformer({
  vocab: train.vocabulary.length,
  vocabulary: train.vocabulary,
  dModel: Number(values['d-model']),
  heads: Number(values.heads),
  layers: Number(values.layers),
  context,
});
const optimizer = new ms.optim.AdamW(model.parameters(), { lr: Number(values.lr), weightDecay: 0.1 });
const lrSchedule = new ms.optim.WarmupLR(optimizer, { warmupEpochs: 0.05, after: new ms.optim.CosineLR(optimizer, { totalEpochs: 1 }) });

const { dModel, heads, layers, ffn } = model.config;
log(`sliced transformer (${layers} layers, d_model ${dModel}, ${heads} heads, feed-forward ${ffn}, context ${context}) on ${train.ids.length} characters, ${steps} steps of ${loader.batchSize} x ${context}, rates ${rates.join(', ')}`);
const started = performance.now();
await ms.fit(model, loader, {
  epochs: 1,
  optimizer,
  lrSchedule,
  rates,
  schedule: 'random_min_max',
  clipGradNorm: 1,
  seed,
  callbacks: {
    onBatchEnd: (b) => {
      if ((b.batch + 1) % 50 === 0 || b.batch + 1 === steps) log(`step ${b.batch + 1}/${steps}  loss ${b.loss.toFixed(3)} nats/char  ${b.seconds.toFixed(0)} s`);
    },
  },
});
const trainSeconds = (performance.now() - started) / 1000;
const rows = await ms.evaluate(model, validLoader, { rates });
mkdirSync(values.out, { recursive: true });
const path = join(values.out, 'charlm.safetensors');
await ms.save(model, path);

// Continue a prompt greedily at each rate, and with speculative decoding.
const prompt = [...ms.data.textDataset('ROMEO:\n', { vocabulary: train.vocabulary }).ids];
const samples = rates.map((rate) => {
  const t0 = performance.now();
  const { tokens } = ms.generate(model, prompt, { maxTokens: 120, temperature: 0, rate });
  return { rate, text: ms.data.decodeText(tokens, train.vocabulary), tokensPerSecond: tokens.length / ((performance.now() - t0) / 1000) };
});
const t0 = performance.now();
const spec = ms.speculativeGenerate(model, prompt, { maxTokens: 120, temperature: 0, draftRate: 0.25, draftTokens: 4 });
const specRate = spec.tokens.length / ((performance.now() - t0) / 1000);
const specText = ms.data.decodeText(spec.tokens, train.vocabulary);

if (values.json) {
  console.log(JSON.stringify({ rates: rows, trainSeconds, samples, speculative: { text: specText, tokensPerSecond: specRate, ...spec.stats } }));
} else {
  log(`\nvalidation (${validLoader.tokens} characters; loss in nats per character), ${trainSeconds.toFixed(0)} s of training`);
  log(ms.formatRateTable(rows));
  for (const s of samples) log(`\nrate ${s.rate} (${s.tokensPerSecond.toFixed(0)} tokens/s, greedy):\nROMEO:\n${s.text}`);
  log(`\nspeculative (draft 0.25, verified at rate 1: ${specText === samples[0].text ? 'the same text as rate 1' : 'NOT the same text as rate 1'}): ${specRate.toFixed(0)} tokens/s, ${(spec.tokens.length / spec.stats.passes).toFixed(2)} tokens per full pass`);
  log(`\nsaved ${path}; try: npx modelslice generate --checkpoint ${path} --prompt "ROMEO:" --temperature 0.8 --speculative`);
}
