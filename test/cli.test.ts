import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli, type CliRun } from './helpers/cli.js';
import * as ms from '../src/index.js';

type Run = CliRun;
const run = runCli;

interface Row {
  rate: number;
  accuracy: number;
  loss: number;
  macs: number;
  params: number;
}

function lastJson(r: Run): { rates: Row[]; trainSeconds?: number; epochs?: { epoch: number; loss: number; accuracy: number }[] } {
  const last = r.lines[r.lines.length - 1];
  return JSON.parse(last) as ReturnType<typeof lastJson>;
}

const SMALL = ['--limit', '1500', '--hidden', '32'];

t.test('train without --json prints a readable table', async (t) => {
  const r = await run(['train', '--epochs', '1', '--limit', '300', '--hidden', '16', '--rates', '1,0.5']);
  t.equal(r.code, 0, r.stderr);
  const text = r.lines.join('\n');
  t.match(text, /^training mlp on 300 mnist images, rates 1, 0.5 \(random_min_max\), 1 epoch$/m, 'one epoch, singular; the dataset by its name');
  t.notMatch(text, /1 epochs|digits images/);
  t.match(text, /epoch 1\/1 {2}loss [\d.]+ {2}train accuracy [\d.]+%/);
  t.match(text, /rate +accuracy +loss +MACs\/input +params +cost vs r=1/);
  t.match(text, /\n1\.000 +[\d.]+ % /);
  t.match(text, /\n0\.500 +[\d.]+ % .* 0\.5\d\d\n?/);
  t.throws(() => JSON.parse(r.lines[r.lines.length - 1]), 'no JSON without --json');
  // Loading and evaluating take a while on real data: they say so on stderr.
  t.match(r.stderr, /^loading mnist: train and test sets$/m, 'a line before the data loads');
  t.match(r.stderr, /^loaded 300 training and \d+ test images in [\d.]+ s$/m, 'and one when it has');
  t.match(r.stderr, /^evaluating \d+ test images at rates 1, 0\.5$/m, 'a line before the evaluation');
  t.match(r.stderr, /^evaluated \d+\/\d+ images/m, 'progress through the test set');
});

t.test('eval reports its progress on stderr, and nothing there with --json', async (t) => {
  const dir = t.testdir({});
  const out = join(dir, 'm.safetensors');
  const trained = await run(['train', '--epochs', '0', '--limit', '100', '--hidden', '8', '--rates', '1,0.5', '--out', out, '--json']);
  t.equal(trained.code, 0, trained.stderr);
  t.equal(trained.stderr, '', 'train --json writes nothing to stderr');
  const e = await run(['eval', '--checkpoint', out]);
  t.equal(e.code, 0, e.stderr);
  t.match(e.stderr, /^loading mnist: test set$/m);
  t.match(e.stderr, /^evaluating \d+ test images at rates 1, 0\.5$/m);
  t.match(e.stderr, /^evaluated (\d+)\/\1 images/m, 'the last progress line covers the whole set');
  const quiet = await run(['eval', '--checkpoint', out, '--json']);
  t.equal(quiet.code, 0);
  t.equal(quiet.stderr, '', 'eval --json writes nothing to stderr');
});

t.test('negative numbers are values, checked like any other', async (t) => {
  const cases: [string[], RegExp][] = [
    [['export', '--checkpoint', 'm.safetensors', '--out', 'm.onnx', '--rate', '-0.5'], /--rate must be a slice rate in \(0, 1\], got -0\.5/],
    [['serve', '--checkpoint', 'm.safetensors', '--port', '0', '--slo-ms', '50', '--rate', '-0.5'], /--rate must be a slice rate in \(0, 1\], got -0\.5/],
    [['serve', '--checkpoint', 'm.safetensors', '--port', '0', '--slo-ms', '-5'], /--slo-ms must be greater than 0, got -5/],
    [['train', '--epochs', '-1'], /--epochs must be at least 0, got -1/],
    [['train', '--rates', '-1,0.5'], /--rates must be slice rates in \(0, 1\], got -1,0\.5/],
    [['train', '--lr', '-.5'], /--lr must be at least 0, got -\.5/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, `${argv.join(' ')}: exit 2`);
    t.match(r.stderr, message, `${argv.join(' ')}: names the flag and its range`);
    t.notMatch(r.stderr, /ambiguous/, `${argv.join(' ')}: not parseArgs' complaint`);
  }
  const flagAfter = await run(['train', '--out', '--json']);
  t.equal(flagAfter.code, 2, 'a flag where a value should be is still refused');
  t.match(flagAfter.stderr, /--out/);
});

t.test('serve --help marks the flags serve cannot start without', async (t) => {
  const r = await run(['serve', '--help']);
  t.equal(r.code, 0);
  for (const flag of ['--checkpoint FILE', '--port N', '--slo-ms X']) {
    const line = r.stdout.split('serve flags')[1].split('\n').find((l) => l.trimStart().startsWith(flag));
    t.match(line, /\(required\)/, `${flag} is marked required`);
  }
  const host = r.stdout.split('serve flags')[1].split('\n').find((l) => l.trimStart().startsWith('--host'));
  t.notMatch(host, /required/, 'optional flags are not');
});

