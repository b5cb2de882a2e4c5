// Helpers for the data and io tests: error assertions for sync and async
// calls (type, message prefix, patterns). Not a test file.
import type { Asserter } from './reference.js';

type ErrorType = typeof Error | typeof RangeError | typeof TypeError;

function judge(
  t: Asserter, caught: unknown, threw: boolean, type: ErrorType, prefixes: string[], patterns: (string | RegExp)[], message: string,
): boolean {
  if (!threw) return t.ok(false, `${message}: did not throw`);
  const err = caught as Error;
  const text = String(err?.message);
  const problems: string[] = [];
  if (!(err instanceof type)) problems.push(`threw ${err?.constructor?.name} instead of ${type.name}`);
  if (!prefixes.some((p) => text.startsWith(p))) problems.push(`message does not start with ${prefixes.map((p) => `"${p}"`).join(' or ')}`);
  for (const p of patterns) if (!(typeof p === 'string' ? text.includes(p) : p.test(text))) problems.push(`message lacks ${String(p)}`);
  return t.ok(problems.length === 0, problems.length === 0 ? `${message} (${text})` : `${message}: ${problems.join('; ')} -- "${text}"`);
}

/** Asserts fn throws `type` whose message starts with one of `prefixes` and contains every pattern. */
export function throwsWith(
  t: Asserter, fn: () => unknown, type: ErrorType, prefixes: string | string[], patterns: (string | RegExp)[], message: string,
): boolean {
  try {
    fn();
  } catch (e) {
    return judge(t, e, true, type, [prefixes].flat(), patterns, message);
  }
  return judge(t, undefined, false, type, [prefixes].flat(), patterns, message);
}

/** The same for a promise (or an async function). */
export async function rejectsWith(
  t: Asserter, p: Promise<unknown> | (() => Promise<unknown>), type: ErrorType, prefixes: string | string[], patterns: (string | RegExp)[], message: string,
): Promise<boolean> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return judge(t, e, true, type, [prefixes].flat(), patterns, message);
  }
  return judge(t, undefined, false, type, [prefixes].flat(), patterns, message);
}
