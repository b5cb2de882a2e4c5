#!/usr/bin/env node
// Generation speed at batch 1 with the key/value cache: tokens per second of greedy decoding
// at each rate, and of speculative decoding (the rate-0.25 slice drafts, rate 1 verifies),
// whose tokens must be rate 1's. Each measurement is the best of --reps runs, the rates
// interleaved within each repetition (this machine's speed drifts).
//
//   npm run build:ts && node bench/generate.mjs [--checkpoint runs/train-charlm/charlm.safetensors]
//        [--tokens 256] [--reps 3] [--draft-tokens 6] [--draft-min-prob 0.3] [--prompt "ROMEO:"]
//        [--threads 1] [--json]
//
// Without a checkpoint the model is the untrained 4-layer d256 configuration (its speed is the
// trained one's, but its drafts are rarely kept: speculative decoding needs a trained model).
import { parseArgs } from 'node:util';
import * as ms from '../dist/index.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    tokens: { type: 'string', default: '256' },
    reps: { type: 'string', default: '3' },
    'draft-tokens': { type: 'string', default: '6' },
    'draft-min-prob': { type: 'string', default: '0.3' },
    prompt: { type: 'string', default: 'ROMEO:' },
    threads: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
ms.setNumThreads(Number(values.threads));
const model = values.checkpoint
  ? await ms.load(values.checkpoint)
  : (ms.manualSeed(1), ms.models.transformer({ vocab: 65, dModel: 256, heads: 8, layers: 4, context: 128 }));
const vocab = model.vocabulary ?? null;
const prompt = vocab ? [...ms.data.textDataset(values.prompt, { vocabulary: vocab }).ids] : [1, 2, 3];
const maxTokens = Number(values.tokens);
const draftTokens = Number(values['draft-tokens']);
const draftMinProbability = Number(values['draft-min-prob']);
const runs = {
  'rate 1': () => ms.generate(model, prompt, { maxTokens, temperature: 0, rate: 1 }),
  'rate 0.5': () => ms.generate(model, prompt, { maxTokens, temperature: 0, rate: 0.5 }),
  'rate 0.25': () => ms.generate(model, prompt, { maxTokens, temperature: 0, rate: 0.25 }),
  speculative: () => ms.speculativeGenerate(model, prompt, { maxTokens, temperature: 0, draftRate: 0.25, draftTokens, draftMinProbability }),
};
const best = {};
const outputs = {};
runs['rate 1'](); // warm-up
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const [name, run] of Object.entries(runs)) {
    const t0 = performance.now();
    const r = run();
    const s = (performance.now() - t0) / 1000;
    if (best[name] === undefined || s < best[name].seconds) best[name] = { seconds: s, tokensPerSecond: r.tokens.length / s, ...r.stats };
    outputs[name] = r.tokens;
  }
}
const same = outputs.speculative.join() === outputs['rate 1'].join();
const rows = Object.entries(best).map(([name, b]) => ({ name, ...b, vsRate1: b.tokensPerSecond / best['rate 1'].tokensPerSecond }));
if (values.json) {
  console.log(JSON.stringify({ checkpoint: values.checkpoint ?? null, maxTokens, threads: Number(values.threads), draftTokens, draftMinProbability, speculativeSameTokens: same, rows }));
} else {
  console.log(`${values.checkpoint ?? 'untrained 4-layer d256 model'}: ${maxTokens} tokens at batch 1, ${values.threads} thread(s), best of ${values.reps}`);
  console.log('decoding        tokens/s   vs rate 1   full passes   drafts kept');
  for (const r of rows) {
    const kept = r.name === 'speculative' ? `${r.accepted}/${r.drafted}` : '-';
    console.log(`${r.name.padEnd(14)} ${r.tokensPerSecond.toFixed(1).padStart(9)}   ${r.vsRate1.toFixed(2).padStart(9)}   ${String(r.passes).padStart(11)}   ${kept.padStart(11)}`);
  }
  console.log(`speculative tokens ${same ? 'are' : 'are NOT'} rate 1's`);
}