t.test('a bad --depth is refused before any data is read', async (t) => {
  const nowhere = ['--dataset', 'fashion-mnist', '--data-dir', '/nonexistent/modelslice-data'];
  for (const [model, depth] of [['resnet', '21'], ['resnet', '120'], ['vgg', '12']]) {
    const r = await run(['train', '--model', model, '--depth', depth, ...nowhere]);
    t.equal(r.code, 2, `${model} --depth ${depth}: a usage error, not a missing dataset`);
    t.match(r.stderr, new RegExp(`--depth .*got ${depth}`), `${model} --depth ${depth}: says why`);
  }
  for (const [model, depth] of [['resnet', '20'], ['resnet', '164'], ['vgg', '16']]) {
    const r = await run(['train', '--model', model, '--depth', depth, ...nowhere]);
    t.equal(r.code, 1, `${model} --depth ${depth} is accepted (then the data is missing)`);
    t.match(r.stderr, /cannot read|neither/);
  }
});

t.test('train --json --out: the last line is one JSON object; model, checkpoint and SVG written; eval reproduces; --resume continues', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'modelslice-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'model.safetensors');
  const r = await run(['train', '--epochs', '1', ...SMALL, '--out', out, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.lines.length, 1, 'with --json nothing else goes through console.log');
  const trained = lastJson(r);
  t.same(trained.rates.map((x) => x.rate), [1, 0.75, 0.5, 0.25], 'four rates');
  t.ok(typeof trained.trainSeconds === 'number' && trained.trainSeconds >= 0, 'trainSeconds');
  for (const row of trained.rates) {
    t.same(Object.keys(row).sort(), ['accuracy', 'loss', 'macs', 'params', 'rate']);
    t.ok(row.accuracy > 0.3 && row.accuracy <= 1, `rate ${row.rate}: accuracy ${row.accuracy}`);
    t.ok(Number.isFinite(row.loss) && row.loss > 0);
  }
  const table = ms.costs(ms.models.mlp({ inputs: 784, hidden: [32], classes: 10 }), [1, 28, 28], [1, 0.75, 0.5, 0.25]);
  t.same(trained.rates.map((x) => [x.macs, x.params]), table.map((x) => [x.macs, x.params]), 'macs and params are the cost table');
  t.same(trained.epochs?.map((e) => e.epoch), [1]);
  t.same((await readdir(dir)).sort(), ['model.safetensors', 'model.safetensors.ckpt', 'model.safetensors.svg']);

  const svg = await readFile(`${out}.svg`, 'utf8');
  t.ok(svg.startsWith('<svg'), 'starts with <svg');
  t.ok(svg.trimEnd().endsWith('</svg>'), 'ends with </svg>');
  t.equal((svg.match(/<polyline /g) ?? []).length, 2, 'two polylines: accuracy and cost');
  t.notMatch(svg, /NaN|undefined|Infinity/, 'no broken numbers');
  const opened = (svg.match(/<(?!\/)[a-z]+[^>]*[^/]>/g) ?? []).length;
  const closed = (svg.match(/<\/[a-z]+>/g) ?? []).length;
  t.equal(opened, closed, 'every opened element is closed');
  const points = /<polyline points="([^"]+)"[^>]*stroke="#1f5fbf"/.exec(svg)![1].split(' ');
  t.equal(points.length, 4, 'one accuracy point per rate');

  const model = await ms.load(out);
  t.same(model.trainedRates, [1, 0.75, 0.5, 0.25], 'the saved model knows its rates');
  t.ok(model.preprocess !== undefined, 'and its input standardisation');

  const e = await run(['eval', '--checkpoint', out, '--json']);
  t.equal(e.code, 0, e.stderr);
  const evaluated = lastJson(e);
  t.same(evaluated.rates.map((x) => [x.rate, x.accuracy, x.macs, x.params]), trained.rates.map((x) => [x.rate, x.accuracy, x.macs, x.params]), 'eval reproduces the accuracies');
  evaluated.rates.forEach((x, i) => t.ok(Math.abs(x.loss - trained.rates[i].loss) < 1e-6, `rate ${x.rate}: same loss`));
  const e2 = await run(['eval', '--checkpoint', out, '--rates', '0.5', '--json']);
  t.same(lastJson(e2).rates.map((x) => x.rate), [0.5], '--rates picks rates');
  const e3 = await run(['eval', '--checkpoint', out]);
  t.equal(e3.code, 0);
  t.match(e3.lines.join('\n'), /model\.safetensors on .* \(\d+ images\):/);

  // --resume: epoch 2 from the checkpoint equals two epochs straight.
  const out2 = join(dir, 'resumed.safetensors');
  const resumed = await run(['train', '--epochs', '2', ...SMALL, '--resume', `${out}.ckpt`, '--out', out2, '--json']);
  t.equal(resumed.code, 0, resumed.stderr);
  const rj = lastJson(resumed);
  t.same(rj.epochs!.map((x) => x.epoch), [1, 2], 'the history continues');
  t.equal(rj.epochs![0].loss, trained.epochs![0].loss, 'epoch 1 comes from the checkpoint');
  const straight = await run(['train', '--epochs', '2', ...SMALL, '--json']);
  const sj = lastJson(straight);
  t.equal(rj.epochs![1].loss, sj.epochs![1].loss, 'epoch 2 is the same as in a straight run');
  t.same(rj.rates.map((x) => x.accuracy), sj.rates.map((x) => x.accuracy), 'same final accuracies');
});

