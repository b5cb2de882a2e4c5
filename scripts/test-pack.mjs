#!/usr/bin/env node
// npm run test:pack: the package as a user gets it.
//
//  1. Builds prebuilds/<platform>-<arch> (scripts/prebuild.mjs) if it is missing or older
//     than the native sources.
//  2. npm pack into a temporary folder; checks the size budget (packed < 4 MB, unpacked
//     < 12 MB), that every file the package needs is there and that no test, bench or
//     build file is.
//  3. Installs the tarball into empty projects with no network and no compiler: PATH holds
//     only `node`, and the dependencies come from the npm cache through a lockfile derived
//     from this repository's package-lock.json (so no registry metadata is needed, only
//     the tarballs `npm ci` cached here).
//       a. --ignore-scripts (what npm 11 and pnpm 10 do by default for dependencies);
//       b. with the install script allowed: it must find the prebuild and not compile;
//       c. with --build-from-source: it must try to compile (and fail: no compiler).
//     After a and b: `import` and `require` of the package, a GEMM against a JS
//     reference, and the CLI's --help.
//
// Options: --keep (leave the temporary folder), --skip-source (skip c), --no-build (fail
// rather than build a missing or stale prebuild: CI checks the binaries it downloaded),
// --tarball=FILE (test this tarball instead of packing one: the release checks the file
// it publishes).
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const skipSource = process.argv.includes('--skip-source');
const noBuild = process.argv.includes('--no-build');
const givenTarball = process.argv.find((a) => a.startsWith('--tarball='))?.slice('--tarball='.length);
const PACKED_BUDGET = 4 * 1024 * 1024;
const UNPACKED_BUDGET = 12 * 1024 * 1024;

const t0 = Date.now();
const timings = [];
let stepStart = Date.now();
function step(name) {
  const now = Date.now();
  if (timings.length > 0) timings[timings.length - 1].s = (now - stepStart) / 1000;
  timings.push({ name, s: 0 });
  stepStart = now;
  console.log(`\n== ${name}`);
}
function fail(msg) {
  console.error(`test:pack: FAIL: ${msg}`);
  console.error(`(temporary folder kept: ${work})`);
  process.exit(1);
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = realpathSync(mkdtempSync(join(tmpdir(), 'modelslice-pack-')));

// ---------------------------------------------------------------------------------------
// npm itself, run by this Node (so it works with the stripped PATH below).
function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ];
  const found = candidates.find((p) => p && /npm-cli\.js$/.test(p) && existsSync(p));
  if (!found) fail('cannot find npm-cli.js (run through `npm run test:pack`)');
  return found;
}
const NPM = npmCli();

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  return { status: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

// ---------------------------------------------------------------------------------------
step('prebuild');
const libc =
  process.platform === 'linux'
    ? (process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl')
    : null;
const prebuildDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
function ourPrebuild() {
  if (!existsSync(prebuildDir)) return null;
  const f = readdirSync(prebuildDir).find(
    (n) => n.endsWith('.node') && (libc === null || !/\.(glibc|musl)\./.test(n) || n.includes(`.${libc}.`)),
  );
  return f ? join(prebuildDir, f) : null;
}
function newestSource() {
  const files = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))];
  return Math.max(...files.filter((f) => /\.(cc|h|json|gyp)$/.test(f)).map((f) => statSync(f).mtimeMs));
}
let prebuilt = ourPrebuild();
if (givenTarball !== undefined) {
  console.log('testing a given tarball: its own prebuilds are checked below');
} else if (noBuild && prebuilt === null) {
  fail(`no prebuild for ${process.platform}-${process.arch}${libc ? ` (${libc})` : ''} in prebuilds/ (--no-build)`);
} else if (!noBuild && (prebuilt === null || statSync(prebuilt).mtimeMs < newestSource())) {
  console.log(prebuilt === null ? 'no prebuild for this platform: building it' : 'prebuild older than native/: rebuilding');
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'prebuild.mjs')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail('scripts/prebuild.mjs failed');
  prebuilt = ourPrebuild();
  if (prebuilt === null) fail(`prebuild.mjs left no binary for ${process.platform}-${process.arch} in prebuilds/`);
}
if (prebuilt !== null && !givenTarball) console.log(`using ${relative(root, prebuilt)}`);

