#!/usr/bin/env node
// Builds the prebuilt addon for this platform into prebuilds/<platform>-<arch>/ with
// prebuildify: one Node-API binary (NAPI_VERSION=8 in binding.gyp) that loads in every
// Node >= 20, stripped, tagged with the C library on Linux (modelslice.glibc.node or
// modelslice.musl.node) so glibc and musl builds can share prebuilds/linux-x64/.
//
//   npm run build:prebuild                 # this platform and arch
//   npm run build:prebuild -- --arch=x64   # another arch the toolchain can target (macOS)
//
// The build runs in a temporary copy of binding.gyp and native/, so the checkout's build/
// (what tests and other work load) is left alone. Nothing is downloaded when the running
// Node ships its headers (<prefix>/include/node, true of the official Linux and macOS
// tarballs and of distribution packages): node-gyp is pointed at them. Afterwards the
// binary is inspected (scripts/inspect-prebuild.mjs).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const extra = process.argv.slice(2);

const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const prefix = join(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h')) && process.platform !== 'win32') {
    env.npm_config_nodedir = prefix;
  }
}

const args = [
  require.resolve('prebuildify/bin.js'),
  '--napi',
  '--strip',
  // prebuildify's default target is the newest Node it knows, whose headers node-gyp
  // would fetch; the running Node's headers give the same Node-API binary.
  `--target=node@${process.versions.node}`,
];
if (process.platform === 'linux') args.push('--tag-libc');
args.push(...extra);

const stage = mkdtempSync(join(tmpdir(), 'modelslice-prebuild-'));
for (const f of ['package.json', 'binding.gyp']) copyFileSync(join(root, f), join(stage, f));
cpSync(join(root, 'native'), join(stage, 'native'), { recursive: true });
symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'), 'junction');
function cleanUp() {
  rmSync(stage, { recursive: true, force: true });
}

console.log(`prebuild: node ${args.slice(1).join(' ')} in ${stage}` + (env.npm_config_nodedir ? ` (headers: ${env.npm_config_nodedir})` : ''));
const t0 = Date.now();
const r = spawnSync(process.execPath, args, { cwd: stage, env, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`prebuild: prebuildify failed (exit ${r.status ?? r.signal}); build folder kept: ${stage}`);
  process.exit(1);
}

// Flags node-gyp actually used: no -march may reach the compile lines (the x86 kernels
// pick their ISA at run time; a global -march would make the binary fail on older CPUs).
const buildDir = join(stage, 'build');
const makefiles = existsSync(buildDir) ? readdirSync(buildDir).filter((f) => f.endsWith('.mk')) : [];
if (makefiles.length === 0 && process.platform !== 'win32') console.warn('prebuild: no makefile found to check for -march');
for (const f of makefiles) {
  const flags = readFileSync(join(buildDir, f), 'utf8')
    .split('\n')
    .filter((line) => /(^|\s)(-march=|-mtune=|-mavx|-msse4|-mfma)/.test(line));
  if (flags.length > 0) {
    console.error(`prebuild: build/${f} has CPU-specific flags:\n${flags.join('\n')}`);
    cleanUp();
    process.exit(1);
  }
}

// Only the files just built are replaced: prebuilds/linux-x64 may also hold the other libc's.
const arch = extra.find((a) => a.startsWith('--arch='))?.slice(7) ?? process.arch;
const sub = `${process.platform}-${arch}`;
const dir = join(root, 'prebuilds', sub);
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(join(stage, 'prebuilds', sub))) copyFileSync(join(stage, 'prebuilds', sub, f), join(dir, f));
cleanUp();
console.log(`prebuild: ${dir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
const inspect = spawnSync(process.execPath, [join(root, 'scripts', 'inspect-prebuild.mjs'), dir], { stdio: 'inherit' });
process.exit(inspect.status ?? 1);
