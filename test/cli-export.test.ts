// modelslice export: a saved model to ONNX at a rate.
import { readFileSync } from 'node:fs';
import t from 'tap';
import * as ms from '../src/index.js';
import { main } from '../src/cli.js';

async function quiet<T>(fn: () => Promise<T>): Promise<{ result: T; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const write = process.stderr.write.bind(process.stderr);
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  process.stderr.write = ((chunk: string) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { result: await fn(), out: out.join('\n'), err: err.join('') };
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

t.test('export writes an ONNX file of the compact model', async (t) => {
  const dir = t.testdir({});
  const model = ms.models.mlp({ inputs: 12, hidden: [16], classes: 3 });
  await ms.save(model, `${dir}/m.safetensors`);
  const run = await quiet(() => main(['export', '--checkpoint', `${dir}/m.safetensors`, '--rate', '0.5', '--out', `${dir}/m.onnx`, '--json']));
  t.equal(run.result, 0, run.err);
  const summary = JSON.parse(run.out.trim().split('\n').pop()!);
  t.equal(summary.rate, 0.5);
  t.equal(summary.bytes, readFileSync(`${dir}/m.onnx`).length);
  t.same(readFileSync(`${dir}/m.onnx`), Buffer.from(ms.onnxBytes(model, { rate: 0.5, inputShape: [1, 12] })), 'the same bytes as the library call');
});

t.test('export refuses missing or bad flags', async (t) => {
  t.equal((await quiet(() => main(['export', '--out', 'x.onnx']))).result, 2);
  t.equal((await quiet(() => main(['export', '--checkpoint', 'x.safetensors']))).result, 2);
  t.equal((await quiet(() => main(['export', '--checkpoint', 'x', '--out', 'y', '--rate', '1.5']))).result, 2);
  t.equal((await quiet(() => main(['export', '--checkpoint', 'x', '--out', 'y', '--input-shape', '3']))).result, 2);
  const missing = await quiet(() => main(['export', '--checkpoint', '/nonexistent.safetensors', '--out', '/tmp/never.onnx']));
  t.equal(missing.result, 1);
  t.match(missing.err, /cannot read/);
});
