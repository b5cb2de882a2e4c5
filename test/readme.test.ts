// Runs the README's code as written, so that the README cannot drift from the library.
//
// Every JavaScript block is run (each starts from `import * as ms from 'modelslice'`; the test
// swaps that line for the library's source), in order, in one scratch folder, so the ONNX block
// finds the model the library block saved and the serving block the model the CLI line above it
// trains. A block the test does not know fails it: a new block must be added here to be run.
// MODELSLICE_README_QUICK (on unless set to 0) shortens training to one epoch on a few hundred
// images: `loadDataset` returns a sample and `fit` runs one epoch; nothing else changes, except
// that servers take a free port instead of 8080, which another process may hold.
// Shell blocks are not run (they install packages or start servers; test/cli*.test.ts run the
// commands), but every `modelslice` command line in them must use flags the CLI knows.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { main } from '../src/cli.js';
import * as ms from '../src/index.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const QUICK = process.env.MODELSLICE_README_QUICK !== '0';
const IMPORT = "import * as ms from 'modelslice';";

interface Block {
  lang: string;
  code: string;
  /** The `## ` heading the block sits under. */
  section: string;
  /** Line of the opening fence, 1-based. */
  line: number;
  /** `section #n`: the n-th block of its language in its section. */
  key: string;
}

function readmeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const counts = new Map<string, number>();
  let section = '(top)';
  let open: { lang: string; line: number; lines: string[] } | null = null;
  markdown.split('\n').forEach((text, i) => {
    if (open !== null) {
      if (/^```\s*$/.test(text)) {
        const lang = /^(js|javascript|mjs|cjs|ts|typescript)$/.test(open.lang) ? 'js' : open.lang;
        const n = counts.get(`${section}/${lang}`) ?? 0;
        counts.set(`${section}/${lang}`, n + 1);
        blocks.push({ lang, code: open.lines.join('\n'), section, line: open.line, key: `${section} #${n}` });
        open = null;
      } else {
        open.lines.push(text);
      }
      return;
    }
    const fence = /^```\s*(\S*)/.exec(text);
    if (fence) open = { lang: fence[1], line: i + 1, lines: [] };
    else if (text.startsWith('## ')) section = text.slice(3).trim();
  });
  if (open !== null) throw new Error(`README: the code block opened at line ${(open as { line: number }).line} is never closed`);
  return blocks;
}

const blocks = readmeBlocks(README);
const byKey = (lang: string, key: string): Block => {
  const b = blocks.find((x) => x.lang === lang && x.key === key);
  if (b === undefined) throw new Error(`README: no ${lang} block "${key}"`);
  return b;
};

// The library as the blocks see it: the real one, with training shortened in quick mode.
const readmeMs = {
  ...ms,
  data: {
    ...ms.data,
    loadDataset: async (...args: Parameters<typeof ms.data.loadDataset>) => {
      const ds = await ms.data.loadDataset(...args);
      return QUICK ? ms.data.sample(ds, args[1] === 'train' ? 256 : 100, 1) : ds;
    },
  },
  fit: (model: ms.nn.Module, data: Parameters<typeof ms.fit>[1], options: Parameters<typeof ms.fit>[2]) => ms.fit(model, data, QUICK ? { ...options, epochs: 1 } : options),
  serve: (model: Parameters<typeof ms.serve>[0], options: Parameters<typeof ms.serve>[1]) => ms.serve(model, { workers: 1, ...options, port: 0 }),
};
(globalThis as { readmeModelslice?: unknown }).readmeModelslice = readmeMs;

const dir = t.testdir({});
const printed: string[] = [];

/** Runs `fn` in the scratch folder with console output captured (blocks print tables). */
async function inDir<T>(fn: () => Promise<T>): Promise<T> {
  const cwd = process.cwd();
  const { log, table } = console;
  console.log = (...a: unknown[]) => void printed.push(a.map(String).join(' '));
  console.table = (v: unknown) => void printed.push(JSON.stringify(v));
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(cwd);
    console.log = log;
    console.table = table;
  }
}

/** Runs a JavaScript block as an ES module and returns the named variables it defines. */
async function runJs(block: Block, names: string[]): Promise<Record<string, unknown>> {
  if (!block.code.includes(IMPORT)) throw new Error(`README line ${block.line}: a JavaScript block must start from ${IMPORT}`);
  const source = `${block.code.replace(IMPORT, 'const ms = globalThis.readmeModelslice;')}\nexport { ${names.join(', ')} };\n`;
  const file = join(dir, `readme-line-${block.line}.mjs`);
  writeFileSync(file, source);
  return inDir(async () => (await import(pathToFileURL(file).href)) as Record<string, unknown>);
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}
function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

type Check = (t: Test, block: Block) => Promise<void>;

// Every block of code the README shows, in the order they run. A new block needs an entry.
const JS: [string, Check][] = [
  [
    'Use it as a library #0',
    async (t, block) => {
      const v = await runJs(block, ['table', 'x', 'logits', 'fast', 'small', 'r', 'again']);
      const table = v.table as { rate: number; accuracy: number }[];
      t.same(table.map((row) => row.rate), [1, 0.75, 0.5, 0.25], 'a row per trained rate');
      for (const row of table) t.ok(row.accuracy >= 0 && row.accuracy <= 1, `rate ${row.rate}: accuracy ${row.accuracy}`);
      if (!QUICK) t.ok(table[0].accuracy > 0.9, `trained as written, ResNet-20 is above 90% (${table[0].accuracy})`);
      const x = v.x as ms.Tensor;
      const logits = v.logits as ms.Tensor;
      t.same(x.shape.slice(1), [1, 28, 28], 'x is a batch of test digits');
      const scale = maxAbs(logits.data);
      t.ok(maxDiff((v.fast as ms.Tensor).data, logits.data) <= 1e-5 * scale + 1e-6, 'infer at 0.5 gives the same numbers as forward at 0.5');
      const small = v.small as ms.nn.Module;
      t.ok(maxDiff(ms.noGrad(() => small.forward(x)).data, logits.data) <= 1e-5 * scale + 1e-6, 'the compact copy gives the same numbers');
      t.ok([1, 0.75, 0.5, 0.25].includes(v.r as number), 'selectRate picks a trained rate');
      const again = v.again as ms.nn.Module;
      again.setSliceRate(0.5);
      t.same(Array.from(ms.noGrad(() => again.forward(x)).data), Array.from(logits.data), 'the saved model loads with the same outputs');
      t.ok(printed.some((line) => line.includes('accuracy')), 'the table is printed');
    },
  ],
  [
    'Use it as a library #1',
    async (t, block) => {
      const v = await runJs(block, ['w', 'y']);
      const w = v.w as ms.Tensor;
      t.same((v.y as ms.Tensor).shape, [64, 512]);
      const grad = w.grad!.data;
      t.ok(maxAbs(grad.subarray(0, 512 * 784)) > 0, 'the first 512 rows of w.grad are written');
      t.equal(maxAbs(grad.subarray(512 * 784)), 0, 'the other rows are not');
    },
  ],
  [
    'A sliceable language model #0',
    async (t, block) => {
      const v = await runJs(block, ['model', 'tokens', 'stats', 'narrow']);
      t.equal((v.tokens as number[]).length, 40, 'forty tokens, speculatively');
      t.same(v.tokens, ms.generate(v.model as ms.models.Transformer, [...ms.data.textDataset('to be', { vocabulary: (v.model as ms.models.Transformer).vocabulary }).ids], { maxTokens: 40, temperature: 0 }).tokens, 'rate 1\'s greedy tokens');
      t.equal((v.narrow as { tokens: number[] }).tokens.length, 40, 'forty at rate 0.25');
      t.ok((v.stats as ms.GenerateStats).passes <= 40);
    },
  ],
  [
    'Export to ONNX #0',
    async (t, block) => {
      t.ok(existsSync(join(dir, 'r20.safetensors')), 'the library block saved the model this block loads');
      await runJs(block, ['model']);
      t.ok(statSync(join(dir, 'r20-half.onnx')).size > 10_000, 'r20-half.onnx written');
    },
  ],
  [
    'Import PyTorch weights #0',
    async (t, block) => {
      // The Python block writes this file from a PyTorch model. The same layout from our own
      // ResNet-164 (whose names are the reference code's), with the float32 num_batches_tracked
      // buffers that the Python writer produces, stands in for it.
      const source = ms.models.resnet({ depth: 164, classes: 10, norm: 'batch' });
      const tensors: Record<string, ms.Tensor> = {};
      for (const [name, p] of [...source.namedParameters(), ...source.namedBuffers()]) {
        tensors[name] = p;
        if (name.endsWith('.running_var')) tensors[name.replace(/running_var$/, 'num_batches_tracked')] = ms.tensor([0], []);
      }
      writeFileSync(join(dir, 'preresnet164.safetensors'), serializeSafetensors(tensors));
      const v = await runJs(block, ['model']);
      const model = v.model as ms.nn.Module;
      const got = new Map(model.namedParameters());
      t.same(Array.from(got.get('fc.weight')!.data), Array.from(tensors['fc.weight'].data), 'the weights are the file\'s');
    },
  ],
  [
    'Serve a model elastically #0',
    async (t, block) => {
      // Its model file comes from the `modelslice train` line of the shell block above it.
      const shell = blocks.find((b) => b.section === block.section && b.lang === 'sh' && b.line < block.line);
      const line = shell?.code.split('\n').find((l) => l.startsWith('npx modelslice train '));
      if (line === undefined) throw new Error('README: the serving section no longer shows how runs/mlp.safetensors is made');
      const args = line.replace(/#.*$/, '').trim().split(/\s+/).slice(2);
      const code = await inDir(() => main([...args, ...(QUICK ? ['--limit', '300', '--epochs', '1'] : [])]));
      t.equal(code, 0, `${line}: exit 0`);
      const v = await runJs(block, ['classes', 'logits', 'rate']);
      t.equal((v.classes as Int32Array).length, 4, 'a class per input');
      t.equal((v.logits as Float32Array).length, 40, 'ten logits per input');
      t.ok((v.rate as number) > 0 && (v.rate as number) <= 1, 'the rate it ran at');
      t.ok(printed.some((l) => l.startsWith('http://127.0.0.1:')), 'the server printed its URL');
    },
  ],
];

const PYTHON = ['Import PyTorch weights #0'];

t.test('the test knows every JavaScript and Python block of the README', async (t) => {
  const known = new Set(JS.map(([key]) => key));
  for (const b of blocks.filter((x) => x.lang === 'js')) t.ok(known.has(b.key), `README line ${b.line} (${b.key}) is run by test/readme.test.ts`);
  for (const b of blocks.filter((x) => x.lang === 'python')) t.ok(PYTHON.includes(b.key), `README line ${b.line} (${b.key}) is checked by test/readme.test.ts`);
  for (const key of known) t.ok(blocks.some((b) => b.lang === 'js' && b.key === key), `the README still has the block "${key}"`);
  t.ok(blocks.every((b) => b.lang !== ''), 'every block names its language');
  // YAML blocks (configuration for other tools) must at least parse.
  for (const b of blocks.filter((x) => x.lang === 'yaml')) t.doesNotThrow(() => parseYaml(b.code), `README line ${b.line}: the YAML parses`);
});

t.test('every JavaScript block runs as written', async (t) => {
  for (const [key, check] of JS) {
    const block = byKey('js', key);
    await t.test(`README line ${block.line}: ${key}`, (t) => check(t, block));
  }
});

// The first python3 that can import torch (Debian's python3-torch installs for /usr/bin/python3,
// which another python3 on PATH may shadow).
const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);
const hasTorch = python !== undefined;

t.test('the Python export block writes a safetensors file the library reads', { skip: hasTorch ? false : 'no python3 here can import torch (apt-get install python3-torch), so the PyTorch block is not run' }, async (t) => {
  const block = byKey('python', PYTHON[0]);
  // `model` stands for the reader's trained network; a small one with a BatchNorm shows every kind of entry.
  const prelude = 'import torch\ntorch.manual_seed(0)\nmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))\n';
  const scratch = t.testdir({});
  const run = spawnSync(python!, ['-c', prelude + block.code], { cwd: scratch, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const file = parseSafetensors(readFileSync(join(scratch, 'preresnet164.safetensors')));
  t.same(Object.keys(file.tensors).sort(), ['0.bias', '0.weight', '1.bias', '1.num_batches_tracked', '1.running_mean', '1.running_var', '1.weight']);
  t.same(file.tensors['0.weight'].shape, [4, 3, 3, 3]);
});

t.test('every modelslice command line in the shell blocks uses flags the CLI knows', async (t) => {
  const lines = blocks
    .filter((b) => b.lang === 'sh')
    .flatMap((b) => b.code.split('\n'))
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l.startsWith('npx modelslice '));
  t.ok(lines.length >= 5, `${lines.length} command lines`);
  const { log } = console;
  const write = process.stdout.write;
  for (const line of lines) {
    // With --help the CLI checks the flags' names and prints the usage instead of running.
    console.log = () => {};
    process.stdout.write = (() => true) as typeof process.stdout.write;
    const stderr = process.stderr.write;
    let err = '';
    process.stderr.write = ((c: string) => ((err += String(c)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main([...line.split(/\s+/).slice(2), '--help']);
    } finally {
      console.log = log;
      process.stdout.write = write;
      process.stderr.write = stderr;
    }
    t.equal(code, 0, `${line}: ${err.split('\n')[0]}`);
  }
});