// ---------------------------------------------------------------------------------------
step('npm pack');
const packDir = join(work, 'pack');
mkdirSync(packDir);
// npm pack runs `prepare` (tsc) first, so dist/ matches src/. With --tarball, `npm pack
// <file> --dry-run` only reads the given file (same --json report, nothing rebuilt).
const packed = givenTarball
  ? run(process.execPath, [NPM, 'pack', '--json', '--dry-run', '--ignore-scripts', realpathSync(givenTarball)], { cwd: packDir })
  : run(process.execPath, [NPM, 'pack', '--json', '--pack-destination', packDir], { cwd: root });
if (packed.status !== 0) fail(`npm pack failed:\n${packed.out}`);
const info = JSON.parse(packed.stdout.slice(Math.max(0, packed.stdout.search(/^\[/m))))[0];
if (givenTarball) copyFileSync(givenTarball, join(packDir, info.filename));
const tarball = join(packDir, info.filename);
const files = info.files.map((f) => f.path);
console.log(
  `${info.filename}: ${(info.size / 1024).toFixed(0)} KiB packed, ${(info.unpackedSize / 1024).toFixed(0)} KiB unpacked, ${files.length} files`,
);
if (info.size > PACKED_BUDGET) fail(`packed size ${info.size} B is over the ${PACKED_BUDGET} B budget`);
if (info.unpackedSize > UNPACKED_BUDGET) fail(`unpacked size ${info.unpackedSize} B is over the ${UNPACKED_BUDGET} B budget`);

const forbidden = files.filter(
  (f) =>
    /^(test|bench|examples|tools|scripts|runs|build|coverage|src|docs|\.tap|\.ci|\.github|native\/test)\//.test(f) ||
    /\.test\.[cm]?[jt]s$|\.map$|\.tgz$/.test(f),
);
if (forbidden.length > 0) fail(`the tarball holds files it must not:\n  ${forbidden.join('\n  ')}`);
const sources = JSON.parse(readFileSync(join(root, 'native', 'sources.json'), 'utf8'));
const headers = readdirSync(join(root, 'native')).filter((f) => f.endsWith('.h')).map((f) => `native/${f}`);
const required = [
  'package.json',
  'README.md',
  'LICENSE',
  'CHANGELOG.md',
  'binding.gyp',
  'native/sources.json',
  'native/CMakeLists.txt',
  'dist/index.js',
  'dist/index.d.ts',
  pkg.bin.modelslice.replace(/^\.\//, ''),
  ...(prebuilt !== null && !givenTarball ? [relative(root, prebuilt).split('\\').join('/')] : []),
  ...sources,
  ...headers,
];
const missing = required.filter((f) => !files.includes(f));
if (missing.length > 0) fail(`the tarball lacks:\n  ${missing.join('\n  ')}`);
const here = `prebuilds/${process.platform}-${process.arch}/`;
if (!files.some((f) => f.startsWith(here) && f.endsWith('.node') && (libc === null || !/\.(glibc|musl)\./.test(f) || f.includes(`.${libc}.`)))) {
  fail(`the tarball has no prebuild for this machine (${here}${libc ? `*.${libc}.node` : ''})`);
}
// Every dist module is compiled from a current source (no stale output of a deleted file).
const stale = files
  .filter((f) => f.startsWith('dist/') && f.endsWith('.js'))
  .filter((f) => !existsSync(join(root, 'src', f.slice(5).replace(/\.js$/, '.ts'))));
if (stale.length > 0) fail(`dist/ has output of no current source (rm -rf dist and rebuild):\n  ${stale.join('\n  ')}`);
console.log(`prebuilds in the tarball: ${files.filter((f) => f.startsWith('prebuilds/')).join(', ')}`);

// ---------------------------------------------------------------------------------------
// A PATH with nothing but node and sh: no python, make, cc, c++, g++, clang.
const bin = join(work, 'bin');
mkdirSync(bin);
const nodeName = process.platform === 'win32' ? 'node.exe' : 'node';
try {
  symlinkSync(process.execPath, join(bin, nodeName));
} catch {
  copyFileSync(process.execPath, join(bin, nodeName));
}
// npm runs scripts through `sh` (looked up on PATH); a shell is not a compiler.
if (process.platform !== 'win32' && existsSync('/bin/sh')) symlinkSync('/bin/sh', join(bin, 'sh'));
const cache =
  process.env.npm_config_cache ?? run(process.execPath, [NPM, 'config', 'get', 'cache'], { cwd: work }).stdout.trim();
const cleanEnv = {};
for (const [k, v] of Object.entries(process.env)) {
  if (/^(npm_|INIT_CWD$|PYTHON|CC$|CXX$|MAKE|NODE_OPTIONS$|NODE_PATH$)/i.test(k) || /^path$/i.test(k)) continue;
  cleanEnv[k] = v;
}
Object.assign(cleanEnv, {
  PATH: bin,
  npm_config_cache: cache,
  npm_config_update_notifier: 'false',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
});
for (const tool of ['python3', 'python', 'make', 'cc', 'c++', 'g++', 'gcc', 'clang++']) {
  if (run(tool, ['--version'], { env: cleanEnv }).status === 0) fail(`${tool} is still reachable with PATH=${bin}`);
}

// The consumer's lockfile: modelslice from the tarball, its dependencies exactly as this
// repository's package-lock.json resolved them (same paths, versions and integrity), so
// `npm ci --offline` needs only the cached tarballs.
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
function lockClosure(rootDeps) {
  const out = {};
  const queue = [['', rootDeps]];
  while (queue.length > 0) {
    const [from, deps] = queue.shift();
    for (const name of Object.keys(deps)) {
      let base = from;
      let found = null;
      for (;;) {
        const key = `${base ? `${base}/` : ''}node_modules/${name}`;
        if (lock.packages[key]) {
          found = key;
          break;
        }
        if (!base) break;
        base = base.slice(0, base.lastIndexOf('node_modules/')).replace(/\/$/, '');
      }
      if (found === null) fail(`package-lock.json has no entry for ${name} (needed from '${from || 'root'}')`);
      if (out[found]) continue;
      const entry = { ...lock.packages[found] };
      delete entry.dev;
      delete entry.devOptional;
      delete entry.peer;
      out[found] = entry;
      const next = { ...entry.dependencies, ...entry.optionalDependencies };
      for (const [peer] of Object.entries(entry.peerDependencies ?? {})) {
        if (!entry.peerDependenciesMeta?.[peer]?.optional) next[peer] = entry.peerDependencies[peer];
      }
      queue.push([found, next]);
    }
  }
  return out;
}
const deps = lockClosure(pkg.dependencies ?? {});

function makeConsumer(name) {
  const dir = join(work, name);
  mkdirSync(dir);
  const spec = `file:${relative(dir, tarball).split('\\').join('/')}`;
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true, dependencies: { [pkg.name]: spec } }, null, 2),
  );
  const self = {
    version: pkg.version,
    resolved: spec,
    integrity: info.integrity,
    license: pkg.license,
    dependencies: pkg.dependencies,
    bin: pkg.bin,
    engines: pkg.engines,
    hasInstallScript: true,
  };
  const lockfile = {
    name: `consumer-${name}`,
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: `consumer-${name}`, version: '1.0.0', dependencies: { [pkg.name]: spec } },
      [`node_modules/${pkg.name}`]: self,
      ...deps,
    },
  };
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
  return dir;
}

