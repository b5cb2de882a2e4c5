// The error a user sees when no native binary loads: it must say where (platform, arch,
// C library, Node and Node-API versions), why (the loader's own error) and how to build
// from source under npm 11 / pnpm 10, which skip dependency install scripts by default.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADDON_NAPI_VERSION, loadAddon, loadFailureMessage } from '../../src/native.js';

const linux = {
  platform: 'linux',
  arch: 'arm64',
  libc: 'musl',
  node: '20.19.0',
  napi: '10',
  prebuilds: ['darwin-arm64', 'linux-x64 (glibc, musl)'],
};

t.test('names the platform, the versions, the cause and the fixes', async (t) => {
  const msg = loadFailureMessage('No native build was found for platform=linux arch=arm64', linux);
  t.match(msg, /linux-arm64 \(musl\), Node 20\.19\.0, Node-API 10 \(the addon needs >= 8\)/);
  t.match(msg, /Prebuilt binaries in this package: darwin-arm64, linux-x64 \(glibc, musl\)\./);
  t.match(msg, /Underlying error: No native build was found for platform=linux arch=arm64/);
  t.match(msg, /npm install-scripts approve modelslice && npm rebuild modelslice --build-from-source/);
  t.match(msg, /--allow-scripts=modelslice/);
  t.match(msg, /pnpm approve-builds/);
  t.match(msg, /npm_config_build_from_source=true/);
  t.notMatch(msg, /upgrade Node/);
  t.equal(ADDON_NAPI_VERSION, 8);
});

t.test('an old Node-API and a source checkout without prebuilds', async (t) => {
  const msg = loadFailureMessage('boom', { ...linux, platform: 'darwin', arch: 'x64', libc: null, napi: '7', prebuilds: [] });
  t.match(msg, /on darwin-x64, Node/);
  t.match(msg, /upgrade Node to >= 20\.19/);
  t.match(msg, /Prebuilt binaries in this package: none\./);
});

t.test('the loader wraps a failure with this message and keeps the cause', async (t) => {
  // An empty folder: no build/, no prebuilds/, so node-gyp-build finds nothing.
  const dir = mkdtempSync(join(tmpdir(), 'modelslice-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const err = t.throws(() => loadAddon(dir)) as Error;
  t.match(err.message, /^modelslice: could not load its native kernels on /);
  t.match(err.message, /Underlying error: No native build was found/);
  t.match(err.message, /Prebuilt binaries in this package: none\./);
  t.match((err.cause as Error).message, /No native build was found/);
});

t.test('an unloadable prebuild: the listing and the loader error', async (t) => {
  // Not binaries at all: whichever one node-gyp-build picks for this machine fails to load.
  const dir = mkdtempSync(join(tmpdir(), 'modelslice-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [sub, file] of [
    ['linux-x64', 'modelslice.glibc.node'],
    ['linux-x64', 'modelslice.musl.node'],
    ['darwin-arm64', 'modelslice.node'],
  ]) {
    mkdirSync(join(dir, 'prebuilds', sub), { recursive: true });
    writeFileSync(join(dir, 'prebuilds', sub, file), 'not a shared library');
  }
  const err = t.throws(() => loadAddon(dir)) as Error;
  t.match(err.message, /Prebuilt binaries in this package: darwin-arm64, linux-x64 \(glibc, musl\)\./);
  t.match(err.message, /Underlying error: \S/);
  t.ok(err.cause instanceof Error, 'the loader error is the cause');
});
