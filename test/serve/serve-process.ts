// `modelslice serve` as a child process for the tests that need a real server process (behind a
// load balancer, with a manifest's arguments): started with --json, resolved once it prints
// its URL, killed at the test's end if still running.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

const bin = fileURLToPath(new URL('../../src/bin.ts', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stdout: () => string;
}

/** Runs `modelslice serve ...args --json` (args must include --port, --slo-ms, --checkpoint). */
export async function startServe(t: Test, args: string[]): Promise<ServeProcess> {
  // Only the TypeScript loader of this test process, not tap's coverage hooks.
  const execArgv = process.execArgv.filter((a) => a.includes('typescript'));
  const child = spawn(process.execPath, [...execArgv, bin, 'serve', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += String(c)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += String(c);
      const m = /\{"url":"(http:\/\/127\.0\.0\.1:\d+)","pid":\d+\}/.exec(stdout);
      if (m) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
  });
  return { child, url, exited, stdout: () => stdout };
}