function install(dir, flags, env = {}) {
  const args = [NPM, 'ci', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...flags];
  const envText = Object.entries(env).map(([k, v]) => `${k}=${v} `).join('');
  console.log(`$ PATH=${bin} ${envText}npm ${args.slice(1).join(' ')}`);
  return run(process.execPath, args, { cwd: dir, env: { ...cleanEnv, ...env } });
}

// ESM import, CommonJS require, a GEMM checked against a JS reference, the CLI.
const esmCheck = `
import * as ms from '${pkg.name}';
const M = 37, K = 53, N = 29;
const a = Float32Array.from({ length: M * K }, (_, i) => ((i * 7) % 13) / 13 - 0.5);
const b = Float32Array.from({ length: K * N }, (_, i) => ((i * 5) % 11) / 11 - 0.5);
const c = ms.matmul(ms.tensor(a, [M, K]), ms.tensor(b, [K, N])).data;
let err = 0;
for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
  let s = 0;
  for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
  err = Math.max(err, Math.abs(s - c[i * N + j]));
}
if (!(err < 1e-4)) throw new Error('matmul differs from the reference by ' + err);
const y = ms.linear(ms.tensor([1, 2, 3], [1, 3]), ms.tensor([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]), null, { outWidth: 2 });
if (y.shape.join() !== '1,2' || y.data[0] !== 1 || y.data[1] !== 2) throw new Error('linear gave ' + y.shape + ' ' + y.data);
console.log('esm ok: matmul max error', err.toExponential(2), 'kernels', JSON.stringify(ms.kernelInfo()));
`;
const cjsCheck = `
const ms = require('${pkg.name}');
const y = ms.matmul(ms.tensor([1, 2, 3, 4], [2, 2]), ms.tensor([5, 6, 7, 8], [2, 2]));
if (Array.from(y.data).join() !== '19,22,43,50') throw new Error('matmul gave ' + Array.from(y.data));
if (typeof ms.models.resnet !== 'function') throw new Error('require() gave no models.resnet');
console.log('cjs ok: require() of the ESM package, matmul', Array.from(y.data).join(','));
`;
function useIt(dir) {
  const installed = join(dir, 'node_modules', pkg.name);
  if (existsSync(join(installed, 'build'))) fail(`${installed}/build exists: the install compiled the addon`);
  writeFileSync(join(dir, 'check.mjs'), esmCheck);
  writeFileSync(join(dir, 'check.cjs'), cjsCheck);
  for (const file of ['check.mjs', 'check.cjs']) {
    const r = run(process.execPath, [file], { cwd: dir, env: cleanEnv });
    process.stdout.write(r.out);
    if (r.status !== 0) fail(`${file} failed in ${dir}`);
  }
  const cli = run(process.execPath, [join('node_modules', '.bin', pkg.name), '--help'], { cwd: dir, env: cleanEnv });
  if (cli.status !== 0 || !/train/.test(cli.out)) fail(`the CLI's --help failed:\n${cli.out}`);
  console.log('cli ok: modelslice --help');
}

