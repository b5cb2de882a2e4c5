// The CLI and the example for language models: train a tiny transformer on a text file,
// evaluate it, continue a prompt (plain and speculative, the same greedy text), and refuse
// flags that do not fit, by name.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { runCli } from './helpers/cli.js';

const run = promisify(execFile);
const SMALL = ['--d-model', '16', '--heads', '2', '--layers', '1', '--context', '16', '--batch-size', '8', '--batches-per-epoch', '20'];

t.test('train, eval and generate a character language model from the CLI', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ms-cli-text-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'tiny.txt');
  await writeFile(file, 'to be or not to be, that is the question.\n'.repeat(40));
  const out = join(dir, 'lm.safetensors');
  const trained = await runCli(['train', '--model', 'transformer', '--dataset', 'text', '--data-file', file, ...SMALL, '--epochs', '2', '--rates', '1,0.5', '--out', out, '--json']);
  t.equal(trained.code, 0, trained.stderr);
  const result = JSON.parse(trained.lines.at(-1)!) as { rates: { rate: number; loss: number; accuracy: number }[] };
  t.same(result.rates.map((r) => r.rate), [1, 0.5]);
  for (const r of result.rates) t.ok(r.loss < Math.log(16), `rate ${r.rate}: validation loss ${r.loss.toFixed(3)} nats/char, below a uniform guess`);

  const evaluated = await runCli(['eval', '--checkpoint', out, '--data-file', file, '--json']);
  t.equal(evaluated.code, 0, evaluated.stderr);
  const rows = (JSON.parse(evaluated.lines.at(-1)!) as { rates: { loss: number }[] }).rates;
  t.ok(Math.abs(rows[0].loss - result.rates[0].loss) < 1e-6, 'eval gives the training run\'s validation loss');

  const plain = await runCli(['generate', '--checkpoint', out, '--prompt', 'to be', '--max-tokens', '30', '--temperature', '0', '--json']);
  t.equal(plain.code, 0, plain.stderr);
  const spec = await runCli(['generate', '--checkpoint', out, '--prompt', 'to be', '--max-tokens', '30', '--temperature', '0', '--speculative', '--draft-rate', '0.5', '--json']);
  t.equal(spec.code, 0, spec.stderr);
  const a = JSON.parse(plain.lines.at(-1)!) as { text: string; passes: number };
  const b = JSON.parse(spec.lines.at(-1)!) as { text: string; passes: number; accepted: number; drafted: number };
  t.equal(a.text.length, 30);
  t.equal(b.text, a.text, 'speculative decoding gives the greedy text of rate 1');
  t.ok(b.passes <= a.passes, `${b.passes} full passes instead of ${a.passes}; ${b.accepted} of ${b.drafted} drafts kept`);

  const streamed = await runCli(['generate', '--checkpoint', out, '--prompt', 'to be', '--max-tokens', '30', '--temperature', '0', '--stop', ' ']);
  t.equal(streamed.code, 0, streamed.stderr);
  t.ok(streamed.stdout.startsWith('to be'), 'the prompt, then the tokens as they come');
  const made = streamed.stdout.slice('to be'.length).replace(/\n$/, '');
  t.ok(made.length <= 30 && (made.length === 30 || (made.endsWith(' ') && made.indexOf(' ') === made.length - 1)), `stops at the first space it makes: ${JSON.stringify(made)}`);
  t.match(streamed.stderr, /tokens in .* s \(.* tokens\/s\) at rate 1/);

  const outside = await runCli(['generate', '--checkpoint', out, '--prompt', 'to BE']);
  t.equal(outside.code, 1);
  t.match(outside.stderr, /--prompt: character "B" at position 3 is not in the vocabulary of \d+ tokens/);
  const image = await runCli(['generate', '--checkpoint', out, '--prompt', 'to', '--speculative', '--rate', '0.5']);
  t.equal(image.code, 2);
  t.match(image.stderr, /--speculative generates at rate 1/);
  const unsure = await runCli(['generate', '--checkpoint', out, '--prompt', 'to', '--speculative', '--draft-min-prob', '1.5']);
  t.equal(unsure.code, 2);
  t.match(unsure.stderr, /--draft-min-prob must be a probability in \[0, 1\], got 1.5/);
  const always = await runCli(['generate', '--checkpoint', out, '--prompt', 'to be', '--max-tokens', '30', '--temperature', '0', '--speculative', '--draft-rate', '0.5', '--draft-min-prob', '0', '--draft-tokens', '3', '--json']);
  t.equal(always.code, 0, always.stderr);
  t.equal((JSON.parse(always.lines.at(-1)!) as { text: string }).text, a.text, '--draft-min-prob 0 --draft-tokens 3: the same text');
});

t.test('flags that do not fit a language model are refused before any work', async (t) => {
  const cases: [string[], RegExp][] = [
    [['train', '--model', 'transformer', '--dataset', 'mnist'], /--model transformer does not fit --dataset mnist/],
    [['train', '--model', 'resnet', '--dataset', 'text'], /--model resnet does not fit --dataset text/],
    [['train', '--dataset', 'text'], /--dataset text needs --data-file FILE/],
    [['train', '--model', 'transformer', '--data-file', 'x.txt', '--heads', '0'], /--heads must be at least 1, got 0/],
    [['generate', '--prompt', 'x'], /generate needs --checkpoint FILE/],
    [['generate', '--checkpoint', 'x'], /generate needs --prompt TEXT/],
  ];
  for (const [argv, message] of cases) {
    const r = await runCli(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, message);
  }
  const missing = await runCli(['train', '--model', 'transformer', '--data-file', '/nonexistent/shakespeare.txt']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read --data-file \/nonexistent\/shakespeare.txt \(ENOENT\)/);
});

t.test('examples/train-charlm.mjs trains, reports each rate and decodes speculatively', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ms-charlm-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, ['examples/train-charlm.mjs', '--steps', '8', '--layers', '1', '--d-model', '16', '--heads', '4', '--context', '16', '--batch', '8', '--out', dir, '--json'], {
    maxBuffer: 1 << 24,
  });
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { rates: { rate: number }[]; samples: { rate: number; text: string }[]; speculative: { text: string; passes: number } };
  t.same(r.rates.map((x) => x.rate), [1, 0.5, 0.25]);
  t.same(r.samples.map((s) => s.text.length), [120, 120, 120]);
  t.equal(r.speculative.text, r.samples[0].text, 'the speculative text is rate 1\'s greedy text');
});
