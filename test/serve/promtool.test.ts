// /metrics as a real Prometheus client reads it: `promtool check metrics`
// (Debian's prometheus package; .ci/run installs it) must find nothing to
// complain about after the server has answered successes and failures.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import * as ms from '../../src/index.js';
import { serve } from '../../src/serve/server.js';
import { call, postJson } from './http.js';

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const missing = promtool.error !== undefined || promtool.status !== 0;

t.test('promtool check metrics accepts /metrics', { skip: missing ? 'promtool is not installed (apt-get install prometheus)' : false }, async (t) => {
  ms.manualSeed(3);
  const model = ms.models.mlp({ inputs: 8, hidden: [16], classes: 3 });
  ms.setTrainedRates(model, [1, 0.5]);
  // A recorded accuracy table, so the accuracy gauges are checked too.
  ms.modelRecord(model).accuracy = [
    { rate: 1, accuracy: 0.91, examples: 100 },
    { rate: 0.5, accuracy: 0.87, examples: 100 },
  ];
  const path = join(t.testdir(), 'm.safetensors');
  await ms.save(model, path);
  const server = await serve(path, { workers: 1, port: 0, sloMs: 200, maxBatch: 4, profileRepeats: 1 });
  t.teardown(() => server.close());
  t.equal((await postJson(`${server.url}/predict`, { inputs: [new Array(8).fill(0.5)] })).status, 200);
  t.equal((await postJson(`${server.url}/predict`, { inputs: [[1, 2]] })).status, 400);
  t.equal((await call(`${server.url}/nowhere`)).status, 404);
  const metrics = await call(`${server.url}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.text, /^modelslice_model_accuracy\{rate="0\.5"\} 0\.87$/m, 'the accuracy table is exposed');
  t.match(metrics.text, /^process_resident_memory_bytes \d+$/m, "with prom-client's process metrics");
  const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics.text, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  t.equal(`${check.stdout}${check.stderr}`.trim(), '', 'no lint findings');
});
