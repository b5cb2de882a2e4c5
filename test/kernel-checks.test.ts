// The addon's argument checks come from the kernel declarations: the header the
// binding includes is what scripts/kernel-checks.ts writes from src/kernels.ts;
// every call the ops make passes the declared checks; and for every such call,
// a buffer one element short of its declared region, or a written region that
// shares memory with another, is refused by the addon and by `checkCall` with
// the same message, while the call itself still runs.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { evaluate, exprNames, parseExpr, type ExprValue } from '../src/kernel-expr.js';
import { callRegions, checkCall, KERNELS, type KernelDecl } from '../src/kernels.js';
import { HEADER_PATH, kernelChecksHeader } from '../scripts/kernel-checks.js';
import type { CapturedStep } from '../src/capture.js';
import { recordedCalls } from './helpers/recorded-calls.js';

t.test('native/kernel_checks.h is what the declarations generate', async (t) => {
  t.ok(readFileSync(HEADER_PATH, 'utf8') === kernelChecksHeader(), 'up to date (npm run gen:kernel-checks, then rebuild the addon)');
});

t.test('expressions: parse, evaluate, and refuse what they cannot mean', async (t) => {
  const scope = (vars: Record<string, ExprValue>) => (name: string): ExprValue => vars[name];
  const v = (src: string, vars: Record<string, ExprValue> = {}) => evaluate(parseExpr(src), scope(vars));
  t.equal(v('2 + 3 * 4 - 1'), 13);
  t.equal(v('(2 + 3) * 4 % 7'), 6);
  t.equal(v('7 / 2'), 3, 'integer division');
  t.equal(v('t ? a : b', { t: true, a: 1, b: 2 }), 1);
  t.equal(v('!t || a >= 3 && b != 2', { t: true, a: 3, b: 1 }), 1);
  t.equal(v('-a + 5', { a: 2 }), 3);
  t.equal(v('span(3, 4, 10)'), 24);
  t.equal(v('span(0, 4, 10)'), 0);
  t.equal(v('prod(s)', { s: [2, 3, 4] }), 24);
  t.equal(v('extent(s, st)', { s: [2, 3], st: [0, 5] }), 11);
  t.equal(v('extent(s, st)', { s: [2, 0], st: [1, 1] }), 0, 'an empty shape reaches nothing');
  t.equal(v('len(s) + len(b)', { s: [1, 2], b: new Float32Array(5) }), 7);
  t.equal(v('has(b) + has(n)', { b: new Float32Array(0), n: null }), 1);
  t.equal(v('convOut(28, 3, 2, 1, 1)'), 14);
  t.equal(v('convOut(2, 5, 1, 0, 1)'), -1, 'a kernel larger than the input');
  t.throws(() => v('a * a', { a: 2 ** 40 }), { name: 'RangeError', message: /size overflow/ });
  t.throws(() => v('a / b', { a: 1, b: 0 }), { name: 'RangeError', message: /division by zero/ });
  t.throws(() => parseExpr('a +'), { name: 'SyntaxError', message: /'a \+': ends too soon/ });
  t.throws(() => parseExpr('a b'), /unexpected 'b'/);
  t.throws(() => parseExpr('f(a)'), /unknown function f/);
  t.throws(() => parseExpr('span(a, b)'), /span takes 3 arguments/);
  t.throws(() => parseExpr('(a'), /expected '\)'/);
  t.throws(() => parseExpr('a $ b'), /unexpected '\$'/);
});

t.test('every declaration reads only names it has', async (t) => {
  for (const k of KERNELS.values()) {
    const known = new Set<string>();
    for (const a of k.args) (a.kind === 'fields' ? a.fields : [a.name]).forEach((n) => known.add(n));
    const exprs = [...k.lets.map((l) => l.expr), ...k.checks.map((c) => c.expr)];
    for (const a of k.args) if (a.kind === 'buffer') exprs.push(a.size, ...(a.offset ? [a.offset] : []));
    for (const l of k.lets) known.add(l.name);
    const unknown = new Set<string>();
    for (const e of exprs) for (const n of exprNames(e)) if (!known.has(n)) unknown.add(n);
    t.same([...unknown], [], `${k.name} reads only its own names`);
  }
});

/** A copy of a typed array in a buffer of its own, `extra` elements longer or shorter. */
function resized<T extends Float32Array | Int32Array>(v: T, length: number): T {
  const out = new (v.constructor as new (n: number) => T)(length);
  out.set(v.subarray(0, Math.min(length, v.length)));
  return out;
}

/** Runs the call as recorded (the addon or the JavaScript kernel): the error message, or null. */
function outcome(step: CapturedStep, args: unknown[]): string | null {
  try {
    step.fn(...args);
    return null;
  } catch (e) {
    return e instanceof RangeError ? e.message : `not a RangeError: ${String(e)}`;
  }
}

