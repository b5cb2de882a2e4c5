// `modelslice serve` as a user runs it: a child process, stopped by SIGTERM.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { main } from '../../src/cli.js';
import * as ms from '../../src/index.js';
import { call, postJson } from './http.js';

const bin = fileURLToPath(new URL('../../src/bin.ts', import.meta.url));

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
      const m = /\{"url":"(http:\/\/127\.0\.0\.1:\d+)"\}/.exec(stdout);
      if (m) resolve(m[1]);
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
