// `modelslice serve` as a user runs it: a child process, stopped by SIGTERM,
// started directly or through npx.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { main } from '../../src/cli.js';
import * as ms from '../../src/index.js';
import { call, postJson } from './http.js';

const bin = fileURLToPath(new URL('../../src/bin.ts', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs main() in-process for flag errors, capturing stderr. */
async function usage(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(argv), stderr };
  } finally {
    process.stderr.write = write;
  }
}

t.test('serve flag errors exit 2 with a reason', async (t) => {
  const cases: [string[], RegExp][] = [
    [['serve', '--port', '0', '--slo-ms', '10'], /serve needs --checkpoint FILE/],
    [['serve', '--checkpoint', 'x', '--slo-ms', '10'], /serve needs --port N/],
    [['serve', '--checkpoint', 'x', '--port', '0'], /serve needs --slo-ms X/],
    [['serve', '--checkpoint', 'x', '--port', '70000', '--slo-ms', '10'], /--port must be in \[0, 65535\]/],
    [['serve', '--checkpoint', 'x', '--port', '0', '--slo-ms', '0'], /--slo-ms must be greater than 0/],
    [['serve', '--checkpoint', 'x', '--port', '0', '--slo-ms', '5', '--max-batch', '0'], /--max-batch must be at least 1/],
    [['serve', '--checkpoint', 'x', '--port', '0', '--slo-ms', '5', '--workers', '1.5'], /--workers must be an integer/],
    [['serve', '--checkpoint', 'x', '--port', '0', '--slo-ms', '5', '--rate', '1.5'], /--rate must be a slice rate/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await usage(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, pattern);
  }
  const missing = await usage(['serve', '--checkpoint', join(t.testdir(), 'none.safetensors'), '--port', '0', '--slo-ms', '5']);
  t.equal(missing.code, 1, 'an unreadable checkpoint exits 1');
  t.match(missing.stderr, /modelslice serve: load: cannot read/);
});

t.test('modelslice serve answers, then SIGTERM finishes and exits 0', async (t) => {
  ms.manualSeed(4);
  const model = ms.models.mlp({ inputs: 16, hidden: [32], classes: 4 });
  const path = join(t.testdir(), 'm.safetensors');
  await ms.save(model, path);
  // Only the TypeScript loader of this test process, not tap's coverage hooks.
  const execArgv = process.execArgv.filter((a) => a.includes('typescript'));
  const child = spawn(process.execPath, [...execArgv, bin, 'serve', '--checkpoint', path, '--port', '0', '--slo-ms', '500', '--max-batch', '4', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 120000); // never hang the suite
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += String(c)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += String(c);
      const m = /\{"url":"(http:\/\/127\.0\.0\.1:\d+)","pid":(\d+)\}/.exec(stdout);
      if (m && Number(m[2]) === child.pid) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
  });
  const r = await postJson(`${url}/predict`, { inputs: [new Array(16).fill(0.1)] });
  t.equal(r.status, 200, r.text);
  t.match(r.json(), { classes: [Number], rate: 1 });
  t.equal((await call(`${url}/healthz`)).status, 200);
  child.kill('SIGTERM');
  const code = await exited;
  clearTimeout(killer);
  t.equal(code, 0, `exit code 0 (stderr: ${stderr})`);
  const last = JSON.parse(stdout.trim().split('\n').pop()!) as { signal: string; served: number; url: string };
  t.match(last, { signal: 'SIGTERM', served: 1, url });
});

/** Builds dist/ when a source file is newer than dist/bin.js: npx runs the package's bin from dist. */
function ensureDist(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  let built = 0;
  try {
    built = statSync(join(root, 'dist', 'bin.js')).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newest(join(root, 'src'))) return;
  // npm run build:ts, as a developer would: it also makes dist/bin.js executable, which npx needs.
  const r = spawnSync('npm', ['run', 'build:ts'], { cwd: root, encoding: 'utf8', timeout: 240000 });
  if (r.status !== 0) throw new Error(`building dist/ failed: ${r.stdout}${r.stderr}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('npx modelslice serve: SIGTERM to npx stops the server gracefully', async (t) => {
  ensureDist();
  ms.manualSeed(5);
  const path = join(t.testdir(), 'm.safetensors');
  await ms.save(ms.models.mlp({ inputs: 8, hidden: [16], classes: 3 }), path);
  // npm exec runs the bin through `sh -c`; its own process group lets the clean-up reach all three.
  const npx: ChildProcess = spawn('npx', ['--no', 'modelslice', 'serve', '--checkpoint', path, '--port', '0', '--slo-ms', '500', '--max-batch', '4', '--json'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let serverPid = 0;
  const killAll = () => {
    try {
      process.kill(-npx.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    if (serverPid > 0 && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
  };
  const killer = setTimeout(killAll, 150000); // never hang the suite
  t.teardown(() => {
    clearTimeout(killer);
    killAll();
  });
  let stdout = '';
  let stderr = '';
  npx.stderr!.on('data', (c: Buffer) => (stderr += String(c)));
  const lines: ((s: string) => void)[] = [];
  npx.stdout!.on('data', (c: Buffer) => {
    stdout += String(c);
    for (const check of lines) check(stdout);
  });
  const waitFor = (pattern: RegExp, what: string) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within 120 s; stdout: ${stdout}; stderr: ${stderr}`)), 120000);
      lines.push((s) => {
        const m = pattern.exec(s);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      });
      lines[lines.length - 1](stdout);
    });
  const ready = await waitFor(/\{"url":"(http:\/\/127\.0\.0\.1:\d+)","pid":(\d+)\}/, 'ready line');
  const url = ready[1];
  serverPid = Number(ready[2]);
  t.not(serverPid, npx.pid, 'the server is not the npx process itself');
  t.equal((await postJson(`${url}/predict`, { inputs: [new Array(8).fill(0.5)] })).status, 200);

  const npxExited = new Promise<void>((resolve) => (npx.exitCode !== null || npx.signalCode !== null ? resolve() : npx.once('exit', () => resolve())));
  process.kill(npx.pid!, 'SIGTERM');
  await npxExited;
  const summary = JSON.parse((await waitFor(/\{"url"[^\n]*"signal"[^\n]*\}/, 'summary line'))[0]) as { signal: string; served: number };
  t.match(summary, { signal: 'parent exited', served: 1 }, 'the server finished and printed its summary');
  let gone = false;
  for (let i = 0; i < 400 && !gone; i++) {
    gone = !alive(serverPid);
    if (!gone) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(gone, 'the server process exited');
  await t.rejects(call(`${url}/healthz`), { code: 'ECONNREFUSED' }, 'and no longer answers');
});