function declaredOutcome(decl: KernelDecl, args: unknown[]): string | null {
  try {
    checkCall(decl, args);
    return null;
  } catch (e) {
    return e instanceof RangeError ? e.message : `not a RangeError: ${String(e)}`;
  }
}

const calls = recordedCalls();

t.test('every call the ops make fits its declaration', async (t) => {
  const names = new Set(calls.map((c) => c.name));
  t.same([...KERNELS.values()].filter((k) => !names.has(k.name)).map((k) => k.name), [], 'the passes call every declared kernel');
  const bad = calls.map((c) => [c.name, declaredOutcome(c.decl, c.args)]).filter(([, m]) => m !== null);
  t.same(bad, [], `${calls.length} calls, none refused by their declarations`);
});

t.test('a buffer one short of its declared region is refused, by the addon and by checkCall alike', async (t) => {
  // One call per kernel and shape is plenty: keep the first of each kernel's distinct argument shapes.
  const seen = new Set<string>();
  let checked = 0;
  for (const c of calls) {
    const key = `${c.name}:${JSON.stringify(c.args.map((a) => (ArrayBuffer.isView(a) ? (a as Float32Array).length : a)))}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const regions = callRegions(c.decl, c.args);
    const fresh = (): unknown[] => c.args.map((a) => (a instanceof Float32Array || a instanceof Int32Array ? resized(a, a.length) : a));
    for (const r of regions) {
      const need = r.offset + r.size;
      const i = c.decl.index.get(r.name)!;
      const decl = c.decl.args[i];
      // A buffer whose length sets the call's size (relu's x) is never short: the call is smaller.
      if (need === 0 || (decl.kind === 'buffer' && exprNames(decl.size).has(r.name))) continue;
      const exact = fresh();
      exact[i] = resized(r.view, need);
      t.equal(outcome(c, exact), null, `${c.name}: ${r.name} of exactly ${need} elements runs`);
      const short = fresh();
      short[i] = resized(r.view, need - 1);
      const got = outcome(c, short);
      const message = new RegExp(`^${c.name}: ${r.name} has ${need - 1} elements, needs ${need}\\b`);
      if (got === null || !message.test(got)) t.fail(`${c.name}: ${r.name} one short: ${got ?? 'ran'}`);
      t.equal(declaredOutcome(c.decl, short), got, `${c.name}: ${r.name} one short: checkCall says what the kernel says`);
      checked++;
    }
  }
  t.ok(checked > 100, `${checked} buffers of ${seen.size} distinct calls`);
});

t.test('a written region sharing memory with another is refused, unless declared in place', async (t) => {
  const seen = new Set<string>();
  let refused = 0;
  let inPlace = 0;
  for (const c of calls) {
    if (seen.has(c.name)) continue;
    seen.add(c.name);
    const regions = callRegions(c.decl, c.args).filter((r) => r.size > 0);
    for (const w of regions.filter((r) => r.written)) {
      for (const o of regions) {
        if (o === w || o.view.BYTES_PER_ELEMENT !== w.view.BYTES_PER_ELEMENT || o.view.constructor !== w.view.constructor) continue;
        // Both views in one buffer, their regions starting at the same element.
        const start = Math.max(w.offset, o.offset);
        const whole = new (w.view.constructor as Float32ArrayConstructor)(start + Math.max(w.view.length, o.view.length) + 1);
        const args = [...c.args];
        args[c.decl.index.get(w.name)!] = whole.subarray(start - w.offset, start - w.offset + w.view.length);
        args[c.decl.index.get(o.name)!] = whole.subarray(start - o.offset, start - o.offset + o.view.length);
        const allowed = w.inPlace && !o.written && w.size === o.size;
        const got = outcome(c, args);
        if (allowed) {
          t.equal(got, null, `${c.name}: ${w.name} exactly in place over ${o.name} runs`);
          inPlace++;
        } else {
          const first = c.decl.index.get(w.name)! < c.decl.index.get(o.name)! || !o.written ? [w.name, o.name] : [o.name, w.name];
          t.match(got ?? 'ran', new RegExp(`^${c.name}: ${first[0]} shares memory with ${first[1]};`), `${c.name}: ${w.name} over ${o.name} is refused`);
          refused++;
        }
        t.equal(declaredOutcome(c.decl, args), got, `${c.name}: ${w.name} over ${o.name}: checkCall says what the kernel says`);
      }
    }
  }
  t.ok(refused > 40 && inPlace >= 4, `${refused} overlaps refused, ${inPlace} in-place calls run`);
});
