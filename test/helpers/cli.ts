// Runs the CLI in-process (src/cli.ts main), capturing console.log, stdout and stderr.
import { main } from '../../src/cli.js';

export interface CliRun {
  code: number;
  /** Lines given to console.log. */
  lines: string[];
  stdout: string;
  stderr: string;
}

export async function runCli(argv: string[]): Promise<CliRun> {
  const lines: string[] = [];
  let stdout = '';
  let stderr = '';
  const log = console.log;
  const out = process.stdout.write;
  const err = process.stderr.write;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(' '));
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, lines, stdout, stderr };
  } finally {
    console.log = log;
    process.stdout.write = out;
    process.stderr.write = err;
  }
}