t.test('usage errors exit 2 with a message; failures exit 1', async (t) => {
  const usage: [string, string[], RegExp][] = [
    ['an unknown flag', ['train', '--bogus'], /bogus/],
    ['--epochs abc', ['train', '--epochs', 'abc'], /--epochs must be an integer, got abc/],
    ['--epochs -1', ['train', '--epochs', '-1'], /--epochs/],
    ['--epochs 1.5', ['train', '--epochs', '1.5'], /--epochs must be an integer/],
    ['--limit 0', ['train', '--limit', '0'], /--limit must be at least 1, got 0/],
    ['--batch-size 0', ['train', '--batch-size', '0', '--limit', '100'], /--batch-size must be at least 1/],
    ['--epochs=-1', ['train', '--epochs=-1'], /--epochs must be at least 0, got -1/],
    ['--lr x', ['train', '--lr', 'x'], /--lr must be a number/],
    ['--rates 1,0', ['train', '--rates', '1,0', '--limit', '100'], /--rates must be slice rates in \(0, 1\], got 1,0/],
    ['--hidden 0', ['train', '--hidden', '32,0'], /--hidden must be positive integers/],
    ['--clip 0', ['train', '--clip', '0'], /--clip must be greater than 0/],
    ['--threads 0', ['train', '--threads', '0'], /--threads must be at least 1/],
    ['--lr -1', ['train', '--lr=-1'], /--lr must be at least 0/],
    ['--rates 1,abc', ['train', '--rates', '1,abc'], /--rates must be a comma-separated list/],
    ['--model foo', ['train', '--model', 'foo', '--limit', '100'], /--model must be one of mlp, resnet, vgg, transformer, got foo/],
    ['--optimizer foo', ['train', '--optimizer', 'foo', '--limit', '100'], /--optimizer must be one of/],
    ['--schedule foo', ['train', '--schedule', 'foo', '--limit', '100'], /--schedule must be one of/],
    ['--dataset nope', ['train', '--dataset', 'nope'], /--dataset must be one of mnist, fashion-mnist, cifar10, text, got nope/],
    ['a positional argument', ['train', 'extra'], /extra|positional/],
    ['eval without --checkpoint', ['eval'], /eval needs --checkpoint/],
    ['an unknown command', ['frobnicate'], /unknown command frobnicate/],
    ['a missing flag value', ['train', '--epochs'], /epochs/],
  ];
  for (const [what, argv, message] of usage) {
    const r = await run(argv);
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(r.stderr, message, `${what}: says what is wrong`);
    t.match(r.stderr, /usage: modelslice/, `${what}: shows the usage`);
  }
  const none = await run([]);
  t.equal(none.code, 2, 'no command: exit 2');
  t.match(none.stdout + none.stderr, /usage: modelslice/);
  for (const help of [['help'], ['--help'], ['-h'], ['train', '--help']]) {
    const h = await run(help);
    t.equal(h.code, 0, `${help.join(' ')}: exit 0`);
    t.match(h.stdout, /usage: modelslice <command>/, `${help.join(' ')}: prints the usage`);
  }

  const dir = await mkdtemp(join(tmpdir(), 'modelslice-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const missing = join(dir, 'nope.safetensors');
  const m = await run(['eval', '--checkpoint', missing]);
  t.equal(m.code, 1, 'a missing checkpoint: exit 1');
  t.match(m.stderr, /^modelslice eval: load: cannot read .*nope\.safetensors \(ENOENT\)/);
  t.notMatch(m.stderr, /usage:/, 'not a usage error');
  const rm1 = await run(['train', '--epochs', '2', '--limit', '100', '--resume', missing]);
  t.equal(rm1.code, 1, 'resuming from a missing checkpoint: exit 1');
  t.match(rm1.stderr, /cannot read/);
  const garbage = join(dir, 'garbage.safetensors');
  await (await import('node:fs/promises')).writeFile(garbage, 'not a model');
  const g = await run(['eval', '--checkpoint', garbage]);
  t.equal(g.code, 1, 'a corrupt file: exit 1');
  t.match(g.stderr, /garbage\.safetensors/);
  const fm = await run(['train', '--dataset', 'fashion-mnist', '--data-dir', join(dir, 'none')]);
  t.equal(fm.code, 1, 'a dataset that is not there: exit 1');
  t.match(fm.stderr, /^modelslice train: /m, 'the error line names the command (after the loading line)');
});