// ---------------------------------------------------------------------------------------
step('install a: --ignore-scripts, offline, no compiler');
const a = makeConsumer('a');
let r = install(a, ['--ignore-scripts']);
if (r.status !== 0) fail(`npm ci --ignore-scripts failed:\n${r.out}`);
useIt(a);

step('install b: install script allowed, offline, no compiler');
const b = makeConsumer('b');
r = install(b, ['--dangerously-allow-all-scripts']);
if (r.status !== 0) fail(`npm ci with the install script allowed failed (did it try to compile?):\n${r.out}`);
if (!/>\s*node-gyp-build/.test(r.out)) fail(`the install script did not run:\n${r.out}`);
console.log("install script ran (node-gyp-build) and found the prebuild");
useIt(b);

if (!skipSource) {
  step('install c: build from source forced: it must compile (no compiler here, so it must fail)');
  const c = makeConsumer('c');
  // The environment form of --build-from-source (npm 11 warns that it will stop passing
  // unknown command-line configs on to scripts; the variable keeps working).
  r = install(c, ['--dangerously-allow-all-scripts'], { npm_config_build_from_source: 'true' });
  if (r.status === 0) fail('npm ci with npm_config_build_from_source=true succeeded without a compiler: it was ignored');
  if (!/gyp/.test(r.out)) fail(`--build-from-source failed without reaching node-gyp:\n${r.out}`);
  console.log('build-from-source went to node-gyp, which failed as it must without python/make/c++');
}

step('done');
timings.pop();
if (!keep) rmSync(work, { recursive: true, force: true });
console.log(timings.map((t) => `${t.name}: ${t.s.toFixed(1)} s`).join('\n'));
console.log(
  `test:pack: ok in ${((Date.now() - t0) / 1000).toFixed(1)} s (${basename(tarball)}, ${(info.size / 1024).toFixed(0)} KiB packed)` +
    (keep ? `; kept ${work}` : ''),
);
