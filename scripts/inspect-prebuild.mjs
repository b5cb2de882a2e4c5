#!/usr/bin/env node
// Reports what a prebuilt addon needs from the machine it loads on, and fails when it
// needs more than a prebuild may:
//
//   node scripts/inspect-prebuild.mjs <dir-or-.node>... [--max-glibc=2.31]
//
// Linux: the shared libraries it links (readelf -d) and the newest GLIBC_x.y symbol
// version it references (objdump -T), i.e. the oldest glibc it runs on. libstdc++,
// libgcc_s and libgomp must not appear: binding.gyp links the first two statically and
// the kernels use their own thread pool. macOS: otool -L. Missing tools are reported,
// not fatal (the checks are for CI, where binutils are present).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const FORBIDDEN = [/libstdc\+\+/, /libgcc_s/, /libgomp/, /libomp/];

const args = process.argv.slice(2);
const maxGlibc = args.find((a) => a.startsWith('--max-glibc='))?.slice('--max-glibc='.length);
const targets = args.filter((a) => !a.startsWith('--'));
if (targets.length === 0) {
  console.error('usage: inspect-prebuild.mjs <dir-or-.node>... [--max-glibc=X.Y]');
  process.exit(2);
}

function run(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout;
}

function versionLess(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

/** The newest GLIBC_x.y version among the binary's dynamic symbols, or null (musl, none). */
function glibcFloor(objdumpT) {
  let max = null;
  for (const m of objdumpT.matchAll(/GLIBC_(\d+(?:\.\d+)+)/g)) {
    if (max === null || versionLess(max, m[1])) max = m[1];
  }
  return max;
}

const files = [];
for (const t of targets) {
  if (!existsSync(t)) {
    console.error(`inspect-prebuild: ${t} does not exist`);
    process.exit(1);
  }
  if (statSync(t).isDirectory()) {
    for (const f of readdirSync(t)) if (f.endsWith('.node')) files.push(join(t, f));
  } else {
    files.push(t);
  }
}
if (files.length === 0) {
  console.error(`inspect-prebuild: no .node file in ${targets.join(', ')}`);
  process.exit(1);
}

let failed = false;
for (const file of files) {
  console.log(`${file}: ${(statSync(file).size / 1024).toFixed(0)} KiB`);
  let libs = null;
  if (process.platform === 'linux') {
    const dyn = run('readelf', ['-d', file]);
    if (dyn !== null) libs = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const syms = run('objdump', ['-T', file]);
    if (syms !== null) {
      const floor = glibcFloor(syms);
      console.log(`  glibc floor: ${floor ?? 'none (no GLIBC_ symbol versions: musl or static)'}`);
      if (floor !== null && maxGlibc !== undefined && versionLess(maxGlibc, floor)) {
        console.error(`  FAIL: needs glibc ${floor}, more than the allowed ${maxGlibc}`);
        failed = true;
      }
    } else {
      console.log('  (objdump not found: glibc floor not checked)');
    }
    const ldd = run('ldd', [file]);
    if (ldd !== null) console.log(`  ldd:\n${ldd.replace(/^/gm, '    ').trimEnd()}`);
  } else if (process.platform === 'darwin') {
    const out = run('otool', ['-L', file]);
    if (out !== null) libs = out.split('\n').slice(1).map((l) => l.trim().split(' ')[0]).filter(Boolean);
  }
  if (libs === null) {
    console.log('  (no readelf/otool here: linked libraries not checked)');
    continue;
  }
  console.log(`  links: ${libs.join(', ') || '(nothing)'}`);
  const bad = libs.filter((l) => FORBIDDEN.some((re) => re.test(l)));
  if (bad.length > 0) {
    console.error(`  FAIL: links ${bad.join(', ')} (must be static or absent in a prebuild)`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
