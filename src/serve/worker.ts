// The Predictor's worker thread: loads the model from a file, measures its
// latency profile, then answers one forward pass at a time. Each pass sets the
// slice rate and runs to completion before the next message is read, so a pass
// never mixes widths.
import { parentPort, workerData } from 'node:worker_threads';
import { loadFile } from '../io/model-file.js';
import { modelRecord } from '../metadata.js';
import { modelInputShape } from '../nn/input-shape.js';
import type { Module } from '../nn/module.js';
import { cachedPlanKeys, infer } from '../slicing/infer.js';
import { profileLatency, trainedRatesOf } from '../slicing/select.js';
import { shapeSize, Tensor } from '../tensor.js';
import { setNumThreads } from '../threads.js';
import { generate } from '../generate/generate.js';
import { Transformer } from '../models/transformer.js';
import { argmaxRows, serializeError, type GenerateRequest, type PredictRequest, type ResultMessage, type WorkerInit, type WorkerMessage } from './protocol.js';

async function start(port: NonNullable<typeof parentPort>, init: WorkerInit): Promise<void> {
  const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let model: Module;
  let inputShape: number[];
  let classes: number;
  try {
    if (init.threads !== undefined) setNumThreads(init.threads);
    model = (await loadFile(init.path)).model;
    model.eval();
    inputShape = modelInputShape('Predictor', model, init.inputShape);
    if (init.profileBatchSizes.length > 0) {
      profileLatency(model, { inputShape, batchSizes: init.profileBatchSizes, repeats: init.profileRepeats });
    } else if (init.latencyProfile !== undefined) {
      modelRecord(model).latencyProfile = init.latencyProfile;
    }
    // A plan is built by an eager pass the first time a (rate, slice) shape runs: done here, not
    // on the first requests of a load spike (several times the replay's cost each).
    if (init.warmBatchSizes !== undefined && !(model instanceof Transformer)) {
      for (const b of init.warmBatchSizes) {
        const x = new Tensor(new Float32Array(b * shapeSize(inputShape)), [b, ...inputShape]);
        for (const r of trainedRatesOf(model)) infer(model, x, { rate: r });
      }
    }
    const { config } = modelRecord(model);
    classes = config === undefined ? 0 : config.kind === 'transformer' ? config.vocab : config.classes;
  } catch (err) {
    post({ type: 'init-failed', error: serializeError(err) });
    return;
  }
  const { preprocess, latencyProfile, accuracy, vocabulary } = modelRecord(model);
  const lm = model instanceof Transformer ? { vocabulary, context: model.config.context } : {};
  post({ type: 'ready', trainedRates: trainedRatesOf(model), inputShape, classes, preprocess, latencyProfile, accuracy, ...lm, plans: cachedPlanKeys(model) });

  port.on('message', (req: PredictRequest | GenerateRequest) => {
    const t0 = performance.now();
    if (req.type === 'generate') {
      try {
        if (!(model instanceof Transformer)) throw new TypeError('generate: the model is not a language model (models.transformer)');
        const { prompt, maxTokens, temperature, topK, seed, stop, rate } = req;
        const onToken = (token: number) => post({ type: 'token', id: req.id, token });
        const { tokens, stats } = generate(model, prompt, { maxTokens, temperature, topK, seed, stop, rate, onToken });
        post({ type: 'generated', id: req.id, tokens, rate, passes: stats.passes, ms: performance.now() - t0 });
      } catch (err) {
        post({ type: 'failed', id: req.id, error: serializeError(err) });
      }
      return;
    }
    let reply: ResultMessage;
    try {
      const data = req.data;
      if (preprocess !== undefined) {
        const { mean, std } = preprocess;
        for (let i = 0; i < data.length; i++) data[i] = (data[i] - mean) / std;
      }
      // infer replays a captured plan per rate and batch shape, in cache-sized slices.
      const out = infer(model, new Tensor(data, req.shape), { rate: req.rate });
      const rows = out.shape[0];
      const cols = out.size / Math.max(1, rows);
      const logits = new Float32Array(out.data); // a copy we may transfer
      reply = { type: 'result', id: req.id, logits, classes: argmaxRows(logits, rows, cols), shape: [...out.shape], rate: req.rate, ms: performance.now() - t0 };
      post(reply, [logits.buffer as ArrayBuffer, reply.classes.buffer as ArrayBuffer]);
    } catch (err) {
      post({ type: 'failed', id: req.id, error: serializeError(err) });
    }
  });
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'path' in workerData) {
  void start(parentPort, workerData as WorkerInit);
}
