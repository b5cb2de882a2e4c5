#!/usr/bin/env node
// Checks (or with --fix, rewrites) the formatting of every C++ file under
// native/ and bench/native/ with the clang-format binary shipped in the
// clang-format npm package, so the check needs no system package.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fix = process.argv.includes('--fix');

function clangFormatBinary() {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('clang-format/package.json'));
  const platform = { linux: 'linux', darwin: 'darwin', win32: 'win32' }[process.platform];
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const candidates = [
    join(pkgDir, 'bin', `${platform}_${arch}`, process.platform === 'win32' ? 'clang-format.exe' : 'clang-format'),
    join(pkgDir, 'bin', platform ?? '', 'clang-format'),
  ];
  return candidates.find((p) => existsSync(p));
}

function cppFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...cppFiles(p));
    else if (/\.(cc|h|cpp|hpp)$/.test(entry.name)) out.push(p);
  }
  return out;
}

const bin = clangFormatBinary();
if (!bin) {
  console.error(`clang-format-check: no clang-format binary for ${process.platform}-${process.arch} in the clang-format package`);
  process.exit(1);
}
const files = [...cppFiles(join(root, 'native')), ...cppFiles(join(root, 'bench', 'native'))];
const bad = [];
for (const file of files) {
  if (fix) {
    execFileSync(bin, ['-i', '--style=file', file], { cwd: root });
    continue;
  }
  const formatted = execFileSync(bin, ['--style=file', `--assume-filename=${file}`, file], { cwd: root, maxBuffer: 64 << 20 }).toString();
  if (formatted !== readFileSync(file, 'utf8')) bad.push(file.slice(root.length + 1));
}
if (bad.length > 0) {
  console.error(`clang-format-check: ${bad.length} file(s) need formatting (run \`npm run format\`):\n  ${bad.join('\n  ')}`);
  process.exit(1);
}
console.log(`clang-format-check: ${files.length} C++ files ${fix ? 'formatted' : 'clean'}`);
