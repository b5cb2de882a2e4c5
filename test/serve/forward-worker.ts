// A worker thread for test/serve/concurrency.test.ts (not a test file): loads
// saved models (which loads the addon in this thread), waits for the go signal
// so every worker computes at the same time, then runs forward passes at the
// given rates and posts the logits back.
import { parentPort, workerData } from 'node:worker_threads';
import * as ms from '../../src/index.js';

export interface ForwardJob {
  path: string;
  /** Input [N, ...] as a flat Float32Array and its shape. */
  input: Float32Array;
  shape: number[];
  rates: number[];
  repeats: number;
}

export interface WorkerInput {
  jobs: ForwardJob[];
  /** Shared flag: workers wait until it turns 1, so their passes overlap. */
  go: Int32Array;
}

export interface ForwardResult {
  /** logits[job][repeat][rateIndex] */
  logits: Float32Array[][][];
}

async function main({ jobs, go }: WorkerInput): Promise<void> {
  const models: ms.nn.Module[] = [];
  for (const job of jobs) {
    const model = await ms.load(job.path);
    model.eval();
    models.push(model);
  }
  parentPort!.postMessage({ ready: true });
  Atomics.wait(go, 0, 0);
  const logits = jobs.map((job, k) =>
    Array.from({ length: job.repeats }, () =>
      job.rates.map((rate) => {
        models[k].setSliceRate(rate);
        return ms.noGrad(() => models[k].forward(new ms.Tensor(job.input.slice(), job.shape))).data.slice();
      }),
    ),
  );
  parentPort!.postMessage({ logits } satisfies ForwardResult);
}

if (parentPort !== null && workerData !== null) void main(workerData as WorkerInput);
