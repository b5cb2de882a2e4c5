// nn/ knows nothing of models/, slicing/ or io/ (DESIGN.md, "Layers, models,
// metadata"): what a layer needs to slice itself lives beside the layers.
// This reads every file under src/nn/ and refuses an import that leaves nn/
// for one of them, type-only imports included.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const nnDir = join(src, 'nn');
const forbidden = ['models', 'slicing', 'io'].map((d) => join(src, d));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.(ts|mts|cts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Module specifiers a file names: import/export ... from, bare imports, import(), require(). */
function specifiers(text: string): string[] {
  // Comments may mention paths without importing them.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const patterns = [
    /\b(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  return patterns.flatMap((p) => [...code.matchAll(p)].map((m) => m[1]));
}

function leavesFor(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const target = resolve(dirname(file), spec);
  const hit = forbidden.find((d) => target === d || target.startsWith(d + sep));
  return hit === undefined ? null : relative(src, hit);
}

t.test('the scanner sees every form of import', async (t) => {
  const text = [
    "import { a } from '../slicing/width.js';",
    "import type {\n  B,\n  C,\n} from '../models/config.js';",
    "export { d } from \"../io/index.js\";",
    "export * from '../slicing/index.js';",
    "import '../io/side-effect.js';",
    "type E = import('../models/config.js').ModelConfig;",
    "const f = await import('../slicing/plan.js');",
    "// import { g } from '../slicing/not-an-import.js';",
    "/* export { h } from '../io/nor-this.js'; */",
    "const url = 'http://example.com'; import { i } from './width.js';",
  ].join('\n');
  t.same(specifiers(text), [
    '../slicing/width.js',
    '../models/config.js',
    '../io/index.js',
    '../slicing/index.js',
    './width.js',
    '../io/side-effect.js',
    '../models/config.js',
    '../slicing/plan.js',
  ]);
  const file = join(nnDir, 'linear.ts');
  t.equal(leavesFor(file, '../slicing/trace.js'), 'slicing');
  t.equal(leavesFor(file, '../models/config.js'), 'models');
  t.equal(leavesFor(join(nnDir, 'deeper', 'x.ts'), '../../io/index.js'), 'io');
  t.equal(leavesFor(file, './trace.js'), null);
  t.equal(leavesFor(file, '../tensor.js'), null);
  t.equal(leavesFor(file, '../iox.js'), null, 'a sibling whose name merely starts like io/');
});

t.test('no file under src/nn/ imports from models/, slicing/ or io/', async (t) => {
  const files = sourceFiles(nnDir);
  t.ok(files.length >= 8, `read ${files.length} files under src/nn/`);
  const seen = new Map(files.map((f) => [relative(src, f), specifiers(readFileSync(f, 'utf8'))]));
  // The scan must actually find imports, or an empty result would prove nothing.
  t.ok(seen.get(join('nn', 'linear.ts'))?.includes('../ops/linear.js'), 'nn/linear.ts imports ../ops/linear.js');
  const offending: string[] = [];
  for (const f of files) {
    for (const spec of seen.get(relative(src, f)) ?? []) {
      const dir = leavesFor(f, spec);
      if (dir !== null) offending.push(`${relative(src, f)} imports ${spec} (${dir}/)`);
    }
  }
  t.same(offending, [], 'nn/ stays below models/, slicing/ and io/');
});
